package zkclient

import (
	"context"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// TestDetachAndResume: Detach drops the connection but not the session (its
// ephemeral stays, as go-zookeeper sees it); a client with ResumeSession and
// ZooKeeper's password takes the same session over; Close then ends it and
// ZooKeeper deletes the ephemeral. A session that no longer exists is not
// resumed: the client gets a new one (SessionID tells).
func TestDetachAndResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := freshRoot(t)
	obs := independent(t, ensemble.Hosts())
	first := dial(t, Config{Hosts: ensemble.Hosts(), SessionTimeout: 10 * time.Second})
	if _, _, err := first.Create(ctx, root, nil, znode.WorldAnyone(), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := first.Create(ctx, root+"/eph", nil, znode.WorldAnyone(), 1); err != nil {
		t.Fatal(err)
	}
	sid, passwd := first.SessionID(), append([]byte(nil), first.passwd...)
	first.Detach()
	if _, _, err := first.Exists(ctx, root); err == nil {
		t.Error("a detached client still answers")
	}
	_ = first.Close() // after Detach: nothing more, the session stays
	if ok, st, err := obs.Exists(root + "/eph"); !ok || err != nil || st.EphemeralOwner != sid {
		t.Fatalf("ephemeral after Detach: exists %t owner %#x, %v; want owner %#x", ok, st.EphemeralOwner, err, sid)
	}
	again := dial(t, Config{Hosts: ensemble.Hosts(), SessionTimeout: 10 * time.Second, ResumeSession: sid, ResumePassword: passwd})
	if again.SessionID() != sid {
		t.Fatalf("resumed session %#x, want %#x", again.SessionID(), sid)
	}
	if _, _, err := again.GetData(ctx, root+"/eph"); err != nil {
		t.Fatal(err)
	}
	_ = again.Close()
	if ok, _, err := obs.Exists(root + "/eph"); ok || err != nil {
		t.Fatalf("ephemeral after Close of the resumed session: exists %t, %v", ok, err)
	}
	gone := dial(t, Config{Hosts: ensemble.Hosts(), ResumeSession: sid, ResumePassword: passwd})
	if gone.SessionID() == sid || gone.SessionID() == 0 {
		t.Fatalf("resuming a closed session gave %#x", gone.SessionID())
	}
}

package reversemirror_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkserver"
	"github.com/zk2raft/zk2raft/znode"
)

// TestMirrorKeepsAdoptedSession: the session keeper for a ZooKeeper session
// the journal adopted at the change to primary. A client makes an ephemeral
// through the dual-write proxy in shadow and goes away without closing its
// session; the journal adopts the session (with its own timeout: the proxy
// mirrored it) and the client resumes it on the journal, as a cutover's
// clients do; the mirror resumes it in ZooKeeper and keeps it alive there
// well past its timeout, though no client talks to ZooKeeper; the client
// makes another ephemeral on the journal, which reaches ZooKeeper under the
// same owner (no allowance for ephemeralOwner); after the rollback the mirror
// lets go of it and the client resumes it on ZooKeeper with both ephemerals.
func TestMirrorKeepsAdoptedSession(t *testing.T) {
	n, addr := startNode(t, raftjournal.PhaseShadow)
	f := n.FSM()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := testRoot(t, "/adopted")

	tcfg := dualwrite.DefaultConfig()
	tcfg.Listen, tcfg.ZK, tcfg.Journal, tcfg.QueueDir = "127.0.0.1:0", ensemble.Hosts(), importer.NodeJournal(n), t.TempDir()
	tcfg.Sync = true // a reply once the journal has the write
	tcfg.Logger = testlog.New(t).With("component", "tap")
	tap, err := dualwrite.Start(ctx, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	const timeout = 4 * time.Second
	app, err := zkclient.Dial(ctx, zkclient.Config{Hosts: []string{tap.Addr()}, SessionTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	sid := app.SessionID()
	if _, _, err := app.Create(ctx, root, []byte("r"), znode.WorldAnyone(), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := app.Create(ctx, root+"/shadow-eph", []byte("made in shadow"), znode.WorldAnyone(), 1); err != nil {
		t.Fatal(err)
	}
	app.Detach() // the client goes away; its session lives on in ZooKeeper
	tap.Close()
	testlog.WaitFor(t, time.Minute, "the journal holds the mirrored ephemeral", func() error {
		if _, ok := f.Exists(root+"/shadow-eph", nil); !ok {
			return errors.New("not yet")
		}
		return nil
	})
	if err := n.SetPhase(ctx, raftjournal.PhasePrimary, false); err != nil {
		t.Fatal(err)
	}
	// The client resumes its session on the journal, which now owns it and
	// would expire it after its timeout without the client.
	resumed, err := zkclient.Dial(ctx, zkclient.Config{Hosts: []string{addr}, SessionTimeout: timeout,
		ResumeSession: sid, ResumePassword: zkserver.SessionPassword(sid)})
	if err != nil {
		t.Fatal(err)
	}
	if resumed.SessionID() != sid {
		t.Fatalf("journal gave session %#x, want %#x resumed", resumed.SessionID(), sid)
	}
	m := runMirror(t, n, nil)
	testlog.WaitFor(t, time.Minute, "the mirror holds the adopted session", func() error {
		if st := m.Status(); !st.Running || st.Sessions != 1 || st.LostSessions != 0 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	// Three timeouts later ZooKeeper still has the session's ephemeral: the
	// mirror kept the session alive.
	direct := zkDirect(t)
	for end := time.Now().Add(3 * timeout); time.Now().Before(end); {
		if _, ok, err := direct.Exists(ctx, root+"/shadow-eph"); !ok || err != nil {
			t.Fatalf("%s gone from ZooKeeper (%v): the adopted session expired there", root+"/shadow-eph", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The client makes an ephemeral on the journal.
	if _, _, err := resumed.Create(ctx, root+"/primary-eph", []byte("made in primary"), znode.WorldAnyone(), 1); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, f, m)
	compareWithZooKeeper(t, f, root) // ephemeralOwner included
	// Roll back: the client goes (without closing), the journal returns to
	// shadow, and the client resumes its session on ZooKeeper.
	resumed.Detach()
	if err := n.SetPhase(ctx, raftjournal.PhaseShadow, true); err != nil {
		t.Fatal(err)
	}
	testlog.WaitFor(t, time.Minute, "the mirror lets go of the session", func() error {
		if st := m.Status(); st.Running || st.Sessions != 0 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	back, err := zkclient.Dial(ctx, zkclient.Config{Hosts: ensemble.Hosts(), SessionTimeout: timeout,
		ResumeSession: sid, ResumePassword: zkserver.SessionPassword(sid)})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if back.SessionID() != sid {
		t.Fatalf("ZooKeeper gave session %#x after the rollback, want %#x resumed", back.SessionID(), sid)
	}
	for _, p := range []string{root + "/shadow-eph", root + "/primary-eph"} {
		_, st, err := back.GetData(ctx, p)
		if err != nil || st.EphemeralOwner != sid {
			t.Errorf("%s on ZooKeeper after the rollback: owner %#x, %v; want %#x", p, st.EphemeralOwner, err, sid)
		}
	}
}

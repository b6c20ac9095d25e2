package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// TestServeReverseMirror: `serve --client-addr --zk` runs the reverse
// mirror: once the journal is primary, a write through the node's client
// port reaches ZooKeeper, and /status shows the mirror's lag and its own
// status.
func TestServeReverseMirror(t *testing.T) {
	dir := t.TempDir()
	admin, raftAddr, client := testlog.FreeAddr(t), testlog.FreeAddr(t), testlog.FreeAddr(t)
	marker := "/zookeeper/zk2raft-cli-test"
	s := startServe(t, "--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", raftAddr,
		"--admin-addr", admin, "--client-addr", client, "--bootstrap", "--zk", sharedZK.ConnectString(),
		"--reverse-mirror-marker", marker)
	defer s.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	creds := raftjournal.Credentials{Secret: testlog.Secret()}
	waitUntil(t, "the node to lead", func() error {
		st, err := testAdmin(admin).ClusterStatus(ctx, true)
		if err != nil || st.Role != "leader" {
			return fmt.Errorf("role %q, %v", st.Role, err)
		}
		return nil
	})
	if res, err := raftjournal.RemoteApply(ctx, creds, raftAddr, raftjournal.Encode(&raftjournal.SetPhase{Phase: raftjournal.PhasePrimary})); err != nil || res.Err != nil {
		t.Fatalf("set primary: %v %+v", err, res)
	}
	app, err := zkclient.Dial(ctx, zkclient.Config{Hosts: []string{client}})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	root := "/serve-reverse-mirror"
	if _, _, err := app.Create(ctx, root, []byte("from the journal"), znode.WorldAnyone(), 0); err != nil {
		t.Fatal(err)
	}
	direct, err := zkclient.Dial(ctx, zkclient.Config{Hosts: sharedZK.Hosts()})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	waitUntil(t, "the write in ZooKeeper", func() error {
		data, _, err := direct.GetData(ctx, root)
		if err != nil || string(data) != "from the journal" {
			return fmt.Errorf("%q, %v", data, err)
		}
		return nil
	})
	waitUntil(t, "the mirror drained, as /status says", func() error {
		st, err := testAdmin(admin).ClusterStatus(ctx, true)
		if err != nil {
			return err
		}
		rm, ext := st.ReverseMirror, st.Extensions["reverse_mirror"]
		if rm == nil || !rm.Active || rm.PendingEntries != 0 || rm.AckedIndex <= rm.StartIndex || ext == nil {
			return fmt.Errorf("reverse_mirror %+v, extension %v", rm, ext)
		}
		return nil
	})
	if _, _, err := direct.GetData(ctx, marker); err != nil {
		t.Errorf("marker %s: %v", marker, err)
	}
}

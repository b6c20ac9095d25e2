package zkserver_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// TestShadowPhase: while ZooKeeper is the source of truth the port serves
// the mirrored tree read-only — reads and watches of mirrored changes work,
// with ZooKeeper's zxids in the stats; every write is answered NOTREADONLY;
// read-only clients (the connect flag; zkCli.sh -r) and ordinary ones are
// both accepted, on sessions local to their node. At the switch to primary
// those local sessions end: their connections close, a client that comes
// back is told its session expired, and a new session reads and writes.
func TestShadowPhase(t *testing.T) {
	j, err := startJournal(3, raftjournal.PhaseShadow, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.close)
	ctx := t.Context()
	const zxid1, zxid2 = int64(0x5_0000_0001), int64(0x5_0000_0002)
	now := time.Now().UnixMilli()
	mirror := func(txn *raftjournal.SourceTxn) {
		t.Helper()
		res, err := j.nodes[0].Submit(ctx, txn)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			t.Fatalf("mirror txn %#x: %v", txn.Zxid, err)
		}
		for _, n := range j.nodes {
			if err := n.WaitApplied(ctx, res.Index); err != nil {
				t.Fatal(err)
			}
		}
	}
	mirror(&raftjournal.SourceTxn{Zxid: zxid1, Ops: []raftjournal.SourceOp{{
		Kind: raftjournal.SourceCreate, Path: "/mirrored", Data: []byte("from zookeeper"), ACL: znode.WorldAnyone(),
		Stat: znode.Stat{Czxid: zxid1, Mzxid: zxid1, Pzxid: zxid1, Ctime: now, Mtime: now},
	}}})
	addrs := j.addrs()

	// An ordinary client (go-zookeeper does not send the read-only flag).
	c, events := connect(t, addrs[1:2])
	data, st, err := c.Get("/mirrored")
	if err != nil || string(data) != "from zookeeper" || st.Czxid != zxid1 || st.Mzxid != zxid1 {
		t.Fatalf("read of the mirrored node: %q %+v %v", data, st, err)
	}
	_, _, watch, err := c.GetW("/mirrored")
	if err != nil {
		t.Fatal(err)
	}
	mirror(&raftjournal.SourceTxn{Zxid: zxid2, Ops: []raftjournal.SourceOp{{
		Kind: raftjournal.SourceSetData, Path: "/mirrored", Data: []byte("changed in zookeeper"),
		Stat: znode.Stat{Czxid: zxid1, Mzxid: zxid2, Pzxid: zxid1, Ctime: now, Mtime: now, Version: 1},
	}}})
	select {
	case ev := <-watch:
		if ev.Type != zk.EventNodeDataChanged || ev.Path != "/mirrored" {
			t.Fatalf("watch event %+v", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no watch event for a mirrored change")
	}
	if data, st, err := c.Get("/mirrored"); err != nil || string(data) != "changed in zookeeper" || st.Mzxid != zxid2 || st.Version != 1 {
		t.Fatalf("read after the mirrored change: %q %+v %v", data, st, err)
	}

	// A read-only client: its connect is answered read-only, and every
	// write, of every kind, is NOTREADONLY.
	ro, resp, err := dialRaw(t, addrs[2], connectOpts{readOnly: true})
	if err != nil || !resp.ReadOnly {
		t.Fatalf("read-only connect: %+v %v", resp, err)
	}
	writes := []struct {
		op  zkwire.OpCode
		req zkwire.Request
	}{
		{zkwire.OpCreate, create("/new", nil, zkwire.ModePersistent)},
		{zkwire.OpCreate2, create("/new", nil, zkwire.ModeEphemeral)},
		{zkwire.OpCreateContainer, create("/box", nil, zkwire.ModeContainer)},
		{zkwire.OpCreateTTL, &zkwire.CreateTTLRequest{Path: "/ttl", ACL: znode.WorldAnyone(), Flags: zkwire.ModePersistentWithTTL, TTL: 1000}},
		{zkwire.OpDelete, &zkwire.DeleteRequest{Path: "/mirrored", Version: -1}},
		{zkwire.OpSetData, &zkwire.SetDataRequest{Path: "/mirrored", Data: []byte("x"), Version: -1}},
		{zkwire.OpSetACL, &zkwire.SetACLRequest{Path: "/mirrored", ACL: znode.WorldAnyone(), Version: -1}},
		{zkwire.OpCheck, &zkwire.CheckVersionRequest{Path: "/mirrored", Version: 1}},
		{zkwire.OpMulti, &zkwire.MultiRequest{Ops: []zkwire.MultiOp{{Op: zkwire.OpDelete, Request: &zkwire.DeleteRequest{Path: "/mirrored", Version: -1}}}}},
	}
	for _, w := range writes {
		for name, s := range map[string]*rawSession{"read-only": ro, "ordinary": mustDialRaw(t, addrs[0], connectOpts{})} {
			if r := s.call(w.op, w.req); r.Err != zkwire.CodeNotReadOnly {
				t.Errorf("%s client, %v in shadow: %v, want NotReadOnly", name, w.op, r.Err)
			}
		}
	}
	if r := ro.call(zkwire.OpGetChildren, &zkwire.GetChildrenRequest{Path: "/"}); r.Err != zkwire.CodeOK ||
		!strings.Contains(strings.Join(r.Body.(*zkwire.GetChildrenResponse).Children, ","), "mirrored") {
		t.Fatalf("read-only client's getChildren: %+v", r)
	}
	if _, err := c.Create("/x", nil, 0, zk.WorldACL(zk.PermAll)); err == nil {
		t.Fatal("go-zookeeper created a node in shadow")
	}

	// The Java client in read-only mode (zkCli.sh -r).
	const zkCli = "/usr/share/zookeeper/bin/zkCli.sh"
	if _, err := exec.LookPath(zkCli); err != nil {
		t.Fatal("zkCli.sh from Debian's zookeeper package is required: run `make deps`")
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, zkCli, "-r", "-server", addrs[0])
	cmd.Stdin = strings.NewReader("get /mirrored\ncreate /fromcli x\nquit\n")
	cmd.Env = append(cmd.Environ(), "CLIENT_JVMFLAGS=-Xmx64m -XX:TieredStopAtLevel=1", "ZOO_LOG_DIR="+t.TempDir())
	// zkCli.sh exits 1 after the refused create.
	out, err := cmd.CombinedOutput()
	for _, want := range []string{"state:ConnectedReadOnly", "changed in zookeeper", "Not a read-only call: /fromcli"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("zkCli.sh -r in shadow: no %q (%v)\n%s", want, err, tail(string(out), 4000))
		}
	}

	// The switch to primary ends the local sessions.
	sid := c.SessionID()
	if err := j.nodes[0].SetPhase(ctx, raftjournal.PhasePrimary, false); err != nil {
		t.Fatal(err)
	}
	if err := ro.waitClosed(30 * time.Second); err != nil {
		t.Fatalf("a read-only client's connection after the switch: %v", err)
	}
	expired := false
	deadline := time.After(60 * time.Second)
	for !expired {
		select {
		case ev := <-events:
			expired = ev.State == zk.StateExpired
		case <-deadline:
			t.Fatalf("go-zookeeper was not told its shadow session %#x expired (state %v)", sid, c.State())
		}
	}
	c2, _ := connect(t, addrs)
	if _, err := c2.Create("/after-the-switch", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("a new session after the switch cannot write: %v", err)
	}
	if data, _, err := c2.Get("/mirrored"); err != nil || string(data) != "changed in zookeeper" {
		t.Fatalf("a new session after the switch reads %q %v", data, err)
	}
	// go-zookeeper starts a new session by itself after the expiry: a
	// journal session now, which writes.
	if _, err := c.Create("/by-the-old-client", nil, 0, zk.WorldACL(zk.PermAll)); err != nil || c.SessionID() == sid {
		t.Fatalf("the old client after its session expired: session %#x (was %#x), create: %v", c.SessionID(), sid, err)
	}
}

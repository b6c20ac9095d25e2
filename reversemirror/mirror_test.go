package reversemirror_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// kazooWorkload is written by kazoo, through the journal's client port:
// sequential nodes, a transaction (multi), setData with versions, a
// recursive delete, ACLs with "auth" expanded.
const kazooWorkload = `
import sys
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl, make_acl
zk = KazooClient(hosts=sys.argv[1], auth_data=[("digest", "kaz:pw")])
zk.start(timeout=30)
root = sys.argv[2] + "/kazoo"
zk.ensure_path(root + "/a/b")
for i in range(4):
    zk.create(root + "/q/item-", b"%d" % i, sequence=True, makepath=True)
zk.set(root + "/a", b"one")
zk.set(root + "/a", b"two", version=1)
t = zk.transaction()
t.create(root + "/t1", b"x")
t.create(root + "/t1/c", b"")
t.set_data(root + "/a/b", b"in-multi")
t.check(root + "/a", 2)
t.delete(root + "/q/item-0000000000")
res = t.commit()
assert not any(isinstance(r, Exception) for r in res), res
bad = zk.transaction()
bad.create(root + "/never", b"")
bad.check(root + "/a", 99)
assert any(isinstance(r, Exception) for r in bad.commit())
zk.create(root + "/secret", b"s", acl=[make_acl("auth", "", all=True)])
zk.set_acls(root + "/a", [make_acl("world", "anyone", read=True), make_digest_acl("kaz", "pw", all=True)])
zk.create(root + "/gone/x/y", b"", makepath=True)
zk.delete(root + "/gone", recursive=True)
zk.stop()
print("ok")
`

// TestMirrorFollowsJournal: a one-node journal in primary takes writes of
// every kind from go-zookeeper and kazoo through its client port; the mirror
// beside it brings ZooKeeper to the same tree, node by node (verify), except
// zxids and times and the owner of a journal session's ephemeral.
func TestMirrorFollowsJournal(t *testing.T) {
	n, addr := primaryNode(t)
	f := n.FSM()
	m := runMirror(t, n, nil)
	root := "/follows"

	c := gozk(t, addr)
	all := zk.WorldACL(zk.PermAll)
	mustCreate := func(c *zk.Conn, p string, data []byte, flags int32) string {
		t.Helper()
		name, err := c.Create(p, data, flags, all)
		if err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
		return name
	}
	mustCreate(c, root, []byte("r"), 0)
	mustCreate(c, root+"/p", []byte("p"), 0)
	for i := range 3 {
		if _, err := c.Set(root+"/p", []byte{byte('a' + i)}, int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(c, root+"/q", nil, 0)
	var seqs []string
	for range 5 {
		seqs = append(seqs, mustCreate(c, root+"/q/job-", []byte("j"), zk.FlagSequence))
	}
	if err := c.Delete(seqs[1], 0); err != nil {
		t.Fatal(err)
	}
	mustCreate(c, root+"/empty", []byte{}, 0)
	if _, err := c.CreateContainer(root+"/box", nil, zk.FlagContainer, all); err != nil {
		t.Fatal(err)
	}
	mustCreate(c, root+"/box/item", nil, 0)
	if _, err := c.CreateTTL(root+"/ttl", []byte("t"), zk.FlagTTL, all, time.Hour); err != nil {
		t.Fatal(err)
	}
	// A multi of several kinds, and one that fails (changes nothing).
	if _, err := c.Multi(
		&zk.CreateRequest{Path: root + "/m", Data: []byte("m"), Acl: all},
		&zk.CreateRequest{Path: root + "/q/job-", Data: []byte("in-multi"), Acl: all, Flags: zk.FlagSequence},
		&zk.SetDataRequest{Path: root + "/m", Data: []byte("m2"), Version: 0},
		&zk.CheckVersionRequest{Path: root + "/p", Version: 3},
		&zk.DeleteRequest{Path: seqs[2], Version: -1},
	); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Multi(
		&zk.CreateRequest{Path: root + "/never", Acl: all},
		&zk.DeleteRequest{Path: root + "/missing", Version: -1},
	); err == nil {
		t.Fatal("failing multi succeeded")
	}
	if _, err := c.SetACL(root+"/p", zk.DigestACL(zk.PermAll, "alice", "pw"), -1); err != nil {
		t.Fatal(err)
	}
	// Ephemerals: one session that ends (its ephemerals go), one that stays.
	gone := gozk(t, addr)
	mustCreate(gone, root+"/e-gone", nil, zk.FlagEphemeral)
	mustCreate(gone, root+"/q/lock-", nil, zk.FlagEphemeral|zk.FlagSequence)
	gone.Close()
	stay := gozk(t, addr)
	mustCreate(stay, root+"/e-stay", []byte("alive"), zk.FlagEphemeral)
	stayLock := mustCreate(stay, root+"/q/lock-", nil, zk.FlagEphemeral|zk.FlagSequence)

	if out := kazoo(t, addr, root, kazooWorkload); !strings.Contains(out, "ok") {
		t.Fatalf("kazoo: %s", out)
	}

	// The closed session's end reaches the journal asynchronously.
	waitGone(t, f, root+"/e-gone")
	st := waitDrained(t, f, m)
	compareWithZooKeeper(t, f, root, root+"/e-stay", stayLock)

	var md struct {
		Start, Index uint64
		Sessions     map[string]string
	}
	if err := json.Unmarshal([]byte(marker(t)), &md); err != nil {
		t.Fatal(err)
	}
	if md.Index != st.Acked || md.Start != st.Start || len(md.Sessions) != 1 {
		t.Errorf("marker %+v, journal mirror status %+v: want the same index and one kept session", md, st)
	}
	ms := m.Status()
	if ms.Records == 0 || ms.Applied != st.Acked || ms.LostSessions != 0 || ms.LastError != "" {
		t.Errorf("mirror status %+v", ms)
	}
	t.Logf("mirror: %d journal entries in %d ZooKeeper multis, %d ops; marker %s", ms.Records, ms.Multis, ms.Ops, marker(t))
}

// waitGone waits until the journal no longer has path.
func waitGone(t *testing.T, f *raftjournal.FSM, p string) {
	t.Helper()
	testlog.WaitFor(t, time.Minute, p+" deleted in the journal", func() error {
		if _, ok := f.Exists(p, nil); ok {
			return errors.New("still there")
		}
		return nil
	})
}

package reversemirror_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/znode"
)

// kazooSplitBrain writes straight to ZooKeeper, as a client around the
// proxies would, and prints the zxids ZooKeeper gave each write; it keeps its
// session (and its ephemeral) until its stdin closes.
const kazooSplitBrain = `
import json, sys
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1]); zk.start()
root = sys.argv[2]
out = {"session": "%#x" % zk.client_id[0]}
out["set"] = zk.set(root + "/a", b"straight to zookeeper").mzxid
zk.delete(root + "/d/x")
out["delete"] = zk.exists(root + "/d").pzxid
zk.create(root + "/rogue", b"r")
out["create"] = zk.exists(root + "/rogue").czxid
zk.create(root + "/rogue-e", b"e", ephemeral=True)
out["ephemeral"] = zk.exists(root + "/rogue-e").czxid
print(json.dumps(out), flush=True)
sys.stdin.read()
zk.stop()
`

// records reads the split-brain records under root from the journal.
func records(f *raftjournal.FSM, root string) []reversemirror.SplitBrainWrite {
	var out []reversemirror.SplitBrainWrite
	for _, w := range reversemirror.SplitBrainWrites(f.Checkpoints(reversemirror.SplitBrainPrefix)) {
		if strings.HasPrefix(w.Path, root+"/") || w.Path == root {
			out = append(out, w)
		}
	}
	return out
}

// TestSplitBrainReported: in primary the mirror's sentry reports every write
// an independent client (kazoo) makes straight to ZooKeeper — a setData, a
// delete, a create and an ephemeral create — with its path and ZooKeeper's
// zxid (the ephemeral's with its session), as replicated records, and none
// of the mirror's own writes, before or after. The rogue nodes, once gone,
// are resolved as verified. A write made while no mirror runs is found by
// the next mirror's scan, and the records outlive the mirror that wrote
// them.
func TestSplitBrainReported(t *testing.T) {
	n, addr := primaryNode(t)
	f := n.FSM()
	root := testRoot(t, "/sentry-"+strings.ToLower(t.Name()))
	tweak := func(c *reversemirror.Config) {
		c.Root, c.Verify, c.Retry = root, 200*time.Millisecond, 200*time.Millisecond
	}
	ctx, stop := context.WithCancel(context.Background())
	m1 := startMirror(t, ctx, n, tweak)
	c := gozk(t, addr)
	all := zk.WorldACL(zk.PermAll)
	for _, p := range []string{root, root + "/a", root + "/d", root + "/d/x", root + "/b"} {
		if _, err := c.Create(p, []byte("j0"), 0, all); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Set(root+"/b", []byte("j1"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(root+"/eph", nil, zk.FlagEphemeral, all); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(root+"/b", -1); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, f, m1)
	testlog.WaitFor(t, time.Minute, "the sentry has scanned and seen the mirror's writes", is(func() bool {
		st := m1.Status()
		return st.SentryScans > 0 && st.SentryEvents+st.SentryOwn >= 6
	}))
	if st := m1.Status(); st.SentryOwn == 0 {
		t.Errorf("no event matched to the mirror's own writes: %+v", st)
	}

	// kazoo, straight to ZooKeeper.
	cmd := exec.Command("/usr/bin/python3", "-c", kazooSplitBrain, ensemble.Hosts()[0], root)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("kazoo: %v\n%s\n(install python3-kazoo: make deps)", err, stderr.String())
	}
	var kz struct {
		Session                        string
		Set, Delete, Create, Ephemeral int64
	}
	if err := json.Unmarshal([]byte(line), &kz); err != nil {
		t.Fatalf("kazoo said %q: %v", line, err)
	}
	// The journal goes on writing: the mirror's writes are not reported.
	if _, err := c.Create(root+"/after", []byte("j"), 0, all); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		op   string
		zxid int64
	}{
		root + "/a": {"setData", kz.Set}, root + "/d/x": {"delete", kz.Delete},
		root + "/rogue": {"create", kz.Create}, root + "/rogue-e": {"create", kz.Ephemeral},
	}
	var got []reversemirror.SplitBrainWrite
	testlog.WaitFor(t, time.Minute, "the sentry records the four writes", func() error {
		got = records(f, root)
		if len(got) < len(want) {
			return fmt.Errorf("%d records: %+v", len(got), got)
		}
		return nil
	})
	for _, w := range got {
		exp, ok := want[w.Path]
		switch {
		case !ok:
			t.Errorf("reported a write the mirror made, or a second record: %s", w.String())
		case w.Op != exp.op || w.Zxid != exp.zxid:
			t.Errorf("%s: recorded %s at %#x, kazoo's was %s at %#x", w.Path, w.Op, w.Zxid, exp.op, exp.zxid)
		case w.Resolved != nil:
			t.Errorf("%s resolved while the write still stands: %+v", w.Path, w.Resolved)
		}
		if w.Path == root+"/rogue-e" && (fmt.Sprintf("%#x", w.Session) != kz.Session || w.SessionFrom != "ephemeralOwner") {
			t.Errorf("the ephemeral's record names session %#x (%s), kazoo's is %s", w.Session, w.SessionFrom, kz.Session)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	waitDrained(t, f, m1)

	// kazoo leaves (its ephemeral goes) and the operator deletes the rogue
	// node: ZooKeeper agrees with the journal there again.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kazoo: %v\n%s", err, stderr.String())
	}
	direct := zkDirect(t)
	if err := direct.Delete(context.Background(), root+"/rogue", -1); err != nil {
		t.Fatal(err)
	}
	testlog.WaitFor(t, time.Minute, "the rogue nodes' records resolved as verified", func() error {
		for _, w := range records(f, root) {
			resolved := w.Resolved != nil && w.Resolved.By == "verified"
			if gone := strings.HasSuffix(w.Path, "/rogue") || strings.HasSuffix(w.Path, "/rogue-e"); gone != resolved {
				return fmt.Errorf("%s: resolved %+v", w.Path, w.Resolved)
			}
		}
		return nil
	})

	// No mirror runs: a write straight to ZooKeeper is found by the next
	// mirror's scan, and the first mirror's records are still there.
	stop()
	testlog.WaitFor(t, time.Minute, "the first mirror stopped", is(func() bool { return !m1.Status().Running }))
	st, err := direct.SetData(context.Background(), root+"/d", []byte("while nobody watched"), -1)
	if err != nil {
		t.Fatal(err)
	}
	// A setACL fires no watch event at all: the scan compares aversions.
	if _, err := direct.SetACL(context.Background(), root, znode.WorldAnyone(), -1); err != nil {
		t.Fatal(err)
	}
	m2 := runMirror(t, n, tweak)
	testlog.WaitFor(t, time.Minute, "the second mirror's scan records the writes", func() error {
		found := 0
		for _, w := range records(f, root) {
			if w.Path == root+"/d" && w.Op == "setData" && w.Zxid == st.Mzxid || w.Path == root && w.Op == "setACL" {
				found++
			}
		}
		if found < 2 {
			return fmt.Errorf("records: %+v", records(f, root))
		}
		return nil
	})
	if n := len(records(f, root)); n != 6 {
		t.Errorf("%d records, want 6: %+v", n, records(f, root))
	}
	if m2.Status().SplitBrain != 2 {
		t.Errorf("the second mirror recorded %d writes, want 2", m2.Status().SplitBrain)
	}
	if !slices.ContainsFunc(records(f, root), func(w reversemirror.SplitBrainWrite) bool { return w.Path == root+"/a" && w.Resolved == nil }) {
		t.Error("the setData's record was lost or resolved across the restart")
	}
}

// startMirror runs a mirror until ctx ends (or the test does).
func startMirror(t *testing.T, ctx context.Context, n *raftjournal.Node, tweak func(*reversemirror.Config)) *reversemirror.Mirror {
	t.Helper()
	cfg := reversemirror.Config{Node: n, Logger: testlog.New(t), Marker: markerPath(t)}
	cfg.ZooKeeper.Hosts = ensemble.Hosts()
	cfg.ZooKeeper.Auth = superAuth()
	cfg.ZooKeeper.SessionTimeout = 10 * time.Second
	tweak(&cfg)
	m, err := reversemirror.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

package importer

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// heavy runs the full-size variants: every treegen profile at its default
// size (the adversarial one with 100k children and a 500-level path) and
// larger snapshots for the kill and cluster tests.
var heavy = flag.Bool("importer.heavy", os.Getenv("ZK2RAFT_HEAVY") != "", "run the full-size import tests")

// zk2raftBin is the zk2raft binary TestMain builds for the tests that kill
// an import with SIGKILL.
var zk2raftBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "importer-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		zk2raftBin = filepath.Join(dir, "zk2raft")
		// The zk2raft processes the tests start find the cluster secret here.
		secret := filepath.Join(dir, "cluster-secret")
		if err := os.WriteFile(secret, testlog.Secret(), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Setenv("ZK2RAFT_CLUSTER_SECRET_FILE", secret)
		cmd := exec.Command("go", "build", "-o", zk2raftBin, "github.com/zk2raft/zk2raft/cmd/zk2raft")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building zk2raft: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func testLogger(t testing.TB) *slog.Logger { return testlog.New(t) }

func freeAddr(t testing.TB) string { return testlog.FreeAddr(t) }

// adminClient is a client of a test node's admin endpoint.
func adminClient(n *raftjournal.Node) *raftjournal.AdminClient {
	return raftjournal.NewAdminClient(n.AdminAddr(), raftjournal.Credentials{Secret: testlog.Secret()})
}

// nodeConfig is a journal node configuration with loopback timings.
func nodeConfig(t testing.TB, id, dir string, logger *slog.Logger) raftjournal.NodeConfig {
	t.Helper()
	c := raftjournal.DefaultNodeConfig()
	c.NodeID, c.DataDir, c.RaftAddr, c.AdminAddr = id, dir, freeAddr(t), "127.0.0.1:0"
	c.Secret = testlog.Secret()
	c.Logger = logger.With("node", id)
	testproc.LoopbackTimings(&c)
	c.JoinTimeout = 30 * time.Second
	c.ForwardTimeout = 20 * time.Second
	return c
}

// openNode opens a journal node and closes it in cleanup.
func openNode(t testing.TB, cfg raftjournal.NodeConfig) *raftjournal.Node {
	t.Helper()
	n, err := raftjournal.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitLeader(t testing.TB, n *raftjournal.Node) {
	t.Helper()
	waitFor(t, 30*time.Second, n.ID()+" to lead", func() error {
		if !n.IsLeader() {
			return fmt.Errorf("role %s", n.Status().Role)
		}
		return nil
	})
}

// cluster starts a bootstrapped node and size−1 joiners, with data dirs under
// the test's temp dir.
func cluster(t testing.TB, size int) []*raftjournal.Node {
	t.Helper()
	logger := testLogger(t)
	first := nodeConfig(t, "node-1", t.TempDir(), logger)
	first.Bootstrap = true
	nodes := []*raftjournal.Node{openNode(t, first)}
	waitLeader(t, nodes[0])
	for i := 2; i <= size; i++ {
		cfg := nodeConfig(t, fmt.Sprintf("node-%d", i), t.TempDir(), logger)
		cfg.Join = nodes[0].AdminAddr()
		nodes = append(nodes, openNode(t, cfg))
	}
	return nodes
}

// converged waits until every node applied as far as the first and all hold
// the same digest, and returns it.
func converged(t testing.TB, nodes []*raftjournal.Node) znode.Digest {
	t.Helper()
	var d znode.Digest
	waitFor(t, 60*time.Second, "the nodes to converge", func() error {
		d = nodes[0].Digest()
		idx := nodes[0].AppliedIndex()
		for _, n := range nodes[1:] {
			if n.AppliedIndex() < idx || n.Digest() != d {
				return fmt.Errorf("%s applied %d digest %v; %s applied %d digest %v", nodes[0].ID(), idx, d, n.ID(), n.AppliedIndex(), n.Digest())
			}
		}
		return nil
	})
	return d
}

// synthetic writes a Kafka-shaped export of about n nodes to path, parents
// before children, and returns its trailer. Topics have eight partitions,
// each with a state child holding 80-odd bytes of JSON.
func synthetic(t testing.TB, path string, n int, compress bool) znode.SnapshotTrailer {
	t.Helper()
	f, err := znode.CreateSnapshotFile(path, znode.SnapshotHeader{
		Source: "synthetic://kafka", Kind: znode.SnapshotKindExport, StartZxid: 1, Filters: znode.SnapshotFilters{Path: "/", Exclude: []string{"/zookeeper"}},
	}, znode.SnapshotWriterOptions{Compress: compress})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	const parts = 8
	topics := max((n-3)/(2+2*parts), 1)
	zxid := int64(0x100000000)
	next := func() int64 { zxid++; return zxid }
	acl := znode.WorldAnyone()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	node := func(p string, data []byte, cz int64, kids int32, pz int64) *znode.Node {
		if pz == 0 {
			pz = cz
		}
		return &znode.Node{Path: p, Data: data, ACL: acl, NumChildren: kids,
			Stat: znode.Stat{Czxid: cz, Mzxid: cz, Pzxid: pz, Ctime: now, Mtime: now, Cversion: kids}}
	}
	// Zxids are handed out in depth-first order, so a parent's pzxid (its
	// last child's czxid) is known only after its subtree; the layout is
	// regular, so it is computed up front.
	perTopic := int64(2 + 2*parts)
	brokers, topicsZ := next(), next()
	lastTopic := topicsZ + 1 + int64(topics-1)*perTopic
	write := func(zn *znode.Node) {
		if err := f.WriteNode(zn); err != nil {
			t.Fatal(err)
		}
	}
	root := node("/", []byte{}, 0, 1, brokers) // ZooKeeper's root: empty data, zero times, /zookeeper among its children
	root.Stat.Ctime, root.Stat.Mtime, root.NumChildren = 0, 0, 2
	write(root)
	write(node("/brokers", nil, brokers, 1, topicsZ))
	write(node("/brokers/topics", nil, topicsZ, int32(topics), lastTopic))
	for i := range topics {
		tz := next()
		pz := tz + 1
		lastPart := pz + 1 + int64(parts-1)*2
		tp := fmt.Sprintf("/brokers/topics/topic-%06d", i)
		write(node(tp, []byte(fmt.Sprintf(`{"version":3,"partitions":{"0":[1,2,3]},"topic_id":"%016x"}`, tz)), tz, 1, pz))
		next()
		write(node(tp+"/partitions", nil, pz, parts, lastPart))
		for p := range parts {
			ppz := next()
			sz := next()
			pp := fmt.Sprintf("%s/partitions/%d", tp, p)
			write(node(pp, nil, ppz, 1, sz))
			write(node(pp+"/state", []byte(fmt.Sprintf(`{"controller_epoch":7,"leader":%d,"version":1,"leader_epoch":%d,"isr":[1,2,3]}`, p%3+1, i%50)), sz, 0, 0))
		}
	}
	tr, err := f.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// dirState is a directory's listing with each file's size and content
// digest, to show that a failed import left it untouched.
func dirState(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.IsDir() {
			fmt.Fprintf(&b, "%s/\n", rel)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %x\n", rel, len(data), znode.NodeDigest("/x", data, znode.Stat{}))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() == 0 {
		return "(missing)"
	}
	return b.String()
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

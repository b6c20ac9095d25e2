package datadir_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zkload"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// ensembleOptions: three servers, extended types (TTL nodes), a container
// manager that runs every 200 ms (it deletes emptied containers and expired
// TTL nodes), a snapCount small enough that logs roll and snapshots are
// taken while writes run, and each server its own snapshot compression.
func ensembleOptions() zktest.Options {
	return zktest.Options{
		Servers:          3,
		ExtendedTypes:    true,
		SystemProperties: map[string]string{"znode.container.checkIntervalMs": "200"},
		ServerSystemProperties: map[int]map[string]string{
			2: {"zookeeper.snapshot.compression.method": "gz"},
			3: {"zookeeper.snapshot.compression.method": "snappy"},
		},
		Config: map[string]string{"snapCount": "600", "preAllocSize": "256"},
	}
}

var compressions = map[int]datadir.Compression{1: datadir.CompressionNone, 2: datadir.CompressionGzip, 3: datadir.CompressionSnappy}

func dataDir(ens *zktest.Ensemble, id int) string { return ens.Servers()[id-1].DataDir }

// hashLog returns a server's `hash` digest log.
func hashLog(t *testing.T, ens *zktest.Ensemble, id int) []zkclient.ZxidDigest {
	t.Helper()
	out, err := ens.FourLetterWord(t.Context(), id, "hash")
	if err != nil {
		t.Fatal(err)
	}
	log, err := zkclient.ParseDigestLog(out)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// checkAgainstHash loads every server's data directory at the newest zxid
// server id's `hash` log holds and checks the tree's digest against it.
func checkAgainstHash(t *testing.T, ens *zktest.Ensemble, id int) int64 {
	t.Helper()
	log := hashLog(t, ens, id)
	if len(log) == 0 {
		t.Fatalf("server %d's hash log is empty", id)
	}
	want := log[len(log)-1]
	for _, s := range ens.Servers() {
		st, err := datadir.Load(t.Context(), datadir.Options{DataDir: s.DataDir, ToZxid: want.Zxid})
		if err != nil {
			t.Fatalf("server %d at zxid %#x: %v", s.ID, want.Zxid, err)
		}
		if st.Zxid != want.Zxid || st.Tree.Digest() != want.Digest {
			t.Fatalf("server %d: loaded to %#x with digest %v; server %d's hash at %#x is %v", s.ID, st.Zxid, st.Tree.Digest(), id, want.Zxid, want.Digest)
		}
		if !st.Check.Exact {
			t.Errorf("server %d at %#x: check %+v is not exact", s.ID, want.Zxid, st.Check)
		}
		if c := st.Snapshot.File.Compression; c != compressions[s.ID] {
			t.Errorf("server %d: snapshot %s is %v, want %v", s.ID, st.Snapshot.File.Path, c, compressions[s.ID])
		}
	}
	return want.Zxid
}

// TestExportUnderLoad is issue 17's main check: adversarial and kafka trees
// seeded into a three-server ensemble while a write load runs (creates,
// multis, failed writes, ephemerals, containers and TTL nodes that ZooKeeper
// removes itself, sessions closing), snapshots taken and logs rolled
// meanwhile. Every server's data directory, read while it is written, gives
// the tree ZooKeeper's `hash` reports at the same zxid; the export equals a
// client-API export in every field a client sees, and carries the raw owners
// a client does not.
func TestExportUnderLoad(t *testing.T) {
	t.Parallel()
	ens := zktest.New(t, ensembleOptions())
	hosts := ens.Hosts()
	load, err := zkload.Start(hosts, zkload.Options{Root: "/load", Workers: 3, TTL: true})
	if err != nil {
		t.Fatal(err)
	}
	loadStopped := false
	defer func() {
		if !loadStopped {
			load.Stop()
		}
	}()

	var (
		wg    sync.WaitGroup
		trees = map[string]*treegen.Tree{}
		mu    sync.Mutex
		errs  []error
	)
	for _, o := range []treegen.Options{
		{Profile: "adversarial", Root: "/adv", Nodes: 2500, BigChildren: 400, DeepLevels: 40, Seed: 17},
		{Profile: "kafka", Root: "/kafka", Nodes: 3000, Seed: 17},
	} {
		wg.Go(func() {
			o.Logger = testlog.New(t)
			tree, err := treegen.Seed(t.Context(), hosts, o)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("seed %s: %w", o.Profile, err))
				return
			}
			t.Cleanup(func() { tree.Close() })
			trees[o.Profile] = tree
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	// While the load runs: each server's directory at the newest zxid in a
	// `hash` log, and each to its very end (the last record may be torn).
	checkAgainstHash(t, ens, 2)
	for _, s := range ens.Servers() {
		out := filepath.Join(t.TempDir(), "live.snap")
		sum, err := datadir.ExportFile(t.Context(), datadir.Options{DataDir: s.DataDir}, datadir.ExportOptions{}, datadir.FileOptions{Path: out})
		if err != nil {
			t.Fatalf("server %d, export while written: %v", s.ID, err)
		}
		t.Logf("server %d while written: %d nodes at %#x, %d txns replayed, %d re-applied, %d logs, check %s (exact %v), torn %v",
			s.ID, sum.Nodes, sum.Zxid, sum.Txns, sum.Reapplied, len(sum.Logs), sum.Check.Record, sum.Check.Exact, sum.Torn)
	}

	stats, err := load.Stop()
	loadStopped = true
	if err != nil {
		t.Fatalf("load: %v (%+v)", err, stats)
	}
	t.Logf("load: %+v", stats)
	if stats.Containers == 0 || stats.TTLNodes == 0 || stats.SessionsClosed == 0 || stats.Multis == 0 {
		t.Fatalf("the load did not write every kind of txn: %+v", stats)
	}
	// The container manager's deleteContainer txns must be in the logs too:
	// wait until every emptied container and expired TTL node is gone.
	waitEmpty(t, hosts, "/load/c")
	waitEmpty(t, hosts, "/load/ttl")
	end := waitSynced(t, ens)
	hashZxid := checkAgainstHash(t, ens, 1)
	t.Logf("ensemble quiet at %#x, hash checked at %#x", end, hashZxid)

	// Fuzzy snapshots and rolled logs: every server took snapshots whose
	// digest was logged after their own zxid (the tree changed while they
	// were written), and Load replays from each, through its fuzzy range, to
	// a zxid a TxnDigest proves.
	for _, s := range ens.Servers() {
		files, err := datadir.Scan(s.DataDir, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(files.Logs) < 3 {
			t.Errorf("server %d: %d logs, want the logs rolled", s.ID, len(files.Logs))
		}
		fuzzy := 0
		for i, sf := range files.Snapshots { // newest first
			tree := datadir.NewTree()
			info, err := tree.LoadSnapshot(sf, 0)
			if err != nil {
				t.Fatalf("server %d: %v", s.ID, err)
			}
			if info.Digest == nil || info.Digest.Zxid <= sf.Zxid {
				continue
			}
			// Past the fuzzy range, before the next snapshot (so that Load
			// starts from this one).
			to := min(info.Digest.Zxid+20, end)
			if i > 0 {
				to = min(to, files.Snapshots[i-1].Zxid-1)
			}
			if to < info.Digest.Zxid {
				continue
			}
			st, err := datadir.Load(t.Context(), datadir.Options{DataDir: s.DataDir, ToZxid: to})
			if err != nil {
				t.Fatalf("server %d from %s (fuzzy to %#x) to %#x: %v", s.ID, filepath.Base(sf.Path), info.Digest.Zxid, to, err)
			}
			if st.Snapshot.File.Path != sf.Path {
				continue
			}
			fuzzy++
			if st.FuzzyUntil < info.Digest.Zxid && st.Tree.Digest() != st.Check.Digest {
				t.Errorf("server %d: %+v", s.ID, st.Check)
			}
		}
		t.Logf("server %d: %d snapshots (%d fuzzy ones replayed through), %d logs", s.ID, len(files.Snapshots), fuzzy, len(files.Logs))
		if fuzzy == 0 {
			t.Errorf("server %d took no fuzzy snapshot under load", s.ID)
		}
	}

	// The quiet tree: the data directory's export against the client API's.
	var auth []zkclient.Auth
	for _, tree := range trees {
		auth = append(auth, zkclient.Auth{Scheme: tree.Credential.Scheme(), Cred: tree.Credential.Auth()})
	}
	dirFile := filepath.Join(t.TempDir(), "datadir.snap")
	sum, err := datadir.ExportFile(t.Context(), datadir.Options{DataDir: dataDir(ens, 3)}, datadir.ExportOptions{}, datadir.FileOptions{Path: dirFile})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Zxid != end {
		t.Fatalf("export at %#x, the ensemble is at %#x", sum.Zxid, end)
	}
	cfg := exporter.DefaultConfig(hosts)
	cfg.Auth, cfg.ExtendedTypes = auth, true
	w, err := exporter.NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	apiFile := filepath.Join(t.TempDir(), "api.snap")
	if _, err := exporter.ExportFile(t.Context(), w, exporter.FileOptions{Path: apiFile}); err != nil {
		t.Fatal(err)
	}
	dirSrc, err := verify.OpenSnapshot(dirFile)
	if err != nil {
		t.Fatal(err)
	}
	apiSrc, err := verify.OpenSnapshot(apiFile)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Compare(t.Context(), dirSrc, apiSrc, verify.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Equal() || rep.Compared < 5000 {
		var b strings.Builder
		_ = verify.WriteText(&b, rep)
		t.Fatalf("data-dir export vs client-API export (%d compared):\n%s", rep.Compared, b.String())
	}
	// The only differences allowed are the owners a client cannot see.
	for _, a := range rep.Allowed {
		if a.Field != verify.FieldEphemeralOwner {
			t.Errorf("allowed difference %+v is not an owner", a)
		}
	}
	t.Logf("compared %d nodes, %d owner differences allowed (containers and TTL nodes)", rep.Compared, rep.Counts.Allowed)

	// The raw owners, node by node, against the model of every tree.
	got := map[string]*znode.Node{}
	readAll(t, dirFile, func(n *znode.Node) { got[n.Path] = n })
	kinds := map[znode.EphemeralType]int{}
	for _, tree := range trees {
		for _, p := range tree.Paths() {
			e, _ := tree.Node(p)
			n := got[p]
			if n == nil {
				t.Fatalf("%s missing from the data-dir export", p)
			}
			if want := e.RawOwner(tree.SessionIDs); n.Stat.EphemeralOwner != want {
				t.Errorf("%s (%v): owner %#x, want %#x", p, e.Kind, n.Stat.EphemeralOwner, want)
			}
			kinds[e.Kind]++
		}
	}
	if kinds[znode.Container] == 0 || kinds[znode.TTL] == 0 || kinds[znode.Ephemeral] == 0 {
		t.Fatalf("the trees hold too few kinds of node: %v", kinds)
	}
	t.Logf("raw owners checked: %v", kinds)

	// verify reads the same directory live as datadir://, against zk://.
	src, err := verify.Open(t.Context(), "datadir://"+dataDir(ens, 1), verify.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	zkSrc, err := verify.Open(t.Context(), "zk://"+strings.Join(hosts, ","), verify.OpenOptions{Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	defer zkSrc.Close()
	rep, err = verify.Compare(t.Context(), src, zkSrc, verify.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Equal() {
		var b strings.Builder
		_ = verify.WriteText(&b, rep)
		t.Fatalf("datadir:// vs zk://:\n%s", b.String())
	}
}

func readAll(t *testing.T, path string, fn func(*znode.Node)) {
	t.Helper()
	r, err := znode.OpenSnapshotFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		n, err := r.NextNode()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(n)
	}
}

// waitEmpty waits until the node at path has no children: ZooKeeper's
// container manager has removed every emptied container or expired TTL node.
func waitEmpty(t *testing.T, hosts []string, path string) {
	t.Helper()
	c, ev, err := zk.Connect(hosts, 10*time.Second, zk.WithLogger(silentLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for c.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-time.After(30 * time.Second):
			t.Fatal("no ZooKeeper session")
		}
	}
	deadline := time.After(90 * time.Second)
	for {
		kids, _, ch, err := c.ChildrenW(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(kids) == 0 {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s still has %d children", path, len(kids))
		}
	}
}

// waitSynced waits until every server reports the same last zxid.
func waitSynced(t *testing.T, ens *zktest.Ensemble) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for {
		var zx []int64
		for _, s := range ens.Servers() {
			z, err := zkclient.ServerZxid(ctx, s.ClientAddr)
			if err != nil {
				t.Fatal(err)
			}
			zx = append(zx, z)
		}
		if zx[0] == zx[1] && zx[1] == zx[2] {
			return zx[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("servers never agreed on a zxid: %x", zx)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type silentLogger struct{}

func (silentLogger) Printf(string, ...any) {}

// TestExportAcrossElection: txns before and after the leader is killed and a
// new one elected. Every server's directory loads to its end, and so does a
// copy whose snapshots from the election on are removed, so that the replay
// crosses from one epoch to the next (the log sequence goes on at counter 1
// of the new epoch).
func TestExportAcrossElection(t *testing.T) {
	t.Parallel()
	ens := zktest.New(t, zktest.Options{Servers: 3, ExtendedTypes: true})
	hosts := ens.Hosts()
	load, err := zkload.Start(hosts, zkload.Options{Root: "/before", Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	waitZxid(t, ens, 0x100000000+300)
	if _, err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	leader, err := ens.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := ens.Kill(leader); err != nil {
		t.Fatal(err)
	}
	var alive []string
	for _, s := range ens.Servers() {
		if s.ID != leader {
			alive = append(alive, s.ClientAddr)
		}
	}
	if err := ens.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	load, err = zkload.Start(alive, zkload.Options{Root: "/after", Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	waitZxid(t, ens, 0x200000000+300)
	if _, err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ens.StartServer(t.Context(), leader); err != nil {
		t.Fatal(err)
	}
	end := waitSynced(t, ens)
	if end>>32 < 2 {
		t.Fatalf("no new epoch: %#x", end)
	}
	for _, s := range ens.Servers() {
		st, err := datadir.Load(t.Context(), datadir.Options{DataDir: s.DataDir})
		if err != nil {
			t.Fatalf("server %d: %v", s.ID, err)
		}
		if st.Zxid != end {
			t.Errorf("server %d loaded to %#x, the ensemble is at %#x", s.ID, st.Zxid, end)
		}
		// The same without the snapshots taken in the new epoch.
		dir := t.TempDir()
		v2 := filepath.Join(dir, "version-2")
		if err := os.MkdirAll(v2, 0o755); err != nil {
			t.Fatal(err)
		}
		files, err := datadir.Scan(s.DataDir, "")
		if err != nil {
			t.Fatal(err)
		}
		copied := 0
		for _, sf := range files.Snapshots {
			if sf.Zxid>>32 < end>>32 {
				copyTo(t, sf.Path, v2)
				copied++
			}
		}
		for _, lf := range files.Logs {
			copyTo(t, lf.Path, v2)
		}
		old, err := datadir.Load(t.Context(), datadir.Options{DataDir: dir})
		if err != nil {
			t.Fatalf("server %d, from %d snapshot(s) of the old epoch: %v", s.ID, copied, err)
		}
		if old.Zxid != end || old.Tree.Digest() != st.Tree.Digest() || old.Snapshot.File.Zxid>>32 >= end>>32 {
			t.Fatalf("server %d: from %s to %#x (%v); with every snapshot: %#x (%v)", s.ID, old.Snapshot.File.Path, old.Zxid, old.Tree.Digest(), st.Zxid, st.Tree.Digest())
		}
		t.Logf("server %d: %s → %#x directly; from %s across the epochs, %d txns", s.ID, filepath.Base(st.Snapshot.File.Path), st.Zxid, filepath.Base(old.Snapshot.File.Path), old.Txns)
	}
}

func copyTo(t *testing.T, file, dir string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(file)), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitZxid waits until some server has applied zxid.
func waitZxid(t *testing.T, ens *zktest.Ensemble, zxid int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, s := range ens.Servers() {
			if z, err := zkclient.ServerZxid(t.Context(), s.ClientAddr); err == nil && z >= zxid {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server reached zxid %#x", zxid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

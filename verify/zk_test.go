package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// ensemble is the single-server ensemble (extended types on) the tests share;
// each works under its own root. Tests that need the whole tree to themselves
// start their own.
var ensemble *zktest.Ensemble

func TestMain(m *testing.M) {
	zktest.Main(m, zktest.Options{Servers: 1, ExtendedTypes: true, MaxHeapMB: 1024}, &ensemble)
}

// seed writes a small tree of the profile under root and closes it (its
// ephemerals with it) when the test ends.
func seed(t testing.TB, profile, root string, nodes int) *treegen.Tree {
	t.Helper()
	opts := treegen.Options{Profile: profile, Nodes: nodes, Seed: 11, Root: root}
	if profile == treegen.ProfileAdversarial {
		opts.BigChildren, opts.DeepLevels = 300, 40
	}
	tree, err := treegen.Seed(t.Context(), ensemble.Hosts(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	seededMu.Lock()
	seededAuth = append(seededAuth, treeAuth(tree)...)
	seededMu.Unlock()
	return tree
}

// seededAuth are the credentials of every tree seeded so far: a walk of the
// whole shared ensemble needs them all.
var (
	seededMu   sync.Mutex
	seededAuth []zkclient.Auth
)

func treeAuth(tree *treegen.Tree) []zkclient.Auth {
	return []zkclient.Auth{{Scheme: tree.Credential.Scheme(), Cred: tree.Credential.Auth()}}
}

// export writes the subtree at root to a snapshot file with the parallel walker.
func export(t testing.TB, hosts []string, root string, auth []zkclient.Auth) string {
	t.Helper()
	cfg := exporter.DefaultConfig(hosts)
	cfg.Root, cfg.Auth = root, auth
	w, err := exporter.NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	path := filepath.Join(t.TempDir(), "export.snap")
	if _, err := exporter.ExportFile(t.Context(), w, exporter.FileOptions{Path: path}); err != nil {
		t.Fatal(err)
	}
	return path
}

func zkSource(t testing.TB, hosts []string, root string, auth []zkclient.Auth) *ZooKeeperSource {
	t.Helper()
	s, err := NewZooKeeperSource(ZKOptions{Hosts: hosts, Chroot: root, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func snapSource(t testing.TB, path string) *SnapshotSource {
	t.Helper()
	s, err := OpenSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCompare(t testing.TB, src, tgt Source, cfg Config) *Report {
	t.Helper()
	r, err := Compare(t.Context(), src, tgt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// requireEqual fails unless the report is equal, and checks that every format
// says so.
func requireEqual(t testing.TB, r *Report) {
	t.Helper()
	if !r.Equal() || r.Counts.Differences != 0 {
		var buf bytes.Buffer
		_ = WriteText(&buf, r)
		t.Fatalf("not equal:\n%s", buf.String())
	}
	for _, f := range []Format{FormatText, FormatJSON, FormatJUnit} {
		var buf bytes.Buffer
		if err := WriteReport(&buf, r, f); err != nil {
			t.Fatal(err)
		}
		ok := false
		switch f {
		case FormatText:
			ok = strings.HasPrefix(buf.String(), "EQUAL")
		case FormatJSON:
			ok = strings.Contains(buf.String(), `"verdict": "equal"`) && strings.Contains(buf.String(), `"differences": 0`)
		case FormatJUnit:
			ok = strings.Contains(buf.String(), `failures="0"`)
		}
		if !ok {
			t.Errorf("%v report does not say equal:\n%s", f, buf.String())
		}
	}
}

// TestProfilesIdentical seeds every treegen profile, exports it with the
// walker, and compares the live tree with the export and the export with a
// second export: no differences, in any format.
func TestProfilesIdentical(t *testing.T) {
	for _, profile := range treegen.Profiles() {
		t.Run(profile, func(t *testing.T) {
			root := "/profiles-" + profile
			tree := seed(t, profile, root, 1500)
			auth := treeAuth(tree)
			hosts := ensemble.Hosts()
			first := export(t, hosts, root, auth)
			second := export(t, hosts, root, auth)

			r := mustCompare(t, zkSource(t, hosts, root, auth), snapSource(t, first), testConfig())
			requireEqual(t, r)
			if r.Compared != int64(tree.Len()) || r.Scope.Path != root {
				t.Errorf("compared %d nodes under %s, the tree has %d", r.Compared, r.Scope.Path, tree.Len())
			}
			t.Logf("%s: %d nodes, %d converged in flight", profile, r.Compared, r.Counts.Converged)

			r = mustCompare(t, snapSource(t, first), snapSource(t, second), testConfig())
			requireEqual(t, r)
			if r.Source.Digest != r.Target.Digest {
				t.Errorf("digests %v %v", r.Source.Digest, r.Target.Digest)
			}

			// A copy with the raw owners ZooKeeper persisted (what the journal
			// holds): container and TTL nodes differ only in what the client
			// API cannot see, which the default allowance excuses.
			raw := rawOwnerCopy(t, first, tree)
			r = mustCompare(t, zkSource(t, hosts, root, auth), snapSource(t, raw), testConfig())
			requireEqual(t, r)
			hidden := int64(tree.Counts.Container + tree.Counts.TTL)
			if r.Counts.Allowed != hidden {
				t.Errorf("%d allowed differences, want %d (containers and TTL nodes)", r.Counts.Allowed, hidden)
			}
		})
	}
}

// rawOwnerCopy rewrites an export with the raw ephemeralOwner of every node,
// from the generator's model, as an FSM snapshot.
func rawOwnerCopy(t testing.TB, path string, tree *treegen.Tree) string {
	t.Helper()
	r, err := znode.OpenSnapshotFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := r.Header()
	h.Kind, h.Meta, h.ExtendedTypes = znode.SnapshotKindFSM, nil, true
	out := filepath.Join(t.TempDir(), "raw.snap")
	f, err := znode.CreateSnapshotFile(out, h, znode.SnapshotWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	for {
		n, err := r.NextNode()
		if err != nil {
			break
		}
		if e, ok := tree.Node(n.Path); ok {
			n.Stat.EphemeralOwner = e.RawOwner(tree.SessionIDs)
		}
		if err := f.WriteNode(n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInjectedAgainstLive compares a live tree with exports of it edited one
// way each: every difference is found and named, also after re-reading the
// live side.
func TestInjectedAgainstLive(t *testing.T) {
	root := "/injected"
	tree := seed(t, treegen.ProfileConfig, root, 400)
	hosts := ensemble.Hosts()
	base := export(t, hosts, root, treeAuth(tree))
	nodes := readSnapshot(t, base)
	leaf := ""
	for _, n := range nodes {
		if n.NumChildren == 0 && n.Data != nil && len(n.Data) > 0 {
			leaf = n.Path
			break
		}
	}
	for _, tc := range injections() {
		if tc.kind == KindMismatch && tc.field == FieldEphemeralOwner {
			continue // the live side shows client owners; TestProfilesIdentical covers owners
		}
		t.Run(tc.name, func(t *testing.T) {
			edited, path := injectInto(t, nodes, leaf, tc)
			target := filepath.Join(t.TempDir(), "target.snap")
			h := snapSource(t, base).Header()
			writeNodes(t, target, h, edited)
			r := mustCompare(t, zkSource(t, hosts, root, treeAuth(tree)), snapSource(t, target), testConfig())
			if r.Counts.Differences != 1 || len(r.Differences) != 1 {
				t.Fatalf("%d differences: %v", r.Counts.Differences, r.Differences)
			}
			d := r.Differences[0]
			if d.Path != path || d.Kind != tc.kind || d.Field != tc.field {
				t.Fatalf("difference %v, want %v %v at %s", d, tc.kind, tc.field, path)
			}
			if r.Counts.Converged != 0 {
				t.Errorf("%d converged in flight on a quiet tree", r.Counts.Converged)
			}
			// Re-read when the live side may catch up: a presence difference,
			// or the target ahead of the live node. Not when the versions are
			// equal (divergence) or the live node is the newer one.
			want := 0
			switch {
			case tc.kind != KindMismatch:
				want = DefaultRechecks
			case tc.field == FieldMzxid, tc.field == FieldPzxid, tc.field == FieldVersion, tc.field == FieldCversion, tc.field == FieldAversion:
				want = DefaultRechecks
			}
			if d.Rechecked != want {
				t.Errorf("re-read %d times, want %d", d.Rechecked, want)
			}
			if want > 0 {
				var buf bytes.Buffer
				_ = WriteText(&buf, r)
				if !strings.Contains(buf.String(), "still different after 5 re-reads") {
					t.Errorf("text report:\n%s", buf.String())
				}
			}
		})
	}
}

// injectInto applies an injection to a live export's nodes: node-level edits
// at leaf (the fixture's paths do not exist there), nil vs empty at a node
// whose data is one of them.
func injectInto(t testing.TB, nodes []*znode.Node, leaf string, tc injection) ([]*znode.Node, string) {
	t.Helper()
	out := make([]*znode.Node, 0, len(nodes)+1)
	for _, n := range nodes {
		out = append(out, n.Clone())
	}
	find := func(p string) *znode.Node {
		for _, n := range out {
			if n.Path == p {
				return n
			}
		}
		t.Fatalf("no %s", p)
		return nil
	}
	switch tc.kind {
	case KindMissing:
		for i, n := range out {
			if n.Path == leaf {
				return append(out[:i], out[i+1:]...), leaf
			}
		}
	case KindExtra:
		x := find(leaf).Clone()
		x.Path = leaf + "-injected"
		out = append(out, x)
		SortNodes(out)
		return out, x.Path
	}
	n := find(leaf)
	switch tc.field {
	case FieldData:
		n.Data = append(bytes.Clone(n.Data), '!')
	case FieldNilData:
		for _, e := range out {
			if len(e.Data) == 0 {
				if e.Data == nil {
					e.Data = []byte{}
				} else {
					e.Data = nil
				}
				return out, e.Path
			}
		}
		t.Fatal("no node with nil or empty data")
	case FieldACL:
		n.ACL = append(append([]znode.ACL(nil), n.ACL...), znode.ACL{Perms: znode.PermRead, ID: znode.ID{Scheme: "ip", ID: "10.1.2.3"}})
	case FieldCzxid:
		n.Stat.Czxid--
	case FieldMzxid:
		n.Stat.Mzxid++
	case FieldPzxid:
		n.Stat.Pzxid++
	case FieldCtime:
		n.Stat.Ctime--
	case FieldMtime:
		n.Stat.Mtime++
	case FieldVersion:
		n.Stat.Version += 3
	case FieldCversion:
		n.Stat.Cversion++
	case FieldAversion:
		n.Stat.Aversion++
	case FieldNumChildren:
		n.NumChildren++
	default:
		t.Fatalf("no live injection for %v", tc.field)
	}
	return out, leaf
}

func dial(t testing.TB) *zk.Conn {
	t.Helper()
	conn, err := exporter.Connect(t.Context(), ensemble.Hosts(), exporter.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

func readSnapshot(t testing.TB, path string) []*znode.Node {
	t.Helper()
	var out []*znode.Node
	err := snapSource(t, path).Walk(t.Context(), Scope{Root: "/"}, func(n *znode.Node) error {
		out = append(out, n)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeNodes(t testing.TB, path string, h znode.SnapshotHeader, nodes []*znode.Node) {
	t.Helper()
	f, err := znode.CreateSnapshotFile(path, h, znode.SnapshotWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	for _, n := range nodes {
		if err := f.WriteNode(n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Commit(); err != nil {
		t.Fatal(err)
	}
}

// mutator writes to the subtree at root until stopped: setData, creates and
// deletes of scratch children, setACL, from several goroutines.
type mutator struct {
	ops    atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
	mu     sync.Mutex
}

func startMutator(t testing.TB, conn *zk.Conn, paths []string, seed uint64) *mutator {
	ctx, cancel := context.WithCancel(context.Background())
	m := &mutator{cancel: cancel}
	for g := range 3 {
		rng := rand.New(rand.NewPCG(seed, uint64(g)))
		m.wg.Go(func() {
			for ctx.Err() == nil {
				p := paths[rng.IntN(len(paths))]
				var err error
				switch op := rng.IntN(10); {
				case op < 6:
					_, err = conn.Set(p, fmt.Appendf(nil, "mutated %d", rng.Int()), -1)
				case op < 8:
					_, err = conn.Create(p+"/scratch-"+fmt.Sprint(g), []byte("x"), 0, zk.WorldACL(zk.PermAll))
				case op < 9:
					err = conn.Delete(p+"/scratch-"+fmt.Sprint(g), -1)
				default:
					_, err = conn.SetACL(p, zk.WorldACL(zk.PermAll), -1)
				}
				if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNodeExists) &&
					!errors.Is(err, zk.ErrNotEmpty) && !errors.Is(err, zk.ErrConnectionClosed) && !errors.Is(err, zk.ErrNoAuth) {
					m.mu.Lock()
					m.err = fmt.Errorf("mutate %s: %w", p, err)
					m.mu.Unlock()
					return
				}
				m.ops.Add(1)
				time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
			}
		})
	}
	t.Cleanup(m.stop)
	return m
}

func (m *mutator) stop() {
	m.cancel()
	m.wg.Wait()
}

// TestLiveMutatorNoFalseDivergence compares a live tree with itself through
// two connections while it is being written: whatever the two walks see
// differently must converge on re-reading, never be reported.
func TestLiveMutatorNoFalseDivergence(t *testing.T) {
	root := "/mutated"
	tree := seed(t, treegen.ProfileKafka, root, 2000)
	conn := dial(t)
	var persistent []string
	for _, p := range tree.Paths() {
		if e, _ := tree.Node(p); e.Kind == znode.Persistent && !e.Protected {
			persistent = append(persistent, p)
		}
	}
	seedValue := uint64(time.Now().UnixNano())
	t.Logf("mutator seed %d", seedValue)
	m := startMutator(t, conn, persistent, seedValue)
	var converged int64
	for i := range 3 {
		src, err := NewZooKeeperSource(ZKOptions{Hosts: ensemble.Hosts(), Chroot: root, Workers: 8, Sessions: 1})
		if err != nil {
			t.Fatal(err)
		}
		tgt := zkSource(t, ensemble.Hosts(), root, nil)
		cfg := testConfig()
		cfg.RecheckInterval = 20 * time.Millisecond
		r := mustCompare(t, src, tgt, cfg)
		src.Close()
		requireEqual(t, r)
		converged += r.Counts.Converged
		t.Logf("run %d: %d nodes, %d converged in flight, %d re-checked, %d mutations so far", i, r.Compared, r.Counts.Converged, r.Counts.Rechecked, m.ops.Load())
	}
	m.stop()
	if m.err != nil {
		t.Fatal(m.err)
	}
	if m.ops.Load() < 100 {
		t.Errorf("only %d mutations during the comparisons", m.ops.Load())
	}
	if converged == 0 {
		t.Logf("no difference was in flight in three runs (the walks kept pace); the re-check path is covered by TestRecheckConverges")
	}
}

// hookedSource runs a hook before its first re-read.
type hookedSource struct {
	*ZooKeeperSource
	once sync.Once
	hook func()
}

func (h *hookedSource) Reread(ctx context.Context, path string) (*znode.Node, error) {
	h.once.Do(h.hook)
	return h.ZooKeeperSource.Reread(ctx, path)
}

// TestRecheckConverges puts a write in flight on purpose: the live source has
// a node the target snapshot does not, and the node goes away before the
// differences are re-read. The node converges; its parent's child registers
// (pzxid, cversion), which moved for good, are reported after the re-reads.
func TestRecheckConverges(t *testing.T) {
	root := "/recheck"
	tree := seed(t, treegen.ProfileConfig, root, 200)
	hosts := ensemble.Hosts()
	conn := dial(t)
	before := export(t, hosts, root, treeAuth(tree))
	scratch := root + "/in-flight"
	if _, err := conn.Create(scratch, []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	var hookErr error
	src := &hookedSource{ZooKeeperSource: zkSource(t, hosts, root, treeAuth(tree)),
		hook: func() { hookErr = conn.Delete(scratch, -1) }}
	r := mustCompare(t, src, snapSource(t, before), testConfig())
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if r.Counts.Converged != 1 || len(r.Converged) != 1 || r.Converged[0].Path != scratch || r.Converged[0].What[0].Kind != KindMissing {
		t.Fatalf("converged %+v (%d), differences %v", r.Converged, r.Counts.Converged, r.Differences)
	}
	// The parent, as the walk saw it, is newer than the snapshot's: a live
	// node cannot become older, so it is reported without re-reading.
	if r.Counts.Differences != 3 {
		t.Errorf("%d differences, want the parent's pzxid, cversion and numChildren", r.Counts.Differences)
	}
	for _, d := range r.Differences {
		if d.Path != root || (d.Field != FieldPzxid && d.Field != FieldCversion && d.Field != FieldNumChildren) || d.Rechecked != 0 {
			t.Errorf("unexpected difference %v (re-read %d times)", d, d.Rechecked)
		}
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "converged in flight: 1") || !strings.Contains(buf.String(), "the source is live and the other side static") {
		t.Errorf("text report:\n%s", buf.String())
	}

}

// TestDigestOnlyLive compares digests with the hash four-letter word on an
// ensemble of its own (the digest covers the whole tree).
func TestDigestOnlyLive(t *testing.T) {
	e := zktest.New(t, zktest.Options{Servers: 1})
	hosts := e.Hosts()
	conn, err := exporter.Connect(t.Context(), hosts, exporter.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 150 {
		if _, err := conn.Create(fmt.Sprintf("/n%03d", i), []byte(fmt.Sprint(i)), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	align(t, conn, "/align")
	cfg := testConfig()
	cfg.DigestOnly = true

	// zk vs zk: both digest logs, matched on their newest common zxid.
	r := mustCompare(t, zkSource(t, hosts, "", nil), zkSource(t, hosts, "", nil), cfg)
	if r.Mode != ModeDigest || !r.Equal() || r.Digest.Zxid == 0 || r.Digest.Zxid%128 != 0 {
		t.Fatalf("zk vs zk: mode %v, %+v", r.Mode, r.Digest)
	}

	// A journal-like side: static, with a digest history on ZooKeeper's
	// zxids, as the journal keeps it, stopped at the newest of them: matched
	// on that zxid, the latest of both sides.
	info, err := zkSource(t, hosts, "", nil).Digests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	history := slices.Clone(info.History)
	journalDigests := &DigestInfo{Method: "journal digest history", History: history, Zxid: history[len(history)-1].Zxid}
	journal := FuncSource(Info{URI: "journal://test", Scheme: "journal", RawOwners: true, ExtendedTypes: true, Nodes: -1},
		func(context.Context, Scope, func(*znode.Node) error) error { return errors.New("not walked") },
		journalDigests)
	r = mustCompare(t, zkSource(t, hosts, "", nil), journal, cfg)
	if r.Mode != ModeDigest || !r.Equal() || r.Digest.Zxid != history[len(history)-1].Zxid {
		t.Fatalf("zk vs journal: mode %v, %+v", r.Mode, r.Digest)
	}
	// A history that disagrees at the common zxid is a difference.
	history[len(history)-1].Digest++
	r = mustCompare(t, zkSource(t, hosts, "", nil), journal, cfg)
	if r.Mode != ModeDigest || r.Equal() {
		t.Fatalf("zk vs diverged journal: mode %v, %+v", r.Mode, r.Digest)
	}

	// zk vs an export: the walker's own sessions move the zxid past the
	// logged one, so the export's digest is at a zxid ZooKeeper did not log:
	// the comparison walks, and says why.
	snap := export(t, hosts, "/", nil)
	r = mustCompare(t, zkSource(t, hosts, "", nil), snapSource(t, snap), cfg)
	if r.Mode != ModeDigestWalk || !r.Equal() || !strings.Contains(r.Digest.Reason, "zxid") {
		t.Fatalf("zk vs snap: mode %v, %+v", r.Mode, r.Digest)
	}
	// Issue 11 item 2: a side stopped past an old common zxid. The journal
	// holds ZooKeeper's logged digest at Z but reached Z+6; ZooKeeper has
	// moved on by hundreds of writes. Equal digests at Z prove nothing about
	// either side now: the comparison must not stop there. It walks, and the
	// walk finds ZooKeeper's new nodes.
	old := info.History[len(info.History)-1]
	stale := MemorySource(Info{URI: "journal://stale", Scheme: "journal", RawOwners: true, ExtendedTypes: true},
		readSnapshot(t, snap), &DigestInfo{Method: "journal digest", Zxid: old.Zxid + 6, History: []ZxidDigest{old}})
	for i := range 200 {
		if _, err := conn.Create(fmt.Sprintf("/later%03d", i), nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	align(t, conn, "/align")
	r = mustCompare(t, zkSource(t, hosts, "", nil), stale, cfg)
	if r.Equal() || r.Mode != ModeDigestWalk || r.Counts.Differences < 200 {
		t.Fatalf("zk vs stale journal: verdict %v, mode %v, %d differences, digest %+v", r.Verdict, r.Mode, r.Counts.Differences, r.Digest)
	}
	// The same history as the journal's latest (stopped at Z) is still not
	// ZooKeeper's latest: not comparable in constant time either.
	journalDigests.Zxid = old.Zxid
	stale = MemorySource(Info{URI: "journal://stale", Scheme: "journal", RawOwners: true, ExtendedTypes: true},
		readSnapshot(t, snap), &DigestInfo{Method: "journal digest", Zxid: old.Zxid, History: []ZxidDigest{old}})
	r = mustCompare(t, zkSource(t, hosts, "", nil), stale, cfg)
	if r.Equal() || r.Mode != ModeDigestWalk {
		t.Fatalf("zk vs journal stopped at an old zxid: verdict %v, mode %v, digest %+v", r.Verdict, r.Mode, r.Digest)
	}

	// A narrower scope cannot use ZooKeeper's whole-tree digest: it walks.
	cfg.Path = "/n001"
	r = mustCompare(t, zkSource(t, hosts, "", nil), zkSource(t, hosts, "", nil), cfg)
	if r.Mode != ModeDigestWalk || !r.Equal() || r.Compared != 1 {
		t.Fatalf("scoped digest: mode %v, %+v", r.Mode, r.Digest)
	}
}

// align writes path until the ensemble's last zxid is a multiple of 128, the
// zxids ZooKeeper logs a digest for.
func align(t testing.TB, conn *zk.Conn, path string) {
	t.Helper()
	if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}
	for {
		st, err := conn.Set(path, []byte("align"), -1)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mzxid%128 == 0 {
			return
		}
	}
}

// TestUnreadableFails: a verifier cannot vouch for what it cannot read, so
// nodes the credentials cannot read fail the comparison instead of being
// compared as missing.
func TestUnreadableFails(t *testing.T) {
	conn := dial(t)
	root := "/unreadable"
	secret := []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: "ops:UY6ZNAHWNxq8GDS8hLhfUrW6FS0="}}
	if _, err := conn.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(root+"/secret", []byte("x"), 0, secret); err != nil {
		t.Fatal(err)
	}
	hosts := ensemble.Hosts()
	_, err := Compare(t.Context(), zkSource(t, hosts, root, nil), zkSource(t, hosts, root, nil), testConfig())
	if !errors.Is(err, exporter.ErrUnreadable) || !strings.Contains(err.Error(), "--auth") {
		t.Fatalf("error %v, want ErrUnreadable", err)
	}
}

package treegen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/znode"
)

// ensemble is the single-server ensemble (extended types on) shared by the
// tests of this package; each test works under its own root.
var ensemble *zktest.Ensemble

func TestMain(m *testing.M) {
	zktest.Main(m, zktest.Options{Servers: 1, ExtendedTypes: true}, &ensemble)
}

var rootCounter atomic.Int64

// uniqueRoot returns base with a suffix unique in this process, so tests
// sharing the ensemble (also under -count) never collide.
func uniqueRoot(base string) string { return fmt.Sprintf("%s-%d", base, rootCounter.Add(1)) }

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// connect opens a go-zookeeper session for checks, authenticated with cred
// unless it is the zero Credential. The receive limit is raised so the wide
// node's children (several MiB) can be listed.
func connect(t testing.TB, hosts []string, cred Credential) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect(hosts, 30*time.Second, zk.WithLogger(nopLogger{}), zk.WithLogInfo(false),
		zk.WithMaxBufferSize(64<<20), zk.WithEventCallback(func(zk.Event) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if cred != (Credential{}) {
		if err := c.AddAuth(cred.Scheme(), cred.Auth()); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func seed(t testing.TB, hosts []string, opts Options) *Tree {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	tree, err := Seed(t.Context(), hosts, opts)
	if err != nil {
		t.Fatalf("Seed(%s, root %s): %v", opts.Profile, opts.Root, err)
	}
	t.Cleanup(func() { tree.Close() })
	return tree
}

// verifyTree reads every expected node back and compares data (nil vs
// empty exact), ACL, versions, persisted cversion, child lists and the
// ephemeral owner; it also checks that czxids are distinct unless distinct
// is false (multi batches share a zxid).
func verifyTree(t *testing.T, hosts []string, tree *Tree, distinct bool) {
	t.Helper()
	c := connect(t, hosts, tree.Credential)
	// This session's server may lag behind the ones the generator wrote
	// through.
	if _, err := c.Sync(tree.Root); err != nil {
		t.Fatal(err)
	}
	children := map[string][]string{}
	for _, p := range tree.Paths() {
		parent := znode.Parent(p)
		children[parent] = append(children[parent], znode.Base(p))
	}
	var mu sync.Mutex
	var problems []string
	czxids := map[int64]string{}
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	var g errgroup.Group
	g.SetLimit(64)
	for _, path := range tree.Paths() {
		e, _ := tree.Node(path)
		g.Go(func() error {
			data, st, err := c.Get(path)
			if err != nil {
				report("get %s: %v", path, err)
				return nil
			}
			if !equalData(data, e.Data) {
				report("%s: data %s, want %s", path, describe(data), describe(e.Data))
			}
			if st.DataLength != int32(len(e.Data)) || st.Version != e.Version || st.Aversion != e.Aversion ||
				st.NumChildren != e.NumChildren || st.Cversion != 2*e.Cversion-e.NumChildren {
				report("%s: stat %+v, want version %d aversion %d cversion %d (persisted %d) children %d",
					path, *st, e.Version, e.Aversion, 2*e.Cversion-e.NumChildren, e.Cversion, e.NumChildren)
			}
			wantOwner := int64(0)
			if e.Kind == znode.Ephemeral {
				wantOwner = tree.SessionIDs[e.Session]
			}
			if st.EphemeralOwner != wantOwner {
				report("%s (%v): ephemeral owner %#x, want %#x", path, e.Kind, st.EphemeralOwner, wantOwner)
			}
			mu.Lock()
			if other, dup := czxids[st.Czxid]; dup && distinct {
				problems = append(problems, fmt.Sprintf("%s and %s share czxid %#x", path, other, st.Czxid))
			}
			czxids[st.Czxid] = path
			mu.Unlock()
			acl, _, err := c.GetACL(path)
			if err != nil {
				report("get acl %s: %v", path, err)
				return nil
			}
			if got := fromZKACL(acl); !znode.EqualACLs(got, e.ACL) {
				report("%s: ACL %v, want %v", path, got, e.ACL)
			}
			if e.NumChildren > 0 {
				got, _, err := c.Children(path)
				if err != nil {
					report("children %s: %v", path, err)
					return nil
				}
				slices.Sort(got)
				want := slices.Sorted(slices.Values(children[path]))
				if !slices.Equal(got, want) {
					report("%s: %d children, want %d", path, len(got), len(want))
				}
			}
			return nil
		})
	}
	g.Wait()
	slices.Sort(problems)
	for i, p := range problems {
		if i == 20 {
			t.Errorf("... and %d more", len(problems)-20)
			break
		}
		t.Error(p)
	}
}

// equalData compares data telling nil from empty.
func equalData(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func describe(b []byte) string {
	switch {
	case b == nil:
		return "nil"
	case len(b) > 40:
		return fmt.Sprintf("%d bytes %q...", len(b), b[:40])
	}
	return fmt.Sprintf("%q", b)
}

func fromZKACL(acl []zk.ACL) []znode.ACL {
	out := make([]znode.ACL, len(acl))
	for i, a := range acl {
		out[i] = znode.ACL{Perms: znode.Perm(a.Perms), ID: znode.ID{Scheme: a.Scheme, ID: a.ID}}
	}
	return out
}

// TestSeedProfiles seeds every profile at a small size into the shared
// ensemble and reads every node back.
func TestSeedProfiles(t *testing.T) {
	seedValue := testSeed(t)
	hosts := ensemble.Hosts()
	for _, profile := range Profiles() {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			opts := Options{
				Profile: profile, Nodes: 1500, Seed: seedValue, Root: uniqueRoot("/profiles/" + profile),
				BigChildren: 3000, Concurrency: 64, Conns: 4,
			}
			tree := seed(t, hosts, opts)
			t.Logf("%s: %d nodes, %d ops in %v (%.0f ops/s), counts %+v", profile, tree.Len(), len(tree.Plan.Ops),
				tree.WriteTime, tree.OpsPerSecond(), tree.Counts)
			if !tree.ExtendedTypes {
				t.Error("ensemble has extended types but the probe said no")
			}
			verifyTree(t, hosts, tree, true)
			if profile == ProfileAdversarial {
				checkAdversarialModel(t, tree.Model, opts, true)
				checkAdversarialLive(t, hosts, tree)
			}
			if err := tree.Err(); err != nil {
				t.Fatal(err)
			}
			// Closing the tree ends the sessions, and ZooKeeper drops the
			// ephemerals with them.
			tree.Close()
			if !errors.Is(tree.Err(), ErrClosed) {
				t.Errorf("Err after Close = %v", tree.Err())
			}
			c := connect(t, hosts, tree.Credential)
			for _, p := range tree.Paths() {
				if e, _ := tree.Node(p); e.Kind == znode.Ephemeral {
					if ok, _, err := c.Exists(p); err != nil || ok {
						t.Errorf("ephemeral %s after Close: exists=%v err=%v", p, ok, err)
					}
				}
			}
		})
	}
}

// checkAdversarialLive checks what ZooKeeper itself answers for the classes
// a plain read-back does not cover. It creates and deletes one sequential
// child (moving that parent's cversion), so it runs after verifyTree.
func checkAdversarialLive(t *testing.T, hosts []string, tree *Tree) {
	t.Helper()
	anon := connect(t, hosts, Credential{})
	authed := connect(t, hosts, tree.Credential)
	root := tree.Root
	at := func(rel string) string { return znode.Join(root, rel) }

	// Nil and empty data come back as written.
	if d, _, err := anon.Get(at("data/nil")); err != nil || d != nil {
		t.Errorf("data/nil: %#v, %v; want nil", d, err)
	}
	if d, _, err := anon.Get(at("data/empty")); err != nil || d == nil || len(d) != 0 {
		t.Errorf("data/empty: %#v, %v; want empty", d, err)
	}

	// The protected subtree: NoAuth without the credential, readable with it.
	for _, rel := range []string{"acl/secret", "acl/secret/db-password", "acl/auth-scheme", "acl/no-read-world"} {
		if _, _, err := anon.Get(at(rel)); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("anonymous get %s: %v, want ErrNoAuth", rel, err)
		}
		if _, _, err := authed.Get(at(rel)); err != nil {
			t.Errorf("authenticated get %s: %v", rel, err)
		}
	}
	for _, rel := range []string{"acl/secret", "acl/no-read-world"} {
		if _, _, err := anon.Children(at(rel)); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("anonymous children %s: %v, want ErrNoAuth", rel, err)
		}
	}
	// Reachable by name only: its parent cannot be listed.
	if _, _, err := anon.Get(at("acl/no-read-world/child")); err != nil {
		t.Errorf("anonymous get of a world-readable child: %v", err)
	}
	if _, _, err := anon.Get(at("acl/secret/nested/open-inside")); err != nil {
		t.Errorf("anonymous get of acl/secret/nested/open-inside: %v", err)
	}

	// Sequential counters: the next child is named after the persisted
	// cversion, past the gaps.
	seq, _ := tree.Node(at("sequential"))
	probe := at("sequential/seq-")
	got, err := authed.Create(probe, nil, zk.FlagSequence|zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if want := znode.SequentialName(probe, seq.Cversion); err != nil || got != want {
		t.Errorf("next sequential child %q, %v; want %q", got, err, want)
	}
	if err == nil {
		authed.Delete(got, -1)
	}

	// The wide node lists in one reply of several MiB.
	wide, _ := tree.Node(at("wide"))
	names, _, err := authed.Children(wide.Path)
	if err != nil || len(names) != int(wide.NumChildren) {
		t.Errorf("children of wide: %d, %v; want %d", len(names), err, wide.NumChildren)
	}
	// Large data reads back whole.
	for _, rel := range []string{"large/at-limit", "large/one-mib-minus-1k"} {
		e, _ := tree.Node(at(rel))
		d, _, err := authed.Get(e.Path)
		if err != nil || !bytes.Equal(d, e.Data) {
			t.Errorf("%s: %d bytes, %v; want %d", rel, len(d), err, len(e.Data))
		}
	}
}

// TestSeedWithoutExtendedTypes checks the TTL probe against an ensemble
// without zookeeper.extendedTypesEnabled: TTL nodes are left out of both
// the writes and the model, everything else is written.
func TestSeedWithoutExtendedTypes(t *testing.T) {
	e := zktest.New(t, zktest.Options{Servers: 1})
	// This ensemble is the test's own, so the tree can take the real root.
	opts := Options{Profile: ProfileAdversarial, Seed: testSeed(t), Root: "/", BigChildren: 200, DeepLevels: 50, Nodes: 1, Conns: 2, Concurrency: 32}
	tree := seed(t, e.Hosts(), opts)
	if tree.ExtendedTypes {
		t.Fatal("probe says extended types are on")
	}
	checkAdversarialModel(t, tree.Model, opts, false)
	verifyTree(t, e.Hosts(), tree, true)
	// The probe relies on ZooKeeper's answer; show it is the one expected.
	c := connect(t, e.Hosts(), Credential{})
	_, err := c.CreateTTL("/ttl/x", nil, zk.FlagTTL, zk.WorldACL(zk.PermAll), time.Hour)
	if !isUnimplemented(err) {
		t.Fatalf("TTL create without extended types: %v", err)
	}
}

func TestSeedRootExists(t *testing.T) {
	hosts := ensemble.Hosts()
	opts := Options{Profile: ProfileConfig, Nodes: 50, Seed: testSeed(t), Root: uniqueRoot("/exists") + "/a/b", Conns: 1}
	tree := seed(t, hosts, opts)
	if top := znode.Parent(znode.Parent(opts.Root)); !slices.Equal(tree.Scaffold, []string{top, top + "/a"}) {
		t.Errorf("scaffold %v", tree.Scaffold)
	}
	if _, err := Seed(t.Context(), hosts, opts); !errors.Is(err, ErrRootExists) {
		t.Fatalf("second Seed: %v, want ErrRootExists", err)
	}
	opts.Root = "/"
	if _, err := Seed(t.Context(), hosts, opts); !errors.Is(err, ErrRootExists) {
		t.Fatalf("Seed into a non-empty /: %v, want ErrRootExists", err)
	}
}

func TestSeedMultiBatch(t *testing.T) {
	hosts := ensemble.Hosts()
	opts := Options{Profile: ProfileConfig, Nodes: 1000, Seed: testSeed(t), Root: uniqueRoot("/multi"), MultiBatch: 50, Conns: 2, Concurrency: 16}
	tree := seed(t, hosts, opts)
	verifyTree(t, hosts, tree, false)
}

func TestSeedCancelled(t *testing.T) {
	p := mustPlan(t, Options{Profile: ProfileKafka, Nodes: 50_000, Seed: 1, Root: uniqueRoot("/cancelled"), Logger: testLogger(t)})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	tree, err := p.Apply(ctx, ensemble.Hosts())
	if err == nil {
		tree.Close()
		t.Fatal("Apply succeeded despite the deadline")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Apply took %v to give up", d)
	}
}

// TestSeedAdversarialFull seeds the adversarial profile at its default
// size (100k children, 500 levels) and reads it back. Run with
// -treegen.long.
func TestSeedAdversarialFull(t *testing.T) {
	if !*longFlag {
		t.Skip("full-size variant; run with -treegen.long")
	}
	hosts := ensemble.Hosts()
	opts := Options{Profile: ProfileAdversarial, Seed: testSeed(t), Root: uniqueRoot("/full")}
	tree := seed(t, hosts, opts)
	t.Logf("%d nodes, %d ops in %v (%.0f ops/s)", tree.Len(), len(tree.Plan.Ops), tree.WriteTime, tree.OpsPerSecond())
	if tree.Len() < 100_000 {
		t.Errorf("%d nodes, want 100k+", tree.Len())
	}
	checkAdversarialModel(t, tree.Model, opts, true)
	verifyTree(t, hosts, tree, true)
	checkAdversarialLive(t, hosts, tree)
}

// TestSeedThreeServers seeds through a three-server ensemble (large data is
// forwarded follower to leader, sessions spread over servers). Run with
// -treegen.long.
func TestSeedThreeServers(t *testing.T) {
	if !*longFlag {
		t.Skip("starts a three-server ensemble; run with -treegen.long")
	}
	e := zktest.New(t, zktest.Options{Servers: 3, ExtendedTypes: true})
	for _, profile := range Profiles() {
		t.Run(profile, func(t *testing.T) {
			opts := Options{Profile: profile, Nodes: 2000, Seed: testSeed(t), Root: "/three/" + profile, BigChildren: 2000}
			tree := seed(t, e.Hosts(), opts)
			verifyTree(t, e.Hosts(), tree, true)
			if profile == ProfileAdversarial {
				checkAdversarialLive(t, e.Hosts(), tree)
			}
		})
	}
}

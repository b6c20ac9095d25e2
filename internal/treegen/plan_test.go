package treegen

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/znode"
)

var (
	seedFlag = flag.Int64("treegen.seed", 0, "seed for randomized tests (0: time-based, logged)")
	longFlag = flag.Bool("treegen.long", false, "run the full-size variants (100k children, 100k nodes)")
)

// testSeed returns the seed for a randomized test and logs how to rerun it.
func testSeed(t testing.TB) int64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -treegen.seed=%d)", seed, seed)
	return seed
}

func mustPlan(t testing.TB, opts Options) *Plan {
	t.Helper()
	p, err := NewPlan(opts)
	if err != nil {
		t.Fatalf("NewPlan(%+v): %v", opts, err)
	}
	return p
}

func mustModel(t testing.TB, p *Plan, extendedTypes bool) *Model {
	t.Helper()
	m, err := p.Model(extendedTypes)
	if err != nil {
		t.Fatalf("Model(%v): %v", extendedTypes, err)
	}
	return m
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"zero profile", Options{}, false},
		{"unknown profile", Options{Profile: "zoo"}, false},
		{"minimal", Options{Profile: ProfileKafka}, true},
		{"root prefix", Options{Profile: ProfileConfig, Root: "/t1/x"}, true},
		{"root trailing slash", Options{Profile: ProfileConfig, Root: "/t1/"}, false},
		{"root relative", Options{Profile: ProfileConfig, Root: "t1"}, false},
		{"root system", Options{Profile: ProfileConfig, Root: "/zookeeper/x"}, false},
		{"negative nodes", Options{Profile: ProfileConfig, Nodes: -1}, false},
		{"negative concurrency", Options{Profile: ProfileConfig, Concurrency: -1}, false},
		{"too many conns", Options{Profile: ProfileConfig, Conns: 33}, false},
		{"negative timeout", Options{Profile: ProfileConfig, SessionTimeout: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("Validate() = %v, not ErrInvalidOptions", err)
			}
		})
	}
}

func smallOptions(profile string, seed int64) Options {
	return Options{Profile: profile, Nodes: 1500, Seed: seed, Root: "/t", BigChildren: 500, DeepLevels: 60}
}

func TestPlanDeterministic(t *testing.T) {
	seed := testSeed(t)
	for _, profile := range Profiles() {
		t.Run(profile, func(t *testing.T) {
			opts := smallOptions(profile, seed)
			a, b := mustPlan(t, opts), mustPlan(t, opts)
			if a.Fingerprint() != b.Fingerprint() {
				t.Fatal("two plans for the same options differ")
			}
			opts.Seed++
			if c := mustPlan(t, opts); c.Fingerprint() == a.Fingerprint() {
				t.Fatal("plans for seeds differing by one are identical")
			}
		})
	}
}

// TestPlanSize checks that profiles land near the node budget.
func TestPlanSize(t *testing.T) {
	seed := testSeed(t)
	for _, profile := range []string{ProfileKafka, ProfileRegistry, ProfileConfig} {
		for _, n := range []int{300, 3000, 20_000} {
			t.Run(fmt.Sprintf("%s/%d", profile, n), func(t *testing.T) {
				m := mustModel(t, mustPlan(t, Options{Profile: profile, Nodes: n, Seed: seed}), true)
				if got := m.Len(); got < n*95/100 || got > n*110/100+60 {
					t.Fatalf("%d nodes, want about %d", got, n)
				}
			})
		}
	}
}

// TestPlanInvariants checks, for every profile, what Apply relies on:
// predecessors come first, every path is valid for the server, nothing is
// created under an ephemeral, and each op's predecessor is its parent's
// create or an op on the same parent or node.
func TestPlanInvariants(t *testing.T) {
	seed := testSeed(t)
	for _, profile := range Profiles() {
		t.Run(profile, func(t *testing.T) {
			p := mustPlan(t, smallOptions(profile, seed))
			ephemeral := map[string]bool{}
			for i, op := range p.Ops {
				if op.After >= i {
					t.Fatalf("op %d %s %s: After %d", i, op.Type, op.Path, op.After)
				}
				if err := znode.ValidatePath(op.Path); err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
				if !strings.HasPrefix(op.Path, "/t/") && op.Path != "/t" {
					t.Fatalf("op %d: %s outside the root", i, op.Path)
				}
				if ephemeral[znode.Parent(op.Path)] && op.Type == OpCreate {
					t.Fatalf("op %d: %s under an ephemeral", i, op.Path)
				}
				if op.Type == OpCreate && op.Kind == znode.Ephemeral {
					ephemeral[op.Path] = true
					if op.Session >= p.Sessions {
						t.Fatalf("op %d: session %d of %d", i, op.Session, p.Sessions)
					}
				}
				if op.After >= 0 {
					prev := p.Ops[op.After].Path
					related := prev == znode.Parent(op.Path) || znode.Parent(prev) == znode.Parent(op.Path) ||
						prev == op.Path || znode.Parent(prev) == op.Path
					if !related {
						t.Fatalf("op %d %s %s follows unrelated op %d on %s", i, op.Type, op.Path, op.After, prev)
					}
				}
			}
		})
	}
}

// TestAdversarialClasses checks the plan of the adversarial profile at a
// reduced size still holds every tree-shaped input class.
func TestAdversarialClasses(t *testing.T) {
	seed := testSeed(t)
	opts := Options{Profile: ProfileAdversarial, Seed: seed, Root: "/adv", BigChildren: 1000, Nodes: 1}
	m := mustModel(t, mustPlan(t, opts), true)
	checkAdversarialModel(t, m, opts, true)
}

// checkAdversarialModel asserts each class is present with its defining
// property.
func checkAdversarialModel(t *testing.T, m *Model, opts Options, extendedTypes bool) {
	t.Helper()
	opts = opts.withDefaults()
	for _, c := range TreeClasses() {
		if len(m.WithClass(c)) == 0 {
			t.Errorf("class %d (%v) missing", c, c)
		}
	}
	node := func(rel string) *Expected {
		t.Helper()
		e, ok := m.Node(znode.Join(opts.Root, rel))
		if !ok {
			t.Fatalf("no node %s", rel)
		}
		return e
	}
	// 1: nil vs empty, kept apart, also after setData.
	if e := node("data/nil"); e.Data != nil {
		t.Errorf("data/nil has %q", e.Data)
	}
	for _, rel := range []string{"data/empty", "data/set-to-empty"} {
		if e := node(rel); e.Data == nil || len(e.Data) != 0 {
			t.Errorf("%s: data %#v, want empty", rel, e.Data)
		}
	}
	if e := node("data/set-to-nil"); e.Data != nil || e.Version != 1 {
		t.Errorf("data/set-to-nil: %#v version %d", e.Data, e.Version)
	}
	// 2: sizes.
	limit := node("large/at-limit")
	if want := LargestData(limit.Path, znode.WorldAnyone(), JuteMaxBuffer); len(limit.Data) != want {
		t.Errorf("at-limit: %d bytes, want %d", len(limit.Data), want)
	}
	if e := node("large/one-mib-minus-1k"); len(e.Data) != OneMiBMinus1KiB {
		t.Errorf("one-mib-minus-1k: %d bytes", len(e.Data))
	}
	// 3, 4.
	if e := node("wide"); int(e.NumChildren) != opts.BigChildren {
		t.Errorf("wide: %d children, want %d", e.NumChildren, opts.BigChildren)
	}
	if m.Counts.MaxDepth < opts.DeepLevels {
		t.Errorf("max depth %d, want %d", m.Counts.MaxDepth, opts.DeepLevels)
	}
	// 5: names outside ASCII, all accepted by the server's rules.
	nonASCII := 0
	for _, p := range m.WithClass(ClassUnicodeNames) {
		if err := znode.ValidatePath(p); err != nil {
			t.Error(err)
		}
		if strings.ContainsFunc(p, func(r rune) bool { return r > 0x7f }) {
			nonASCII++
		}
	}
	if nonASCII < 20 {
		t.Errorf("only %d unicode paths", nonASCII)
	}
	// 6.
	node("names/zookeeper/zookeeper/leaf")
	if opts.Root != "/" {
		node("zookeeper")
	}
	// 7: persisted cversion above the child count, gaps in the suffixes.
	seq := node("sequential")
	// Created: seq-0..4, plain, seq-6, seq-7, emptied, mixed-prefix (10);
	// deleted: seq-1, seq-3, seq-7.
	if seq.Cversion != 10 || seq.NumChildren != 7 {
		t.Errorf("sequential: persisted cversion %d, %d children; want 10, 7", seq.Cversion, seq.NumChildren)
	}
	for _, rel := range []string{"sequential/seq-0000000000", "sequential/seq-0000000002", "sequential/plain", "sequential/seq-0000000006"} {
		node(rel)
	}
	for _, rel := range []string{"sequential/seq-0000000001", "sequential/seq-0000000007"} {
		if _, ok := m.Node(znode.Join(opts.Root, rel)); ok {
			t.Errorf("%s should have been deleted", rel)
		}
	}
	if e := node("sequential/emptied"); e.Cversion != 3 || e.NumChildren != 0 {
		t.Errorf("emptied: cversion %d children %d", e.Cversion, e.NumChildren)
	}
	// 8, 9, 10.
	if m.Counts.Ephemeral == 0 || m.Counts.Container == 0 {
		t.Errorf("counts %+v", m.Counts)
	}
	if extendedTypes && m.Counts.TTL == 0 {
		t.Error("no TTL nodes")
	}
	if !extendedTypes && m.Counts.TTL != 0 {
		t.Errorf("%d TTL nodes without extended types", m.Counts.TTL)
	}
	if e := node("acl/secret"); !e.Protected {
		t.Error("acl/secret not protected")
	}
	if e := node("acl/secret/nested/open-inside"); !e.Protected {
		t.Error("a world-readable node below a protected one must count as protected")
	}
	if e := node("acl/auth-scheme"); len(e.ACL) != 1 || e.ACL[0].ID.Scheme != "digest" {
		t.Errorf("auth-scheme ACL %v", e.ACL)
	}
	if e := node("acl/duplicates"); len(e.ACL) != 2 {
		t.Errorf("duplicates ACL %v, want the duplicate dropped", e.ACL)
	}
	if e := node("acl/sealed"); e.Aversion != 1 {
		t.Errorf("sealed aversion %d", e.Aversion)
	}
	schemes := map[string]bool{}
	for _, p := range m.WithClass(ClassACL) {
		for _, a := range node(strings.TrimPrefix(strings.TrimPrefix(p, opts.Root), "/")).ACL {
			schemes[a.ID.Scheme] = true
		}
	}
	for _, s := range []string{"world", "ip", "digest"} {
		if !schemes[s] {
			t.Errorf("no %s ACL", s)
		}
	}
}

func TestPlanWithoutTTL(t *testing.T) {
	seed := testSeed(t)
	opts := Options{Profile: ProfileAdversarial, Seed: seed, Root: "/adv", BigChildren: 50, DeepLevels: 10, Nodes: 1}
	p := mustPlan(t, opts)
	m := mustModel(t, p, false)
	checkAdversarialModel(t, m, opts, false)
	full := mustModel(t, p, true)
	for _, path := range full.Paths() {
		e, _ := full.Node(path)
		_, kept := m.Node(path)
		under := strings.Contains(path, "/ttl/leaf") || strings.Contains(path, "/ttl/parent") ||
			strings.Contains(path, "/ttl/max-ttl") || strings.Contains(path, "/ttl/sequential/")
		if kept == under {
			t.Errorf("%s (%v): kept=%v", path, e.Kind, kept)
		}
	}
	if e, _ := m.Node("/adv/ttl/sequential"); e.Cversion != 0 {
		t.Errorf("ttl/sequential cversion %d without TTL children", e.Cversion)
	}
}

func TestLargestData(t *testing.T) {
	// Measured against ZooKeeper 3.8.0: 1,048,520 bytes fit, 1,048,525 not.
	if got := LargestData("/exp/big", znode.WorldAnyone(), JuteMaxBuffer); got != 1_048_520 {
		t.Fatalf("LargestData = %d, want 1048520", got)
	}
}

func TestStoredACL(t *testing.T) {
	cred := Credential{User: "u", Password: "p"}
	world := znode.ID{Scheme: "world", ID: "anyone"}
	got := storedACL([]znode.ACL{
		{Perms: znode.PermRead, ID: world},
		{Perms: znode.PermAll, ID: znode.ID{Scheme: "auth"}},
		{Perms: znode.PermRead, ID: world},
		{Perms: znode.PermAll, ID: cred.ID()},
	}, cred)
	want := []znode.ACL{{Perms: znode.PermRead, ID: world}, {Perms: znode.PermAll, ID: cred.ID()}}
	if !znode.EqualACLs(got, want) {
		t.Fatalf("storedACL = %v, want %v", got, want)
	}
	zkACL := zk.DigestACL(zk.PermAll, "u", "p")[0]
	if id := cred.ID(); id.Scheme != zkACL.Scheme || id.ID != zkACL.ID {
		t.Fatalf("Credential.ID = %v, go-zookeeper says %v", id, zkACL)
	}
}

// TestScheduler drives the scheduler with a random forest of ops and checks
// that every op starts only after its predecessor finished, exactly once.
func TestScheduler(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	for _, multi := range []int{0, 8} {
		t.Run(fmt.Sprintf("multi=%d", multi), func(t *testing.T) {
			ops := make([]Op, 5000)
			for i := range ops {
				ops[i] = Op{Type: OpCreate, Path: fmt.Sprintf("/n%d", i), After: -1}
				if i > 0 && rng.IntN(10) > 0 {
					ops[i].After = rng.IntN(i)
				}
				if rng.IntN(5) == 0 {
					ops[i].Type = OpSetData
				}
			}
			s := newScheduler(ops, multi)
			var mu sync.Mutex
			finished := make([]bool, len(ops))
			started := make([]int, len(ops))
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					var batch []int32
					for {
						batch = s.next(batch[:0])
						if batch == nil {
							return
						}
						mu.Lock()
						for _, i := range batch {
							if a := ops[i].After; a >= 0 && !finished[a] {
								t.Errorf("op %d started before op %d finished", i, a)
							}
							if len(batch) > 1 && !batchable(&ops[i]) {
								t.Errorf("op %d batched", i)
							}
							started[i]++
						}
						mu.Unlock()
						mu.Lock()
						for _, i := range batch {
							finished[i] = true
						}
						mu.Unlock()
						s.done(batch)
					}
				})
			}
			wg.Wait()
			if s.err != nil {
				t.Fatal(s.err)
			}
			for i, n := range started {
				if n != 1 {
					t.Fatalf("op %d ran %d times", i, n)
				}
			}
		})
	}
}

func TestSchedulerFail(t *testing.T) {
	ops := []Op{{Type: OpCreate, Path: "/a", After: -1}, {Type: OpCreate, Path: "/a/b", After: 0}}
	s := newScheduler(ops, 0)
	batch := s.next(nil)
	boom := errors.New("boom")
	done := make(chan []int32)
	go func() { done <- s.next(nil) }()
	s.fail(boom)
	if got := <-done; got != nil {
		t.Fatalf("next after fail = %v", got)
	}
	s.done(batch)
	if !errors.Is(s.err, boom) {
		t.Fatalf("err = %v", s.err)
	}
}

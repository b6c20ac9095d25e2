package verify

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/verify/verifytest"
	"github.com/zk2raft/zk2raft/znode"
)

// testConfig is DefaultConfig with re-checks fast enough for tests.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.RecheckInterval = 5 * time.Millisecond
	cfg.MaxRecheckInterval = 50 * time.Millisecond
	return cfg
}

func compareSnaps(t testing.TB, a, b string, cfg Config) *Report {
	t.Helper()
	src, err := OpenSnapshot(a)
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := OpenSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compare(t.Context(), src, tgt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Injection is one way of making a target differ from the fixture, and the
// single difference it must produce.
type injection struct {
	name   string
	path   string
	kind   Kind
	field  Field
	mutate func(t testing.TB, nodes []*znode.Node) []*znode.Node
}

func statInjection(name, path string, f Field, change func(n *znode.Node)) injection {
	return injection{name: name, path: path, kind: KindMismatch, field: f,
		mutate: func(t testing.TB, nodes []*znode.Node) []*znode.Node {
			change(verifytest.FindNode(t, nodes, path))
			return nodes
		}}
}

// injections covers every kind of difference and every compared field.
func injections() []injection {
	return []injection{
		{name: "missing node", path: "/app-1/x", kind: KindMissing,
			mutate: func(t testing.TB, nodes []*znode.Node) []*znode.Node {
				out := nodes[:0]
				for _, n := range nodes {
					if n.Path != "/app-1/x" {
						out = append(out, n)
					}
				}
				return out
			}},
		{name: "extra node", path: "/app-1/y", kind: KindExtra,
			mutate: func(t testing.TB, nodes []*znode.Node) []*znode.Node {
				x := verifytest.FindNode(t, nodes, "/app-1/x").Clone()
				x.Path = "/app-1/y"
				nodes = append(nodes, x)
				verifytest.SortNodes(nodes)
				return nodes
			}},
		statInjection("data", "/app", FieldData, func(n *znode.Node) { n.Data = bytes.Replace(n.Data, []byte("3"), []byte("4"), 1) }),
		statInjection("binary data", "/app/config/binary", FieldData, func(n *znode.Node) { n.Data = append(n.Data, 0) }),
		statInjection("nil data set", "/app/config/empty", FieldData, func(n *znode.Node) { n.Data = []byte("x") }),
		statInjection("nil vs empty", "/app/config/nil", FieldNilData, func(n *znode.Node) { n.Data = []byte{} }),
		statInjection("empty vs nil", "/app/config/empty", FieldNilData, func(n *znode.Node) { n.Data = nil }),
		statInjection("acl entry", "/secure", FieldACL, func(n *znode.Node) {
			n.ACL = []znode.ACL{{Perms: znode.PermRead, ID: n.ACL[0].ID}}
		}),
		statInjection("acl order", "/app", FieldACL, func(n *znode.Node) {
			n.ACL = []znode.ACL{{Perms: znode.PermRead, ID: znode.ID{Scheme: "ip", ID: "127.0.0.1"}}, n.ACL[0]}
		}),
		statInjection("czxid", "/queue", FieldCzxid, func(n *znode.Node) { n.Stat.Czxid++ }),
		statInjection("mzxid", "/app/config", FieldMzxid, func(n *znode.Node) { n.Stat.Mzxid-- }),
		statInjection("pzxid", "/queue", FieldPzxid, func(n *znode.Node) { n.Stat.Pzxid-- }),
		statInjection("ctime", "/app", FieldCtime, func(n *znode.Node) { n.Stat.Ctime += 1000 }),
		statInjection("mtime", "/app/config", FieldMtime, func(n *znode.Node) { n.Stat.Mtime -= 1 }),
		statInjection("version", "/app/config", FieldVersion, func(n *znode.Node) { n.Stat.Version = 1 }),
		statInjection("cversion", "/queue", FieldCversion, func(n *znode.Node) { n.Stat.Cversion = 4 }),
		statInjection("aversion", "/secure", FieldAversion, func(n *znode.Node) { n.Stat.Aversion = 0 }),
		statInjection("ephemeralOwner session", "/app/locks/lock-0000000000", FieldEphemeralOwner, func(n *znode.Node) { n.Stat.EphemeralOwner++ }),
		statInjection("ephemeralOwner ttl", "/app/leases", FieldEphemeralOwner, func(n *znode.Node) {
			n.Stat.EphemeralOwner, _ = znode.TTLOwner(7_200_000)
		}),
		statInjection("ephemeralOwner container to persistent", "/app/locks", FieldEphemeralOwner, func(n *znode.Node) { n.Stat.EphemeralOwner = 0 }),
		statInjection("numChildren", "/queue", FieldNumChildren, func(n *znode.Node) { n.NumChildren++ }),
	}
}

func TestInjectedDifferences(t *testing.T) {
	dir := t.TempDir()
	base := verifytest.WriteSnapshot(t, filepath.Join(dir, "base.snap"), verifytest.Header("fixture"), verifytest.Tree())
	seen := map[string]bool{}
	for _, tc := range injections() {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.kind.String() + "/" + tc.field.String()
			seen[key] = true
			nodes := tc.mutate(t, verifytest.CloneNodes(verifytest.Tree()))
			target := verifytest.WriteSnapshot(t, filepath.Join(t.TempDir(), "target.snap"), verifytest.Header("fixture"), nodes)
			r := compareSnaps(t, base, target, testConfig())
			if r.Verdict != VerdictDifferent || r.Counts.Differences != 1 || len(r.Differences) != 1 {
				t.Fatalf("verdict %v with %d differences %v, want exactly one", r.Verdict, r.Counts.Differences, r.Differences)
			}
			d := r.Differences[0]
			if d.Path != tc.path || d.Kind != tc.kind || d.Field != tc.field {
				t.Fatalf("difference %v at %s, want %v %v at %s", d.Kind, d.Path, tc.kind, tc.field, tc.path)
			}
			if r.Counts.ByKind(tc.kind) != 1 || (tc.kind == KindMismatch && r.Counts.Fields[tc.field] != 1) {
				t.Errorf("counts %+v", r.Counts)
			}
			if d.SourceText() == d.TargetText() {
				t.Errorf("both values render as %q", d.SourceText())
			}
			// Swapping the sides swaps missing and extra and the values.
			rev := compareSnaps(t, target, base, testConfig())
			if rev.Counts.Differences != 1 || rev.Differences[0].Path != tc.path {
				t.Fatalf("reversed: %v", rev.Differences)
			}
			want := tc.kind
			switch tc.kind {
			case KindMissing:
				want = KindExtra
			case KindExtra:
				want = KindMissing
			}
			if rev.Differences[0].Kind != want || rev.Differences[0].SourceText() != d.TargetText() {
				t.Errorf("reversed difference %v", rev.Differences[0])
			}
		})
	}
	// Every kind and every field is exercised.
	for _, k := range []Kind{KindMissing, KindExtra} {
		if !seen[k.String()+"/"] {
			t.Errorf("no injection of %v", k)
		}
	}
	for _, f := range Fields() {
		if f == FieldACLMasked {
			continue // arises only with a live side: TestMaskedACL
		}
		if !seen[KindMismatch.String()+"/"+f.String()] {
			t.Errorf("no injection of field %v", f)
		}
	}
}

func TestIdenticalSnapshots(t *testing.T) {
	dir := t.TempDir()
	a := verifytest.WriteSnapshot(t, filepath.Join(dir, "a.snap"), verifytest.Header("a"), verifytest.Tree())
	b := verifytest.WriteSnapshot(t, filepath.Join(dir, "b.snap"), verifytest.Header("b"), verifytest.Tree())
	r := compareSnaps(t, a, b, testConfig())
	if !r.Equal() || r.Counts.Differences != 0 || r.Compared != int64(len(verifytest.Tree())) {
		t.Fatalf("verdict %v, %d differences, %d compared", r.Verdict, r.Counts.Differences, r.Compared)
	}
	if r.Source.Digest != r.Target.Digest || r.Source.Nodes != r.Target.Nodes {
		t.Errorf("sides %+v %+v", r.Source, r.Target)
	}
	// Top-level subtrees: the root and each child of it.
	var got []string
	for _, s := range r.Subtrees {
		got = append(got, s.Path)
	}
	if want := "/ /app /app-1 /app.d /queue /secure /unicode"; strings.Join(got, " ") != want {
		t.Errorf("subtrees %q, want %q", got, want)
	}
	for _, f := range []Format{FormatText, FormatJSON, FormatJUnit} {
		var buf bytes.Buffer
		if err := WriteReport(&buf, r, f); err != nil {
			t.Fatal(err)
		}
		if f == FormatText && !strings.HasPrefix(buf.String(), "EQUAL") {
			t.Errorf("text report starts %q", firstLine(buf.String()))
		}
		if f == FormatJUnit && !strings.Contains(buf.String(), `failures="0"`) {
			t.Errorf("junit report has failures:\n%s", buf.String())
		}
		if f == FormatJSON && !strings.Contains(buf.String(), `"verdict": "equal"`) {
			t.Errorf("json report:\n%s", buf.String())
		}
	}
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

// listSource streams nodes in the order given, without sorting.
func listSource(uri string, nodes []*znode.Node) Source {
	return FuncSource(Info{URI: uri, RawOwners: true, ExtendedTypes: true}, func(ctx context.Context, scope Scope, fn func(*znode.Node) error) error {
		for _, n := range nodes {
			if err := fn(n); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

func TestUnsortedStream(t *testing.T) {
	tree := verifytest.Tree()
	// Plain string order puts /app-1 before /app/config: not canonical.
	lexical := verifytest.CloneNodes(tree)
	slicesSortLexical(lexical)
	dup := append(verifytest.CloneNodes(tree[:3]), tree[2].Clone())
	tests := []struct {
		name       string
		side       string
		nodes      []*znode.Node
		prev, path string
	}{
		{"string order", "target", lexical, "/app.d/readme", "/app/config"},
		{"duplicate", "source", dup, tree[2].Path, tree[2].Path},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			good := MemorySource(Info{URI: "memory://good"}, tree, nil)
			bad := listSource("memory://bad", tc.nodes)
			src, tgt := good, bad
			if tc.side == "source" {
				src, tgt = bad, good
			}
			_, err := Compare(t.Context(), src, tgt, testConfig())
			var ue *UnsortedError
			if !errors.Is(err, ErrUnsorted) || !errors.As(err, &ue) {
				t.Fatalf("error %v, want ErrUnsorted", err)
			}
			if ue.Side != tc.side || ue.Path != tc.path || ue.URI != "memory://bad" {
				t.Errorf("error %+v", ue)
			}
			if ue.Prev != tc.prev {
				t.Errorf("previous path %q, want %q", ue.Prev, tc.prev)
			}
			t.Log(err)
		})
	}
}

func TestMalformedPath(t *testing.T) {
	for _, p := range []string{"", "a/b", "/a/", "/a//b"} {
		bad := listSource("memory://bad", []*znode.Node{{Path: "/"}, {Path: p}})
		_, err := Compare(t.Context(), MemorySource(Info{URI: "good"}, nil, nil), bad, testConfig())
		if err == nil || !strings.Contains(err.Error(), "malformed path") {
			t.Errorf("path %q: error %v", p, err)
		}
	}
}

// TestEmptyScope: a path on neither side is an error, not equality (issue
// 11 item 4; TestNothingComparedIsNotEqual has the live cases).
func TestEmptyScope(t *testing.T) {
	cfg := testConfig()
	cfg.Path = "/does/not/exist"
	r, err := Compare(t.Context(), MemorySource(Info{URI: "a"}, verifytest.Tree(), nil), MemorySource(Info{URI: "b"}, verifytest.Tree(), nil), cfg)
	if !errors.Is(err, ErrNothingCompared) || !strings.Contains(err.Error(), "neither side") {
		t.Fatalf("report %+v, error %v", r, err)
	}
}

func slicesSortLexical(nodes []*znode.Node) {
	for i := 1; i < len(nodes); i++ {
		for j := i; j > 0 && nodes[j].Path < nodes[j-1].Path; j-- {
			nodes[j], nodes[j-1] = nodes[j-1], nodes[j]
		}
	}
}

func TestUnsortedSnapshotFile(t *testing.T) {
	dir := t.TempDir()
	good := verifytest.WriteSnapshot(t, filepath.Join(dir, "good.snap"), verifytest.Header("good"), verifytest.Tree())
	lexical := verifytest.CloneNodes(verifytest.Tree())
	slicesSortLexical(lexical)
	bad := verifytest.WriteSnapshot(t, filepath.Join(dir, "bad.snap"), verifytest.Header("bad"), lexical)
	src, _ := OpenSnapshot(good)
	tgt, _ := OpenSnapshot(bad)
	_, err := Compare(t.Context(), src, tgt, testConfig())
	if !errors.Is(err, ErrUnsorted) || !strings.Contains(err.Error(), "snap://"+bad) {
		t.Fatalf("error %v", err)
	}
}

func TestScopeAndExclusions(t *testing.T) {
	tree := verifytest.Tree()
	changed := verifytest.CloneNodes(tree)
	verifytest.FindNode(t, changed, "/app/config").Data = []byte("other")
	verifytest.FindNode(t, changed, "/queue").Stat.Pzxid++
	tests := []struct {
		name     string
		path     string
		exclude  []string
		diffs    int64
		compared int64
	}{
		{"everything", "", nil, 2, int64(len(tree))},
		{"path", "/queue", nil, 1, 5},
		{"path without differences", "/unicode", nil, 0, 4},
		{"exclude subtree", "", []string{"/app"}, 1, int64(len(tree)) - 8},
		{"exclude glob", "", []string{"/app/c*", "/q*"}, 0, int64(len(tree)) - 4 - 5},
		{"exclude inside path", "/app", []string{"/app/config"}, 0, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Path, cfg.Exclude = tc.path, tc.exclude
			r, err := Compare(t.Context(), MemorySource(Info{URI: "a"}, tree, nil), MemorySource(Info{URI: "b"}, changed, nil), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Counts.Differences != tc.diffs || r.Compared != tc.compared {
				t.Errorf("%d differences in %d nodes, want %d in %d", r.Counts.Differences, r.Compared, tc.diffs, tc.compared)
			}
		})
	}
}

func TestFilterAncestors(t *testing.T) {
	f := newFilter(Scope{Root: "/", Exclude: []string{"/zookeeper", "/a/b"}})
	for _, tc := range []struct {
		path string
		keep bool
	}{
		{"/", true}, {"/a", true}, {"/a/b", false}, {"/a/b/c", false}, {"/a/ba", true},
		{"/a/c/d", true},             // /a/c never streamed
		{"/x/y/z", true},             // gap of two
		{"/zookeeper/quota", false},  // its excluded parent never streamed
		{"/zookeeper2", true},        // a sibling with the same prefix
		{"/a/b/c/d", false},          // out of order still right
		{"/b", true},                 //
		{"/zookeeper/config", false}, //
	} {
		if got := f.keep(tc.path); got != tc.keep {
			t.Errorf("keep(%s) = %v, want %v", tc.path, got, tc.keep)
		}
	}
	sub := newFilter(Scope{Root: "/a", Exclude: []string{"/a/*/tmp"}})
	for _, tc := range []struct {
		path string
		keep bool
	}{{"/", false}, {"/a", true}, {"/ab", false}, {"/a/x/tmp/y", false}, {"/a/x/tmpz", true}} {
		if got := sub.keep(tc.path); got != tc.keep {
			t.Errorf("sub keep(%s) = %v, want %v", tc.path, got, tc.keep)
		}
	}
}

func TestResolveScope(t *testing.T) {
	tests := []struct {
		name      string
		src, tgt  string
		path      string
		wantRoot  string
		wantError bool
	}{
		{"both whole", "/", "/", "", "/", false},
		{"chroot narrows", "/kafka", "/", "", "/kafka", false},
		{"deeper chroot wins", "/kafka", "/kafka/brokers", "", "/kafka/brokers", false},
		{"disjoint", "/a", "/b", "", "", true},
		{"path inside", "/kafka", "/", "/kafka/topics", "/kafka/topics", false},
		{"path outside a side", "/kafka", "/", "/other", "", true},
		{"path above a side", "/kafka", "/", "/", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Path = tc.path
			_, err := newComparison(MemorySource(Info{Root: tc.src}, nil, nil), MemorySource(Info{Root: tc.tgt}, nil, nil), cfg.withDefaults())
			if tc.wantError {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("error %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, _ := newComparison(MemorySource(Info{Root: tc.src}, nil, nil), MemorySource(Info{Root: tc.tgt}, nil, nil), cfg.withDefaults())
			if c.scope.Root != tc.wantRoot {
				t.Errorf("root %s, want %s", c.scope.Root, tc.wantRoot)
			}
			if hasZK := len(c.scope.Exclude) > 0 && c.scope.Exclude[0] == "/zookeeper"; hasZK != (tc.wantRoot == "/") {
				t.Errorf("exclusions %v", c.scope.Exclude)
			}
		})
	}
}

func TestClientOwnerAllowance(t *testing.T) {
	raw := verifytest.Tree()
	// What a client-API walk shows: container and TTL owners as 0.
	client := verifytest.CloneNodes(raw)
	for _, n := range client {
		n.Stat.EphemeralOwner = znode.ClientEphemeralOwner(n.Stat.EphemeralOwner, true)
	}
	rawInfo := Info{URI: "raw", RawOwners: true, ExtendedTypes: true}
	clientInfo := Info{URI: "client"}

	r, err := Compare(t.Context(), MemorySource(rawInfo, raw, nil), MemorySource(clientInfo, client, nil), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Equal() || r.Counts.Allowed != 2 || len(r.Counts.AllowedBy) != 1 || r.Counts.AllowedBy[0].Rule != RuleClientOwner {
		t.Fatalf("verdict %v, allowed %d by %+v", r.Verdict, r.Counts.Allowed, r.Counts.AllowedBy)
	}

	// Without the default allowances they are differences.
	cfg := testConfig()
	cfg.NoDefaultAllow = true
	r, _ = Compare(t.Context(), MemorySource(rawInfo, raw, nil), MemorySource(clientInfo, client, nil), cfg)
	if r.Counts.Differences != 2 || r.Counts.Fields[FieldEphemeralOwner] != 2 {
		t.Fatalf("without defaults: %+v", r.Counts)
	}

	// A session id the client sees differently is never excused.
	bad := verifytest.CloneNodes(client)
	verifytest.FindNode(t, bad, "/app/locks/lock-0000000000").Stat.EphemeralOwner = 0
	r, _ = Compare(t.Context(), MemorySource(rawInfo, raw, nil), MemorySource(clientInfo, bad, nil), testConfig())
	if r.Counts.Differences != 1 || r.Differences[0].Field != FieldEphemeralOwner {
		t.Fatalf("session owner: %+v", r.Differences)
	}
	// Two raw sides disagreeing on a TTL are different.
	ttl := verifytest.CloneNodes(raw)
	verifytest.FindNode(t, ttl, "/app/leases").Stat.EphemeralOwner = 0
	r, _ = Compare(t.Context(), MemorySource(rawInfo, raw, nil), MemorySource(rawInfo, ttl, nil), testConfig())
	if r.Counts.Differences != 1 {
		t.Fatalf("raw vs raw: %+v", r.Differences)
	}
}

func TestEphemeralsSkippedAllowance(t *testing.T) {
	full := verifytest.Tree()
	var skipped []*znode.Node
	for _, n := range full {
		if n.Kind() != znode.Ephemeral {
			skipped = append(skipped, n)
		}
	}
	r, err := Compare(t.Context(), MemorySource(Info{URI: "zk", RawOwners: true}, full, nil),
		MemorySource(Info{URI: "export", RawOwners: true, SkipsEphemerals: true}, skipped, nil), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Equal() || r.Counts.Allowed != 1 || r.Allowed[0].Rule != RuleEphemeralsSkipped {
		t.Fatalf("verdict %v, allowed %+v", r.Verdict, r.Allowed)
	}
	// A missing persistent node is still a difference.
	fewer := skipped[:len(skipped)-1]
	r, _ = Compare(t.Context(), MemorySource(Info{URI: "zk", RawOwners: true}, full, nil),
		MemorySource(Info{URI: "export", RawOwners: true, SkipsEphemerals: true}, fewer, nil), testConfig())
	if r.Counts.Differences != 1 || r.Counts.Missing != 1 {
		t.Fatalf("counts %+v", r.Counts)
	}
}

func TestAllowList(t *testing.T) {
	rules, err := ParseAllowList(strings.NewReader(`
# benign after cutover
/app/locks/**   ephemeralOwner,mzxid   # sessions are re-established
"/unicode/caf*" data
/queue          missing,extra
`), "allow.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 3 || rules[0].Reason != "sessions are re-established" || rules[1].Pattern != "/unicode/caf*" || rules[2].Origin != "allow.txt:5" {
		t.Fatalf("rules %+v", rules)
	}
	for _, tc := range []struct {
		pattern, path string
		match         bool
	}{
		{"/a/**", "/a", true}, {"/a/**", "/a/b/c", true}, {"/a/**", "/ab", false},
		{"/**/lock-*", "/x/y/lock-1", true}, {"/**", "/", true}, {"/*", "/", false},
		{"/a/*/c", "/a/b/c", true}, {"/a/*/c", "/a/b/d/c", false},
	} {
		if got := matchPattern(tc.pattern, tc.path); got != tc.match {
			t.Errorf("match(%s, %s) = %v", tc.pattern, tc.path, got)
		}
	}
	tree := verifytest.Tree()
	changed := verifytest.CloneNodes(tree)
	verifytest.FindNode(t, changed, "/app/locks/lock-0000000000").Stat.EphemeralOwner = 42
	verifytest.FindNode(t, changed, "/unicode/café").Data = []byte("x")
	verifytest.FindNode(t, changed, "/app").Data = []byte("not allowed")
	cfg := testConfig()
	cfg.Allow = rules
	r, err := Compare(t.Context(), MemorySource(Info{URI: "a"}, tree, nil), MemorySource(Info{URI: "b"}, changed, nil), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.Differences != 1 || r.Differences[0].Path != "/app" || r.Counts.Allowed != 2 {
		t.Fatalf("differences %v, allowed %d", r.Differences, r.Counts.Allowed)
	}
	for _, bad := range []string{"app data", "/app bogus", "/app", `"/app data`, "/[ data"} {
		if _, err := ParseAllowList(strings.NewReader(bad), "f"); err == nil {
			t.Errorf("rule %q parsed", bad)
		}
	}
	if r, err := ParseAllowFlag("/a=b/c=data,acl"); err != nil || r.Pattern != "/a=b/c" || len(r.What) != 2 {
		t.Errorf("flag rule %+v, %v", r, err)
	}
}

func TestMaxDiffs(t *testing.T) {
	tree := verifytest.Tree()
	changed := verifytest.CloneNodes(tree)
	for _, n := range changed {
		n.Stat.Mtime++
	}
	cfg := testConfig()
	cfg.MaxDiffs, cfg.MaxSubtreeDiffs = 3, 1
	r, err := Compare(t.Context(), MemorySource(Info{URI: "a"}, tree, nil), MemorySource(Info{URI: "b"}, changed, nil), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.Differences != int64(len(tree)) || len(r.Differences) != 3 || r.Differences[0].Path != "/" {
		t.Fatalf("%d differences, listed %v", r.Counts.Differences, r.Differences)
	}
	for _, s := range r.Subtrees {
		if len(s.First) != 1 || s.Differences != s.Nodes {
			t.Errorf("subtree %s: %d listed, %d/%d", s.Path, len(s.First), s.Differences, s.Nodes)
		}
	}
}

func TestDigestOnlySnapshots(t *testing.T) {
	dir := t.TempDir()
	tree := verifytest.Tree()
	a := verifytest.WriteSnapshot(t, filepath.Join(dir, "a.snap"), verifytest.Header("a"), tree)
	b := verifytest.WriteSnapshot(t, filepath.Join(dir, "b.snap"), verifytest.Header("b"), tree)
	changed := verifytest.CloneNodes(tree)
	verifytest.FindNode(t, changed, "/app").Stat.Version = 7
	c := verifytest.WriteSnapshot(t, filepath.Join(dir, "c.snap"), verifytest.Header("c"), changed)

	// An FSM-style snapshot holds /zookeeper and its children, which an export
	// leaves out.
	fsm := verifytest.CloneNodes(tree)
	fsm = append(fsm,
		&znode.Node{Path: "/zookeeper", Data: []byte{}, ACL: znode.WorldAnyone(), NumChildren: 2},
		&znode.Node{Path: "/zookeeper/config", Data: []byte{}, ACL: znode.WorldAnyone()},
		&znode.Node{Path: "/zookeeper/quota", Data: []byte{}, ACL: znode.WorldAnyone()})
	verifytest.SortNodes(fsm)
	h := verifytest.Header("journal")
	h.Kind, h.Filters = znode.SnapshotKindFSM, znode.SnapshotFilters{}
	f := verifytest.WriteSnapshot(t, filepath.Join(dir, "fsm.snap"), h, fsm)

	cfg := testConfig()
	cfg.DigestOnly = true
	r := compareSnaps(t, a, b, cfg)
	if !r.Equal() || r.Mode != ModeDigest || r.Digest.Method != "constant-time" || r.Compared != 0 {
		t.Fatalf("equal: %+v", r)
	}
	r = compareSnaps(t, a, c, cfg)
	if r.Equal() || r.Mode != ModeDigest {
		t.Fatalf("different: %+v", r.Digest)
	}
	r = compareSnaps(t, a, f, cfg)
	if !r.Equal() || r.Mode != ModeDigest || !r.Digest.Source.Adjusted {
		t.Fatalf("export vs fsm: %+v %v", r.Digest, r.Notes)
	}
	// The full comparison agrees (the /zookeeper subtree is out of scope).
	if r := compareSnaps(t, a, f, testConfig()); !r.Equal() {
		t.Fatalf("full export vs fsm: %v", r.Differences)
	}
	// A narrower scope than the digests cover falls back to a walk.
	cfg.Path = "/app"
	r = compareSnaps(t, a, c, cfg)
	if r.Mode != ModeDigestWalk || r.Digest.Reason == "" || r.Counts.Differences != 1 {
		t.Fatalf("fallback: mode %v, digest %+v, %d differences", r.Mode, r.Digest, r.Counts.Differences)
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "walked because") {
		t.Errorf("text report does not say why it walked:\n%s", buf.String())
	}
}

func TestPristineSystemDigest(t *testing.T) {
	// zookeeper-internals §3.4: the empty tree's vector.
	if PristineSystemDigest != 1303661912 {
		t.Fatalf("pristine /zookeeper digest %d, want 1303661912", PristineSystemDigest)
	}
}

func TestOpenURIs(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		err  error
		root string
	}{
		{"zk://127.0.0.1:2181", nil, "/"},
		{"zk://127.0.0.1:2181,127.0.0.1:2182/kafka", nil, "/kafka"},
		{"zk://127.0.0.1:2181/", nil, "/"},
		{"zk://127.0.0.1:2181/bad/", ErrInvalidURI, ""},
		{"zk://", ErrInvalidURI, ""},
		{"zk://localhost/x", ErrInvalidURI, ""},
		{"snap://", ErrInvalidURI, ""},
		{"snap:///nonexistent/file.snap", znode.ErrCorruptSnapshot, ""},
		{"journal:///var/lib/zk2raft", ErrUnsupported, ""},
		{"http://x", ErrInvalidURI, ""},
		{"/just/a/path", ErrInvalidURI, ""},
	} {
		s, err := Open(t.Context(), tc.uri, OpenOptions{})
		switch {
		case tc.err == nil && err != nil:
			t.Errorf("%s: %v", tc.uri, err)
		case tc.err == znode.ErrCorruptSnapshot:
			if err == nil {
				t.Errorf("%s opened", tc.uri)
			}
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("%s: error %v, want %v", tc.uri, err, tc.err)
		case tc.err == nil && s.Info().Root != tc.root:
			t.Errorf("%s: root %s", tc.uri, s.Info().Root)
		}
	}
}

func TestFormatValues(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{FormatData(nil), "nil"},
		{FormatData([]byte{}), "empty (0 bytes)"},
		{FormatData([]byte("hi")), `"hi" (2 bytes)`},
		{FormatData([]byte{0, 0xff}), "0x00ff (2 bytes)"},
		{FormatData([]byte("配置")), `"配置" (6 bytes)`},
		{FormatData(bytes.Repeat([]byte("ab"), 40)), `"` + strings.Repeat("ab", 32) + `"… (80 bytes)`},
		{FormatOwner(0), "0 (persistent)"},
		{FormatOwner(znode.ContainerOwner), "0x8000000000000000 (container)"},
		{FormatOwner(-0xffffffffc91180), "0xff0000000036ee80 (ttl 3600000 ms)"},
		{FormatOwner(0x1000000a0b0001), "0x1000000a0b0001 (session)"},
		{FormatTime(verifytest.FixtureTime), "1795770000000 (2026-11-27T09:00:00.000Z)"},
		{FormatZxid(0x10000002c), "0x10000002c"},
		{FormatACL(znode.WorldAnyone()), "[world:anyone:cdrwa]"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

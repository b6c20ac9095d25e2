package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// rootFor is the path a test works under in the shared ensemble, new on every
// run (so -count works).
func rootFor(t testing.TB) string {
	return fmt.Sprintf("/%s-%d", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), time.Now().UnixNano())
}

func mustCreate(t testing.TB, c *zk.Conn, path string, data []byte, flags int32, acl []zk.ACL) string {
	t.Helper()
	if acl == nil {
		acl = zk.WorldACL(zk.PermAll)
	}
	p, err := c.Create(path, data, flags, acl)
	if err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	return p
}

// buildMixedTree creates, under root, one of each shape the client API can tell
// apart: nil, empty and binary data, sequential children with gaps, an
// ephemeral, a container and a TTL node, a child named zookeeper, Unicode
// names, a digest-protected subtree, a deep chain and a wide node.
func buildMixedTree(t testing.TB, c *zk.Conn, root string) {
	t.Helper()
	mustCreate(t, c, root, nil, 0, nil)
	mustCreate(t, c, root+"/nil", nil, 0, nil)
	mustCreate(t, c, root+"/empty", []byte{}, 0, nil)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	mustCreate(t, c, root+"/binary", all, 0, nil)
	mustCreate(t, c, root+"/zookeeper", []byte("ordinary data"), 0, nil)
	mustCreate(t, c, root+"/zookeeper/config", []byte("not ZooKeeper's"), 0, nil)
	seq := mustCreate(t, c, root+"/seq", []byte("queue"), 0, nil)
	for i := range 7 {
		p := mustCreate(t, c, seq+"/item-", []byte{byte(i)}, zk.FlagSequence, nil)
		if i%2 == 0 {
			if err := c.Delete(p, -1); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustCreate(t, c, root+"/ephemeral", []byte("mine"), zk.FlagEphemeral, nil)
	if _, err := c.CreateContainer(root+"/container", []byte("c"), zk.FlagContainer, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, c, root+"/container/keep", nil, 0, nil) // a container without children may be reaped
	if _, err := c.CreateTTL(root+"/ttl", []byte("t"), zk.FlagTTL, zk.WorldACL(zk.PermAll), time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"配置", "مرحبا", "cafe\u0301", "a-b", "a.b", "a b", "a"} {
		mustCreate(t, c, root+"/"+name, []byte(name), 0, nil)
	}
	mustCreate(t, c, root+"/a/under-a", nil, 0, nil)
	secret := zk.DigestACL(zk.PermAll, "reader", "s3cret")
	mustCreate(t, c, root+"/secret", []byte("hidden"), 0, secret)
	mustCreate(t, c, root+"/secret/deeper", []byte("hidden too"), 0, secret)
	mixed := append(zk.DigestACL(zk.PermRead|zk.PermAdmin, "reader", "s3cret"), zk.ACL{Perms: zk.PermRead | zk.PermWrite, Scheme: "world", ID: "anyone"})
	mustCreate(t, c, root+"/two-acl-entries", nil, 0, mixed)
	if _, err := c.SetACL(root+"/two-acl-entries", mixed, 0); err != nil { // aversion 1
		t.Fatal(err)
	}
	if _, err := c.Set(root+"/binary", all[:10], -1); err != nil { // version 1
		t.Fatal(err)
	}
	deep := root + "/deep"
	mustCreate(t, c, deep, nil, 0, nil)
	for i := range 60 {
		deep += fmt.Sprintf("/%d", i)
		mustCreate(t, c, deep, []byte{byte(i)}, 0, nil)
	}
	mustCreate(t, c, root+"/wide", nil, 0, nil)
	for i := range 700 {
		mustCreate(t, c, fmt.Sprintf("%s/wide/child-%04d", root, i), nil, 0, nil)
	}
}

// diffNodes reports the first differences between two node lists.
func diffNodes(t testing.TB, got, want []*znode.Node) {
	t.Helper()
	problems := 0
	for i := range max(len(got), len(want)) {
		var g, w *znode.Node
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != nil && w != nil && g.Equal(w) {
			continue
		}
		t.Errorf("node %d:\n got  %s\n want %s", i, describeNode(g), describeNode(w))
		if problems++; problems == 5 {
			t.Fatalf("... (got %d nodes, want %d)", len(got), len(want))
		}
	}
}

func describeNode(n *znode.Node) string {
	if n == nil {
		return "<none>"
	}
	data := "nil"
	if n.Data != nil {
		data = fmt.Sprintf("%d bytes", len(n.Data))
	}
	return fmt.Sprintf("%s data=%s acl=%v stat=%+v children=%d", n.Path, data, n.ACL, n.Stat, n.NumChildren)
}

// TestWalkMatchesClientAPI exports a tree holding every shape the client API
// can tell apart into a snapshot file and checks it against SequentialWalk node
// by node and field by field, in the same order, and a few fields against what
// was written.
func TestWalkMatchesClientAPI(t *testing.T) {
	t.Parallel()
	root := rootFor(t)
	c := dialZK(t, ensemble.Hosts(), "reader:s3cret")
	buildMixedTree(t, c, root)

	cfg := DefaultConfig(ensemble.Hosts())
	cfg.Root = root
	cfg.Auth = []zkclient.Auth{{Scheme: "digest", Cred: []byte("reader:s3cret")}}
	cfg.Workers = 16
	w, err := NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	path := filepath.Join(t.TempDir(), "x.snap")
	sum, err := ExportFile(t.Context(), w, FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	got, hdr, tr := readSnapshot(t, path)
	want := sequential(t, c, root)
	diffNodes(t, got, want)

	if hdr.StartZxid != sum.StartZxid || hdr.Filters.Path != root || hdr.Kind != znode.SnapshotKindExport {
		t.Errorf("header %+v, summary start %#x", hdr, sum.StartZxid)
	}
	if tr.MaxZxid < sum.StartZxid || tr.MaxZxid != sum.MaxZxid || tr.Digest != sum.Digest || int64(tr.NodeCount) != sum.Nodes {
		t.Errorf("trailer %+v, summary %+v", tr, sum)
	}
	if sum.Changed != 0 || sum.Deleted != 0 || sum.Unreadable != 0 || sum.Ephemerals != 1 {
		t.Errorf("summary of a quiet tree: %+v", sum)
	}
	byPath := map[string]*znode.Node{}
	for _, n := range got {
		byPath[n.Path] = n
	}
	checks := []struct {
		path  string
		check func(n *znode.Node) error
	}{
		{"/nil", func(n *znode.Node) error { return expect(n.Data == nil, "data %v, want nil", n.Data) }},
		{"/empty", func(n *znode.Node) error {
			return expect(n.Data != nil && len(n.Data) == 0, "data %v, want empty", n.Data)
		}},
		{"/seq", func(n *znode.Node) error {
			return expect(n.Stat.Cversion == 7 && n.NumChildren == 3, "persisted cversion %d with %d children, want 7 and 3", n.Stat.Cversion, n.NumChildren)
		}},
		{"/ephemeral", func(n *znode.Node) error {
			return expect(n.Stat.EphemeralOwner == c.SessionID(), "owner %#x, want %#x", n.Stat.EphemeralOwner, c.SessionID())
		}},
		{"/container", func(n *znode.Node) error {
			return expect(n.Stat.EphemeralOwner == 0, "owner %#x", n.Stat.EphemeralOwner)
		}},
		{"/ttl", func(n *znode.Node) error {
			return expect(n.Stat.EphemeralOwner == 0, "owner %#x", n.Stat.EphemeralOwner)
		}},
		{"/zookeeper/config", func(*znode.Node) error { return nil }},
		{"/secret/deeper", func(*znode.Node) error { return nil }},
		{"/two-acl-entries", func(n *znode.Node) error {
			return expect(len(n.ACL) == 2 && n.Stat.Aversion == 1, "acl %v aversion %d", n.ACL, n.Stat.Aversion)
		}},
		{"/binary", func(n *znode.Node) error {
			return expect(n.Stat.Version == 1 && len(n.Data) == 10, "version %d", n.Stat.Version)
		}},
	}
	for _, ck := range checks {
		n, ok := byPath[root+ck.path]
		if !ok {
			t.Errorf("%s missing from the export", ck.path)
			continue
		}
		if err := ck.check(n); err != nil {
			t.Errorf("%s: %v", ck.path, err)
		}
	}
}

func expect(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

// readSnapshot reads a whole snapshot file, verifying it.
func readSnapshot(t testing.TB, path string) ([]*znode.Node, znode.SnapshotHeader, znode.SnapshotTrailer) {
	t.Helper()
	r, err := znode.OpenSnapshotFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var nodes []*znode.Node
	for {
		n, err := r.NextNode()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	return nodes, r.Header(), r.Trailer()
}

// TestProfilesRoundTrip seeds the adversarial and kafka profiles and checks every
// node of the export against the generator's model (data, ACL, versions,
// persisted cversion, child count, ephemeral owner) and against the client API
// (every stat field).
func TestProfilesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, profile := range []string{treegen.ProfileAdversarial, treegen.ProfileKafka} {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			seed := time.Now().UnixNano()
			t.Logf("seed %d", seed)
			tree, err := treegen.Seed(t.Context(), ensemble.Hosts(), treegen.Options{
				Profile: profile, Nodes: 2000, Seed: seed, Root: rootFor(t),
				BigChildren: 3000, DeepLevels: 200, Concurrency: 64, Conns: 4,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer tree.Close()
			cred := string(tree.Credential.Auth())
			cfg := DefaultConfig(ensemble.Hosts())
			cfg.Root = tree.Root
			cfg.Auth = []zkclient.Auth{{Scheme: tree.Credential.Scheme(), Cred: tree.Credential.Auth()}}
			cfg.ExtendedTypes = true
			w, err := NewWalker(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			path := filepath.Join(t.TempDir(), "x.snap")
			sum, err := ExportFile(t.Context(), w, FileOptions{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			got, hdr, _ := readSnapshot(t, path)
			if !hdr.ExtendedTypes {
				t.Error("header lost extended_types")
			}
			if int(sum.Nodes) != tree.Len() {
				t.Errorf("exported %d nodes, the model has %d", sum.Nodes, tree.Len())
			}
			for _, n := range got {
				e, ok := tree.Node(n.Path)
				if !ok {
					t.Errorf("%s exported but not in the model", n.Path)
					continue
				}
				owner := int64(0)
				if e.Kind == znode.Ephemeral {
					owner = tree.SessionIDs[e.Session]
				}
				switch {
				case (n.Data == nil) != (e.Data == nil) || string(n.Data) != string(e.Data):
					t.Errorf("%s: data %d bytes (nil %v), want %d (nil %v)", n.Path, len(n.Data), n.Data == nil, len(e.Data), e.Data == nil)
				case !znode.EqualACLs(n.ACL, e.ACL):
					t.Errorf("%s: ACL %v, want %v", n.Path, n.ACL, e.ACL)
				case n.Stat.Version != e.Version || n.Stat.Aversion != e.Aversion || n.Stat.Cversion != e.Cversion || n.NumChildren != e.NumChildren:
					t.Errorf("%s: version %d aversion %d cversion %d children %d, want %d %d %d %d", n.Path,
						n.Stat.Version, n.Stat.Aversion, n.Stat.Cversion, n.NumChildren, e.Version, e.Aversion, e.Cversion, e.NumChildren)
				case n.Stat.EphemeralOwner != owner:
					t.Errorf("%s (%v): owner %#x, want %#x", n.Path, e.Kind, n.Stat.EphemeralOwner, owner)
				}
			}
			c := dialZK(t, ensemble.Hosts(), cred)
			diffNodes(t, got, sequential(t, c, tree.Root))
			t.Logf("%s: %d nodes in %v (%.0f nodes/s), %d requests, %d evictions", profile, sum.Nodes,
				sum.Duration.Round(time.Millisecond), sum.NodesPerSecond(), sum.Requests, sum.Evicted)
		})
	}
}

// TestFilters covers --path, --exclude, /zookeeper only at the root, and
// --ephemerals skip.
func TestFilters(t *testing.T) {
	t.Parallel()
	root := rootFor(t)
	c := dialZK(t, ensemble.Hosts())
	mustCreate(t, c, root, nil, 0, nil)
	for _, p := range []string{"/keep", "/keep/tmp", "/keep/x", "/drop", "/drop/x", "/other", "/other/tmp", "/other/tmp/y", "/zookeeper"} {
		mustCreate(t, c, root+p, nil, 0, nil)
	}
	mustCreate(t, c, root+"/keep/eph", nil, zk.FlagEphemeral, nil)

	paths := func(nodes []*znode.Node) []string {
		var out []string
		for _, n := range nodes {
			out = append(out, strings.TrimPrefix(n.Path, root))
		}
		return out
	}
	tests := []struct {
		name     string
		exclude  []string
		policy   EphemeralPolicy
		want     []string
		excluded int64
		skipped  int64
	}{
		{"everything", nil, EphemeralsInclude,
			[]string{"", "/drop", "/drop/x", "/keep", "/keep/eph", "/keep/tmp", "/keep/x", "/other", "/other/tmp", "/other/tmp/y", "/zookeeper"}, 0, 0},
		{"globs", []string{root + "/drop", root + "/*/tmp"}, EphemeralsInclude,
			[]string{"", "/keep", "/keep/eph", "/keep/x", "/other", "/zookeeper"}, 3, 0},
		{"skip ephemerals", nil, EphemeralsSkip,
			[]string{"", "/drop", "/drop/x", "/keep", "/keep/tmp", "/keep/x", "/other", "/other/tmp", "/other/tmp/y", "/zookeeper"}, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig(ensemble.Hosts())
			cfg.Root, cfg.Exclude, cfg.Ephemerals = root, tc.exclude, tc.policy
			got, sum, err := collect(t, t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(paths(got), tc.want) {
				t.Errorf("exported %q, want %q", paths(got), tc.want)
			}
			if sum.Excluded != tc.excluded || sum.EphemeralsSkipped != tc.skipped {
				t.Errorf("excluded %d skipped %d, want %d %d", sum.Excluded, sum.EphemeralsSkipped, tc.excluded, tc.skipped)
			}
		})
	}

	t.Run("root leaves out /zookeeper only", func(t *testing.T) {
		cfg := DefaultConfig(ensemble.Hosts())
		cfg.Exclude = []string{"/*"} // everything but the root itself
		got, sum, err := collect(t, t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Path != "/" {
			t.Fatalf("exported %v", paths(got))
		}
		cfg.Exclude = nil
		cfg.Workers = 8
		all, _, err := collect(t, t.Context(), cfg)
		if err != nil && !errors.Is(err, ErrUnreadable) {
			t.Fatal(err)
		}
		seen := false
		for _, n := range all {
			if znode.IsSystemPath(n.Path) {
				t.Fatalf("%s exported", n.Path)
			}
			seen = seen || n.Path == root+"/zookeeper"
		}
		if !seen {
			t.Errorf("%s/zookeeper was left out", root)
		}
		if sum.Excluded < 1 {
			t.Errorf("excluded %d", sum.Excluded)
		}
	})

	t.Run("path inside /zookeeper is read", func(t *testing.T) {
		cfg := DefaultConfig(ensemble.Hosts())
		cfg.Root = "/zookeeper"
		got, _, err := collect(t, t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < 2 || got[0].Path != "/zookeeper" {
			t.Errorf("exported %v", paths(got))
		}
	})

	t.Run("missing root", func(t *testing.T) {
		cfg := DefaultConfig(ensemble.Hosts())
		cfg.Root = root + "/nope"
		_, _, err := collect(t, t.Context(), cfg)
		if !errors.Is(err, ErrNoRoot) {
			t.Errorf("err = %v, want ErrNoRoot", err)
		}
	})
}

// TestUnreadable covers wrong credentials on a protected subtree: the export
// fails naming the subtrees, and with AllowPartial succeeds listing them.
func TestUnreadable(t *testing.T) {
	t.Parallel()
	root := rootFor(t)
	c := dialZK(t, ensemble.Hosts(), "owner:right")
	mustCreate(t, c, root, nil, 0, nil)
	mustCreate(t, c, root+"/open", []byte("x"), 0, nil)
	acl := zk.DigestACL(zk.PermAll, "owner", "right")
	mustCreate(t, c, root+"/locked", nil, 0, acl)
	mustCreate(t, c, root+"/locked/inner", nil, 0, acl)
	mustCreate(t, c, root+"/open/locked-too", nil, 0, acl)

	for _, tc := range []struct {
		name         string
		auth         string
		allowPartial bool
		wantErr      bool
		wantNodes    int64
	}{
		{"wrong password", "owner:wrong", false, true, 2},
		{"no credentials, partial allowed", "", true, false, 2},
		{"right password", "owner:right", false, false, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig(ensemble.Hosts())
			cfg.Root, cfg.AllowPartial = root, tc.allowPartial
			if tc.auth != "" {
				cfg.Auth = []zkclient.Auth{{Scheme: "digest", Cred: []byte(tc.auth)}}
			}
			w, err := NewWalker(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			path := filepath.Join(t.TempDir(), "x.snap")
			sum, err := ExportFile(t.Context(), w, FileOptions{Path: path})
			if tc.wantErr {
				var ue *UnreadableError
				if !errors.As(err, &ue) || !errors.Is(err, ErrUnreadable) {
					t.Fatalf("err = %v, want an UnreadableError", err)
				}
				if want := []string{root + "/locked", root + "/open/locked-too"}; !slices.Equal(ue.Paths, want) {
					t.Errorf("unreadable %v, want %v", ue.Paths, want)
				}
				if !strings.Contains(err.Error(), root+"/locked") {
					t.Errorf("message %q does not name the subtree", err)
				}
				if _, statErr := os.Stat(path); statErr == nil {
					t.Errorf("a failed export left %s", path)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sum.Nodes != tc.wantNodes || sum.Partial != (tc.wantNodes < 5) || int(sum.Unreadable) != len(sum.UnreadableList) {
				t.Errorf("summary %+v", sum)
			}
		})
	}

	t.Run("unknown auth scheme", func(t *testing.T) {
		cfg := DefaultConfig(ensemble.Hosts())
		cfg.Root = root
		cfg.Auth = []zkclient.Auth{{Scheme: "nosuchscheme", Cred: []byte("x")}}
		cfg.ConnectTimeout = 5 * time.Second
		_, _, err := collect(t, t.Context(), cfg)
		if err == nil || !strings.Contains(err.Error(), "auth") {
			t.Errorf("err = %v, want an authentication error", err)
		}
	})
}

// TestUnreachable checks a dead ensemble gives ErrUnreachable within the
// connect timeout, once: a probe for multiRead that got no session does not
// fall back to the classic walk, which would take a second timeout.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	cfg := DefaultConfig([]string{addr})
	cfg.ConnectTimeout = 2 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs}, nil))
	start := time.Now()
	_, _, err = collect(t, t.Context(), cfg)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("multi-line error %q", err)
	}
	if strings.Contains(logs.String(), "multiRead unavailable") {
		t.Errorf("the walk fell back to classic reads after the probe got no session:\n%s", logs.String())
	}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestNotZooKeeper points a walk of each read mode at a port that answers
// HTTP: Start fails at once (not after the connect timeout) with one line
// saying the server is not ZooKeeper and quoting what it answered.
func TestNotZooKeeper(t *testing.T) {
	t.Parallel()
	addr := testlog.HTTPAddr(t)
	for _, mode := range []ReadMode{ReadModeAuto, ReadModeClassic, ReadModeMultiRead} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := DefaultConfig([]string{addr})
			cfg.ReadMode, cfg.ConnectTimeout = mode, time.Minute
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			_, _, err := collect(t, ctx, cfg)
			if !errors.Is(err, zkclient.ErrNotZooKeeper) || !strings.Contains(err.Error(), `"HTTP/1.1 400`) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line matching ErrNotZooKeeper quoting the answer", err)
			}
		})
	}
}

// TestRateLimit checks the request rate stays under the ceiling.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	root := rootFor(t)
	c := dialZK(t, ensemble.Hosts())
	mustCreate(t, c, root, nil, 0, nil)
	for i := range 100 {
		mustCreate(t, c, fmt.Sprintf("%s/n%03d", root, i), nil, 0, nil)
	}
	cfg := DefaultConfig(ensemble.Hosts())
	cfg.Root, cfg.RateLimit = root, 400
	w, err := NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := time.Now()
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	sum, err := w.Walk(t.Context(), SinkFunc(func(*znode.Node) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	// 100 ms of burst is allowed.
	if rate := float64(sum.Requests) / (elapsed + 100*time.Millisecond).Seconds(); rate > cfg.RateLimit*1.1 {
		t.Errorf("%d requests in %v: %.0f/s, ceiling %.0f/s", sum.Requests, elapsed, rate, cfg.RateLimit)
	}
	if sum.Nodes != 101 {
		t.Errorf("exported %d nodes", sum.Nodes)
	}
}

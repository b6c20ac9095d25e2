package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/verify/verifytest"
	"github.com/zk2raft/zk2raft/znode"
)

// verifyFixtures writes the fixture tree and variants of it, each differing in
// one way, and returns their snap:// URIs by name.
func verifyFixtures(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	h := verifytest.Header("fixture")
	uris := map[string]string{}
	write := func(name string, nodes []*znode.Node) {
		uris[name] = "snap://" + verifytest.WriteSnapshot(t, filepath.Join(dir, name+".snap"), h, nodes)
	}
	write("base", verifytest.Tree())
	write("same", verifytest.Tree())
	edit := func(name, path string, change func(*znode.Node)) {
		nodes := verifytest.CloneNodes(verifytest.Tree())
		change(verifytest.FindNode(t, nodes, path))
		write(name, nodes)
	}
	edit("data", "/app", func(n *znode.Node) { n.Data = []byte("changed") })
	edit("nil-vs-empty", "/app/config/nil", func(n *znode.Node) { n.Data = []byte{} })
	edit("acl", "/secure", func(n *znode.Node) { n.ACL = znode.WorldAnyone() })
	edit("czxid", "/app", func(n *znode.Node) { n.Stat.Czxid++ })
	edit("mzxid", "/app", func(n *znode.Node) { n.Stat.Mzxid++ })
	edit("pzxid", "/app", func(n *znode.Node) { n.Stat.Pzxid++ })
	edit("ctime", "/app", func(n *znode.Node) { n.Stat.Ctime++ })
	edit("mtime", "/app", func(n *znode.Node) { n.Stat.Mtime++ })
	edit("version", "/app", func(n *znode.Node) { n.Stat.Version++ })
	edit("cversion", "/app", func(n *znode.Node) { n.Stat.Cversion++ })
	edit("aversion", "/app", func(n *znode.Node) { n.Stat.Aversion++ })
	edit("ephemeralOwner", "/app/leases", func(n *znode.Node) { n.Stat.EphemeralOwner = 0 })
	edit("numChildren", "/app", func(n *znode.Node) { n.NumChildren++ })
	nodes := verifytest.CloneNodes(verifytest.Tree())
	write("missing", slices.DeleteFunc(nodes, func(n *znode.Node) bool { return n.Path == "/app.d/readme" }))
	nodes = verifytest.CloneNodes(verifytest.Tree())
	extra := verifytest.FindNode(t, nodes, "/app.d/readme").Clone()
	extra.Path = "/app.d/extra"
	nodes = append(nodes, extra)
	verifytest.SortNodes(nodes)
	write("extra", nodes)
	nodes = verifytest.CloneNodes(verifytest.Tree())
	slices.SortFunc(nodes, func(a, b *znode.Node) int { return strings.Compare(a.Path, b.Path) })
	write("unsorted", nodes)
	return uris
}

func TestVerifyInjectedDifferences(t *testing.T) {
	uris := verifyFixtures(t)
	for _, tc := range []struct {
		name, path, kind, field string
	}{
		{"missing", "/app.d/readme", "missing", ""},
		{"extra", "/app.d/extra", "extra", ""},
		{"data", "/app", "mismatch", "data"},
		{"nil-vs-empty", "/app/config/nil", "mismatch", "nil-vs-empty"},
		{"acl", "/secure", "mismatch", "acl"},
		{"czxid", "/app", "mismatch", "czxid"},
		{"mzxid", "/app", "mismatch", "mzxid"},
		{"pzxid", "/app", "mismatch", "pzxid"},
		{"ctime", "/app", "mismatch", "ctime"},
		{"mtime", "/app", "mismatch", "mtime"},
		{"version", "/app", "mismatch", "version"},
		{"cversion", "/app", "mismatch", "cversion"},
		{"aversion", "/app", "mismatch", "aversion"},
		{"ephemeralOwner", "/app/leases", "mismatch", "ephemeralOwner"},
		{"numChildren", "/app", "mismatch", "numChildren"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, "verify", "--source", uris["base"], "--target", uris[tc.name], "--format", "json", "-q")
			if code != ExitDifferences {
				t.Fatalf("exit %d, want %d; stderr %s", code, ExitDifferences, errOut)
			}
			if !strings.HasPrefix(errOut, "zk2raft: verify: 1 differences") {
				t.Errorf("stderr %q", errOut)
			}
			var rep struct {
				Verdict     string
				Differences []struct{ Path, Kind, Field string }
				Counts      struct{ Differences int }
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if rep.Verdict != "different" || rep.Counts.Differences != 1 || len(rep.Differences) != 1 {
				t.Fatalf("report %+v", rep)
			}
			d := rep.Differences[0]
			if d.Path != tc.path || d.Kind != tc.kind || d.Field != tc.field {
				t.Errorf("difference %+v, want %s %s at %s", d, tc.kind, tc.field, tc.path)
			}
			// The text report names the field and the node.
			_, text, _ := run(t, "verify", "--source", uris["base"], "--target", uris[tc.name], "-q")
			if !strings.HasPrefix(text, "DIFFERENT: 1 differences") || !strings.Contains(text, tc.path) {
				t.Errorf("text report:\n%s", text)
			}
		})
	}
}

func TestVerifyCommand(t *testing.T) {
	uris := verifyFixtures(t)
	out := filepath.Join(t.TempDir(), "report.xml")
	allow := filepath.Join(t.TempDir(), "allow.txt")
	if err := os.WriteFile(allow, []byte("/app data # rewritten by the migration test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"equal text", []string{"--source", uris["base"], "--target", uris["same"]}, ExitOK, "EQUAL: no differences in 23 nodes", ""},
		{"equal json", []string{"--source", uris["base"], "--target", uris["same"], "--format", "json"}, ExitOK, `"verdict": "equal"`, ""},
		{"equal junit", []string{"--source", uris["base"], "--target", uris["same"], "--format", "junit"}, ExitOK, `failures="0"`, ""},
		{"digest only", []string{"--source", uris["base"], "--target", uris["same"], "--digest-only"}, ExitOK, "EQUAL by digest", ""},
		{"digest only differs", []string{"--source", uris["base"], "--target", uris["mtime"], "--digest-only"}, ExitDifferences, "DIFFERENT by digest", "digests differ"},
		{"digest misses ACLs", []string{"--source", uris["base"], "--target", uris["acl"], "--digest-only"}, ExitOK, "not ACLs", ""},
		{"path", []string{"--source", uris["base"], "--target", uris["data"], "--path", "/queue"}, ExitOK, "EQUAL: no differences in 5 nodes", ""},
		{"exclude", []string{"--source", uris["base"], "--target", uris["data"], "--exclude", "/ap?"}, ExitOK, "EQUAL", ""},
		{"allow file", []string{"--source", uris["base"], "--target", uris["data"], "--allow", allow}, ExitOK, "1 allowed", ""},
		{"allow flag", []string{"--source", uris["base"], "--target", uris["mtime"], "--allow-diff", "/*=mtime"}, ExitOK, "EQUAL", ""},
		{"max diffs 0", []string{"--source", uris["base"], "--target", uris["missing"], "--max-diffs", "0"}, ExitDifferences, "missing in target        1", ""},
		{"out file", []string{"--source", uris["base"], "--target", uris["data"], "--format", "junit", "--out", out}, ExitDifferences, "", "1 differences"},
		{"unsorted", []string{"--source", uris["base"], "--target", uris["unsorted"]}, ExitFailure, "", "not in canonical order"},
		{"journal missing dir", []string{"--source", uris["base"], "--target", "journal:///nonexistent/zk2raft"}, ExitFailure, "", "/nonexistent/zk2raft"},
		{"missing file", []string{"--source", "snap:///nonexistent.snap", "--target", uris["base"]}, ExitFailure, "", "--source"},
		{"no source", []string{"--target", uris["base"]}, ExitUsage, "", "--source is required"},
		{"no target", []string{"--source", uris["base"]}, ExitUsage, "", "--target is required"},
		{"bad format", []string{"--source", uris["base"], "--target", uris["base"], "--format", "xml"}, ExitUsage, "", "--format"},
		{"bad exclude", []string{"--source", uris["base"], "--target", uris["base"], "--exclude", "app"}, ExitUsage, "", "must start with /"},
		{"bad allow rule", []string{"--source", uris["base"], "--target", uris["base"], "--allow-diff", "/a=colour"}, ExitUsage, "", "--allow-diff"},
		{"bad uri", []string{"--source", "/tmp/x.snap", "--target", uris["base"]}, ExitUsage, "", "--source invalid URI"},
		{"path outside", []string{"--source", uris["base"], "--target", uris["base"], "--path", "/a/"}, ExitUsage, "", "invalid"},
		{"unreachable", []string{"--source", "zk://127.0.0.1:1", "--target", uris["base"], "--timeout", "2s"}, ExitFailure, "", "unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"verify", "-q"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout does not contain %q:\n%s", tc.stdout, stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.stderr, stderr)
			}
			if code != ExitOK && code != ExitDifferences && strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
				t.Errorf("error is not one line: %q", stderr)
			}
		})
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), `<testcase name="/app"`) {
		t.Errorf("--out: %v\n%s", err, b)
	}
}

package verify

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/verify/verifytest"
	"github.com/zk2raft/zk2raft/znode"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden reports under testdata/verify")

// goldenDir holds the golden reports (see testdata/README.md).
const goldenDir = "../testdata/verify"

// goldenCases builds the reports the golden files hold, from the fixture tree
// written to snapshot files under dir.
func goldenCases(t *testing.T, dir string) map[string]*Report {
	t.Helper()
	tree := verifytest.Tree()
	source := verifytest.WriteSnapshot(t, filepath.Join(dir, "source.snap"), verifytest.Header("zk://zk1:2181"), tree)
	same := verifytest.WriteSnapshot(t, filepath.Join(dir, "same.snap"), verifytest.Header("zk://zk1:2181"), tree)

	// One of each kind of difference, and one an allow rule excuses.
	changed := verifytest.CloneNodes(tree)
	var kept []*znode.Node
	for _, n := range changed {
		if n.Path != "/app-1/x" {
			kept = append(kept, n)
		}
	}
	changed = kept
	extra := verifytest.FindNode(t, changed, "/queue/item-0000000005").Clone()
	extra.Path = "/queue/item-0000000006"
	changed = append(changed, extra)
	verifytest.SortNodes(changed)
	verifytest.FindNode(t, changed, "/app/config").Data = []byte("timeout=60s\nretries=6\n")
	verifytest.FindNode(t, changed, "/app/config/binary").Data = []byte{0x00, 0x01, 0xfe, 0xfe, 0x80, 0x7f}
	verifytest.FindNode(t, changed, "/app/config/nil").Data = []byte{}
	verifytest.FindNode(t, changed, "/secure").ACL = znode.WorldAnyone()
	q := verifytest.FindNode(t, changed, "/queue")
	q.Stat.Cversion, q.NumChildren = 5, 5
	verifytest.FindNode(t, changed, "/app/leases").Stat.EphemeralOwner = 0
	verifytest.FindNode(t, changed, "/unicode/配置").Stat.Mtime += 1000
	verifytest.FindNode(t, changed, "/app/locks/lock-0000000000").Stat.EphemeralOwner = 0x1000000a0b0002
	target := verifytest.WriteSnapshot(t, filepath.Join(dir, "target.snap"), verifytest.Header("journal node-1"), changed)

	open := func(p string) Source {
		s, err := OpenSnapshot(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	run := func(a, b string, cfg Config) *Report {
		r, err := Compare(t.Context(), open(a), open(b), cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.Elapsed = 0
		return r
	}
	different := testConfig()
	different.Allow = []AllowRule{{Pattern: "/app/locks/**", What: []Allowed{{Kind: KindMismatch, Field: FieldEphemeralOwner}},
		Reason: "lock holders reconnect after cutover", Origin: "allow.txt:1"}}
	digest := testConfig()
	digest.DigestOnly = true

	// A live source read without ADMIN on /secure: ZooKeeper shows its digest
	// identity masked.
	live := verifytest.CloneNodes(tree)
	secure := verifytest.FindNode(t, live, "/secure")
	secure.ACL = exporter.MaskACL(secure.ACL)
	liveSource := MemorySource(Info{URI: "zk://zk1:2181", Scheme: "zk", Description: "live ensemble (fixture with raw owners)",
		Live: true, RawOwners: true, ExtendedTypes: true}, live, nil)
	masked, err := Compare(t.Context(), liveSource, open(same), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	masked.Elapsed = 0
	return map[string]*Report{
		"equal":     run(source, same, testConfig()),
		"different": run(source, target, different),
		"digest":    run(source, same, digest),
		"masked":    masked,
	}
}

func TestGoldenReports(t *testing.T) {
	dir := t.TempDir()
	reports := goldenCases(t, dir)
	for name, r := range reports {
		for _, f := range []struct {
			format Format
			ext    string
		}{{FormatText, "txt"}, {FormatJSON, "json"}, {FormatJUnit, "xml"}} {
			t.Run(name+"."+f.ext, func(t *testing.T) {
				var buf bytes.Buffer
				if err := WriteReport(&buf, r, f.format); err != nil {
					t.Fatal(err)
				}
				got := bytes.ReplaceAll(buf.Bytes(), []byte(dir), []byte("TESTDATA"))
				checkWellFormed(t, f.format, got)
				path := filepath.Join(goldenDir, name+"."+f.ext)
				if *rewrite {
					if err := os.MkdirAll(goldenDir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./verify -run TestGoldenReports -rewrite)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the report; if the change is intended, run with -rewrite.\ngot:\n%s", path, got)
				}
			})
		}
	}
	// Deterministic: a second run gives the same bytes.
	again := goldenCases(t, dir)
	for name, r := range reports {
		var a, b bytes.Buffer
		_ = WriteJSON(&a, r)
		_ = WriteJSON(&b, again[name])
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s: two runs differ", name)
		}
	}
}

func checkWellFormed(t *testing.T, f Format, b []byte) {
	t.Helper()
	switch f {
	case FormatJSON:
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("invalid JSON: %v", err)
		}
		if v["version"] != float64(ReportVersion) {
			t.Errorf("version %v", v["version"])
		}
	case FormatJUnit:
		var v junitSuites
		if err := xml.Unmarshal(b, &v); err != nil {
			t.Fatalf("invalid XML: %v", err)
		}
	case FormatText:
		if first := strings.SplitN(string(b), "\n", 2)[0]; !strings.HasPrefix(first, "EQUAL") && !strings.HasPrefix(first, "DIFFERENT") {
			t.Errorf("verdict not first: %q", first)
		}
	}
}

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// datadirFixture is a data directory a real ZooKeeper 3.8 server wrote (see
// exporter/datadir's fixtures).
func datadirFixture(mode string) string {
	return filepath.Join("..", "..", "exporter", "datadir", "testdata", "zk38", mode)
}

// copyDatadirFixture copies a fixture the test may damage.
func copyDatadirFixture(t *testing.T, mode string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(datadirFixture(mode), "version-2")
	dst := filepath.Join(dir, "version-2")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestExportFromDatadir(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "dd.snap")
	code, stdout, stderr := run(t, "export", "--from-datadir", datadirFixture("snappy"), "--out", out, "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var sum struct {
		Nodes    int64 `json:"nodes"`
		Zxid     int64 `json:"zxid"`
		TTLNodes int64 `json:"ttl_nodes"`
		Check    struct {
			Exact  bool   `json:"exact"`
			Record string `json:"record"`
		} `json:"check"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if sum.Nodes < 100 || !sum.Check.Exact || !strings.Contains(sum.Check.Record, "TxnDigest") || sum.TTLNodes != 2 {
		t.Fatalf("summary %+v", sum)
	}
	h, tr, err := znode.ReadSnapshotTrailer(out)
	if err != nil {
		t.Fatal(err)
	}
	if h.Meta["owner_source"] != "datadir" || !h.ExtendedTypes || int64(tr.NodeCount) != sum.Nodes || h.StartZxid != sum.Zxid {
		t.Fatalf("header %+v trailer %+v", h, tr)
	}

	// The same directory as a verify side, against the file and against the
	// gz server's directory.
	for _, src := range []string{"datadir://" + datadirFixture("gz"), "datadir://" + datadirFixture("plain") + "?zxid=" + "0x1000000be"} {
		code, stdout, stderr = run(t, "verify", "--source", src, "--target", "snap://"+out)
		if code != ExitOK || !strings.HasPrefix(stdout, "EQUAL") {
			t.Fatalf("verify %s: exit %d: %s%s", src, code, stdout, stderr)
		}
	}

	// An earlier zxid is a different tree: verify says so.
	code, stdout, _ = run(t, "verify", "--source", "datadir://"+datadirFixture("plain")+"?zxid=0x100000050", "--target", "snap://"+out)
	if code != ExitDifferences {
		t.Fatalf("verify against an earlier zxid: exit %d: %s", code, stdout)
	}
}

func TestExportFromDatadirErrors(t *testing.T) {
	t.Parallel()
	damaged := copyDatadirFixture(t, "plain")
	logs, _ := filepath.Glob(filepath.Join(damaged, "version-2", "log.*"))
	last := logs[len(logs)-1]
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	b[16+12+25] ^= 0x20 // inside the first txn's bytes
	if err := os.WriteFile(last, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"with --zk", []string{"--from-datadir", datadirFixture("plain"), "--zk", "127.0.0.1:1"}, ExitUsage, []string{"--zk is for exports from a live ensemble"}},
		{"to-zxid alone", []string{"--zk", "127.0.0.1:1", "--to-zxid", "5"}, ExitUsage, []string{"need --from-datadir"}},
		{"bad to-zxid", []string{"--from-datadir", datadirFixture("plain"), "--to-zxid", "zz"}, ExitUsage, []string{"--to-zxid"}},
		{"not a data dir", []string{"--from-datadir", t.TempDir()}, ExitFailure, []string{"not a ZooKeeper dataDir"}},
		{"beyond the logs", []string{"--from-datadir", datadirFixture("plain"), "--to-zxid", "0x2000000ff"}, ExitFailure, []string{"logs end", "0x2000000ff"}},
		{"checksum", []string{"--from-datadir", damaged}, ExitFailure, []string{filepath.Base(last), "offset 16", "Adler32"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.snap")
			code, _, stderr := run(t, append(append([]string{"export"}, tt.args...), "--out", out)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s written by a failed export", out)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if errLine := lines[len(lines)-1]; tt.code == ExitFailure && !strings.HasPrefix(errLine, "zk2raft: ") {
				t.Errorf("last line %q is not the one-line error", errLine)
			}
		})
	}
}

package datadir

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/internal/zktest"
)

// The fixtures under testdata/zk38 are the data directories of a real
// ZooKeeper 3.8 ensemble (Debian's package) after runScenario: server 1
// writes plain snapshots, server 2 gz and server 3 snappy. Regenerate them
// with
//
//	go test -run TestRewriteFixtures ./exporter/datadir/ -datadir.rewrite
var rewriteFixtures = flag.Bool("datadir.rewrite", false, "regenerate testdata/zk38 from a real ZooKeeper 3.8 ensemble")

// fixtureModes are the fixture directories, by the server that wrote them.
var fixtureModes = []struct {
	name   string
	server int
	comp   Compression
}{
	{"plain", 1, CompressionNone},
	{"gz", 2, CompressionGzip},
	{"snappy", 3, CompressionSnappy},
}

func fixtureDir(mode string) string { return filepath.Join("testdata", "zk38", mode) }

// TestRewriteFixtures is not a test: with -datadir.rewrite it regenerates
// the fixtures; otherwise it does nothing.
func TestRewriteFixtures(t *testing.T) {
	if !*rewriteFixtures {
		return
	}
	ens := zktest.New(t, scenarioOptions())
	runScenario(t, ens.Hosts())
	waitSynced(t, ens, 0)
	for _, s := range ens.Servers() {
		if err := ens.Stop(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range fixtureModes {
		src := filepath.Join(ens.Servers()[m.server-1].DataDir, "version-2")
		dst := filepath.Join(fixtureDir(m.name), "version-2")
		if err := os.RemoveAll(fixtureDir(m.name)); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "snapshot.") && !strings.HasPrefix(e.Name(), "log.") {
				continue
			}
			copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
		}
		t.Logf("%s: %d files from server %d", m.name, len(entries), m.server)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

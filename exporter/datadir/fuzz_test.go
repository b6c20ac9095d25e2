package datadir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// fuzzMaxLen keeps a fuzzed length from allocating much.
const fuzzMaxLen = 1 << 20

var fuzzCompressions = []Compression{CompressionNone, CompressionGzip, CompressionSnappy}

// FuzzSnapshot decodes a snapshot (the first byte picks the compression: 0
// none, 1 gz, 2 snappy) into a tree. It must never panic; a failure must be
// a *FileError; a success must give a tree whose walk reaches every node in
// canonical order and adds up to the tree's digest.
func FuzzSnapshot(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		comp := fuzzCompressions[int(in[0])%len(fuzzCompressions)]
		r, err := Decompress(bytes.NewReader(in[1:]), comp, "fuzz")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decompress: %v is not ErrCorrupt", err)
			}
			return
		}
		tree := NewTree()
		_, err = tree.ReadSnapshot(r, "fuzz", comp != CompressionNone, fuzzMaxLen)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v (%T) is not a *FileError", err, err)
			}
			return
		}
		var d znode.Digest
		n, prev := 0, ""
		if err := tree.Walk("/", nil, func(nd *znode.Node) error {
			if n > 0 && znode.ComparePaths(prev, nd.Path) >= 0 {
				return fmt.Errorf("walk out of order: %q then %q", prev, nd.Path)
			}
			prev = nd.Path
			d.Add(nd.Digest())
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != tree.Len() || d != tree.Digest() {
			t.Fatalf("walk: %d nodes, digest %v; tree: %d, %v", n, d, tree.Len(), tree.Digest())
		}
	})
}

// FuzzTxnLog reads a transaction log record by record and applies what
// decodes to a tree. It must never panic; every outcome must be a txn,
// io.EOF, a *TornError or a *FileError.
func FuzzTxnLog(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewLogReader(bytes.NewReader(in), "fuzz", fuzzMaxLen)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: %v is not ErrCorrupt", err)
			}
			return
		}
		tree := NewTree()
		tree.put("/", &node{})
		for range 10000 {
			tx, err := r.Next()
			var te *TornError
			if errors.As(err, &te) {
				tx, err = r.CheckTorn()
				if err == nil && tx == nil {
					return
				}
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("next: %v (%T) is neither EOF, torn nor corrupt", err, err)
				}
				return
			}
			// A txn that decodes may still be malformed for the tree (a
			// path that is not absolute): an error, never a panic.
			_, _ = tree.Apply(tx, true)
		}
	})
}

// fuzzSeeds are the seed inputs under testdata/fuzz, made from the real
// ZooKeeper files under testdata/zk38. TestFuzzSeeds checks the files match
// them; with -datadir.rewrite it writes them.
func fuzzSeeds(t *testing.T) map[string]map[string][]byte {
	read := func(mode, name string) []byte {
		b, err := os.ReadFile(filepath.Join(fixtureDir(mode), "version-2", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	files := func(mode string) *Files {
		fs, err := Scan(fixtureDir(mode), "")
		if err != nil {
			t.Fatal(err)
		}
		return fs
	}
	plain, gz, sn := files("plain"), files("gz"), files("snappy")
	oldest := func(fs *Files) string { return filepath.Base(fs.Snapshots[len(fs.Snapshots)-1].Path) }
	second := func(fs *Files) string { return filepath.Base(fs.Snapshots[len(fs.Snapshots)-2].Path) }
	newest := func(fs *Files) string { return filepath.Base(fs.Snapshots[0].Path) }
	with := func(c Compression, b []byte) []byte {
		for i, x := range fuzzCompressions {
			if x == c {
				return append([]byte{byte(i)}, b...)
			}
		}
		panic(c)
	}
	small := read("plain", second(plain))
	badSeal := bytes.Clone(small)
	badSeal[len(badSeal)/2] ^= 0x10
	firstLog := read("plain", filepath.Base(plain.Logs[0].Path))
	lastLog := read("plain", filepath.Base(plain.Logs[len(plain.Logs)-1].Path))
	// Cut the last log inside its second txn.
	r, err := NewLogReader(bytes.NewReader(lastLog), "seed", 0)
	if err != nil {
		t.Fatal(err)
	}
	var cut []byte
	for i := 0; ; i++ {
		tx, err := r.Next()
		if err != nil {
			t.Fatalf("seed log: %v", err)
		}
		if i == 1 {
			cut = lastLog[:tx.Pos.Offset+20]
			break
		}
	}
	badCRC := bytes.Clone(lastLog[:4096])
	badCRC[16+12+30] ^= 0x04
	return map[string]map[string][]byte{
		"FuzzSnapshot": {
			"plain-empty-tree":  with(CompressionNone, read("plain", oldest(plain))),
			"plain":             with(CompressionNone, small),
			"plain-bad-seal":    with(CompressionNone, badSeal),
			"plain-truncated":   with(CompressionNone, small[:len(small)/2]),
			"gz-empty-tree":     with(CompressionGzip, read("gz", oldest(gz))),
			"gz":                with(CompressionGzip, read("gz", newest(gz))),
			"snappy-empty-tree": with(CompressionSnappy, read("snappy", oldest(sn))),
			"snappy":            with(CompressionSnappy, read("snappy", newest(sn))),
		},
		"FuzzTxnLog": {
			"first-log":   firstLog[:8192],
			"last-log":    lastLog,
			"torn":        cut,
			"bad-crc":     badCRC,
			"header-only": firstLog[:16],
			"zero-tail":   append(bytes.Clone(firstLog[:16]), make([]byte, 64)...),
		},
	}
}

func TestFuzzSeeds(t *testing.T) {
	for target, seeds := range fuzzSeeds(t) {
		for name, v := range seeds {
			path := filepath.Join("testdata", "fuzz", target, name)
			want := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", v))
			if *rewriteFixtures {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is not the seed the fixtures make now (-datadir.rewrite rewrites it): %v", path, err)
			}
		}
	}
}

package znode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzSnapshotReader feeds arbitrary bytes to the reader. It must not panic or
// allocate without bound, every failure must be a corruption or unsupported-format
// error, and whatever it accepts must write back to the same records and trailer.
func FuzzSnapshotReader(f *testing.F) {
	for _, seed := range snapshotFuzzSeeds(f) {
		f.Add(seed.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewSnapshotReader(bytes.NewReader(data))
		if err != nil {
			checkSnapshotReadError(t, err)
			return
		}
		defer r.Close()
		var recs []Record
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				checkSnapshotReadError(t, err)
				return
			}
			if rec.Payload != nil {
				rec.Payload = bytes.Clone(rec.Payload)
			}
			recs = append(recs, rec)
		}
		tr := r.Trailer()
		if tr.NodeCount > tr.RecordCount || tr.RecordCount != uint64(len(recs)) {
			t.Fatalf("trailer %+v for %d records", tr, len(recs))
		}

		// Rewritten uncompressed: a zstd encoder per input would slow fuzzing tenfold.
		again, tr2 := writeTestSnapshot(t, recs, SnapshotWriterOptions{})
		if tr2.NodeCount != tr.NodeCount || tr2.RecordCount != tr.RecordCount || tr2.Digest != tr.Digest || tr2.MaxZxid > tr.MaxZxid {
			t.Fatalf("rewritten trailer %+v, read %+v", tr2, tr)
		}
		_, recs2, _, err := readTestSnapshot(again)
		if err != nil {
			t.Fatalf("rewritten snapshot: %v", err)
		}
		checkSameRecords(t, recs2, recs)
	})
}

func checkSnapshotReadError(t *testing.T, err error) {
	t.Helper()
	var se *SnapshotError
	switch {
	case errors.As(err, &se):
		if se.Reason == "" || !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("malformed error %#v", err)
		}
	case errors.Is(err, ErrUnsupportedSnapshot):
	default:
		t.Fatalf("error %v (%T) is neither corruption nor an unsupported format", err, err)
	}
}

type snapshotFuzzSeed struct {
	name string
	data []byte
}

func snapshotFuzzSeeds(tb testing.TB) []snapshotFuzzSeed {
	tb.Helper()
	plain, _ := writeTestSnapshot(tb, testSnapshotRecords(tb, false), SnapshotWriterOptions{})
	packed, _ := writeTestSnapshot(tb, testSnapshotRecords(tb, false), SnapshotWriterOptions{Compress: true})
	empty, _ := writeTestSnapshot(tb, nil, SnapshotWriterOptions{})
	return []snapshotFuzzSeed{
		{"valid-uncompressed", plain},
		{"valid-zstd", packed},
		{"valid-empty", empty},
		{"truncated-uncompressed", plain[:len(plain)*2/3]},
		{"truncated-zstd", packed[:len(packed)*2/3]},
	}
}

// TestWriteSnapshotFuzzSeeds regenerates testdata/fuzz/FuzzSnapshotReader when
// ZK2RAFT_WRITE_FUZZ_SEEDS=1 is set.
func TestWriteSnapshotFuzzSeeds(t *testing.T) {
	if os.Getenv("ZK2RAFT_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set ZK2RAFT_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzSnapshotReader")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzSnapshotReader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, seed := range snapshotFuzzSeeds(t) {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed.data)
		if err := os.WriteFile(filepath.Join(dir, seed.name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

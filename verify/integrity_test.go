package verify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// TestDigestOnlyDamagedSnapshot (issue 11 item 3): a digest-only comparison
// of a snapshot file proves the file intact (every record's CRC, the end
// record against the body) before it uses the trailer's digest: a file with
// 4 KiB zeroed mid-file, or one byte flipped, used to compare EQUAL from its
// intact trailer. With TrustTrailer the trailer is used as it is, and the
// report says so.
func TestDigestOnlyDamagedSnapshot(t *testing.T) {
	t.Parallel()
	root := "/damaged-digest"
	seed(t, "kafka", root, 600)
	good := export(t, ensemble.Hosts(), root, nil)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 16<<10 {
		t.Fatalf("export is only %d bytes; the test needs a body past 16 KiB", len(raw))
	}
	damage := map[string]func([]byte){
		"4 KiB zeroed":    func(b []byte) { clear(b[len(b)/2 : len(b)/2+4096]) },
		"one bit flipped": func(b []byte) { b[len(b)/2] ^= 0x10 },
	}
	for name, hurt := range damage {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := append([]byte(nil), raw...)
			hurt(b)
			bad := filepath.Join(t.TempDir(), "damaged.snap")
			if err := os.WriteFile(bad, b, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig()
			cfg.DigestOnly = true
			r, err := Compare(t.Context(), snapSource(t, good), snapSource(t, bad), cfg)
			var se *znode.SnapshotError
			if err == nil || !strings.Contains(err.Error(), bad) || !errors.As(err, &se) {
				t.Fatalf("digest-only against the damaged file: report %+v, error %v; want an error naming the file and offset", r, err)
			}

			cfg.TrustTrailer = true
			r, err = Compare(t.Context(), snapSource(t, good), snapSource(t, bad), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Mode != ModeDigest || !hasNote(r, "trusted") {
				t.Fatalf("with TrustTrailer: mode %v, notes %q; want a constant-time comparison that says it trusted the trailer", r.Mode, r.Notes)
			}
		})
	}
	// An intact file is read in full and says so.
	cfg := testConfig()
	cfg.DigestOnly = true
	r := mustCompare(t, snapSource(t, good), snapSource(t, good), cfg)
	if !r.Equal() || r.Mode != ModeDigest || !hasNote(r, "read in full") {
		t.Fatalf("intact: verdict %v, mode %v, notes %q", r.Verdict, r.Mode, r.Notes)
	}
}

func hasNote(r *Report, s string) bool {
	for _, n := range r.Notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

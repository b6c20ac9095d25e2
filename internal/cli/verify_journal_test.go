package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyJournalDataDir: a snapshot imported offline into a data dir, then
// compared with journal://DIR read-only: equal to its source (full and by
// digest), different from an edited copy.
func TestVerifyJournalDataDir(t *testing.T) {
	uris := verifyFixtures(t)
	dir := filepath.Join(t.TempDir(), "data")
	snap := strings.TrimPrefix(uris["base"], "snap://")
	if code, _, stderr := run(t, "import", "-q", "--snapshot", snap, "--data-dir", dir); code != ExitOK {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	journal := "journal://" + dir
	// The fixture has no /zookeeper subtree, which every journal holds: the
	// root's numChildren differs by one for that reason alone.
	rootAllow := []string{"--allow-diff", "/=numChildren"}
	tests := []struct {
		name         string
		args         []string
		code         int
		stdout, errs string
	}{
		{"equal", []string{"--source", uris["base"], "--target", journal}, ExitOK, "EQUAL", ""},
		{"equal reversed", []string{"--source", journal, "--target", uris["base"]}, ExitOK, "EQUAL", ""},
		{"digest only", []string{"--source", uris["base"], "--target", journal, "--digest-only"}, ExitOK, "EQUAL by digest", ""},
		{"data differs", []string{"--source", uris["data"], "--target", journal}, ExitDifferences, "/app", "1 differences"},
		{"missing", []string{"--source", uris["extra"], "--target", journal}, ExitDifferences, "missing in target", "1 differences"},
		{"digest differs", []string{"--source", uris["mtime"], "--target", journal, "--digest-only"}, ExitDifferences, "DIFFERENT by digest", "digests differ"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"verify", "-q"}, tc.args...), rootAllow...)
			code, stdout, stderr := run(t, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %s\nstderr %s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.errs) {
				t.Errorf("stdout %q (want %q), stderr %q (want %q)", stdout, tc.stdout, stderr, tc.errs)
			}
		})
	}
}

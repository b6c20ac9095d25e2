package cli

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestExportReadMode: both read modes export the same tree; an unknown mode
// is a usage error.
func TestExportReadMode(t *testing.T) {
	if code, _, errOut := run(t, "export", "--zk", sharedZK.ConnectString(), "--read-mode", "fast"); code != ExitUsage || !strings.Contains(errOut, "--read-mode") {
		t.Fatalf("unknown read mode: exit %d, %q", code, errOut)
	}
	root := cliRoot(t)
	exportTree(t, root)
	dir := t.TempDir()
	var digests []string
	for _, mode := range []string{"classic", "multiread"} {
		out := filepath.Join(dir, mode+".snap")
		code, stdout, errOut := run(t, "export", "--zk", sharedZK.ConnectString(), "--path", root, "--auth", "digest:owner:pw", "--extended-types",
			"--read-mode", mode, "--out", out, "--json", "--no-progress")
		if code != ExitOK {
			t.Fatalf("%s: exit %d: %s", mode, code, errOut)
		}
		if !strings.Contains(stdout, `"read_mode": "`+mode+`"`) && !strings.Contains(stdout, `"read_mode":"`+mode+`"`) {
			t.Errorf("%s: summary does not name the read mode: %s", mode, stdout)
		}
		_, insp, _ := run(t, "snapshot", "inspect", out, "--json")
		m := regexp.MustCompile(`"digest": *"(-?[0-9]+)"`).FindStringSubmatch(insp)
		if m == nil {
			t.Fatalf("%s: inspect has no digest: %s", mode, insp)
		}
		digests = append(digests, m[1])
	}
	if digests[0] != digests[1] {
		t.Fatalf("classic and multiread exports differ: %q vs %q", digests[0], digests[1])
	}
}

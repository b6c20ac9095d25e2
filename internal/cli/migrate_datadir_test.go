package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
)

// TestMigrateFromDataDirCommand (issue 17): `migrate --from-datadir DIR`
// reads a running ZooKeeper server's data directory instead of walking it,
// with the same targets, checks and summary; flags that only mean something
// for a live walk are usage errors with it.
func TestMigrateFromDataDirCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"both sources", []string{"migrate", "--zk", "127.0.0.1:1", "--from-datadir", "x", "--dry-run"}, "--zk and --from-datadir"},
		{"no source", []string{"migrate", "--dry-run"}, "--zk"},
		{"live-only flag", []string{"migrate", "--from-datadir", "x", "--dry-run", "--workers", "4"}, "--workers"},
		{"live-only path", []string{"migrate", "--from-datadir", "x", "--dry-run", "--path", "/a"}, "--path"},
		{"to-zxid without datadir", []string{"migrate", "--zk", "127.0.0.1:1", "--dry-run", "--to-zxid", "5"}, "--to-zxid"},
		{"bad to-zxid", []string{"migrate", "--from-datadir", "x", "--dry-run", "--to-zxid", "nope"}, "--to-zxid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.args...)
			if code != ExitUsage || !strings.Contains(strings.SplitN(errOut, "\n", 2)[0], tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, ExitUsage, tc.want)
			}
		})
	}

	ens := zktest.New(t, zktest.Options{Servers: 1, ExtendedTypes: true})
	tree, err := treegen.Seed(t.Context(), ens.Hosts(), treegen.Options{Profile: treegen.ProfileKafka, Nodes: 800, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	zkDir := ens.Servers()[0].DataDir

	code, out, errOut := run(t, "migrate", "--from-datadir", zkDir, "--dry-run", "--log-level", "warn")
	if code != ExitOK || !strings.Contains(out, "data directory") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	data := filepath.Join(t.TempDir(), "journal")
	code, out, errOut = run(t, "migrate", "--from-datadir", zkDir, "--data-dir", data, "--verify", "full", "--json",
		"--raft-addr", "127.0.0.1:7998", "--log-level", "warn")
	if code != ExitOK {
		t.Fatalf("migrate --from-datadir: exit %d\n%s%s", code, out, errOut)
	}
	var sum struct {
		Source       string      `json:"source"`
		Nodes        int64       `json:"nodes"`
		Verdict      string      `json:"verdict"`
		Verified     bool        `json:"verified"`
		Verification []checkJSON `json:"verification"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if !strings.HasPrefix(sum.Source, "datadir://") || sum.Verdict != "verified" || !sum.Verified || sum.Nodes < 800 {
		t.Fatalf("summary: %s", out)
	}
	for _, c := range sum.Verification {
		if c.Result != "equal" {
			t.Errorf("check %q: %s (%s)", c.Check, c.Result, c.Detail)
		}
	}
}

package cli

import (
	"os"
	"strings"
	"testing"
)

// TestFlagBounds (issue 11 item 13): a count or rate flag outside what the
// tool can honour is a usage error (exit 2) whose one line names the flag,
// before anything is connected to or allocated: --workers 100000000 used to
// die with "runtime: out of memory", --rate NaN was accepted.
func TestFlagBounds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	zk := "127.0.0.1:1"
	verbs := map[string][]string{
		"export":         {"export", "--zk", zk, "--out", dir + "/x.snap"},
		"migrate":        {"migrate", "--zk", zk, "--dry-run"},
		"migrate-online": {"migrate", "--zk", zk, "--journal", "127.0.0.1:1"},
		"import":         {"import", "--snapshot", dir + "/none.snap", "--journal", "127.0.0.1:1"},
		"dev seed":       {"dev", "seed", "--zk", zk},
		"serve":          {"serve", "--data-dir", dir + "/j", "--node-id", "j1", "--raft-addr", "127.0.0.1:1", "--insecure"},
		"proxy":          {"proxy", "--listen", "127.0.0.1:0", "--zk", zk, "--journal", "127.0.0.1:1", "--queue-dir", dir + "/q", "--insecure"},
		"tail":           {"tail", "--datadir", dir, "--journal", "127.0.0.1:1", "--insecure"},
		"verify":         {"verify", "--source", "zk://" + zk, "--target", "snapshot://" + dir + "/none.snap"},
	}
	cases := []struct {
		verb, flag, value string
	}{
		{"export", "--workers", "100000000"},
		{"export", "--workers", "0"},
		{"export", "--sessions", "100000"},
		{"export", "--sessions", "-1"},
		{"export", "--rate", "NaN"},
		{"export", "--rate", "+Inf"},
		{"export", "--rate", "-5"},
		{"export", "--max-listed", "0"},
		{"migrate", "--workers", "100000000"},
		{"migrate", "--workers", "-3"},
		{"migrate", "--sessions", "100000"},
		{"migrate", "--rate", "NaN"},
		{"migrate", "--rate", "-Inf"},
		{"migrate-online", "--in-flight", "100000000"},
		{"migrate-online", "--in-flight", "-1"},
		{"migrate-online", "--batch-bytes", "100000000000"},
		{"migrate-online", "--batch-bytes", "-1"},
		{"import", "--in-flight", "100000000"},
		{"import", "--in-flight", "0"},
		{"import", "--batch-bytes", "100000000000"},
		{"dev seed", "--conns", "100000000"},
		{"dev seed", "--concurrency", "100000000"},
		{"dev seed", "--conns", "-1"},
		{"serve", "--jute-maxbuffer", "0"},
		{"serve", "--jute-maxbuffer", "2147483647"},
		{"serve", "--max-outstanding", "0"},
		{"serve", "--max-outstanding", "100000000"},
		{"serve", "--max-client-cnxns", "-1"},
		{"serve", "--max-client-cnxns", "100000000"},
		{"proxy", "--jute-maxbuffer", "2147483647"},
		{"proxy", "--jute-maxbuffer", "-1"},
		{"tail", "--batch", "0"},
		{"tail", "--batch", "1000000000"},
		{"verify", "--max-diffs", "-1"},
		{"verify", "--max-diffs", "1000000000"},
		{"verify", "--rechecks", "-1"},
		{"verify", "--rechecks", "1000000"},
	}
	for _, tc := range cases {
		t.Run(tc.verb+"/"+tc.flag+"="+tc.value, func(t *testing.T) {
			args := append(append([]string{}, verbs[tc.verb]...), tc.flag+"="+tc.value)
			code, _, errOut := run(t, args...)
			first, _, _ := strings.Cut(errOut, "\n")
			if code != ExitUsage || !strings.HasPrefix(first, "zk2raft: "+tc.flag+" ") || strings.Count(errOut, "\n") > 2 {
				t.Errorf("exit %d, stderr %q; want exit %d and an error line starting with %q", code, errOut, ExitUsage, "zk2raft: "+tc.flag+" ")
			}
		})
	}
}

// TestOutputCheckedFirst (issue 11 item 16): a destination that cannot take
// the snapshot (a directory, a missing parent directory) is refused before
// anything is read, naming the flag: export used to walk the whole tree and
// only then fail on the rename. The ensemble given is unreachable, so a
// command that got past the check would fail differently (and slowly).
func TestOutputCheckedFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	zk := "127.0.0.1:1"
	cases := []struct {
		name string
		args []string
		flag string
	}{
		{"export into a directory", []string{"export", "--zk", zk, "--connect-timeout", "5s", "--out", dir}, "--out"},
		{"export, missing parent", []string{"export", "--zk", zk, "--connect-timeout", "5s", "--out", dir + "/no/such/x.snap"}, "--out"},
		{"export from datadir into a directory", []string{"export", "--from-datadir", dir, "--out", dir}, "--out"},
		{"migrate keep-snapshot directory", []string{"migrate", "--zk", zk, "--dry-run", "--keep-snapshot", dir}, "--keep-snapshot"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.args...)
			first, _, _ := strings.Cut(errOut, "\n")
			if code != ExitUsage || !strings.HasPrefix(first, "zk2raft: "+tc.flag+" ") {
				t.Errorf("exit %d, stderr %q; want exit %d and a line starting with %q", code, errOut, ExitUsage, "zk2raft: "+tc.flag+" ")
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left files behind in %s: %v", dir, ents)
	}
}

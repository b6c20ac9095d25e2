package cli

import (
	"runtime"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/internal/testlog"
)

// TestMalformedZKHosts: every verb that takes --zk rejects a malformed host
// at once, before connecting to anything, as a usage error (exit 2) whose
// line names the flag and the host.
func TestMalformedZKHosts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	verbs := map[string][]string{
		"export":     {"export", "--out", dir + "/x.snap"},
		"migrate":    {"migrate", "--dry-run"},
		"proxy":      {"proxy", "--listen", "127.0.0.1:0", "--journal", "127.0.0.1:1", "--queue-dir", dir + "/q"},
		"serve":      {"serve", "--data-dir", dir + "/d", "--node-id", "n", "--raft-addr", "127.0.0.1:0", "--proxy-addr", "127.0.0.1:0"},
		"dev digest": {"dev", "digest"},
		"dev seed":   {"dev", "seed"},
	}
	hosts := []struct{ name, zk, want string }{
		{"garbage", "garbage!!host:2181", "garbage!!host"},
		{"port out of range", "127.0.0.1:99999", "99999"},
		{"empty host", ":2181", `":2181"`},
		{"empty entry", "127.0.0.1:2181,,127.0.0.1:2182", "empty host"},
	}
	for verb, args := range verbs {
		for _, h := range hosts {
			t.Run(verb+"/"+h.name, func(t *testing.T) {
				code, _, errOut := run(t, append(append([]string{}, args...), "--zk", h.zk)...)
				first, _, _ := strings.Cut(errOut, "\n")
				if code != ExitUsage || !strings.HasPrefix(first, "zk2raft: --zk: ") || !strings.Contains(first, h.want) {
					t.Errorf("exit %d, stderr %q; want exit %d and one line naming --zk and %s", code, errOut, ExitUsage, h.want)
				}
			})
		}
	}
}

// TestExportNotZooKeeper points export at a port that answers with HTTP: it
// fails with one line saying the server is not ZooKeeper, at once (not
// after the connect timeout), without allocating what "HTTP" declares as a
// frame length (1.2 GB), in each read mode. Not parallel: it measures the
// process's allocations.
func TestExportNotZooKeeper(t *testing.T) {
	addr := testlog.HTTPAddr(t)
	dir := t.TempDir()
	for _, mode := range []string{"auto", "classic", "multiread"} {
		t.Run(mode, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			code, _, errOut := run(t, "export", "--zk", addr, "--read-mode", mode,
				"--connect-timeout", "1m", "--out", dir+"/x.snap", "--log-level", "error")
			runtime.ReadMemStats(&after)
			if code != ExitFailure || !strings.Contains(errOut, "not a ZooKeeper server") || !strings.Contains(errOut, `"HTTP/1.1 400`) ||
				strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want exit 1 and one line saying it is not ZooKeeper", code, errOut)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Errorf("allocated %d MiB", grew>>20)
			}
		})
	}
}

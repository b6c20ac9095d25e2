package cli

import (
	"strings"
	"testing"
)

// TestVerifyMalformedURI (issue 11 item 15): one rule for verify's sides: a
// URI that does not parse is a usage error (exit 2) whose line names the flag
// it came from, whichever flag and whatever is wrong with it. It used to
// exit 1 for a bad scheme and 2 for a missing one, and to call a bad
// --target "an invalid source".
func TestVerifyMalformedURI(t *testing.T) {
	t.Parallel()
	good := "snap://" + t.TempDir() + "/none.snap"
	bad := []struct{ name, uri string }{
		{"no scheme", "/just/a/path"},
		{"unknown scheme", "http://x"},
		{"zk without hosts", "zk://"},
		{"zk without port", "zk://localhost/x"},
		{"zk bad chroot", "zk://127.0.0.1:2181/bad/"},
		{"zk port out of range", "zk://127.0.0.1:99999"},
		{"snap without file", "snap://"},
		{"journal without dir", "journal://"},
		{"datadir unknown parameter", "datadir:///tmp/x?nope=1"},
		{"datadir bad zxid", "datadir:///tmp/x?zxid=-4"},
	}
	for _, flag := range []string{"--source", "--target"} {
		for _, b := range bad {
			t.Run(flag+"/"+b.name, func(t *testing.T) {
				args := []string{"verify", "--source", good, "--target", good}
				if flag == "--source" {
					args[2] = b.uri
				} else {
					args[4] = b.uri
				}
				code, _, errOut := run(t, args...)
				first, _, _ := strings.Cut(errOut, "\n")
				other := map[string]string{"--source": "source", "--target": "target"}[map[string]string{"--source": "--target", "--target": "--source"}[flag]]
				if code != ExitUsage || !strings.HasPrefix(first, "zk2raft: "+flag+" ") || strings.Contains(first, other) {
					t.Errorf("exit %d, stderr %q; want exit %d and a line starting with %q that does not mention the %s", code, errOut, ExitUsage, "zk2raft: "+flag+" ", other)
				}
			})
		}
	}
}

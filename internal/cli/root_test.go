package cli

import (
	"bytes"
	"strings"
	"testing"
)

// run drives the real root command the way main does.
func run(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		oneLiner bool
	}{
		{"version", []string{"version"}, ExitOK, "zk2raft ", "", false},
		{"version json", []string{"version", "--json"}, ExitOK, `"go_version"`, "", false},
		{"help", []string{"--help"}, ExitOK, "Exit codes", "", false},
		{"no args shows help", nil, ExitOK, "Usage:", "", false},
		{"unknown verb", []string{"bogus"}, ExitUsage, "", `unknown command "bogus"`, true},
		{"unknown flag", []string{"version", "--nope"}, ExitUsage, "", "unknown flag: --nope", true},
		{"extra argument", []string{"version", "x"}, ExitUsage, "", "takes no arguments", true},
		{"bad log level", []string{"--log-level", "loud", "version"}, ExitUsage, "", "--log-level", true},
		{"bad log format", []string{"--log-format", "xml", "version"}, ExitUsage, "", "--log-format", true},
		{"dev digest needs hosts", []string{"dev", "digest"}, ExitUsage, "", "--zk", true},
		{"dev rehearse needs hosts", []string{"dev", "rehearse"}, ExitUsage, "", "--zk", true},
		{"dev rehearse needs a journal to check", []string{"dev", "rehearse", "--zk", "127.0.0.1:1"}, ExitUsage, "", "--verify", true},
		{"unreachable ensemble", []string{"dev", "digest", "--zk", "127.0.0.1:1", "--timeout", "2s"}, ExitFailure, "", "ensemble unreachable", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tc.code, errOut)
			}
			if !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout %q does not contain %q", out, tc.stdout)
			}
			if !strings.Contains(errOut, tc.stderr) {
				t.Errorf("stderr %q does not contain %q", errOut, tc.stderr)
			}
			if tc.oneLiner {
				first := strings.SplitN(errOut, "\n", 2)[0]
				if !strings.HasPrefix(first, "zk2raft: ") || !strings.Contains(first, tc.stderr) {
					t.Errorf("error is not one line starting with zk2raft: %q", errOut)
				}
			}
		})
	}
}

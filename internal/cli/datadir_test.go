package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/internal/testlog"
)

// lastErrorLine is the "zk2raft: ..." line a failed verb ends with.
func lastErrorLine(stderr string) string {
	var last string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.HasPrefix(l, "zk2raft: ") {
			last = l
		}
	}
	return last
}

// Item 8: the start command an offline import prints is the one that serves
// the directory (its log store included), and serve refuses the directory
// under any other identity, naming both.
func TestImportedDataDirIdentity(t *testing.T) {
	root := cliRoot(t)
	exportTree(t, root)
	dir := t.TempDir()
	snap := filepath.Join(dir, "tree.snap")
	if code, _, errOut := run(t, "export", "--zk", sharedZK.ConnectString(), "--path", root, "--out", snap, "--auth", "digest:owner:pw"); code != ExitOK {
		t.Fatalf("export: exit %d %s", code, errOut)
	}
	data := filepath.Join(dir, "journal")
	raftAddr := testlog.FreeAddr(t)
	code, out, errOut := run(t, "import", "--snapshot", snap, "--data-dir", data, "--log-store", "bolt", "--node-id", "n1", "--raft-addr", raftAddr)
	if code != ExitOK {
		t.Fatalf("import: exit %d %s", code, errOut)
	}
	var start string
	for _, l := range strings.Split(out, "\n") {
		if _, cmd, ok := strings.Cut(l, "start it with: "); ok {
			start = cmd
		}
	}
	if !strings.Contains(start, "--log-store bolt") {
		t.Fatalf("the printed start command lacks --log-store bolt: %q\n%s", start, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"another node id", []string{"--node-id", "n2", "--raft-addr", raftAddr, "--log-store", "bolt"}, []string{`"n1"`, `"n2"`}},
		{"another raft address", []string{"--node-id", "n1", "--raft-addr", testlog.FreeAddr(t), "--log-store", "bolt"}, []string{raftAddr}},
		{"the other log store", []string{"--node-id", "n1", "--raft-addr", raftAddr}, []string{"raft.db"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, append([]string{"serve", "--data-dir", data, "--admin-addr", "127.0.0.1:0"}, tc.args...)...)
			line := lastErrorLine(errOut)
			if code != ExitFailure {
				t.Fatalf("serve: exit %d, want 1; stderr %s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error %q does not name %s", line, w)
				}
			}
		})
	}
	// The printed command (with the secret's flag filled in) serves it.
	args := strings.Fields(strings.TrimPrefix(start, "zk2raft "))
	for i, a := range args {
		if a == "FILE" {
			args[i] = testlogSecretFile(t)
		}
	}
	s := startServe(t, append(args[1:], "--admin-addr", "127.0.0.1:0")...)
	waitUntil(t, "the imported node to serve", func() error {
		if !strings.Contains(s.stdout.String(), "node n1 serving") {
			return fmt.Errorf("stderr: %s", lastErrorLine(s.stderr.String()))
		}
		return nil
	})
	if code := s.stop(t); code != ExitOK {
		t.Fatalf("serve exited %d: %s", code, s.stderr.String())
	}
	// A fresh directory needs --bootstrap or --join.
	if code, _, errOut := run(t, "serve", "--data-dir", filepath.Join(dir, "fresh"), "--node-id", "x", "--raft-addr", testlog.FreeAddr(t)); code != ExitFailure ||
		!strings.Contains(lastErrorLine(errOut), "holds no journal") {
		t.Errorf("serve on an empty dir without --bootstrap or --join: exit %d %s", code, errOut)
	}
}

// Item 6: serve refuses a data dir whose log lost entries, in one line naming
// the file; --accept-data-loss starts it once confirmed.
func TestServeDamagedDataDir(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "n1")
	args := []string{"serve", "--data-dir", data, "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t), "--admin-addr", "127.0.0.1:0"}
	s := startServe(t, append(args[1:], "--bootstrap")...)
	waitUntil(t, "the node to serve", func() error {
		if !strings.Contains(s.stdout.String(), "serving") {
			return errors.New("not yet")
		}
		return nil
	})
	if code := s.stop(t); code != ExitOK {
		t.Fatalf("serve exited %d: %s", code, s.stderr.String())
	}
	segs, _ := filepath.Glob(filepath.Join(data, "raft", "wal", "*.wal"))
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	for _, p := range segs {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errOut := run(t, args...)
	line := lastErrorLine(errOut)
	if code != ExitFailure || !strings.Contains(line, "data dir damaged") || !strings.Contains(line, segs[len(segs)-1]) || !strings.Contains(line, "--accept-data-loss") {
		t.Fatalf("serve on a damaged log: exit %d, %q", code, errOut)
	}
	// Offline verification refuses it too.
	code, _, errOut = run(t, "verify", "--source", "journal://"+data, "--target", "journal://"+data)
	if code != ExitFailure || !strings.Contains(lastErrorLine(errOut), "data dir damaged") {
		t.Fatalf("verify of a damaged data dir: exit %d, %q", code, errOut)
	}
	// Not confirmed (no answer on stdin): nothing happens.
	code, _, errOut = run(t, append(args, "--accept-data-loss")...)
	if code != ExitFailure || !strings.Contains(lastErrorLine(errOut), "not accepted") {
		t.Fatalf("--accept-data-loss without confirmation: exit %d, %q", code, errOut)
	}
	s = startServe(t, append(args[1:], "--accept-data-loss", "--yes")...)
	waitUntil(t, "the node to serve on what is left", func() error {
		if !strings.Contains(s.stdout.String(), "serving") {
			return errors.New("not yet: " + lastErrorLine(s.stderr.String()))
		}
		return nil
	})
	if !strings.Contains(s.stderr.String(), "accepting the loss") {
		t.Errorf("the accepted loss was not logged:\n%s", s.stderr.String())
	}
	if code := s.stop(t); code != ExitOK {
		t.Fatalf("serve exited %d: %s", code, s.stderr.String())
	}
}

// testlogSecretFile writes the tests' cluster secret to a file.
func testlogSecretFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(os.Getenv(envClusterSecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

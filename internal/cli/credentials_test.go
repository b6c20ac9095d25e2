package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/internal/testlog"
)

// Item 11: ZooKeeper credentials need not go on the command line (where ps
// shows them): --auth-file and $ZK2RAFT_ZK_AUTH give the same access as --auth,
// and --help says which to prefer. Not parallel: it sets the environment.
func TestZooKeeperCredentialsOffTheCommandLine(t *testing.T) {
	root := cliRoot(t)
	exportTree(t, root) // root/protected is digest owner:pw only
	hosts := sharedZK.ConnectString()
	dir := t.TempDir()
	authFile := filepath.Join(dir, "zk-auth")
	if err := os.WriteFile(authFile, []byte("# the exporter's identity\ndigest:owner:pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	export := func(t *testing.T, extra ...string) (int, string) {
		t.Helper()
		args := append([]string{"export", "--zk", hosts, "--path", root, "--out", filepath.Join(t.TempDir(), "x.snap"), "--json"}, extra...)
		code, out, errOut := run(t, args...)
		return code, out + errOut
	}
	if code, out := export(t); code != ExitFailure || !strings.Contains(out, "--allow-partial") {
		t.Fatalf("export without credentials: exit %d %s; want the NoAuth failure", code, out)
	}
	t.Run("auth-file", func(t *testing.T) {
		if code, out := export(t, "--auth-file", authFile); code != ExitOK || !strings.Contains(out, `"nodes": 48`) {
			t.Fatalf("export --auth-file: exit %d %s", code, out)
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv(envZKAuth, "digest:owner:pw")
		if code, out := export(t); code != ExitOK || !strings.Contains(out, `"nodes": 48`) {
			t.Fatalf("export with $%s: exit %d %s", envZKAuth, code, out)
		}
	})
	t.Run("auth-file from the environment", func(t *testing.T) {
		t.Setenv(envZKAuthFile, authFile)
		if code, out := export(t); code != ExitOK || !strings.Contains(out, `"nodes": 48`) {
			t.Fatalf("export with $%s: exit %d %s", envZKAuthFile, code, out)
		}
	})
	t.Run("a file others can read is refused", func(t *testing.T) {
		open := filepath.Join(dir, "open-auth")
		if err := os.WriteFile(open, []byte("digest:owner:pw\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out := export(t, "--auth-file", open); code != ExitUsage || !strings.Contains(out, "chmod 600") {
			t.Fatalf("export --auth-file of a world-readable file: exit %d %s", code, out)
		}
	})
	t.Run("a malformed line names the file and line, not the secret", func(t *testing.T) {
		bad := filepath.Join(dir, "bad-auth")
		if err := os.WriteFile(bad, []byte("digest:owner:pw\nhunter2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := export(t, "--auth-file", bad)
		if code != ExitUsage || !strings.Contains(out, "line 2") || strings.Contains(out, "hunter2") {
			t.Fatalf("export --auth-file with a bad line: exit %d %s", code, out)
		}
	})
	// Every verb that takes ZooKeeper credentials takes them from a file too,
	// and its help says to prefer it.
	for _, verb := range [][]string{{"export"}, {"migrate"}, {"verify"}, {"proxy"}, {"serve"}, {"dev", "digest"}} {
		code, out, _ := run(t, append(verb, "--help")...)
		if code != ExitOK {
			t.Fatalf("%v --help: exit %d", verb, code)
		}
		if !strings.Contains(out, "--auth-file") || !strings.Contains(out, "prefer --auth-file") {
			t.Errorf("%v --help does not offer --auth-file and say to prefer it:\n%s", verb, out)
		}
	}
}

// Item 9 on the command line: serve refuses to start without a cluster secret
// (unless --insecure), the secret comes from a file or the environment, and a
// command without it is refused by the node with a hint. Not parallel: it
// changes the environment.
func TestClusterSecretOnTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if code, out, errOut := run(t, "journal", "new-secret", "--out", secretFile); code != ExitOK || !strings.Contains(out, secretFile) {
		t.Fatalf("new-secret: exit %d %s %s", code, out, errOut)
	}
	if fi, err := os.Stat(secretFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new secret file: %v %v", fi.Mode(), err)
	}
	if code, _, errOut := run(t, "journal", "new-secret", "--out", secretFile); code != ExitFailure || !strings.Contains(errOut, "exists") {
		t.Fatalf("new-secret over an existing file: exit %d %s", code, errOut)
	}
	t.Setenv(envClusterSecret, "")
	serveArgs := func(name string, extra ...string) []string {
		return append([]string{"serve", "--data-dir", filepath.Join(dir, name), "--node-id", name, "--raft-addr", testlog.FreeAddr(t), "--bootstrap"}, extra...)
	}
	open := filepath.Join(dir, "open-secret")
	if err := os.WriteFile(open, []byte("0123456789abcdef0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short-secret")
	if err := os.WriteFile(short, []byte("tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no secret", serveArgs("a"), "no cluster secret"},
		{"world-readable secret", serveArgs("b", "--cluster-secret-file", open), "chmod 600"},
		{"short secret", serveArgs("c", "--cluster-secret-file", short), "at least 16"},
		{"insecure and a secret", serveArgs("d", "--cluster-secret-file", secretFile, "--insecure"), "exclude"},
		{"proxy without a secret", []string{"proxy", "--listen", "127.0.0.1:0", "--zk", "127.0.0.1:1", "--journal", "127.0.0.1:2", "--queue-dir", dir}, "no cluster secret"},
	} {
		if code, _, errOut := run(t, tc.args...); code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d %q, want a usage error with %q", tc.name, code, errOut, tc.want)
		}
	}

	admin := testlog.FreeAddr(t)
	s := startServe(t, "--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin, "--bootstrap", "--cluster-secret-file", secretFile)
	waitUntil(t, "the node to lead", func() error {
		code, _, errOut := run(t, "journal", "status", "--journal", admin, "--cluster-secret-file", secretFile)
		if code != ExitOK {
			return errors.New(errOut)
		}
		return nil
	})
	t.Run("from the environment", func(t *testing.T) {
		t.Setenv(envClusterSecretFile, secretFile)
		if code, _, errOut := run(t, "journal", "status", "--journal", admin); code != ExitOK {
			t.Fatalf("status with $%s: exit %d %s", envClusterSecretFile, code, errOut)
		}
	})
	if code, _, errOut := run(t, "journal", "status", "--journal", admin); code != ExitFailure ||
		!strings.Contains(errOut, "needs the cluster secret") || !strings.Contains(errOut, "--cluster-secret-file") {
		t.Errorf("status without the secret: exit %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "journal", "remove", "--journal", admin, "--id", "n1", "--cluster-secret-file", short+"-none"); code != ExitUsage {
		t.Errorf("remove with a missing secret file: exit %d %s", code, errOut)
	}
	other := filepath.Join(dir, "other")
	if code, _, _ := run(t, "journal", "new-secret", "--out", other); code != ExitOK {
		t.Fatal("new-secret")
	}
	if code, _, errOut := run(t, "journal", "remove", "--journal", admin, "--id", "n1", "--cluster-secret-file", other); code != ExitFailure || !strings.Contains(errOut, "not this cluster's") {
		t.Errorf("remove with another cluster's secret: exit %d %s", code, errOut)
	}
	if code := s.stop(t); code != ExitOK {
		t.Fatalf("serve exited %d: %s", code, s.stderr.String())
	}
}

// Item 9 on the command line: mutual TLS on a node's ports, for serve and the
// verbs that talk to it.
func TestClusterTLSOnTheCommandLine(t *testing.T) {
	ca := testlog.NewTLSCA(t, "cluster")
	tlsArgs := func(name string) []string {
		cert, key := ca.Issue(name)
		return []string{"--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", ca.CAFile}
	}
	admin := testlog.FreeAddr(t)
	s := startServe(t, append([]string{"--data-dir", filepath.Join(t.TempDir(), "n1"), "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin, "--bootstrap"}, tlsArgs("n1")...)...)
	tool := tlsArgs("tool")
	waitUntil(t, "the node to lead over TLS", func() error {
		code, _, errOut := run(t, append([]string{"journal", "status", "--journal", admin}, tool...)...)
		if code != ExitOK {
			return errors.New(errOut)
		}
		return nil
	})
	if !strings.Contains(s.stdout.String(), "admin https://") {
		t.Errorf("serve does not announce its admin port as https: %q", s.stdout.String())
	}
	if code, _, errOut := run(t, "journal", "status", "--journal", admin, "--timeout", "5s"); code != ExitFailure {
		t.Errorf("status without TLS: exit %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "journal", "status", "--journal", admin, "--cluster-tls-cert", "x.pem"); code != ExitUsage || !strings.Contains(errOut, "--cluster-tls") {
		t.Errorf("half the TLS flags: exit %d %s", code, errOut)
	}
	if code := s.stop(t); code != ExitOK {
		t.Fatalf("serve exited %d: %s", code, s.stderr.String())
	}
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// syncBuffer is a bytes.Buffer safe for a running verb and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serving is a `zk2raft serve` running in the test's process through the real
// root command, stopped by cancelling its context (as SIGTERM would).
type serving struct {
	cancel         context.CancelFunc
	done           chan int
	stdout, stderr *syncBuffer
}

func startServe(t *testing.T, args ...string) *serving {
	t.Helper()
	return startVerb(t, append([]string{"serve"}, args...)...)
}

// stop cancels serve and returns its exit code (once; later calls return -1).
func (s *serving) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code, ok := <-s.done:
		if !ok {
			return -1
		}
		close(s.done)
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop; stderr:\n%s", s.stderr.String())
		return -1
	}
}

// waitUntil waits for cond with a deadline generous enough for a machine
// loaded by parallel packages (30 s was not, for the journal's first reply).
func waitUntil(t *testing.T, what string, cond func() error) {
	t.Helper()
	testlog.WaitFor(t, 90*time.Second, what, cond)
}

func TestServeAndJournalStatus(t *testing.T) {
	dir := t.TempDir()
	admin1, admin2 := testlog.FreeAddr(t), testlog.FreeAddr(t)
	n1 := startServe(t, "--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin1, "--bootstrap")
	waitUntil(t, "n1 to lead", func() error {
		code, out, errOut := run(t, "journal", "status", "--journal", admin1, "--json")
		if code != ExitOK {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		var cs raftjournal.ClusterStatus
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			return err
		}
		if cs.Role != "leader" {
			return fmt.Errorf("role %s", cs.Role)
		}
		return nil
	})
	if !strings.Contains(n1.stdout.String(), "node n1 serving: raft ") {
		t.Errorf("serve did not announce itself: %q", n1.stdout.String())
	}
	client2 := testlog.FreeAddr(t)
	n2 := startServe(t, "--data-dir", filepath.Join(dir, "n2"), "--node-id", "n2", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin2, "--join", "http://"+admin1, "--client-addr", client2, "--4lw-whitelist", "ruok,isro")

	var cs raftjournal.ClusterStatus
	waitUntil(t, "two members that agree", func() error {
		code, out, errOut := run(t, "journal", "status", "--journal", admin2, "--json")
		if code != ExitOK {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		cs = raftjournal.ClusterStatus{}
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			return err
		}
		if len(cs.Members) != 2 {
			return fmt.Errorf("%d members", len(cs.Members))
		}
		for _, m := range cs.Members {
			if m.Status == nil || m.Status.AppliedIndex != cs.Members[0].Status.AppliedIndex || m.Status.Digest != cs.Digest {
				return fmt.Errorf("member %+v", m)
			}
		}
		return nil
	})
	if cs.ID != "n2" || cs.Leader != "n1" || cs.Phase != "shadow" || cs.NodeCount != 4 || cs.Term == 0 || cs.CommitIndex == 0 {
		t.Fatalf("status %+v", cs.MemberStatus)
	}

	code, out, errOut := run(t, "journal", "status", "--journal", admin1)
	if code != ExitOK {
		t.Fatalf("journal status: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"leader   n1 (", "phase    shadow", "members  2", "ID", "DIGEST", "n1", "leader", "n2", "follower", cs.Digest,
		"CLIENT ADDR", "CONNS", client2} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(n2.stdout.String(), "zookeeper clients: "+client2) {
		t.Errorf("serve did not announce its client port: %q", n2.stdout.String())
	}
	// The client port answers the four-letter words it was allowed, and
	// refuses the others with ZooKeeper's line; in shadow it is read-only.
	for word, want := range map[string]string{"ruok": "imok", "isro": "ro", "srvr": "srvr is not executed because it is not in the whitelist.\n"} {
		if got := fourLetter(t, client2, word); got != want {
			t.Errorf("%s on the client port: %q, want %q", word, got, want)
		}
	}

	// Leadership moves on request; then a clean stop of both.
	if code, out, errOut := run(t, "journal", "transfer-leadership", "--journal", admin2, "--to", "n2"); code != ExitOK {
		t.Fatalf("transfer-leadership: exit %d: %s %s", code, out, errOut)
	}
	waitUntil(t, "n2 to lead", func() error {
		_, out, _ := run(t, "journal", "status", "--journal", admin1, "--json")
		var cs raftjournal.ClusterStatus
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			return err
		}
		if cs.Leader != "n2" {
			return fmt.Errorf("leader %q", cs.Leader)
		}
		return nil
	})
	if code := n1.stop(t); code != ExitOK {
		t.Fatalf("serve n1 exited %d: %s", code, n1.stderr.String())
	}
	if code := n2.stop(t); code != ExitOK {
		t.Fatalf("serve n2 exited %d: %s", code, n2.stderr.String())
	}
	if !strings.Contains(n2.stderr.String(), "journal node closed") {
		t.Errorf("n2 did not log a clean close:\n%s", n2.stderr.String())
	}
}

func TestServeErrors(t *testing.T) {
	dir := t.TempDir()
	held := filepath.Join(dir, "held")
	admin := testlog.FreeAddr(t)
	s := startServe(t, "--data-dir", held, "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t), "--admin-addr", admin, "--bootstrap")
	waitUntil(t, "the first node", func() error {
		code, _, errOut := run(t, "journal", "status", "--journal", admin)
		if code != ExitOK {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		return nil
	})
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no data dir", []string{"serve", "--node-id", "a", "--raft-addr", "127.0.0.1:1"}, ExitUsage, "--data-dir is required"},
		{"no node id", []string{"serve", "--data-dir", dir, "--raft-addr", "127.0.0.1:1"}, ExitUsage, "--node-id is required"},
		{"bootstrap and join", []string{"serve", "--data-dir", dir, "--node-id", "a", "--raft-addr", "127.0.0.1:1", "--bootstrap", "--join", "x:1"}, ExitUsage, "exclusive"},
		{"bad log store", []string{"serve", "--data-dir", dir, "--node-id", "a", "--raft-addr", "127.0.0.1:1", "--log-store", "mem"}, ExitUsage, "LogStore"},
		{"data dir locked", []string{"serve", "--data-dir", held, "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t), "--bootstrap"}, ExitFailure,
			"data dir is locked by another process: " + filepath.Join(held, "LOCK")},
		{"raft address taken", []string{"serve", "--data-dir", filepath.Join(dir, "other"), "--node-id", "b", "--raft-addr", admin, "--bootstrap"}, ExitFailure,
			"listen on raft address " + admin},
		{"bad super digest", []string{"serve", "--data-dir", dir, "--node-id", "a", "--raft-addr", "127.0.0.1:1", "--client-addr", "127.0.0.1:0", "--super-digest", "nocolon"}, ExitUsage, `SuperDigest "nocolon": want`},
		{"unknown 4lw", []string{"serve", "--data-dir", dir, "--node-id", "a", "--raft-addr", "127.0.0.1:1", "--client-addr", "127.0.0.1:0", "--4lw-whitelist", "ruok,boom"}, ExitUsage, `four-letter word "boom"`},
		{"proxy needs zk", []string{"serve", "--data-dir", dir, "--node-id", "a", "--raft-addr", "127.0.0.1:1", "--proxy-addr", "127.0.0.1:0"}, ExitUsage, "--proxy-addr needs --zk"},
		{"bad reverse mirror marker", []string{"serve", "--data-dir", dir, "--node-id", "a", "--raft-addr", "127.0.0.1:1", "--zk", "127.0.0.1:1", "--reverse-mirror-marker", "zk2raft"}, ExitUsage, "--reverse-mirror-marker: "},
		{"status needs journal", []string{"journal", "status"}, ExitUsage, "--journal is required"},
		{"status unreachable", []string{"journal", "status", "--journal", "127.0.0.1:1", "--timeout", "2s"}, ExitFailure, "journal status: raftjournal: GET http://127.0.0.1:1/status"},
		{"remove needs id", []string{"journal", "remove", "--journal", admin}, ExitUsage, "--id is required"},
		// Item 17: removing a member that does not exist is an error, not "removed".
		{"remove unknown", []string{"journal", "remove", "--journal", admin, "--id", "ghost"}, ExitFailure, `no member "ghost"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errOut)
			}
			if tc.stderr == "" {
				return
			}
			var last string
			for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
				if strings.HasPrefix(l, "zk2raft: ") {
					last = l
				}
			}
			if !strings.Contains(last, tc.stderr) {
				t.Fatalf("error line %q does not contain %q; stderr:\n%s", last, tc.stderr, errOut)
			}
		})
	}
	if code := s.stop(t); code != ExitOK {
		t.Fatalf("serve exited %d: %s", code, s.stderr.String())
	}
}

// fourLetter sends a four-letter word to addr and returns the answer.
func fourLetter(t *testing.T, addr, word string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(word)); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(c); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Item 17: journal status fails on anything that is not a journal node's admin
// port, and a cluster without a leader has an exit code of its own.
func TestJournalStatusNoLeader(t *testing.T) {
	dir := t.TempDir()
	admin1, admin2 := testlog.FreeAddr(t), testlog.FreeAddr(t)
	n1 := startServe(t, "--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin1, "--bootstrap")
	n2 := startServe(t, "--data-dir", filepath.Join(dir, "n2"), "--node-id", "n2", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin2, "--join", admin1)
	waitUntil(t, "two members with a leader", func() error {
		code, out, errOut := run(t, "journal", "status", "--journal", admin1, "--json")
		if code != ExitOK {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		var cs raftjournal.ClusterStatus
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			return err
		}
		if len(cs.Members) != 2 || cs.Leader == "" {
			return fmt.Errorf("members %d, leader %q", len(cs.Members), cs.Leader)
		}
		// n2's own join has finished too (stopped during it, it exits 1).
		if !strings.Contains(n2.stdout.String(), "node n2 serving") {
			return errors.New("n2 has not finished joining")
		}
		return nil
	})
	// Without n2 the cluster has no quorum: n1 steps down and no one leads.
	if code := n2.stop(t); code != ExitOK {
		t.Fatalf("serve n2 exited %d: %s", code, n2.stderr.String())
	}
	var code int
	var out, errOut string
	waitUntil(t, "status to report no leader", func() error {
		code, out, errOut = run(t, "journal", "status", "--journal", admin1)
		if code != ExitNoLeader {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		return nil
	})
	if !strings.Contains(out, "leader   none") || !strings.Contains(errOut, "no leader") {
		t.Errorf("leaderless status: stdout %q, stderr %q", out, errOut)
	}
	n1.stop(t)
}

// Item 18: SIGTERM while serve --join retries stops the process at once, not
// when the join gives up.
func TestServeJoinStopsOnSignal(t *testing.T) {
	nobody := testlog.FreeAddr(t) // nothing listens there
	s := startServe(t, "--data-dir", filepath.Join(t.TempDir(), "n"), "--node-id", "n", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", testlog.FreeAddr(t), "--join", nobody)
	waitUntil(t, "a failed join attempt", func() error {
		if !strings.Contains(s.stderr.String(), "join failed, retrying") {
			return errors.New("no retry yet")
		}
		return nil
	})
	start := time.Now()
	code := s.stop(t) // fails the test if serve is still running after 30 s
	if code == ExitOK {
		t.Errorf("serve interrupted before it joined exited 0")
	}
	t.Logf("serve stopped %v after the signal, exit %d", time.Since(start).Round(time.Millisecond), code)
}

package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zktest"
)

// TestCutoverCommand runs the verbs as an operator would: a journal (serve
// with a client port), a proxy in front of its own ZooKeeper, `cutover
// status` (the proxy runs without a reconciler, so the repairs gate fails:
// exit 3, the gate named), `cutover --to primary` refused for that gate and
// then forced past it (exit 0, the steps printed), and a go-zookeeper
// session through the proxy that keeps its id and writes to the journal
// after the switch.
func TestCutoverCommand(t *testing.T) {
	ens, admin, listen := startCutoverRig(t, "--auth", "digest:mirror:secret") // the reverse mirror's credentials, for --fence
	writeThrough(t, listen, "/before", "zk")
	conn, _, err := zk.Connect([]string{listen}, 10*time.Second, zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitUntil(t, "a session through the proxy", func() error {
		_, _, err := conn.Get("/before")
		return err
	})
	session := conn.SessionID()

	// The proxy registers; the status names it and its failing gate.
	var out string
	waitUntil(t, "the proxy in cutover status", func() error {
		code, o, errOut := run(t, "cutover", "status", "--journal", admin, "--align")
		out = o
		if code != ExitDifferences || !strings.Contains(errOut, "failing gates: repairs") {
			return fmt.Errorf("exit %d: %s%s", code, o, errOut)
		}
		if !strings.Contains(o, "edge-1") || !strings.Contains(o, "no proxy runs a reconciler") {
			return fmt.Errorf("status: %s", o)
		}
		return nil
	})
	t.Logf("cutover status:\n%s", out)
	code, out, errOut := run(t, "cutover", "status", "--journal", admin, "--json")
	var st struct {
		Phase string `json:"phase"`
		Gates []struct {
			Name string `json:"name"`
			Pass bool   `json:"pass"`
		} `json:"gates"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != ExitDifferences || st.Phase != "shadow" || len(st.Gates) != 7 {
		t.Fatalf("status --json: exit %d, %v: %s %s", code, err, out, errOut)
	}
	code, _, errOut = run(t, "cutover", "--journal", admin, "--to", "primary")
	if code != ExitFailure || !strings.Contains(errOut, `gate "repairs" fails`) {
		t.Fatalf("cutover with a failing gate: exit %d, %q", code, errOut)
	}

	// Without --yes and without a terminal to confirm on, finalize is refused
	// before anything is asked of the journal.
	if code, _, errOut := run(t, "cutover", "--journal", admin, "--to", "finalized"); code != ExitFailure ||
		!strings.Contains(errOut, "refusing without --yes: stdin is not a terminal") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("--to finalized without --yes: exit %d, %q", code, errOut)
	}
	if code, _, errOut := run(t, "cutover", "resolve", "--journal", admin, "--all"); code != ExitUsage || !strings.Contains(errOut, "--note") {
		t.Fatalf("resolve without --note: exit %d, %q", code, errOut)
	}
	if code, _, errOut := run(t, "cutover", "--journal", admin, "--to", "primary", "--force", "nope"); code != ExitUsage {
		t.Fatalf("--force nope: exit %d, %q", code, errOut)
	}
	code, out, errOut = run(t, "cutover", "--journal", admin, "--to", "primary", "--force", "repairs", "--fence")
	if code != ExitOK || !strings.Contains(out, "committed") || !strings.Contains(out, "switch") || !strings.Contains(out, "fence on: ") {
		t.Fatalf("cutover: exit %d\n%s\n%s", code, out, errOut)
	}
	// The fence: ZooKeeper refuses a client that goes around the proxy.
	direct, _, err := zk.Connect(ens.Hosts(), 10*time.Second, zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	waitUntil(t, "a direct write refused by ZooKeeper", func() error {
		_, err := direct.Set("/before", []byte("around"), -1)
		if errors.Is(err, zk.ErrNoAuth) {
			return nil
		}
		return fmt.Errorf("direct setData: %v", err)
	})
	t.Logf("cutover:\n%s", out)

	// The session resumes on the journal through the proxy, and writes go there.
	waitUntil(t, "a write through the switched proxy", func() error {
		_, err := conn.Create("/after", []byte("journal"), 0, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	})
	if conn.SessionID() != session {
		t.Fatalf("session %#x became %#x", session, conn.SessionID())
	}
	journalHas(t, admin, "/after", "journal")
	code, out, _ = run(t, "cutover", "status", "--journal", admin)
	if code != ExitOK || !strings.Contains(out, "phase      primary") || !strings.Contains(out, "journal") ||
		!strings.Contains(out, "split-brain writes: 0 recorded, 0 unresolved") || !strings.Contains(out, "proxies-switched  pass") {
		t.Fatalf("status after: exit %d\n%s", code, out)
	}

	// Finalize, confirmed by --yes: the phase is committed and there is no
	// way back.
	code, out, errOut = run(t, "cutover", "--journal", admin, "--to", "finalized", "--yes")
	if code != ExitOK || !strings.Contains(out, "to finalized: committed") {
		t.Fatalf("--to finalized --yes: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = run(t, "cutover", "status", "--journal", admin)
	if code != ExitOK || !strings.Contains(out, "phase      finalized") {
		t.Fatalf("status after finalize: exit %d\n%s", code, out)
	}
}

// startCutoverRig starts what the cutover verbs run against: a ZooKeeper
// server, one journal node (serve with a client port and the reverse mirror
// on that ZooKeeper, plus serveArgs), leading, and a proxy with no
// reconciler in front of the ZooKeeper. It returns the ensemble, the
// journal's admin address and the proxy's client address.
func startCutoverRig(t *testing.T, serveArgs ...string) (ens *zktest.Ensemble, admin, listen string) {
	t.Helper()
	ens = zktest.New(t, zktest.Options{Servers: 1})
	dir := t.TempDir()
	admin = testlog.FreeAddr(t)
	startServe(t, append([]string{"--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin, "--client-addr", testlog.FreeAddr(t), "--bootstrap", "--zk", ens.ConnectString()}, serveArgs...)...)
	waitUntil(t, "the journal to lead", func() error {
		if code, _, errOut := run(t, "journal", "status", "--journal", admin); code != ExitOK {
			return errors.New(errOut)
		}
		return nil
	})
	listen = testlog.FreeAddr(t)
	startVerb(t, "proxy", "--listen", listen, "--zk", ens.ConnectString(), "--journal", admin,
		"--queue-dir", filepath.Join(dir, "queue"), "--admin-addr", testlog.FreeAddr(t), "--proxy-id", "edge-1", "--no-reconcile")
	return ens, admin, listen
}

package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// TestTailCommand runs `zk2raft tail` beside the shared ZooKeeper server into
// a fresh journal: a node written straight to ZooKeeper (no proxy) reaches
// the journal, /status and the journal's checkpoint say how far, and a
// second run resumes from that checkpoint.
func TestTailCommand(t *testing.T) {
	dir := t.TempDir()
	admin := testlog.FreeAddr(t)
	startServe(t, "--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin, "--bootstrap")
	waitUntil(t, "the journal to lead", func() error {
		code, _, errOut := run(t, "journal", "status", "--journal", admin)
		if code != ExitOK {
			return errors.New(errOut)
		}
		return nil
	})
	datadir := sharedZK.Servers()[0].DataDir
	// A server that has logged nothing yet has no log to follow; make sure
	// this one has.
	writeThrough(t, sharedZK.Hosts()[0], fmt.Sprintf("/tail-cli-before-%d", time.Now().UnixNano()), "before")
	tadmin := testlog.FreeAddr(t)
	tail := startVerb(t, "tail", "--datadir", datadir, "--journal", admin, "--admin-addr", tadmin,
		"--zk-server", sharedZK.Hosts()[0])
	waitUntil(t, "the tail to start", func() error {
		if !strings.Contains(tail.stdout.String(), "tail running") {
			return fmt.Errorf("stdout %q, stderr %q", tail.stdout.String(), tail.stderr.String())
		}
		return nil
	})
	if out := tail.stdout.String(); !strings.Contains(out, "the end of the log") {
		t.Errorf("a tail into a fresh journal should start at the end of the log: %q", out)
	}
	path := fmt.Sprintf("/tail-cli-%d", time.Now().UnixNano())
	writeThrough(t, sharedZK.Hosts()[0], path, "straight to ZooKeeper")
	journalHas(t, admin, path, "straight to ZooKeeper")

	// The tail's admin port wants the cluster secret.
	if resp, err := http.Get("http://" + tadmin + "/status"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/status without the secret: %v, %v", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	var st dualwrite.TailStatus
	resp := adminGet(t, "http://"+tadmin+"/status")
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st.Txns == 0 || st.MirroredZxid == "" || st.Checkpoint != dualwrite.TailCheckpointKey {
		t.Fatalf("/status %+v", st)
	}
	resp = adminGet(t, "http://"+tadmin+"/metrics")
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"zk2raft_tail_mirrored_zxid", "zk2raft_tail_lag_seconds", "zk2raft_tail_server_zxid", "zk2raft_tail_mirrored_total"} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
	if code := tail.stop(t); code != ExitOK {
		t.Fatalf("tail exited %d: %s", code, tail.stderr.String())
	}

	// The checkpoint the tail left in the journal, and a second run from it.
	j, err := importer.DialJournal(t.Context(), raftjournal.NewAdminClient(admin, raftjournal.Credentials{Secret: testlog.Secret()}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	prog, ok, err := dualwrite.ReadTailProgress(t.Context(), j, "")
	if err != nil || !ok || prog.Zxid == 0 || prog.DataDir != datadir {
		t.Fatalf("checkpoint %+v, %v, %v", prog, ok, err)
	}
	code, out, errOut := run(t, "journal", "status", "--journal", admin)
	if code != ExitOK || !strings.Contains(out, "tail     zk2raft/tail: every txn of ZooKeeper up to") {
		t.Errorf("journal status does not show the tail: exit %d\n%s%s", code, out, errOut)
	}
	again := startVerb(t, "tail", "--datadir", datadir, "--journal", admin)
	waitUntil(t, "the second tail to start", func() error {
		if !strings.Contains(again.stdout.String(), "tail running") {
			return fmt.Errorf("stdout %q, stderr %q", again.stdout.String(), again.stderr.String())
		}
		return nil
	})
	if out := again.stdout.String(); !strings.Contains(out, "checkpoint") {
		t.Errorf("the second tail should resume from the checkpoint: %q", out)
	}
	if code := again.stop(t); code != ExitOK {
		t.Fatalf("second tail exited %d: %s", code, again.stderr.String())
	}
}

func TestTailUsage(t *testing.T) {
	for _, args := range [][]string{
		{"tail", "--journal", "127.0.0.1:1"},
		{"tail", "--datadir", "d"},
		{"tail", "--datadir", "d", "--journal", "127.0.0.1:1", "--from-zxid", "x"},
	} {
		if code, _, errOut := run(t, args...); code != ExitUsage || !strings.Contains(errOut, "--") {
			t.Errorf("%v: exit %d, %q; want a usage error", args, code, errOut)
		}
	}
}

package importer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// runImport runs `zk2raft import` as a child process; killWhen, when set,
// is polled and the child gets SIGKILL as soon as it returns true (or it sees
// marker on the child's stderr).
func runImport(t *testing.T, args []string, marker string, killWhen func() bool) (killed bool, stdout string) {
	return runImportDelay(t, args, marker, 0, killWhen)
}

// runImportDelay is runImport killing the child delay after the marker.
func runImportDelay(t *testing.T, args []string, marker string, delay time.Duration, killWhen func() bool) (killed bool, stdout string) {
	t.Helper()
	cmd := exec.Command(zk2raftBin, append([]string{"import"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan struct{}, 1)
	var errOut strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errOut.WriteString(sc.Text() + "\n")
			if marker != "" && strings.Contains(sc.Text(), marker) {
				select {
				case seen <- struct{}{}:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("zk2raft import %v: %v\nstderr:\n%s", args, err, errOut.String())
			}
			return false, out.String()
		case <-seen:
			time.Sleep(delay)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			return true, out.String()
		case <-tick.C:
			if killWhen != nil && killWhen() {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-exited
				return true, out.String()
			}
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatal("zk2raft import did not finish in 2 minutes")
		}
	}
}

func importJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("import output is not JSON: %v\n%s", err, out)
	}
	return m
}

// TestKillOfflineImport kills `zk2raft import --data-dir` with SIGKILL while
// it reads the snapshot and while it writes the journal's snapshot, and
// reruns it each time: the rerun completes with the expected digest.
func TestKillOfflineImport(t *testing.T) {
	size := 60_000
	if *heavy {
		size = 1_000_000
	}
	dir := t.TempDir()
	snap := filepath.Join(dir, "export.snap")
	tr := synthetic(t, snap, size, true)
	want := tr.Digest + znode.Digest(PristineDigest("/zookeeper"))
	for _, tc := range []struct {
		name   string
		marker string
		after  time.Duration
	}{
		{"while reading", "", 150 * time.Millisecond},
		{"while installing", "creating new snapshot", 40 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "journal")
			args := []string{"--snapshot", snap, "--data-dir", data, "--raft-addr", freeAddr(t), "--json"}
			start := time.Now()
			var kill func() bool
			if tc.marker == "" {
				kill = func() bool { return time.Since(start) > tc.after }
			}
			killed, _ := runImportDelay(t, args, tc.marker, tc.after, kill)
			if !killed {
				t.Fatal("the import finished before it could be killed; make the snapshot larger")
			}
			t.Logf("killed after %v; data dir: %s", time.Since(start).Round(time.Millisecond), strings.ReplaceAll(dirState(t, data), "\n", "; "))
			killed, out := runImport(t, args, "", nil)
			if killed {
				t.Fatal("rerun killed")
			}
			m := importJSON(t, out)
			if m["journal_digest"] != want.String() || m["digest_equal"] != true {
				t.Fatalf("rerun: journal digest %v (equal %v), want %v", m["journal_digest"], m["digest_equal"], want)
			}
		})
	}
}

// TestKillOnlineImport kills `zk2raft import --journal` with SIGKILL once the
// journal holds part of the import, then reruns it: the rerun completes and
// every node of the cluster holds the expected digest.
func TestKillOnlineImport(t *testing.T) {
	size := 30_000
	if *heavy {
		size = 300_000
	}
	nodes := cluster(t, 3)
	snap := filepath.Join(t.TempDir(), "export.snap")
	tr := synthetic(t, snap, size, false)
	h, _, err := znode.ReadSnapshotTrailer(snap)
	if err != nil {
		t.Fatal(err)
	}
	key := SnapshotCheckpointKey(h, tr)
	want := tr.Digest + znode.Digest(PristineDigest("/zookeeper"))
	args := []string{"--snapshot", snap, "--journal", nodes[1].AdminAddr(), "--batch-bytes", "32768", "--in-flight", "4", "--json"}
	killed, _ := runImport(t, args, "", func() bool {
		raw, ok := nodes[0].FSM().Checkpoint(key)
		if !ok {
			return false
		}
		cp, err := DecodeCheckpoint(raw)
		return err == nil && cp.Nodes > int64(size)/4
	})
	if !killed {
		t.Fatal("the import finished before it could be killed; make the snapshot larger")
	}
	raw, _ := nodes[0].FSM().Checkpoint(key)
	t.Logf("killed with checkpoint %s; leader holds %d nodes", raw, nodes[0].FSM().NodeCount())
	if got := nodes[0].FSM().NodeCount(); got >= int(tr.NodeCount)+3 {
		t.Fatalf("the journal already holds all %d nodes: the kill came too late", got)
	}
	_, out := runImport(t, args, "", nil)
	m := importJSON(t, out)
	t.Logf("rerun: sent %v, skipped %v, checkpoint unsupported %v", m["sent"], m["skipped"], m["checkpoint_unsupported"])
	if got := converged(t, nodes); got != want {
		t.Fatalf("cluster digest %v after the rerun, want %v", got, want)
	}
	checkAgainstSnapshot(t, nodes[2].FSM(), snap)
	_, out = runImport(t, args, "", nil)
	switch m := importJSON(t, out); {
	case m["checkpoint_unsupported"] == true:
		t.Errorf("third run: the journal's admin endpoint did not report the checkpoint")
	case m["already_done"] != true:
		t.Errorf("third run: already_done %v, want true", m["already_done"])
	}
}

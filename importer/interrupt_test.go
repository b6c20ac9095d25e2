package importer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// cancelOn is a slog handler that cancels a context when a record with the
// message "phase done" names the phase, and passes every record on.
type cancelOn struct {
	slog.Handler
	phase  string
	cancel context.CancelFunc
}

func (h cancelOn) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "phase done" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "phase" && a.Value.String() == h.phase {
				h.cancel()
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

func (h cancelOn) WithAttrs(as []slog.Attr) slog.Handler {
	return cancelOn{h.Handler.WithAttrs(as), h.phase, h.cancel}
}

// TestMigrateInterruptedAtInstall (issue 11 item 5): Ctrl-C while a
// data-dir migration installs its snapshot (the install runs to its end, so
// the signal is seen just after it) used to end in "verified" although the
// ZooKeeper check said "operation was canceled". An interrupted migration
// returns an error matching the cancellation that says what it left: here a
// complete, read-back initial snapshot that nothing verified.
func TestMigrateInterruptedAtInstall(t *testing.T) {
	t.Parallel()
	ens := zktest.New(t, zktest.Options{Servers: 1})
	hosts := ens.Hosts()
	c, _, err := zk.Connect(hosts, 30e9, zk.WithLogger(nopZKLogger{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{"/app", "/app/a", "/app/b"} {
		if _, err := c.Create(p, []byte(p), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []VerifyMode{VerifyDigest, VerifyFull} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			logger := slog.New(cancelOn{testLogger(t).Handler(), "install", cancel})
			o := MigrateOptions{Walk: exporter.DefaultConfig(hosts), Import: DefaultOptions(), Logger: logger, Verify: mode}
			o.Walk.Root, o.Walk.Logger = "/app", logger
			o.Node = raftjournal.DefaultNodeConfig()
			o.Node.DataDir, o.Node.NodeID, o.Node.RaftAddr = filepath.Join(t.TempDir(), "j"), "node-1", "127.0.0.1:7000"
			sum, err := Migrate(ctx, o)
			if sum != nil {
				for _, ch := range sum.Verification {
					t.Logf("check %s: %v — %s", ch.Check, ch.Result, ch.Detail)
				}
			}
			if err == nil {
				t.Fatalf("Migrate returned no error after the interrupt; verdict %v", sum.Verdict)
			}
			if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrInterrupted) ||
				!strings.Contains(err.Error(), o.Node.DataDir) || !strings.Contains(err.Error(), "not verified") {
				t.Fatalf("error %q: want one matching context.Canceled and ErrInterrupted that names %s and says it is not verified", err, o.Node.DataDir)
			}
			if sum != nil && sum.Verified {
				t.Errorf("an interrupted migration's summary says verified")
			}
			if _, err := os.Stat(o.Node.DataDir); err != nil {
				t.Errorf("the install the error describes is not there: %v", err)
			}
		})
	}
}

// TestMigrateCtrlC (issue 11 item 5) sends SIGINT to a real `zk2raft
// migrate` process while it walks (slowed by --rate): it exits 1 with one
// line saying it was interrupted and what it left (nothing: the data dir was
// not written), and prints no verdict.
func TestMigrateCtrlC(t *testing.T) {
	t.Parallel()
	ens := zktest.New(t, zktest.Options{Servers: 1})
	hosts := ens.Hosts()
	tree, err := treegen.Seed(t.Context(), hosts, treegen.Options{Profile: treegen.ProfileKafka, Nodes: 3000, Seed: 8, Root: "/app"})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	data := filepath.Join(t.TempDir(), "journal")
	cmd := exec.Command(zk2raftBin, "migrate", "--zk", strings.Join(hosts, ","), "--path", "/app", "--data-dir", data,
		"--rate", "5", "--no-progress", "--log-level", "info")
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var errOut strings.Builder
	sc := bufio.NewScanner(stderr)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		errOut.WriteString(line + "\n")
		if !signalled && strings.Contains(line, `msg="phase done" phase=connect`) {
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !signalled || !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("signalled %v, exit %v; stderr:\n%s", signalled, err, errOut.String())
	}
	last := strings.TrimSpace(errOut.String())
	last = last[strings.LastIndexByte(last, '\n')+1:]
	if !strings.HasPrefix(last, "zk2raft: migration interrupted during the export+import") || !strings.Contains(last, "nothing was written to "+data) {
		t.Errorf("last line %q: want the interruption and what it left", last)
	}
	if strings.Contains(out.String(), "verified") {
		t.Errorf("stdout claims a verdict:\n%s", out.String())
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the interrupted migration created %s: %v", data, err)
	}
}

//go:build linux

package dualwrite

// The tap in a process of its own (internal/testproc): the test binary
// re-executed into TestTapProcess, for TestTapKill9 (which kills it) and the
// proxy benchmark (which accounts its CPU time apart and pins it to a CPU).

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/raftjournal"
)

const tapProcessEnv = "ZK2RAFT_DUALWRITE_TAP"

type tapSpec struct {
	Listen, QueueDir string
	ZK               []string
	// JournalDir, when set, makes the process a journal node as well (a
	// one-node cluster on disk at JournalDir, Raft on RaftAddr) that the tap
	// mirrors into, as `zk2raft serve --proxy-addr` runs it; otherwise the
	// journal is unreachable and every mirror stays in the queue.
	JournalDir, RaftAddr string
	Sync                 bool
	CPUProfile           string // file for a CPU profile of the process's life
	Trace                string // file for a runtime/trace of the process's life
	// BytesRelay runs, in place of a Tap, a relay that copies bytes without
	// decoding or mirroring anything: the floor of any proxy's cost.
	BytesRelay bool
	RelayMode  string // the byte relay's way of copying (relayModes), "" for io.Copy
	// QueueNoSync skips the queue's fsyncs (experiments only).
	QueueNoSync bool
	// NoJournal leaves the tap without a journal (startTapProcess fills in
	// JournalDir otherwise): its mirrors stay in the queue (experiments only).
	NoJournal bool
	// GOMAXPROCS, when > 0, sets the process's (experiments only).
	GOMAXPROCS int
}

// variant names what the process is when it is not the plain tap, for
// file names: "" for the tap, else e.g. ".relay-copy", ".nojournal-p1".
func (s tapSpec) variant() string {
	var v []string
	if s.BytesRelay {
		v = append(v, "relay-"+cmp.Or(s.RelayMode, "copy"))
	}
	if s.NoJournal {
		v = append(v, "nojournal")
	}
	if s.QueueNoSync {
		v = append(v, "nosync")
	}
	if s.GOMAXPROCS > 0 {
		v = append(v, fmt.Sprintf("p%d", s.GOMAXPROCS))
	}
	if len(v) == 0 {
		return ""
	}
	return "." + strings.Join(v, "-")
}

// downJournal is a journal cluster that cannot be reached.
type downJournal struct{}

func (downJournal) Submit(context.Context, []byte) (*raftjournal.Result, error) {
	return nil, errors.New("journal unreachable")
}

// TestTapProcess is not a test: it is the body of a tap process started by
// TestTapKill9 and by the proxy benchmark. On SIGTERM it waits for the queue
// to be delivered, prints the tap's Status as JSON on stdout and exits, 0
// only if every mirror reached the journal.
func TestTapProcess(t *testing.T) {
	var spec tapSpec
	if !testproc.Child(tapProcessEnv, &spec) {
		return
	}
	if spec.GOMAXPROCS > 0 {
		runtime.GOMAXPROCS(spec.GOMAXPROCS)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "cpu profile:", err)
			os.Exit(3)
		}
		defer pprof.StopCPUProfile() // before os.Exit, below
	}
	if spec.Trace != "" {
		f, err := os.Create(spec.Trace)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "trace:", err)
			os.Exit(3)
		}
		defer trace.Stop()
	}
	if spec.BytesRelay {
		if _, err := bytesRelay(spec.Listen, spec.ZK, spec.RelayMode); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(3)
		}
		testproc.WaitSignal()
		fmt.Println("{}")
		pprof.StopCPUProfile()
		trace.Stop()
		os.Exit(0)
	}
	cfg := DefaultConfig()
	cfg.Listen, cfg.QueueDir, cfg.ZK, cfg.Journal, cfg.Sync = spec.Listen, spec.QueueDir, spec.ZK, downJournal{}, spec.Sync
	cfg.Logger = log
	cfg.QueueNoSync = spec.QueueNoSync
	closeJournal := func() {}
	if spec.JournalDir != "" {
		nc := raftjournal.DefaultNodeConfig()
		nc.NodeID, nc.DataDir, nc.RaftAddr, nc.AdminAddr, nc.Bootstrap = "j1", spec.JournalDir, spec.RaftAddr, "127.0.0.1:0", true
		nc.Secret = testCreds().Secret
		nc.Logger = log
		n, err := raftjournal.Open(nc)
		if err != nil {
			fmt.Fprintln(os.Stderr, "open journal:", err)
			os.Exit(3)
		}
		closeJournal = func() { n.Close() }
		for deadline := time.Now().Add(30 * time.Second); !n.IsLeader(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "journal node never became leader")
				os.Exit(3)
			}
		}
		cfg.Journal = importer.NodeJournal(n)
	}
	tap, err := Start(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(3)
	}
	testproc.WaitSignal()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := 0
	if err := tap.WaitDelivered(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "not delivered:", err)
		code = 4
	}
	st := tap.Status()
	if st.Lost != nil {
		code = 4
	}
	_ = json.NewEncoder(os.Stdout).Encode(st)
	tap.Close()
	closeJournal()
	pprof.StopCPUProfile()
	trace.Stop()
	os.Exit(code)
}

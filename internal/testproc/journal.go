//go:build linux

package testproc

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkserver"
)

// journalEnv carries a JournalSpec to a journal node process.
const journalEnv = "ZK2RAFT_JOURNAL_PROCESS"

// JournalSpec is a journal node to run in a process of its own, with the
// short loopback timings of the tests (400 ms heartbeat and election, 200 ms
// lease, 5 ms commit).
type JournalSpec struct {
	ID, DataDir, RaftAddr, AdminAddr string
	Bootstrap                        bool
	Join                             string // admin address of a member
	Secret                           []byte // the cluster secret
	// ClientAddr, when set, serves the ZooKeeper protocol there (zkserver,
	// four-letter words all allowed).
	ClientAddr string
}

// LogFile is where the node's output goes: <ID>.log beside its data dir,
// one file across restarts.
func (s JournalSpec) LogFile() string { return filepath.Join(filepath.Dir(s.DataDir), s.ID+".log") }

// JournalChild is the body of a journal node process. A package whose tests
// start them (StartJournal) must have a test that calls it first thing:
//
//	// TestJournalProcess is not a test: the body of the journal node
//	// processes the fault tests start.
//	func TestJournalProcess(t *testing.T) { testproc.JournalChild() }
//
// In a normal run it returns at once. In a child it opens the node, serves
// until SIGTERM, closes it and exits (3: the node did not open, 4: it did
// not close cleanly).
func JournalChild() {
	var spec JournalSpec
	if !Child(journalEnv, &spec) {
		return
	}
	cfg := raftjournal.DefaultNodeConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.AdminAddr = spec.ID, spec.DataDir, spec.RaftAddr, spec.AdminAddr
	cfg.Bootstrap, cfg.Join, cfg.Secret = spec.Bootstrap, spec.Join, spec.Secret
	LoopbackTimings(&cfg)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := raftjournal.Open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var srv *zkserver.Server
	if spec.ClientAddr != "" {
		sc := zkserver.DefaultConfig()
		sc.Addr, sc.TickTime, sc.MaxSessionTimeout = spec.ClientAddr, 500*time.Millisecond, 60*time.Second
		sc.FourLetterWords, sc.MaxClientConnsPerIP = []string{"*"}, 0
		sc.Logger = cfg.Logger.With("component", "zkserver")
		if srv, err = zkserver.New(n, sc); err != nil {
			fmt.Fprintln(os.Stderr, "client port:", err)
			os.Exit(3)
		}
	}
	WaitSignal()
	if srv != nil {
		srv.Close()
	}
	if err := n.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		os.Exit(4)
	}
	os.Exit(0)
}

// Journal is a journal node running in a child process.
type Journal struct {
	Spec JournalSpec
	*Process
}

// StartJournal runs spec's node in a child process (the test binary
// re-executed into TestJournalProcess), killed when t ends if it still runs.
func StartJournal(t testing.TB, spec JournalSpec) *Journal {
	t.Helper()
	p := Start(t, Options{Test: "TestJournalProcess", Env: journalEnv, Spec: spec, LogFile: spec.LogFile()})
	return &Journal{Spec: spec, Process: p}
}

// StopClean stops the node with SIGTERM and fails t unless it closed
// cleanly (under -race, a child that saw a data race exits with status 66).
func (j *Journal) StopClean(t testing.TB) {
	t.Helper()
	if err := j.Stop(30 * time.Second); err != nil {
		t.Errorf("journal node %s: %v; see %s", j.Spec.ID, err, j.Spec.LogFile())
	}
}

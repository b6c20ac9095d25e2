//go:build linux

package testproc

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/zkclient"
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
	// ReverseMirror, when its Hosts are set, runs the reverse mirror beside
	// the node with its status extension, as `serve --zk` does.
	ReverseMirror ReverseMirrorSpec
	// SuperDigest is ZooKeeper's super user for tree reads over the admin
	// port (NodeConfig.SuperDigest), "super:BASE64(SHA1(super:PASSWORD))".
	SuperDigest string
}

// ReverseMirrorSpec is the reverse mirror a journal node process runs.
type ReverseMirrorSpec struct {
	Hosts []string // ZooKeeper's servers
	// SuperCred is ZooKeeper's super user, "super:PASSWORD" (digest).
	SuperCred string
	// Throttle is reversemirror.Config.Throttle (a test holds a lag with it);
	// MaxBatchOps its batch bound (0: the default).
	Throttle    time.Duration
	MaxBatchOps int
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
	cfg.SuperDigest = spec.SuperDigest
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
	stopMirror := func() {}
	if rm := spec.ReverseMirror; len(rm.Hosts) > 0 {
		mc := reversemirror.Config{Node: n, Throttle: rm.Throttle, MaxBatchOps: rm.MaxBatchOps, Logger: cfg.Logger.With("component", "reversemirror")}
		mc.ZooKeeper.Hosts = rm.Hosts
		mc.ZooKeeper.Auth = []zkclient.Auth{{Scheme: "digest", Cred: []byte(rm.SuperCred)}}
		mc.ZooKeeper.SessionTimeout = 10 * time.Second
		m, err := reversemirror.New(mc)
		if err != nil {
			fmt.Fprintln(os.Stderr, "reverse mirror:", err)
			os.Exit(3)
		}
		n.SetStatusExtension("reverse_mirror", func() any { return m.Status() })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		stopMirror = func() { cancel(); <-done }
	}
	WaitSignal()
	stopMirror()
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

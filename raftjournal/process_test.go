//go:build linux

package raftjournal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/znode"
)

// The kill -9 test runs each node in its own process (internal/testproc):
// the test binary itself, re-executed to run TestNodeProcess with the node's
// configuration in $ZK2RAFT_NODE_PROCESS. SIGKILL then loses whatever a real
// crash loses (the process, its goroutines and buffers; not the page cache).

const nodeProcessEnv = "ZK2RAFT_NODE_PROCESS"

type processSpec struct {
	ID, DataDir, RaftAddr, AdminAddr, Join string
	Bootstrap                              bool
	Secret                                 []byte
}

// TestNodeProcess is not a test: it is the body of a node process started by
// TestClusterKill9, and does nothing in a normal run.
func TestNodeProcess(t *testing.T) {
	var spec processSpec
	if !testproc.Child(nodeProcessEnv, &spec) {
		return
	}
	cfg := DefaultNodeConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.AdminAddr = spec.ID, spec.DataDir, spec.RaftAddr, spec.AdminAddr
	cfg.Bootstrap, cfg.Join, cfg.Secret = spec.Bootstrap, spec.Join, spec.Secret
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 400*time.Millisecond, 400*time.Millisecond, 200*time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := Open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	testproc.WaitSignal()
	if err := n.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		os.Exit(4)
	}
	os.Exit(0)
}

// nodeProcess is a running child node.
type nodeProcess struct {
	spec processSpec
	proc *testproc.Process
}

// logFile is where a node process's output goes (one file per node, across
// restarts).
func (s processSpec) logFile() string { return filepath.Join(filepath.Dir(s.DataDir), s.ID+".log") }

func startNodeProcess(t *testing.T, spec processSpec) *nodeProcess {
	t.Helper()
	p := testproc.Start(t, testproc.Options{Test: "TestNodeProcess", Env: nodeProcessEnv, Spec: spec, LogFile: spec.logFile()})
	return &nodeProcess{spec: spec, proc: p}
}

// kill sends SIGKILL and reaps the process.
func (p *nodeProcess) kill(*testing.T) { p.proc.Kill() }

// stop sends SIGTERM and checks the node closed cleanly (and, under -race,
// that the child saw no data race: that exits with status 66).
func (p *nodeProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.proc.Stop(30 * time.Second); err != nil {
		t.Errorf("node %s: %v; see %s.log", p.spec.ID, err, p.spec.ID)
	}
}

func TestClusterKill9(t *testing.T) {
	base := t.TempDir()
	specs := make([]processSpec, 3)
	for i := range specs {
		specs[i] = processSpec{ID: fmt.Sprintf("p%d", i+1), DataDir: filepath.Join(base, fmt.Sprintf("p%d", i+1), "data"),
			RaftAddr: freeAddr(t), AdminAddr: freeAddr(t), Secret: testCreds().Secret}
	}
	specs[0].Bootstrap = true
	specs[1].Join, specs[2].Join = specs[0].AdminAddr, specs[0].AdminAddr
	procs := make([]*nodeProcess, 3)
	var procMu sync.Mutex
	t.Cleanup(func() {
		procMu.Lock()
		defer procMu.Unlock()
		for _, p := range procs {
			if p != nil {
				p.kill(t)
			}
		}
		if t.Failed() {
			for _, s := range specs {
				t.Logf("%s log tail:\n%s", s.ID, testproc.LogTail(s.logFile(), 60))
			}
		}
	})
	ctx := t.Context()
	cl := newRPCClient(5*time.Second, testCreds())
	defer cl.close()
	status := func(addr string) (MemberStatus, error) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return RemoteStatus(cctx, testCreds(), addr)
	}
	for i := range specs {
		procs[i] = startNodeProcess(t, specs[i])
		waitFor(t, 60*time.Second, specs[i].ID+" to serve with a leader", func() error {
			ms, err := status(specs[i].RaftAddr)
			if err != nil {
				return err
			}
			if ms.Leader == "" {
				return errors.New("no leader yet")
			}
			return nil
		})
	}
	// leaderAddr asks the nodes who leads.
	leaderAddr := func() string {
		for _, s := range specs {
			if ms, err := status(s.RaftAddr); err == nil && ms.Role == "leader" {
				return s.RaftAddr
			}
		}
		return ""
	}
	apply := func(c Command) (*Result, error) {
		addr := leaderAddr()
		if addr == "" {
			return nil, ErrNoLeader
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := cl.call(cctx, addr, rpcApply, Encode(c))
		if err != nil {
			return nil, err
		}
		return decodeResult(resp)
	}
	waitFor(t, 30*time.Second, "the primary phase", func() error {
		res, err := apply(&SetPhase{Phase: PhasePrimary})
		if err == nil {
			err = res.Err
		}
		return err
	})
	mustCreate := func(path string) error {
		res, err := apply(&Write{Ops: []Op{{Kind: OpCreate, Path: path, Data: []byte(path), ACL: znode.WorldAnyone()}}})
		if err == nil {
			err = res.Err
		}
		return err
	}
	waitFor(t, 30*time.Second, "/k", func() error { return mustCreate("/k") })

	var (
		mu    sync.Mutex
		acked []string
		tried atomic.Int64
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("/k/%d-%d", w, i)
				tried.Add(1)
				if err := mustCreate(p); err == nil {
					mu.Lock()
					acked = append(acked, p)
					mu.Unlock()
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	// One kill of the leader; ZK2RAFT_LONG_TESTS=1 kills five leaders in a
	// row with more writes in between.
	rounds, perPhase := 1, int64(300)
	if os.Getenv("ZK2RAFT_LONG_TESTS") != "" {
		rounds, perPhase = 5, 2000
	}
	var killed []string
	for range rounds {
		before := tried.Load()
		waitFor(t, 120*time.Second, "writes before the kill", func() error {
			if tried.Load() < before+perPhase {
				return fmt.Errorf("%d writes", tried.Load()-before)
			}
			return nil
		})
		victim := -1
		waitFor(t, 30*time.Second, "a leader to kill", func() error {
			addr := leaderAddr()
			for i, s := range specs {
				if s.RaftAddr == addr {
					victim = i
					return nil
				}
			}
			return errors.New("no leader")
		})
		procMu.Lock()
		procs[victim].kill(t)
		procs[victim] = nil
		procMu.Unlock()
		killed = append(killed, specs[victim].ID)
		before = tried.Load()
		waitFor(t, 120*time.Second, "writes after the kill", func() error {
			if tried.Load() < before+perPhase {
				return fmt.Errorf("%d writes since the kill", tried.Load()-before)
			}
			return nil
		})
		spec := specs[victim]
		spec.Bootstrap, spec.Join = false, ""
		procMu.Lock()
		procs[victim] = startNodeProcess(t, spec)
		procMu.Unlock()
		waitFor(t, 60*time.Second, "the killed node back", func() error {
			_, err := status(spec.RaftAddr)
			return err
		})
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	var digest string
	waitFor(t, 60*time.Second, "convergence", func() error {
		var first MemberStatus
		for i, s := range specs {
			ms, err := status(s.RaftAddr)
			if err != nil {
				return err
			}
			if i == 0 {
				first = ms
				continue
			}
			if ms.AppliedIndex != first.AppliedIndex || ms.Digest != first.Digest {
				return fmt.Errorf("%s applied %d digest %s; %s applied %d digest %s", s.ID, ms.AppliedIndex, ms.Digest, specs[0].ID, first.AppliedIndex, first.Digest)
			}
		}
		digest = first.Digest
		return nil
	})
	mu.Lock()
	t.Logf("%d writes tried, %d acknowledged, killed the leader %d times (%v); converged on digest %s", tried.Load(), len(acked), len(killed), killed, digest)
	for _, s := range specs {
		for _, p := range acked {
			data, _, ok, err := RemoteRead(ctx, testCreds(), s.RaftAddr, p, false)
			if err != nil {
				t.Fatal(err)
			}
			if !ok || string(data) != p {
				t.Fatalf("%s lost acknowledged write %s (exists %t, data %q)", s.ID, p, ok, data)
			}
		}
	}
	mu.Unlock()
	procMu.Lock()
	defer procMu.Unlock()
	for i, p := range procs {
		p.stop(t)
		procs[i] = nil
	}
}

//go:build linux

package raftjournal_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// The kill -9 test runs each node in its own process, the journal-process
// harness dualwrite's fault tests share (internal/testproc): the test binary
// re-executed into TestJournalProcess. SIGKILL then loses whatever a real
// crash loses (the process, its goroutines and buffers; not the page cache).
// It is an external test so that it may import the harness, which imports
// raftjournal.

// TestJournalProcess is not a test: it is the body of the node processes
// TestClusterKill9 starts, and does nothing in a normal run.
func TestJournalProcess(t *testing.T) { testproc.JournalChild() }

// creds are the test cluster's credentials.
func creds() raftjournal.Credentials { return raftjournal.Credentials{Secret: testlog.Secret()} }

func TestClusterKill9(t *testing.T) {
	base := t.TempDir()
	specs := make([]testproc.JournalSpec, 3)
	for i := range specs {
		specs[i] = testproc.JournalSpec{ID: fmt.Sprintf("p%d", i+1), DataDir: filepath.Join(base, fmt.Sprintf("p%d", i+1), "data"),
			RaftAddr: testlog.FreeAddr(t), AdminAddr: testlog.FreeAddr(t), Secret: creds().Secret}
	}
	specs[0].Bootstrap = true
	specs[1].Join, specs[2].Join = specs[0].AdminAddr, specs[0].AdminAddr
	procs := make([]*testproc.Journal, 3)
	var procMu sync.Mutex
	t.Cleanup(func() {
		procMu.Lock()
		defer procMu.Unlock()
		for _, p := range procs {
			if p != nil {
				p.Kill()
			}
		}
		if t.Failed() {
			for _, s := range specs {
				t.Logf("%s log tail:\n%s", s.ID, testproc.LogTail(s.LogFile(), 60))
			}
		}
	})
	ctx := t.Context()
	cl := raftjournal.NewRPCClient(creds(), 5*time.Second)
	defer cl.Close()
	status := func(addr string) (raftjournal.MemberStatus, error) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return raftjournal.RemoteStatus(cctx, creds(), addr)
	}
	for i := range specs {
		procs[i] = testproc.StartJournal(t, specs[i])
		testlog.WaitFor(t, 60*time.Second, specs[i].ID+" to serve with a leader", func() error {
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
	apply := func(c raftjournal.Command) (*raftjournal.Result, error) {
		addr := leaderAddr()
		if addr == "" {
			return nil, raftjournal.ErrNoLeader
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return cl.Apply(cctx, addr, raftjournal.Encode(c))
	}
	testlog.WaitFor(t, 30*time.Second, "the primary phase", func() error {
		res, err := apply(&raftjournal.SetPhase{Phase: raftjournal.PhasePrimary})
		if err == nil {
			err = res.Err
		}
		return err
	})
	mustCreate := func(path string) error {
		res, err := apply(&raftjournal.Write{Ops: []raftjournal.Op{{Kind: raftjournal.OpCreate, Path: path, Data: []byte(path), ACL: znode.WorldAnyone()}}})
		if err == nil {
			err = res.Err
		}
		return err
	}
	testlog.WaitFor(t, 30*time.Second, "/k", func() error { return mustCreate("/k") })

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
		testlog.WaitFor(t, 120*time.Second, "writes before the kill", func() error {
			if tried.Load() < before+perPhase {
				return fmt.Errorf("%d writes", tried.Load()-before)
			}
			return nil
		})
		victim := -1
		testlog.WaitFor(t, 30*time.Second, "a leader to kill", func() error {
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
		procs[victim].Kill()
		procs[victim] = nil
		procMu.Unlock()
		killed = append(killed, specs[victim].ID)
		before = tried.Load()
		testlog.WaitFor(t, 120*time.Second, "writes after the kill", func() error {
			if tried.Load() < before+perPhase {
				return fmt.Errorf("%d writes since the kill", tried.Load()-before)
			}
			return nil
		})
		spec := specs[victim]
		spec.Bootstrap, spec.Join = false, ""
		procMu.Lock()
		procs[victim] = testproc.StartJournal(t, spec)
		procMu.Unlock()
		testlog.WaitFor(t, 60*time.Second, "the killed node back", func() error {
			_, err := status(spec.RaftAddr)
			return err
		})
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	var digest string
	testlog.WaitFor(t, 60*time.Second, "convergence", func() error {
		var first raftjournal.MemberStatus
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
			data, _, ok, err := raftjournal.RemoteRead(ctx, creds(), s.RaftAddr, p, false)
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
		p.StopClean(t)
		procs[i] = nil
	}
}

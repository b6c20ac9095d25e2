package zkserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/freeport"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkserver"
)

// The package's tests share one ZooKeeper 3.8 ensemble (three servers, the
// oracle of the differential suite) and one three-node journal in primary
// whose every node serves the ZooKeeper protocol. Tests that kill or stop
// nodes start their own. Each test works under its own path.
var (
	ensemble *zktest.Ensemble
	shared   *journal
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var wg sync.WaitGroup
	var zkErr, jErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		ensemble, zkErr = zktest.Start(context.Background(), zktest.Options{Servers: 3, ExtendedTypes: true, SystemProperties: map[string]string{"znode.container.checkIntervalMs": "500"}})
	}()
	go func() {
		defer wg.Done()
		shared, jErr = startJournal(3, raftjournal.PhasePrimary, nil)
	}()
	wg.Wait()
	if err := errors.Join(zkErr, jErr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if ensemble != nil {
			ensemble.Close()
		}
		if shared != nil {
			shared.close()
		}
		return 1
	}
	code := m.Run()
	shared.close()
	if err := ensemble.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// journal is in-process journal nodes, each with its client port.
type journal struct {
	nodes   []*raftjournal.Node
	servers []*zkserver.Server
	logs    *logBuffer
}

type logBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 4<<20 {
		l.b = append([]byte(nil), l.b[len(l.b)-2<<20:]...)
	}
	return len(p), nil
}

func (l *logBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.b) > n {
		return string(l.b[len(l.b)-n:])
	}
	return string(l.b)
}

// freeAddr is a free loopback address outside the ephemeral range (see
// internal/freeport), so a restarted server gets its port back.
func freeAddr() (string, error) { return freeport.Addr() }

// testServerConfig is the client port's configuration in tests: ZooKeeper's
// defaults but zktest's short tick (so short session timeouts negotiate) and
// every four-letter word allowed.
func testServerConfig() zkserver.Config {
	c := zkserver.DefaultConfig()
	c.Addr = "127.0.0.1:0"
	c.TickTime = 200 * time.Millisecond
	c.MaxSessionTimeout = 60 * time.Second
	c.FourLetterWords = []string{"*"}
	c.MaxClientConnsPerIP = 0
	return c
}

// startJournal starts size nodes in one cluster, moves it to phase, and
// serves the protocol on each.
func startJournal(size int, phase raftjournal.Phase, tweak func(i int, c *zkserver.Config)) (*journal, error) {
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	j := &journal{logs: logs}
	base, err := os.MkdirTemp("", "zkserver-test-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*journal, error) {
		j.close()
		os.RemoveAll(base)
		return nil, fmt.Errorf("%w\nlogs:\n%s", err, logs.tail(8000))
	}
	for i := range size {
		cfg := raftjournal.DefaultNodeConfig()
		cfg.NodeID = fmt.Sprintf("n%d", i+1)
		cfg.DataDir = fmt.Sprintf("%s/%s", base, cfg.NodeID)
		if cfg.RaftAddr, err = freeAddr(); err != nil {
			return fail(err)
		}
		cfg.AdminAddr = "127.0.0.1:0"
		cfg.Secret = testlog.Secret()
		cfg.Logger = logger.With("node", cfg.NodeID)
		cfg.CommitTimeout = zkserver.DefaultCommitTimeout
		cfg.SessionTick = 20 * time.Millisecond
		cfg.CleanupInterval = 100 * time.Millisecond
		cfg.JoinTimeout = 30 * time.Second
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = j.nodes[0].AdminAddr()
		}
		n, err := raftjournal.Open(cfg)
		if err != nil {
			return fail(err)
		}
		j.nodes = append(j.nodes, n)
		if i == 0 {
			if err := waitUntil(20*time.Second, n.IsLeader); err != nil {
				return fail(fmt.Errorf("first node never led: %w", err))
			}
		}
	}
	if err := waitUntil(30*time.Second, func() bool { return len(j.nodes[0].Status().Members) == size }); err != nil {
		return fail(fmt.Errorf("members never joined: %w", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if phase != raftjournal.PhaseShadow {
		if err := j.nodes[0].SetPhase(ctx, raftjournal.PhasePrimary, false); err != nil {
			return fail(err)
		}
		if phase == raftjournal.PhaseFinalized {
			if err := j.nodes[0].SetPhase(ctx, raftjournal.PhaseFinalized, false); err != nil {
				return fail(err)
			}
		}
	}
	for i, n := range j.nodes {
		if err := n.Sync(ctx); err != nil {
			return fail(err)
		}
		c := testServerConfig()
		c.Logger = logger.With("node", n.ID(), "component", "zkserver")
		c.Registerer = n.Metrics()
		if tweak != nil {
			tweak(i, &c)
		}
		s, err := zkserver.New(n, c)
		if err != nil {
			return fail(err)
		}
		j.servers = append(j.servers, s)
	}
	return j, nil
}

func (j *journal) close() {
	for _, s := range j.servers {
		if s != nil {
			s.Close()
		}
	}
	for _, n := range j.nodes {
		if n != nil {
			n.Close()
		}
	}
}

// addrs returns the client addresses of the running servers.
func (j *journal) addrs() []string {
	var out []string
	for _, s := range j.servers {
		if s != nil {
			out = append(out, s.Addr())
		}
	}
	return out
}

func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

var _ = io.Discard

//go:build linux

package testproc

import (
	"errors"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// LoopbackTimings gives cfg the short Raft timings the tests run with on
// loopback: 400 ms heartbeat and election, 200 ms lease, 5 ms commit (the
// same as a JournalSpec's process).
func LoopbackTimings(cfg *raftjournal.NodeConfig) {
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 400*time.Millisecond, 400*time.Millisecond, 200*time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
}

// OpenNode opens a one-node journal in this process (id "j1", bootstrapped,
// an on-disk store in a test directory, the tests' cluster secret and
// loopback timings, logging to t), waits until it leads, and closes it in
// cleanup. tweak, when not nil, changes the configuration before the open.
func OpenNode(t testing.TB, tweak func(*raftjournal.NodeConfig)) *raftjournal.Node {
	t.Helper()
	c := raftjournal.DefaultNodeConfig()
	c.NodeID, c.DataDir, c.RaftAddr, c.AdminAddr = "j1", t.TempDir(), testlog.FreeAddr(t), "127.0.0.1:0"
	c.Secret = testlog.Secret()
	c.Logger = testlog.New(t).With("node", "j1")
	c.Bootstrap = true
	LoopbackTimings(&c)
	if tweak != nil {
		tweak(&c)
	}
	n, err := raftjournal.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	testlog.WaitFor(t, 30*time.Second, "the journal node to lead", func() error {
		if !n.IsLeader() {
			return errors.New("not the leader yet")
		}
		return nil
	})
	return n
}

package dualwrite

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/zktest"
)

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTapJuteMaxBuffer is issue 12 item 9: against an ensemble started with
// -Djute.maxbuffer=4194304, kazoo's 1.1 MB and 2 MB creates work through a tap
// given the same limit (MaxRequestFrame, `--jute-maxbuffer`) and reach the
// journal; a frame above the limit closes that client's connection, as
// ZooKeeper would, with a log line saying why.
func TestTapJuteMaxBuffer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const limit = 4 << 20
	ens := zktest.New(t, zktest.Options{Servers: 1, JuteMaxBuffer: limit})
	n := journalNode(t)
	var logs syncBuffer
	tap := startTap(t, ens.Hosts(), importer.NodeJournal(n), func(c *Config) {
		c.MaxRequestFrame = limit
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	root := freshRoot(t)
	if err := kazooInstalled(ctx); err != nil {
		t.Fatal(err)
	}
	script := `
import sys
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss
zk = KazooClient(hosts=sys.argv[1])
zk.start(timeout=30)
root = sys.argv[2]
zk.create(root, b"")
zk.create(root + "/big1", b"a" * 1100000)
zk.create(root + "/big2", b"b" * 2000000)
zk.set(root + "/big1", b"c" * 3000000)
zk.stop()
zk = KazooClient(hosts=sys.argv[1], connection_retry={"max_tries": 0}, command_retry={"max_tries": 0})
zk.start(timeout=30)
try:
    zk.create(root + "/toobig", b"d" * 4200000)
    print("created over the limit")
    sys.exit(1)
except ConnectionLoss:
    print("refused over the limit")
`
	cmd := exec.CommandContext(ctx, kazooPython, "-c", script, tap.Addr(), root)
	cmd.Env = kazooEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kazoo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "refused over the limit") {
		t.Fatalf("kazoo: %s", out)
	}
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	direct, _, err := zk.Connect(ens.Hosts(), 10*time.Second, zk.WithLogger(discardZK{}), zk.WithMaxBufferSize(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	for _, p := range []string{root + "/big1", root + "/big2"} {
		want, st, err := direct.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := n.FSM().Node(p)
		if !ok || !bytes.Equal(got.Data, want) || got.Stat.Mzxid != st.Mzxid || got.Stat.Version != st.Version {
			t.Fatalf("%s: the journal does not hold ZooKeeper's %d bytes at mzxid %#x (has it: %v)", p, len(want), st.Mzxid, ok)
		}
	}
	if !strings.Contains(logs.String(), "jute.maxbuffer") {
		t.Fatalf("no log line names jute.maxbuffer for the refused frame (%d bytes of logs):\n%s", len(logs.String()), logs.String())
	}
}

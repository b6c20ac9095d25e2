package exporter

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/znode"
)

// ensemble is the three-server ensemble (extended types on) shared by the tests
// that inject no faults; each works under its own root.
var ensemble *zktest.Ensemble

func TestMain(m *testing.M) {
	flag.Parse()
	applyTestReadMode()
	code := zktest.Run(m, zktest.Options{Servers: 3, ExtendedTypes: true}, &ensemble)
	if err := closeBenchEnsemble(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// dialZK opens a plain go-zookeeper session for the test's own reads and writes,
// with the given credentials ("user:password" digest pairs).
func dialZK(t testing.TB, hosts []string, digests ...string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect(hosts, 30*time.Second, zk.WithLogger(nopLogger{}), zk.WithLogInfo(false),
		zk.WithMaxBufferSize(64<<20), zk.WithEventCallback(func(zk.Event) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for _, d := range digests {
		if err := c.AddAuth("digest", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Sync("/"); err != nil {
		t.Fatal(err)
	}
	return c
}

// collect runs a walk with cfg into memory.
func collect(t testing.TB, ctx context.Context, cfg Config) ([]*znode.Node, *Summary, error) {
	t.Helper()
	w, err := NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Start(ctx); err != nil {
		return nil, nil, err
	}
	var got []*znode.Node
	sum, err := w.Walk(ctx, SinkFunc(func(n *znode.Node) error {
		got = append(got, n)
		return nil
	}))
	return got, sum, err
}

// sequential reads the subtree at root with SequentialWalk.
func sequential(t testing.TB, conn *zk.Conn, root string) []*znode.Node {
	t.Helper()
	var out []*znode.Node
	if err := SequentialWalk(t.Context(), conn, root, WalkOptions{SkipSystem: true}, func(n *znode.Node) error {
		out = append(out, n)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

package zkclient

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zktest"
)

// ensemble is the one-server ensemble (extended types on, for TTL nodes)
// the tests share; each works under its own freshRoot. Tests that kill
// servers start their own.
var ensemble *zktest.Ensemble

func TestMain(m *testing.M) {
	zktest.Main(m, zktest.Options{Servers: 1, ExtendedTypes: true}, &ensemble)
}

var rootSeq atomic.Int64

// freshRoot is an absolute path no other test of this binary uses.
func freshRoot(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/%s-%d", name, rootSeq.Add(1))
}

// dial opens a client for the test and closes it at the end.
func dial(t testing.TB, cfg Config) *Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testlog.New(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// independent is a go-zookeeper session: the tests check what the client
// wrote, and write what it should see, with a client no one here wrote.
func independent(t testing.TB, hosts []string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect(hosts, 20*time.Second, zk.WithLogger(nopLogger{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Sync("/"); err != nil {
		t.Fatal(err)
	}
	return c
}

func mustCreate(t testing.TB, c *zk.Conn, path string, data []byte, flags int32, acl []zk.ACL) {
	t.Helper()
	if acl == nil {
		acl = zk.WorldACL(zk.PermAll)
	}
	if _, err := c.Create(path, data, flags, acl); err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
}

// eventString renders an event for comparisons.
func eventString(ev Event) string {
	if ev.Path == "" {
		return fmt.Sprintf("%v missed=%v new=%v", ev.State, ev.Missed, ev.NewSession)
	}
	return fmt.Sprintf("%v %s", ev.Type, ev.Path)
}

// awaitEvents reads events until until returns true for one (which is
// included), and returns what was read.
func awaitEvents(t testing.TB, c *Client, timeout time.Duration, until func(Event) bool) []Event {
	t.Helper()
	var got []Event
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed after %v", got)
			}
			got = append(got, ev)
			if until(ev) {
				return got
			}
		case <-deadline:
			var s []string
			for _, ev := range got {
				s = append(s, eventString(ev))
			}
			t.Fatalf("timed out after %v; events so far: %q", timeout, s)
		}
	}
}

func connState(s int32) func(Event) bool {
	return func(ev Event) bool { return ev.Path == "" && int32(ev.State) == s }
}

package zkserver_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// connect opens a go-zookeeper session to servers and waits until it has one.
func connect(t testing.TB, servers []string) (*zk.Conn, <-chan zk.Event) {
	t.Helper()
	return connectTimeout(t, servers, 10*time.Second)
}

func connectTimeout(t testing.TB, servers []string, timeout time.Duration) (*zk.Conn, <-chan zk.Event) {
	t.Helper()
	c, ev, err := zk.Connect(servers, timeout, zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	deadline := time.After(30 * time.Second)
	for c.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-deadline:
			t.Fatalf("no session with %v (state %v)", servers, c.State())
		}
	}
	return c, ev
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func testPath(t testing.TB) string {
	return "/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
}

func TestGoZookeeperSmoke(t *testing.T) {
	c, _ := connect(t, shared.addrs()[1:2])
	p := testPath(t)
	if _, err := c.Create(p, []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	data, st, err := c.Get(p)
	if err != nil || string(data) != "x" || st.Version != 0 {
		t.Fatalf("get: %q %+v %v", data, st, err)
	}
	if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("second create: %v", err)
	}
	_, _, w, err := c.GetW(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(p, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w:
		if ev.Type != zk.EventNodeDataChanged || ev.Path != p {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
	if err := c.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
}

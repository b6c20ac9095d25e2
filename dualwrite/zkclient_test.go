package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

func dialTestZK(t testing.TB, cfg ZKClientConfig) *ZKClient {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testlog.New(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := DialZK(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// zkEventString renders an event for comparisons: "Type path", or the state
// of a connection change.
func zkEventString(ev ZKEvent) string {
	if ev.Type == zkwire.EventNone {
		return fmt.Sprintf("%v missed=%v new=%v", ev.State, ev.Missed, ev.NewSession)
	}
	return fmt.Sprintf("%v %s", ev.Type, ev.Path)
}

// awaitEvents reads events until until returns true for one (which is
// included), and returns what was read.
func awaitEvents(t testing.TB, c *ZKClient, timeout time.Duration, until func(ZKEvent) bool) []ZKEvent {
	t.Helper()
	var got []ZKEvent
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
				s = append(s, zkEventString(ev))
			}
			t.Fatalf("timed out after %v; events so far: %q", timeout, s)
		}
	}
}

func nodeEvent(typ zkwire.EventType, path string) func(ZKEvent) bool {
	return func(ev ZKEvent) bool { return ev.Type == typ && ev.Path == path }
}

// nodeEvents keeps the node events of evs, rendered.
func nodeEvents(evs []ZKEvent) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type != zkwire.EventNone {
			out = append(out, zkEventString(ev))
		}
	}
	return out
}

// TestZKClientEventsAndReads watches a subtree and checks the events of
// creates, setData and delete under it, the reads (nil against empty data,
// ACLs, children, a missing node), pipelined calls, auth, a refused auth
// (the server closes the connection: the client resumes the session and
// keeps its watch) and Close.
func TestZKClientEventsAndReads(t *testing.T) {
	hosts := testEnsemble(t).Hosts()
	root := freshRoot(t)
	w := zkWriter(t, hosts)
	c := dialTestZK(t, ZKClientConfig{Hosts: hosts, SessionTimeout: 6 * time.Second})
	ctx := t.Context()
	if err := c.AddWatch(ctx, root, zkwire.AddWatchPersistentRecursive); err != nil {
		t.Fatal(err)
	}
	sid := c.SessionID()

	mustCreate(t, w, root, nil, 0, nil)
	mustCreate(t, w, root+"/a", []byte("1"), 0, nil)
	if _, err := w.Set(root+"/a", []byte("2"), -1); err != nil {
		t.Fatal(err)
	}
	if err := w.Delete(root+"/a", -1); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, w, root+"/b", []byte{}, 0, nil)
	evs := awaitEvents(t, c, 10*time.Second, nodeEvent(zkwire.EventNodeCreated, root+"/b"))
	want := []string{"NodeCreated " + root, "NodeCreated " + root + "/a", "NodeDataChanged " + root + "/a",
		"NodeDeleted " + root + "/a", "NodeCreated " + root + "/b"}
	if got := nodeEvents(evs); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}

	data, st, err := c.GetData(ctx, root)
	if err != nil || data != nil || st.NumChildren != 1 {
		t.Errorf("GetData %s: %q (nil %v) %+v %v", root, data, data == nil, st, err)
	}
	data, _, err = c.GetData(ctx, root+"/b")
	if err != nil || data == nil || len(data) != 0 {
		t.Errorf("GetData of empty data: %q (nil %v) %v", data, data == nil, err)
	}
	acl, _, err := c.GetACL(ctx, root+"/b")
	if err != nil || !znode.EqualACLs(acl, znode.WorldAnyone()) {
		t.Errorf("GetACL: %v %v", acl, err)
	}
	kids, _, err := c.GetChildren(ctx, root)
	if err != nil || !slices.Equal(kids, []string{"b"}) {
		t.Errorf("GetChildren: %q %v", kids, err)
	}
	if _, ok, err := c.Exists(ctx, root+"/a"); ok || err != nil {
		t.Errorf("Exists of a deleted node: %v %v", ok, err)
	}
	if _, _, err := c.GetData(ctx, root+"/a"); zkwire.CodeOf(err) != zkwire.CodeNoNode {
		t.Errorf("GetData of a deleted node: %v, want NoNode", err)
	}
	if err := c.Sync(ctx, root); err != nil {
		t.Errorf("Sync: %v", err)
	}

	// Pipelined calls from many goroutines.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			if st, ok, err := c.Exists(ctx, root+"/b"); err != nil || !ok || st.Czxid == 0 {
				errs <- fmt.Errorf("%+v %v %v", st, ok, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Exists: %v", err)
	}

	// A node only a digest identity can read.
	mustCreate(t, w, root+"/secret", []byte("s"), 0, zk.DigestACL(zk.PermAll, "user", "pw"))
	if _, _, err := c.GetData(ctx, root+"/secret"); zkwire.CodeOf(err) != zkwire.CodeNoAuth {
		t.Errorf("GetData without auth: %v, want NoAuth", err)
	}
	if err := c.AddAuth(ctx, "digest", []byte("user:pw")); err != nil {
		t.Fatal(err)
	}
	if data, _, err := c.GetData(ctx, root+"/secret"); err != nil || string(data) != "s" {
		t.Errorf("GetData with auth: %q %v", data, err)
	}

	// A refused credential: ZooKeeper answers AuthFailed and closes the
	// connection; the client resumes the session, authenticated as before,
	// with its watch.
	if err := c.AddAuth(ctx, "nosuchscheme", []byte("x")); !errors.Is(err, ErrZKAuthFailed) {
		t.Fatalf("AddAuth with an unknown scheme: %v, want ErrZKAuthFailed", err)
	}
	evs = awaitEvents(t, c, 20*time.Second, func(ev ZKEvent) bool { return ev.Type == zkwire.EventNone && ev.State == zkwire.StateSyncConnected })
	if last := evs[len(evs)-1]; !last.Missed || last.NewSession || c.SessionID() != sid {
		t.Errorf("after the refused auth: %q, session %#x (was %#x)", zkEventString(last), c.SessionID(), sid)
	}
	if data, _, err := c.GetData(ctx, root+"/secret"); err != nil || string(data) != "s" {
		t.Errorf("GetData after the reconnect: %q %v", data, err)
	}
	mustCreate(t, w, root+"/c", nil, 0, nil)
	awaitEvents(t, c, 10*time.Second, nodeEvent(zkwire.EventNodeCreated, root+"/c"))

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.GetData(ctx, root); !errors.Is(err, ErrZKClosed) {
		t.Errorf("GetData after Close: %v, want ErrZKClosed", err)
	}
	for range c.Events() {
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestZKClientReconnect kills the server the client is connected to: the
// client moves to another server with the same session, says events may
// have been missed, and its persistent watch keeps firing.
func TestZKClientReconnect(t *testing.T) {
	ens := zktest.New(t, zktest.Options{Servers: 3})
	hosts := ens.Hosts()
	c := dialTestZK(t, ZKClientConfig{Hosts: hosts, SessionTimeout: 10 * time.Second})
	ctx := t.Context()
	if err := c.AddWatch(ctx, "/r", zkwire.AddWatchPersistentRecursive); err != nil {
		t.Fatal(err)
	}
	sid, srv := c.SessionID(), c.Server()
	var victim int
	var others []string
	for _, s := range ens.Servers() {
		if s.ClientAddr == srv {
			victim = s.ID
		} else {
			others = append(others, s.ClientAddr)
		}
	}
	if victim == 0 {
		t.Fatalf("connected to %s, not one of %v", srv, hosts)
	}
	w := zkWriter(t, others)
	mustCreate(t, w, "/r", nil, 0, nil)
	awaitEvents(t, c, 10*time.Second, nodeEvent(zkwire.EventNodeCreated, "/r"))

	if err := ens.Kill(victim); err != nil {
		t.Fatal(err)
	}
	evs := awaitEvents(t, c, 60*time.Second, func(ev ZKEvent) bool {
		return ev.Type == zkwire.EventNone && ev.State == zkwire.StateSyncConnected
	})
	var states []string
	for _, ev := range evs {
		states = append(states, zkEventString(ev))
	}
	if len(evs) < 2 || evs[0].State != zkwire.StateDisconnected || !evs[len(evs)-1].Missed || evs[len(evs)-1].NewSession {
		t.Errorf("events after the kill: %q, want Disconnected then SyncConnected (missed, same session)", states)
	}
	if c.SessionID() != sid || c.Server() == srv || c.Server() == "" {
		t.Errorf("after the kill: session %#x on %s, was %#x on %s", c.SessionID(), c.Server(), sid, srv)
	}
	mustCreate(t, w, "/r/after", []byte("x"), 0, nil)
	awaitEvents(t, c, 20*time.Second, nodeEvent(zkwire.EventNodeCreated, "/r/after"))
	if data, _, err := c.GetData(ctx, "/r/after"); err != nil || string(data) != "x" {
		t.Errorf("GetData after the reconnect: %q %v", data, err)
	}
}

// flakyProxy relays TCP connections to a server and can be taken down
// (every connection closed, new ones refused) and brought back.
type flakyProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newFlakyProxy(t testing.TB, target string) *flakyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *flakyProxy) addr() string { return p.ln.Addr().String() }

func (p *flakyProxy) accept() {
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			cc.Close()
			continue
		}
		sc, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			cc.Close()
			continue
		}
		p.conns = append(p.conns, cc, sc)
		p.mu.Unlock()
		for _, pair := range [][2]net.Conn{{cc, sc}, {sc, cc}} {
			p.wg.Go(func() {
				_, _ = io.Copy(pair[0], pair[1])
				pair[0].Close()
				pair[1].Close()
			})
		}
	}
}

func (p *flakyProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestZKClientSessionExpiry cuts the client off for longer than its session
// timeout: when it gets through again the session is gone, and the client
// says so (Expired), opens a new session (SyncConnected, NewSession) and sets
// its watch again.
func TestZKClientSessionExpiry(t *testing.T) {
	hosts := testEnsemble(t).Hosts()
	root := freshRoot(t)
	proxy := newFlakyProxy(t, hosts[0])
	c := dialTestZK(t, ZKClientConfig{Hosts: []string{proxy.addr()}, SessionTimeout: 2 * time.Second})
	ctx := t.Context()
	if err := c.AddWatch(ctx, root, zkwire.AddWatchPersistentRecursive); err != nil {
		t.Fatal(err)
	}
	sid := c.SessionID()
	w := zkWriter(t, hosts)

	proxy.setDown(true)
	awaitEvents(t, c, 10*time.Second, func(ev ZKEvent) bool { return ev.State == zkwire.StateDisconnected })
	// The session expires two seconds after the server last heard of it:
	// then no server's session tracker (dump) lists it.
	ens := testEnsemble(t)
	reconcileWait(t, 30*time.Second, "the session to expire", func() error {
		for _, s := range ens.Servers() {
			out, err := ens.FourLetterWord(ctx, s.ID, "dump")
			if err != nil {
				return err
			}
			id := fmt.Sprintf("0x%x", sid)
			if strings.Contains(out, id+"\n") || strings.Contains(out, id+"\t") {
				return fmt.Errorf("server %d still tracks it", s.ID)
			}
		}
		return nil
	})
	mustCreate(t, w, root, nil, 0, nil) // fired while no connection watched: missed
	proxy.setDown(false)

	evs := awaitEvents(t, c, 30*time.Second, func(ev ZKEvent) bool {
		return ev.Type == zkwire.EventNone && ev.State == zkwire.StateSyncConnected
	})
	var sawExpired bool
	for _, ev := range evs {
		sawExpired = sawExpired || (ev.State == zkwire.StateExpired && ev.Missed)
	}
	last := evs[len(evs)-1]
	if !sawExpired || !last.NewSession || !last.Missed {
		var s []string
		for _, ev := range evs {
			s = append(s, zkEventString(ev))
		}
		t.Errorf("events %q: want Expired, then SyncConnected on a new session", s)
	}
	if c.SessionID() == sid || c.SessionID() == 0 {
		t.Errorf("session %#x after expiry, was %#x", c.SessionID(), sid)
	}
	mustCreate(t, w, root+"/after", nil, 0, nil)
	awaitEvents(t, c, 10*time.Second, nodeEvent(zkwire.EventNodeCreated, root+"/after"))
}

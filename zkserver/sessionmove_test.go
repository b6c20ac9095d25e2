package zkserver_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/zkwire"
)

// Session moves: ZooKeeper lets a session live on one server at a time. When
// it reconnects elsewhere, the leader records the new owner; the old server's
// connection is closed, and a request still arriving on it is refused (the
// connection closes without an answer, ZOOKEEPER-710) so that a stale
// connection can neither write nor receive the session's watches twice.

// TestSessionMoveClosesOldConnection: a session resumed on another node is
// closed on the node it left, within a few ticks, and its watches there go
// with the connection.
func TestSessionMoveClosesOldConnection(t *testing.T) {
	addrs := shared.addrs()
	p := uniquePath(t)
	setup, _ := connect(t, addrs[:1])
	mustCreate(t, setup, p, nil, 0)
	old := mustDialRaw(t, addrs[0], connectOpts{timeout: 4000})
	if r := old.call(zkwire.OpGetData, &zkwire.GetDataRequest{Path: p, Watch: true}); r.Err != zkwire.CodeOK {
		t.Fatalf("getData with watch: %v", r.Err)
	}
	moved := mustDialRaw(t, addrs[1], connectOpts{session: old.id, passwd: old.passwd, lastZxid: old.lastZxid, timeout: 4000})
	if moved.id != old.id {
		t.Fatalf("resumed session %#x, want %#x", moved.id, old.id)
	}
	// The old connection keeps pinging, so only the move can close it (a
	// silent one would also go at its session timeout).
	deadline := time.Now().Add(30 * time.Second)
	for !old.call(zkwire.OpPing, nil).Closed {
		if time.Now().After(deadline) {
			t.Fatalf("the connection the session left on %s still answers pings after 30s", addrs[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The session lives on: its new connection answers, and its watch was the
	// old connection's only.
	if r := moved.call(zkwire.OpExists, &zkwire.ExistsRequest{Path: p}); r.Err != zkwire.CodeOK {
		t.Fatalf("exists on the new connection: %v", r.Err)
	}
}

// TestSessionMoveRefusesStaleWrites: a write on a connection whose session
// has since been claimed by another node is not applied; the old connection
// closes without answering it.
func TestSessionMoveRefusesStaleWrites(t *testing.T) {
	addrs := shared.addrs()
	p := uniquePath(t)
	setup, _ := connect(t, addrs[2:3])
	mustCreate(t, setup, p, nil, 0)
	for round := range 5 {
		first := mustDialRaw(t, addrs[0], connectOpts{timeout: 4000})
		if r := first.call(zkwire.OpExists, &zkwire.ExistsRequest{Path: p}); r.Err != zkwire.CodeOK {
			t.Fatalf("exists: %v", r.Err)
		}
		second := mustDialRaw(t, addrs[1], connectOpts{session: first.id, passwd: first.passwd, lastZxid: first.lastZxid, timeout: 4000})
		if second.id != first.id {
			t.Fatalf("resumed session %#x, want %#x", second.id, first.id)
		}
		// The claim reached the leader before the resume was answered, so
		// this write from the old node is refused whether the old node
		// closed the connection already or not.
		stale := fmt.Sprintf("%s/stale-%d", p, round)
		r := first.call(zkwire.OpCreate, create(stale, nil, zkwire.ModeEphemeral))
		if !r.Closed {
			t.Fatalf("round %d: a write on the connection the session left was answered %v", round, r.Err)
		}
		if _, err := setup.Sync(p); err != nil {
			t.Fatal(err)
		}
		if ok, _, err := setup.Exists(stale); err != nil || ok {
			t.Fatalf("round %d: the stale write was applied (exists=%v, err=%v)", round, ok, err)
		}
		// The session's new connection writes.
		if r := second.call(zkwire.OpCreate, create(stale, nil, zkwire.ModeEphemeral)); r.Err != zkwire.CodeOK {
			t.Fatalf("round %d: create on the new connection: %v", round, r.Err)
		}
		second.call(zkwire.OpCloseSession, nil)
	}
}

// TestSessionMoveRealClient: go-zookeeper connected to one node through a
// link that goes dead without closing moves to another node with its
// session. The node it left still holds the old connection, and pings keep
// arriving on it (as from a client that renewed its session on a slow
// server, ZOOKEEPER-710, or a stuck proxy): without owner tracking that
// connection would live, and keep the session alive, forever. The node
// closes it once the session moved, and the session keeps its ephemeral.
func TestSessionMoveRealClient(t *testing.T) {
	addrs := shared.addrs()
	link := newFreezingRelay(t, addrs[2])
	hosts := &orderedHosts{servers: []string{link.addr(), addrs[0]}}
	c, _, err := zk.Connect(hosts.servers, 2*time.Second, zk.WithHostProvider(hosts), zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	waitFor(t, "a session through the relay", func() error {
		if c.State() != zk.StateHasSession || c.Server() != link.addr() {
			return fmt.Errorf("state %v via %s", c.State(), c.Server())
		}
		return nil
	})
	p := uniquePath(t)
	if _, err := c.Create(p, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	sid := c.SessionID()
	link.freezeAndPing()
	waitFor(t, "the client on another node with its session", func() error {
		if c.State() != zk.StateHasSession || c.SessionID() != sid || c.Server() != addrs[0] {
			return fmt.Errorf("state %v session %#x via %s", c.State(), c.SessionID(), c.Server())
		}
		return nil
	})
	select {
	case <-link.serverClosed:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s kept the connection the session left open", addrs[2])
	}
	if ok, st, err := c.Exists(p); err != nil || !ok || st.EphemeralOwner != sid {
		t.Fatalf("ephemeral after the move: exists=%v stat=%+v err=%v", ok, st, err)
	}
}

// orderedHosts is a go-zookeeper HostProvider that tries its servers in
// their order (zk.Connect shuffles the list it passes to Init).
type orderedHosts struct {
	mu      sync.Mutex
	servers []string
	next    int
	tried   int
}

func (h *orderedHosts) Init(servers []string) error {
	if len(servers) != len(h.servers) {
		return fmt.Errorf("orderedHosts: Init with %d servers, have %d", len(servers), len(h.servers))
	}
	return nil
}

func (h *orderedHosts) Len() int { return len(h.servers) }

func (h *orderedHosts) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.servers[h.next%len(h.servers)]
	h.next++
	h.tried++
	retry := h.tried > len(h.servers)
	if retry {
		h.tried = 1
	}
	return s, retry
}

func (h *orderedHosts) Connected() {
	h.mu.Lock()
	h.tried = 0
	h.mu.Unlock()
}

// freezingRelay relays client connections to a server until frozen, after
// which nothing more reaches the clients or the server while the
// connections stay open, and the first connection's server side receives a
// ping every 200 ms. serverClosed closes when the server closes the first
// connection.
type freezingRelay struct {
	ln           net.Listener
	target       string
	mu           sync.Mutex
	frozen       bool
	first        net.Conn // the first connection's server side
	serverClosed chan struct{}
	done         chan struct{}
}

func newFreezingRelay(t testing.TB, target string) *freezingRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &freezingRelay{ln: ln, target: target, serverClosed: make(chan struct{}), done: make(chan struct{})}
	var conns []net.Conn
	var connsMu sync.Mutex
	t.Cleanup(func() {
		close(r.done)
		ln.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
	})
	go func() {
		first := true
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			connsMu.Lock()
			conns = append(conns, client, server)
			connsMu.Unlock()
			watchClose := first
			if first {
				r.mu.Lock()
				r.first = server
				r.mu.Unlock()
			}
			first = false
			go r.pipe(client, server, nil)
			go r.pipe(server, client, func() {
				if watchClose {
					close(r.serverClosed)
				}
			})
		}
	}()
	return r
}

func (r *freezingRelay) addr() string { return r.ln.Addr().String() }

func (r *freezingRelay) freezeAndPing() {
	r.mu.Lock()
	r.frozen = true
	server := r.first
	r.mu.Unlock()
	ping := zkwire.AppendFrame(nil, zkwire.AppendRecord(nil, &zkwire.RequestHeader{Xid: zkwire.XidPing, Op: zkwire.OpPing}))
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-r.done:
				return
			case <-r.serverClosed:
				return
			case <-t.C:
				if _, err := server.Write(ping); err != nil {
					return
				}
			}
		}
	}()
}

func (r *freezingRelay) isFrozen() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frozen
}

// pipe copies from → to until from ends; once frozen it keeps reading (so
// the sender's writes succeed) and drops what it reads. onEOF runs when
// from is closed by its peer.
func (r *freezingRelay) pipe(from, to net.Conn, onEOF func()) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !r.isFrozen() {
			if _, werr := to.Write(buf[:n]); werr != nil && !r.isFrozen() {
				from.Close()
				return
			}
		}
		if err != nil {
			if onEOF != nil && (errors.Is(err, io.EOF) || !errors.Is(err, net.ErrClosed)) {
				onEOF()
			}
			if !r.isFrozen() {
				to.Close()
			}
			return
		}
	}
}

// uniquePath is a path of the test's own, new in every run (-count).
func uniquePath(t testing.TB) string {
	return fmt.Sprintf("%s-%d", testPath(t), time.Now().UnixNano())
}

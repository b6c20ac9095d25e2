package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
)

// The cutover's hooks (package cutover drives them; see its documentation).
//
// Hold stops the tap from sending anything more to ZooKeeper: a relayed
// connection's next request waits before it is tracked or written (so it is
// neither in flight nor answered), and a new client connection waits before
// the tap dials anywhere. The requests stay in the client's socket and the
// tap's buffer: bounded by TCP, and never sent twice. Release lets them go on
// to ZooKeeper, as if nothing happened.
//
// SwitchToJournal moves the tap's clients to the journal: it closes every
// connection relayed to ZooKeeper (their held requests were never sent, and
// the clients see one CONNECTIONLOSS), then ends the hold, and from then on
// relays each new client connection, as bytes, to a journal node's
// ZooKeeper-protocol port (zkserver). The client reconnects with its session
// id and password and resumes the session the journal adopted. Relaying to a
// node's port, rather than serving the journal in this process, keeps one
// implementation of the protocol server and works for a proxy that runs
// apart from the journal; its cost is the byte relay's (BENCHMARKS.md: the
// relay floor of the proxy benchmarks).
//
// Which backend is right is never the tap's decision: the cutover package
// switches it only when the journal's committed phase says primary.

// Backend is where the tap relays its clients.
type Backend uint8

// The backends.
const (
	BackendZooKeeper Backend = iota // shadow: relay to ZooKeeper and mirror
	BackendJournal                  // primary: relay bytes to a journal node's client port
)

func (b Backend) String() string {
	if b == BackendJournal {
		return "journal"
	}
	return "zookeeper"
}

// switchState is the tap's hold and backend.
type switchState struct {
	mu        sync.Mutex
	held      bool
	heldSince time.Time
	release   chan struct{} // closed when the hold ends
	backend   Backend
	journal   []string // journal client addresses, for BackendJournal
	next      int
	jconns    map[net.Conn]struct{} // client connections relayed to the journal

	// zmap is the journal → ZooKeeper zxid map of the rollback's rewrite
	// (rewrite.go); rewritten counts the zxids rewritten.
	zmap      atomic.Pointer[[]raftjournal.ZxidPeriod]
	rewritten atomic.Int64
}

// Hold makes the tap hold new requests and connections (see above). Holding
// twice is one hold.
func (t *Tap) Hold() {
	s := &t.sw
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		return
	}
	s.held, s.heldSince, s.release = true, time.Now(), make(chan struct{})
	t.log.Info("cutover: holding client requests")
}

// Release ends a hold: held requests go on to the current backend.
func (t *Tap) Release() {
	s := &t.sw
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.held {
		return
	}
	s.held = false
	close(s.release)
	t.log.Info("cutover: released held client requests", "held-for", time.Since(s.heldSince).Round(time.Millisecond), "backend", s.backend.String())
}

// Held reports whether the tap holds requests, and since when.
func (t *Tap) Held() (bool, time.Time) {
	t.sw.mu.Lock()
	defer t.sw.mu.Unlock()
	return t.sw.held, t.sw.heldSince
}

// Backend returns where the tap relays clients.
func (t *Tap) Backend() Backend {
	t.sw.mu.Lock()
	defer t.sw.mu.Unlock()
	return t.sw.backend
}

// SwitchToJournal closes every connection relayed to ZooKeeper, ends a hold,
// and relays new connections to the journal's client addresses (tried in
// turn). It returns how many connections it closed. Switching twice only
// updates the addresses.
func (t *Tap) SwitchToJournal(clientAddrs []string) (int, error) {
	if len(clientAddrs) == 0 {
		return 0, errors.New("dualwrite: switch to the journal: no journal client address (serve --client-addr)")
	}
	s := &t.sw
	s.mu.Lock()
	was := s.backend
	s.backend, s.journal = BackendJournal, append([]string(nil), clientAddrs...)
	s.mu.Unlock()
	closed := 0
	if was != BackendJournal {
		t.mu.Lock()
		conns := make([]*conn, 0, len(t.conns))
		for c := range t.conns {
			conns = append(conns, c)
		}
		t.mu.Unlock()
		for _, c := range conns {
			c.close()
			closed++
		}
		t.log.Info("cutover: switched clients to the journal", "closed-connections", closed, "journal", clientAddrs)
	}
	t.Release()
	return closed, nil
}

// SwitchToZooKeeper is the rollback's switch: new connections relay to
// ZooKeeper again (mirrored, as in shadow), with their last zxid rewritten
// by periods (the journal's zxid map, SetZxidMap); every connection relayed
// to the journal is closed (its client reconnects through the tap and
// resumes its session on ZooKeeper); a hold ends. It returns how many
// connections it closed. Switching twice only updates the map.
func (t *Tap) SwitchToZooKeeper(periods []raftjournal.ZxidPeriod) int {
	t.SetZxidMap(periods)
	s := &t.sw
	s.mu.Lock()
	was := s.backend
	s.backend, s.journal = BackendZooKeeper, nil
	closed := 0
	if was == BackendJournal {
		for c := range s.jconns {
			c.Close()
			closed++
		}
	}
	s.mu.Unlock()
	if was == BackendJournal {
		t.log.Info("rollback: switched clients back to ZooKeeper", "closed-connections", closed, "zxid-map-periods", len(periods))
	}
	t.Release()
	return closed
}

// waitHold blocks while the tap holds; false when done closed first.
func (t *Tap) waitHold(done <-chan struct{}) bool {
	s := &t.sw
	s.mu.Lock()
	if !s.held {
		s.mu.Unlock()
		return true
	}
	ch := s.release
	s.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-done:
		return false
	case <-t.ctx.Done():
		return false
	}
}

// serveJournal relays a client connection to a journal node's client port as
// bytes, until either side ends it.
func (t *Tap) serveJournal(client net.Conn) {
	s := &t.sw
	s.mu.Lock()
	addrs := s.journal
	start := s.next
	s.next++
	s.mu.Unlock()
	var server net.Conn
	var errs []error
	for i := range addrs {
		a := addrs[(start+i)%len(addrs)]
		d := net.Dialer{Timeout: t.cfg.DialTimeout}
		nc, err := d.DialContext(t.ctx, "tcp", a)
		if err == nil {
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
			server = nc
			break
		}
		errs = append(errs, err)
	}
	if server == nil {
		t.log.Warn("no journal client port reachable; closing the client connection", "client", client.RemoteAddr().String(), "err", errors.Join(errs...))
		t.metrics.dialFailures.Inc()
		client.Close()
		return
	}
	s.mu.Lock()
	if s.jconns == nil {
		s.jconns = make(map[net.Conn]struct{})
	}
	s.jconns[client] = struct{}{}
	s.mu.Unlock()
	t.metrics.connectionsTotal.Inc()
	done := make(chan struct{})
	ended := make(chan struct{}) // the server side ended
	go func() {
		defer close(done)
		// Client to journal: bytes, except that a hold (the rollback's)
		// stops them before they are written; a switch back to ZooKeeper
		// then closes the connection, and a request cut off mid-frame was
		// never whole at the journal.
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if !t.waitHold(ended) {
					break
				}
				if _, werr := server.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		server.Close()
	}()
	io.Copy(client, server)
	close(ended)
	client.Close()
	server.Close()
	<-done
	s.mu.Lock()
	delete(s.jconns, client)
	s.mu.Unlock()
}

// closeJournalConns closes the connections relayed to the journal (Close).
func (t *Tap) closeJournalConns() {
	s := &t.sw
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.jconns {
		c.Close()
	}
}

// SwitchStatus is the tap's cutover state.
type SwitchStatus struct {
	Backend            string    `json:"backend"`
	Held               bool      `json:"held"`
	HeldSince          time.Time `json:"held_since,omitzero"`
	JournalClientAddrs []string  `json:"journal_client_addrs,omitempty"`
	// Connections relayed to ZooKeeper and to the journal.
	ZooKeeperConnections int `json:"zookeeper_connections"`
	JournalConnections   int `json:"journal_connections"`
	// InFlight counts write requests relayed to ZooKeeper and not answered.
	InFlight int64 `json:"in_flight"`
	// QueueRecords are mirrors not yet committed by the journal.
	QueueRecords int `json:"queue_records"`
	// LastMirroredZxid is the zxid of the last write queued (0: none yet).
	LastMirroredZxid int64 `json:"last_mirrored_zxid"`
	// Sessions are the ZooKeeper sessions of the tap's live connections;
	// SessionsUnmirrored those not yet recorded in the journal.
	Sessions           []int64 `json:"sessions"`
	SessionsUnmirrored int     `json:"sessions_unmirrored"`
	// OwnSession is the tap's own ZooKeeper session (read-backs, alignment
	// writes), 0 while it has none.
	OwnSession int64 `json:"own_session,omitempty"`
	// LagSeconds is the age of the oldest undelivered mirror; Journal
	// whether the journal answers the tap (reachable, unreachable, unknown
	// before the first delivery or ping).
	LagSeconds float64 `json:"lag_seconds"`
	Journal    string  `json:"journal"`
	// Lost is set when a repair pass is owed.
	Lost bool `json:"lost"`
	// ZxidsRewritten counts the clients' last zxids rewritten from journal
	// zxids to ZooKeeper's after a rollback (rewrite.go).
	ZxidsRewritten int64 `json:"zxids_rewritten,omitempty"`
}

// SwitchStatus returns the tap's cutover state.
func (t *Tap) SwitchStatus() SwitchStatus {
	s := &t.sw
	s.mu.Lock()
	st := SwitchStatus{Backend: s.backend.String(), Held: s.held, JournalConnections: len(s.jconns),
		JournalClientAddrs: append([]string(nil), s.journal...)}
	if s.held {
		st.HeldSince = s.heldSince
	}
	s.mu.Unlock()
	t.mu.Lock()
	st.ZooKeeperConnections = len(t.conns)
	t.mu.Unlock()
	st.InFlight = t.inflight.Load()
	st.QueueRecords = t.queue.Stats().Records
	st.LastMirroredZxid = t.lastZxid.Load()
	st.Sessions, st.SessionsUnmirrored = t.sessions.snapshot()
	st.OwnSession = t.reader.SessionID()
	_, st.Lost = t.queue.Lost()
	st.LagSeconds = t.lag().Seconds()
	st.Journal = t.journalState().State
	st.ZxidsRewritten = s.rewritten.Load()
	return st
}

// Align writes path (which must exist) on the tap's own ZooKeeper session,
// mirroring each write like a client's, until one lands on a zxid that is a
// multiple of 128, where ZooKeeper logs its digest; it returns that zxid.
// The cutover uses it while the tap holds its clients, so that ZooKeeper's
// latest zxid has a logged digest to compare with the journal's.
func (t *Tap) Align(ctx context.Context, path string) (int64, error) {
	data := []byte("zk2raft cutover alignment")
	for i := 0; i < maxAlignWrites; i++ {
		st, err := t.reader.SetData(ctx, path, data, -1)
		if err != nil {
			if errors.Is(err, zkclient.ErrNoNode) {
				return 0, fmt.Errorf("dualwrite: alignment node %s does not exist (create it through the proxy first)", path)
			}
			return 0, fmt.Errorf("dualwrite: alignment: set %s: %w", path, err)
		}
		t.mirror(write{op: zkwire.OpSetData, req: &zkwire.SetDataRequest{Path: path, Data: data, Version: -1},
			resp: &zkwire.SetDataResponse{Stat: st}, zxid: st.Mzxid, session: t.reader.SessionID()})
		if st.Mzxid%digestLogInterval == 0 {
			return st.Mzxid, nil
		}
	}
	return 0, fmt.Errorf("dualwrite: alignment: %d writes to %s and none landed on a multiple of %d", maxAlignWrites, path, digestLogInterval)
}

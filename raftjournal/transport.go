package raftjournal

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The Raft port carries two protocols. Every connection starts with the
// handshake (handshake.go: each side proves it holds the cluster secret; with
// mutual TLS, inside the TLS session), whose protocol byte says which:
//
//	'R'  raft's NetworkTransport (msgpack RPCs: AppendEntries, RequestVote, ...)
//	'J'  the journal's own RPCs (forward.go): forwarded writes, read index,
//	     session touches, membership changes, member status
//
// Nothing a peer sends is read as a length, and nothing is allocated for it,
// before it has passed the handshake. At most maxPendingHandshakes connections
// may be in the handshake at once (each for muxHandshakeTimeout at most); more
// are closed at once, so a flood of idle connections cannot pin goroutines.
//
// One port means a member only needs to know the others' Raft addresses, which
// the Raft configuration already holds: a follower reaches the leader's RPCs at
// the address raft gives for the leader, through leader changes and without a
// directory of admin addresses.
const (
	muxRaft    byte = 'R'
	muxJournal byte = 'J'
)

// muxHandshakeTimeout bounds a new connection's handshake (TLS and secret).
const muxHandshakeTimeout = 10 * time.Second

// maxPendingHandshakes bounds the connections in the handshake at once.
const maxPendingHandshakes = 1024

// muxLayer is the raft.StreamLayer over the shared TCP listener: it hands 'R'
// connections to raft and 'J' connections to the journal RPC server.
type muxLayer struct {
	ln        net.Listener
	advertise net.Addr
	logger    *slog.Logger
	creds     Credentials
	pending   chan struct{} // a slot per connection in the handshake

	raftConns chan net.Conn
	handle    func(net.Conn) // serves one 'J' connection until it ends

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // 'J' and undecided connections, closed on Close
}

var _ raft.StreamLayer = (*muxLayer)(nil)

// listenMux binds addr. advertise, when not empty, is the address others dial.
// creds are what peers must prove they share, and what this node presents
// when it dials.
func listenMux(addr, advertise string, creds Credentials, logger *slog.Logger) (*muxLayer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: listen on raft address %s: %w", addr, err)
	}
	adv := ln.Addr()
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("raftjournal: advertise address %s: %w", advertise, err)
		}
		adv = a
	}
	if ta, ok := adv.(*net.TCPAddr); !ok || ta.IP == nil || ta.IP.IsUnspecified() || ta.Port == 0 {
		ln.Close()
		return nil, fmt.Errorf("raftjournal: raft address %s cannot be dialled by other nodes: set an advertise address", adv)
	}
	return &muxLayer{
		ln:        ln,
		advertise: adv,
		logger:    logger,
		creds:     creds,
		pending:   make(chan struct{}, maxPendingHandshakes),
		raftConns: make(chan net.Conn),
		closed:    make(chan struct{}),
		conns:     make(map[net.Conn]struct{}),
	}, nil
}

// serve starts the accept loop; handle serves journal connections.
func (m *muxLayer) serve(handle func(net.Conn)) {
	m.handle = handle
	m.wg.Add(1)
	go m.acceptLoop()
}

func (m *muxLayer) acceptLoop() {
	defer m.wg.Done()
	var backoff time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				m.logger.Warn("raft listener accept failed", "error", err, "retry-in", backoff)
				select {
				case <-time.After(backoff):
				case <-m.closed:
					return
				}
				continue
			}
			m.logger.Error("raft listener stopped", "error", err)
			return
		}
		backoff = 0
		select {
		case m.pending <- struct{}{}:
		default:
			m.logger.Warn("too many connections in the handshake on the raft port; closing a new one", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		if !m.track(c) {
			<-m.pending
			c.Close()
			return
		}
		m.wg.Add(1)
		go m.route(c)
	}
}

// track registers an open connection; false once closed.
func (m *muxLayer) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns == nil {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *muxLayer) untrack(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.conns, c)
}

func (m *muxLayer) route(raw net.Conn) {
	defer m.wg.Done()
	c, proto, err := m.handshake(raw)
	<-m.pending
	if err != nil {
		m.untrack(raw)
		raw.Close()
		if isHandshakeRefusal(err) || isTLSRefusal(err) {
			m.logger.Warn("refused a connection on the raft port", "remote", raw.RemoteAddr().String(), "error", err)
		}
		return
	}
	switch proto {
	case muxRaft:
		// raft owns the connection from here; it closes it on transport shutdown.
		m.untrack(raw)
		select {
		case m.raftConns <- c:
		case <-m.closed:
			c.Close()
		}
	case muxJournal:
		m.handle(c)
		m.untrack(raw)
		c.Close()
	default:
		m.logger.Warn("unknown protocol on raft port", "remote", raw.RemoteAddr().String(), "protocol", proto)
		m.untrack(raw)
		c.Close()
	}
}

// handshake authenticates a new connection (TLS first when configured, then
// the secret) within muxHandshakeTimeout and returns the connection to use and
// the protocol asked for.
func (m *muxLayer) handshake(raw net.Conn) (net.Conn, byte, error) {
	_ = raw.SetDeadline(time.Now().Add(muxHandshakeTimeout))
	c := raw
	if m.creds.TLS != nil {
		tc := tls.Server(raw, m.creds.TLS.ServerConfig())
		if err := tc.Handshake(); err != nil {
			return nil, 0, &errTLS{err}
		}
		c = tc
	}
	proto, err := acceptHandshake(c, m.creds.Secret)
	if err != nil {
		return nil, 0, err
	}
	_ = raw.SetDeadline(time.Time{})
	return c, proto, nil
}

// Accept implements net.Listener for raft.
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftConns:
		return c, nil
	case <-m.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: it stops accepting, closes journal
// connections and waits for the mux's goroutines. raft's transport calls it on
// shutdown; the node calls it again (it is idempotent).
func (m *muxLayer) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
		m.mu.Lock()
		for c := range m.conns {
			c.Close()
		}
		m.conns = nil
		m.mu.Unlock()
	})
	m.wg.Wait()
	return err
}

// Addr implements net.Listener: the advertised address.
func (m *muxLayer) Addr() net.Addr { return m.advertise }

// Dial implements raft.StreamLayer.
func (m *muxLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialMux(string(address), muxRaft, m.creds, timeout)
}

// dialMux connects to a node's Raft port and runs the handshake for proto
// within timeout. A refusal (wrong or missing secret or certificate) is an
// error matching ErrUnauthenticated.
func dialMux(addr string, proto byte, creds Credentials, timeout time.Duration) (net.Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = raw.SetDeadline(time.Now().Add(timeout))
	c := raw
	if creds.TLS != nil {
		tc := tls.Client(raw, creds.TLS.ClientConfig(addr))
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return nil, fmt.Errorf("%w: %s: TLS: %v", ErrUnauthenticated, addr, err)
		}
		c = tc
	}
	if err := dialHandshake(c, addr, creds.Secret, proto); err != nil {
		raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// errTLS is a failed TLS handshake on the listener's side.
type errTLS struct{ err error }

func (e *errTLS) Error() string { return "raftjournal: TLS handshake: " + e.err.Error() }
func (e *errTLS) Unwrap() error { return e.err }

func isTLSRefusal(err error) bool {
	var t *errTLS
	return errors.As(err, &t)
}

// newTransport builds raft's network transport over the mux.
func newTransport(m *muxLayer, logger *slog.Logger) *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  m,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  newHclog(logger, "raft-net"),
	})
}

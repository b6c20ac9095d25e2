package raftjournal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The Raft port carries two protocols. Every connection starts with one byte
// saying which:
//
//	'R'  raft's NetworkTransport (msgpack RPCs: AppendEntries, RequestVote, ...)
//	'J'  the journal's own RPCs (forward.go): forwarded writes, read index,
//	     session touches, membership changes, member status
//
// One port means a member only needs to know the others' Raft addresses, which
// the Raft configuration already holds: a follower reaches the leader's RPCs at
// the address raft gives for the leader, through leader changes and without a
// directory of admin addresses.
const (
	muxRaft    byte = 'R'
	muxJournal byte = 'J'
)

// muxHandshakeTimeout bounds the wait for a new connection's first byte.
const muxHandshakeTimeout = 10 * time.Second

// muxLayer is the raft.StreamLayer over the shared TCP listener: it hands 'R'
// connections to raft and 'J' connections to the journal RPC server.
type muxLayer struct {
	ln        net.Listener
	advertise net.Addr
	logger    *slog.Logger

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
func listenMux(addr, advertise string, logger *slog.Logger) (*muxLayer, error) {
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
		if !m.track(c) {
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

func (m *muxLayer) route(c net.Conn) {
	defer m.wg.Done()
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(muxHandshakeTimeout))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		m.untrack(c)
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch b[0] {
	case muxRaft:
		// raft owns the connection from here; it closes it on transport shutdown.
		m.untrack(c)
		select {
		case m.raftConns <- c:
		case <-m.closed:
			c.Close()
		}
	case muxJournal:
		m.handle(c)
		m.untrack(c)
		c.Close()
	default:
		m.logger.Warn("unknown protocol on raft port", "remote", c.RemoteAddr().String(), "first-byte", b[0])
		m.untrack(c)
		c.Close()
	}
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
	return dialMux(string(address), muxRaft, timeout)
}

func dialMux(addr string, proto byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{proto}); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
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

package zkserver_test

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
)

// rawSession is a ZooKeeper session spoken with zkwire directly, so that the
// tests can send every opcode (go-zookeeper lacks many) and see every frame
// in the order the server sent it.
type rawSession struct {
	t        testing.TB
	nc       net.Conn
	bw       *bufio.Writer
	in       chan inbound
	xid      int32
	id       int64
	passwd   []byte
	timeout  int32
	lastZxid int64
	readOnly bool
	done     chan struct{}
	closeMu  sync.Once
}

type inbound struct {
	hdr  zkwire.ReplyHeader
	body []byte
	err  error
}

type connectOpts struct {
	session  int64
	passwd   []byte
	lastZxid int64
	timeout  int32
	readOnly bool
}

// dialRaw opens (or resumes) a session; it returns the connect response and
// an error when the server closed instead of answering.
func dialRaw(t testing.TB, addr string, o connectOpts) (*rawSession, zkwire.ConnectResponse, error) {
	t.Helper()
	return dialRawWith(t, o, func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 10*time.Second) })
}

// dialRawWith is dialRaw over the connection dial makes (TLS, say).
func dialRawWith(t testing.TB, o connectOpts, dial func() (net.Conn, error)) (*rawSession, zkwire.ConnectResponse, error) {
	t.Helper()
	nc, err := dial()
	if err != nil {
		return nil, zkwire.ConnectResponse{}, err
	}
	if o.timeout == 0 {
		o.timeout = 10000
	}
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	fr := zkwire.NewFrameReader(bufio.NewReader(nc), zkwire.DefaultMaxReplyFrame)
	resp, err := zkwire.ClientHandshake(nc, fr, zkwire.ConnectRequest{
		LastZxidSeen: o.lastZxid, TimeOut: o.timeout, SessionID: o.session, Passwd: o.passwd,
		ReadOnly: o.readOnly, HasReadOnly: true,
	})
	if err != nil && err != zkwire.ErrReadOnlyServer {
		nc.Close()
		return nil, resp, err
	}
	_ = nc.SetDeadline(time.Time{})
	s := &rawSession{t: t, nc: nc, bw: bufio.NewWriter(nc), in: make(chan inbound, 4096), id: resp.SessionID,
		passwd: resp.Passwd, timeout: resp.TimeOut, readOnly: resp.ReadOnly, done: make(chan struct{}), lastZxid: o.lastZxid}
	go s.readLoop(fr)
	t.Cleanup(s.close)
	return s, resp, nil
}

func mustDialRaw(t testing.TB, addr string, o connectOpts) *rawSession {
	t.Helper()
	s, _, err := dialRaw(t, addr, o)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	return s
}

func (s *rawSession) readLoop(fr *zkwire.FrameReader) {
	defer close(s.in)
	for {
		p, err := fr.Next()
		if err != nil {
			s.in <- inbound{err: err}
			return
		}
		hdr, body, err := zkwire.SplitReply(p)
		s.in <- inbound{hdr: hdr, body: append([]byte(nil), body...), err: err}
	}
}

func (s *rawSession) close() {
	s.closeMu.Do(func() { s.nc.Close() })
}

// reply is one answer, with the notifications that came before it.
type reply struct {
	Zxid   int64
	Err    zkwire.Code
	Body   zkwire.Response
	Events []zkwire.WatcherEvent
	Closed bool // the server closed the connection instead of answering
}

// call sends a request and waits for its reply.
func (s *rawSession) call(op zkwire.OpCode, req zkwire.Request) reply {
	s.t.Helper()
	s.xid++
	xid := s.xid
	switch op {
	case zkwire.OpPing:
		xid = zkwire.XidPing
	case zkwire.OpAuth:
		xid = zkwire.XidAuth
	}
	frame, err := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: xid, Op: op}, req)
	if err != nil {
		// Opcodes zkwire does not know: a bare header.
		frame = zkwire.AppendFrame(nil, zkwire.AppendRecord(nil, &zkwire.RequestHeader{Xid: xid, Op: op}))
	}
	if _, err := s.nc.Write(frame); err != nil {
		return reply{Closed: true}
	}
	var r reply
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-s.in:
			if !ok || m.err != nil {
				r.Closed = true
				return r
			}
			if m.hdr.Xid == zkwire.XidNotification {
				ev, err := zkwire.DecodeNotification(m.body)
				if err != nil {
					s.t.Fatalf("bad notification: %v", err)
				}
				r.Events = append(r.Events, ev)
				continue
			}
			if m.hdr.Xid != xid {
				s.t.Fatalf("reply xid %d, want %d (%v)", m.hdr.Xid, xid, op)
			}
			r.Zxid, r.Err = m.hdr.Zxid, m.hdr.Err
			if m.hdr.Err == zkwire.CodeOK && zkwire.KnownOp(op) {
				body, err := zkwire.DecodeResponse(op, m.hdr.Err, m.body)
				if err != nil {
					s.t.Fatalf("bad %v reply: %v", op, err)
				}
				r.Body = body
			}
			if m.hdr.Zxid > 0 && xid > 0 {
				s.lastZxid = max(s.lastZxid, m.hdr.Zxid)
			}
			return r
		case <-timeout:
			s.t.Fatalf("no reply to %v within 60s", op)
		}
	}
}

// events waits for n notifications (or fails after the timeout).
func (s *rawSession) events(n int, timeout time.Duration) []zkwire.WatcherEvent {
	s.t.Helper()
	var out []zkwire.WatcherEvent
	deadline := time.After(timeout)
	// Ping as a client does while it waits, so that a wait longer than the
	// session timeout (a loaded machine) does not expire the session.
	ping := time.NewTicker(time.Duration(max(s.timeout/3, 100)) * time.Millisecond)
	defer ping.Stop()
	pingFrame := zkwire.AppendFrame(nil, zkwire.AppendRecord(nil, &zkwire.RequestHeader{Xid: zkwire.XidPing, Op: zkwire.OpPing}))
	for len(out) < n {
		select {
		case <-ping.C:
			if _, err := s.nc.Write(pingFrame); err != nil {
				s.t.Fatalf("connection lost while waiting for %d events (got %v): %v", n, out, err)
			}
		case m, ok := <-s.in:
			if !ok || m.err != nil {
				s.t.Fatalf("connection closed while waiting for %d events (got %v)", n, out)
			}
			if m.hdr.Xid == zkwire.XidPing {
				continue
			}
			if m.hdr.Xid != zkwire.XidNotification {
				s.t.Fatalf("unexpected reply xid %d while waiting for events", m.hdr.Xid)
			}
			ev, _ := zkwire.DecodeNotification(m.body)
			out = append(out, ev)
		case <-deadline:
			s.t.Fatalf("only %d of %d events within %v: %v", len(out), n, timeout, out)
		}
	}
	return out
}

// waitClosed waits until the server closes the connection.
func (s *rawSession) waitClosed(timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-s.in:
			if !ok || m.err != nil {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("connection still open after %v", timeout)
		}
	}
}

// pipeline sends requests back to back without waiting and returns their
// replies in the order they came, each with the events before it.
func (s *rawSession) pipeline(ops []zkwire.OpCode, reqs []zkwire.Request) []reply {
	s.t.Helper()
	var buf []byte
	first := s.xid + 1
	for i, op := range ops {
		s.xid++
		frame, err := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: s.xid, Op: op}, reqs[i])
		if err != nil {
			s.t.Fatalf("encode %v: %v", op, err)
		}
		buf = append(buf, frame...)
	}
	if _, err := s.nc.Write(buf); err != nil {
		s.t.Fatalf("write %d pipelined requests: %v", len(ops), err)
	}
	out := make([]reply, 0, len(ops))
	var events []zkwire.WatcherEvent
	timeout := time.After(60 * time.Second)
	for len(out) < len(ops) {
		select {
		case m, ok := <-s.in:
			if !ok || m.err != nil {
				out = append(out, reply{Closed: true})
				return out
			}
			if m.hdr.Xid == zkwire.XidNotification {
				ev, _ := zkwire.DecodeNotification(m.body)
				events = append(events, ev)
				continue
			}
			i := len(out)
			if want := first + int32(i); m.hdr.Xid != want {
				s.t.Fatalf("pipelined reply %d has xid %d, want %d (replies out of order)", i, m.hdr.Xid, want)
			}
			r := reply{Zxid: m.hdr.Zxid, Err: m.hdr.Err, Events: events}
			events = nil
			if m.hdr.Err == zkwire.CodeOK {
				body, err := zkwire.DecodeResponse(ops[i], m.hdr.Err, m.body)
				if err != nil {
					s.t.Fatalf("bad %v reply: %v", ops[i], err)
				}
				r.Body = body
			}
			out = append(out, r)
		case <-timeout:
			s.t.Fatalf("only %d of %d pipelined replies within 60s", len(out), len(ops))
		}
	}
	return out
}

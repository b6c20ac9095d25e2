package zkwire

// The Tracker is the tests' oracle for whole recorded connections (the
// golden streams, FuzzTracker): it follows both streams of one connection
// as a tap sees them. It was the package's API until nothing outside the
// tests used it (zkclient matches its own calls, the tap keeps per-request
// state of its own, a server matches nothing); see doc.go, "Matching
// replies". Its ordering rules: requests are matched to replies by xid with
// a FIFO per xid; bytes of the client are fed before they are relayed; a
// request whose body fails to decode is still tracked, since the server
// answers it; Close drops and returns the requests a dead connection never
// had answered, as writes that may or may not have been applied; a session
// that reconnects is a new connection and needs a new Tracker.

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Tracker errors.
var (
	// ErrUnmatchedReply is returned (wrapped) for a reply whose xid matches no
	// pending request; its body cannot be decoded without the opcode.
	ErrUnmatchedReply = errors.New("zkwire: reply matches no pending request")
	// ErrTooManyPending is returned when a client has more unanswered requests
	// than TrackerConfig.MaxPending; the request is not tracked.
	ErrTooManyPending = errors.New("zkwire: too many pending requests")
	// ErrTrackerClosed is returned by a Tracker after Close.
	ErrTrackerClosed = errors.New("zkwire: tracker closed")
)

// DefaultMaxPending bounds a connection's unanswered requests. ZooKeeper's
// own globalOutstandingLimit defaults to 1000 for a whole server.
const DefaultMaxPending = 1 << 16

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// MaxRequestFrame bounds client frames, in payload bytes: the server's
	// jute.maxbuffer (default DefaultMaxBuffer) or more.
	MaxRequestFrame int
	// MaxReplyFrame bounds server frames, in payload bytes (default
	// DefaultMaxReplyFrame): servers do not limit what they send.
	MaxReplyFrame int
	// MaxPending bounds unanswered requests (default DefaultMaxPending).
	MaxPending int
}

// DefaultTrackerConfig returns the defaults.
func DefaultTrackerConfig() TrackerConfig {
	return TrackerConfig{
		MaxRequestFrame: DefaultMaxBuffer,
		MaxReplyFrame:   DefaultMaxReplyFrame,
		MaxPending:      DefaultMaxPending,
	}
}

// Validate reports whether the configuration can be used.
func (c TrackerConfig) Validate() error {
	switch {
	case c.MaxRequestFrame < 64 || c.MaxRequestFrame > MaxFrame:
		return fmt.Errorf("zkwire: MaxRequestFrame %d is outside [64, %d]", c.MaxRequestFrame, MaxFrame)
	case c.MaxReplyFrame < 64 || c.MaxReplyFrame > MaxFrame:
		return fmt.Errorf("zkwire: MaxReplyFrame %d is outside [64, %d]", c.MaxReplyFrame, MaxFrame)
	case c.MaxPending < 1:
		return fmt.Errorf("zkwire: MaxPending %d is not positive", c.MaxPending)
	}
	return nil
}

// Event is what a Tracker learned from one frame: *ConnectEvent,
// *ConnectedEvent, *RequestEvent, *ReplyEvent, *NotificationEvent or
// *FourLetterWordEvent.
type Event interface{ isEvent() }

// ConnectEvent is the client's connect request (its first frame).
type ConnectEvent struct {
	Request ConnectRequest
}

// ConnectedEvent is the server's connect response (its first frame).
// SessionID 0 means the session was refused (expired, bad password).
type ConnectedEvent struct {
	Response ConnectResponse
}

// RequestEvent is a client request after the connect request. Request is nil
// for the opcodes without a body.
type RequestEvent struct {
	Header  RequestHeader
	Request Request
}

// ReplyEvent is a server reply matched with its request: the request's opcode
// and record (nil if it had no body or failed to decode), the reply header
// (zxid, err) and the decoded response (nil when Header.Err is not CodeOK or
// the opcode's reply has no body).
type ReplyEvent struct {
	Header   ReplyHeader
	Op       OpCode
	Request  Request
	Response Response
}

// NotificationEvent is a watch event (xid −1). Header.Zxid is −1 before
// ZooKeeper 3.9 and the triggering transaction's zxid since.
type NotificationEvent struct {
	Header ReplyHeader
	Event  WatcherEvent
}

// FourLetterWordEvent reports that the connection opened with a four-letter
// word; the Tracker ignores everything after it in both directions, which is
// plain text until the server closes the connection.
type FourLetterWordEvent struct {
	Word      FourLetterWord
	TraceMask int64 // the argument of stmk
}

func (*ConnectEvent) isEvent()        {}
func (*ConnectedEvent) isEvent()      {}
func (*RequestEvent) isEvent()        {}
func (*ReplyEvent) isEvent()          {}
func (*NotificationEvent) isEvent()   {}
func (*FourLetterWordEvent) isEvent() {}

// Pending is a request that has not been answered yet.
type Pending struct {
	Xid     int32
	Op      OpCode
	Request Request // nil if it had no body or failed to decode
	seq     uint64
}

// Tracker follows one client connection of the ZooKeeper protocol from both
// sides, for a tap that sees the bytes each way: it decodes the connect
// exchange, every request and every reply, matches replies to requests by xid
// (the reply carries no opcode), and passes four-letter-word connections by.
//
// Feed it whole frames (ClientFrame, ServerFrame) or raw stream bytes in any
// chunking (FeedClient, FeedServer), not both. The methods are safe for
// concurrent use, one goroutine per direction. A tap must feed client bytes
// BEFORE relaying them to the server, so that the request is pending before
// its reply can arrive.
//
// Requests are matched by xid, with a FIFO queue per xid so that the special
// xids (several −4 auth packets, −2 pings) pair in order; bodies are decoded by
// the request's opcode, never by the special xid. A Tracker belongs to one TCP
// connection: Close drops its pending requests.
type Tracker struct {
	mu  sync.Mutex
	cfg TrackerConfig

	clientConnected bool // connect request consumed
	serverConnected bool // connect response consumed
	sawFirst        bool // the client's first 4 bytes were examined (stream mode)
	word            FourLetterWord
	fourLetter      bool

	pending  map[int32][]Pending
	npending int
	seq      uint64

	sessionID int64
	lastZxid  int64

	cs, ss stream
	fatal  error
	closed bool
}

// stream reassembles frames from one direction's bytes.
type stream struct {
	buf []byte
	off int
}

// NewTracker returns a Tracker for a fresh connection. Zero fields of cfg take
// their defaults; an invalid cfg is an error.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	def := DefaultTrackerConfig()
	if cfg.MaxRequestFrame == 0 {
		cfg.MaxRequestFrame = def.MaxRequestFrame
	}
	if cfg.MaxReplyFrame == 0 {
		cfg.MaxReplyFrame = def.MaxReplyFrame
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = def.MaxPending
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Tracker{cfg: cfg, pending: make(map[int32][]Pending)}, nil
}

// SessionID is the session id from the connect response (0 before it, or if
// the session was refused), else the one the client asked to resume.
func (t *Tracker) SessionID() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sessionID
}

// LastZxid is the zxid of the last ordinary reply with a positive zxid, which
// the client will send as lastZxidSeen when it reconnects.
func (t *Tracker) LastZxid() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastZxid
}

// FourLetterWord reports the word the connection opened with, if any.
func (t *Tracker) FourLetterWord() (FourLetterWord, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.word, t.fourLetter
}

// PendingCount is the number of requests awaiting a reply.
func (t *Tracker) PendingCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.npending
}

// Close drops the connection's pending requests and returns them in the order
// they were sent: requests the server may or may not have executed. Later
// calls return nil; every other method then returns ErrTrackerClosed.
func (t *Tracker) Close() []Pending {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var out []Pending
	for _, q := range t.pending {
		out = append(out, q...)
	}
	slices.SortFunc(out, func(a, b Pending) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	t.pending, t.npending = nil, 0
	t.cs, t.ss = stream{}, stream{}
	return out
}

// ClientFrame consumes one client frame's payload: the connect request first,
// then requests. A request whose header decodes is tracked even if its body
// does not (the server answers it, often with CodeMarshallingError); the
// error is returned and the event is nil.
func (t *Tracker) ClientFrame(payload []byte) (Event, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrTrackerClosed
	}
	return t.clientFrame(payload)
}

// ServerFrame consumes one server frame's payload: the connect response
// first, then replies and notifications. A reply whose header decodes
// consumes its pending request even if its body does not decode.
func (t *Tracker) ServerFrame(payload []byte) (Event, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrTrackerClosed
	}
	return t.serverFrame(payload)
}

func (t *Tracker) clientFrame(payload []byte) (Event, error) {
	if t.fourLetter {
		return nil, nil
	}
	if !t.clientConnected {
		t.clientConnected = true
		req, err := DecodeConnectRequest(payload)
		if err != nil {
			return nil, err
		}
		if t.sessionID == 0 {
			t.sessionID = req.SessionID
		}
		return &ConnectEvent{Request: req}, nil
	}
	hdr, body, err := SplitRequest(payload)
	if err != nil {
		return nil, err
	}
	var req Request
	if KnownOp(hdr.Op) {
		req, err = DecodeRequest(hdr.Op, body)
	} else {
		err = fmt.Errorf("%w: %v in request xid %d", ErrUnknownOpCode, hdr.Op, hdr.Xid)
	}
	if t.npending >= t.cfg.MaxPending {
		return nil, fmt.Errorf("%w: %d unanswered, %v request xid %d not tracked", ErrTooManyPending, t.npending, hdr.Op, hdr.Xid)
	}
	t.seq++
	t.pending[hdr.Xid] = append(t.pending[hdr.Xid], Pending{Xid: hdr.Xid, Op: hdr.Op, Request: req, seq: t.seq})
	t.npending++
	if err != nil {
		return nil, err
	}
	return &RequestEvent{Header: hdr, Request: req}, nil
}

func (t *Tracker) serverFrame(payload []byte) (Event, error) {
	if t.fourLetter {
		return nil, nil
	}
	if !t.serverConnected {
		t.serverConnected = true
		resp, err := DecodeConnectResponse(payload)
		if err != nil {
			return nil, err
		}
		t.sessionID = resp.SessionID
		return &ConnectedEvent{Response: resp}, nil
	}
	hdr, body, err := SplitReply(payload)
	if err != nil {
		return nil, err
	}
	if hdr.Xid == XidNotification {
		ev, err := DecodeNotification(body)
		if err != nil {
			return nil, err
		}
		return &NotificationEvent{Header: hdr, Event: ev}, nil
	}
	q := t.pending[hdr.Xid]
	if len(q) == 0 {
		return nil, fmt.Errorf("%w: xid %d (zxid %#x, err %v, %d body bytes)", ErrUnmatchedReply, hdr.Xid, hdr.Zxid, hdr.Err, len(body))
	}
	p := q[0]
	if len(q) == 1 {
		delete(t.pending, hdr.Xid)
	} else {
		t.pending[hdr.Xid] = q[1:]
	}
	t.npending--
	if hdr.Xid != XidPing && hdr.Xid != XidAuth && hdr.Zxid > 0 {
		t.lastZxid = hdr.Zxid
	}
	ev := &ReplyEvent{Header: hdr, Op: p.Op, Request: p.Request}
	if !KnownOp(p.Op) && len(body) == 0 {
		return ev, nil
	}
	ev.Response, err = DecodeResponse(p.Op, hdr.Err, body)
	if err != nil {
		return nil, fmt.Errorf("xid %d: %w", hdr.Xid, err)
	}
	return ev, nil
}

// FeedClient consumes bytes the client sent, in any chunking, and returns the
// events of the frames they complete. It recognises a four-letter word in
// the connection's first four bytes. Errors of single frames do not stop it:
// they are joined into the returned error, with the events of the other
// frames. A frame length out of range is fatal: it and every later call
// return an error wrapping ErrFrameLength, since the stream cannot be
// followed any more.
func (t *Tracker) FeedClient(p []byte) ([]Event, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.feed(&t.cs, p, t.cfg.MaxRequestFrame, true)
}

// FeedServer consumes bytes the server sent; see FeedClient.
func (t *Tracker) FeedServer(p []byte) ([]Event, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.feed(&t.ss, p, t.cfg.MaxReplyFrame, false)
}

func (t *Tracker) feed(s *stream, p []byte, limit int, client bool) ([]Event, error) {
	if t.closed {
		return nil, ErrTrackerClosed
	}
	if t.fatal != nil {
		return nil, t.fatal
	}
	if t.fourLetter {
		return nil, nil
	}
	s.buf = append(s.buf, p...)
	var events []Event
	var errs []error
	for {
		avail := s.buf[s.off:]
		if client && !t.sawFirst {
			if len(avail) < 4 {
				break
			}
			if w, ok := DetectFourLetterWord(avail); ok {
				ev := &FourLetterWordEvent{Word: w}
				if w == WordStmk {
					if len(avail) < 12 {
						break
					}
					d := Decoder{b: avail[4:12]}
					ev.TraceMask = d.Int64()
				}
				t.sawFirst, t.fourLetter, t.word = true, true, w
				t.cs, t.ss = stream{}, stream{}
				return append(events, ev), errors.Join(errs...)
			}
			t.sawFirst = true
		}
		if len(avail) < 4 {
			break
		}
		n, err := parseLength(avail, limit)
		if err != nil {
			dir := "server"
			if client {
				dir = "client"
			}
			t.fatal = fmt.Errorf("%s stream: %w", dir, err)
			t.cs, t.ss = stream{}, stream{}
			return events, errors.Join(append(errs, t.fatal)...)
		}
		if len(avail) < 4+n {
			break
		}
		s.off += 4 + n
		var ev Event
		if client {
			ev, err = t.clientFrame(avail[4 : 4+n])
		} else {
			ev, err = t.serverFrame(avail[4 : 4+n])
		}
		if err != nil {
			errs = append(errs, err)
		}
		if ev != nil {
			events = append(events, ev)
		}
	}
	// Keep only the incomplete frame, at the start of the buffer.
	rest := len(s.buf) - s.off
	if rest == 0 {
		s.buf, s.off = s.buf[:0], 0
	} else if s.off > 0 {
		s.buf = append(s.buf[:0], s.buf[s.off:]...)
		s.off = 0
	}
	return events, errors.Join(errs...)
}

package raftjournal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// The journal RPC protocol runs on the Raft port behind the 'J' byte
// (transport.go). A connection carries one request at a time:
//
//	request   method u8 | length u32 | payload
//	response  status u8 | length u32 | payload     status 0: ok, 1: error
//
// Integers are big-endian; payloads use the log entry codec. Methods:
//
//	1 apply        entry bytes             → Result        leader only
//	2 read index   —                       → uvarint       leader only
//	3 touch        session varint          → —             leader only
//	4 add voter    id string, addr string  → —             leader only
//	5 remove       id string               → —             leader only
//	6 transfer     id string, addr string  → —             leader only ("" = any)
//	7 status       —                       → JSON MemberStatus
//	8 read         path string, flags u8   → exists u8, data bytes, stat
//	9 touch batch  owner string, claim u8,  → uvarint k, k × expired session,   leader only
//	               uvarint n, n × session      uvarint m, m × moved session
//	10 apply owned owner string, session    → Result                          leader only
//	               varint, entry bytes          (refused when the session moved: see SubmitForSession)
//	11 apply in    owner string, session    → uvarint n, n × (u8 0, bytes     leader only
//	   order       varint, uvarint n,            Result | u8 1, error)
//	               n × bytes entry              (see SubmitInOrder)
//
// A "leader only" request that reaches a follower fails with ErrNotLeader and
// the caller retries at the leader raft names; requests are never chained from
// node to node. An error payload is a kind byte and its fields (encodeError).
const (
	rpcApply        byte = 1
	rpcReadIndex    byte = 2
	rpcTouch        byte = 3
	rpcAddVoter     byte = 4
	rpcRemove       byte = 5
	rpcTransfer     byte = 6
	rpcStatus       byte = 7
	rpcRead         byte = 8
	rpcTouchBatch   byte = 9
	rpcApplyOwned   byte = 10
	rpcApplyInOrder byte = 11
)

// Frame bounds. Apply carries whole log entries (import batches are the
// largest: at most 64 MiB, raft-wal's largest entry, plus the encoding); every
// other request is small. A length over its method's bound closes the
// connection, and a payload is read in chunks as it arrives (readPayload), so
// a peer that announces a large frame and sends little costs little.
const (
	maxRPCFrame      = 65 << 20
	maxSmallRPCFrame = 1 << 20
	rpcReadChunk     = 1 << 20
)

// maxRequestSize is the largest payload a request for method may carry.
func maxRequestSize(method byte) uint32 {
	if method == rpcApply || method == rpcApplyOwned || method == rpcApplyInOrder {
		return maxRPCFrame
	}
	return maxSmallRPCFrame
}

// readPayload reads a frame's payload of n bytes (n already bounded), growing
// the buffer as the bytes arrive instead of allocating n up front.
func readPayload(r io.Reader, n uint32) ([]byte, error) {
	if n <= rpcReadChunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	var buf bytes.Buffer
	buf.Grow(rpcReadChunk)
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf.Bytes(), nil
}

var (
	// ErrNotLeader is returned by leader-only operations on a follower. The
	// node's API retries them at the leader itself; callers see it only from
	// the low-level RPCs.
	ErrNotLeader = errors.New("raftjournal: not the leader")
	// ErrNoLeader is returned when the cluster has no leader within the
	// operation's deadline.
	ErrNoLeader = errors.New("raftjournal: no leader")
	// ErrOutcomeUnknown is returned when a write was handed to raft or sent to
	// the leader, and then leadership was lost, the connection broke or the
	// context ended before the result came back: the write may or may not have
	// been applied (ZooKeeper's ConnectionLoss; the error also matches
	// CodeConnectionLoss).
	ErrOutcomeUnknown = errors.New("raftjournal: write outcome unknown")
	// ErrClosed is returned by operations on a closed node.
	ErrClosed = errors.New("raftjournal: node closed")
	// ErrRemote wraps failures reported by another node that have no sentinel here.
	ErrRemote = errors.New("raftjournal: remote node")
)

// errorSentinels are the sentinels that survive the trip between nodes; the
// index is the wire id (0: none).
var errorSentinels = []error{nil, ErrNotLeader, ErrNoLeader, ErrWrongPhase, ErrBadCommand,
	ErrPhaseTransition, ErrIgnoredEntry, ErrOutcomeUnknown, ErrClosed, ErrInvalidConfig, ErrGuardFailed}

// remoteError is an error decoded from the wire: the message as the remote
// node rendered it, matching the sentinel and code it carried.
type remoteError struct {
	msg      string
	sentinel error
	code     Code
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Unwrap() []error {
	var out []error
	if e.sentinel != nil {
		out = append(out, e.sentinel)
	}
	if e.code != CodeOK {
		out = append(out, e.code)
	}
	if len(out) == 0 {
		out = append(out, ErrRemote)
	}
	return out
}

const (
	errKindOp      = 1
	errKindCode    = 2
	errKindGeneral = 3
)

func appendError(b []byte, err error) []byte {
	var oe *OpError
	if errors.As(err, &oe) && oe.Error() == err.Error() {
		b = append(b, errKindOp, byte(oe.Op))
		b = appendString(b, oe.Path)
		return appendVarint(b, int64(oe.Code))
	}
	var c Code
	if errors.As(err, &c) && c.Error() == err.Error() {
		b = append(b, errKindCode)
		return appendVarint(b, int64(c))
	}
	sid := 0
	for i, s := range errorSentinels {
		if s != nil && errors.Is(err, s) {
			sid = i
			break
		}
	}
	code := CodeOK
	if errors.As(err, &c) {
		code = c
	}
	b = append(b, errKindGeneral, byte(sid))
	b = appendVarint(b, int64(code))
	return appendString(b, err.Error())
}

func decodeError(d *decoder) error {
	switch kind := d.byte1("error kind"); kind {
	case errKindOp:
		op := OpKind(d.byte1("op"))
		return &OpError{Op: op, Path: d.string("path"), Code: Code(d.int32v("code"))}
	case errKindCode:
		return Code(d.int32v("code"))
	case errKindGeneral:
		sid := int(d.byte1("sentinel"))
		e := &remoteError{code: Code(d.int32v("code")), msg: d.string("message")}
		if sid < len(errorSentinels) {
			e.sentinel = errorSentinels[sid]
		}
		return e
	default:
		d.fail(fmt.Sprintf("error kind %d", kind))
		return nil
	}
}

func appendWireStat(b []byte, s *znode.WireStat) []byte {
	for _, v := range []int64{s.Czxid, s.Mzxid, s.Ctime, s.Mtime, int64(s.Version), int64(s.Cversion),
		int64(s.Aversion), s.EphemeralOwner, int64(s.DataLength), int64(s.NumChildren), s.Pzxid} {
		b = appendVarint(b, v)
	}
	return b
}

func decodeWireStat(d *decoder) znode.WireStat {
	return znode.WireStat{
		Czxid: d.varint("czxid"), Mzxid: d.varint("mzxid"), Ctime: d.varint("ctime"), Mtime: d.varint("mtime"),
		Version: d.int32v("version"), Cversion: d.int32v("cversion"), Aversion: d.int32v("aversion"),
		EphemeralOwner: d.varint("ephemeralOwner"), DataLength: d.int32v("dataLength"),
		NumChildren: d.int32v("numChildren"), Pzxid: d.varint("pzxid"),
	}
}

// appendResult encodes a Result for the apply RPC.
func appendResult(b []byte, r *Result) []byte {
	b = appendUvarint(b, r.Index)
	b = appendVarint(b, r.Zxid)
	if r.Err != nil {
		b = append(b, 1)
		b = appendError(b, r.Err)
	} else {
		b = append(b, 0)
	}
	b = appendUvarint(b, uint64(len(r.Ops)))
	for i := range r.Ops {
		op := &r.Ops[i]
		b = append(b, byte(op.Kind))
		b = appendVarint(b, int64(op.Err))
		b = appendString(b, op.Path)
		b = appendWireStat(b, &op.Stat)
	}
	b = appendVarint(b, r.Session)
	b = appendUvarint(b, uint64(r.Changed))
	b = appendUvarint(b, uint64(len(r.Deleted)))
	for _, p := range r.Deleted {
		b = appendString(b, p)
	}
	return appendUvarint(b, uint64(r.Purged))
}

func decodeResult(p []byte) (*Result, error) {
	d := &decoder{b: p}
	r := &Result{Index: d.uvarint("index"), Zxid: d.varint("zxid")}
	if d.byte1("has error") != 0 {
		r.Err = decodeError(d)
	}
	n := d.count("op count", 14)
	if n > 0 {
		r.Ops = make([]OpResult, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		r.Ops[i] = OpResult{Kind: OpKind(d.byte1("op kind")), Err: Code(d.int32v("op code")), Path: d.string("op path"), Stat: decodeWireStat(d)}
	}
	r.Session = d.varint("session")
	r.Changed = int(d.uvarint("changed"))
	m := d.count("deleted count", 1)
	for i := 0; i < m && d.err == nil; i++ {
		r.Deleted = append(r.Deleted, d.string("deleted path"))
	}
	r.Purged = int(d.uvarint("purged"))
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("raftjournal: malformed apply response: %v", err)
	}
	return r, nil
}

// rpcClient calls the journal RPCs of other nodes over pooled connections.
type rpcClient struct {
	timeout time.Duration // per call, when the context has none
	creds   Credentials

	mu     sync.Mutex
	idle   map[string][]*rpcConn
	closed bool
}

type rpcConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

// maxIdlePerAddr caps the pooled connections per node.
const maxIdlePerAddr = 128

func newRPCClient(timeout time.Duration, creds Credentials) *rpcClient {
	return &rpcClient{timeout: timeout, creds: creds, idle: make(map[string][]*rpcConn)}
}

// errDial marks a failure to reach a node at all: nothing was sent, so any
// request may be retried.
type errDial struct{ err error }

func (e *errDial) Error() string { return e.err.Error() }
func (e *errDial) Unwrap() error { return e.err }

func (cl *rpcClient) get(ctx context.Context, addr string) (*rpcConn, bool, error) {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil, false, ErrClosed
	}
	if list := cl.idle[addr]; len(list) > 0 {
		c := list[len(list)-1]
		cl.idle[addr] = list[:len(list)-1]
		cl.mu.Unlock()
		return c, true, nil
	}
	cl.mu.Unlock()
	timeout := cl.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, false, context.DeadlineExceeded
	}
	c, err := dialMux(addr, muxJournal, cl.creds, min(timeout, 5*time.Second))
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			return nil, false, err // retrying will not help
		}
		return nil, false, &errDial{err}
	}
	return &rpcConn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}, false, nil
}

func (cl *rpcClient) put(addr string, c *rpcConn) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed || len(cl.idle[addr]) >= maxIdlePerAddr {
		c.c.Close()
		return
	}
	cl.idle[addr] = append(cl.idle[addr], c)
}

// drop closes the idle connections to addr: after one failed, the others are
// most likely dead too (the node restarted).
func (cl *rpcClient) drop(addr string) {
	cl.mu.Lock()
	list := cl.idle[addr]
	delete(cl.idle, addr)
	cl.mu.Unlock()
	for _, c := range list {
		c.c.Close()
	}
}

func (cl *rpcClient) close() {
	cl.mu.Lock()
	cl.closed = true
	idle := cl.idle
	cl.idle = nil
	cl.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.c.Close()
		}
	}
}

// errStaleConn marks a pooled connection found dead before any response byte;
// the request may have reached the old peer only if it was still alive, so only
// idempotent requests are retried on it.
type errStaleConn struct{ err error }

func (e *errStaleConn) Error() string { return e.err.Error() }
func (e *errStaleConn) Unwrap() error { return e.err }

// call sends one request and returns the response payload, or the remote error.
func (cl *rpcClient) call(ctx context.Context, addr string, method byte, payload []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		resp, err := cl.callOnce(ctx, addr, method, payload)
		var stale *errStaleConn
		if errors.As(err, &stale) {
			if attempt < 2 && method != rpcApply {
				continue
			}
			err = fmt.Errorf("%w (%w): rpc to %s: %v", ErrOutcomeUnknown, CodeConnectionLoss, addr, stale.err)
		}
		return resp, err
	}
}

func (cl *rpcClient) callOnce(ctx context.Context, addr string, method byte, payload []byte) ([]byte, error) {
	if len(payload) > maxRPCFrame {
		return nil, fmt.Errorf("raftjournal: request of %d bytes exceeds the %d-byte frame limit", len(payload), maxRPCFrame)
	}
	c, reused, err := cl.get(ctx, addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(cl.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.c.SetDeadline(time.Unix(1, 0)) })
	resp, status, got, err := c.roundTrip(method, payload)
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		c.c.Close()
		cl.drop(addr)
		if reused && !got && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) && ctx.Err() == nil {
			return nil, &errStaleConn{err}
		}
		// The request may have been delivered and acted on.
		return nil, fmt.Errorf("%w (%w): rpc to %s: %w", ErrOutcomeUnknown, CodeConnectionLoss, addr, err)
	}
	_ = c.c.SetDeadline(time.Time{})
	cl.put(addr, c)
	if status != 0 {
		d := &decoder{b: resp}
		rerr := decodeError(d)
		if err := d.finish(); err != nil {
			return nil, fmt.Errorf("raftjournal: malformed error from %s: %v", addr, err)
		}
		return nil, rerr
	}
	return resp, nil
}

// roundTrip writes a request and reads the response; got reports whether any
// byte of the response arrived.
func (c *rpcConn) roundTrip(method byte, payload []byte) (resp []byte, status byte, got bool, err error) {
	var h [5]byte
	h[0] = method
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err = c.w.Write(h[:]); err == nil {
		if _, err = c.w.Write(payload); err == nil {
			err = c.w.Flush()
		}
	}
	if err != nil {
		return nil, 0, false, err
	}
	if _, err = io.ReadFull(c.r, h[:1]); err != nil {
		return nil, 0, false, err
	}
	if _, err = io.ReadFull(c.r, h[1:]); err != nil {
		return nil, 0, true, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxRPCFrame {
		return nil, 0, true, fmt.Errorf("response frame of %d bytes", n)
	}
	if resp, err = readPayload(c.r, n); err != nil {
		return nil, 0, true, err
	}
	return resp, h[0], true, nil
}

// serveRPC serves one journal connection until it closes.
func (n *Node) serveRPC(c net.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	var h [5]byte
	for {
		req, err := readRPCRequest(r)
		if err != nil {
			if errors.Is(err, errFrameTooLarge) {
				n.logger.Warn("rpc frame too large; closing the connection", "remote", c.RemoteAddr().String(), "error", err)
			}
			return
		}
		resp, err := n.handleRPC(req)
		status := byte(0)
		if err != nil {
			status, resp = 1, appendError(nil, err)
		}
		h[0] = status
		binary.BigEndian.PutUint32(h[1:], uint32(len(resp)))
		if _, err := w.Write(h[:]); err != nil {
			return
		}
		if _, err := w.Write(resp); err != nil {
			return
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// errFrameTooLarge is a request whose length exceeds its method's bound.
var errFrameTooLarge = errors.New("raftjournal: rpc frame too large")

// rpcRequest is a decoded journal RPC request.
type rpcRequest struct {
	method   byte
	entry    []byte   // apply, apply owned
	entries  [][]byte // apply in order
	session  int64    // touch, apply owned
	sessions []int64  // touch batch
	id, addr string   // add voter, remove (id), transfer; touch batch and apply owned: the owner (id)
	path     string   // read
	flags    byte     // read; touch batch: claim
}

// readRPCRequest reads one request frame (its length bounded by the method
// before anything is allocated) and decodes its payload. A malformed payload
// is an error matching ErrBadCommand, answered to the caller; anything else
// ends the connection.
func readRPCRequest(r io.Reader) (rpcRequest, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return rpcRequest{}, err
	}
	size := binary.BigEndian.Uint32(h[1:])
	if limit := maxRequestSize(h[0]); size > limit {
		return rpcRequest{}, fmt.Errorf("%w: method %d, %d bytes (at most %d)", errFrameTooLarge, h[0], size, limit)
	}
	payload, err := readPayload(r, size)
	if err != nil {
		return rpcRequest{}, err
	}
	return decodeRPCRequest(h[0], payload), nil
}

// decodeRPCRequest decodes a request's payload; a payload that does not
// decode gives a request with method 0 (unknown), which handleRPC refuses.
func decodeRPCRequest(method byte, payload []byte) rpcRequest {
	req := rpcRequest{method: method}
	d := &decoder{b: payload}
	switch method {
	case rpcApply:
		req.entry = payload
	case rpcReadIndex, rpcStatus:
	case rpcTouch:
		req.session = d.varint("session")
	case rpcTouchBatch:
		var claim bool
		req.id, claim, req.sessions = decodeTouchBatch(d)
		req.flags = boolByte(claim)
	case rpcApplyOwned:
		req.id, req.session = d.string("owner"), d.varint("session")
		if d.err != nil {
			return rpcRequest{method: badRPC, id: fmt.Sprintf("rpc %d: %v", method, d.err)}
		}
		req.entry = payload[d.off:]
		return req
	case rpcApplyInOrder:
		req.id, req.session = d.string("owner"), d.varint("session")
		k := d.count("entry count", 1)
		for i := 0; i < k && d.err == nil; i++ {
			if e := d.bytes("entry"); d.err == nil {
				req.entries = append(req.entries, e)
			}
		}
		if d.err == nil && k == 0 {
			d.fail("no entries")
		}
	case rpcAddVoter, rpcTransfer:
		req.id, req.addr = d.string("id"), d.string("addr")
	case rpcRemove:
		req.id = d.string("id")
	case rpcRead:
		req.path = d.string("path")
		req.flags = d.byte1("flags")
	default:
		return req
	}
	if method != rpcApply {
		if err := d.finish(); err != nil {
			return rpcRequest{method: badRPC, id: fmt.Sprintf("rpc %d: %v", method, err)}
		}
	}
	return req
}

// badRPC marks a request whose payload did not decode (the reason in id).
const badRPC byte = 0

func (n *Node) handleRPC(req rpcRequest) ([]byte, error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ForwardTimeout)
	defer cancel()
	switch req.method {
	case badRPC:
		if req.id == "" {
			req.id = "unknown rpc method 0"
		}
		return nil, fmt.Errorf("%w: %s", ErrBadCommand, req.id)
	case rpcApply:
		if !n.isLeader() {
			return nil, ErrNotLeader
		}
		n.metrics.forwardedIn.Inc()
		res, err := n.applyLocal(ctx, stampEntry(req.entry, time.Now().UnixMilli()), entryTypeOf(req.entry))
		if err != nil {
			return nil, err
		}
		return appendResult(nil, res), nil
	case rpcReadIndex:
		idx, err := n.leaderReadIndex(ctx)
		if err != nil {
			return nil, err
		}
		return appendUvarint(nil, idx), nil
	case rpcTouch:
		return nil, n.touchLocal(req.session)
	case rpcTouchBatch:
		return n.touchBatchLocal(req.id, req.flags != 0, req.sessions)
	case rpcApplyInOrder:
		if !n.isLeader() {
			return nil, ErrNotLeader
		}
		if !n.tracker.own(req.session, req.id, false) {
			return nil, sessionMoved(req.session)
		}
		n.metrics.forwardedIn.Add(float64(len(req.entries)))
		now := time.Now().UnixMilli()
		entries := make([][]byte, len(req.entries))
		for i, e := range req.entries {
			entries[i] = stampEntry(e, now)
		}
		results, errs, err := n.applyInOrderLocal(ctx, entries)
		if err != nil {
			return nil, err
		}
		return appendInOrderResults(nil, results, errs), nil
	case rpcApplyOwned:
		if !n.isLeader() {
			return nil, ErrNotLeader
		}
		if !n.tracker.own(req.session, req.id, false) {
			return nil, sessionMoved(req.session)
		}
		n.metrics.forwardedIn.Inc()
		res, err := n.applyLocal(ctx, stampEntry(req.entry, time.Now().UnixMilli()), entryTypeOf(req.entry))
		if err != nil {
			return nil, err
		}
		return appendResult(nil, res), nil
	case rpcAddVoter:
		return nil, n.addVoterLocal(ctx, req.id, req.addr)
	case rpcRemove:
		return nil, n.removeLocal(ctx, req.id)
	case rpcTransfer:
		return nil, n.transferLocal(ctx, req.id, req.addr)
	case rpcStatus:
		return json.Marshal(n.memberStatus())
	case rpcRead:
		var opts []ReadOption
		if req.flags&1 != 0 {
			opts = append(opts, Linearizable())
		}
		data, st, err := n.Get(ctx, req.path, opts...)
		if CodeOf(err) == CodeNoNode {
			return []byte{0}, nil
		}
		if err != nil {
			return nil, err
		}
		b := appendBytes([]byte{1}, data)
		return appendWireStat(b, &st), nil
	}
	return nil, fmt.Errorf("%w: unknown rpc method %d", ErrBadCommand, req.method)
}

// entryTypeOf is the type byte of an encoded entry (0 for an empty one).
func entryTypeOf(entry []byte) EntryType {
	if len(entry) == 0 {
		return 0
	}
	return EntryType(entry[0])
}

// RPCClient calls the journal RPCs of nodes (on their Raft ports) from
// outside their process, with the cluster's credentials, over pooled
// connections (each costs a handshake, and with TLS a TLS handshake, to open).
// For tools and tests; safe for concurrent use.
type RPCClient struct{ cl *rpcClient }

// NewRPCClient returns a client whose calls time out after timeout when their
// context has no deadline.
func NewRPCClient(creds Credentials, timeout time.Duration) *RPCClient {
	return &RPCClient{cl: newRPCClient(timeout, creds)}
}

// Close closes the pooled connections.
func (c *RPCClient) Close() { c.cl.close() }

// Read reads a node's data and stat from the node at raftAddr (local on that
// node, or linearizable).
func (c *RPCClient) Read(ctx context.Context, raftAddr, path string, linearizable bool) (data []byte, st znode.WireStat, exists bool, err error) {
	flags := byte(0)
	if linearizable {
		flags = 1
	}
	resp, err := c.cl.call(ctx, raftAddr, rpcRead, append(appendString(nil, path), flags))
	if err != nil {
		return nil, st, false, err
	}
	d := &decoder{b: resp}
	if d.byte1("exists") == 0 {
		return nil, st, false, d.finish()
	}
	data = d.bytes("data")
	st = decodeWireStat(d)
	return data, st, true, d.finish()
}

// Apply submits an encoded entry to the leader at raftAddr and returns its
// result. It fails with ErrNotLeader when raftAddr is not the leader.
func (c *RPCClient) Apply(ctx context.Context, raftAddr string, entry []byte) (*Result, error) {
	resp, err := c.cl.call(ctx, raftAddr, rpcApply, entry)
	if err != nil {
		return nil, err
	}
	return decodeResult(resp)
}

// Status returns the member status of the node at raftAddr.
func (c *RPCClient) Status(ctx context.Context, raftAddr string) (MemberStatus, error) {
	var ms MemberStatus
	resp, err := c.cl.call(ctx, raftAddr, rpcStatus, nil)
	if err != nil {
		return ms, err
	}
	err = json.Unmarshal(resp, &ms)
	return ms, err
}

// RemoteRead is RPCClient.Read on a client of its own.
func RemoteRead(ctx context.Context, creds Credentials, raftAddr, path string, linearizable bool) (data []byte, st znode.WireStat, exists bool, err error) {
	c := NewRPCClient(creds, 10*time.Second)
	defer c.Close()
	return c.Read(ctx, raftAddr, path, linearizable)
}

// RemoteApply is RPCClient.Apply on a client of its own.
func RemoteApply(ctx context.Context, creds Credentials, raftAddr string, entry []byte) (*Result, error) {
	c := NewRPCClient(creds, 30*time.Second)
	defer c.Close()
	return c.Apply(ctx, raftAddr, entry)
}

// RemoteStatus is RPCClient.Status on a client of its own.
func RemoteStatus(ctx context.Context, creds Credentials, raftAddr string) (MemberStatus, error) {
	c := NewRPCClient(creds, 10*time.Second)
	defer c.Close()
	return c.Status(ctx, raftAddr)
}

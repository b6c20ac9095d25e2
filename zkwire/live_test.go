package zkwire

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/znode"
)

var rewrite = flag.Bool("rewrite", false, "record testdata/golden and testdata/fuzz seeds again from a live ZooKeeper")

// recConn records every byte written to and read from a connection.
type recConn struct {
	net.Conn
	client, server bytes.Buffer
}

func (c *recConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.client.Write(p[:n])
	return n, err
}

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.server.Write(p[:n])
	return n, err
}

// rawClient is a minimal ZooKeeper client written with zkwire's encoder, so
// that the bytes on the wire are exactly what the test means to send.
type rawClient struct {
	t       testing.TB
	conn    *recConn
	fr      *FrameReader
	xid     int32
	session int64
	events  []WatcherEvent // notifications received so far
	// notifyBeforeReply counts notifications that arrived while a reply was
	// awaited.
	notifyBeforeReply int
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	rc := &recConn{Conn: c}
	return &rawClient{t: t, conn: rc, fr: NewFrameReader(rc, DefaultMaxReplyFrame)}
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// connect sends a connect request and returns the response and its size.
func (c *rawClient) connect(req ConnectRequest) (ConnectResponse, int) {
	c.t.Helper()
	c.write(AppendRecordFrame(nil, &req))
	p, err := c.fr.Next()
	if err != nil {
		c.t.Fatalf("connect response: %v", err)
	}
	resp, err := DecodeConnectResponse(p)
	if err != nil {
		c.t.Fatal(err)
	}
	c.session = resp.SessionID
	return resp, len(p)
}

// send writes a request with the given xid (the next ordinary one if 0).
func (c *rawClient) send(xid int32, op OpCode, req Request) int32 {
	c.t.Helper()
	if xid == 0 {
		c.xid++
		xid = c.xid
	}
	b, err := AppendRequestFrame(nil, RequestHeader{Xid: xid, Op: op}, req)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(b)
	return xid
}

type reply struct {
	hdr      ReplyHeader
	resp     Response
	bodySize int
}

// recv reads frames until the reply to xid, collecting notifications.
func (c *rawClient) recv(xid int32, op OpCode) reply {
	c.t.Helper()
	for {
		p, err := c.fr.Next()
		if err != nil {
			c.t.Fatalf("awaiting reply to %v xid %d: %v", op, xid, err)
		}
		hdr, body, err := SplitReply(p)
		if err != nil {
			c.t.Fatal(err)
		}
		if hdr.Xid == XidNotification {
			ev, err := DecodeNotification(body)
			if err != nil {
				c.t.Fatal(err)
			}
			if hdr.Zxid != -1 {
				c.t.Errorf("notification zxid %#x, want -1 (ZooKeeper < 3.9)", hdr.Zxid)
			}
			c.events = append(c.events, ev)
			c.notifyBeforeReply++
			continue
		}
		if hdr.Xid != xid {
			c.t.Fatalf("reply xid %d, want %d", hdr.Xid, xid)
		}
		resp, err := DecodeResponse(op, hdr.Err, body)
		if err != nil {
			c.t.Fatalf("%v reply: %v", op, err)
		}
		return reply{hdr, resp, len(body)}
	}
}

// call sends a request and waits for its reply.
func (c *rawClient) call(op OpCode, req Request) reply {
	c.t.Helper()
	return c.recv(c.send(0, op, req), op)
}

// ok calls and fails the test unless the reply is CodeOK.
func (c *rawClient) ok(op OpCode, req Request) Response {
	c.t.Helper()
	r := c.call(op, req)
	if r.hdr.Err != CodeOK {
		c.t.Fatalf("%v %+v: %v", op, req, r.hdr.Err)
	}
	return r.resp
}

// fails calls and fails the test unless the reply is the given error, with
// no body (ZooKeeper's error replies are 16-byte headers).
func (c *rawClient) fails(op OpCode, req Request, want Code) reply {
	c.t.Helper()
	r := c.call(op, req)
	if r.hdr.Err != want || r.bodySize != 0 {
		c.t.Fatalf("%v %+v: %v with %d body bytes, want %v with none", op, req, r.hdr.Err, r.bodySize, want)
	}
	return r
}

// expectEOF reads until the server closes the connection.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	if p, err := c.fr.Next(); err != io.EOF {
		c.t.Fatalf("want the server to close, got %d bytes, %v", len(p), err)
	}
}

func newSession() ConnectRequest {
	return ConnectRequest{TimeOut: 30000, Passwd: make([]byte, 16), HasReadOnly: true}
}

type recorded struct {
	name           string
	client, server []byte
}

// TestLiveGoldenSession drives a real ZooKeeper 3.8 with a raw jute client,
// checks the facts the reference marks [verified] on the live bytes, decodes
// both recorded directions with a Tracker and re-encodes every frame. With
// -rewrite it stores the streams under testdata/golden and seeds the fuzz
// corpora from them.
func TestLiveGoldenSession(t *testing.T) {
	zk := zktest.New(t, zktest.Options{Servers: 1, ExtendedTypes: true})
	addr := zk.Servers()[0].ClientAddr
	var recs []recorded
	add := func(name string, c *rawClient) {
		recs = append(recs, recorded{name, bytes.Clone(c.conn.client.Bytes()), bytes.Clone(c.conn.server.Bytes())})
	}

	t.Run("main", func(t *testing.T) {
		c := dialRaw(t, addr)
		add("main", mainSession(t, c))
	})
	t.Run("old-client", func(t *testing.T) {
		// No readOnly byte (go-zookeeper, pre-3.4 clients): 3.8 answers
		// without one, 36 bytes; a failed auth is -115 and a close.
		c := dialRaw(t, addr)
		req := newSession()
		req.HasReadOnly = false
		if resp, n := c.connect(req); n != 36 || resp.HasReadOnly {
			t.Fatalf("connect response %d bytes, readOnly present %v; want 36, false", n, resp.HasReadOnly)
		}
		c.ok(OpGetChildren2, &GetChildrenRequest{Path: "/"})
		r := c.recv(c.send(XidAuth, OpAuth, &AuthPacket{Scheme: "nosuchscheme", Auth: []byte("x")}), OpAuth)
		if r.hdr.Err != CodeAuthFailed || r.bodySize != 0 || r.hdr.Zxid != 0 {
			t.Fatalf("auth with an unknown scheme: %+v, %d body bytes", r.hdr, r.bodySize)
		}
		c.expectEOF()
		add("old-client", c)
	})
	t.Run("unknown-session", func(t *testing.T) {
		c := dialRaw(t, addr)
		req := newSession()
		req.SessionID, req.Passwd = 0x0100000012345678, []byte("0123456789abcdef")
		resp, n := c.connect(req)
		if n != 37 || resp.SessionID != 0 || resp.TimeOut != 0 || len(resp.Passwd) != 16 {
			t.Fatalf("reconnect to an unknown session: %+v (%d bytes)", resp, n)
		}
		c.expectEOF()
		add("unknown-session", c)
	})
	t.Run("zxid-ahead", func(t *testing.T) {
		c := dialRaw(t, addr)
		req := newSession()
		req.LastZxidSeen = 0x7fffffff00000000
		c.write(AppendRecordFrame(nil, &req))
		c.expectEOF()
		add("zxid-ahead", c)
	})
	for _, word := range []string{"ruok", "stmk"} {
		t.Run("4lw-"+word, func(t *testing.T) {
			c := dialRaw(t, addr)
			msg := []byte(word)
			if word == "stmk" {
				msg = append(msg, 0, 0, 0, 0, 0, 0, 0x01, 0x32)
			}
			c.write(msg)
			text, err := io.ReadAll(c.conn)
			if err != nil || len(text) == 0 {
				t.Fatalf("%s: %q, %v", word, text, err)
			}
			if word == "ruok" && string(text) != "imok" {
				t.Fatalf("ruok answered %q", text)
			}
			add("4lw-"+word, c)
		})
	}
	t.Run("top-level-check", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.connect(newSession())
		c.ok(OpCreate, &CreateRequest{Path: "/check", Data: []byte{}, ACL: znode.WorldAnyone()})
		// A check outside a multi is not a ZooKeeper 3.8 client API. The
		// server executes it, then fails to serialize SetDataResponse(null
		// stat) (a NullPointerException in its log) and sends nothing: the
		// request stays unanswered.
		c.send(0, OpCheck, &CheckVersionRequest{Path: "/check", Version: 0})
		_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
		if p, err := c.fr.Next(); err == nil {
			hdr, body, _ := SplitReply(p)
			t.Logf("top-level check answered: err %v, %d body bytes", hdr.Err, len(body))
		} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("top-level check: %v", err)
		}
		add("top-level-check", c)
	})
	t.Run("sasl-unconfigured", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.connect(newSession())
		// Without a SASL server configured, ZooKeeper 3.8 logs "cnxn.saslServer
		// is null" and answers err 0 with a null token (a 4-byte body −1).
		xid := c.send(0, OpSASL, &SASLRequest{Token: []byte{}})
		r := c.recv(xid, OpSASL)
		if r.hdr.Err != CodeOK || r.resp.(*SASLResponse).Token != nil || r.bodySize != 4 {
			t.Fatalf("sasl without a SASL server: %+v %+v", r.hdr, r.resp)
		}
		add("sasl-unconfigured", c)
	})

	for _, r := range recs {
		t.Run("decode-"+r.name, func(t *testing.T) {
			checkStreams(t, r.client, r.server)
		})
	}
	if *rewrite && !t.Failed() {
		writeGolden(t, recs)
	}
}

func mainSession(t *testing.T, c *rawClient) *rawClient {
	resp, n := c.connect(newSession())
	if n != 37 || !resp.HasReadOnly || resp.SessionID == 0 || len(resp.Passwd) != 16 {
		t.Fatalf("connect response %+v (%d bytes), want 37 with readOnly", resp, n)
	}
	open := znode.WorldAnyone()

	// Auth with the special xid, as the Java client sends it.
	if r := c.recv(c.send(XidAuth, OpAuth, &AuthPacket{Scheme: "digest", Auth: []byte("golden:secret")}), OpAuth); r.hdr.Err != CodeOK || r.hdr.Zxid != 0 || r.bodySize != 0 {
		t.Fatalf("digest auth: %+v, %d body bytes", r.hdr, r.bodySize)
	}

	// Creates of every mode.
	if r := c.ok(OpCreate, &CreateRequest{Path: "/golden", Data: []byte("root"), ACL: open}).(*CreateResponse); r.Path != "/golden" {
		t.Fatalf("create: %+v", r)
	}
	eph := c.ok(OpCreate2, &CreateRequest{Path: "/golden/eph", Data: []byte{}, ACL: open, Flags: ModeEphemeral}).(*Create2Response)
	if eph.Stat.EphemeralOwner != c.session {
		t.Fatalf("create2 ephemeral: owner %#x, session %#x", eph.Stat.EphemeralOwner, c.session)
	}
	pseq := c.ok(OpCreate, &CreateRequest{Path: "/golden/pseq-", ACL: open, Flags: ModePersistentSequential}).(*CreateResponse)
	if pseq.Path != "/golden/pseq-0000000001" {
		t.Fatalf("sequential create: %q", pseq.Path)
	}
	c.ok(OpCreate2, &CreateRequest{Path: "/golden/eseq-", Data: []byte("e"), ACL: open, Flags: ModeEphemeralSequential})
	c.ok(OpCreateContainer, &CreateRequest{Path: "/golden/container", Data: []byte{}, ACL: open, Flags: ModeContainer})
	ttl := c.ok(OpCreateTTL, &CreateTTLRequest{Path: "/golden/ttl", Data: []byte("t"), ACL: open, Flags: ModePersistentWithTTL, TTL: 3600000}).(*Create2Response)
	if ttl.Stat.EphemeralOwner != 0 {
		t.Fatalf("TTL node: client ephemeralOwner %#x, want 0", ttl.Stat.EphemeralOwner)
	}
	c.ok(OpCreateTTL, &CreateTTLRequest{Path: "/golden/ttlseq-", Data: []byte{}, ACL: open, Flags: ModePersistentSequentialWithTTL, TTL: 60000})

	// Create on an existing node: a 16-byte header with -110.
	c.fails(OpCreate, &CreateRequest{Path: "/golden", Data: []byte{}, ACL: open}, CodeNodeExists)

	// Reads, setting watches.
	c.ok(OpExists, &ExistsRequest{Path: "/golden", Watch: true})
	c.fails(OpExists, &ExistsRequest{Path: "/golden/missing", Watch: true}, CodeNoNode)
	if r := c.ok(OpGetData, &GetDataRequest{Path: "/golden", Watch: true}).(*GetDataResponse); string(r.Data) != "root" {
		t.Fatalf("getData: %+v", r)
	}
	if r := c.ok(OpGetData, &GetDataRequest{Path: pseq.Path}).(*GetDataResponse); r.Data != nil {
		t.Fatalf("getData of a node created with null data: %q, want nil", r.Data)
	}
	c.ok(OpGetChildren, &GetChildrenRequest{Path: "/golden"})
	if r := c.ok(OpGetChildren2, &GetChildrenRequest{Path: "/golden", Watch: true}).(*GetChildren2Response); len(r.Children) != 6 {
		t.Fatalf("getChildren2: %+v", r)
	}

	// A write that fires the data watch: the notification (zxid -1) comes
	// before the reply.
	before := c.notifyBeforeReply
	c.ok(OpSetData, &SetDataRequest{Path: "/golden", Data: []byte("root2"), Version: 0})
	if c.notifyBeforeReply != before+1 || c.events[len(c.events)-1] != (WatcherEvent{EventNodeDataChanged, StateSyncConnected, "/golden"}) {
		t.Fatalf("setData: notifications %+v", c.events)
	}
	c.fails(OpSetData, &SetDataRequest{Path: "/golden", Data: []byte("x"), Version: 0}, CodeBadVersion)

	c.ok(OpGetACL, &GetACLRequest{Path: "/golden"})
	acl := append(znode.WorldAnyone(), znode.ACL{Perms: znode.PermRead, ID: znode.ID{Scheme: "digest", ID: "golden:KrHYXW1xnnGLvkLDeKnD4XhJ+Es="}})
	c.ok(OpSetACL, &SetACLRequest{Path: pseq.Path, ACL: acl, Version: 0})
	if r := c.ok(OpSync, &SyncRequest{Path: "/golden"}).(*SyncResponse); r.Path != "/golden" {
		t.Fatalf("sync: %+v", r)
	}

	// A successful multi: create2 is answered as a plain create on 3.8,
	// createTTL and createContainer as create2.
	m := c.ok(OpMulti, &MultiRequest{Ops: []MultiOp{
		{OpCreate, &CreateRequest{Path: "/golden/m1", Data: []byte("1"), ACL: open}},
		{OpCreate2, &CreateRequest{Path: "/golden/m2", Data: []byte("2"), ACL: open}},
		{OpCreateTTL, &CreateTTLRequest{Path: "/golden/m3", Data: []byte{}, ACL: open, Flags: ModePersistentWithTTL, TTL: 60000}},
		{OpCreateContainer, &CreateRequest{Path: "/golden/m4", Data: []byte{}, ACL: open, Flags: ModeContainer}},
		{OpSetData, &SetDataRequest{Path: "/golden/m1", Data: []byte("1b"), Version: 0}},
		{OpCheck, &CheckVersionRequest{Path: "/golden/m1", Version: 1}},
		{OpDelete, &DeleteRequest{Path: "/golden/m1", Version: -1}},
	}}).(*MultiResponse)
	var types []OpCode
	for _, r := range m.Results {
		types = append(types, r.Op)
	}
	if want := []OpCode{OpCreate, OpCreate, OpCreate2, OpCreate2, OpSetData, OpCheck, OpDelete}; !reflect.DeepEqual(types, want) {
		t.Fatalf("multi result types %v, want %v", types, want)
	}

	// A failed multi: header err 0, results [-1/0][-1/-101][-1/-2].
	fr := c.call(OpMulti, &MultiRequest{Ops: []MultiOp{
		{OpCreate, &CreateRequest{Path: "/golden/x", Data: []byte{}, ACL: open}},
		{OpSetData, &SetDataRequest{Path: "/golden/nonexistent", Data: []byte{}, Version: -1}},
		{OpDelete, &DeleteRequest{Path: "/golden/y", Version: -1}},
	}})
	wantFailed := &MultiResponse{Results: []MultiResult{{Op: OpError, Err: CodeOK}, {Op: OpError, Err: CodeNoNode}, {Op: OpError, Err: CodeRuntimeInconsistency}}}
	if fr.hdr.Err != CodeOK || !reflect.DeepEqual(fr.resp, wantFailed) {
		t.Fatalf("failed multi: %+v %+v", fr.hdr, fr.resp)
	}

	// multiRead: per-op results, an error for the missing node.
	mr := c.ok(OpMultiRead, &MultiRequest{Ops: []MultiOp{
		{OpGetData, &GetDataRequest{Path: "/golden"}},
		{OpGetChildren, &GetChildrenRequest{Path: "/golden"}},
		{OpGetData, &GetDataRequest{Path: "/golden/missing"}},
	}}).(*MultiResponse)
	if len(mr.Results) != 3 || mr.Results[0].Op != OpGetData || mr.Results[1].Op != OpGetChildren || mr.Results[2].Op != OpError || mr.Results[2].Err != CodeNoNode {
		t.Fatalf("multiRead: %+v", mr.Results)
	}

	// addWatch: a 4-byte ErrorResponse body; then a create under it fires
	// NodeCreated (and the getChildren2 child watch) before the reply.
	aw := c.call(OpAddWatch, &AddWatchRequest{Path: "/golden", Mode: AddWatchPersistentRecursive})
	if aw.hdr.Err != CodeOK || aw.bodySize != 4 {
		t.Fatalf("addWatch: %+v, %d body bytes", aw.hdr, aw.bodySize)
	}
	before = len(c.events)
	c.ok(OpCreate, &CreateRequest{Path: "/golden/w", ACL: open}) // null data
	if len(c.events) == before {
		t.Fatal("no notification for a create under a persistent recursive watch")
	}

	// Pipelined requests: three in flight, answered in order.
	x1 := c.send(0, OpGetData, &GetDataRequest{Path: "/golden/w"})
	x2 := c.send(0, OpExists, &ExistsRequest{Path: "/golden/nope"})
	x3 := c.send(XidPing, OpPing, nil)
	if r := c.recv(x1, OpGetData); r.resp.(*GetDataResponse).Data != nil {
		t.Fatalf("getData of null data: %+v", r.resp)
	}
	if r := c.recv(x2, OpExists); r.hdr.Err != CodeNoNode {
		t.Fatalf("exists: %+v", r.hdr)
	}
	if r := c.recv(x3, OpPing); r.hdr.Err != CodeOK || r.bodySize != 0 {
		t.Fatalf("ping: %+v", r)
	}

	c.ok(OpGetEphemerals, &GetEphemeralsRequest{PrefixPath: "/golden"})
	if r := c.ok(OpGetAllChildrenNumber, &GetAllChildrenNumberRequest{Path: "/golden"}).(*GetAllChildrenNumberResponse); r.TotalNumber < 8 {
		t.Fatalf("getAllChildrenNumber: %+v", r)
	}
	who := c.ok(OpWhoAmI, nil).(*WhoAmIResponse)
	if len(who.ClientInfo) != 2 {
		t.Fatalf("whoAmI: %+v", who)
	}

	// Watch management.
	c.ok(OpExists, &ExistsRequest{Path: "/golden", Watch: true})
	c.ok(OpCheckWatches, &CheckWatchesRequest{Path: "/golden", Type: WatcherData})
	c.ok(OpRemoveWatches, &RemoveWatchesRequest{Path: "/golden", Type: WatcherAny})
	c.fails(OpCheckWatches, &CheckWatchesRequest{Path: "/golden", Type: WatcherData}, CodeNoWatcher)

	// setWatches as after a reconnect: the data watch on /golden fires at
	// once because /golden changed after relativeZxid 1. The C client's −8
	// xid, then setWatches2 with an ordinary xid (Java).
	before = len(c.events)
	c.recv(c.send(XidSetWatches, OpSetWatches, &SetWatchesRequest{RelativeZxid: 1, DataWatches: []string{"/golden"}, ChildWatches: []string{"/golden"}}), OpSetWatches)
	if len(c.events) == before {
		t.Fatal("setWatches with an old relativeZxid fired nothing")
	}
	c.ok(OpSetWatches2, &SetWatches2Request{RelativeZxid: 1, PersistentWatches: []string{"/golden/w"}, PersistentRecursiveWatches: []string{"/golden/m2"}})

	c.fails(OpReconfig, &ReconfigRequest{JoiningServers: strp("server.2=127.0.0.1:2888:3888;2181"), CurConfigID: -1}, CodeReconfigDisabled)

	c.ok(OpDelete, &DeleteRequest{Path: "/golden/eph", Version: -1})
	c.fails(OpDelete, &DeleteRequest{Path: "/golden", Version: -1}, CodeNotEmpty)

	c.ok(OpCloseSession, nil)
	c.expectEOF()
	return c
}

// checkStreams decodes a recorded connection with a Tracker and re-encodes
// every frame, which must give back the recorded bytes.
func checkStreams(t testing.TB, client, server []byte) []string {
	t.Helper()
	tr := mustTracker(t)
	var lines []string
	note := func(dir string, ev Event) {
		lines = append(lines, describeEvent(dir, ev))
	}
	if _, ok := DetectFourLetterWord(client); ok {
		evs, err := tr.FeedClient(client)
		if err != nil || len(evs) != 1 {
			t.Fatalf("four-letter word: %v, %v", evs, err)
		}
		if evs, err := tr.FeedServer(server); err != nil || len(evs) != 0 {
			t.Fatalf("four-letter-word answer: %v, %v", evs, err)
		}
		note("C", evs[0])
		lines = append(lines, fmt.Sprintf("S text %q", server))
		return lines
	}
	for _, dir := range []struct {
		name  string
		b     []byte
		limit int
		frame func([]byte) (Event, error)
	}{{"C", client, DefaultMaxBuffer, tr.ClientFrame}, {"S", server, DefaultMaxReplyFrame, tr.ServerFrame}} {
		fr := NewFrameReader(bytes.NewReader(dir.b), dir.limit)
		for i := 0; ; i++ {
			p, err := fr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s frame %d: %v", dir.name, i, err)
			}
			ev, err := dir.frame(p)
			if err != nil {
				t.Fatalf("%s frame %d (%x): %v", dir.name, i, p, err)
			}
			again, err := reencode(ev)
			if err != nil {
				t.Fatalf("%s frame %d: re-encode: %v", dir.name, i, err)
			}
			if want := AppendFrame(nil, p); !bytes.Equal(again, want) {
				t.Fatalf("%s frame %d (%T) re-encodes differently:\n got %x\nwant %x", dir.name, i, ev, again, want)
			}
			note(dir.name, ev)
		}
	}
	for _, p := range tr.Close() {
		lines = append(lines, fmt.Sprintf("- unanswered xid %d %v", p.Xid, p.Op))
	}
	return lines
}

func reencode(ev Event) ([]byte, error) {
	switch ev := ev.(type) {
	case *ConnectEvent:
		return AppendRecordFrame(nil, &ev.Request), nil
	case *ConnectedEvent:
		return AppendRecordFrame(nil, &ev.Response), nil
	case *RequestEvent:
		return AppendRequestFrame(nil, ev.Header, ev.Request)
	case *ReplyEvent:
		return AppendReplyFrame(nil, ev.Header, ev.Op, ev.Response)
	case *NotificationEvent:
		return AppendNotificationFrame(nil, ev.Header.Zxid, ev.Event), nil
	}
	return nil, fmt.Errorf("unexpected event %T", ev)
}

func writeGolden(t *testing.T, recs []recorded) {
	t.Helper()
	dir := filepath.Join("testdata", "golden")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		for _, f := range []struct {
			ext string
			b   []byte
		}{{".client", r.client}, {".server", r.server}} {
			if err := os.WriteFile(filepath.Join(dir, r.name+f.ext), f.b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		lines := checkStreams(t, r.client, r.server)
		if err := os.WriteFile(filepath.Join(dir, r.name+".txt"), []byte(joinLines(lines)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeFuzzSeeds(recs); err != nil {
		t.Fatal(err)
	}
	t.Logf("rewrote %s and the fuzz seeds", dir)
}

func joinLines(lines []string) string {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

package zkwire

import (
	"errors"
	"flag"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: time-based)")

func testSeed(t testing.TB) uint64 {
	t.Helper()
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", s, s)
	return s
}

func mustTracker(t testing.TB) *Tracker {
	t.Helper()
	tr, err := NewTracker(TrackerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func newSessionConnect(t testing.TB) []byte {
	t.Helper()
	return AppendRecordFrame(nil, &ConnectRequest{TimeOut: 30000, Passwd: make([]byte, 16), HasReadOnly: true})
}

func newSessionConnected(t testing.TB) []byte {
	t.Helper()
	return AppendRecordFrame(nil, &ConnectResponse{TimeOut: 30000, SessionID: 0x100000abc, Passwd: []byte("0123456789abcdef"), HasReadOnly: true})
}

func feedAll(t testing.TB, tr *Tracker, client, server []byte) []Event {
	t.Helper()
	c, err := tr.FeedClient(client)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tr.FeedServer(server)
	if err != nil {
		t.Fatal(err)
	}
	return append(c, s...)
}

type frameBuilder struct {
	t testing.TB
	b []byte
}

func (f *frameBuilder) req(xid int32, op OpCode, r Request) {
	f.t.Helper()
	var err error
	if f.b, err = AppendRequestFrame(f.b, RequestHeader{Xid: xid, Op: op}, r); err != nil {
		f.t.Fatal(err)
	}
}

func (f *frameBuilder) reply(xid int32, zxid int64, code Code, op OpCode, r Response) {
	f.t.Helper()
	var err error
	if f.b, err = AppendReplyFrame(f.b, ReplyHeader{Xid: xid, Zxid: zxid, Err: code}, op, r); err != nil {
		f.t.Fatal(err)
	}
}

// interleavedSession is a connection as a tap sees it: pipelined requests,
// two auth packets and two pings outstanding at once, setWatches with the C
// client's −8 and with an ordinary xid, a notification arriving before the
// reply to the write that fired it, and error replies.
func interleavedSession(t testing.TB) (client, server []byte, want []Event) {
	c := &frameBuilder{t: t, b: newSessionConnect(t)}
	s := &frameBuilder{t: t, b: newSessionConnected(t)}
	create := &CreateRequest{Path: "/a", Data: []byte("x"), ACL: testACL[:1]}
	getData := &GetDataRequest{Path: "/a", Watch: true}
	setData := &SetDataRequest{Path: "/a", Data: []byte("y"), Version: -1}
	auth1 := &AuthPacket{Scheme: "digest", Auth: []byte("u:p")}
	auth2 := &AuthPacket{Scheme: "digest", Auth: []byte("v:q")}
	sw := &SetWatchesRequest{RelativeZxid: 5, DataWatches: []string{"/a"}}
	multi := &MultiRequest{Ops: []MultiOp{
		{OpCreate, &CreateRequest{Path: "/b", ACL: testACL[:1]}},
		{OpDelete, &DeleteRequest{Path: "/nope", Version: -1}},
	}}

	c.req(XidAuth, OpAuth, auth1)
	c.req(XidAuth, OpAuth, auth2)
	c.req(XidSetWatches, OpSetWatches, sw)
	c.req(1, OpCreate, create)
	c.req(2, OpGetData, getData)
	c.req(XidPing, OpPing, nil)
	c.req(3, OpSetData, setData)
	c.req(XidPing, OpPing, nil)
	c.req(4, OpCreate, create)
	c.req(5, OpSetWatches, sw) // Java and go-zookeeper: an ordinary xid
	c.req(6, OpMulti, multi)
	c.req(7, OpCloseSession, nil)

	multiResp := &MultiResponse{Results: []MultiResult{{Op: OpError, Err: CodeOK}, {Op: OpError, Err: CodeNoNode}}}
	ev := WatcherEvent{Type: EventNodeDataChanged, State: StateSyncConnected, Path: "/a"}
	s.reply(XidAuth, 0, CodeOK, OpAuth, nil)
	s.reply(XidAuth, 0, CodeOK, OpAuth, nil)
	s.reply(XidSetWatches, 0x10, CodeOK, OpSetWatches, nil)
	s.reply(1, 0x11, CodeOK, OpCreate, &CreateResponse{Path: "/a"})
	s.reply(2, 0x11, CodeOK, OpGetData, &GetDataResponse{Data: []byte("x"), Stat: testStat})
	s.reply(XidPing, 0x11, CodeOK, OpPing, nil)
	s.b = AppendNotificationFrame(s.b, -1, ev) // before the setData reply
	s.reply(3, 0x12, CodeOK, OpSetData, &SetDataResponse{Stat: testStat})
	s.reply(XidPing, 0x12, CodeOK, OpPing, nil)
	s.reply(4, 0x13, CodeNodeExists, OpCreate, nil)
	s.reply(5, 0x13, CodeOK, OpSetWatches, nil)
	s.reply(6, 0x14, CodeOK, OpMulti, multiResp)
	s.reply(7, 0x15, CodeOK, OpCloseSession, nil)

	want = []Event{
		&ConnectEvent{Request: ConnectRequest{TimeOut: 30000, Passwd: make([]byte, 16), HasReadOnly: true}},
		&RequestEvent{RequestHeader{XidAuth, OpAuth}, auth1},
		&RequestEvent{RequestHeader{XidAuth, OpAuth}, auth2},
		&RequestEvent{RequestHeader{XidSetWatches, OpSetWatches}, sw},
		&RequestEvent{RequestHeader{1, OpCreate}, create},
		&RequestEvent{RequestHeader{2, OpGetData}, getData},
		&RequestEvent{RequestHeader{XidPing, OpPing}, nil},
		&RequestEvent{RequestHeader{3, OpSetData}, setData},
		&RequestEvent{RequestHeader{XidPing, OpPing}, nil},
		&RequestEvent{RequestHeader{4, OpCreate}, create},
		&RequestEvent{RequestHeader{5, OpSetWatches}, sw},
		&RequestEvent{RequestHeader{6, OpMulti}, multi},
		&RequestEvent{RequestHeader{7, OpCloseSession}, nil},
		&ConnectedEvent{Response: ConnectResponse{TimeOut: 30000, SessionID: 0x100000abc, Passwd: []byte("0123456789abcdef"), HasReadOnly: true}},
		&ReplyEvent{ReplyHeader{XidAuth, 0, CodeOK}, OpAuth, auth1, nil},
		&ReplyEvent{ReplyHeader{XidAuth, 0, CodeOK}, OpAuth, auth2, nil},
		&ReplyEvent{ReplyHeader{XidSetWatches, 0x10, CodeOK}, OpSetWatches, sw, nil},
		&ReplyEvent{ReplyHeader{1, 0x11, CodeOK}, OpCreate, create, &CreateResponse{Path: "/a"}},
		&ReplyEvent{ReplyHeader{2, 0x11, CodeOK}, OpGetData, getData, &GetDataResponse{Data: []byte("x"), Stat: testStat}},
		&ReplyEvent{ReplyHeader{XidPing, 0x11, CodeOK}, OpPing, nil, nil},
		&NotificationEvent{ReplyHeader{XidNotification, -1, CodeOK}, ev},
		&ReplyEvent{ReplyHeader{3, 0x12, CodeOK}, OpSetData, setData, &SetDataResponse{Stat: testStat}},
		&ReplyEvent{ReplyHeader{XidPing, 0x12, CodeOK}, OpPing, nil, nil},
		&ReplyEvent{ReplyHeader{4, 0x13, CodeNodeExists}, OpCreate, create, nil},
		&ReplyEvent{ReplyHeader{5, 0x13, CodeOK}, OpSetWatches, sw, nil},
		&ReplyEvent{ReplyHeader{6, 0x14, CodeOK}, OpMulti, multi, multiResp},
		&ReplyEvent{ReplyHeader{7, 0x15, CodeOK}, OpCloseSession, nil, nil},
	}
	return c.b, s.b, want
}

func TestTrackerInterleaved(t *testing.T) {
	client, server, want := interleavedSession(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 0))
	for round := range 50 {
		tr := mustTracker(t)
		var got []Event
		// Client bytes first (a tap feeds them before relaying), in random
		// chunks; then the server's.
		for _, dir := range []struct {
			b    []byte
			feed func([]byte) ([]Event, error)
		}{{client, tr.FeedClient}, {server, tr.FeedServer}} {
			for b := dir.b; len(b) > 0; {
				n := 1 + rng.IntN(min(len(b), 1+rng.IntN(64)))
				if round == 0 {
					n = len(b)
				}
				evs, err := dir.feed(b[:n])
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				got = append(got, evs...)
				b = b[n:]
			}
		}
		if !reflect.DeepEqual(got, want) {
			for i := range max(len(got), len(want)) {
				var g, w Event
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if !reflect.DeepEqual(g, w) {
					t.Fatalf("round %d: event %d:\n got %#v\nwant %#v", round, i, g, w)
				}
			}
		}
		if n := tr.PendingCount(); n != 0 {
			t.Fatalf("%d pending after the session", n)
		}
		if tr.SessionID() != 0x100000abc || tr.LastZxid() != 0x15 {
			t.Fatalf("session %#x, last zxid %#x", tr.SessionID(), tr.LastZxid())
		}
	}
}

func TestTrackerFrameAPI(t *testing.T) {
	client, server, want := interleavedSession(t)
	tr := mustTracker(t)
	var got []Event
	for _, dir := range []struct {
		b    []byte
		feed func([]byte) (Event, error)
	}{{client, tr.ClientFrame}, {server, tr.ServerFrame}} {
		fr := NewFrameReader(bytesReader(dir.b), DefaultMaxReplyFrame)
		for {
			p, err := fr.Next()
			if err != nil {
				break
			}
			ev, err := dir.feed(p)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ev)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("frame API events differ from the expected ones")
	}
}

func TestTrackerErrors(t *testing.T) {
	t.Run("unmatched reply", func(t *testing.T) {
		tr := mustTracker(t)
		feedAll(t, tr, newSessionConnect(t), newSessionConnected(t))
		s := &frameBuilder{t: t}
		s.reply(9, 1, CodeOK, OpSync, &SyncResponse{Path: "/"})
		s.reply(XidPing, 1, CodeOK, OpPing, nil)
		evs, err := tr.FeedServer(s.b)
		if !errors.Is(err, ErrUnmatchedReply) || len(evs) != 0 {
			t.Fatalf("got %v, %v", evs, err)
		}
	})
	t.Run("malformed body is tracked", func(t *testing.T) {
		tr := mustTracker(t)
		feedAll(t, tr, newSessionConnect(t), newSessionConnected(t))
		// A getData whose watch byte is 7: ZooKeeper would read it as true;
		// zkwire refuses it but still pairs the reply.
		p, _ := AppendRequestFrame(nil, RequestHeader{Xid: 1, Op: OpGetData}, &GetDataRequest{Path: "/a"})
		p[len(p)-1] = 7
		evs, err := tr.FeedClient(p)
		if !errors.Is(err, ErrMalformed) || len(evs) != 0 || tr.PendingCount() != 1 {
			t.Fatalf("got %v, %v, %d pending", evs, err, tr.PendingCount())
		}
		s := &frameBuilder{t: t}
		s.reply(1, 3, CodeOK, OpGetData, &GetDataResponse{Data: []byte{}, Stat: testStat})
		evs, err = tr.FeedServer(s.b)
		if err != nil || len(evs) != 1 || evs[0].(*ReplyEvent).Request != nil || evs[0].(*ReplyEvent).Op != OpGetData {
			t.Fatalf("got %#v, %v", evs, err)
		}
	})
	t.Run("unknown opcode", func(t *testing.T) {
		tr := mustTracker(t)
		feedAll(t, tr, newSessionConnect(t), newSessionConnected(t))
		p := AppendFrame(nil, AppendRecord(nil, &RequestHeader{Xid: 1, Op: OpCode(77)}))
		if _, err := tr.FeedClient(p); !errors.Is(err, ErrUnknownOpCode) {
			t.Fatalf("got %v", err)
		}
		evs, err := tr.FeedServer(AppendFrame(nil, AppendRecord(nil, &ReplyHeader{Xid: 1, Zxid: 2, Err: CodeUnimplemented})))
		if err != nil || len(evs) != 1 || evs[0].(*ReplyEvent).Op != OpCode(77) {
			t.Fatalf("got %v, %v", evs, err)
		}
	})
	t.Run("oversized frame is fatal", func(t *testing.T) {
		tr, err := NewTracker(TrackerConfig{MaxRequestFrame: 100})
		if err != nil {
			t.Fatal(err)
		}
		feedAll(t, tr, newSessionConnect(t), newSessionConnected(t))
		if _, err := tr.FeedClient([]byte{0, 0, 0, 101}); !errors.Is(err, ErrFrameLength) {
			t.Fatalf("got %v", err)
		}
		if _, err := tr.FeedServer(nil); !errors.Is(err, ErrFrameLength) {
			t.Fatalf("not sticky: %v", err)
		}
	})
	t.Run("negative length", func(t *testing.T) {
		tr := mustTracker(t)
		if _, err := tr.FeedClient([]byte{0x80, 0, 0, 0}); !errors.Is(err, ErrFrameLength) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("close drops pending", func(t *testing.T) {
		tr := mustTracker(t)
		c := &frameBuilder{t: t, b: newSessionConnect(t)}
		c.req(5, OpDelete, &DeleteRequest{Path: "/x", Version: -1})
		c.req(XidPing, OpPing, nil)
		c.req(3, OpSync, &SyncRequest{Path: "/"})
		if _, err := tr.FeedClient(c.b); err != nil {
			t.Fatal(err)
		}
		p := tr.Close()
		if len(p) != 3 || p[0].Xid != 5 || p[1].Op != OpPing || p[2].Xid != 3 {
			t.Fatalf("pending %+v", p)
		}
		if tr.Close() != nil {
			t.Fatal("second Close returned pending requests")
		}
		if _, err := tr.FeedServer(nil); !errors.Is(err, ErrTrackerClosed) {
			t.Fatalf("after Close: %v", err)
		}
	})
	t.Run("too many pending", func(t *testing.T) {
		tr, err := NewTracker(TrackerConfig{MaxPending: 2})
		if err != nil {
			t.Fatal(err)
		}
		c := &frameBuilder{t: t, b: newSessionConnect(t)}
		for xid := range int32(3) {
			c.req(xid+1, OpSync, &SyncRequest{Path: "/"})
		}
		evs, err := tr.FeedClient(c.b)
		if !errors.Is(err, ErrTooManyPending) || len(evs) != 3 {
			t.Fatalf("got %d events, %v", len(evs), err)
		}
	})
	t.Run("config", func(t *testing.T) {
		if _, err := NewTracker(TrackerConfig{MaxReplyFrame: -1}); err == nil {
			t.Fatal("negative MaxReplyFrame accepted")
		}
		if err := DefaultTrackerConfig().Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTrackerFourLetterWords(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input []byte
		want  *FourLetterWordEvent
	}{
		{"ruok", []byte("ruok"), &FourLetterWordEvent{Word: WordRuok}},
		{"mntr with newline", []byte("mntr\n"), &FourLetterWordEvent{Word: WordMntr}},
		{"stmk", append([]byte("stmk"), 0, 0, 0, 0, 0, 0, 0x01, 0x02), &FourLetterWordEvent{Word: WordStmk, TraceMask: 0x0102}},
		{"telnet close", []byte{0xff, 0xf4, 0xff, 0xfd}, &FourLetterWordEvent{Word: WordTelnetClose}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustTracker(t)
			var got []Event
			for i := range tc.input { // one byte at a time
				evs, err := tr.FeedClient(tc.input[i : i+1])
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, evs...)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
				t.Fatalf("got %v, want %+v", got, tc.want)
			}
			// The server's plain-text answer is not framed; it is ignored.
			if evs, err := tr.FeedServer([]byte("imok")); err != nil || len(evs) != 0 {
				t.Fatalf("server text: %v, %v", evs, err)
			}
			if w, ok := tr.FourLetterWord(); !ok || w != tc.want.Word {
				t.Fatalf("FourLetterWord() = %v, %v", w, ok)
			}
		})
	}
	// An unknown word is an ordinary (far too long) frame length.
	tr := mustTracker(t)
	if _, err := tr.FeedClient([]byte("abcd")); !errors.Is(err, ErrFrameLength) {
		t.Fatalf("unknown word: %v", err)
	}
}

// TestTrackerConcurrent feeds the two directions from two goroutines, as a
// tap does: each reply is fed only after its request was.
func TestTrackerConcurrent(t *testing.T) {
	const n = 2000
	tr := mustTracker(t)
	sent := make(chan int32, n)
	done := make(chan error, 1)
	go func() {
		if _, err := tr.FeedClient(newSessionConnect(t)); err != nil {
			done <- err
			return
		}
		for xid := int32(1); xid <= n; xid++ {
			b, err := AppendRequestFrame(nil, RequestHeader{Xid: xid, Op: OpSync}, &SyncRequest{Path: "/"})
			if err != nil {
				done <- err
				return
			}
			if _, err := tr.FeedClient(b); err != nil {
				done <- err
				return
			}
			sent <- xid
		}
		close(sent)
		done <- nil
	}()
	if _, err := tr.FeedServer(newSessionConnected(t)); err != nil {
		t.Fatal(err)
	}
	var replies, notes int
	for xid := range sent {
		b, err := AppendReplyFrame(nil, ReplyHeader{Xid: xid, Zxid: int64(xid), Err: CodeOK}, OpSync, &SyncResponse{Path: "/"})
		if err != nil {
			t.Fatal(err)
		}
		if xid%10 == 0 {
			b = AppendNotificationFrame(b, -1, WatcherEvent{Type: EventNodeDeleted, State: StateSyncConnected, Path: "/x"})
		}
		evs, err := tr.FeedServer(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			switch ev := ev.(type) {
			case *ReplyEvent:
				if ev.Header.Xid != xid || ev.Op != OpSync {
					t.Fatalf("reply %+v for xid %d", ev, xid)
				}
				replies++
			case *NotificationEvent:
				notes++
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if replies != n || notes != n/10 || tr.PendingCount() != 0 || tr.LastZxid() != n {
		t.Fatalf("%d replies, %d notifications, %d pending, last zxid %d", replies, notes, tr.PendingCount(), tr.LastZxid())
	}
}

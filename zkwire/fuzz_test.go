package zkwire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// Every decoder has a fuzz target. None may panic or allocate more than its
// input justifies; whatever a decoder accepts must encode back to the same
// bytes; every failure must be one of the package's errors. Seeds: the
// records of the round-trip tables below, plus testdata/fuzz/<target>, which
// holds the frames recorded from ZooKeeper 3.8 (TestLiveGoldenSession
// -rewrite writes them).

func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) && !errors.Is(err, ErrUnknownOpCode) {
		t.Fatalf("error %v (%T) is neither a *DecodeError nor ErrUnknownOpCode", err, err)
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendFrame(AppendFrame(nil, []byte("abc")), nil))
	f.Add([]byte("ruok"))
	f.Add([]byte("stmk\x00\x00\x00\x00\x00\x00\x00\x01"))
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		fr := NewFrameReader(bytes.NewReader(data), limit)
		var rebuilt []byte
		for {
			p, err := fr.Next()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrFrameLength) {
					t.Fatalf("unexpected error %v", err)
				}
				if err == io.EOF && !bytes.Equal(rebuilt, data) {
					t.Fatalf("clean EOF after %d of %d bytes", len(rebuilt), len(data))
				}
				break
			}
			if len(p) > limit {
				t.Fatalf("frame of %d bytes over the limit", len(p))
			}
			rebuilt = AppendFrame(rebuilt, p)
			if !bytes.HasPrefix(data, rebuilt) {
				t.Fatal("frames do not re-frame to the input")
			}
		}
		fr = NewFrameReader(bytes.NewReader(data), limit)
		p, w, err := fr.NextFirst()
		if err == nil && w != 0 && !w.Known() {
			t.Fatalf("unknown word %v reported", w)
		}
		if err == nil && w == WordStmk && len(p) != 8 {
			t.Fatalf("stmk with %d mask bytes", len(p))
		}
	})
}

func FuzzConnectRequest(f *testing.F) {
	f.Add(AppendRecord(nil, &ConnectRequest{TimeOut: 30000, Passwd: make([]byte, 16), HasReadOnly: true}))
	f.Add(AppendRecord(nil, &ConnectRequest{TimeOut: 30000, Passwd: make([]byte, 16)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeConnectRequest(data)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if again := AppendRecord(nil, &r); !bytes.Equal(again, data) {
			t.Fatalf("%x re-encodes to %x", data, again)
		}
	})
}

func FuzzConnectResponse(f *testing.F) {
	f.Add(AppendRecord(nil, &ConnectResponse{TimeOut: 30000, SessionID: 7, Passwd: make([]byte, 16), HasReadOnly: true}))
	f.Add(AppendRecord(nil, &ConnectResponse{Passwd: make([]byte, 16)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeConnectResponse(data)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if again := AppendRecord(nil, &r); !bytes.Equal(again, data) {
			t.Fatalf("%x re-encodes to %x", data, again)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	for _, tc := range requestCases() {
		body, err := AppendRequest(nil, tc.op, tc.req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(int32(tc.op), body)
	}
	f.Fuzz(func(t *testing.T, op int32, body []byte) {
		r, err := DecodeRequest(OpCode(op), body)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		again, err := AppendRequest(nil, OpCode(op), r)
		if err != nil {
			t.Fatalf("decoded %v request does not encode: %v", OpCode(op), err)
		}
		if !bytes.Equal(again, body) {
			t.Fatalf("%v: %x re-encodes to %x", OpCode(op), body, again)
		}
		r2, err := DecodeRequest(OpCode(op), again)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("%v: second decode %+v, %v differs from %+v", OpCode(op), r2, err, r)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	for _, tc := range responseCases() {
		body, err := AppendResponse(nil, tc.op, tc.resp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(int32(tc.op), int32(0), body)
	}
	f.Add(int32(OpNotification), int32(0), AppendRecord(nil, &WatcherEvent{Type: EventNodeCreated, State: StateSyncConnected, Path: "/a"}))
	f.Add(int32(OpSASL), int32(CodeAuthFailed), []byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, op int32, code int32, body []byte) {
		if OpCode(op) == OpNotification {
			ev, err := DecodeNotification(body)
			if err != nil {
				checkDecodeErr(t, err)
				return
			}
			if again := AppendRecord(nil, &ev); !bytes.Equal(again, body) {
				t.Fatalf("notification %x re-encodes to %x", body, again)
			}
			return
		}
		r, err := DecodeResponse(OpCode(op), Code(code), body)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if Code(code) != CodeOK {
			if r != nil {
				t.Fatalf("error reply decoded to %+v", r)
			}
			return
		}
		again, err := AppendResponse(nil, OpCode(op), r)
		if err != nil {
			t.Fatalf("decoded %v response does not encode: %v", OpCode(op), err)
		}
		if !bytes.Equal(again, body) {
			t.Fatalf("%v: %x re-encodes to %x", OpCode(op), body, again)
		}
	})
}

func FuzzTracker(f *testing.F) {
	client, server, _ := interleavedSession(f)
	f.Add(client, server, uint8(0))
	f.Add(client, server, uint8(5))
	f.Add([]byte("stmk\x00\x00\x00\x00\x00\x00\x00\x01"), []byte("1\n"), uint8(1))
	f.Fuzz(func(t *testing.T, client, server []byte, chunk uint8) {
		tr, err := NewTracker(TrackerConfig{MaxRequestFrame: 1 << 16, MaxReplyFrame: 1 << 16, MaxPending: 64})
		if err != nil {
			t.Fatal(err)
		}
		step := int(chunk%32) + 1
		check := func(evs []Event, err error) {
			for _, ev := range evs {
				if ev == nil {
					t.Fatal("nil event")
				}
				if _, ok := ev.(*FourLetterWordEvent); ok {
					continue
				}
				if _, err := reencode(ev); err != nil {
					t.Fatalf("event %T does not encode: %v", ev, err)
				}
			}
			if tr.PendingCount() > 64 {
				t.Fatalf("%d pending", tr.PendingCount())
			}
		}
		// Interleave the two directions chunk by chunk, client first.
		for len(client) > 0 || len(server) > 0 {
			n := min(step, len(client))
			check(tr.FeedClient(client[:n]))
			client = client[n:]
			n = min(step, len(server))
			check(tr.FeedServer(server[:n]))
			server = server[n:]
		}
		tr.Close()
	})
}

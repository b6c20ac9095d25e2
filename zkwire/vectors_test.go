package zkwire

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// unhex decodes hex with spaces and newlines for readability.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The byte vectors below are written out by hand from the facts marked
// [verified] in the reference (checked against ZooKeeper 3.8.0); the golden
// session test checks the same facts against a live server.

func TestVectorConnectResponseReadOnlyByte(t *testing.T) {
	const body = `00000000 00007530 0100000abc000001 00000010 000102030405060708090a0b0c0d0e0f`
	without := unhex(t, body)
	with := unhex(t, body+" 00")
	if len(without) != 36 || len(with) != 37 {
		t.Fatalf("vector sizes %d, %d", len(without), len(with))
	}
	for _, tc := range []struct {
		b    []byte
		want ConnectResponse
	}{
		{without, ConnectResponse{TimeOut: 30000, SessionID: 0x0100000abc000001, Passwd: unhex(t, "000102030405060708090a0b0c0d0e0f")}},
		{with, ConnectResponse{TimeOut: 30000, SessionID: 0x0100000abc000001, Passwd: unhex(t, "000102030405060708090a0b0c0d0e0f"), HasReadOnly: true}},
	} {
		got, err := DecodeConnectResponse(tc.b)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%d bytes: got %+v, %v; want %+v", len(tc.b), got, err, tc.want)
		}
		if again := AppendRecord(nil, &got); !bytes.Equal(again, tc.b) {
			t.Errorf("%d bytes re-encode to %d", len(tc.b), len(again))
		}
	}
	// A new session's request: 44 bytes without readOnly (go-zookeeper), 45 with (Java).
	req := ConnectRequest{TimeOut: 30000, Passwd: make([]byte, 16)}
	if n := len(AppendRecord(nil, &req)); n != 44 {
		t.Errorf("connect request without readOnly: %d bytes", n)
	}
	req.HasReadOnly = true
	if n := len(AppendRecord(nil, &req)); n != 45 {
		t.Errorf("connect request with readOnly: %d bytes", n)
	}
}

func TestVectorFailedMulti(t *testing.T) {
	// Outer header err 0; results [-1/0][-1/-101][-1/-2]; end {-1, true, -1}.
	body := unhex(t, `
		ffffffff 00 00000000  00000000
		ffffffff 00 ffffff9b  ffffff9b
		ffffffff 00 fffffffe  fffffffe
		ffffffff 01 ffffffff`)
	r, err := DecodeResponse(OpMulti, CodeOK, body)
	if err != nil {
		t.Fatal(err)
	}
	want := &MultiResponse{Results: []MultiResult{
		{Op: OpError, Err: CodeOK}, {Op: OpError, Err: CodeNoNode}, {Op: OpError, Err: CodeRuntimeInconsistency},
	}}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if c := r.(*MultiResponse).Err(); c != CodeNoNode {
		t.Errorf("MultiResponse.Err() = %v", c)
	}
	if again, _ := AppendResponse(nil, OpMulti, r); !bytes.Equal(again, body) {
		t.Errorf("re-encodes to %x", again)
	}
}

func TestVectorAddWatchReply(t *testing.T) {
	frame := unhex(t, `00000014  00000005 0000000100000007 00000000  00000000`)
	fr := NewFrameReader(bytes.NewReader(frame), 0)
	payload, err := fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	hdr, body, err := SplitReply(payload)
	if err != nil || len(body) != 4 {
		t.Fatalf("header %+v, %d body bytes, %v", hdr, len(body), err)
	}
	r, err := DecodeResponse(OpAddWatch, hdr.Err, body)
	if err != nil || !reflect.DeepEqual(r, &ErrorResponse{Err: CodeOK}) {
		t.Fatalf("got %#v, %v", r, err)
	}
	again, err := AppendReplyFrame(nil, hdr, OpAddWatch, r)
	if err != nil || !bytes.Equal(again, frame) {
		t.Fatalf("re-encodes to %x, %v", again, err)
	}
}

func TestVectorCreateOnExisting(t *testing.T) {
	// A header-only reply: xid 3, zxid of the error txn, err -110.
	frame := unhex(t, `00000010  00000003 000000010000000e ffffff92`)
	tr := mustTracker(t)
	feedAll(t, tr, newSessionConnect(t), newSessionConnected(t))
	req, _ := AppendRequestFrame(nil, RequestHeader{Xid: 3, Op: OpCreate},
		&CreateRequest{Path: "/a", Data: []byte{}, ACL: testACL[:1]})
	if _, err := tr.FeedClient(req); err != nil {
		t.Fatal(err)
	}
	evs, err := tr.FeedServer(frame)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events %v, %v", evs, err)
	}
	rep := evs[0].(*ReplyEvent)
	if rep.Op != OpCreate || rep.Header.Err != CodeNodeExists || rep.Header.Zxid != 0x10000000e || rep.Response != nil {
		t.Fatalf("got %+v", rep)
	}
	again, err := AppendReplyFrame(nil, rep.Header, rep.Op, rep.Response)
	if err != nil || !bytes.Equal(again, frame) {
		t.Fatalf("re-encodes to %x, %v", again, err)
	}
}

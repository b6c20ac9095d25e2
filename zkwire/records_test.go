package zkwire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

var (
	testStat = znode.WireStat{
		Czxid: 0x100000002, Mzxid: 0x100000003, Ctime: 1700000000123, Mtime: 1700000000456,
		Version: 3, Cversion: 7, Aversion: 1, EphemeralOwner: 0x10000abcdef0001,
		DataLength: 5, NumChildren: 5, Pzxid: 0x100000009,
	}
	testACL = []znode.ACL{
		{Perms: znode.PermAll, ID: znode.ID{Scheme: "world", ID: "anyone"}},
		{Perms: znode.PermRead | znode.PermAdmin, ID: znode.ID{Scheme: "digest", ID: "u:x6uZ0ZPxgt6mc1Pum8jx8IPKkKI="}},
	}
)

func strp(s string) *string { return &s }

type requestCase struct {
	name string
	op   OpCode
	req  Request
}

func requestCases() []requestCase {
	return []requestCase{
		{"create", OpCreate, &CreateRequest{Path: "/a", Data: []byte("hello"), ACL: testACL, Flags: ModePersistent}},
		{"create-null-data", OpCreate, &CreateRequest{Path: "/a", ACL: testACL[:1], Flags: ModeEphemeralSequential}},
		{"create-empty-data", OpCreate, &CreateRequest{Path: "/a", Data: []byte{}, ACL: testACL[:1], Flags: ModeEphemeral}},
		{"create-no-acl", OpCreate, &CreateRequest{Path: "/a", Data: []byte{}}},
		{"create2", OpCreate2, &CreateRequest{Path: "/b", Data: []byte{0, 1, 2}, ACL: testACL, Flags: ModePersistentSequential}},
		{"createContainer", OpCreateContainer, &CreateRequest{Path: "/c", Data: []byte{}, ACL: testACL, Flags: ModeContainer}},
		{"createTTL", OpCreateTTL, &CreateTTLRequest{Path: "/t", Data: []byte("x"), ACL: testACL, Flags: ModePersistentWithTTL, TTL: 3600000}},
		{"delete", OpDelete, &DeleteRequest{Path: "/a", Version: -1}},
		{"deleteContainer", OpDeleteContainer, &DeleteContainerRequest{Path: "/c"}},
		{"exists", OpExists, &ExistsRequest{Path: "/a", Watch: true}},
		{"getData", OpGetData, &GetDataRequest{Path: "/a", Watch: false}},
		{"setData", OpSetData, &SetDataRequest{Path: "/a", Data: []byte("v2"), Version: 4}},
		{"setData-null", OpSetData, &SetDataRequest{Path: "/a", Version: -1}},
		{"getACL", OpGetACL, &GetACLRequest{Path: "/a"}},
		{"setACL", OpSetACL, &SetACLRequest{Path: "/a", ACL: testACL, Version: 0}},
		{"getChildren", OpGetChildren, &GetChildrenRequest{Path: "/", Watch: true}},
		{"getChildren2", OpGetChildren2, &GetChildrenRequest{Path: "/a", Watch: false}},
		{"sync", OpSync, &SyncRequest{Path: "/"}},
		{"ping", OpPing, nil},
		{"check", OpCheck, &CheckVersionRequest{Path: "/a", Version: 2}},
		{"multi", OpMulti, &MultiRequest{Ops: []MultiOp{
			{OpCreate, &CreateRequest{Path: "/m", Data: []byte{}, ACL: testACL[:1]}},
			{OpCreate2, &CreateRequest{Path: "/m2", ACL: testACL[:1], Flags: ModeEphemeral}},
			{OpCreateTTL, &CreateTTLRequest{Path: "/m3", ACL: testACL[:1], Flags: ModePersistentSequentialWithTTL, TTL: 1}},
			{OpCreateContainer, &CreateRequest{Path: "/m4", Data: []byte{}, ACL: testACL[:1], Flags: ModeContainer}},
			{OpSetData, &SetDataRequest{Path: "/m", Data: []byte("d"), Version: 0}},
			{OpCheck, &CheckVersionRequest{Path: "/m", Version: 1}},
			{OpDelete, &DeleteRequest{Path: "/m", Version: -1}},
		}}},
		{"multi-empty", OpMulti, &MultiRequest{}},
		{"multiRead", OpMultiRead, &MultiRequest{Ops: []MultiOp{
			{OpGetData, &GetDataRequest{Path: "/a"}},
			{OpGetChildren, &GetChildrenRequest{Path: "/a"}},
		}}},
		{"reconfig-incremental", OpReconfig, &ReconfigRequest{JoiningServers: strp("server.4=127.0.0.1:2888:3888;2181"), LeavingServers: strp("2"), CurConfigID: -1}},
		{"reconfig-members", OpReconfig, &ReconfigRequest{NewMembers: strp(""), CurConfigID: 0x100000000}},
		{"checkWatches", OpCheckWatches, &CheckWatchesRequest{Path: "/a", Type: WatcherData}},
		{"removeWatches", OpRemoveWatches, &RemoveWatchesRequest{Path: "/a", Type: WatcherAny}},
		{"auth", OpAuth, &AuthPacket{Scheme: "digest", Auth: []byte("user:pass")}},
		{"auth-null", OpAuth, &AuthPacket{Scheme: "ip"}},
		{"setWatches", OpSetWatches, &SetWatchesRequest{RelativeZxid: 0x10000000a, DataWatches: []string{"/a", "/b"}, ChildWatches: []string{"/"}}},
		{"setWatches2", OpSetWatches2, &SetWatches2Request{RelativeZxid: 9, ExistWatches: []string{"/x"}, PersistentWatches: []string{"/p"}, PersistentRecursiveWatches: []string{"/", "/q"}}},
		{"sasl", OpSASL, &SASLRequest{Token: []byte{0x60, 0x82, 0x01}}},
		{"sasl-empty", OpSASL, &SASLRequest{Token: []byte{}}},
		{"getEphemerals", OpGetEphemerals, &GetEphemeralsRequest{PrefixPath: "/"}},
		{"getAllChildrenNumber", OpGetAllChildrenNumber, &GetAllChildrenNumberRequest{Path: "/a"}},
		{"addWatch", OpAddWatch, &AddWatchRequest{Path: "/a", Mode: AddWatchPersistentRecursive}},
		{"whoAmI", OpWhoAmI, nil},
		{"closeSession", OpCloseSession, nil},
	}
}

type responseCase struct {
	name string
	op   OpCode
	resp Response
}

func responseCases() []responseCase {
	return []responseCase{
		{"create", OpCreate, &CreateResponse{Path: "/a0000000001"}},
		{"create2", OpCreate2, &Create2Response{Path: "/b", Stat: testStat}},
		{"createContainer", OpCreateContainer, &Create2Response{Path: "/c", Stat: testStat}},
		{"createTTL", OpCreateTTL, &Create2Response{Path: "/t", Stat: testStat}},
		{"delete", OpDelete, nil},
		{"deleteContainer", OpDeleteContainer, nil},
		{"exists", OpExists, &ExistsResponse{Stat: testStat}},
		{"getData", OpGetData, &GetDataResponse{Data: []byte("hello"), Stat: testStat}},
		{"getData-null", OpGetData, &GetDataResponse{Stat: testStat}},
		{"getData-empty", OpGetData, &GetDataResponse{Data: []byte{}, Stat: testStat}},
		{"setData", OpSetData, &SetDataResponse{Stat: testStat}},
		{"getACL", OpGetACL, &GetACLResponse{ACL: testACL, Stat: testStat}},
		{"setACL", OpSetACL, &SetACLResponse{Stat: testStat}},
		{"getChildren", OpGetChildren, &GetChildrenResponse{Children: []string{"a", "b", "zookeeper"}}},
		{"getChildren-empty", OpGetChildren, &GetChildrenResponse{}},
		{"getChildren2", OpGetChildren2, &GetChildren2Response{Children: []string{"x"}, Stat: testStat}},
		{"sync", OpSync, &SyncResponse{Path: "/"}},
		{"ping", OpPing, nil},
		{"check", OpCheck, &SetDataResponse{Stat: testStat}},
		{"multi", OpMulti, &MultiResponse{Results: []MultiResult{
			{Op: OpCreate, Response: &CreateResponse{Path: "/m"}},
			{Op: OpCreate2, Response: &Create2Response{Path: "/m3", Stat: testStat}},
			{Op: OpSetData, Response: &SetDataResponse{Stat: testStat}},
			{Op: OpCheck},
			{Op: OpDelete},
		}}},
		{"multi-failed", OpMulti, &MultiResponse{Results: []MultiResult{
			{Op: OpError, Err: CodeOK}, {Op: OpError, Err: CodeNoNode}, {Op: OpError, Err: CodeRuntimeInconsistency},
		}}},
		{"multi-empty", OpMulti, &MultiResponse{}},
		{"multiRead", OpMultiRead, &MultiResponse{Results: []MultiResult{
			{Op: OpGetData, Response: &GetDataResponse{Data: []byte("x"), Stat: testStat}},
			{Op: OpGetChildren, Response: &GetChildrenResponse{Children: []string{"c"}}},
			{Op: OpError, Err: CodeNoNode},
		}}},
		{"reconfig", OpReconfig, &GetDataResponse{Data: []byte("server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\nversion=100000000"), Stat: testStat}},
		{"checkWatches", OpCheckWatches, nil},
		{"removeWatches", OpRemoveWatches, nil},
		{"auth", OpAuth, nil},
		{"setWatches", OpSetWatches, nil},
		{"setWatches2", OpSetWatches2, nil},
		{"sasl", OpSASL, &SASLResponse{Token: []byte{1, 2, 3}}},
		{"sasl-null", OpSASL, &SASLResponse{}},
		{"getEphemerals", OpGetEphemerals, &GetEphemeralsResponse{Ephemerals: []string{"/e1", "/a/e2"}}},
		{"getAllChildrenNumber", OpGetAllChildrenNumber, &GetAllChildrenNumberResponse{TotalNumber: 1234}},
		{"addWatch", OpAddWatch, &ErrorResponse{Err: CodeOK}},
		{"whoAmI", OpWhoAmI, &WhoAmIResponse{ClientInfo: []ClientInfo{{AuthScheme: "ip", User: "127.0.0.1"}, {AuthScheme: "digest", User: "u"}}}},
		{"whoAmI-empty", OpWhoAmI, &WhoAmIResponse{}},
		{"closeSession", OpCloseSession, nil},
	}
}

// TestRequestRoundTrip checks decode(encode(x)) == x and encode(decode(b)) == b
// for every request record, and that every strict prefix of a body fails (or,
// if it happens to be a valid body, re-encodes to itself).
func TestRequestRoundTrip(t *testing.T) {
	seen := map[OpCode]bool{}
	for _, tc := range requestCases() {
		t.Run(tc.name, func(t *testing.T) {
			seen[tc.op] = true
			body, err := AppendRequest(nil, tc.op, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRequest(tc.op, body)
			if err != nil {
				t.Fatalf("decode %x: %v", body, err)
			}
			if !reflect.DeepEqual(got, tc.req) {
				t.Fatalf("decode(encode(x)):\n got %#v\nwant %#v", got, tc.req)
			}
			again, err := AppendRequest(nil, tc.op, got)
			if err != nil || !bytes.Equal(again, body) {
				t.Fatalf("encode(decode(b)) = %x, %v; want %x", again, err, body)
			}
			checkPrefixes(t, body, func(b []byte) ([]byte, error) {
				r, err := DecodeRequest(tc.op, b)
				if err != nil {
					return nil, err
				}
				return AppendRequest(nil, tc.op, r)
			})
			// A trailing byte is never accepted.
			if _, err := DecodeRequest(tc.op, append(bytes.Clone(body), 0)); err == nil && tc.op != OpDeleteContainer {
				t.Errorf("trailing byte accepted")
			} else if err != nil && !errors.Is(err, ErrTrailingBytes) && !errors.Is(err, ErrMalformed) {
				t.Errorf("trailing byte: %v", err)
			}
		})
	}
	for op := range opNames {
		if KnownOp(op) && !seen[op] {
			t.Errorf("no request case for %v", op)
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	seen := map[OpCode]bool{}
	for _, tc := range responseCases() {
		t.Run(tc.name, func(t *testing.T) {
			seen[tc.op] = true
			body, err := AppendResponse(nil, tc.op, tc.resp)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeResponse(tc.op, CodeOK, body)
			if err != nil {
				t.Fatalf("decode %x: %v", body, err)
			}
			if !reflect.DeepEqual(got, tc.resp) {
				t.Fatalf("decode(encode(x)):\n got %#v\nwant %#v", got, tc.resp)
			}
			again, err := AppendResponse(nil, tc.op, got)
			if err != nil || !bytes.Equal(again, body) {
				t.Fatalf("encode(decode(b)) = %x, %v; want %x", again, err, body)
			}
			checkPrefixes(t, body, func(b []byte) ([]byte, error) {
				r, err := DecodeResponse(tc.op, CodeOK, b)
				if err != nil {
					return nil, err
				}
				return AppendResponse(nil, tc.op, r)
			})
			// With an error code the body is ignored, whatever it holds.
			if r, err := DecodeResponse(tc.op, CodeNoNode, []byte{0xde, 0xad}); r != nil || err != nil {
				t.Errorf("error reply: got %v, %v; want nil, nil", r, err)
			}
		})
	}
	for op := range opNames {
		if KnownOp(op) && !seen[op] {
			t.Errorf("no response case for %v", op)
		}
	}
}

func checkPrefixes(t *testing.T, body []byte, roundTrip func([]byte) ([]byte, error)) {
	t.Helper()
	for n := range len(body) {
		out, err := roundTrip(body[:n])
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("prefix %d: error %v is not a *DecodeError", n, err)
			}
			continue
		}
		if !bytes.Equal(out, body[:n]) {
			t.Fatalf("prefix %d decoded but re-encodes to %x", n, out)
		}
	}
}

func TestConnectRoundTrip(t *testing.T) {
	reqs := []ConnectRequest{
		{TimeOut: 30000, Passwd: make([]byte, 16), HasReadOnly: true},
		{TimeOut: 30000, Passwd: make([]byte, 16), HasReadOnly: true, ReadOnly: true},
		{LastZxidSeen: 0x100000005, TimeOut: 4000, SessionID: 0x1000017a5b20000, Passwd: []byte("0123456789abcdef")},
		{Passwd: []byte{}},
		{},
	}
	for _, r := range reqs {
		b := AppendRecord(nil, &r)
		got, err := DecodeConnectRequest(b)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("ConnectRequest %+v: got %+v, %v", r, got, err)
		}
		if again := AppendRecord(nil, &got); !bytes.Equal(again, b) {
			t.Errorf("ConnectRequest %x re-encodes to %x", b, again)
		}
		if _, err := DecodeConnectRequest(append(bytes.Clone(b), 0, 0)[:len(b)+2-boolInt(r.HasReadOnly)]); err == nil {
			t.Errorf("ConnectRequest with extra trailing byte accepted")
		}
	}
	resps := []ConnectResponse{
		{TimeOut: 30000, SessionID: 0x100000abc, Passwd: make([]byte, 16), HasReadOnly: true},
		{TimeOut: 30000, SessionID: 0x100000abc, Passwd: make([]byte, 16)},
		{Passwd: make([]byte, 16), HasReadOnly: true, ReadOnly: true},
	}
	for _, r := range resps {
		b := AppendRecord(nil, &r)
		got, err := DecodeConnectResponse(b)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("ConnectResponse %+v: got %+v, %v", r, got, err)
		}
		if again := AppendRecord(nil, &got); !bytes.Equal(again, b) {
			t.Errorf("ConnectResponse %x re-encodes to %x", b, again)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestHeadersRoundTrip(t *testing.T) {
	for _, r := range []Record{
		&RequestHeader{Xid: 7, Op: OpCreate},
		&RequestHeader{Xid: XidPing, Op: OpPing},
		&ReplyHeader{Xid: XidNotification, Zxid: -1, Err: CodeOK},
		&ReplyHeader{Xid: 9, Zxid: 0x1000000ff, Err: CodeNodeExists},
		&MultiHeader{Type: OpCreate, Done: false, Err: -1},
		&MultiHeader{Type: OpError, Done: true, Err: -1},
		&WatcherEvent{Type: EventNodeDataChanged, State: StateSyncConnected, Path: "/a"},
		&ErrorResponse{Err: CodeNoNode},
	} {
		b := AppendRecord(nil, r)
		got := reflect.New(reflect.TypeOf(r).Elem()).Interface().(Record)
		if err := DecodeRecord(b, got); err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("%T: got %+v, %v; want %+v", r, got, err, r)
		}
	}
}

// TestEncodeChecksRecordType checks that the encoders refuse a record that is
// not the one the opcode carries, instead of writing bytes the peer would
// misread.
func TestEncodeChecksRecordType(t *testing.T) {
	cases := []struct {
		name string
		err  error
		f    func() error
	}{
		{"wrong request", ErrRecordType, func() error { _, err := AppendRequest(nil, OpCreate, &DeleteRequest{}); return err }},
		{"missing body", ErrRecordType, func() error { _, err := AppendRequest(nil, OpGetData, nil); return err }},
		{"typed nil body", ErrRecordType, func() error { _, err := AppendRequest(nil, OpGetData, (*GetDataRequest)(nil)); return err }},
		{"body for ping", ErrRecordType, func() error { _, err := AppendRequest(nil, OpPing, &SyncRequest{}); return err }},
		{"unknown op", ErrUnknownOpCode, func() error { _, err := AppendRequest(nil, OpCode(55), nil); return err }},
		{"multi sub-op", ErrRecordType, func() error {
			_, err := AppendRequest(nil, OpMulti, &MultiRequest{Ops: []MultiOp{{OpSync, &SyncRequest{}}}})
			return err
		}},
		{"multi sub-record", ErrRecordType, func() error {
			_, err := AppendRequest(nil, OpMulti, &MultiRequest{Ops: []MultiOp{{OpDelete, &CreateRequest{}}}})
			return err
		}},
		{"wrong response", ErrRecordType, func() error { _, err := AppendResponse(nil, OpCreate, &Create2Response{}); return err }},
		{"multi result err", ErrRecordType, func() error {
			_, err := AppendResponse(nil, OpMulti, &MultiResponse{Results: []MultiResult{{Op: OpDelete, Err: CodeNoNode}}})
			return err
		}},
		{"error reply with body", ErrRecordType, func() error {
			_, err := AppendReplyFrame(nil, ReplyHeader{Xid: 1, Err: CodeNoNode}, OpGetData, &GetDataResponse{})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f(); !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
}

// TestDecodeRejects covers inputs the strict decoder refuses so that whatever
// it accepts re-encodes byte for byte.
func TestDecodeRejects(t *testing.T) {
	be := func(vs ...any) []byte {
		e := NewEncoder(nil)
		for _, v := range vs {
			switch v := v.(type) {
			case int32:
				e.Int32(v)
			case int64:
				e.Int64(v)
			case byte:
				e.Raw([]byte{v})
			case string:
				e.Ustring(v)
			}
		}
		return e.Bytes()
	}
	cases := []struct {
		name string
		op   OpCode
		body []byte
		err  error
	}{
		{"bool 2", OpGetData, be("/a", byte(2)), ErrMalformed},
		{"null path", OpGetData, be(int32(-1), byte(0)), ErrMalformed},
		{"length -2", OpGetData, be(int32(-2), byte(0)), ErrBadLength},
		{"length past end", OpGetData, be(int32(100), byte(0)), ErrBadLength},
		{"huge length", OpGetData, be(int32(0x7fffffff)), ErrBadLength},
		{"huge vector", OpSetACL, be("/a", int32(0x7ffffff0)), ErrBadLength},
		{"null vector", OpSetACL, be("/a", int32(-1), int32(0)), ErrMalformed},
		{"truncated int", OpDelete, be("/a", byte(0)), ErrTruncated},
		{"trailing", OpSync, be("/a", byte(0)), ErrTrailingBytes},
		{"multi op err 0", OpMulti, be(int32(2), byte(0), int32(0), "/a", int32(-1), int32(-1), byte(1), int32(-1)), ErrMalformed},
		{"multi bad end", OpMulti, be(int32(-1), byte(1), int32(0)), ErrMalformed},
		{"multi sync op", OpMulti, be(int32(9), byte(0), int32(-1), "/a", int32(-1), byte(1), int32(-1)), ErrMalformed},
		{"multi unterminated", OpMulti, be(int32(2), byte(0), int32(-1), "/a", int32(-1)), ErrTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeRequest(tc.op, tc.body)
			if !errors.Is(err, tc.err) || r != nil {
				t.Fatalf("got %v, %v; want %v", r, err, tc.err)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Record == "" {
				t.Fatalf("error %v does not name the record", err)
			}
		})
	}
	respCases := []struct {
		name string
		op   OpCode
		body []byte
		err  error
	}{
		{"multi result header err", OpMulti, be(int32(2), byte(0), int32(-101), int32(-1), byte(1), int32(-1)), ErrMalformed},
		{"multi error mismatch", OpMulti, be(int32(-1), byte(0), int32(-101), int32(-2), int32(-1), byte(1), int32(-1)), ErrMalformed},
		{"multi bad result type", OpMulti, be(int32(9), byte(0), int32(0), int32(-1), byte(1), int32(-1)), ErrMalformed},
		{"addWatch empty", OpAddWatch, nil, ErrTruncated},
		{"delete with body", OpDelete, be(int32(0)), ErrTrailingBytes},
	}
	for _, tc := range respCases {
		t.Run("response "+tc.name, func(t *testing.T) {
			r, err := DecodeResponse(tc.op, CodeOK, tc.body)
			if !errors.Is(err, tc.err) || r != nil {
				t.Fatalf("got %v, %v; want %v", r, err, tc.err)
			}
		})
	}
	if _, err := DecodeRequest(OpCode(55), nil); !errors.Is(err, ErrUnknownOpCode) {
		t.Errorf("unknown op: %v", err)
	}
	if _, err := DecodeResponse(OpNotification, CodeOK, nil); !errors.Is(err, ErrUnknownOpCode) {
		t.Errorf("notification as response op: %v", err)
	}
}

func TestDecoderMaxLen(t *testing.T) {
	e := NewEncoder(nil)
	e.Ustring("abcdef")
	d := NewDecoder(e.Bytes())
	d.MaxLen = 5
	if d.Ustring(); !errors.Is(d.Err(), ErrBadLength) {
		t.Fatalf("MaxLen 5, string of 6: %v", d.Err())
	}
	d.Reset(e.Bytes())
	d.MaxLen = 6
	if s := d.Ustring(); s != "abcdef" || d.Finish() != nil {
		t.Fatalf("MaxLen 6: %q, %v", s, d.Err())
	}
}

func TestStringers(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{OpCreate2.String(), "create2"},
		{OpCloseSession.String(), "closeSession"},
		{OpCode(55).String(), "OpCode(55)"},
		{CodeNoNode.String(), "NoNode"},
		{Code(-999).String(), "Code(-999)"},
		{CodeNodeExists.Err().Error(), "zkwire: NodeExists [-110]"},
		{(&Error{Code: CodeNoNode, Op: OpGetData, Path: "/a"}).Error(), "zkwire: NoNode (getData /a) [-101]"},
		{ModeEphemeralSequential.String(), "EPHEMERAL_SEQUENTIAL"},
		{EventNodeChildrenChanged.String(), "NodeChildrenChanged"},
		{StateExpired.String(), "Expired"},
		{WatcherPersistentRecursive.String(), "PersistentRecursive"},
		{AddWatchPersistentRecursive.String(), "PERSISTENT_RECURSIVE"},
		{WordRuok.String(), "ruok"},
		{WordTelnetClose.String(), "telnet close"},
		{FourLetterWord(0x41424344).String(), "FourLetterWord(0x41424344)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if CodeOK.Err() != nil {
		t.Error("CodeOK.Err() != nil")
	}
	err := error(&Error{Code: CodeNoNode, Op: OpDelete, Path: "/x"})
	if !errors.Is(err, CodeNoNode.Err()) || errors.Is(err, CodeNodeExists.Err()) || CodeOf(err) != CodeNoNode {
		t.Error("Error.Is / CodeOf")
	}
	if !CodeNoNode.IsAPI() || CodeNoNode.IsSystem() || !CodeMarshallingError.IsSystem() {
		t.Error("IsAPI / IsSystem")
	}
}

package zkwire

import (
	"fmt"
	"reflect"
)

// opKind says whether an opcode has a request and a response record.
type opKind struct {
	known    bool
	request  func() Request  // nil: header only
	response func() Response // nil: header only
}

func kindOf(op OpCode) opKind {
	k := opKind{known: true}
	switch op {
	case OpCreate:
		k.request, k.response = func() Request { return &CreateRequest{} }, func() Response { return &CreateResponse{} }
	case OpCreate2, OpCreateContainer:
		k.request, k.response = func() Request { return &CreateRequest{} }, func() Response { return &Create2Response{} }
	case OpCreateTTL:
		k.request, k.response = func() Request { return &CreateTTLRequest{} }, func() Response { return &Create2Response{} }
	case OpDelete:
		k.request = func() Request { return &DeleteRequest{} }
	case OpDeleteContainer:
		k.request = func() Request { return &DeleteContainerRequest{} }
	case OpExists:
		k.request, k.response = func() Request { return &ExistsRequest{} }, func() Response { return &ExistsResponse{} }
	case OpGetData:
		k.request, k.response = func() Request { return &GetDataRequest{} }, func() Response { return &GetDataResponse{} }
	case OpSetData:
		k.request, k.response = func() Request { return &SetDataRequest{} }, func() Response { return &SetDataResponse{} }
	case OpGetACL:
		k.request, k.response = func() Request { return &GetACLRequest{} }, func() Response { return &GetACLResponse{} }
	case OpSetACL:
		k.request, k.response = func() Request { return &SetACLRequest{} }, func() Response { return &SetACLResponse{} }
	case OpGetChildren:
		k.request, k.response = func() Request { return &GetChildrenRequest{} }, func() Response { return &GetChildrenResponse{} }
	case OpGetChildren2:
		k.request, k.response = func() Request { return &GetChildrenRequest{} }, func() Response { return &GetChildren2Response{} }
	case OpSync:
		k.request, k.response = func() Request { return &SyncRequest{} }, func() Response { return &SyncResponse{} }
	case OpCheck:
		k.request, k.response = func() Request { return &CheckVersionRequest{} }, func() Response { return &SetDataResponse{} }
	case OpMulti, OpMultiRead:
		k.request, k.response = func() Request { return &MultiRequest{} }, func() Response { return &MultiResponse{} }
	case OpReconfig:
		k.request, k.response = func() Request { return &ReconfigRequest{} }, func() Response { return &GetDataResponse{} }
	case OpCheckWatches:
		k.request = func() Request { return &CheckWatchesRequest{} }
	case OpRemoveWatches:
		k.request = func() Request { return &RemoveWatchesRequest{} }
	case OpAuth:
		k.request = func() Request { return &AuthPacket{} }
	case OpSetWatches:
		k.request = func() Request { return &SetWatchesRequest{} }
	case OpSetWatches2:
		k.request = func() Request { return &SetWatches2Request{} }
	case OpSASL:
		k.request, k.response = func() Request { return &SASLRequest{} }, func() Response { return &SASLResponse{} }
	case OpGetEphemerals:
		k.request, k.response = func() Request { return &GetEphemeralsRequest{} }, func() Response { return &GetEphemeralsResponse{} }
	case OpGetAllChildrenNumber:
		k.request, k.response = func() Request { return &GetAllChildrenNumberRequest{} }, func() Response { return &GetAllChildrenNumberResponse{} }
	case OpAddWatch:
		k.request, k.response = func() Request { return &AddWatchRequest{} }, func() Response { return &ErrorResponse{} }
	case OpWhoAmI:
		k.response = func() Response { return &WhoAmIResponse{} }
	case OpPing, OpCloseSession:
	default:
		k.known = false
	}
	return k
}

// KnownOp reports whether op can head a client request: zkwire knows its
// request and response records.
func KnownOp(op OpCode) bool { return kindOf(op).known }

// newRequest returns an empty request record for op, nil if it has none.
func newRequest(op OpCode) Request {
	if k := kindOf(op); k.request != nil {
		return k.request()
	}
	return nil
}

// NewRequest returns an empty record of the type op's requests carry, or nil
// for ping, closeSession and whoAmI, which have no body. It returns
// ErrUnknownOpCode for anything else.
func NewRequest(op OpCode) (Request, error) {
	k := kindOf(op)
	if !k.known {
		return nil, fmt.Errorf("%w: %v", ErrUnknownOpCode, op)
	}
	if k.request == nil {
		return nil, nil
	}
	return k.request(), nil
}

// NewResponse returns an empty record of the type op's successful replies
// carry, or nil for the header-only replies (delete, deleteContainer, ping,
// closeSession, auth, setWatches, setWatches2, checkWatches, removeWatches).
func NewResponse(op OpCode) (Response, error) {
	k := kindOf(op)
	if !k.known {
		return nil, fmt.Errorf("%w: %v", ErrUnknownOpCode, op)
	}
	if k.response == nil {
		return nil, nil
	}
	return k.response(), nil
}

// DecodeRequest decodes the body of a request with opcode op (the payload
// after the RequestHeader). It returns nil and no error for the opcodes without
// a body when the body is empty. The whole body must be consumed.
func DecodeRequest(op OpCode, body []byte) (Request, error) {
	r, err := NewRequest(op)
	if err != nil {
		return nil, err
	}
	if err := decodeBody(op, "request", body, r); err != nil {
		return nil, err
	}
	return r, nil
}

// DecodeResponse decodes the body of a reply to a request with opcode op (the
// payload after the ReplyHeader). When err is not CodeOK the body is ignored
// and the result is nil, as the Java client and zetcd do: the error replies of
// ZooKeeper are header-only except a failed sasl, which carries a null token.
func DecodeResponse(op OpCode, err Code, body []byte) (Response, error) {
	r, e := NewResponse(op)
	if e != nil {
		return nil, e
	}
	if err != CodeOK {
		return nil, nil
	}
	if err := decodeBody(op, "response", body, r); err != nil {
		return nil, err
	}
	return r, nil
}

func decodeBody(op OpCode, what string, body []byte, r Record) error {
	d := Decoder{b: body}
	if r != nil {
		r.Decode(&d)
	}
	if err := d.Finish(); err != nil {
		return withRecord(err, op.String()+" "+what)
	}
	return nil
}

// AppendRequest appends the body of a request with opcode op. r must be the
// record NewRequest(op) returns (nil for the opcodes without a body); a multi's
// operations are checked the same way.
func AppendRequest(dst []byte, op OpCode, r Request) ([]byte, error) {
	if err := checkRequest(op, r); err != nil {
		return dst, err
	}
	if r == nil {
		return dst, nil
	}
	return AppendRecord(dst, r), nil
}

// AppendResponse appends the body of a successful reply to a request with
// opcode op. r must be the record NewResponse(op) returns (nil for the
// header-only replies); a multi's results are checked the same way.
func AppendResponse(dst []byte, op OpCode, r Response) ([]byte, error) {
	if err := checkResponse(op, r); err != nil {
		return dst, err
	}
	if r == nil {
		return dst, nil
	}
	return AppendRecord(dst, r), nil
}

// recordMatches reports whether got is a non-nil record of want's type, or
// both are nil.
func recordMatches(want, got Record) bool {
	if want == nil || got == nil {
		return want == nil && got == nil
	}
	return reflect.TypeOf(want) == reflect.TypeOf(got) && !reflect.ValueOf(got).IsNil()
}

func checkRequest(op OpCode, r Request) error {
	want, err := NewRequest(op)
	if err != nil {
		return err
	}
	if !recordMatches(want, r) {
		return fmt.Errorf("%w: %v request carries %T, got %T", ErrRecordType, op, want, r)
	}
	if m, ok := r.(*MultiRequest); ok {
		for i, sub := range m.Ops {
			if !MultiOpAllowed(sub.Op) {
				return fmt.Errorf("%w: multi op %d: %v is not allowed in a multi", ErrRecordType, i, sub.Op)
			}
			if want := newRequest(sub.Op); !recordMatches(want, sub.Request) {
				return fmt.Errorf("%w: multi op %d: %v carries %T, got %T", ErrRecordType, i, sub.Op, want, sub.Request)
			}
		}
	}
	return nil
}

func checkResponse(op OpCode, r Response) error {
	want, err := NewResponse(op)
	if err != nil {
		return err
	}
	if !recordMatches(want, r) {
		return fmt.Errorf("%w: %v response carries %T, got %T", ErrRecordType, op, want, r)
	}
	if m, ok := r.(*MultiResponse); ok {
		for i, res := range m.Results {
			body, ok := newMultiResult(res.Op)
			if !ok {
				return fmt.Errorf("%w: multi result %d: %v is not a result type", ErrRecordType, i, res.Op)
			}
			if res.Op != OpError && res.Err != CodeOK {
				return fmt.Errorf("%w: multi result %d: %v result with err %v", ErrRecordType, i, res.Op, res.Err)
			}
			if !recordMatches(body, res.Response) {
				return fmt.Errorf("%w: multi result %d: %v carries %T, got %T", ErrRecordType, i, res.Op, body, res.Response)
			}
		}
	}
	return nil
}

// SplitRequest splits a client frame's payload (after the connect request)
// into its RequestHeader and body. The body aliases payload.
func SplitRequest(payload []byte) (RequestHeader, []byte, error) {
	var h RequestHeader
	d := Decoder{b: payload}
	h.Decode(&d)
	if err := d.Err(); err != nil {
		return h, nil, withRecord(err, "RequestHeader")
	}
	return h, payload[RequestHeaderSize:], nil
}

// SplitReply splits a server frame's payload (after the connect response)
// into its ReplyHeader and body. The body aliases payload.
func SplitReply(payload []byte) (ReplyHeader, []byte, error) {
	var h ReplyHeader
	d := Decoder{b: payload}
	h.Decode(&d)
	if err := d.Err(); err != nil {
		return h, nil, withRecord(err, "ReplyHeader")
	}
	return h, payload[ReplyHeaderSize:], nil
}

// DecodeConnectRequest decodes a connection's first client frame.
func DecodeConnectRequest(payload []byte) (ConnectRequest, error) {
	var r ConnectRequest
	if err := DecodeRecord(payload, &r); err != nil {
		return ConnectRequest{}, withRecord(err, "ConnectRequest")
	}
	return r, nil
}

// DecodeConnectResponse decodes a connection's first server frame.
func DecodeConnectResponse(payload []byte) (ConnectResponse, error) {
	var r ConnectResponse
	if err := DecodeRecord(payload, &r); err != nil {
		return ConnectResponse{}, withRecord(err, "ConnectResponse")
	}
	return r, nil
}

// DecodeNotification decodes the body of a notification (a reply with xid −1).
func DecodeNotification(body []byte) (WatcherEvent, error) {
	var ev WatcherEvent
	if err := DecodeRecord(body, &ev); err != nil {
		return WatcherEvent{}, withRecord(err, "WatcherEvent")
	}
	return ev, nil
}

// AppendRequestFrame appends a whole client frame: length prefix,
// RequestHeader and the body of r (see AppendRequest; hdr.Op selects the
// record).
func AppendRequestFrame(dst []byte, hdr RequestHeader, r Request) ([]byte, error) {
	if err := checkRequest(hdr.Op, r); err != nil {
		return dst, err
	}
	dst, start := BeginFrame(dst)
	e := Encoder{b: dst}
	hdr.Encode(&e)
	if r != nil {
		r.Encode(&e)
	}
	return EndFrame(e.b, start), nil
}

// AppendReplyFrame appends a whole server frame: length prefix, ReplyHeader
// and, when hdr.Err is CodeOK, the body of r (see AppendResponse; op is the
// request's opcode). Error replies are header-only, as ZooKeeper sends them,
// and r must then be nil; so is a reply to an opcode zkwire does not know.
func AppendReplyFrame(dst []byte, hdr ReplyHeader, op OpCode, r Response) ([]byte, error) {
	switch {
	case hdr.Err != CodeOK && r != nil:
		return dst, fmt.Errorf("%w: %v error reply with a %T body", ErrRecordType, op, r)
	case hdr.Err != CodeOK, r == nil && !KnownOp(op):
		// Header-only: an error, or the answer to an opcode zkwire does not
		// know (a server answers those too).
	default:
		if err := checkResponse(op, r); err != nil {
			return dst, err
		}
	}
	dst, start := BeginFrame(dst)
	e := Encoder{b: dst}
	hdr.Encode(&e)
	if r != nil {
		r.Encode(&e)
	}
	return EndFrame(e.b, start), nil
}

// AppendNotificationFrame appends a whole watch-event frame: xid −1, the
// given zxid (−1 before ZooKeeper 3.9, the triggering txn's zxid since), err 0.
func AppendNotificationFrame(dst []byte, zxid int64, ev WatcherEvent) []byte {
	dst, start := BeginFrame(dst)
	e := Encoder{b: dst}
	hdr := ReplyHeader{Xid: XidNotification, Zxid: zxid}
	hdr.Encode(&e)
	ev.Encode(&e)
	return EndFrame(e.b, start)
}

// AppendRecordFrame appends r as a whole frame, for the connect request and
// response, which have no header.
func AppendRecordFrame(dst []byte, r Record) []byte {
	dst, start := BeginFrame(dst)
	return EndFrame(AppendRecord(dst, r), start)
}

package zkwire

// MultiOp is one operation of a multi or multiRead request.
type MultiOp struct {
	Op      OpCode  // a MultiHeader type: see MultiOpAllowed
	Request Request // the record Op carries (e.g. *CreateRequest for OpCreate)
}

// MultiRequest is the body of multi (14) and multiRead (22). Each operation is
// preceded by MultiHeader{Type: op, Done: false, Err: −1}, and the list ends
// with MultiHeader{Type: −1, Done: true, Err: −1}.
type MultiRequest struct {
	Ops []MultiOp
}

// multiEnd is the header that ends a multi request or response.
var multiEnd = MultiHeader{Type: OpError, Done: true, Err: -1}

// MultiOpAllowed reports whether op may appear inside a multi request:
// create, create2, createContainer, createTTL, delete, setData and check in a
// multi; getChildren and getData in a multiRead. The decoder accepts both kinds
// under either opcode (as ZooKeeper's MultiOperationRecord does) and leaves
// rejecting a mixture to the server.
func MultiOpAllowed(op OpCode) bool {
	switch op {
	case OpCreate, OpCreate2, OpCreateContainer, OpCreateTTL, OpDelete, OpSetData, OpCheck,
		OpGetChildren, OpGetData:
		return true
	}
	return false
}

func (r *MultiRequest) Encode(e *Encoder) {
	for _, op := range r.Ops {
		h := MultiHeader{Type: op.Op, Err: -1}
		h.Encode(e)
		if op.Request != nil {
			op.Request.Encode(e)
		}
	}
	multiEnd.Encode(e)
}

func (r *MultiRequest) Decode(d *Decoder) {
	r.Ops = nil
	for d.Err() == nil {
		var h MultiHeader
		h.Decode(d)
		if d.Err() != nil {
			break
		}
		if h.Done {
			if h != multiEnd {
				d.off -= 9
				d.fail(ErrMalformed, "multi end header {%d %v %d}, want {-1 true -1}", h.Type, h.Done, h.Err)
			}
			break
		}
		if h.Err != -1 {
			d.off -= 9
			d.fail(ErrMalformed, "multi op header err %d, want -1", h.Err)
			break
		}
		if !MultiOpAllowed(h.Type) {
			d.off -= 9
			d.fail(ErrMalformed, "%v is not allowed in a multi", h.Type)
			break
		}
		req := newRequest(h.Type)
		req.Decode(d)
		if d.Err() != nil {
			break
		}
		r.Ops = append(r.Ops, MultiOp{Op: h.Type, Request: req})
	}
	if d.Err() != nil {
		r.Ops = nil
	}
}

// MultiResult is one result of a multi or multiRead response.
//
// Op is the result type: the sub-operation's opcode when it succeeded, or
// OpError when it did not, with Err its code. In a failed multi every result
// is OpError: those before the failing op carry CodeOK, the failing one its
// code, and those after it CodeRuntimeInconsistency. A successful create2
// inside a multi is answered as OpCreate (no stat) before ZooKeeper 3.9;
// createTTL and createContainer results are OpCreate2.
type MultiResult struct {
	Op       OpCode
	Err      Code     // only for OpError
	Response Response // nil for OpError, OpDelete and OpCheck
}

// MultiResponse is the body of a multi or multiRead reply. The reply header's
// err is 0 even when the multi failed; the outcome is in the results. Each
// result is preceded by MultiHeader{Type: result type, Done: false, Err: its
// code (0 unless OpError)}, and the list ends with {−1, true, −1}.
type MultiResponse struct {
	Results []MultiResult
}

// Err returns the first non-OK code among the results, CodeOK if none.
func (r *MultiResponse) Err() Code {
	for _, res := range r.Results {
		if res.Op == OpError && res.Err != CodeOK {
			return res.Err
		}
	}
	return CodeOK
}

func (r *MultiResponse) Encode(e *Encoder) {
	for _, res := range r.Results {
		h := MultiHeader{Type: res.Op}
		if res.Op == OpError {
			h.Err = res.Err
		}
		h.Encode(e)
		if res.Op == OpError {
			e.Int32(int32(res.Err))
		} else if res.Response != nil {
			res.Response.Encode(e)
		}
	}
	multiEnd.Encode(e)
}

// newMultiResult returns the body record of a multi result type, nil for the
// types without a body, and ok=false for types that are not results.
func newMultiResult(op OpCode) (r Response, ok bool) {
	switch op {
	case OpCreate:
		return &CreateResponse{}, true
	case OpCreate2:
		return &Create2Response{}, true
	case OpSetData:
		return &SetDataResponse{}, true
	case OpGetChildren:
		return &GetChildrenResponse{}, true
	case OpGetData:
		return &GetDataResponse{}, true
	case OpDelete, OpCheck, OpError:
		return nil, true
	}
	return nil, false
}

func (r *MultiResponse) Decode(d *Decoder) {
	r.Results = nil
	for d.Err() == nil {
		var h MultiHeader
		h.Decode(d)
		if d.Err() != nil {
			break
		}
		if h.Done {
			if h != multiEnd {
				d.off -= 9
				d.fail(ErrMalformed, "multi end header {%d %v %d}, want {-1 true -1}", h.Type, h.Done, h.Err)
			}
			break
		}
		body, ok := newMultiResult(h.Type)
		if !ok {
			d.off -= 9
			d.fail(ErrMalformed, "%v is not a multi result type", h.Type)
			break
		}
		res := MultiResult{Op: h.Type}
		if h.Type == OpError {
			res.Err = h.Err
			if c := Code(d.Int32()); d.Err() == nil && c != h.Err {
				d.off -= 4
				d.fail(ErrMalformed, "multi error result %d in a header with err %d", c, h.Err)
			}
		} else {
			if h.Err != CodeOK {
				d.off -= 9
				d.fail(ErrMalformed, "multi %v result with header err %d", h.Type, h.Err)
				break
			}
			if body != nil {
				body.Decode(d)
				res.Response = body
			}
		}
		if d.Err() != nil {
			break
		}
		r.Results = append(r.Results, res)
	}
	if d.Err() != nil {
		r.Results = nil
	}
}

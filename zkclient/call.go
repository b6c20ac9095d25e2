package zkclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/zk2raft/zk2raft/zkwire"
)

// Request is one request of a batch: an opcode and the record it carries
// (nil for the opcodes without a body: whoAmI, closeSession).
type Request struct {
	Op   zkwire.OpCode
	Body zkwire.Request
}

// Call is a request sent (or about to be) and the reply it waits for. One
// goroutine waits for it.
type Call struct {
	c     *Client
	op    zkwire.OpCode
	req   zkwire.Request
	path  string    // named in errors
	watch watchKind // the one-shot watch a successful reply registers

	// One attempt: set by dispatch, finished by the connection.
	xid  int32
	cn   *conn
	done chan struct{}
	code zkwire.Code
	resp zkwire.Response
	zxid int64
	err  error
}

func (cl *Call) finish(code zkwire.Code, zxid int64, resp zkwire.Response, err error) {
	cl.code, cl.zxid, cl.resp, cl.err = code, zxid, resp, err
	close(cl.done)
}

// Zxid is the zxid of the reply's header, once Wait has returned with a
// reply (a ZooKeeper error reply included): the server had applied every
// transaction up to it when it answered.
func (cl *Call) Zxid() int64 { return cl.zxid }

// deadConnError fails the calls of a connection that died after they were
// written.
type deadConnError struct{ cause error }

func (e *deadConnError) Error() string { return "zkclient: connection died: " + e.cause.Error() }

// Wait returns the reply's record (nil for the replies without a body), or
// the call's error: a *zkwire.Error for a ZooKeeper error reply (naming the
// operation and path), one matching ErrConnectionLoss, ctx's error, or why
// the client stopped (ErrClosed, ErrAuthFailed). Under the Resend policy it
// sends a call again on the next connection as the policy says.
func (cl *Call) Wait(ctx context.Context) (zkwire.Response, error) {
	for {
		select {
		case <-cl.done:
		case <-ctx.Done():
			if cn := cl.cn; cn != nil {
				cn.take(cl.xid) // a late reply finds no one
			}
			return nil, ctx.Err()
		}
		var dead *deadConnError
		switch {
		case cl.err == nil && cl.code == zkwire.CodeOK:
			return cl.resp, nil
		case cl.err == nil:
			return nil, &zkwire.Error{Code: cl.code, Op: cl.op, Path: cl.path}
		case errors.Is(cl.err, errNotSent):
			if cl.c.cfg.Retry == FailPending {
				return nil, fmt.Errorf("%w: %v %s: not connected (reconnecting)", ErrConnectionLoss, cl.op, cl.path)
			}
		case errors.As(cl.err, &dead):
			if cl.c.cfg.Retry == FailPending || !resendable(cl.op) {
				return nil, cl.lossError(dead.cause)
			}
			cl.c.logger.Debug("resending after a connection loss", "op", cl.op, "path", cl.path)
		default:
			return nil, cl.err
		}
		if err := cl.c.waitConn(ctx); err != nil {
			return nil, err
		}
		cl.c.dispatch([]*Call{cl})
	}
}

// lossError is the error of a call whose connection died after it was sent.
func (cl *Call) lossError(cause error) error {
	if !resendable(cl.op) {
		return fmt.Errorf("%w: %v %s: the connection died before the reply, so the outcome is unknown (ZooKeeper may have applied it): %w",
			ErrConnectionLoss, cl.op, cl.path, cause)
	}
	return fmt.Errorf("%w: %v %s: %w", ErrConnectionLoss, cl.op, cl.path, cause)
}

// resendable reports whether a request may be sent again after its
// connection died: reads, and the calls whose repetition changes nothing.
func resendable(op zkwire.OpCode) bool {
	switch op {
	case zkwire.OpExists, zkwire.OpGetData, zkwire.OpGetACL, zkwire.OpGetChildren, zkwire.OpGetChildren2,
		zkwire.OpSync, zkwire.OpMultiRead, zkwire.OpGetEphemerals, zkwire.OpGetAllChildrenNumber,
		zkwire.OpWhoAmI, zkwire.OpCheckWatches, zkwire.OpAuth, zkwire.OpAddWatch,
		zkwire.OpSetWatches, zkwire.OpSetWatches2, zkwire.OpPing:
		return true
	}
	return false
}

// Send sends reqs, in order, in one write on the current connection, and
// returns their calls without waiting for the replies. ZooKeeper answers a
// session's requests in order. Paths are sent as given: the chroot is not
// applied. With no connection (the client is reconnecting) the calls fail
// at once under FailPending, and under Resend go out when one comes, when
// Wait is called.
func (c *Client) Send(reqs ...Request) []*Call {
	calls := make([]*Call, len(reqs))
	for i, r := range reqs {
		calls[i] = &Call{c: c, op: r.Op, req: r.Body, path: pathOf(r.Body)}
	}
	c.dispatch(calls)
	return calls
}

// Do sends one request (paths as given: the chroot is not applied) and
// waits for its reply: Send and Wait.
func (c *Client) Do(ctx context.Context, op zkwire.OpCode, body zkwire.Request) (zkwire.Response, error) {
	return c.Send(Request{op, body})[0].Wait(ctx)
}

// call sends one request of a typed method and waits for its reply.
func (c *Client) call(ctx context.Context, cl *Call) (zkwire.Response, error) {
	cl.c = c
	c.dispatch([]*Call{cl})
	return cl.Wait(ctx)
}

// dispatch starts an attempt of each call: new xids, one frame buffer, one
// write on the current connection.
func (c *Client) dispatch(calls []*Call) {
	var frame []byte
	for _, cl := range calls {
		cl.xid, cl.cn, cl.done = c.nextXid(), nil, make(chan struct{})
		cl.code, cl.zxid, cl.resp, cl.err = 0, 0, nil, nil
	}
	for _, cl := range calls {
		var err error
		frame, err = zkwire.AppendRequestFrame(frame, zkwire.RequestHeader{Xid: cl.xid, Op: cl.op}, cl.req)
		if err != nil {
			err = fmt.Errorf("zkclient: encode %v %s: %w", cl.op, cl.path, err)
			for _, cl := range calls {
				cl.finish(0, 0, nil, err)
			}
			return
		}
	}
	c.mu.Lock()
	cn, fatal := c.cur, c.fatal
	c.mu.Unlock()
	switch {
	case fatal != nil:
		for _, cl := range calls {
			cl.finish(0, 0, nil, fatal)
		}
	case cn == nil:
		for _, cl := range calls {
			cl.finish(0, 0, nil, errNotSent)
		}
	default:
		cn.send(calls, frame)
	}
}

// callOn sends one request on cn, which need not be current (setup uses it
// before the connection is), and waits for the reply, whatever the policy.
func (c *Client) callOn(ctx context.Context, cn *conn, op zkwire.OpCode, req zkwire.Request) (zkwire.Response, error) {
	cl := &Call{c: c, op: op, req: req, path: pathOf(req), xid: c.nextXid(), done: make(chan struct{})}
	frame, err := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: cl.xid, Op: op}, req)
	if err != nil {
		return nil, err
	}
	cn.send([]*Call{cl}, frame)
	select {
	case <-cl.done:
	case <-ctx.Done():
		cn.take(cl.xid)
		return nil, ctx.Err()
	}
	var dead *deadConnError
	switch {
	case errors.As(cl.err, &dead):
		return nil, cl.lossError(dead.cause)
	case errors.Is(cl.err, errNotSent):
		return nil, fmt.Errorf("%w: %v: %s", ErrConnectionLoss, op, cn.addr)
	case cl.err != nil:
		return nil, cl.err
	case cl.code != zkwire.CodeOK:
		return nil, &zkwire.Error{Code: cl.code, Op: op, Path: cl.path}
	}
	return cl.resp, nil
}

// pathOf names a request's path for errors.
func pathOf(req zkwire.Request) string {
	switch r := req.(type) {
	case *zkwire.CreateRequest:
		return r.Path
	case *zkwire.CreateTTLRequest:
		return r.Path
	case *zkwire.DeleteRequest:
		return r.Path
	case *zkwire.ExistsRequest:
		return r.Path
	case *zkwire.GetDataRequest:
		return r.Path
	case *zkwire.SetDataRequest:
		return r.Path
	case *zkwire.GetACLRequest:
		return r.Path
	case *zkwire.SetACLRequest:
		return r.Path
	case *zkwire.GetChildrenRequest:
		return r.Path
	case *zkwire.SyncRequest:
		return r.Path
	case *zkwire.CheckVersionRequest:
		return r.Path
	case *zkwire.CheckWatchesRequest:
		return r.Path
	case *zkwire.RemoveWatchesRequest:
		return r.Path
	case *zkwire.GetEphemeralsRequest:
		return r.PrefixPath
	case *zkwire.GetAllChildrenNumberRequest:
		return r.Path
	case *zkwire.AddWatchRequest:
		return r.Path
	case *zkwire.AuthPacket:
		return "scheme " + r.Scheme
	case *zkwire.MultiRequest:
		if len(r.Ops) > 0 {
			return fmt.Sprintf("%s and %d more", pathOf(r.Ops[0].Request), len(r.Ops)-1)
		}
	}
	return ""
}

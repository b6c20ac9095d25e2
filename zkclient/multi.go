package zkclient

import (
	"context"
	"fmt"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// Op is one operation of a Multi (CreateOp, DeleteOp, SetDataOp, CheckOp)
// or a MultiRead (GetDataOp, GetChildrenOp). Its path is the caller's (the
// chroot is applied).
type Op struct {
	op      zkwire.OpCode
	path    string
	data    []byte
	acl     []znode.ACL
	mode    zkwire.CreateMode
	ttl     time.Duration
	version int32
}

// CreateOp creates a node in a Multi (create2; createContainer and createTTL
// for those modes, ttl being ignored for the others).
func CreateOp(path string, data []byte, acl []znode.ACL, mode zkwire.CreateMode, ttl time.Duration) Op {
	return Op{op: zkwire.OpCreate2, path: path, data: data, acl: acl, mode: mode, ttl: ttl}
}

// DeleteOp deletes a node at version (−1: any) in a Multi.
func DeleteOp(path string, version int32) Op {
	return Op{op: zkwire.OpDelete, path: path, version: version}
}

// SetDataOp sets a node's data at version (−1: any) in a Multi.
func SetDataOp(path string, data []byte, version int32) Op {
	return Op{op: zkwire.OpSetData, path: path, data: data, version: version}
}

// CheckOp makes a Multi fail unless the node is at version (−1: exists).
func CheckOp(path string, version int32) Op {
	return Op{op: zkwire.OpCheck, path: path, version: version}
}

// GetDataOp reads a node's data and stat in a MultiRead.
func GetDataOp(path string) Op { return Op{op: zkwire.OpGetData, path: path} }

// GetChildrenOp reads a node's child names in a MultiRead (no stat: a
// multiRead carries getChildren, not getChildren2).
func GetChildrenOp(path string) Op { return Op{op: zkwire.OpGetChildren, path: path} }

// OpResult is the outcome of one operation of a Multi or MultiRead.
type OpResult struct {
	// Err is nil when the operation succeeded, else its *zkwire.Error
	// (naming the operation and path). In a failed Multi the failing
	// operation carries its code, those after it RuntimeInconsistency (not
	// attempted), and those before it no error but RolledBack.
	Err error
	// RolledBack is set on the operations of a failed Multi that succeeded
	// before it failed and were undone with it.
	RolledBack bool
	// Path is a created node's path (with its sequence suffix).
	Path string
	// Stat is the node's stat after a setData, a getData, or a create
	// answered with one (createContainer and createTTL; create2 only from
	// ZooKeeper 3.9: earlier servers answer a create inside a multi without
	// its stat).
	Stat znode.WireStat
	// Data is a getData's data (nil and empty kept apart).
	Data []byte
	// Children is a getChildren's child names.
	Children []string
}

func (c *Client) multiRequest(ops []Op) (*zkwire.MultiRequest, error) {
	req := &zkwire.MultiRequest{Ops: make([]zkwire.MultiOp, 0, len(ops))}
	for _, o := range ops {
		p := c.abs(o.path)
		var mo zkwire.MultiOp
		switch o.op {
		case zkwire.OpCreate2:
			op, r, err := c.createReq(o.path, o.data, o.acl, o.mode, o.ttl)
			if err != nil {
				return nil, err
			}
			mo = zkwire.MultiOp{Op: op, Request: r}
		case zkwire.OpDelete:
			mo = zkwire.MultiOp{Op: o.op, Request: &zkwire.DeleteRequest{Path: p, Version: o.version}}
		case zkwire.OpSetData:
			mo = zkwire.MultiOp{Op: o.op, Request: &zkwire.SetDataRequest{Path: p, Data: o.data, Version: o.version}}
		case zkwire.OpCheck:
			mo = zkwire.MultiOp{Op: o.op, Request: &zkwire.CheckVersionRequest{Path: p, Version: o.version}}
		case zkwire.OpGetData:
			mo = zkwire.MultiOp{Op: o.op, Request: &zkwire.GetDataRequest{Path: p}}
		case zkwire.OpGetChildren:
			mo = zkwire.MultiOp{Op: o.op, Request: &zkwire.GetChildrenRequest{Path: p}}
		default:
			return nil, fmt.Errorf("zkclient: %v is not a multi operation", o.op)
		}
		req.Ops = append(req.Ops, mo)
	}
	return req, nil
}

// Multi applies ops atomically: all of them or none. It returns one result
// per operation; when the multi failed, the error is the failing
// operation's *zkwire.Error (naming its path), the results say which
// (OpResult.Err) and which were rolled back.
func (c *Client) Multi(ctx context.Context, ops ...Op) ([]OpResult, error) {
	return c.multi(ctx, zkwire.OpMulti, ops)
}

// MultiRead reads ops (GetDataOp, GetChildrenOp) in one request, evaluated
// in order at one point of the server's history (ZooKeeper 3.6+). Each
// result succeeds or fails on its own (OpResult.Err); the error is for the
// whole request.
func (c *Client) MultiRead(ctx context.Context, ops ...Op) ([]OpResult, error) {
	return c.multi(ctx, zkwire.OpMultiRead, ops)
}

// MultiCall is a multi sent by SendMulti whose reply has not been read.
type MultiCall struct {
	c    *Client
	ops  []Op
	call *Call
	err  error // the request could not be encoded
}

// SendMulti sends a multi of ops (as Multi would) without waiting for its
// reply, which Wait reads. Multis sent one after the other by one goroutine
// go out in that order on the current connection, and ZooKeeper applies a
// session's requests in order, so a caller may keep several in flight
// (pipeline them): the reverse mirror chains them with version checks, so
// that one that fails makes every later one fail too. Under the Resend
// policy a multi that could not be sent (no connection) goes out on the
// next connection when Wait is called, so its order against the others is
// kept only by what its own checks require.
func (c *Client) SendMulti(ops ...Op) *MultiCall {
	mc := &MultiCall{c: c, ops: ops}
	req, err := c.multiRequest(ops)
	if err != nil {
		mc.err = err
		return mc
	}
	mc.call = c.Send(Request{Op: zkwire.OpMulti, Body: req})[0]
	return mc
}

// Done is closed once the multi has an outcome (a reply, or its
// connection's end): Wait then returns without waiting for ZooKeeper, unless
// under Resend the multi was never sent and waits for the next connection.
func (mc *MultiCall) Done() <-chan struct{} {
	if mc.err != nil {
		done := make(chan struct{})
		close(done)
		return done
	}
	return mc.call.done
}

// Wait reads the reply of a SendMulti: what Multi returns.
func (mc *MultiCall) Wait(ctx context.Context) ([]OpResult, error) {
	if mc.err != nil {
		return nil, mc.err
	}
	resp, err := mc.call.Wait(ctx)
	if err != nil {
		return nil, err
	}
	return mc.c.multiResults(zkwire.OpMulti, mc.ops, resp)
}

func (c *Client) multi(ctx context.Context, op zkwire.OpCode, ops []Op) ([]OpResult, error) {
	req, err := c.multiRequest(ops)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, op, req, pathOf(req), 0)
	if err != nil {
		return nil, err
	}
	return c.multiResults(op, ops, resp)
}

// multiResults reads a multi's or multiRead's reply.
func (c *Client) multiResults(op zkwire.OpCode, ops []Op, resp zkwire.Response) ([]OpResult, error) {
	m := resp.(*zkwire.MultiResponse)
	if len(m.Results) != len(ops) {
		return nil, fmt.Errorf("zkclient: %v of %d operations answered with %d results", op, len(ops), len(m.Results))
	}
	out := make([]OpResult, len(ops))
	var first error
	failed := op == zkwire.OpMulti && m.Err() != zkwire.CodeOK
	for i, r := range m.Results {
		res := &out[i]
		switch rr := r.Response.(type) {
		case *zkwire.CreateResponse:
			res.Path = c.rel(rr.Path)
		case *zkwire.Create2Response:
			res.Path, res.Stat = c.rel(rr.Path), rr.Stat
		case *zkwire.SetDataResponse:
			res.Stat = rr.Stat
		case *zkwire.GetDataResponse:
			res.Data, res.Stat = rr.Data, rr.Stat
		case *zkwire.GetChildrenResponse:
			res.Children = rr.Children
		}
		if r.Op != zkwire.OpError {
			continue
		}
		switch {
		case r.Err == zkwire.CodeOK && failed:
			res.RolledBack = true
		case r.Err == zkwire.CodeRuntimeInconsistency && failed && first != nil:
			// An operation after the failing one: not attempted.
			res.Err = &zkwire.Error{Code: r.Err, Op: ops[i].op, Path: ops[i].path}
		case r.Err != zkwire.CodeOK:
			res.Err = &zkwire.Error{Code: r.Err, Op: ops[i].op, Path: ops[i].path}
			if first == nil {
				first = res.Err
			}
		}
	}
	if failed {
		return out, first
	}
	return out, nil
}

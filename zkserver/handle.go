package zkserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// answer handles one request and writes its reply; it reports whether the
// connection goes on (closeSession, a failed auth and a write whose outcome
// the journal cannot tell end it).
func (c *conn) answer(req *request) bool {
	s := c.s
	if !c.local {
		s.touch(c.sessionID.Load())
	}
	op := req.hdr.Op
	switch op {
	case zkwire.OpPing:
		c.reply(req, s.fsm.LastZxid(), zkwire.CodeOK, nil)
	case zkwire.OpAuth:
		return c.addAuth(req, req.body.(*zkwire.AuthPacket))
	case zkwire.OpSASL:
		// ZooKeeper without SASL configured answers err 0 and a null token.
		c.reply(req, s.fsm.LastZxid(), zkwire.CodeOK, &zkwire.SASLResponse{})
	case zkwire.OpCloseSession:
		return c.closeSession(req)
	case zkwire.OpSync:
		ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
		err := s.node.Sync(ctx)
		cancel()
		if err != nil {
			c.s.logger.Info("sync could not reach the leader; closing the connection", "remote", c.nc.RemoteAddr().String(), "error", err)
			return false
		}
		c.reply(req, s.fsm.LastZxid(), zkwire.CodeOK, &zkwire.SyncResponse{Path: req.body.(*zkwire.SyncRequest).Path})
	case zkwire.OpReconfig:
		// Membership is the journal's own (zk2raft journal); reconfig is off,
		// as on a ZooKeeper with reconfigEnabled=false.
		c.reply(req, s.fsm.LastZxid(), zkwire.CodeReconfigDisabled, nil)
	case zkwire.OpCreate, zkwire.OpCreate2, zkwire.OpCreateContainer, zkwire.OpCreateTTL,
		zkwire.OpDelete, zkwire.OpSetData, zkwire.OpSetACL, zkwire.OpCheck, zkwire.OpMulti:
		return c.submitWrites([]*request{req})
	case zkwire.OpDeleteContainer:
		// Submitted by ZooKeeper's own ContainerManager, never by clients.
		c.reply(req, s.fsm.LastZxid(), zkwire.CodeUnimplemented, nil)
	default:
		if !zkwire.KnownOp(op) {
			// ZooKeeper answers UNIMPLEMENTED and then drops the connection
			// (soon after, not at once: the differential suite saw a ping
			// after it answered and unanswered).
			c.reply(req, 0, zkwire.CodeUnimplemented, nil)
			_ = c.bw.Flush()
			return false
		}
		body, code := c.read(req)
		c.reply(req, s.fsm.LastZxid(), code, body)
	}
	return true
}

// pipelined reports whether a write may join the session's writes
// submitted together (every write but closeSession, which ends them).
func pipelined(op zkwire.OpCode) bool {
	return isWrite(op) && op != zkwire.OpCloseSession
}

// isWrite reports whether op is decided by the journal's log (ZooKeeper's
// update latency counts these; every other request is a read).
func isWrite(op zkwire.OpCode) bool {
	switch op {
	case zkwire.OpCreate, zkwire.OpCreate2, zkwire.OpCreateContainer, zkwire.OpCreateTTL,
		zkwire.OpDelete, zkwire.OpSetData, zkwire.OpSetACL, zkwire.OpCheck, zkwire.OpMulti, zkwire.OpCloseSession:
		return true
	}
	return false
}

// access checks reads against the session's identities.
func (c *conn) access(perm znode.Perm) raftjournal.Access {
	return func(acl []znode.ACL) raftjournal.Code {
		if raftjournal.Permits(acl, perm, c.auth) {
			return raftjournal.CodeOK
		}
		return raftjournal.CodeNoAuth
	}
}

func (c *conn) watchIf(watch bool) *raftjournal.Watcher {
	if watch {
		return c.watcher
	}
	return nil
}

// read serves a read on this node's state, after every earlier request of
// the session (the queue is in order, and writes wait for their local apply).
func (c *conn) read(req *request) (zkwire.Response, zkwire.Code) {
	f := c.s.fsm
	switch r := req.body.(type) {
	case *zkwire.ExistsRequest:
		if strings.IndexByte(r.Path, 0) >= 0 {
			return nil, zkwire.CodeBadArguments
		}
		st, code := f.ReadExists(r.Path, c.watchIf(r.Watch), c.access(znode.PermRead))
		return &zkwire.ExistsResponse{Stat: st}, zkwire.Code(code)
	case *zkwire.GetDataRequest:
		data, st, code := f.ReadData(r.Path, c.watchIf(r.Watch), c.access(znode.PermRead))
		return &zkwire.GetDataResponse{Data: data, Stat: st}, zkwire.Code(code)
	case *zkwire.GetChildrenRequest:
		kids, st, code := f.ReadChildren(r.Path, c.watchIf(r.Watch), c.access(znode.PermRead))
		if req.hdr.Op == zkwire.OpGetChildren {
			return &zkwire.GetChildrenResponse{Children: kids}, zkwire.Code(code)
		}
		return &zkwire.GetChildren2Response{Children: kids, Stat: st}, zkwire.Code(code)
	case *zkwire.GetACLRequest:
		return c.getACL(r.Path)
	case *zkwire.GetAllChildrenNumberRequest:
		n, code := f.AllChildrenNumber(r.Path, c.access(znode.PermRead))
		return &zkwire.GetAllChildrenNumberResponse{TotalNumber: n}, zkwire.Code(code)
	case *zkwire.GetEphemeralsRequest:
		var eph []string
		if !c.local {
			eph = f.EphemeralsUnder(c.sessionID.Load(), r.PrefixPath)
		}
		return &zkwire.GetEphemeralsResponse{Ephemerals: eph}, zkwire.CodeOK
	case *zkwire.MultiRequest: // multiRead
		return c.multiRead(r)
	case *zkwire.SetWatchesRequest:
		f.SetWatches(r.RelativeZxid, r.DataWatches, r.ExistWatches, r.ChildWatches, nil, nil, c.watcher)
		return nil, zkwire.CodeOK
	case *zkwire.SetWatches2Request:
		f.SetWatches(r.RelativeZxid, r.DataWatches, r.ExistWatches, r.ChildWatches,
			r.PersistentWatches, r.PersistentRecursiveWatches, c.watcher)
		return nil, zkwire.CodeOK
	case *zkwire.AddWatchRequest:
		switch r.Mode {
		case zkwire.AddWatchPersistent, zkwire.AddWatchPersistentRecursive:
		default:
			return nil, zkwire.CodeBadArguments
		}
		f.AddWatch(r.Path, c.watcher, r.Mode == zkwire.AddWatchPersistentRecursive)
		return &zkwire.ErrorResponse{}, zkwire.CodeOK
	case *zkwire.CheckWatchesRequest:
		if !oldWatcherType(r.Type) {
			return nil, zkwire.CodeMarshallingError
		}
		if !f.HasWatch(r.Path, c.watcher, int32(r.Type)) {
			return nil, zkwire.CodeNoWatcher
		}
		return nil, zkwire.CodeOK
	case *zkwire.RemoveWatchesRequest:
		if !oldWatcherType(r.Type) {
			return nil, zkwire.CodeMarshallingError
		}
		if !f.RemoveWatches(r.Path, c.watcher, int32(r.Type)) {
			return nil, zkwire.CodeNoWatcher
		}
		return nil, zkwire.CodeOK
	}
	if req.hdr.Op == zkwire.OpWhoAmI {
		return &zkwire.WhoAmIResponse{ClientInfo: c.whoAmI()}, zkwire.CodeOK
	}
	return nil, zkwire.CodeUnimplemented
}

// oldWatcherType reports whether ZooKeeper 3.8's WatcherType.fromInt knows
// t: children, data or any. It refuses the persistent types (4, 5) with an
// exception, which the client sees as MARSHALLINGERROR; persistent watches
// go away with removeWatches(any).
func oldWatcherType(t zkwire.WatcherType) bool {
	return t >= zkwire.WatcherChildren && t <= zkwire.WatcherAny
}

// getACL is FinalRequestProcessor's getACL: READ or ADMIN to read the list,
// and without ADMIN the digest ids are masked to "user:x".
func (c *conn) getACL(path string) (zkwire.Response, zkwire.Code) {
	acl, st, code := c.s.fsm.ReadACL(path)
	if code != raftjournal.CodeOK {
		return nil, zkwire.Code(code)
	}
	if !raftjournal.Permits(acl, znode.PermRead|znode.PermAdmin, c.auth) {
		return nil, zkwire.CodeNoAuth
	}
	out := make([]znode.ACL, len(acl))
	copy(out, acl)
	if !raftjournal.Permits(acl, znode.PermAdmin, c.auth) {
		for i := range out {
			if out[i].ID.Scheme == "digest" {
				user, _, _ := strings.Cut(out[i].ID.ID, ":")
				out[i].ID.ID = user + ":x"
			}
		}
	}
	return &zkwire.GetACLResponse{ACL: out, Stat: st}, zkwire.CodeOK
}

func (c *conn) multiRead(r *zkwire.MultiRequest) (zkwire.Response, zkwire.Code) {
	f := c.s.fsm
	resp := &zkwire.MultiResponse{}
	for _, op := range r.Ops {
		switch sub := op.Request.(type) {
		case *zkwire.GetDataRequest:
			data, st, code := f.ReadData(sub.Path, c.watchIf(sub.Watch), c.access(znode.PermRead))
			if code != raftjournal.CodeOK {
				resp.Results = append(resp.Results, zkwire.MultiResult{Op: zkwire.OpError, Err: zkwire.Code(code)})
				continue
			}
			resp.Results = append(resp.Results, zkwire.MultiResult{Op: zkwire.OpGetData, Response: &zkwire.GetDataResponse{Data: data, Stat: st}})
		case *zkwire.GetChildrenRequest:
			kids, _, code := f.ReadChildren(sub.Path, c.watchIf(sub.Watch), c.access(znode.PermRead))
			if code != raftjournal.CodeOK {
				resp.Results = append(resp.Results, zkwire.MultiResult{Op: zkwire.OpError, Err: zkwire.Code(code)})
				continue
			}
			resp.Results = append(resp.Results, zkwire.MultiResult{Op: zkwire.OpGetChildren, Response: &zkwire.GetChildrenResponse{Children: kids}})
		default:
			// A write inside a multiRead: ZooKeeper refuses the record.
			return nil, zkwire.CodeMarshallingError
		}
	}
	return resp, zkwire.CodeOK
}

// whoAmI lists the session's identities as AuthUtil.getClientInfos does:
// the user part of a digest id, the address of an ip id.
func (c *conn) whoAmI() []zkwire.ClientInfo {
	out := make([]zkwire.ClientInfo, 0, len(c.auth))
	for _, id := range c.auth {
		user := id.ID
		switch id.Scheme {
		case "digest":
			user, _, _ = strings.Cut(id.ID, ":")
		case "super":
			user = ""
		}
		out = append(out, zkwire.ClientInfo{AuthScheme: id.Scheme, User: user})
	}
	return out
}

// addAuth is addauth: digest credentials become the id user:base64(sha1),
// plus {super, ""} when they match the super digest. An unknown scheme fails
// with AUTHFAILED and closes the connection, as in ZooKeeper.
func (c *conn) addAuth(req *request, p *zkwire.AuthPacket) bool {
	var ids []znode.ID
	switch p.Scheme {
	case "digest":
		id := znode.DigestID(string(p.Auth))
		if c.s.cfg.SuperDigest != "" && id == c.s.cfg.SuperDigest {
			ids = append(ids, znode.ID{Scheme: "super", ID: ""})
		}
		ids = append(ids, znode.ID{Scheme: "digest", ID: id})
	case "ip":
		ids = append(ids, znode.ID{Scheme: "ip", ID: c.ip})
	default:
		c.s.m.authFailures.Inc()
		c.s.stats.authFailed.Add(1)
		c.s.logger.Info("authentication failed: unknown scheme", "remote", c.nc.RemoteAddr().String(), "scheme", p.Scheme)
		c.reply(req, 0, zkwire.CodeAuthFailed, nil)
		_ = c.bw.Flush()
		return false
	}
	// Identities are kept in the order added, the connection's ip last.
	ip := c.auth[len(c.auth)-1]
	rest := c.auth[:len(c.auth)-1]
	for _, id := range ids {
		if !containsID(rest, id) && id != ip {
			rest = append(rest, id)
		}
	}
	c.auth = append(rest, ip)
	c.reply(req, 0, zkwire.CodeOK, nil)
	return true
}

func containsID(ids []znode.ID, id znode.ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (c *conn) closeSession(req *request) bool {
	s := c.s
	id := c.sessionID.Load()
	zxid := s.fsm.LastZxid()
	c.ending.Store(true)
	if c.local {
		s.endLocal(id)
	} else {
		ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
		res, err := s.node.SubmitForSession(ctx, id, &raftjournal.CloseSession{Session: id})
		if errors.Is(err, raftjournal.CodeSessionMoved) {
			cancel()
			return c.moved()
		}
		if err == nil {
			err = s.node.WaitApplied(ctx, res.Index)
			if res.Zxid != 0 {
				zxid = res.Zxid
			}
		}
		cancel()
		if err != nil {
			s.logger.Info("closeSession did not complete; closing the connection", "session", fmt.Sprintf("%#x", id), "error", err)
			return false
		}
	}
	c.reply(req, zxid, zkwire.CodeOK, nil)
	_ = c.bw.Flush()
	return false
}

// submitWrites turns a session's consecutive write requests (one, or
// several pipelined by the client) into journal Writes, submits them in
// order in one request (Node.SubmitInOrder: the leader queues them without
// waiting for each to commit), waits until this node has applied them (so
// the session's later reads and the watch events they fired here come
// first), and answers each with ZooKeeper's reply, in order. The time spent
// in each step is the write_phase_seconds metric: commit (forwarding, the
// Raft round, the leader's apply) and local_apply (until this node applied
// them; on a follower, until it learned the commit from the leader).
func (c *conn) submitWrites(batch []*request) bool {
	s := c.s
	writes := make([]raftjournal.Command, 0, len(batch))
	slot := make([]int, len(batch)) // index into writes, or -1: answered with code[i]
	code := make([]zkwire.Code, len(batch))
	for i, req := range batch {
		w, cd := c.toWrite(req)
		if cd == zkwire.CodeOK && (c.local || s.fsm.Phase() == raftjournal.PhaseShadow) {
			// ZooKeeper is the source of truth in shadow: a read-only server.
			cd = zkwire.CodeNotReadOnly
		}
		slot[i], code[i] = -1, cd
		if cd == zkwire.CodeOK {
			slot[i] = len(writes)
			writes = append(writes, w)
		}
	}
	var results []*raftjournal.Result
	var errs []error
	if len(writes) > 0 {
		ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
		defer cancel()
		start := time.Now()
		var err error
		if len(writes) == 1 {
			var res *raftjournal.Result
			res, err = s.node.SubmitForSession(ctx, c.sessionID.Load(), writes[0])
			results, errs = []*raftjournal.Result{res}, []error{nil}
		} else {
			results, errs, err = s.node.SubmitInOrder(ctx, c.sessionID.Load(), writes)
		}
		if errors.Is(err, raftjournal.CodeSessionMoved) {
			return c.moved()
		}
		if err != nil {
			results, errs = make([]*raftjournal.Result, len(writes)), make([]error, len(writes))
			for i := range errs {
				errs[i] = err
			}
		} else {
			committed := time.Now()
			s.m.writePhase.WithLabelValues("commit").Observe(committed.Sub(start).Seconds())
			var last uint64
			for _, r := range results {
				if r != nil {
					last = max(last, r.Index)
				}
			}
			if err := s.node.WaitApplied(ctx, last); err != nil {
				s.logger.Info("node did not apply the session's writes in time; closing the connection",
					"remote", c.nc.RemoteAddr().String(), "index", last, "error", err)
				return false
			}
			s.m.writePhase.WithLabelValues("local_apply").Observe(time.Since(committed).Seconds())
		}
	}
	for i, req := range batch {
		if slot[i] < 0 {
			c.reply(req, s.fsm.LastZxid(), code[i], nil)
			continue
		}
		if !c.replyWrite(req, results[slot[i]], errs[slot[i]]) {
			return false
		}
	}
	return true
}

// replyWrite answers one write with its journal result; it reports false
// when the outcome is unknown (leader lost, no quorum): ZooKeeper drops the
// connection then, and the client reports ConnectionLoss for this request
// and those after it.
func (c *conn) replyWrite(req *request, res *raftjournal.Result, err error) bool {
	s := c.s
	if err != nil {
		var cd raftjournal.Code
		if errors.As(err, &cd) && !errors.Is(err, raftjournal.ErrOutcomeUnknown) && cd != raftjournal.CodeConnectionLoss {
			c.reply(req, s.fsm.LastZxid(), zkwire.Code(cd), nil)
			return true
		}
		s.logger.Info("write outcome unknown; closing the connection", "remote", c.nc.RemoteAddr().String(),
			"op", req.hdr.Op.String(), "error", err)
		return false
	}
	zxid := max(res.Zxid, 0)
	if zxid == 0 {
		zxid = s.fsm.LastZxid()
	}
	if req.hdr.Op == zkwire.OpMulti {
		c.reply(req, zxid, zkwire.CodeOK, multiResponse(req.body.(*zkwire.MultiRequest), res))
		return true
	}
	if res.Err != nil || len(res.Ops) != 1 {
		code := zkwire.Code(raftjournal.CodeOf(res.Err))
		if res.Err == nil {
			code = zkwire.CodeSystemError
		}
		c.reply(req, zxid, code, nil)
		return true
	}
	c.reply(req, zxid, zkwire.CodeOK, opResponse(req.hdr.Op, &res.Ops[0]))
	return true
}

// moved ends a connection whose session reconnected to another node since:
// the leader refused its request. ZooKeeper closes such a connection without
// answering (FinalRequestProcessor, ZOOKEEPER-710), so that the client is
// never live on two servers at once.
func (c *conn) moved() bool {
	c.s.m.sessionsMoved.Inc()
	c.s.logger.Info("session moved to another node; closing its old connection",
		"remote", c.nc.RemoteAddr().String(), "session", fmt.Sprintf("%#x", c.sessionID.Load()))
	return false
}

// opResponse is the reply body of a successful single write.
func opResponse(op zkwire.OpCode, r *raftjournal.OpResult) zkwire.Response {
	switch op {
	case zkwire.OpCreate:
		return &zkwire.CreateResponse{Path: r.Path}
	case zkwire.OpCreate2, zkwire.OpCreateContainer, zkwire.OpCreateTTL:
		return &zkwire.Create2Response{Path: r.Path, Stat: r.Stat}
	case zkwire.OpSetData, zkwire.OpCheck:
		return &zkwire.SetDataResponse{Stat: r.Stat}
	case zkwire.OpSetACL:
		return &zkwire.SetACLResponse{Stat: r.Stat}
	}
	return nil // delete
}

// multiResponse follows ZooKeeper 3.8: a create or create2 answers as type
// 1 (path only), createTTL and createContainer as 15 (path and stat); a
// failed multi is all error results.
func multiResponse(m *zkwire.MultiRequest, res *raftjournal.Result) *zkwire.MultiResponse {
	out := &zkwire.MultiResponse{Results: make([]zkwire.MultiResult, len(m.Ops))}
	for i, op := range m.Ops {
		var r raftjournal.OpResult
		if i < len(res.Ops) {
			r = res.Ops[i]
		}
		if res.Err != nil {
			out.Results[i] = zkwire.MultiResult{Op: zkwire.OpError, Err: zkwire.Code(r.Err)}
			continue
		}
		switch op.Op {
		case zkwire.OpCreate, zkwire.OpCreate2:
			out.Results[i] = zkwire.MultiResult{Op: zkwire.OpCreate, Response: &zkwire.CreateResponse{Path: r.Path}}
		case zkwire.OpCreateTTL, zkwire.OpCreateContainer:
			out.Results[i] = zkwire.MultiResult{Op: zkwire.OpCreate2, Response: &zkwire.Create2Response{Path: r.Path, Stat: r.Stat}}
		case zkwire.OpSetData:
			out.Results[i] = zkwire.MultiResult{Op: zkwire.OpSetData, Response: &zkwire.SetDataResponse{Stat: r.Stat}}
		default: // delete, check
			out.Results[i] = zkwire.MultiResult{Op: op.Op}
		}
	}
	return out
}

// toWrite builds the journal Write for a write request, or the code the
// request fails with before reaching the journal.
func (c *conn) toWrite(req *request) (*raftjournal.Write, zkwire.Code) {
	w := &raftjournal.Write{Session: c.sessionID.Load(), Auth: c.auth, CheckACL: true}
	if c.local {
		w.Session = 0
	}
	if m, ok := req.body.(*zkwire.MultiRequest); ok {
		w.Multi = true
		for _, sub := range m.Ops {
			op, code := c.toOp(sub.Op, sub.Request)
			if code != zkwire.CodeOK {
				return nil, code
			}
			w.Ops = append(w.Ops, op)
		}
		if len(w.Ops) == 0 {
			// An empty multi succeeds with no results.
			return w, zkwire.CodeOK
		}
		return w, zkwire.CodeOK
	}
	op, code := c.toOp(req.hdr.Op, req.body)
	if code != zkwire.CodeOK {
		return nil, code
	}
	w.Ops = []raftjournal.Op{op}
	return w, zkwire.CodeOK
}

func (c *conn) toOp(op zkwire.OpCode, body zkwire.Request) (raftjournal.Op, zkwire.Code) {
	switch r := body.(type) {
	case *zkwire.CreateRequest:
		mode := raftjournal.CreateMode(r.Flags)
		switch {
		case op == zkwire.OpCreateContainer && r.Flags != zkwire.ModeContainer,
			op != zkwire.OpCreateContainer && r.Flags == zkwire.ModeContainer:
			// PrepRequestProcessor: the container mode goes with its opcode.
			return raftjournal.Op{}, zkwire.CodeBadArguments
		case r.Flags.TTL():
			return raftjournal.Op{}, zkwire.CodeBadArguments
		case r.Flags < 0 || r.Flags > zkwire.ModePersistentSequentialWithTTL:
			return raftjournal.Op{}, zkwire.CodeBadArguments
		}
		return raftjournal.Op{Kind: raftjournal.OpCreate, Path: r.Path, Data: r.Data, ACL: r.ACL, Mode: mode}, zkwire.CodeOK
	case *zkwire.CreateTTLRequest:
		if !c.s.cfg.ExtendedTypes {
			return raftjournal.Op{}, zkwire.CodeUnimplemented
		}
		if !r.Flags.TTL() {
			return raftjournal.Op{}, zkwire.CodeBadArguments
		}
		return raftjournal.Op{Kind: raftjournal.OpCreate, Path: r.Path, Data: r.Data, ACL: r.ACL,
			Mode: raftjournal.CreateMode(r.Flags), TTL: r.TTL}, zkwire.CodeOK
	case *zkwire.DeleteRequest:
		return raftjournal.Op{Kind: raftjournal.OpDelete, Path: r.Path, Version: r.Version}, zkwire.CodeOK
	case *zkwire.SetDataRequest:
		return raftjournal.Op{Kind: raftjournal.OpSetData, Path: r.Path, Data: r.Data, Version: r.Version}, zkwire.CodeOK
	case *zkwire.SetACLRequest:
		return raftjournal.Op{Kind: raftjournal.OpSetACL, Path: r.Path, ACL: r.ACL, Version: r.Version}, zkwire.CodeOK
	case *zkwire.CheckVersionRequest:
		return raftjournal.Op{Kind: raftjournal.OpCheck, Path: r.Path, Version: r.Version}, zkwire.CodeOK
	}
	// A read inside a multi: ZooKeeper refuses mixing.
	return raftjournal.Op{}, zkwire.CodeMarshallingError
}

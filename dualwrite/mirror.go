package dualwrite

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// write is a request ZooKeeper answered with success, as the tap saw it.
type write struct {
	op         zkwire.OpCode
	req        zkwire.Request
	resp       zkwire.Response
	zxid       int64
	session    int64
	auth       identities
	ephemerals []string // closeSession: what the injected getEphemerals returned
}

// mirror turns a successful write into a SourceTxn and queues it; it returns
// when the mirror is on disk (async) or committed by the journal (sync). It
// never fails the client's request: a write that cannot be mirrored is
// recorded as lost, which owes the journal a repair.
func (t *Tap) mirror(w write) {
	tx, err := t.buildTxn(w)
	if err != nil {
		t.log.Warn("cannot mirror a committed write", "op", w.op, "zxid", fmt.Sprintf("%#x", w.zxid), "err", err)
		t.lose(w.zxid, "unmirrorable")
		return
	}
	if tx == nil {
		return
	}
	entry := raftjournal.Encode(tx)
	_, last, err := t.queue.Append(t.ctx, entry)
	if err != nil {
		reason := "queue"
		if errors.Is(err, ErrQueueFull) {
			reason = "queue full"
		}
		t.log.Warn("mirrored write not queued; the journal misses it until a repair pass", "zxid", fmt.Sprintf("%#x", w.zxid), "err", err)
		t.lose(w.zxid, reason)
		return
	}
	now := time.Now()
	for i := range tx.Ops {
		op := &tx.Ops[i]
		if op.Path != "" {
			t.noteMirrored(op.Path, mirrorMark{zxid: tx.Zxid, deleted: op.Kind == raftjournal.SourceDelete, at: now})
		}
		for _, p := range op.Paths {
			t.noteMirrored(p, mirrorMark{zxid: tx.Zxid, deleted: true, at: now})
		}
	}
	t.metrics.mirrored.WithLabelValues(w.op.String()).Inc()
	t.lastZxid.Store(w.zxid)
	t.metrics.lastZxid.Set(float64(w.zxid))
	if t.cfg.Sync {
		start := time.Now()
		if !t.delivered.wait(t.ctx, last, t.cfg.SyncTimeout) {
			t.metrics.syncTimeouts.Inc()
			t.log.Warn("journal did not commit a mirrored write in time; releasing the reply, the write stays queued",
				"zxid", fmt.Sprintf("%#x", w.zxid), "timeout", t.cfg.SyncTimeout)
		}
		t.metrics.syncWait.Observe(time.Since(start).Seconds())
	}
}

// lose records a committed write the journal will not get from the tap.
func (t *Tap) lose(zxid int64, reason string) {
	t.metrics.failed.WithLabelValues(reason).Inc()
	if err := t.queue.MarkLost(zxid); err != nil {
		t.log.Error("cannot record a lost mirror in the queue", "err", err)
	}
}

// buildTxn builds the SourceTxn of a write; nil for a multi that failed.
func (t *Tap) buildTxn(w write) (*raftjournal.SourceTxn, error) {
	z := w.zxid
	if z <= 0 {
		return nil, fmt.Errorf("reply carries zxid %d", z)
	}
	tx := &raftjournal.SourceTxn{Zxid: z}
	switch w.op {
	case zkwire.OpCreate, zkwire.OpCreate2, zkwire.OpCreateContainer, zkwire.OpCreateTTL:
		c, err := createOf(w.req)
		if err != nil {
			return nil, err
		}
		r, ok := w.resp.(*zkwire.Create2Response)
		if !ok {
			return nil, fmt.Errorf("%v reply is %T, want a stat", w.op, w.resp)
		}
		op, err := t.createOp(c, r.Path, znode.FromWire(r.Stat, rawOwner(c, r.Stat.EphemeralOwner)), w.auth)
		if err != nil {
			return nil, err
		}
		if !t.sequentialParent(&op, c, z) {
			op.ParentPzxid = parentReadBack // read at delivery, off the reply path
		}
		tx.Ops = []raftjournal.SourceOp{op}
	case zkwire.OpDelete:
		r, ok := w.req.(*zkwire.DeleteRequest)
		if !ok {
			return nil, fmt.Errorf("delete request is %T", w.req)
		}
		tx.Ops = []raftjournal.SourceOp{{Kind: raftjournal.SourceDelete, Path: r.Path}}
	case zkwire.OpSetData:
		r, ok1 := w.req.(*zkwire.SetDataRequest)
		s, ok2 := w.resp.(*zkwire.SetDataResponse)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("setData request %T, reply %T", w.req, w.resp)
		}
		tx.Ops = []raftjournal.SourceOp{{Kind: raftjournal.SourceSetData, Path: r.Path, Data: r.Data, Stat: znode.FromWire(s.Stat, s.Stat.EphemeralOwner)}}
	case zkwire.OpSetACL:
		r, ok1 := w.req.(*zkwire.SetACLRequest)
		s, ok2 := w.resp.(*zkwire.SetACLResponse)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("setACL request %T, reply %T", w.req, w.resp)
		}
		acl, err := fixACL(r.ACL, w.auth)
		if err != nil {
			return nil, fmt.Errorf("setACL %s: %w", r.Path, err)
		}
		tx.Ops = []raftjournal.SourceOp{{Kind: raftjournal.SourceSetACL, Path: r.Path, ACL: acl, Stat: znode.FromWire(s.Stat, s.Stat.EphemeralOwner)}}
	case zkwire.OpMulti:
		return t.multiTxn(w)
	case zkwire.OpCloseSession:
		tx.Ops = []raftjournal.SourceOp{{Kind: raftjournal.SourceCloseSession, Session: w.session, Paths: w.ephemerals}}
	default:
		return nil, fmt.Errorf("%v is not a write", w.op)
	}
	return tx, nil
}

// createReq is what every create request says.
type createReq struct {
	path string
	data []byte
	acl  []znode.ACL
	mode zkwire.CreateMode
	ttl  int64
}

func createOf(r zkwire.Request) (createReq, error) {
	switch r := r.(type) {
	case *zkwire.CreateRequest:
		return createReq{path: r.Path, data: r.Data, acl: r.ACL, mode: r.Flags}, nil
	case *zkwire.CreateTTLRequest:
		return createReq{path: r.Path, data: r.Data, acl: r.ACL, mode: r.Flags, ttl: r.TTL}, nil
	}
	return createReq{}, fmt.Errorf("create request is %T", r)
}

// rawOwner is the ephemeralOwner ZooKeeper stores for a create: the session
// for ephemerals (the client sees it too), the container or TTL encoding
// (the client sees 0), else 0.
func rawOwner(c createReq, wireOwner int64) int64 {
	switch {
	case c.mode.Ephemeral():
		return wireOwner
	case c.mode == zkwire.ModeContainer:
		return znode.ContainerOwner
	case c.mode.TTL():
		o, err := znode.TTLOwner(c.ttl)
		if err == nil {
			return o
		}
	}
	return 0
}

// createOp builds a SourceCreate with the ACL ZooKeeper stored.
func (t *Tap) createOp(c createReq, path string, st znode.Stat, auth identities) (raftjournal.SourceOp, error) {
	acl, err := fixACL(c.acl, auth)
	if err != nil {
		return raftjournal.SourceOp{}, fmt.Errorf("create %s: %w", path, err)
	}
	return raftjournal.SourceOp{Kind: raftjournal.SourceCreate, Path: path, Data: c.data, ACL: acl, Stat: st}, nil
}

// sequentialParent fills the parent's registers of a sequential create from
// the name ZooKeeper gave it: the suffix is the parent's cversion before the
// create (PrepRequestProcessor), so the CreateTxn's parentCVersion is one more.
func (t *Tap) sequentialParent(op *raftjournal.SourceOp, c createReq, z int64) bool {
	if !c.mode.Sequential() || len(op.Path) < 10 {
		return false
	}
	seq, err := strconv.ParseInt(op.Path[len(op.Path)-10:], 10, 32)
	if err != nil || seq < 0 {
		return false
	}
	op.ParentCversion, op.ParentPzxid = int32(seq+1), z
	return true
}

// multiTxn mirrors a multi that succeeded. Before ZooKeeper 3.9 a create
// inside a multi is answered without its stat, so the tap knows everything
// about the new node but the txn time: it takes it from another result of the
// same multi (a setData's mtime, a TTL or container create's stat) or, at
// delivery, from a node it created (readback.go). Parent registers: exact for
// a parent created in the same multi and for sequential names; read back at
// delivery once per other parent.
func (t *Tap) multiTxn(w write) (*raftjournal.SourceTxn, error) {
	req, ok1 := w.req.(*zkwire.MultiRequest)
	resp, ok2 := w.resp.(*zkwire.MultiResponse)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("multi request %T, reply %T", w.req, w.resp)
	}
	if len(resp.Results) != len(req.Ops) {
		return nil, fmt.Errorf("multi has %d ops and %d results", len(req.Ops), len(resp.Results))
	}
	for _, r := range resp.Results {
		if r.Op == zkwire.OpError {
			return nil, nil // failed: ZooKeeper changed nothing
		}
	}
	z := w.zxid
	tx := &raftjournal.SourceTxn{Zxid: z, Multi: true}
	txnTime, haveTime := int64(0), false
	for _, r := range resp.Results {
		switch s := r.Response.(type) {
		case *zkwire.Create2Response:
			if s.Stat.Czxid == z {
				txnTime, haveTime = s.Stat.Ctime, true
			}
		case *zkwire.SetDataResponse:
			if s.Stat.Mzxid == z {
				txnTime, haveTime = s.Stat.Mtime, true
			}
		}
	}
	type parentState struct {
		inMulti bool  // created by this multi
		count   int32 // cversion so far, for a parent created here
		last    int   // the op index of the last create under it
	}
	parents := map[string]*parentState{}
	var untimed []int
	for i, mop := range req.Ops {
		res := resp.Results[i]
		switch mop.Op {
		case zkwire.OpCreate, zkwire.OpCreate2, zkwire.OpCreateContainer, zkwire.OpCreateTTL:
			c, err := createOf(mop.Request)
			if err != nil {
				return nil, err
			}
			var path string
			var st znode.Stat
			switch r := res.Response.(type) {
			case *zkwire.Create2Response:
				path, st = r.Path, znode.FromWire(r.Stat, rawOwner(c, r.Stat.EphemeralOwner))
			case *zkwire.CreateResponse:
				path = r.Path
				owner := int64(0)
				if c.mode.Ephemeral() {
					owner = w.session
				}
				st = znode.Stat{Czxid: z, Mzxid: z, Pzxid: z, Ctime: txnTime, Mtime: txnTime, EphemeralOwner: rawOwner(c, owner)}
				if !haveTime {
					untimed = append(untimed, len(tx.Ops))
				}
			default:
				return nil, fmt.Errorf("multi op %d (%v) result is %T", i, mop.Op, res.Response)
			}
			op, err := t.createOp(c, path, st, w.auth)
			if err != nil {
				return nil, err
			}
			parent := znode.Parent(path)
			ps := parents[parent]
			if ps == nil {
				ps = &parentState{}
				parents[parent] = ps
			}
			if ps.inMulti {
				ps.count++
				op.ParentCversion, op.ParentPzxid = ps.count, z
			} else if !t.sequentialParent(&op, c, z) {
				ps.last = len(tx.Ops) + 1 // 1-based: 0 is "none"
			}
			if q := parents[path]; q == nil {
				parents[path] = &parentState{inMulti: true}
			} else {
				*q = parentState{inMulti: true}
			}
			tx.Ops = append(tx.Ops, op)
		case zkwire.OpDelete:
			r, ok := mop.Request.(*zkwire.DeleteRequest)
			if !ok {
				return nil, fmt.Errorf("multi op %d delete is %T", i, mop.Request)
			}
			tx.Ops = append(tx.Ops, raftjournal.SourceOp{Kind: raftjournal.SourceDelete, Path: r.Path})
			if ps := parents[r.Path]; ps != nil {
				ps.inMulti = false
			}
		case zkwire.OpSetData:
			r, ok1 := mop.Request.(*zkwire.SetDataRequest)
			s, ok2 := res.Response.(*zkwire.SetDataResponse)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("multi op %d setData %T / %T", i, mop.Request, res.Response)
			}
			tx.Ops = append(tx.Ops, raftjournal.SourceOp{Kind: raftjournal.SourceSetData, Path: r.Path, Data: r.Data, Stat: znode.FromWire(s.Stat, s.Stat.EphemeralOwner)})
		case zkwire.OpCheck:
		default:
			return nil, fmt.Errorf("multi op %d is %v", i, mop.Op)
		}
	}
	// Parents that existed before the multi: the last create under each gets
	// the registers read back at delivery; the earlier ones leave them
	// unknown. Likewise the txn time, when no result carried it.
	for _, ps := range parents {
		if ps.last != 0 {
			tx.Ops[ps.last-1].ParentPzxid = parentReadBack
		}
	}
	for _, i := range untimed {
		tx.Ops[i].Stat.Ctime, tx.Ops[i].Stat.Mtime = ctimeReadBack, ctimeReadBack
	}
	if len(tx.Ops) == 0 {
		return nil, nil
	}
	return tx, nil
}

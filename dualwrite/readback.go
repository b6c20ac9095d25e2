package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// Read-backs. A reply does not always say everything the mirror needs: the
// parent's cversion after a non-sequential create, the txn time of a create
// inside a multi (before ZooKeeper 3.9), the ACL an "auth" entry expanded to
// when the tap cannot predict it (identities.go). The tap queues the mirror
// with a marker where the value is missing and releases the reply at once; the
// delivery loop reads the values back from ZooKeeper on the tap's own session
// just before it submits the batch (resolve), so no reply waits for a second
// ZooKeeper round trip, and a batch needs one read per parent however many
// creates it holds. The markers are on disk with the mirror, so a mirror
// queued before a crash is resolved by the next run's delivery.
//
// A value read later is as good as one read at once: the parent's (cversion,
// pzxid) pair holds as of its pzxid, which the journal's merge orders by; a
// node read back is used only if it is still the incarnation (czxid) and ACL
// version (aversion) the write produced. A parent or node that is gone or was
// created again meanwhile leaves the value unknown, which is right: the
// incarnation the write touched is dead. A read that fails, and an ACL that
// cannot be read, leave the value unknown and record a lost mirror, which owes
// the journal a repair pass (RepairOwed).
const (
	// parentReadBack in SourceOp.ParentPzxid: read the parent's registers.
	parentReadBack int64 = -1
	// ctimeReadBack in a create's Stat.Ctime and Mtime: read the txn time.
	ctimeReadBack int64 = -1
	// readBackWorkers bounds the reads one batch runs at once (pipelined on
	// the tap's session).
	readBackWorkers = 32
)

// owesReadBack reports whether a queued mirror holds a read-back marker.
func owesReadBack(tx *raftjournal.SourceTxn) bool {
	for i := range tx.Ops {
		op := &tx.Ops[i]
		switch op.Kind {
		case raftjournal.SourceCreate:
			if op.ParentPzxid == parentReadBack || op.Stat.Ctime == ctimeReadBack || aclOwed(op.ACL) {
				return true
			}
		case raftjournal.SourceSetACL:
			if aclOwed(op.ACL) {
				return true
			}
		}
	}
	return false
}

func aclOwed(acl []znode.ACL) bool { return len(acl) > 0 && acl[len(acl)-1] == aclReadBack }

// readBackCache keeps the entries of the last batch resolved, by queue seq,
// so that a batch the journal did not take is not read back again.
type readBackCache struct {
	mu      sync.Mutex
	entries map[uint64][]byte
}

// resolve returns the entries of recs, in order, with every read-back marker
// replaced by the value read from ZooKeeper (or unknown). Records that are
// not SourceTxn entries are returned as they are.
func (t *Tap) resolve(recs []Record) [][]byte {
	out := make([][]byte, len(recs))
	t.rbCache.mu.Lock()
	cached := t.rbCache.entries
	t.rbCache.mu.Unlock()
	type owed struct {
		i  int
		tx *raftjournal.SourceTxn
	}
	var todo []owed
	for i, r := range recs {
		out[i] = r.Data
		if e, ok := cached[r.Seq]; ok {
			out[i] = e
			continue
		}
		cmd, err := raftjournal.Decode(r.Data)
		if err != nil {
			continue
		}
		if tx, ok := cmd.(*raftjournal.SourceTxn); ok && owesReadBack(tx) {
			todo = append(todo, owed{i, tx})
		}
	}
	if len(todo) > 0 {
		txs := make([]*raftjournal.SourceTxn, len(todo))
		for k, o := range todo {
			txs[k] = o.tx
		}
		t.readBack(txs)
		for _, o := range todo {
			out[o.i] = raftjournal.Encode(o.tx)
		}
	}
	next := make(map[uint64][]byte, len(recs))
	for i, r := range recs {
		next[r.Seq] = out[i]
	}
	t.rbCache.mu.Lock()
	t.rbCache.entries = next
	t.rbCache.mu.Unlock()
	return out
}

// readBack fills the markers of txs (mirrors of one batch) from ZooKeeper.
func (t *Tap) readBack(txs []*raftjournal.SourceTxn) {
	type opRef struct {
		tx *raftjournal.SourceTxn
		op int
	}
	// The last create under each parent, in zxid order, gets the parent's
	// registers; the earlier ones leave them unknown (the later read covers
	// them: its cversion holds as of a pzxid past all of them).
	last := map[string]opRef{}
	var reads []func()
	for _, tx := range txs {
		var untimed []int
		for j := range tx.Ops {
			op := &tx.Ops[j]
			if op.Kind == raftjournal.SourceCreate && op.ParentPzxid == parentReadBack {
				op.ParentPzxid = 0
				p := znode.Parent(op.Path)
				if cur, ok := last[p]; !ok || tx.Zxid > cur.tx.Zxid || (tx.Zxid == cur.tx.Zxid && cur.tx == tx && j > cur.op) {
					last[p] = opRef{tx, j}
				}
			}
			if op.Kind == raftjournal.SourceCreate && op.Stat.Ctime == ctimeReadBack {
				untimed = append(untimed, j)
			}
			if aclOwed(op.ACL) {
				reads = append(reads, func() { t.readACL(tx.Zxid, op) })
			}
		}
		if len(untimed) > 0 {
			reads = append(reads, func() {
				ctime := t.readCtime(tx, untimed)
				for _, j := range untimed {
					tx.Ops[j].Stat.Ctime, tx.Ops[j].Stat.Mtime = ctime, ctime
				}
			})
		}
	}
	for parent, ref := range last {
		reads = append(reads, func() {
			op := &ref.tx.Ops[ref.op]
			op.ParentCversion, op.ParentPzxid = t.readParent(parent, ref.tx.Zxid)
		})
	}
	sem := make(chan struct{}, readBackWorkers)
	var wg sync.WaitGroup
	for _, f := range reads {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f()
		}()
	}
	wg.Wait()
}

// readParent reads back the parent's stat for a create at z. The pair
// (cversion, pzxid) read holds as of pzxid, which is z or later; a server
// behind z is synced first. (0, 0) says unknown: the parent is gone or was
// created again (the incarnation the create touched is dead), or the read
// failed (then a repair pass is owed).
func (t *Tap) readParent(parent string, z int64) (int32, int64) {
	ctx, cancel := context.WithTimeout(t.ctx, readerSessionTimeout)
	defer cancel()
	for attempt := range 2 {
		st, ok, err := t.reader.Exists(ctx, parent)
		switch {
		case err != nil:
			t.readBackFailed("parent", parent, z, err)
			return 0, 0
		case !ok || (st.Czxid >= z && parent != "/"):
			t.metrics.readbacks.WithLabelValues("parent", "gone").Inc()
			return 0, 0
		case st.Pzxid >= z:
			t.metrics.readbacks.WithLabelValues("parent", "ok").Inc()
			return znode.PersistedCversion(st.Cversion, st.NumChildren), st.Pzxid
		}
		if attempt == 0 {
			if err := t.reader.Sync(ctx, parent); err != nil {
				break
			}
		}
	}
	t.readBackFailed("parent", parent, z, errors.New("the server stays behind the create"))
	return 0, 0
}

// readCtime reads back a node a multi at tx.Zxid created, for the txn time.
// If every node it created is gone or was created again, their incarnations
// are dead and the time does not matter (0).
func (t *Tap) readCtime(tx *raftjournal.SourceTxn, ops []int) int64 {
	ctx, cancel := context.WithTimeout(t.ctx, readerSessionTimeout)
	defer cancel()
	z := tx.Zxid
	for _, i := range ops {
		path := tx.Ops[i].Path
		st, ok, err := t.reader.Exists(ctx, path)
		if err == nil && !ok {
			if err = t.reader.Sync(ctx, path); err == nil {
				st, ok, err = t.reader.Exists(ctx, path)
			}
		}
		if err != nil {
			t.readBackFailed("ctime", path, z, err)
			return 0
		}
		if ok && st.Czxid == z {
			t.metrics.readbacks.WithLabelValues("ctime", "ok").Inc()
			return st.Ctime
		}
	}
	t.metrics.readbacks.WithLabelValues("ctime", "gone").Inc()
	return 0
}

// readACL reads back the ACL of a create's or setACL's node (op, mirrored at
// z) whose "auth" expansion the tap could not predict. It is used if the node
// is still the incarnation and ACL version the write produced; otherwise the
// prediction stays, and a repair pass is owed unless the node is gone or has
// a newer ACL (whose own write overrides this one).
func (t *Tap) readACL(z int64, op *raftjournal.SourceOp) {
	ctx, cancel := context.WithTimeout(t.ctx, readerSessionTimeout)
	defer cancel()
	op.ACL = op.ACL[:len(op.ACL)-1] // the prediction
	acl, st, err := t.reader.GetACL(ctx, op.Path)
	switch {
	case errors.Is(err, zkclient.ErrNoNode):
		t.metrics.readbacks.WithLabelValues("acl", "gone").Inc()
	case err != nil:
		t.readBackFailed("acl", op.Path, z, err)
	case st.Czxid != op.Stat.Czxid || st.Aversion > op.Stat.Aversion:
		t.metrics.readbacks.WithLabelValues("acl", "gone").Inc()
	case st.Aversion < op.Stat.Aversion:
		t.readBackFailed("acl", op.Path, z, fmt.Errorf("the server is behind the write (aversion %d, want %d)", st.Aversion, op.Stat.Aversion))
	case exporter.IsMaskedACL(acl):
		t.readBackFailed("acl", op.Path, z, errors.New("the ACL comes back masked: the tap's credentials (--auth) lack ADMIN on the node"))
	default:
		op.ACL = acl
		t.metrics.readbacks.WithLabelValues("acl", "ok").Inc()
	}
}

// readBackFailed records a read-back that failed: the mirror goes to the
// journal without the value, and a repair pass is owed.
func (t *Tap) readBackFailed(kind, path string, z int64, err error) {
	t.metrics.readbacks.WithLabelValues(kind, "error").Inc()
	t.log.Warn("read-back for a mirror failed; the journal lacks the value until a repair pass",
		"what", kind, "path", path, "zxid", fmt.Sprintf("%#x", z), "err", err)
	t.lose(z, "read-back failed")
}

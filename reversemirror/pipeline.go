package reversemirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
)

// The pipeline: see "Pipelining" in the package documentation. Up to
// MaxInFlight multis are in flight on one ZooKeeper session; each checks the
// marker's version and this term's pipeline node's version that the one
// before it sets, so that one that fails makes every later one fail too, and
// none applies on top of another mirror's write.

// multiBatch is what one multi carries.
type multiBatch struct {
	recs    []raftjournal.MirrorRecord // the records it applies, in order
	conn    *zkclient.Client
	ops     []zkclient.Op
	refs    []opRef         // per op
	closes  []int64         // journal sessions closed by these records
	newSess map[int64]int64 // journal → ZooKeeper sessions as these records need them
}

type opRef struct {
	rec     int // index in recs
	pos     int // the op's position in its record
	op      *raftjournal.MirrorOp
	skipped bool
}

// goneKey names a clean-up delete (MirrorOp.Cleanup) ZooKeeper had already
// made: the op at pos in the entry at index.
type goneKey struct {
	index uint64
	pos   int
}

// flight is a multi sent and not yet answered.
type flight struct {
	b    *multiBatch
	call *zkclient.MultiCall
	sent []int // the b.refs index of each record op sent, in order
	own  []ownEvent
	// The planned state before it, back when it fails with ZooKeeper's state
	// known (every multi before it applied, it and those after it not).
	prevSessions, prevLive map[int64]int64
	prevSent               uint64
}

// sessionOps are the marker children's changes that bring the marker's
// sessions (t.sessions) to want minus closed: creates, setData for a
// session replaced after ZooKeeper expired it, deletes. It returns them
// with the resulting map.
func (t *term) sessionOps(want map[int64]int64, closed []int64) ([]zkclient.Op, map[int64]int64) {
	after := maps(want)
	for _, j := range closed {
		delete(after, j)
	}
	var ops []zkclient.Op
	for j, z := range after {
		old, ok := t.sessions[j]
		switch {
		case !ok:
			ops = append(ops, zkclient.CreateOp(sessionChild(t.marker, j), hexID(z), t.markerACL(), 0, 0))
		case old != z:
			ops = append(ops, zkclient.SetDataOp(sessionChild(t.marker, j), hexID(z), -1))
		}
	}
	for j := range t.sessions {
		if _, ok := after[j]; !ok {
			ops = append(ops, zkclient.DeleteOp(sessionChild(t.marker, j), -1))
		}
	}
	return ops, after
}

// current is the connection a record with no ephemeral to create goes
// through: the one the last multi went through (so that it joins that
// multi's batch, or follows it in the pipeline), while it is still held.
func (t *term) current() *zkclient.Client {
	if n := len(t.flights); n > 0 {
		return t.flights[n-1].b.conn
	}
	if t.lastConn != nil {
		for _, c := range t.twins {
			if c == t.lastConn {
				return c
			}
		}
	}
	return t.zk
}

// assemble takes the longest run of records from recs (recs[0] not a
// setACL) that goes in one multi: the same ZooKeeper session, at most
// MaxBatchOps ops and about MaxBatchBytes, ending at a session's close.
func (t *term) assemble(ctx context.Context, recs []raftjournal.MirrorRecord) (*multiBatch, error) {
	t.batchFencing = t.fencing()
	b := &multiBatch{newSess: maps(t.live)}
	cur := t.current()
	size, n := 0, 0
	for i := range recs {
		r := &recs[i]
		if setACL(r) {
			break
		}
		conn, err := t.connFor(ctx, r, b.newSess, cur)
		if err != nil {
			return nil, err
		}
		if n > 0 && (conn != b.conn || len(b.ops)+len(r.Ops) > t.m.cfg.MaxBatchOps || size >= t.m.cfg.MaxBatchBytes) {
			break
		}
		b.conn, cur = conn, conn
		for j := range r.Ops {
			op := &r.Ops[j]
			if op.Kind == raftjournal.MirrorCloseSession {
				b.closes = append(b.closes, op.Session)
				continue
			}
			b.ops = append(b.ops, t.zkOp(op))
			b.refs = append(b.refs, opRef{rec: i, pos: j, op: op, skipped: t.gone[goneKey{r.Index, j}]})
			size += len(op.Path) + len(op.Data) + 64
		}
		n++
		if len(b.closes) > 0 {
			break
		}
	}
	b.recs = recs[:n]
	return b, nil
}

// send sends b's multi behind the ones in flight: its ops, the marker's
// session changes, then setData of this term's pipeline node and of the
// marker, each at the version the multis before it leave. The planned state
// (t.sent, t.sessions, t.live) moves on at once.
func (t *term) send(b *multiBatch) {
	last := &b.recs[len(b.recs)-1]
	md := &markerData{Start: t.start, StartTime: t.startTime, Index: last.Index, Zxid: fmt.Sprintf("%#x", last.Zxid)}
	f := &flight{b: b, prevSessions: t.sessions, prevLive: t.live, prevSent: t.sent}
	ops := make([]zkclient.Op, 0, len(b.ops)+4)
	for i, op := range b.ops {
		if !b.refs[i].skipped {
			ops = append(ops, op)
			f.sent = append(f.sent, i)
			f.own = appendOwn(f.own, b.refs[i].op)
		}
	}
	sessOps, after := t.sessionOps(b.newSess, b.closes)
	ops = append(ops, sessOps...)
	ahead := int32(len(t.flights))
	ops = append(ops, zkclient.SetDataOp(t.pipeNode, nil, t.pipeVersion+ahead))
	ops = append(ops, zkclient.SetDataOp(t.marker, md.encode(), t.markerVersion+ahead))
	// The events this multi fires are announced to the sentry before it
	// is sent, so that none can arrive first (sentry.expectOwn).
	t.m.sentry.expectOwn(f.own)
	f.call = b.conn.SendMulti(ops...)
	t.flights = append(t.flights, f)
	t.sent = last.Index
	t.sessions, t.live = after, maps(after)
	t.lastConn = b.conn
	n := len(t.flights)
	t.m.update(func(s *Status) { s.Sent, s.InFlight, s.MaxInFlight = t.sent, n, max(s.MaxInFlight, n) })
}

// complete waits for the oldest multi in flight. When it failed, it waits
// for every later one too (they fail with it: their version checks), so
// that none is left to reach ZooKeeper after the mirror has decided what to
// do, and then says what: nil (a clean-up delete ZooKeeper had made itself,
// to be skipped: the planned state is back where ZooKeeper is), errResync
// (the outcome is unknown, or the marker or the pipeline node moved), or
// the divergence that stops the mirror.
func (t *term) complete(ctx context.Context) error {
	f := t.flights[0]
	res, err := f.call.Wait(ctx)
	if err == nil {
		t.flights[0] = nil
		t.flights = t.flights[1:]
		t.confirm(f, res)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	t.m.sentry.unexpectOwn(f.own)
	rest := t.flights[1:]
	t.flights = nil
	defer t.m.update(func(s *Status) { s.Sent, s.InFlight = t.sent, 0 })
	late := 0
	for _, g := range rest {
		if _, gerr := g.call.Wait(ctx); gerr == nil {
			// Possible only when f's outcome is unknown (its connection
			// died) and f did apply: the marker says so.
			late++
		} else {
			t.m.sentry.unexpectOwn(g.own)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b := f.b
	first, last := &b.recs[0], &b.recs[len(b.recs)-1]
	if res == nil {
		// No per-op results: the outcome is unknown (connection loss).
		return fmt.Errorf("%w: multi of journal entries %d..%d (%d more in flight): %w", errResync, first.Index, last.Index, len(rest), err)
	}
	failed := -1
	for i := range res {
		if res[i].Err != nil && !errors.Is(res[i].Err, errRuntimeInconsistency) {
			failed = i
			break
		}
	}
	if late > 0 || failed < 0 || failed >= len(f.sent) {
		return fmt.Errorf("%w: marker %s, its sessions or the mirror's pipeline node changed behind this mirror (%v; %d later multis applied)", errResync, t.marker, err, late)
	}
	ref := &b.refs[f.sent[failed]]
	r := &b.recs[ref.rec]
	if ref.op.Kind == raftjournal.MirrorDelete && ref.op.Cleanup && errors.Is(res[failed].Err, zkclient.ErrNoNode) {
		// ZooKeeper made this delete itself (an expired session, its
		// ContainerManager): skip it from now on, and plan again from
		// what ZooKeeper holds (every multi before f).
		t.gone[goneKey{r.Index, ref.pos}] = true
		t.m.update(func(s *Status) { s.CleanupGone++ })
		t.sessions, t.live, t.sent = f.prevSessions, f.prevLive, f.prevSent
		return nil
	}
	t.m.sentry.suspect(ref.op.Path) // the sentry says who wrote it, once it can
	return fmt.Errorf("reversemirror: journal entry %d (zxid %#x) %s %s: ZooKeeper refused it: %w: ZooKeeper's copy differs from the journal's (a write made straight to ZooKeeper?); the mirror stops here and retries, it never skips an entry",
		r.Index, r.Zxid, ref.op.Kind, ref.op.Path, res[failed].Err)
}

// confirm takes a multi ZooKeeper applied.
func (t *term) confirm(f *flight, res []zkclient.OpResult) {
	last := &f.b.recs[len(f.b.recs)-1]
	t.markerVersion++
	t.pipeVersion++
	t.applied, t.appliedZxid, t.appliedZkZxid = last.Index, last.Zxid, res[len(res)-1].Stat.Mzxid
	for _, j := range f.b.closes {
		if c := t.twins[j]; c != nil {
			_ = c.Close() // the session's ephemerals are already deleted
			delete(t.twins, j)
		}
	}
	for k := range t.gone {
		if k.index <= t.applied {
			delete(t.gone, k)
		}
	}
	t.m.update(func(s *Status) {
		s.Applied, s.AppliedZkZxid = t.applied, t.appliedZkZxid
		s.Records += uint64(len(f.b.recs))
		s.Ops += uint64(len(f.sent))
		s.Multis++
		s.InFlight = len(t.flights)
		s.Sessions = len(t.sessions)
		s.LastError = ""
	})
}

// drain waits until no multi is in flight.
func (t *term) drain(ctx context.Context) error {
	for len(t.flights) > 0 {
		if err := t.complete(ctx); err != nil {
			return err
		}
	}
	return nil
}

// quietLook bounds how often quietDue looks at the fence's request.
const quietLook = 50 * time.Millisecond

// quietDue reports whether the mirror should let the pipeline run empty
// before it assembles more: the sentry has suspects to judge, the
// unresolved records are due for a look, a fence request waits for its
// walk, or a new primary period began. Each needs ZooKeeper to hold
// exactly what the marker says.
func (t *term) quietDue() bool {
	now := time.Now()
	if !now.Before(t.settleAfter) && (t.m.sentry.hasSuspects() || now.Sub(t.verifiedAt) >= t.m.cfg.Verify) {
		return true
	}
	if st := t.fsm.MirrorStatus(); st.Start != t.start || st.StartTime != t.startTime {
		return true
	}
	if now.Sub(t.quietLooked) < quietLook {
		return false
	}
	t.quietLooked = now
	if t.walking != nil {
		select {
		case <-t.walking:
		default:
			return false // a walk runs: batches assembled now are fenced already
		}
	}
	return t.fenceDue() != nil && now.Sub(t.walkFailed) >= t.m.cfg.Retry
}

// syncPipe creates this term's pipeline node (an ephemeral child of the
// marker, named after the mirror's session, so that it goes with it) or
// reads its version: every multi sets it at the version the one before it
// left.
func (t *term) syncPipe(ctx context.Context) error {
	p := pipelineChild(t.marker, t.zk.SessionID())
	_, st, err := t.zk.Create(ctx, p, nil, t.markerACL(), zkwire.ModeEphemeral)
	if errors.Is(err, zkclient.ErrNodeExists) {
		var ok bool
		st, ok, err = t.zk.Exists(ctx, p)
		if err == nil && !ok {
			return t.syncPipe(ctx)
		}
	}
	if err != nil {
		return fmt.Errorf("reversemirror: the mirror's pipeline node %s: %w", p, err)
	}
	t.pipeNode, t.pipeVersion = p, st.Version
	return nil
}

package dualwrite

// Run: the event, check and repair loops, and the queue of paths waiting for their grace.

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// Run reconciles until ctx ends: it watches Root for events and checks them,
// checks digests every Interval, and repairs everything after events may have
// been lost. It returns nil when ctx ends, and an error when it cannot go on
// (the ZooKeeper client gave up, for instance on refused credentials). One Run
// at a time.
func (r *Reconciler) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("dualwrite: reconciler already running")
	}
	defer r.running.Store(false)
	c, err := r.zk(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := c.AddWatch(ctx, r.cfg.Root, zkwire.AddWatchPersistentRecursive); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("dualwrite: watching %s: %w", r.cfg.Root, err)
	}
	r.logger.Info("reconciler running", "root", r.cfg.Root, "grace", r.cfg.Grace, "interval", r.cfg.Interval)
	q := newReconcileQueue()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.consumeEvents(gctx, c, q) })
	g.Go(func() error { return r.checkLoop(gctx, c, q) })
	g.Go(func() error { return r.repairLoop(gctx) })
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// requestRepair asks Run for a RepairAll; requests coalesce.
func (r *Reconciler) requestRepair(why string) {
	select {
	case r.repairReq <- why:
	default:
	}
}

func (r *Reconciler) consumeEvents(ctx context.Context, c *zkclient.Client, q *reconcileQueue) error {
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				if err := c.Err(); err != nil && !errors.Is(err, zkclient.ErrClosed) {
					return err
				}
				return ErrReconcilerClosed
			}
			if ev.Missed {
				r.requestRepair(fmt.Sprintf("zookeeper events may have been lost (%s)", ev.State))
			}
			switch ev.Type {
			case zkwire.EventNodeCreated, zkwire.EventNodeDeleted, zkwire.EventNodeDataChanged:
			default:
				continue
			}
			if !r.inScope(ev.Path) {
				continue
			}
			r.stats.events.Add(1)
			r.metrics.events.Inc()
			q.add(ev.Path, ev.Time, r.cfg.Grace)
		case <-ctx.Done():
			return nil
		}
	}
}

func (r *Reconciler) checkLoop(ctx context.Context, c *zkclient.Client, q *reconcileQueue) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if due := q.popDue(time.Now()); len(due) > 0 {
			if err := r.checkDue(ctx, c, q, due); err != nil {
				return err
			}
			continue
		}
		wait := time.Hour
		if next, ok := q.next(); ok {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-q.wake:
			timer.Stop() // since Go 1.23 a stopped timer delivers nothing stale
		case <-ctx.Done():
			return nil
		}
	}
}

// checkDue checks the paths whose grace has passed. A recent mirror by the
// tap may defer a check (the grace), never cancel it: once the grace has
// passed, every event is settled by the zxid rule (covered) or checked. A
// failed check is retried with a growing delay, then left to a RepairAll; a
// node the credentials cannot read is recorded as unreadable instead.
func (r *Reconciler) checkDue(ctx context.Context, c *zkclient.Client, q *reconcileQueue, due []*queuedPath) error {
	slices.SortFunc(due, func(a, b *queuedPath) int { return znode.ComparePaths(a.path, b.path) })
	retry := func(it *queuedPath, err error) {
		if r.noteUnreadable(it.path, err) {
			return
		}
		r.stats.errors.Add(1)
		if it.attempts+1 >= maxEventRetries {
			r.logger.Error("event check failed; leaving it to a repair pass", "path", it.path, "error", err)
			r.requestRepair("event checks failed")
			return
		}
		delay := min(r.cfg.Grace<<it.attempts, 30*time.Second)
		r.logger.Warn("event check failed; will retry", "path", it.path, "error", err, "in", delay)
		q.retry(it, time.Now().Add(delay))
	}
	if err := c.Sync(ctx, "/"); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		for _, it := range due {
			retry(it, err)
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(reconcileWorkers)
	for _, it := range due {
		g.Go(func() error {
			if it.attempts == 0 {
				covered, err := r.coveredByTap(gctx, c, it.path)
				if err == nil && covered {
					r.stats.skipped.Add(1)
					r.metrics.skipped.Inc()
					r.logger.Debug("event covered by the tap's mirror", "path", it.path)
					return nil
				}
			}
			if err := r.checkEvent(gctx, c, it.path); err != nil {
				if gctx.Err() != nil {
					return nil
				}
				retry(it, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// coveredByTap applies the zxid rule to an event on path: the tap's last
// mirror of a write on it (Mirrored) covers ZooKeeper's state if
//
//   - the node exists, that write did not delete it, and its zxid is at
//     least the node's czxid and mzxid: the tap mirrored the write that made
//     the node as it is (or a later one);
//   - or the node is gone, that write deleted it, and the parent's pzxid is
//     no later than it: no child of the parent was created or deleted since,
//     so no other incarnation came and went.
//
// Anything else, a write around the proxy included, is checked. (A setACL
// fires no event; the digest checks catch it.)
func (r *Reconciler) coveredByTap(ctx context.Context, c *zkclient.Client, path string) (bool, error) {
	if r.cfg.Mirrored == nil {
		return false, nil
	}
	mz, deleted, ok := r.cfg.Mirrored(path)
	if !ok {
		return false, nil
	}
	st, exists, err := c.Exists(ctx, path)
	if err != nil {
		return false, err
	}
	if exists {
		return !deleted && mz >= st.Czxid && mz >= st.Mzxid, nil
	}
	if !deleted {
		return false, nil
	}
	pst, pexists, err := c.Exists(ctx, znode.Parent(path))
	if err != nil || !pexists {
		return false, err
	}
	return pst.Pzxid <= mz, nil
}

// checkEvent checks a path an event named. A node absent on both sides was
// created and deleted around the proxy (or its delete was mirrored): its
// parent's child registers (pzxid, cversion) are checked too.
func (r *Reconciler) checkEvent(ctx context.Context, c *zkclient.Client, path string) error {
	res, err := r.check(ctx, c, path)
	if err != nil {
		return err
	}
	if res.absent {
		if p := znode.Parent(path); r.inScope(p) {
			// The parent's child registers (pzxid, cversion) are comparable
			// only once the journal has seen ZooKeeper's last change of
			// them: under a steady create and delete of children (a lock
			// recipe's), the mirror of the newest child is often still on
			// its way, and a "repair" then would only copy what the mirror
			// brings a moment later — and fail the cutover's repairs gate
			// with no write around the proxies. That newest child's own
			// event is checked in its turn, and the digest checks see any
			// difference left.
			if settled, err := r.parentSettled(ctx, c, p); err != nil || settled {
				return err
			}
			if _, err := r.refresh(ctx, c, p, "parent of a node created and deleted"); err != nil {
				return err
			}
		}
	}
	return nil
}

// parentSettled reports whether the journal's copy of path holds
// ZooKeeper's child registers as of ZooKeeper's last change of them (its
// pzxid P, read now), waiting up to the grace for the mirror of that change:
// under a steady create and delete of children (a lock recipe's) the
// mirror of the newest child is often still on its way, from another
// connection, and a "repair" would copy what the mirror brings a moment
// later — and fail the cutover's repairs gate with no write around the
// proxies. Settled: the journal's pzxid reached P with ZooKeeper's cversion,
// or passed it (a later change, which has its own event). Not settled within
// the grace: the change at P did not come through a proxy, and the caller
// repairs.
func (r *Reconciler) parentSettled(ctx context.Context, c *zkclient.Client, path string) (bool, error) {
	st, exists, err := c.Exists(ctx, path)
	if err != nil || !exists {
		return false, err
	}
	deadline := time.Now().Add(max(r.cfg.Grace, 100*time.Millisecond))
	for {
		jn, ok, err := r.cfg.View.Get(ctx, path)
		if err != nil {
			return false, fmt.Errorf("dualwrite: journal view: %s: %w", path, err)
		}
		if ok && jn.Stat.Czxid == st.Czxid {
			switch {
			case jn.Stat.Pzxid > st.Pzxid:
				return true, nil
			case jn.Stat.Pzxid == st.Pzxid:
				// The journal keeps ZooKeeper's persisted cversion.
				return jn.Stat.Cversion == znode.PersistedCversion(st.Cversion, st.NumChildren), nil
			}
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *Reconciler) repairLoop(ctx context.Context) error {
	r.startupPass(ctx)
	var tick <-chan time.Time
	if r.cfg.Interval > 0 {
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case why := <-r.repairReq:
			r.logger.Info("repair pass requested", "why", why)
			if _, err := r.RepairAll(ctx, ""); err != nil && ctx.Err() == nil {
				r.logger.Error("repair pass failed", "error", err)
			}
		case <-tick:
			r.digestThenRepair(ctx)
		case <-ctx.Done():
			return nil
		}
	}
}

// startupPass compares the journal with ZooKeeper when Run starts, since the
// events of the time before the watch are lost: a digest check, then a
// repair pass unless the digests are equal at ZooKeeper's latest state. It is
// retried, with a growing delay, until it completes or ctx ends: a restart
// never skips it.
func (r *Reconciler) startupPass(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		v, err := r.DigestCheck(ctx)
		switch {
		case err == nil && v.Result == DigestEqual:
			r.logger.Info("startup pass: the journal's digest equals ZooKeeper's at its latest zxid; no repair pass needed",
				"zxid", fmt.Sprintf("%#x", v.Zxid))
			return
		case err != nil && ctx.Err() == nil:
			r.logger.Warn("startup pass: digest check failed; running a repair pass", "error", err)
		case err == nil:
			r.logger.Info("startup pass: running a repair pass", "digests", v.Result.String(), "reason", v.Reason)
		}
		_, err = r.RepairAll(ctx, "")
		if err == nil || ctx.Err() != nil {
			return
		}
		r.logger.Error("startup repair pass failed; retrying", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// digestThenRepair runs a repair pass when the digests differ, and still
// differ a grace later: a difference at ZooKeeper's latest zxid can be the
// tap's last mirrors not delivered yet.
func (r *Reconciler) digestThenRepair(ctx context.Context) {
	v, err := r.DigestCheck(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Warn("digest check failed", "error", err)
		}
		return
	}
	if v.Result != DigestDifferent {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(r.cfg.Grace):
	}
	if v, err = r.DigestCheck(ctx); err != nil || v.Result != DigestDifferent {
		return
	}
	if _, err := r.RepairAll(ctx, ""); err != nil && ctx.Err() == nil {
		r.logger.Error("repair pass failed", "error", err)
	}
}

// queuedPath is a path waiting for its check.
type queuedPath struct {
	path     string
	due      time.Time // when the check runs
	last     time.Time // the last event on the path
	attempts int       // failed checks so far
	index    int       // in the heap
}

// reconcileQueue holds the pending checks, one per path, by due time.
type reconcileQueue struct {
	mu     sync.Mutex
	byPath map[string]*queuedPath
	h      pathHeap
	wake   chan struct{}
}

func newReconcileQueue() *reconcileQueue {
	return &reconcileQueue{byPath: make(map[string]*queuedPath), wake: make(chan struct{}, 1)}
}

// add records an event on path: a new check due grace after it, or the
// pending one (not pushed back, so a busy path is still checked).
func (q *reconcileQueue) add(path string, at time.Time, grace time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it := q.byPath[path]; it != nil {
		if at.After(it.last) {
			it.last = at
		}
		return
	}
	it := &queuedPath{path: path, due: at.Add(grace), last: at}
	q.byPath[path] = it
	heap.Push(&q.h, it)
	q.signal()
}

// retry puts a failed check back, due at the given time.
func (q *reconcileQueue) retry(it *queuedPath, due time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if cur := q.byPath[it.path]; cur != nil {
		// A new event came meanwhile: its check covers this one.
		cur.attempts = max(cur.attempts, it.attempts+1)
		return
	}
	it.attempts++
	it.due = due
	q.byPath[it.path] = it
	heap.Push(&q.h, it)
	q.signal()
}

func (q *reconcileQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// popDue removes and returns the checks due at now.
func (q *reconcileQueue) popDue(now time.Time) []*queuedPath {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*queuedPath
	for len(q.h) > 0 && !q.h[0].due.After(now) {
		it := heap.Pop(&q.h).(*queuedPath)
		delete(q.byPath, it.path)
		out = append(out, it)
	}
	return out
}

// next returns when the earliest check is due.
func (q *reconcileQueue) next() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.h) == 0 {
		return time.Time{}, false
	}
	return q.h[0].due, true
}

// pathHeap orders pending checks by due time (container/heap).
type pathHeap []*queuedPath

func (h pathHeap) Len() int           { return len(h) }
func (h pathHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h pathHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *pathHeap) Push(x any) {
	it := x.(*queuedPath)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *pathHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

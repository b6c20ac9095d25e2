package raftjournal

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Sessions live in the replicated state (created and closed through the log),
// but their liveness does not: like ZooKeeper's SessionTracker, only the leader
// tracks when each session was last heard from, in memory. Touches reach the
// leader (forwarded from any node) and are not logged. When a session's
// timeout passes without one, the leader commits ExpireSessions, which closes
// it on every node at the same log index and deletes its ephemerals. A new
// leader starts every session's clock afresh from its full timeout, so a
// leader change can only extend a session, never cut it short.

// sessionTracker is the leader's view of session deadlines, and of which
// node each session's client is connected to (its owner, see ClaimSessions).
type sessionTracker struct {
	mu       sync.Mutex
	deadline map[int64]time.Time
	owner    map[int64]string // node id; absent: not known since this node leads
	active   bool             // this node leads and has synced the table
}

func newSessionTracker() *sessionTracker {
	return &sessionTracker{deadline: make(map[int64]time.Time), owner: make(map[int64]string)}
}

// reset starts tracking as a new leader, or stops (sessions nil).
func (t *sessionTracker) reset(sessions []SessionInfo, now time.Time, active bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.deadline)
	clear(t.owner)
	t.active = active
	for _, s := range sessions {
		t.deadline[s.ID] = now.Add(time.Duration(s.TimeoutMs) * time.Millisecond)
	}
}

// sync adds the sessions the table gained since the last tick (created through
// the log) and forgets the ones it lost (closed or expired), then returns the
// sessions whose deadline passed, sorted.
func (t *sessionTracker) sync(sessions []SessionInfo, now time.Time) []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.active {
		return nil
	}
	live := make(map[int64]struct{}, len(sessions))
	var expired []int64
	for _, s := range sessions {
		live[s.ID] = struct{}{}
		dl, ok := t.deadline[s.ID]
		if !ok {
			t.deadline[s.ID] = now.Add(time.Duration(s.TimeoutMs) * time.Millisecond)
			continue
		}
		if now.After(dl) {
			expired = append(expired, s.ID)
		}
	}
	for id := range t.deadline {
		if _, ok := live[id]; !ok {
			delete(t.deadline, id)
			delete(t.owner, id)
		}
	}
	slices.Sort(expired)
	return expired
}

// touch renews a session on the leader.
func (t *sessionTracker) touch(id int64, timeout time.Duration, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deadline[id] = now.Add(timeout)
}

// own records that node serves the session's client: claim replaces any
// owner (a connect or reconnect), otherwise the node becomes the owner only
// of a session without one (ZooKeeper's SessionTracker.checkSession). It
// reports false when another node owns the session: the session moved away
// from node. Before the tracker is active (a new leader still syncing),
// every node is taken at its word.
func (t *sessionTracker) own(id int64, node string, claim bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.active {
		return true
	}
	cur, ok := t.owner[id]
	if claim || !ok {
		t.owner[id] = node
		return true
	}
	return cur == node
}

// touchLocal renews a session on this node as leader: SessionExpired when the
// replicated table no longer has it.
func (n *Node) touchLocal(id int64) error {
	if !n.isLeader() {
		return ErrNotLeader
	}
	for _, s := range n.fsm.Sessions() {
		if s.ID == id {
			n.tracker.touch(id, time.Duration(s.TimeoutMs)*time.Millisecond, time.Now())
			return nil
		}
	}
	return &OpError{Op: OpCheck, Path: fmt.Sprintf("session 0x%x", id), Code: CodeSessionExpired}
}

// runLeadership follows raft's leadership notifications and runs the leader's
// duties while this node leads.
func (n *Node) runLeadership(notify <-chan bool) {
	defer n.wg.Done()
	var d leaderDuty
	defer d.stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case leader := <-notify:
			d.stop()
			n.metrics.leaderChanges.Inc()
			if !leader {
				n.tracker.reset(nil, time.Now(), false)
				n.logger.Info("lost leadership")
				continue
			}
			n.logger.Info("became leader", "term", n.raft.CurrentTerm())
			d.start(n.ctx, n.leaderDuties)
		}
	}
}

// leaderDuty runs the leader's duties for one term of leadership.
type leaderDuty struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (d *leaderDuty) start(parent context.Context, run func(context.Context)) {
	ctx, cancel := context.WithCancel(parent)
	d.cancel = cancel
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		run(ctx)
	}()
}

func (d *leaderDuty) stop() {
	if d.cancel != nil {
		d.cancel()
		d.wg.Wait()
		d.cancel = nil
	}
}

// leaderDuties: wait for a barrier (the FSM then holds every committed entry,
// including every session), start the session clocks, then expire sessions
// and clean up containers and TTL nodes until leadership ends.
func (n *Node) leaderDuties(ctx context.Context) {
	term := n.raft.CurrentTerm()
	for {
		err := waitFuture(ctx, n.raft.Barrier(0))
		if err == nil {
			break
		}
		if ctx.Err() != nil || !n.isLeader() {
			return
		}
		n.logger.Warn("leader barrier failed, retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	n.readyTerm.Store(term)
	n.tracker.reset(n.fsm.Sessions(), time.Now(), true)

	sessions := time.NewTicker(n.cfg.SessionTick)
	defer sessions.Stop()
	var cleanup <-chan time.Time
	if n.cfg.CleanupInterval > 0 {
		t := time.NewTicker(n.cfg.CleanupInterval)
		defer t.Stop()
		cleanup = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sessions.C:
			n.expireSessions(ctx)
		case <-cleanup:
			n.cleanupNodes(ctx)
		}
	}
}

func (n *Node) expireSessions(ctx context.Context) {
	expired := n.tracker.sync(n.fsm.Sessions(), time.Now())
	if len(expired) == 0 {
		return
	}
	res, err := n.applyLocal(ctx, Encode(&ExpireSessions{Sessions: expired, Time: time.Now().UnixMilli()}), EntryExpireSessions)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		if ctx.Err() == nil {
			n.logger.Warn("session expiry failed", "sessions", len(expired), "error", err)
		}
		return
	}
	n.metrics.sessionsExpired.Add(float64(len(expired)))
	n.logger.Info("expired sessions", "sessions", fmt.Sprintf("%#x", expired), "deleted-ephemerals", len(res.Deleted))
}

func (n *Node) cleanupNodes(ctx context.Context) {
	if n.fsm.Phase() == PhaseShadow {
		return // ZooKeeper cleans up its own containers and TTL nodes
	}
	now := time.Now().UnixMilli()
	paths := n.fsm.CleanupCandidates(now, n.cfg.CleanupBatch)
	if len(paths) == 0 {
		return
	}
	res, err := n.applyLocal(ctx, Encode(&CleanupNodes{Paths: paths, Time: now}), EntryCleanupNodes)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		if ctx.Err() == nil {
			n.logger.Warn("container and TTL clean-up failed", "candidates", len(paths), "error", err)
		}
		return
	}
	n.metrics.nodesCleaned.Add(float64(len(res.Deleted)))
	n.logger.Debug("cleaned up containers and TTL nodes", "deleted", len(res.Deleted))
}

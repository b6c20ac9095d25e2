package raftjournal

import (
	"fmt"
	"slices"

	"github.com/zk2raft/zk2raft/znode"
)

// sessionIDTag is the top byte of journal-assigned session ids. ZooKeeper puts its
// server id there (1–254 in practice with extended types), so a journal id only
// collides with a ZooKeeper session of a server numbered 0x7A; ids already in
// the table or owning ephemerals are skipped anyway.
const sessionIDTag = 0x7A

// sessionIDFor derives a session id from the log index of the CreateSession
// entry, which is unique for the life of the journal, so an expired id is never
// handed out again.
func (s *state) sessionIDFor(index uint64) int64 {
	id := int64(uint64(sessionIDTag)<<56 | index&0x00FF_FFFF_FFFF_FFFF)
	for id == 0 || s.sessions[id] != nil || s.t.ephemerals[id] != nil ||
		znode.EphemeralTypeOf(id, true) != znode.Ephemeral {
		id++
	}
	return id
}

func (s *state) applyCreateSession(c *CreateSession, index uint64, res *Result) {
	if c.TimeoutMs <= 0 {
		res.Err = fmt.Errorf("%w: session timeout %d ms", ErrBadCommand, c.TimeoutMs)
		return
	}
	id := s.sessionIDFor(index)
	res.Zxid = s.mint() // createSession is a txn in ZooKeeper too
	s.sessions[id] = &session{timeoutMs: c.TimeoutMs}
	res.Session = id
	s.logDigest(res.Zxid)
}

func (s *state) applyCloseSession(c *CloseSession, res *Result) {
	if s.sessions[c.Session] == nil {
		res.Err = &OpError{Op: OpDelete, Path: fmt.Sprintf("session 0x%x", c.Session), Code: CodeSessionExpired}
		return
	}
	res.Zxid = s.closeSession(c.Session, res)
}

func (s *state) applyExpireSessions(c *ExpireSessions, res *Result) {
	for _, id := range c.Sessions {
		if s.sessions[id] != nil {
			res.Zxid = s.closeSession(id, res)
		}
	}
}

// closeSession ends a session with one zxid, deleting its ephemerals in path
// order, each raising its parent's pzxid (DataTree.killSession → deleteNode).
func (s *state) closeSession(id int64, res *Result) int64 {
	t := s.t
	zxid := s.mint()
	delete(s.sessions, id)
	if set := t.ephemerals[id]; len(set) > 0 {
		paths := make([]string, 0, len(set))
		for p := range set {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		for _, p := range paths {
			n := t.nodes[p]
			parent := t.nodes[znode.Parent(p)]
			if n == nil || parent == nil || n.numChildren() > 0 {
				continue // cannot happen: ephemerals have no children
			}
			t.deleteLeaf(p, n, parent, zxid, nil)
			res.Deleted = append(res.Deleted, p)
		}
	}
	s.logDigest(zxid)
	return zxid
}

// eligibleForCleanup is ContainerManager's test, at time now (ms): an empty
// container that once had a child, or an empty TTL node not modified for longer
// than its TTL.
func eligibleForCleanup(n *node, now int64) bool {
	if n.numChildren() > 0 {
		return false
	}
	switch znode.EphemeralTypeOf(n.owner, true) {
	case znode.Container:
		return n.cversion > 0
	case znode.TTL:
		ttl := znode.TTLMillis(n.owner)
		return ttl != 0 && now-n.mtime > ttl
	}
	return false
}

func (s *state) applyCleanup(c *CleanupNodes, res *Result) {
	if s.phase == PhaseShadow {
		res.Err = fmt.Errorf("%w: container and TTL clean-up is ZooKeeper's in phase %s", ErrWrongPhase, s.phase)
		return
	}
	t := s.t
	for _, p := range c.Paths {
		n := t.nodes[p]
		if n == nil || !eligibleForCleanup(n, c.Time) {
			continue
		}
		parent := t.nodes[znode.Parent(p)]
		if parent == nil {
			continue
		}
		zxid := s.mint()
		t.deleteLeaf(p, n, parent, zxid, nil)
		res.Zxid = zxid
		res.Deleted = append(res.Deleted, p)
		s.logDigest(zxid)
	}
}

// CleanupCandidates returns up to limit (0: no limit) paths of containers and TTL
// nodes eligible for deletion at now (ms since the Unix epoch), sorted, for the
// leader to commit in a CleanupNodes entry.
func (f *FSM) CleanupCandidates(now int64, limit int) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.s.t
	var out []string
	for _, set := range []map[string]struct{}{t.containers, t.ttls} {
		for p := range set {
			if n := t.nodes[p]; n != nil && eligibleForCleanup(n, now) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// SessionInfo describes one session.
type SessionInfo struct {
	ID         int64
	TimeoutMs  int32
	Ephemerals int
}

// Sessions returns the session table, sorted by id. The leader's session tracker
// starts every session's expiry clock from its timeout when it takes over.
func (f *FSM) Sessions() []SessionInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]SessionInfo, 0, len(f.s.sessions))
	for id, s := range f.s.sessions {
		out = append(out, SessionInfo{ID: id, TimeoutMs: s.timeoutMs, Ephemerals: len(f.s.t.ephemerals[id])})
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Ephemerals returns the paths of a session's ephemeral nodes, sorted
// (getEphemerals).
func (f *FSM) Ephemerals(session int64) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	set := f.s.t.ephemerals[session]
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

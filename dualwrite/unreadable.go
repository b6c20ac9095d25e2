package dualwrite

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/exporter"
)

// Nodes the reconciler cannot read.
//
// A node whose ACL denies the reconciler's credentials READ (NoAuth), or
// ADMIN (ZooKeeper masks its ACL), cannot be compared or repaired. It must not
// stop the rest: an event check on it is not retried, a repair pass repairs
// everything else and lists it, and both are reported (Stats.Unreadable,
// zk2raft_reconcile_unreadable_nodes, /status) until a check reads the node
// (other credentials, a changed ACL) or a full pass no longer meets it. The
// credentials that read everything are a super digest's (--auth
// digest:super:PASSWORD, with the ensemble's
// zookeeper.DigestAuthenticationProvider.superDigest).

// ErrNodeUnreadable is returned (wrapped) by a check of a node the
// reconciler's credentials cannot read: NoAuth, or a masked ACL the journal
// cannot stand in for (exporter.ErrACLMasked).
var ErrNodeUnreadable = errors.New("dualwrite: the reconciler's credentials cannot read the node")

// maxUnreadableTracked bounds the unreadable paths remembered; past it only
// the count grows.
const maxUnreadableTracked = 10_000

// unreadableSet is the nodes the reconciler could not read.
type unreadableSet struct {
	mu    sync.Mutex
	paths map[string]unreadableEntry
	extra int64 // beyond maxUnreadableTracked (from a pass's count)
}

type unreadableEntry struct {
	why string
	at  time.Time // when it was found
}

// isUnreadable reports whether err says the credentials cannot read a node.
func isUnreadable(err error) bool {
	return errors.Is(err, ErrNodeUnreadable) || errors.Is(err, exporter.ErrACLMasked)
}

// noteUnreadable records path as unreadable if err says so, and reports
// whether it did. A path newly recorded is logged.
func (r *Reconciler) noteUnreadable(path string, err error) bool {
	if !isUnreadable(err) {
		return false
	}
	u := &r.unreadable
	u.mu.Lock()
	if u.paths == nil {
		u.paths = make(map[string]unreadableEntry)
	}
	_, had := u.paths[path]
	if len(u.paths) < maxUnreadableTracked || had {
		u.paths[path] = unreadableEntry{why: err.Error(), at: time.Now()}
	}
	n := len(u.paths)
	u.mu.Unlock()
	r.metrics.unreadable.Set(float64(n))
	if !had {
		r.logger.Warn("node unreadable with the reconciler's credentials: it is not compared or repaired (give the reconciler credentials that read every node: a super digest)",
			"path", path, "error", err)
	}
	return true
}

// readable forgets path as unreadable (a check read it).
func (r *Reconciler) readable(path string) {
	u := &r.unreadable
	u.mu.Lock()
	_, had := u.paths[path]
	delete(u.paths, path)
	n := len(u.paths)
	u.mu.Unlock()
	if had {
		r.metrics.unreadable.Set(float64(n))
	}
}

// resetUnreadable replaces the set with what a full pass that started at
// start found: paths (and count, which may exceed them). Nodes found
// unreadable since start (by event checks) stay.
func (r *Reconciler) resetUnreadable(found map[string]string, count int64, start time.Time) {
	u := &r.unreadable
	u.mu.Lock()
	next := make(map[string]unreadableEntry, len(found))
	for p, e := range u.paths {
		if e.at.After(start) {
			next[p] = e
		}
	}
	for p, why := range found {
		if _, ok := next[p]; !ok {
			next[p] = unreadableEntry{why: why, at: start}
		}
	}
	u.paths = next
	u.extra = max(count-int64(len(found)), 0)
	n := int64(len(next)) + u.extra
	u.mu.Unlock()
	r.metrics.unreadable.Set(float64(n))
}

// unreadableStats returns the count and the first paths, sorted.
func (r *Reconciler) unreadableStats(limit int) (int64, []string) {
	u := &r.unreadable
	u.mu.Lock()
	defer u.mu.Unlock()
	paths := slices.Sorted(maps.Keys(u.paths))
	if len(paths) > limit {
		paths = paths[:limit]
	}
	return int64(len(u.paths)) + u.extra, paths
}

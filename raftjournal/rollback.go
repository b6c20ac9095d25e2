package raftjournal

import (
	"fmt"
	"slices"

	"github.com/zk2raft/zk2raft/znode"
)

// The rollback (primary → shadow, SetPhase.Rollback) and the journal →
// ZooKeeper zxid map. See "Rollback" in the package documentation.

// ZxidPoint says that ZooKeeper, at its zxid ZooKeeper, held the tree the
// journal held at its zxid Journal (every journal write up to Journal, none
// after it): a MirrorAck's ZooKeeper zxid against the journal zxid of the
// last record it acknowledged.
type ZxidPoint struct {
	Journal   int64 `json:"journal"`
	ZooKeeper int64 `json:"zookeeper"`
}

// ZxidPeriod is one primary period's part of the map: the journal zxids in
// (From, To] were minted in it (To is 0 while it lasts), and Points, in
// increasing order of both zxids, start with (From, ZooKeeper's zxid at the
// change to primary).
type ZxidPeriod struct {
	From   int64       `json:"from"`
	To     int64       `json:"to"`
	Points []ZxidPoint `json:"points"`
}

// maxZxidPoints bounds a period's points; past it every other point is
// dropped (the map gets coarser, never wrong: see Translate). maxZxidPeriods
// bounds the periods kept (the oldest go first).
const (
	maxZxidPoints  = 1024
	maxZxidPeriods = 16
)

// TranslateZxid maps a journal zxid to the ZooKeeper zxid at which ZooKeeper
// held the state the journal held at it, rounded down to the last point
// known: ZooKeeper had at most what the client saw, so a lastZxidSeen
// rewritten this way is never ahead of ZooKeeper, and a watch re-registered
// with it fires for every change the client missed (and perhaps for one it
// had seen: a spurious event, never a missed one). ok is false for a zxid no
// primary period minted (a ZooKeeper zxid, or one beyond the map), which is
// left alone.
func TranslateZxid(periods []ZxidPeriod, z int64) (int64, bool) {
	for i := len(periods) - 1; i >= 0; i-- {
		p := &periods[i]
		if z <= p.From || (p.To != 0 && z > p.To) || len(p.Points) == 0 {
			continue
		}
		j, found := slices.BinarySearchFunc(p.Points, z, func(pt ZxidPoint, z int64) int {
			switch {
			case pt.Journal < z:
				return -1
			case pt.Journal > z:
				return 1
			}
			return 0
		})
		if !found {
			j-- // the last point below z; Points[0].Journal == From < z
		}
		return p.Points[max(j, 0)].ZooKeeper, true
	}
	return z, false
}

// ZxidMap returns a copy of the journal → ZooKeeper zxid map, oldest period
// first.
func (f *FSM) ZxidMap() []ZxidPeriod {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return cloneZxidMap(f.s.zmap)
}

func cloneZxidMap(m []ZxidPeriod) []ZxidPeriod {
	out := slices.Clone(m)
	for i := range out {
		out[i].Points = slices.Clone(out[i].Points)
	}
	return out
}

// zxidMapStart opens a period at the change to primary (after the epoch is
// fixed): journal zxids above the last one minted belong to it, and ZooKeeper
// held the journal's tree at the largest source zxid seen (the cutover's proof).
func (s *state) zxidMapStart() {
	from := int64(uint64(s.epoch)<<32 | uint64(s.counter))
	s.zmap = append(s.zmap, ZxidPeriod{From: from, Points: []ZxidPoint{{Journal: from, ZooKeeper: s.maxSourceZxid}}})
	if len(s.zmap) > maxZxidPeriods {
		s.zmap = slices.Delete(s.zmap, 0, len(s.zmap)-maxZxidPeriods)
	}
}

// zxidMapPoint records what a MirrorAck says: ZooKeeper at zk holds the
// journal's writes up to journal zxid j.
func (s *state) zxidMapPoint(j, zk int64) {
	if len(s.zmap) == 0 {
		return
	}
	p := &s.zmap[len(s.zmap)-1]
	if p.To != 0 || len(p.Points) == 0 {
		return
	}
	last := p.Points[len(p.Points)-1]
	if j <= last.Journal || zk < last.ZooKeeper {
		return
	}
	p.Points = append(p.Points, ZxidPoint{Journal: j, ZooKeeper: zk})
	if len(p.Points) > maxZxidPoints {
		// Keep the first and the last; drop every other one between.
		kept := p.Points[:1]
		for i := 2; i < len(p.Points)-1; i += 2 {
			kept = append(kept, p.Points[i])
		}
		kept = append(kept, p.Points[len(p.Points)-1])
		p.Points = kept
	}
}

// zxidMapEnd closes the open period at a rollback: everything minted so far
// is its, and ZooKeeper holds all of it at zk (the last ack's zxid).
func (s *state) zxidMapEnd(zk int64) {
	if len(s.zmap) == 0 {
		return
	}
	p := &s.zmap[len(s.zmap)-1]
	if p.To != 0 {
		return
	}
	p.To = max(p.From, int64(uint64(s.epoch)<<32|uint64(s.counter)))
	if last := p.Points[len(p.Points)-1]; p.To > last.Journal && zk >= last.ZooKeeper {
		p.Points = append(p.Points, ZxidPoint{Journal: p.To, ZooKeeper: zk})
	}
}

// RollbackResult is what a rollback's SetPhase did to the journal's state
// (Result.Rollback).
type RollbackResult struct {
	// From and To bound the journal zxids of the primary period that ended;
	// Base is ZooKeeper's zxid at its start, AckedZkZxid ZooKeeper's zxid of
	// the last journal write (where ZooKeeper held everything the journal
	// had).
	From, To, Base, AckedZkZxid int64
	// Rebased counts the nodes whose journal-epoch zxids were lowered to
	// Base, so that ZooKeeper's copies (an import, a repair pass, the
	// proxies' mirrors) replace them.
	Rebased int
	// ClosedSessions are the journal-minted sessions the rollback ended
	// (their ephemerals are in Result.Deleted); Returned the adopted
	// ZooKeeper sessions handed back to ZooKeeper (mirrored sessions again).
	ClosedSessions []int64
	Returned       int
}

// applyRollback brings the state of a journal leaving primary back to
// shadow's rules (see "Rollback" in the package documentation). The outbox
// is empty (applySetPhase checked it).
func (s *state) applyRollback(res *Result) {
	rb := &RollbackResult{AckedZkZxid: s.mirror.ackedZkZxid}
	if n := len(s.zmap); n > 0 && s.zmap[n-1].To == 0 {
		rb.From, rb.Base = s.zmap[n-1].From, s.zmap[n-1].Points[0].ZooKeeper
	} else {
		// A journal made primary before the map existed: its epoch is above
		// every source epoch, so its own zxids are those above the largest
		// source zxid.
		rb.From, rb.Base = s.maxSourceZxid, s.maxSourceZxid
	}
	// Journal-minted sessions cannot live on in ZooKeeper: end them, as the
	// reverse mirror ends their ZooKeeper twins (their ephemerals go on both
	// sides). Adopted ZooKeeper sessions go back to ZooKeeper.
	ids := make([]int64, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if JournalSession(id) {
			s.closeSession(id, res)
			rb.ClosedSessions = append(rb.ClosedSessions, id)
			continue
		}
		s.sourceSessions[id] = s.sessions[id].timeoutMs
		delete(s.sessions, id)
		rb.Returned++
	}
	s.zxidMapEnd(max(rb.AckedZkZxid, rb.Base))
	if n := len(s.zmap); n > 0 {
		rb.To = s.zmap[n-1].To
	}
	rb.Rebased = s.t.rebase(rb.From, rb.Base)
	s.t.rebased = rebaseWindowOf(s.zmap)
	// The digests logged in primary are at journal zxids, which ZooKeeper's
	// digests will never be compared at; and the tree they describe is gone.
	s.digests.dropAbove(rb.Base)
	res.Rollback = rb
}

// rebase lowers every zxid above from in the visible tree (czxid, mzxid,
// pzxid, the cversion's key) to base, keeping the digest: these were stamped
// by the journal in its own epoch, and ZooKeeper's copies of the same nodes
// carry ZooKeeper's zxids, all above base. Lowered, the journal's copy loses
// every merge with ZooKeeper's (a newer incarnation, a newer mzxid, a larger
// pzxid), so the first import or mirror of each node takes it over. It
// returns the number of nodes changed.
func (t *tree) rebase(from, base int64) int {
	n := 0
	for p, nd := range t.nodes {
		key := nd.cvKey()
		if nd.czxid <= from && nd.mzxid <= from && nd.pzxid <= from && key <= from {
			continue
		}
		t.pre(p, nd)
		if nd.czxid > from {
			nd.czxid = base
		}
		if nd.mzxid > from {
			nd.mzxid = base
		}
		if nd.pzxid > from {
			nd.pzxid = base
		}
		if key > from {
			key = base
		}
		pinCvKey(nd, key)
		t.post(p, nd)
		n++
	}
	return n
}

// rebaseWindow is what the last rollback lowered: nodes the journal created
// or changed in the primary period now carry base, and ZooKeeper's copies
// of them were made by the reverse mirror at zxids in (base, upTo].
type rebaseWindow struct{ base, upTo int64 }

// rebaseWindowOf derives the window from the zxid map's last closed period.
func rebaseWindowOf(m []ZxidPeriod) rebaseWindow {
	if n := len(m); n > 0 && m[n-1].To != 0 {
		p := &m[n-1]
		return rebaseWindow{base: p.Points[0].ZooKeeper, upTo: p.Points[len(p.Points)-1].ZooKeeper}
	}
	return rebaseWindow{}
}

// twin reports whether an observation of an incarnation created at c is
// ZooKeeper's copy of the rebased node n: n was created in the period (its
// czxid lowered to base), and ZooKeeper's copy by the reverse mirror during
// it (every write to ZooKeeper in the period was the mirror's, in the
// journal's order, so ZooKeeper's last incarnation there is the journal's).
// Taken as the same incarnation, it replaces n's czxid and ctime and merges
// the rest, instead of killing n and its subtree as an older incarnation;
// the raw owner stays the journal's (the client API shows a container's or
// TTL node's as 0).
func (w rebaseWindow) twin(n *node, c int64) bool {
	return w.upTo != 0 && n.czxid == w.base && c > w.base && c <= w.upTo
}

// appendZxidMap encodes the map (snapshot record 74): period count, then per
// period from, to, point count, points (journal, zookeeper).
func appendZxidMap(b []byte, m []ZxidPeriod) []byte {
	b = appendUvarint(b, uint64(len(m)))
	for _, p := range m {
		b = appendVarint(b, p.From)
		b = appendVarint(b, p.To)
		b = appendUvarint(b, uint64(len(p.Points)))
		for _, pt := range p.Points {
			b = appendVarint(b, pt.Journal)
			b = appendVarint(b, pt.ZooKeeper)
		}
	}
	return b
}

func decodeZxidMap(d *decoder) []ZxidPeriod {
	n := d.count("zxid map periods", 3)
	out := make([]ZxidPeriod, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		p := ZxidPeriod{From: d.varint("from"), To: d.varint("to")}
		k := d.count("zxid map points", 2)
		p.Points = make([]ZxidPoint, 0, k)
		for j := 0; j < k && d.err == nil; j++ {
			p.Points = append(p.Points, ZxidPoint{Journal: d.varint("journal zxid"), ZooKeeper: d.varint("zookeeper zxid")})
		}
		if d.err == nil && len(p.Points) == 0 {
			d.err = fmt.Errorf("%w: zxid map period without points", ErrCorruptEntry)
		}
		out = append(out, p)
	}
	return out
}

// RebasedNodes is what the last rollback left for ZooKeeper's copies to
// replace (FSM.Rebased): the visible nodes that still carry its base zxid.
type RebasedNodes struct {
	// Base is ZooKeeper's zxid at the start of the last primary period, to
	// which the rollback lowered the journal's own zxids; UpTo is ZooKeeper's
	// zxid of the period's last journal write. Both are 0 when no rollback
	// is known (none happened, or the journal's state predates the map).
	Base, UpTo int64
	// Total counts the visible nodes whose czxid, mzxid, pzxid or cversion
	// key is Base; Paths lists the first of them (at most the limit asked),
	// in canonical order. A node ZooKeeper itself wrote at exactly Base (the
	// cutover's last write) is among them too: a superset, never less.
	Total int
	Paths []string
}

// Rebased lists the visible nodes that still carry the last rollback's base
// zxid (see "Rollback" in the package documentation): the nodes the journal
// created or changed in its own epoch that no import or mirror of
// ZooKeeper's copy has replaced yet. A rollback's rebaseline repairs those
// instead of comparing the whole tree. It scans the node table in memory
// under the read lock (tens of milliseconds at 1M nodes); limit bounds the
// paths returned (≤ 0: all).
func (f *FSM) Rebased(limit int) RebasedNodes {
	f.mu.RLock()
	w := f.s.t.rebased
	out := RebasedNodes{Base: w.base, UpTo: w.upTo}
	if w.upTo == 0 {
		f.mu.RUnlock()
		return out
	}
	for p, n := range f.s.t.nodes {
		if n.czxid == w.base || n.mzxid == w.base || n.pzxid == w.base || n.cvKey() == w.base {
			out.Paths = append(out.Paths, p)
		}
	}
	f.mu.RUnlock()
	out.Total = len(out.Paths)
	slices.SortFunc(out.Paths, znode.ComparePaths)
	if limit > 0 && len(out.Paths) > limit {
		out.Paths = out.Paths[:limit:limit]
	}
	return out
}

package verify

import (
	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/znode"
)

// Node-level comparison: what differs between two copies of a node, and
// which differences the allow rules and a live side's masking excuse.

// liveMasked reports whether a live side's ACL came back masked (sm, tm: the
// source's, the target's ACL holds a masked digest identity). A live side masks
// because the credentials lack ADMIN: its real ACL is unknown. A static side's
// masked ACL is what the side holds (an export taken without ADMIN) and is
// compared as it is.
func (c *comparison) liveMasked(sm, tm bool) bool {
	return (sm && c.si.Live) || (tm && c.ti.Live)
}

// sameNode is the fast path: every compared field equal.
func sameNode(s, t *znode.Node) bool {
	return s.Stat == t.Stat && s.NumChildren == t.NumChildren && equalData(s.Data, t.Data) && znode.EqualACLs(s.ACL, t.ACL)
}

// diffNodes lists every way t differs from s at path. aclMasked says a live
// side's ACL came back masked: the ACLs are then compared masked on both sides,
// and agreeing that far is a FieldACLMasked difference, not equality.
func diffNodes(path string, s, t *znode.Node, aclMasked bool) []Difference {
	switch {
	case s == nil && t == nil:
		return nil
	case t == nil:
		return []Difference{{Path: path, Kind: KindMissing, Source: presence(s), Target: Value{}}}
	case s == nil:
		return []Difference{{Path: path, Kind: KindExtra, Source: Value{}, Target: presence(t)}}
	}
	var out []Difference
	add := func(f Field, sv, tv Value) {
		sv.Present, tv.Present = true, true
		out = append(out, Difference{Path: path, Kind: KindMismatch, Field: f, Source: sv, Target: tv})
	}
	if !equalData(s.Data, t.Data) {
		f := FieldData
		if len(s.Data) == 0 && len(t.Data) == 0 {
			f = FieldNilData
		}
		add(f, Value{Data: s.Data}, Value{Data: t.Data})
	}
	switch {
	case aclMasked && znode.EqualACLs(exporter.MaskACL(s.ACL), exporter.MaskACL(t.ACL)):
		add(FieldACLMasked, Value{ACL: s.ACL}, Value{ACL: t.ACL})
	case !znode.EqualACLs(s.ACL, t.ACL):
		add(FieldACL, Value{ACL: s.ACL}, Value{ACL: t.ACL})
	}
	ints := []struct {
		f    Field
		s, t int64
	}{
		{FieldCzxid, s.Stat.Czxid, t.Stat.Czxid},
		{FieldMzxid, s.Stat.Mzxid, t.Stat.Mzxid},
		{FieldPzxid, s.Stat.Pzxid, t.Stat.Pzxid},
		{FieldCtime, s.Stat.Ctime, t.Stat.Ctime},
		{FieldMtime, s.Stat.Mtime, t.Stat.Mtime},
		{FieldVersion, int64(s.Stat.Version), int64(t.Stat.Version)},
		{FieldCversion, int64(s.Stat.Cversion), int64(t.Stat.Cversion)},
		{FieldAversion, int64(s.Stat.Aversion), int64(t.Stat.Aversion)},
		{FieldEphemeralOwner, s.Stat.EphemeralOwner, t.Stat.EphemeralOwner},
		{FieldNumChildren, int64(s.NumChildren), int64(t.NumChildren)},
	}
	for _, v := range ints {
		if v.s != v.t {
			add(v.f, Value{Int: v.s}, Value{Int: v.t})
		}
	}
	return out
}

func presence(n *znode.Node) Value {
	return Value{Present: true, Stat: n.Stat, DataLength: len(n.Data), NumChildren: n.NumChildren}
}

// allowFilter takes out, and accounts for, the differences an allowance
// excuses; it returns the rest.
func (c *comparison) allowFilter(diffs []Difference, st int) []Difference {
	out := diffs[:0]
	for _, d := range diffs {
		rule, origin := c.allowance(&d)
		if rule == "" {
			out = append(out, d)
			continue
		}
		c.report.Counts.Allowed++
		c.subtrees[st].Allowed++
		rc := c.allowedBy[rule]
		if rc == nil {
			rc = &RuleCount{Rule: rule, Origin: origin}
			c.allowedBy[rule] = rc
		}
		rc.Count++
		if len(c.report.Allowed) < c.cfg.MaxDiffs {
			c.report.Allowed = append(c.report.Allowed, AllowedDifference{Difference: d, Rule: rule, Origin: origin})
		}
	}
	return out
}

// allowance names the allowance that excuses d, or returns "".
func (c *comparison) allowance(d *Difference) (rule, origin string) {
	if !c.cfg.NoDefaultAllow {
		switch {
		case d.Kind == KindMismatch && d.Field == FieldEphemeralOwner && c.si.RawOwners != c.ti.RawOwners:
			raw, client, ext := d.Source.Int, d.Target.Int, c.si.ExtendedTypes
			if !c.si.RawOwners {
				raw, client, ext = d.Target.Int, d.Source.Int, c.ti.ExtendedTypes
			}
			if znode.ClientEphemeralOwner(raw, ext) == client {
				return RuleClientOwner, "default"
			}
		case d.Kind == KindMissing && c.ti.SkipsEphemerals && isSessionOwned(d.Source, c.si):
			return RuleEphemeralsSkipped, "default"
		case d.Kind == KindExtra && c.si.SkipsEphemerals && isSessionOwned(d.Target, c.ti):
			return RuleEphemeralsSkipped, "default"
		}
	}
	for i := range c.rules {
		if c.rules[i].allows(d) {
			return c.rules[i].label(), c.rules[i].Origin
		}
	}
	return "", ""
}

// isSessionOwned reports whether a node present on one side is an ephemeral
// owned by a session. A client-API side shows a non-zero owner only for those.
func isSessionOwned(v Value, side Info) bool {
	return v.Present && znode.EphemeralTypeOf(v.Stat.EphemeralOwner, side.RawOwners && side.ExtendedTypes) == znode.Ephemeral
}

// addDifferences counts differences and lists them within the limits.
// immediate says they were found by the merge (in canonical order), not
// after re-checking.
func (c *comparison) addDifferences(diffs []Difference, st int, immediate bool) {
	r := c.report
	sub := c.subtrees[st]
	for _, d := range diffs {
		r.Counts.Differences++
		sub.Differences++
		switch d.Kind {
		case KindMissing:
			r.Counts.Missing++
		case KindExtra:
			r.Counts.Extra++
		case KindMismatch:
			r.Counts.Mismatch++
			r.Counts.Fields[d.Field]++
		}
		// Immediate differences arrive in order, so the first MaxDiffs of them
		// are the ones to list; re-checked ones may come before them and are
		// merged in by finish.
		if !immediate || len(r.Differences) < c.cfg.MaxDiffs {
			r.Differences = append(r.Differences, d)
		}
		if !immediate || sub.listed < c.cfg.MaxSubtreeDiffs {
			sub.First = append(sub.First, d)
			if immediate {
				sub.listed++
			}
		}
	}
}

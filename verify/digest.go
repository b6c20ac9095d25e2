package verify

import (
	"context"
	"fmt"
	"slices"

	"github.com/zk2raft/zk2raft/znode"
)

// PristineSystemDigest is the digest of ZooKeeper's /zookeeper node as every
// server holds it: empty data and an all-zero stat (its children contribute
// nothing). Exports of the whole tree leave /zookeeper out and ZooKeeper's own
// digest counts it, so comparing the two adds it to the export's.
var PristineSystemDigest = znode.NodeDigest("/zookeeper", []byte{}, znode.Stat{})

// digestPoint is one digest a side offers, with what it covers.
type digestPoint struct {
	zxid   int64
	digest znode.Digest
	exact  bool
	nodes  int64
	cov    Coverage
	how    string
}

// digestPoints returns the digest a side offers of its *current* state: its
// Current, or else the newest History entry when that is at the side's
// latest zxid (Zxid, which must be known). Older history is never used:
// equal digests at a zxid both sides have moved past prove nothing about
// either side now (issue 11: a journal stopped at 0x…106 and ZooKeeper at
// 0x…3459 were reported EQUAL from their digests at 0x…100).
func digestPoints(d DigestInfo) []digestPoint {
	if d.HasCurrent {
		return []digestPoint{{zxid: d.Zxid, digest: d.Current, exact: d.Exact, nodes: d.Nodes, cov: d.Coverage, how: d.Method}}
	}
	if n := len(d.History); n > 0 && d.Zxid != 0 && d.History[n-1].Zxid == d.Zxid {
		h := d.History[n-1]
		return []digestPoint{{zxid: h.Zxid, digest: h.Digest, exact: true, nodes: -1, cov: WholeTree(), how: d.Method + " (logged at its latest zxid)"}}
	}
	return nil
}

// latestZxid describes a side's latest state for a fallback's reason.
func latestZxid(d DigestInfo) string {
	switch {
	case d.HasCurrent:
		return "a digest at its latest zxid " + FormatZxid(d.Zxid)
	case d.Zxid != 0:
		s := "latest zxid " + FormatZxid(d.Zxid) + ", no digest there"
		if n := len(d.History); n > 0 {
			s += " (newest logged at " + FormatZxid(d.History[n-1].Zxid) + ")"
		}
		return s
	}
	return "latest zxid unknown"
}

// compareDigests tries the constant-time comparison. It returns false, with
// the reason noted for the walk that follows, when the sides do not offer
// digests that cover the same nodes at a comparable point.
func (c *comparison) compareDigests(ctx context.Context) (bool, error) {
	infos := make([]DigestInfo, 2)
	for i, side := range []struct {
		name string
		src  Source
		uri  string
	}{{"source", c.src, c.si.URI}, {"target", c.tgt, c.ti.URI}} {
		d, ok := side.src.(Digester)
		if !ok {
			return false, c.digestFallback("the %s (%s) offers no digest without a walk", side.name, side.uri)
		}
		info, err := d.Digests(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, c.digestFallback("the %s's digest is not available: %v", side.name, err)
		}
		infos[i] = info
	}
	want := c.scope.Exclude
	want = slices.DeleteFunc(slices.Clone(want), func(p string) bool { return p == "/zookeeper" })

	sp, tp := digestPoints(infos[0]), digestPoints(infos[1])
	static := !c.si.Live && !c.ti.Live
	var best *DigestResult
	var why string
	for _, a := range sp {
		for _, b := range tp {
			res, reason := c.matchPoints(a, b, want, static)
			if res == nil {
				if why == "" || why == errNoCommonZxid {
					why = reason
				}
				continue
			}
			if best == nil || res.Zxid > best.Zxid {
				best = res
			}
		}
	}
	if best == nil {
		switch why {
		case "":
			why = "a side offers no digest"
		case errNoCommonZxid:
			why = fmt.Sprintf("the sides' current states are at different zxids (source: %s; target: %s)", zxidRange(sp), zxidRange(tp))
		}
		if len(sp) == 0 || len(tp) == 0 {
			why = fmt.Sprintf("digests are compared only at both sides' current state (source: %s; target: %s)", latestZxid(infos[0]), latestZxid(infos[1]))
		}
		return false, c.digestFallback("%s", why)
	}
	// A digest from a stored trailer proves nothing about a damaged body:
	// read it first, unless told to trust it.
	for _, side := range []struct {
		name string
		src  Source
	}{{"source", c.src}, {"target", c.tgt}} {
		ic, ok := side.src.(IntegrityChecker)
		if !ok {
			continue
		}
		if c.cfg.TrustTrailer {
			c.note("the %s's digest was trusted from its trailer without reading the file (--trust-trailer): damage to its body would not show", side.name)
			continue
		}
		what, err := ic.CheckIntegrity(ctx)
		if err != nil {
			return false, fmt.Errorf("verify: %s: %w", side.name, err)
		}
		c.note("%s", what)
	}
	c.report.Digest = best
	c.report.Source.Nodes, c.report.Target.Nodes = best.Source.Nodes, best.Target.Nodes
	if best.Zxid != 0 {
		for i, side := range []string{"source", "target"} {
			if infos[i].Zxid > best.Zxid {
				c.note("the %s has moved on to zxid %s since the compared zxid %s; writes after it are not covered",
					side, FormatZxid(infos[i].Zxid), FormatZxid(best.Zxid))
			}
		}
	}
	for _, s := range []DigestSide{best.Source, best.Target} {
		if s.Adjusted {
			c.note("the pristine digest of the /zookeeper node (%v) was added to a side whose export leaves /zookeeper out", znode.Digest(PristineSystemDigest))
			break
		}
	}
	c.note("ZooKeeper's digest covers paths, data and stats, not ACLs; a full comparison also checks ACLs")
	return true, nil
}

func (c *comparison) digestFallback(format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	c.report.Digest = &DigestResult{Method: "walk", Reason: reason}
	c.cfg.Logger.Info("digest not comparable in constant time, walking both sides", "reason", reason)
	return nil
}

// matchPoints checks that two digests are comparable: the same nodes (up to
// the /zookeeper node, whose pristine digest is added where it is missing)
// and, unless both sides are static, exactly the same zxid.
func (c *comparison) matchPoints(a, b digestPoint, wantExclude []string, static bool) (*DigestResult, string) {
	root := c.scope.Root
	switch {
	case a.cov.Root != root || b.cov.Root != root:
		return nil, fmt.Sprintf("the digests cover %s and %s, the comparison %s", a.cov.Root, b.cov.Root, root)
	case !sameSet(a.cov.Exclude, wantExclude) || !sameSet(b.cov.Exclude, wantExclude):
		return nil, fmt.Sprintf("the digests leave out %v and %v, the comparison %v", a.cov.Exclude, b.cov.Exclude, wantExclude)
	case a.cov.SkipsEphemerals != b.cov.SkipsEphemerals:
		return nil, "one side's digest leaves out ephemeral nodes and the other's does not"
	}
	if !static {
		switch {
		case !a.exact || !b.exact:
			return nil, "a live side is compared by zxid, and the snapshot's digest is fuzzy (writes landed during its export)"
		case a.zxid != b.zxid:
			return nil, errNoCommonZxid
		}
	}
	sa := DigestSide{Digest: a.digest, How: a.how, Zxid: a.zxid, Exact: a.exact, Nodes: a.nodes}
	sb := DigestSide{Digest: b.digest, How: b.how, Zxid: b.zxid, Exact: b.exact, Nodes: b.nodes}
	if a.cov.SystemNode != b.cov.SystemNode {
		if root != "/" {
			return nil, "the digests disagree on the /zookeeper node"
		}
		if !a.cov.SystemNode {
			sa.Digest.Add(PristineSystemDigest)
			sa.Adjusted = true
		} else {
			sb.Digest.Add(PristineSystemDigest)
			sb.Adjusted = true
		}
	}
	res := &DigestResult{Method: "constant-time", Source: sa, Target: sb, Equal: sa.Digest == sb.Digest}
	if a.zxid == b.zxid {
		res.Zxid = a.zxid
	}
	// Equal digests with different node counts (where both are counted over
	// the same nodes) would be a collision; trust the counts.
	if res.Equal && !sa.Adjusted && !sb.Adjusted && sa.Nodes >= 0 && sb.Nodes >= 0 && sa.Nodes != sb.Nodes {
		res.Equal = false
	}
	return res, ""
}

// errNoCommonZxid is matchPoints' reason for points at different zxids, which
// compareDigests replaces with the ranges both sides offer.
const errNoCommonZxid = "no common zxid"

func zxidRange(ps []digestPoint) string {
	var zs []int64
	for _, p := range ps {
		if p.exact {
			zs = append(zs, p.zxid)
		}
	}
	switch len(zs) {
	case 0:
		return "no exact digest"
	case 1:
		return "zxid " + FormatZxid(zs[0])
	}
	return fmt.Sprintf("%d digests, zxids %s..%s", len(zs), FormatZxid(slices.Min(zs)), FormatZxid(slices.Max(zs)))
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// finishDigestWalk fills in the digest part after a walk.
func (c *comparison) finishDigestWalk() {
	r := c.report
	d := r.Digest
	if d == nil {
		d = &DigestResult{Method: "walk"}
		r.Digest = d
	}
	d.Source = DigestSide{Digest: r.Source.Digest, How: "computed from the walk", Nodes: r.Source.Nodes}
	d.Target = DigestSide{Digest: r.Target.Digest, How: "computed from the walk", Nodes: r.Target.Nodes}
	d.Equal = d.Source.Digest == d.Target.Digest
	switch {
	case !d.Equal && r.Counts.Differences == 0:
		c.note("the digests differ only through allowed or converged differences; the verdict rests on the node comparison")
	case d.Equal && r.Counts.Differences > 0:
		c.note("the digests agree, but ZooKeeper's digest does not cover ACLs; the verdict rests on the node comparison")
	}
}

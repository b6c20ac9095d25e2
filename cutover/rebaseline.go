package cutover

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// The rollback's rebaseline (step 8 of "Rollback" in the package
// documentation): after the switch back, the journal is repaired from
// ZooKeeper and proven equal to it.
//
// What differs after the commit is known: the nodes the journal wrote in its
// own epoch (the commit lowered their zxids to ZooKeeper's zxid at the
// cutover, so each still carries that base zxid until ZooKeeper's copy
// replaces it: raftjournal's FSM.Rebased), the writes ZooKeeper took around
// the proxies (the sentry's split-brain records), and ZooKeeper's /zookeeper
// node. Those are repaired node by node, without a walk of either side. The
// claim of equality then comes from a comparison of the whole state all the
// same: ZooKeeper's own tree digest against the journal's, at a zxid made
// after the repairs (an alignment write through a proxy that relays to
// ZooKeeper again). Anything the targeted repair missed (a node changed in
// the journal behind everyone's back, a ZooKeeper-side change no record
// names) makes the digests differ, and the rebaseline falls back to the full
// comparison (verify's walk of both sides, repair passes) that it always did.
//
// Under a steady write load through the proxies ZooKeeper moves on while the
// journal follows by the proxies' mirrors, so no node-by-node comparison
// settles on the nodes being written. The digests are compared at one zxid
// both sides logged (ZooKeeper every 128 zxids, the journal when it applied
// that txn in order), at or after the alignment: equal there means the
// journal held ZooKeeper's tree as of that zxid, after the repairs; the
// report names that zxid and says the writes after it are not covered (the
// proxies mirror them, their reconcilers repair anything else). That is the
// rollback's success; only a digest that differs, or none comparable at all
// after the full comparison, ends it with an error.

// How the rebaseline's report begins, by what it compared. ZooKeeper's tree
// digest covers every node's path, data and stat (the ACL version among
// them) but not its ACL entries, so a digest proof says so.
const (
	rebaselineByDigest = "the journal matches ZooKeeper by digest"
	rebaselineByNodes  = "the journal equals ZooKeeper node by node"
	digestScope        = "ZooKeeper's digest covers each node's path, data and stat, not its ACL entries: the repairs compared the ACLs of the nodes they checked, and `zk2raft verify` compares every one"
)

// rebaselineClean says whether a rebaseline report claims equality.
func rebaselineClean(detail string) bool {
	return strings.HasPrefix(detail, rebaselineByDigest) || strings.HasPrefix(detail, rebaselineByNodes)
}

// The rebaseline's bounds.
const (
	// maxRebaselineTargets bounds the targeted repair: a primary period that
	// wrote more nodes is compared whole.
	maxRebaselineTargets = 100_000
	// maxRebaselinePasses bounds the full comparisons.
	maxRebaselinePasses = 5
	// maxProofAlignments bounds the alignments of one digest proof.
	maxProofAlignments = 5
)

// rebaseline repairs the journal from ZooKeeper and says how it knows they
// are equal; see above. It claims equality only from a comparison of both
// whole states made after its repairs: equal digests at a common zxid, or a
// node-by-node pass that found nothing. fenceMoved says the rollback lifted
// an active fence that changed ACLs in ZooKeeper: every fenced node's ACL
// version moved there and not in the journal, so it compares every node at
// once.
func (r *run) rebaseline(ctx context.Context, fenceMoved bool) (string, error) {
	hosts := r.rep.Gates.ZooKeeper
	if len(hosts) == 0 {
		return "", errors.New("no ZooKeeper hosts known (no proxy registered; give --zk)")
	}
	view := dualwrite.FailoverView(r.cluster.AdminAddrs, func(addr string) *raftjournal.AdminClient {
		return r.admin(addr).WithZooKeeperAuth(r.o.ZKAuth)
	})
	rc := dualwrite.DefaultReconcilerConfig()
	rc.ZK, rc.Auth, rc.Journal, rc.View, rc.Logger = hosts, r.o.ZKAuth, r.cluster, view, r.o.Logger
	rec, err := dualwrite.NewReconciler(rc)
	if err != nil {
		return "", err
	}
	defer rec.Close()
	start := time.Now()
	if err := r.syncZooKeeperNode(ctx, hosts); err != nil {
		return "", err
	}
	elapsed := func() string { return time.Since(start).Round(time.Millisecond).String() }

	// 1. The targeted repair, proven by the digests.
	var fellBack string
	var targets []string
	var what string
	if !fenceMoved {
		targets, what, err = r.rebaselineTargets(ctx)
	}
	switch {
	case fenceMoved:
		fellBack = "no targeted repair: lifting the fence moved the ACL version of every fenced node in ZooKeeper"
	case err != nil && ctx.Err() != nil:
		return "", err
	case err != nil:
		fellBack = "no targeted repair (" + err.Error() + ")"
	default:
		rs, err := rec.RepairPaths(ctx, targets)
		if err != nil {
			if ctx.Err() != nil {
				return "", err
			}
			fellBack = "the targeted repair failed (" + err.Error() + ")"
			break
		}
		if rs.Unreadable > 0 {
			return "", unreadableErr(rs)
		}
		done := fmt.Sprintf("%s: %d checked, %d repaired", what, rs.Compared, rs.NodeRepairs+rs.DeleteRepairs)
		if rs.Failed > 0 {
			done += fmt.Sprintf(", %d checks failed", rs.Failed)
		}
		repairedIn := elapsed()
		proofStart := time.Now()
		proof, ok, why, err := r.digestProof(ctx, rec)
		if err != nil {
			return "", err
		}
		if ok {
			return fmt.Sprintf("%s: %s; targeted repair of %s (%s: repaired in %s, digest proof %s); %s",
				rebaselineByDigest, proof, done, elapsed(), repairedIn, time.Since(proofStart).Round(time.Millisecond), digestScope), nil
		}
		fellBack = fmt.Sprintf("targeted repair of %s not proven: %s", done, why)
	}
	r.o.Logger.Warn("rollback: rebaseline: comparing every node", "why", fellBack)

	// 2. The full comparison: repair passes until one finds nothing, or the
	// digests prove the rest equal while writes go on.
	repaired := 0
	var why string
	for pass := 1; pass <= maxRebaselinePasses; pass++ {
		rs, err := rec.RepairAll(ctx, "/")
		if err != nil {
			if ctx.Err() != nil || pass == maxRebaselinePasses {
				return "", err
			}
			r.o.Logger.Warn("rollback: rebaseline pass failed; comparing again", "pass", pass, "err", err)
			continue
		}
		repaired += rs.NodeRepairs + rs.DeleteRepairs
		switch {
		case rs.Unreadable > 0:
			return "", unreadableErr(rs)
		case rs.Failed > 0:
			r.o.Logger.Warn("rollback: rebaseline pass had failed checks; comparing again", "pass", pass, "failed", rs.Failed)
		case rs.Differences == 0 && rs.Compared > 0:
			return fmt.Sprintf("%s: %d nodes compared, none differs (%d repaired in %d full passes, %s; %s)",
				rebaselineByNodes, rs.Compared, repaired, pass, elapsed(), fellBack), nil
		}
		// Nodes written without pause through the proxies never settle in
		// a comparison; the digests, at one zxid, do.
		proof, ok, w, err := r.digestProof(ctx, rec)
		if err != nil {
			return "", err
		}
		if ok {
			return fmt.Sprintf("%s: %s; %d full repair passes (the last found %d differences; %d repaired in all; %s; %s); %s",
				rebaselineByDigest, proof, pass, rs.Differences, repaired, elapsed(), fellBack, digestScope), nil
		}
		why = w
	}
	return "", fmt.Errorf("differences remained after %d comparisons (%d repairs), and %s (%s): writes around the proxies or a divergence the merge does not resolve; see `zk2raft verify`",
		maxRebaselinePasses, repaired, why, fellBack)
}

func unreadableErr(rs dualwrite.RepairStats) error {
	return fmt.Errorf("%d nodes unreadable with the credentials given (--auth with ZooKeeper's super digest), e.g. %v", rs.Unreadable, rs.UnreadablePaths)
}

// rebaselineTargets lists what the targeted repair checks: the nodes that
// still carry the rollback's base zxid (read from the journal after a
// barrier), every path the sentry recorded as written around the proxies and
// its parent. what describes them. An error means no targeted repair: the
// journal does not know the window, or it is too large.
func (r *run) rebaselineTargets(ctx context.Context) (targets []string, what string, err error) {
	var rb raftjournal.RebasedNodes
	var errs []error
	ok := false
	for _, m := range r.cluster.AdminAddrs() {
		if rb, err = r.admin(m).WithZooKeeperAuth(r.o.ZKAuth).Rebased(ctx, maxRebaselineTargets, true); err == nil {
			ok = true
			break
		}
		errs = append(errs, err)
	}
	switch {
	case !ok:
		return nil, "", fmt.Errorf("the journal's rebased nodes: %w", errors.Join(errs...))
	case rb.UpTo == 0:
		return nil, "", errors.New("the journal knows no rollback window")
	case rb.Total > len(rb.Paths):
		return nil, "", fmt.Errorf("%d nodes carry the rollback's base zxid, more than the %d a targeted repair takes", rb.Total, maxRebaselineTargets)
	}
	js, err := r.journalState(ctx)
	if err != nil {
		return nil, "", err
	}
	sb := reversemirror.SplitBrainWrites(js.Checkpoints)
	set := make(map[string]bool, len(rb.Paths)+2*len(sb))
	for _, p := range rb.Paths {
		set[p] = true
	}
	for _, w := range sb {
		if znode.ValidatePath(w.Path) == nil {
			set[w.Path] = true
			if q := znode.Parent(w.Path); q != "" {
				set[q] = true
			}
		}
	}
	for p := range set {
		if znode.IsSystemPath(p) {
			delete(set, p) // /zookeeper: syncZooKeeperNode
		}
	}
	targets = make([]string, 0, len(set))
	for p := range set {
		targets = append(targets, p)
	}
	slices.SortFunc(targets, znode.ComparePaths)
	return targets, fmt.Sprintf("%d nodes the journal wrote in its epoch (still at base zxid %#x) and %d split-brain records", rb.Total, rb.Base, len(sb)), nil
}

// digestProof compares ZooKeeper's digest with the journal's at a zxid made
// after the repairs: an alignment write through a proxy relaying to
// ZooKeeper lands on a zxid Z that is a multiple of 128 (ZooKeeper logs its
// digest there), the journal applies it (by that proxy's mirror), and the
// digests are compared at the newest zxid both logged, which must be Z or
// later. ok says equal; otherwise why says what was found. err is set only
// when ctx ended.
func (r *run) digestProof(ctx context.Context, rec *dualwrite.Reconciler) (proof string, ok bool, why string, err error) {
	via, why := r.relayingProxy(ctx)
	if via == nil {
		return "", false, why, ctx.Err()
	}
	created := false
	for attempt := 1; attempt <= maxProofAlignments; attempt++ {
		var ar alignResponse
		err := r.proxyCall(ctx, *via, http.MethodPost, "/cutover/align", alignRequest{Path: r.o.AlignPath}, &ar)
		if err != nil && !created && strings.Contains(err.Error(), "does not exist") {
			created = true
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err = createVia(cctx, via.Listen, r.o.AlignPath, r.o.ZKAuth)
			cancel()
			if err == nil {
				attempt--
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return "", false, "", ctx.Err()
			}
			return "", false, "alignment: " + err.Error(), nil
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = r.waitSourceZxid(wctx, ar.Zxid)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return "", false, "", ctx.Err()
			}
			why = err.Error()
			continue
		}
		v, err := rec.DigestCheck(ctx)
		// A txn of another connection, below a zxid the journal logged, can
		// arrive after it and drop that entry: a "different" may be
		// transient. Look again before believing it (as Inspect does).
		for again := 0; again < 3 && err == nil && v.Result == dualwrite.DigestDifferent; again++ {
			select {
			case <-ctx.Done():
				return "", false, "", ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			v, err = rec.DigestCheck(ctx)
		}
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return "", false, "", ctx.Err()
			}
			why = "digest check: " + err.Error()
		case v.Zxid < ar.Zxid:
			why = fmt.Sprintf("no digest both sides logged at or after the alignment at %#x (%s)", ar.Zxid, describeVerdict(v))
		case v.Result == dualwrite.DigestEqual:
			return fmt.Sprintf("digests equal at ZooKeeper's latest zxid %#x (%s), compared after the repairs", v.Zxid, v.ZooKeeper), true, "", nil
		case v.Result == dualwrite.DigestUnknown && v.ZooKeeper == v.Journal:
			now := "ZooKeeper has moved on since"
			if z, err := zkZxid(ctx, r.rep.Gates.ZooKeeper); err == nil {
				now = fmt.Sprintf("ZooKeeper is at %#x by now", z)
			}
			return fmt.Sprintf("digests equal at zxid %#x (%s), compared after the repairs; %s: its writes after %#x are not covered by this comparison (the proxies mirror their clients' writes into the journal, and their reconcilers repair the rest)",
				v.Zxid, v.ZooKeeper, now, v.Zxid), true, "", nil
		case v.Result == dualwrite.DigestDifferent:
			return "", false, "digests differ: " + describeVerdict(v), nil
		default:
			why = describeVerdict(v)
		}
		r.o.Logger.Info("rollback: rebaseline: digest not comparable after an alignment; aligning again", "attempt", attempt, "zxid", fmt.Sprintf("%#x", ar.Zxid), "why", why)
	}
	return "", false, fmt.Sprintf("no digest comparable after %d alignments: %s", maxProofAlignments, why), nil
}

// relayingProxy returns a registered proxy that relays to ZooKeeper and
// holds nothing (the alignment writes go through it, to be mirrored like a
// client's), or nil and why not.
func (r *run) relayingProxy(ctx context.Context) (*ProxyRecord, string) {
	var seen []string
	for _, p := range r.rep.Gates.Proxies {
		var ps ProxyState
		if err := r.proxyCall(ctx, p.Record, http.MethodGet, "/cutover/state", nil, &ps); err != nil {
			seen = append(seen, err.Error())
			continue
		}
		if ps.Tap.Backend == dualwrite.BackendZooKeeper.String() && !ps.Tap.Held {
			rec := p.Record
			return &rec, ""
		}
		seen = append(seen, fmt.Sprintf("proxy %s relays to %s (held %t)", p.Record.ID, ps.Tap.Backend, ps.Tap.Held))
	}
	return nil, "no proxy relays to ZooKeeper to align the digests through: " + strings.Join(seen, "; ")
}

// syncZooKeeperNode imports ZooKeeper's /zookeeper node into the journal.
// ZooKeeper's digest leaves out the nodes below /zookeeper but not
// /zookeeper itself, whose child registers (cversion, pzxid) moved when the
// reverse mirror created its marker there; verify leaves /zookeeper out, so
// only this keeps the digests comparable. A system node only merges: the
// registers go forward.
func (r *run) syncZooKeeperNode(ctx context.Context, hosts []string) error {
	au, err := zkclient.ParseAuths(r.o.ZKAuth)
	if err != nil {
		return err
	}
	c, err := zkclient.Dial(ctx, zkclient.Config{Hosts: hosts, Auth: au})
	if err != nil {
		return fmt.Errorf("rollback: connect to ZooKeeper: %w", err)
	}
	defer c.Close()
	const p = "/zookeeper"
	data, ws, err := c.GetData(ctx, p)
	if err != nil {
		return fmt.Errorf("rollback: read ZooKeeper's %s: %w", p, err)
	}
	acl, _, err := c.GetACL(ctx, p)
	if err != nil {
		return fmt.Errorf("rollback: read ZooKeeper's %s: %w", p, err)
	}
	n := &znode.Node{Path: p, Data: data, ACL: acl, Stat: znode.FromWire(ws, ws.EphemeralOwner), NumChildren: ws.NumChildren}
	if err := submit(ctx, r.cluster, &raftjournal.ImportBatch{Nodes: []*znode.Node{n}}); err != nil {
		return fmt.Errorf("rollback: import ZooKeeper's %s into the journal: %w", p, err)
	}
	return nil
}

package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/znode"
)

// Defaults applied by DefaultConfig and to zero Config fields.
const (
	DefaultMaxDiffs           = 100
	DefaultMaxSubtreeDiffs    = 10
	DefaultRechecks           = 5
	DefaultRecheckInterval    = 200 * time.Millisecond
	DefaultMaxRecheckInterval = 2 * time.Second
	DefaultMaxPending         = 10_000
	DefaultMaxPendingBytes    = 64 << 20
	DefaultRecheckWorkers     = 16

	// batchSize nodes travel together from a side's walk to the merge;
	// chanBatches of them may wait, per side. Together they bound what a
	// comparison holds beyond the sources' own buffers.
	batchSize   = 512
	chanBatches = 8
)

// Config configures a comparison. Start from DefaultConfig; zero fields take
// the Default… values.
type Config struct {
	// Path is the subtree compared. Empty means the deepest subtree both sides
	// hold ("/" unless a side is a chroot or a subtree export).
	Path string
	// Exclude are absolute path.Match globs; a node matching one is left out
	// with its subtree, on both sides. /zookeeper is always left out when the
	// scope is "/", and a snapshot's recorded exclusions apply to both sides.
	Exclude []string
	// Allow are allow-list rules (AllowRule).
	Allow []AllowRule
	// NoDefaultAllow turns off the built-in allowances (RuleClientOwner,
	// RuleEphemeralsSkipped).
	NoDefaultAllow bool
	// MaxDiffs bounds the differences listed (also allowed and converged
	// ones); the counts stay exact. Negative lists none.
	MaxDiffs int
	// MaxSubtreeDiffs bounds the differences listed per top-level subtree.
	// Negative lists none.
	MaxSubtreeDiffs int
	// DigestOnly compares ZooKeeper digests instead of nodes, in constant time
	// where both sides offer comparable digests (Digester), and by walking
	// otherwise (ModeDigestWalk).
	DigestOnly bool
	// TrustTrailer lets a digest-only comparison use a snapshot file's
	// trailer without reading the file: by default the file is read in full
	// first (every record's CRC, the end record against the body), so a
	// damaged file is an error, not a digest that matches. The report says
	// when the trailer was trusted.
	TrustTrailer bool
	// Rechecks is how many times a difference seen with a live side is re-read
	// before it is reported, when one side is newer than the other (their
	// zxids or versions differ). Negative disables re-checks.
	Rechecks int
	// RecheckInterval is the pause before the first re-read; it doubles for
	// each later one, up to MaxRecheckInterval.
	RecheckInterval    time.Duration
	MaxRecheckInterval time.Duration
	// MaxPending and MaxPendingBytes bound the differences held for
	// re-checking (and the static side's nodes they keep, in bytes of data,
	// paths and ACLs); beyond them, differences are reported at once.
	MaxPending      int
	MaxPendingBytes int64
	// RecheckWorkers is how many re-reads run at once.
	RecheckWorkers int
	// Logger receives progress lines; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration for a full comparison of everything
// both sides hold.
func DefaultConfig() Config {
	return Config{
		MaxDiffs:           DefaultMaxDiffs,
		MaxSubtreeDiffs:    DefaultMaxSubtreeDiffs,
		Rechecks:           DefaultRechecks,
		RecheckInterval:    DefaultRecheckInterval,
		MaxRecheckInterval: DefaultMaxRecheckInterval,
		MaxPending:         DefaultMaxPending,
		MaxPendingBytes:    DefaultMaxPendingBytes,
		RecheckWorkers:     DefaultRecheckWorkers,
	}
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.Path != "" {
		if err := znode.ValidatePath(c.Path); err != nil {
			return fmt.Errorf("%w: path: %w", ErrInvalidConfig, err)
		}
	}
	for _, p := range c.Exclude {
		if err := exporter.ValidateExclude(p); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	for _, r := range c.Allow {
		if err := ValidatePattern(r.Pattern); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if len(r.What) == 0 {
			return fmt.Errorf("%w: allow rule %q allows nothing", ErrInvalidConfig, r.Pattern)
		}
	}
	switch {
	case c.RecheckInterval < 0, c.MaxRecheckInterval < 0:
		return fmt.Errorf("%w: negative re-check interval", ErrInvalidConfig)
	case c.MaxPending < 0, c.MaxPendingBytes < 0, c.RecheckWorkers < 0:
		return fmt.Errorf("%w: negative re-check budget", ErrInvalidConfig)
	}
	return nil
}

func (c Config) withDefaults() Config {
	switch {
	case c.MaxDiffs == 0:
		c.MaxDiffs = DefaultMaxDiffs
	case c.MaxDiffs < 0:
		c.MaxDiffs = 0
	}
	switch {
	case c.MaxSubtreeDiffs == 0:
		c.MaxSubtreeDiffs = DefaultMaxSubtreeDiffs
	case c.MaxSubtreeDiffs < 0:
		c.MaxSubtreeDiffs = 0
	}
	switch {
	case c.Rechecks == 0:
		c.Rechecks = DefaultRechecks
	case c.Rechecks < 0:
		c.Rechecks = 0
	}
	if c.RecheckInterval == 0 {
		c.RecheckInterval = DefaultRecheckInterval
	}
	if c.MaxRecheckInterval == 0 {
		c.MaxRecheckInterval = max(DefaultMaxRecheckInterval, c.RecheckInterval)
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.RecheckWorkers == 0 {
		c.RecheckWorkers = DefaultRecheckWorkers
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Compare compares target against source and returns the report. An error
// means no verdict: a side could not be read completely (unreachable,
// unreadable nodes, a damaged file) or streamed out of canonical order.
func Compare(ctx context.Context, source, target Source, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	start := time.Now()
	c, err := newComparison(source, target, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.DigestOnly {
		done, err := c.compareDigests(ctx)
		if err != nil {
			return nil, err
		}
		if done {
			c.finish(start)
			return c.report, nil
		}
		c.report.Mode = ModeDigestWalk
	}
	if err := c.walkBoth(ctx); err != nil {
		return nil, err
	}
	if err := c.recheck(ctx); err != nil {
		return nil, err
	}
	if c.report.Mode == ModeDigestWalk {
		c.finishDigestWalk()
	}
	c.finish(start)
	return c.report, nil
}

// comparison is the state of one Compare.
type comparison struct {
	cfg    Config
	src    Source
	tgt    Source
	si, ti Info
	scope  Scope
	rules  []AllowRule
	report *Report

	// Live sides re-read differences; nil when the side is static.
	srcLive, tgtLive Rereader

	subtrees  []*subtree
	allowedBy map[string]*RuleCount

	pending      []*suspect
	pendingBytes int64

	// aclMasked counts, per side (source, target), the nodes compared whose
	// ACL holds a masked digest identity (exporter.IsMaskedACL).
	aclMasked [2]int64
}

type subtree struct {
	SubtreeResult
	listed int // immediate differences listed in First
}

// suspect is a difference held for re-checking.
type suspect struct {
	path    string
	src     *znode.Node // kept when the source is static
	tgt     *znode.Node // kept when the target is static
	subtree int
	first   []Allowed // what differed when first seen
	last    []Difference
}

func newComparison(src, tgt Source, cfg Config) (*comparison, error) {
	c := &comparison{
		cfg: cfg, src: src, tgt: tgt, si: src.Info(), ti: tgt.Info(),
		rules:     cfg.Allow,
		allowedBy: make(map[string]*RuleCount),
	}
	if c.si.Live {
		c.srcLive, _ = src.(Rereader)
	}
	if c.ti.Live {
		c.tgtLive, _ = tgt.(Rereader)
	}
	mode := ModeFull
	if cfg.DigestOnly {
		mode = ModeDigest
	}
	c.report = &Report{
		Mode:     mode,
		Source:   sideReport(c.si),
		Target:   sideReport(c.ti),
		MaxDiffs: cfg.MaxDiffs,
	}
	if err := c.resolveScope(); err != nil {
		return nil, err
	}
	if !cfg.NoDefaultAllow {
		if c.si.RawOwners != c.ti.RawOwners {
			c.report.Scope.Allow = append(c.report.Scope.Allow, RuleReport{Rule: RuleClientOwner, Origin: "default",
				Reason: "one side reads through the client API, which shows ephemeralOwner 0 for container and TTL nodes"})
		}
		if c.si.SkipsEphemerals || c.ti.SkipsEphemerals {
			c.report.Scope.Allow = append(c.report.Scope.Allow, RuleReport{Rule: RuleEphemeralsSkipped, Origin: "default",
				Reason: "a side's export skipped ephemeral nodes"})
		}
	}
	for _, r := range cfg.Allow {
		c.report.Scope.Allow = append(c.report.Scope.Allow, RuleReport{Rule: r.label(), Origin: r.Origin, Reason: r.Reason})
	}
	return c, nil
}

func sideReport(i Info) SideReport {
	return SideReport{URI: i.URI, Scheme: i.Scheme, Description: i.Description, Live: i.Live, RawOwners: i.RawOwners, Nodes: i.Nodes}
}

func (r *AllowRule) label() string {
	var what []string
	for _, a := range r.What {
		what = append(what, a.String())
	}
	return r.Pattern + " " + strings.Join(what, ",")
}

// resolveScope settles the subtree compared and the exclusions.
func (c *comparison) resolveScope() error {
	rs, rt := c.si.Root, c.ti.Root
	var deepest, holder string
	switch {
	case inSubtree(rt, rs):
		deepest, holder = rt, "target"
	case inSubtree(rs, rt):
		deepest, holder = rs, "source"
	default:
		return fmt.Errorf("%w: nothing in common: the source holds %s, the target %s", ErrInvalidConfig, rs, rt)
	}
	root := deepest
	if c.cfg.Path != "" {
		for _, side := range []struct {
			name string
			root string
		}{{"source", rs}, {"target", rt}} {
			if !inSubtree(c.cfg.Path, side.root) {
				return fmt.Errorf("%w: path %s is outside what the %s holds (%s)", ErrInvalidConfig, c.cfg.Path, side.name, side.root)
			}
		}
		root = c.cfg.Path
	} else if deepest != "/" {
		c.note("scope is %s, the subtree the %s holds", deepest, holder)
	}
	var excl []Exclusion
	seen := map[string]bool{}
	add := func(p, origin, reason string) {
		if !seen[p] {
			seen[p] = true
			excl = append(excl, Exclusion{Pattern: p, Origin: origin, Reason: reason})
		}
	}
	if root == "/" {
		add("/zookeeper", "default", "ZooKeeper's own subtree: per-server, not migrated")
	}
	for _, p := range c.si.Exclude {
		add(p, "source", "left out by the source's export")
	}
	for _, p := range c.ti.Exclude {
		add(p, "target", "left out by the target's export")
	}
	for _, p := range c.cfg.Exclude {
		add(p, "flag", "")
	}
	c.scope = Scope{Root: root}
	for _, e := range excl {
		c.scope.Exclude = append(c.scope.Exclude, e.Pattern)
	}
	c.report.Scope.Path = root
	c.report.Scope.Exclude = excl
	return nil
}

func (c *comparison) note(format string, args ...any) {
	c.report.Notes = append(c.report.Notes, fmt.Sprintf(format, args...))
}

// sideStream is one side's walk, feeding the merge.
type sideStream struct {
	name  string
	src   Source
	uri   string
	ch    chan []*znode.Node
	buf   []*znode.Node
	i     int
	nodes int64 // set by run when it returns
	// sawRoot says the side's walk yielded the scope's root (excluded or not).
	sawRoot bool
}

// run walks the side into its channel: checks the order, filters, digests.
func (s *sideStream) run(ctx context.Context, scope Scope) error {
	defer close(s.ch)
	f := newFilter(scope)
	var (
		prev  string
		index int64
		fnErr error
		nodes int64
	)
	batch := make([]*znode.Node, 0, batchSize)
	send := func() error {
		select {
		case s.ch <- batch:
			batch = make([]*znode.Node, 0, batchSize)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := s.src.Walk(ctx, scope, func(n *znode.Node) error {
		if !wellFormed(n.Path) {
			fnErr = fmt.Errorf("verify: %s %s: node %d has the malformed path %q", s.name, s.uri, index, n.Path)
			return fnErr
		}
		if index > 0 && znode.ComparePaths(prev, n.Path) >= 0 {
			fnErr = &UnsortedError{Side: s.name, URI: s.uri, Index: index, Prev: prev, Path: n.Path}
			return fnErr
		}
		prev = n.Path
		index++
		if n.Path == scope.Root {
			s.sawRoot = true
		}
		if !f.keep(n.Path) {
			return nil
		}
		nodes++
		batch = append(batch, n)
		if len(batch) == batchSize {
			if err := send(); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr // the walk may have wrapped it; report it as made
	}
	if err == nil && len(batch) > 0 {
		err = send()
	}
	s.nodes = nodes
	return err
}

// wellFormed is the structural part of znode.ValidatePath, cheap enough for
// every node: the canonical order is defined on such paths. Snapshot readers
// and ZooKeeper check the rest.
func wellFormed(p string) bool {
	if p == "/" {
		return true
	}
	return len(p) > 1 && p[0] == '/' && p[len(p)-1] != '/' && !strings.Contains(p, "//")
}

// next returns the next node, nil at the end of the stream (or when the walk
// stopped early, which the walk's error then reports).
func (s *sideStream) next() *znode.Node {
	for s.i >= len(s.buf) {
		b, ok := <-s.ch
		if !ok {
			return nil
		}
		s.buf, s.i = b, 0
	}
	n := s.buf[s.i]
	s.buf[s.i] = nil
	s.i++
	return n
}

// walkBoth runs both walks concurrently and merges them. Any error ends the
// comparison without a verdict; a side's own error is preferred to the
// cancellation it caused on the other side.
func (c *comparison) walkBoth(ctx context.Context) error {
	a := &sideStream{name: "source", src: c.src, uri: c.si.URI, ch: make(chan []*znode.Node, chanBatches)}
	b := &sideStream{name: "target", src: c.tgt, uri: c.ti.URI, ch: make(chan []*znode.Node, chanBatches)}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, s := range []*sideStream{a, b} {
		wg.Go(func() {
			if errs[i] = s.run(wctx, c.scope); errs[i] != nil {
				cancel()
			}
		})
	}
	mergeErr := c.merge(wctx, a, b)
	if mergeErr != nil {
		cancel() // the walks stop sending once their context is done
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !isContextErr(err) {
			return err
		}
	}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("verify: while reading the %s: %w", []string{"source", "target"}[i], err)
		}
	}
	if mergeErr != nil {
		return mergeErr
	}
	c.report.Source.Nodes, c.report.Target.Nodes = a.nodes, b.nodes
	if c.report.Compared == 0 {
		if !a.sawRoot && !b.sawRoot {
			return fmt.Errorf("%w: the path %s exists on neither side (source %s, target %s)", ErrNothingCompared, c.scope.Root, c.si.URI, c.ti.URI)
		}
		return fmt.Errorf("%w: every node under %s is excluded (%s)", ErrNothingCompared, c.scope.Root, strings.Join(c.scope.Exclude, ", "))
	}
	c.cfg.Logger.Debug("verify merged", "compared", c.report.Compared, "differences", c.report.Counts.Differences,
		"suspects", len(c.pending))
	return nil
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// merge is the merge-join of the two sorted streams.
func (c *comparison) merge(ctx context.Context, a, b *sideStream) error {
	x, y := a.next(), b.next()
	for steps := 0; x != nil || y != nil; steps++ {
		if steps&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var order int
		switch {
		case x == nil:
			order = 1
		case y == nil:
			order = -1
		default:
			order = znode.ComparePaths(x.Path, y.Path)
		}
		switch {
		case order < 0:
			c.compareNode(x.Path, x, nil)
			x = a.next()
		case order > 0:
			c.compareNode(y.Path, nil, y)
			y = b.next()
		default:
			c.compareNode(x.Path, x, y)
			x, y = a.next(), b.next()
		}
	}
	return nil
}

// compareNode compares one path (s or t nil when absent on that side). It
// keeps each side's digest too: once for a node both sides hold alike.
func (c *comparison) compareNode(path string, s, t *znode.Node) {
	st := c.enterSubtree(path)
	c.report.Compared++
	c.subtrees[st].Nodes++
	sm := s != nil && exporter.IsMaskedACL(s.ACL)
	tm := t != nil && exporter.IsMaskedACL(t.ACL)
	if sm {
		c.aclMasked[0]++
	}
	if tm {
		c.aclMasked[1]++
	}
	masked := c.liveMasked(sm, tm)
	if s != nil && t != nil && !masked && sameNode(s, t) {
		d := s.Digest()
		c.report.Source.Digest.Add(d)
		c.report.Target.Digest.Add(d)
		return
	}
	if s != nil {
		c.report.Source.Digest.Add(s.Digest())
	}
	if t != nil {
		c.report.Target.Digest.Add(t.Digest())
	}
	diffs := c.allowFilter(diffNodes(path, s, t, masked), st)
	if len(diffs) == 0 {
		return
	}
	if c.recheckable(s, t) {
		if c.hold(path, s, t, diffs, st) {
			return
		}
		c.report.Counts.NotRechecked++
	}
	c.addDifferences(diffs, st, true)
}

// enterSubtree returns the index of path's top-level subtree, starting a new
// one when path leaves the current one (the merge is in canonical order, so a
// subtree's paths are contiguous).
func (c *comparison) enterSubtree(path string) int {
	if n := len(c.subtrees); n > 0 {
		if cur := c.subtrees[n-1].Path; cur != c.scope.Root && inSubtree(path, cur) {
			return n - 1
		}
	}
	key := subtreeKey(c.scope.Root, path)
	c.subtrees = append(c.subtrees, &subtree{SubtreeResult: SubtreeResult{Path: key}})
	return len(c.subtrees) - 1
}

// subtreeKey is the scope's root for the root itself, and the root's child on
// the way to path otherwise.
func subtreeKey(root, path string) string {
	if path == root {
		return root
	}
	rest := path[len(root)+1:]
	if root == "/" {
		rest = path[1:]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return znode.Join(root, rest)
}

// finish orders the listings and settles the verdict.
func (c *comparison) finish(start time.Time) {
	r := c.report
	sortDiffs(r.Differences)
	if len(r.Differences) > c.cfg.MaxDiffs {
		r.Differences = r.Differences[:c.cfg.MaxDiffs]
	}
	for _, s := range c.subtrees {
		sortDiffs(s.First)
		if len(s.First) > c.cfg.MaxSubtreeDiffs {
			s.First = s.First[:c.cfg.MaxSubtreeDiffs]
		}
		r.Subtrees = append(r.Subtrees, s.SubtreeResult)
	}
	slices.SortFunc(r.Converged, func(a, b ConvergedDifference) int { return znode.ComparePaths(a.Path, b.Path) })
	for _, rc := range c.allowedBy {
		r.Counts.AllowedBy = append(r.Counts.AllowedBy, *rc)
	}
	slices.SortFunc(r.Counts.AllowedBy, func(a, b RuleCount) int { return cmp.Compare(a.Rule, b.Rule) })
	r.Verdict = VerdictEqual
	if r.Counts.Differences > 0 || (r.Digest != nil && !r.Digest.Equal && r.Mode == ModeDigest) {
		r.Verdict = VerdictDifferent
	}
	for i, side := range []SideReport{r.Source, r.Target} {
		n := c.aclMasked[i]
		if n == 0 {
			continue
		}
		name := []string{"source", "target"}[i]
		if side.Live {
			c.note("cannot read the real ACL of %s on the %s (%s): masked by ZooKeeper (digest:USER:x), which shows digest identities only to credentials with ADMIN on the node; pass --auth with an identity that has ADMIN, or super",
				plural(n, "node"), name, side.URI)
		} else {
			c.note("the %s holds %s whose ACL has a masked digest identity (digest:USER:x): it was exported with credentials that lacked ADMIN on them, so those are not their real ACLs",
				name, plural(n, "node"))
		}
	}
	if r.Counts.Differences > 0 && r.Source.Live != r.Target.Live {
		live := "source"
		if r.Target.Live {
			live = "target"
		}
		c.note("the %s is live and the other side static: writes made since the static side was taken show as differences", live)
	}
	if r.Counts.NotRechecked > 0 {
		c.note("%d differences exceeded the re-check budget and were reported without re-reading the live side", r.Counts.NotRechecked)
	}
	r.Elapsed = time.Since(start)
}

func sortDiffs(ds []Difference) {
	slices.SortStableFunc(ds, func(a, b Difference) int {
		if o := znode.ComparePaths(a.Path, b.Path); o != 0 {
			return o
		}
		if a.Kind != b.Kind {
			return cmp.Compare(a.Kind, b.Kind)
		}
		return cmp.Compare(a.Field, b.Field)
	})
}

package treegen

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// connectTimeout bounds establishing each session when ctx has no earlier
// deadline.
const connectTimeout = 30 * time.Second

// Seed plans the tree for opts and writes it into the ensemble at hosts
// ("host:port" each). It is NewPlan followed by Plan.Apply.
func Seed(ctx context.Context, hosts []string, opts Options) (*Tree, error) {
	p, err := NewPlan(opts)
	if err != nil {
		return nil, err
	}
	return p.Apply(ctx, hosts)
}

// Apply writes the plan into the ensemble at hosts and returns the expected
// tree. Root must not exist yet (see Options.Root). If the ensemble runs
// without extended types (a TTL create is answered UNIMPLEMENTED), TTL
// nodes and their subtrees are left out of both the writes and the model.
//
// The sessions owning ephemerals stay open until Tree.Close. On error
// every session is closed and whatever was written stays: the caller
// should treat the root as garbage.
func (p *Plan) Apply(ctx context.Context, hosts []string) (*Tree, error) {
	opts := p.Options
	log := opts.Logger
	a := &applier{plan: p, expired: new(atomic.Bool)}
	fail := func(err error) (*Tree, error) {
		a.closeAll()
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			// Cancelling closed the connections; say why they closed.
			err = fmt.Errorf("treegen: %w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	start := time.Now()

	var err error
	if a.writers, err = a.dialN(ctx, hosts, opts.Conns, false); err != nil {
		return fail(err)
	}
	if a.sessions, err = a.dialN(ctx, hosts, p.Sessions, true); err != nil {
		return fail(err)
	}
	// From here on, cancelling ctx closes every connection, which fails
	// whatever is in flight with zk.ErrConnectionClosed.
	stop := context.AfterFunc(ctx, a.closeAll)
	defer stop()

	extended, err := a.probeExtendedTypes()
	if err != nil {
		return fail(err)
	}
	scaffold, err := a.prepareRoot()
	if err != nil {
		return fail(err)
	}
	plan := p
	if !extended {
		plan = p.withoutTTL()
	}
	model, err := plan.Model(extended)
	if err != nil {
		return fail(fmt.Errorf("treegen: internal plan error: %w", err))
	}
	log.Info("treegen seeding", "profile", opts.Profile, "root", opts.Root, "seed", opts.Seed,
		"ops", len(plan.Ops), "nodes", model.Len(), "extended-types", extended,
		"conns", opts.Conns, "concurrency", opts.Concurrency)

	writeStart := time.Now()
	if err := a.run(ctx, plan.Ops); err != nil {
		return fail(err)
	}
	elapsed := time.Since(writeStart)
	if !stop() {
		return fail(fmt.Errorf("treegen: %w", ctx.Err()))
	}
	for _, c := range a.writers {
		c.Close()
	}
	t := &Tree{
		Model:         model,
		Plan:          plan,
		ExtendedTypes: extended,
		Credential:    p.Credential,
		Scaffold:      scaffold,
		WriteTime:     elapsed,
		sessions:      a.sessions,
		expired:       a.expired,
	}
	for _, c := range a.sessions {
		t.SessionIDs = append(t.SessionIDs, c.SessionID())
	}
	log.Info("treegen seeded", "nodes", model.Len(), "ops", len(plan.Ops),
		"elapsed", elapsed, "ops-per-second", int(t.OpsPerSecond()), "total", time.Since(start))
	return t, nil
}

// Tree is a generated tree living in an ensemble: the expected model, the
// plan that wrote it, and the sessions holding its ephemerals.
type Tree struct {
	*Model
	// Plan is what was written (without TTL nodes if ExtendedTypes is false).
	Plan *Plan
	// ExtendedTypes says the ensemble accepted TTL nodes.
	ExtendedTypes bool
	// SessionIDs are the owners of the ephemerals, indexed by
	// Expected.Session.
	SessionIDs []int64
	// Credential reads the protected subtree (scheme "digest").
	Credential Credential
	// Scaffold lists the missing ancestors of Root that Apply created with
	// no data and world:anyone, outside the model.
	Scaffold []string
	// WriteTime is how long writing the ops took.
	WriteTime time.Duration

	mu       sync.Mutex
	closed   bool
	sessions []*zk.Conn
	expired  *atomic.Bool
}

// OpsPerSecond is the write rate Apply achieved.
func (t *Tree) OpsPerSecond() float64 {
	if t.WriteTime <= 0 {
		return 0
	}
	return float64(len(t.Plan.Ops)) / t.WriteTime.Seconds()
}

// Err reports whether the model still describes the ensemble as far as the
// generator can tell: ErrClosed after Close, ErrSessionExpired once a
// session holding ephemerals expired (its ephemerals are gone).
func (t *Tree) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return ErrClosed
	case t.expired.Load():
		return ErrSessionExpired
	}
	return nil
}

// Close closes the sessions holding the ephemerals, which ZooKeeper then
// deletes. It returns once every session's close was answered (or timed
// out) and is safe to call more than once.
func (t *Tree) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var wg sync.WaitGroup
	for _, c := range t.sessions {
		wg.Go(c.Close)
	}
	wg.Wait()
	return nil
}

// applier holds the connections of one Apply.
type applier struct {
	plan     *Plan
	writers  []*zk.Conn
	sessions []*zk.Conn
	expired  *atomic.Bool

	closeOnce sync.Once
}

func (a *applier) closeAll() {
	a.closeOnce.Do(func() {
		var wg sync.WaitGroup
		for _, c := range append(append([]*zk.Conn(nil), a.writers...), a.sessions...) {
			wg.Go(c.Close)
		}
		wg.Wait()
	})
}

// dialN opens n authenticated sessions. Sessions that hold ephemerals
// report expiry to a.expired.
func (a *applier) dialN(ctx context.Context, hosts []string, n int, owner bool) ([]*zk.Conn, error) {
	conns := make([]*zk.Conn, n)
	g, gctx := errgroup.WithContext(ctx)
	for i := range conns {
		g.Go(func() error {
			c, err := a.dial(gctx, hosts, owner)
			conns[i] = c
			return err
		})
	}
	err := g.Wait()
	if err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, err
	}
	return conns, nil
}

func (a *applier) dial(ctx context.Context, hosts []string, owner bool) (*zk.Conn, error) {
	opts := a.plan.Options
	connected := make(chan struct{})
	var once sync.Once
	cb := func(ev zk.Event) {
		switch ev.State {
		case zk.StateHasSession:
			once.Do(func() { close(connected) })
		case zk.StateExpired:
			if owner {
				a.expired.Store(true)
			}
		}
	}
	// Bounded replies, the connect response included (zkclient.Guard): a
	// server that is not ZooKeeper must not make go-zookeeper allocate what
	// its first bytes declare.
	c, _, err := zk.Connect(hosts, opts.SessionTimeout,
		zk.WithLogger(zkLogger{opts.Logger}), zk.WithLogInfo(false), zk.WithEventCallback(cb),
		zk.WithMaxBufferSize(zkclient.DefaultMaxReplyFrame),
		zk.WithDialer(zk.Dialer(zkclient.GuardDialer(nil, zkclient.GuardOptions{}))))
	if err != nil {
		return nil, fmt.Errorf("treegen: connect %v: %w", hosts, err)
	}
	timer := time.NewTimer(connectTimeout)
	defer timer.Stop()
	select {
	case <-connected:
	case <-timer.C:
		c.Close()
		return nil, fmt.Errorf("treegen: connect %v: no session after %v", hosts, connectTimeout)
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("treegen: connect %v: %w", hosts, ctx.Err())
	}
	cred := a.plan.Credential
	if err := c.AddAuth(cred.Scheme(), cred.Auth()); err != nil {
		c.Close()
		return nil, fmt.Errorf("treegen: add auth %s: %w", cred.User, err)
	}
	return c, nil
}

// probeExtendedTypes asks for a TTL node under a parent that does not
// exist. The server checks the create mode before the parent, so it
// answers UNIMPLEMENTED (-6) without extended types and NONODE with them;
// either way nothing is written.
func (a *applier) probeExtendedTypes() (bool, error) {
	probe := znode.Join(a.plan.Options.Root, ".treegen-ttl-probe/x")
	_, err := a.writers[0].CreateTTL(probe, nil, zk.FlagTTL, zk.WorldACL(zk.PermAll), time.Hour)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return true, nil
	case isUnimplemented(err):
		return false, nil
	case err == nil:
		return false, fmt.Errorf("%w: TTL probe %s was created", ErrUnexpectedResult, probe)
	}
	return false, fmt.Errorf("treegen: TTL probe %s: %w", probe, err)
}

// isUnimplemented recognizes ZooKeeper's UNIMPLEMENTED (-6). go-zookeeper
// has no sentinel for it and returns fmt.Errorf("unknown error: %v", code),
// so the text is all there is to match.
func isUnimplemented(err error) bool {
	return err != nil && strings.HasSuffix(err.Error(), "unknown error: -6")
}

// prepareRoot checks that the root is free and creates its missing
// ancestors, which it returns.
func (a *applier) prepareRoot() ([]string, error) {
	c := a.writers[0]
	root := a.plan.Options.Root
	if root == "/" {
		children, _, err := c.Children("/")
		if err != nil {
			return nil, fmt.Errorf("treegen: list /: %w", err)
		}
		for _, ch := range children {
			if ch != "zookeeper" {
				return nil, fmt.Errorf("%w: / has child %q", ErrRootExists, ch)
			}
		}
		return nil, nil
	}
	ok, _, err := c.Exists(root)
	if err != nil {
		return nil, fmt.Errorf("treegen: exists %s: %w", root, err)
	}
	if ok {
		return nil, fmt.Errorf("%w: %s", ErrRootExists, root)
	}
	var missing []string
	for p := znode.Parent(root); p != "/"; p = znode.Parent(p) {
		missing = append(missing, p)
	}
	var scaffold []string
	for i := len(missing) - 1; i >= 0; i-- {
		_, err := c.Create(missing[i], nil, 0, zk.WorldACL(zk.PermAll))
		switch {
		case err == nil:
			scaffold = append(scaffold, missing[i])
		case errors.Is(err, zk.ErrNodeExists):
		default:
			return nil, fmt.Errorf("treegen: create ancestor %s: %w", missing[i], err)
		}
	}
	return scaffold, nil
}

// run executes ops, each after its predecessor, with Concurrency requests
// in flight. Among ready ops it picks the one with the longest chain of
// dependents still behind it (critical path first), so long chains (a deep
// path, a sequential queue) overlap with wide fan-outs instead of waiting
// behind them.
func (a *applier) run(ctx context.Context, ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	s := newScheduler(ops, a.plan.Options.MultiBatch)
	stop := context.AfterFunc(ctx, func() { s.fail(ctx.Err()) })
	defer stop()
	var g errgroup.Group
	for w := range a.plan.Options.Concurrency {
		g.Go(func() error {
			var batch []int32
			for {
				batch = s.next(batch[:0])
				if batch == nil {
					return nil
				}
				var err error
				if len(batch) == 1 {
					err = a.exec(w, &ops[batch[0]])
				} else {
					err = a.execMulti(w, ops, batch)
				}
				if err != nil {
					s.fail(err)
					return nil
				}
				s.done(batch)
			}
		})
	}
	g.Wait()
	return s.err
}

// writer picks the connection for worker w.
func (a *applier) writer(w int) *zk.Conn { return a.writers[w%len(a.writers)] }

func (a *applier) exec(w int, op *Op) error {
	c := a.writer(w)
	var err error
	switch op.Type {
	case OpCreate:
		acl := zkACL(op.ACL)
		var got string
		switch op.Kind {
		case znode.Container:
			got, err = c.CreateContainer(op.Path, op.Data, zk.FlagContainer, acl)
		case znode.TTL:
			flag := int32(zk.FlagTTL)
			if op.Sequential {
				flag = zk.FlagPersistentSequentialWithTTL
			}
			got, err = c.CreateTTL(op.SendPath(), op.Data, flag, acl, op.TTL)
		default:
			var flags int32
			if op.Kind == znode.Ephemeral {
				c = a.sessions[op.Session]
				flags |= zk.FlagEphemeral
			}
			if op.Sequential {
				flags |= zk.FlagSequence
			}
			got, err = c.Create(op.SendPath(), op.Data, flags, acl)
		}
		if err == nil && got != op.Path {
			err = fmt.Errorf("%w: created %q, planned %q", ErrUnexpectedResult, got, op.Path)
		}
	case OpDelete:
		err = c.Delete(op.Path, -1)
	case OpSetData:
		_, err = c.Set(op.Path, op.Data, op.Version)
	case OpSetACL:
		_, err = c.SetACL(op.Path, zkACL(op.ACL), op.Version)
	}
	if err != nil {
		return fmt.Errorf("treegen: %s %q: %w", op.Type, op.Path, err)
	}
	return nil
}

// execMulti writes a batch of plain persistent creates in one multi.
func (a *applier) execMulti(w int, ops []Op, batch []int32) error {
	reqs := make([]any, len(batch))
	for i, idx := range batch {
		op := &ops[idx]
		reqs[i] = &zk.CreateRequest{Path: op.Path, Data: op.Data, Acl: zkACL(op.ACL), Flags: 0}
	}
	res, err := a.writer(w).Multi(reqs...)
	if err != nil {
		return fmt.Errorf("treegen: multi of %d creates from %q: %w", len(batch), ops[batch[0]].Path, err)
	}
	for i, r := range res {
		if r.Error != nil {
			return fmt.Errorf("treegen: multi create %q: %w", ops[batch[i]].Path, r.Error)
		}
	}
	return nil
}

func zkACL(acl []znode.ACL) []zk.ACL {
	out := make([]zk.ACL, len(acl))
	for i, a := range acl {
		out[i] = zk.ACL{Perms: int32(a.Perms), Scheme: a.ID.Scheme, ID: a.ID.ID}
	}
	return out
}

// scheduler hands out ready ops. Every op has at most one predecessor, so
// the dependencies form a forest: an op becomes ready when its predecessor
// is done.
type scheduler struct {
	ops        []Op
	multiBatch int
	// dependents of op i: depList[depStart[i]:depStart[i+1]].
	depStart []int32
	depList  []int32
	height   []int32 // longest chain from the op to a leaf, counting itself

	mu      sync.Mutex
	cond    sync.Cond
	ready   readyHeap
	pending int // ops not yet done
	err     error
}

func newScheduler(ops []Op, multiBatch int) *scheduler {
	n := len(ops)
	s := &scheduler{ops: ops, multiBatch: multiBatch, pending: n}
	s.cond.L = &s.mu
	s.depStart = make([]int32, n+1)
	for i := range ops {
		if a := ops[i].After; a >= 0 {
			s.depStart[a+1]++
		}
	}
	for i := range n {
		s.depStart[i+1] += s.depStart[i]
	}
	s.depList = make([]int32, s.depStart[n])
	fill := append([]int32(nil), s.depStart[:n]...)
	for i := range ops {
		if a := ops[i].After; a >= 0 {
			s.depList[fill[a]] = int32(i)
			fill[a]++
		}
	}
	s.height = make([]int32, n)
	for i := n - 1; i >= 0; i-- {
		s.height[i]++
		if a := ops[i].After; a >= 0 {
			s.height[a] = max(s.height[a], s.height[i])
		}
	}
	s.ready.height = s.height
	for i := range ops {
		if ops[i].After < 0 {
			s.ready.items = append(s.ready.items, int32(i))
		}
	}
	heap.Init(&s.ready)
	return s
}

// next blocks until an op is ready and appends it (and, with multiBatch,
// more batchable ready ops) to batch. It returns nil when all ops are done
// or the run failed.
func (s *scheduler) next(batch []int32) []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.ready.Len() == 0 && s.pending > 0 && s.err == nil {
		s.cond.Wait()
	}
	if s.err != nil || s.pending == 0 {
		return nil
	}
	first := heap.Pop(&s.ready).(int32)
	batch = append(batch, first)
	if s.multiBatch > 1 && batchable(&s.ops[first]) {
		size := encodedSize(&s.ops[first])
		for len(batch) < s.multiBatch && s.ready.Len() > 0 {
			top := s.ready.items[0]
			op := &s.ops[top]
			if !batchable(op) || size+encodedSize(op) > maxMultiBatchBytes {
				break
			}
			size += encodedSize(op)
			batch = append(batch, heap.Pop(&s.ready).(int32))
		}
	}
	return batch
}

// batchable says whether an op may share a multi: plain persistent,
// non-sequential creates (go-zookeeper's Multi has no container or TTL
// creates, and a multi's creates share one zxid).
func batchable(op *Op) bool {
	return op.Type == OpCreate && op.Kind == znode.Persistent && !op.Sequential
}

func encodedSize(op *Op) int {
	n := 64 + len(op.Path) + len(op.Data)
	for _, a := range op.ACL {
		n += 12 + len(a.ID.Scheme) + len(a.ID.ID)
	}
	return n
}

func (s *scheduler) done(batch []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending -= len(batch)
	if s.pending == 0 {
		s.cond.Broadcast()
		return
	}
	for _, i := range batch {
		for _, d := range s.depList[s.depStart[i]:s.depStart[i+1]] {
			heap.Push(&s.ready, d)
			s.cond.Signal()
		}
	}
}

func (s *scheduler) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	s.cond.Broadcast()
}

// readyHeap orders ready ops by height (longest first), then plan order.
type readyHeap struct {
	items  []int32
	height []int32
}

func (h *readyHeap) Len() int { return len(h.items) }
func (h *readyHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if h.height[a] != h.height[b] {
		return h.height[a] > h.height[b]
	}
	return a < b
}
func (h *readyHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *readyHeap) Push(x any)    { h.items = append(h.items, x.(int32)) }
func (h *readyHeap) Pop() any {
	n := len(h.items) - 1
	x := h.items[n]
	h.items = h.items[:n]
	return x
}

// zkLogger sends go-zookeeper's messages to slog at debug level.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	z.l.Debug(fmt.Sprintf(format, args...), "component", "go-zookeeper")
}

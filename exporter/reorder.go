package exporter

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// The reorder buffer turns the order in which reads complete into the file's
// order, depth-first with children in byte order (SequentialWalk's order), and
// decides which node to read next.
//
// Everything it knows hangs off dirs: a dir is a node whose children are known,
// with its sorted child names, the index of the next child to issue, and the
// queue of children issued but not yet written, in order. Three views share them:
//
//   - the write stack: the dirs on the path from the root to the next node to
//     write (the head). The head is the first child in the queue of the top dir,
//     or, when that queue is empty, its next child to issue. A read that completes
//     is written once it reaches the head; a dir is popped when its last child
//     is written, which releases its names.
//   - the issue heap: every dir that still has children to issue, keyed by the
//     path of its next child. Depth-first order with sorted children is the order
//     of paths compared component by component (pathLess), so the heap's minimum
//     is the earliest node in file order that can be read now.
//   - the outstanding heap: every task issued and not yet written, latest in
//     file order on top.
//
// Scheduling keeps the outstanding tasks the earliest known ones: it issues the
// issue heap's minimum X while fewer than Workers (+ slack) reads are in flight
// and fewer than Window tasks are outstanding holding less than MaxBufferedBytes.
// When the window is full and X comes before the latest outstanding task M, and M
// has been read, M is evicted: its result is dropped and it goes back to being
// unissued. M is always the last issued child of its dir (every later sibling
// comes after it in file order) and has nothing issued below it (its descendants
// come after it too), so evicting it is undoing one issue. Without eviction a
// window filled with read-ahead far from the head leaves one slot at a time for
// the head's own subtree, and a narrow, deep stretch of tree (topic → partitions
// → partition → state) would be read one request at a time.
//
// The head may always be issued, even over the limits. That keeps the buffer
// from deadlocking: when every slot is held, the head is unissued only if its
// parent was just written, and it is then the issue heap's minimum.
//
// Memory is the write stack (the child names along one root-to-head path, which
// getChildren2 hands over whole anyway) plus at most Window buffered nodes and
// their child names, bounded by MaxBufferedBytes, plus the head. Nothing recurses.
type reorder struct {
	w     *Walker
	sink  Sink
	work  chan<- *task
	issue dirHeap
	late  taskHeap // outstanding tasks, latest in file order on top
	stack []*dir

	maxInflight int   // reads in flight at most (Workers plus a little slack)
	inflight    int   // tasks issued and not yet read
	held        int64 // bytes held by tasks read and not yet written
	evicted     int64 // reads dropped to make room for earlier ones

	maxNodeZxid int64
	digest      znode.Digest
	changed     []ChangedNode
	unreadable  []string // NoAuth and ACL masked, in file order
	aclMasked   []string
	ephemerals  int64
}

// dir is a node whose children are known.
type dir struct {
	path  string // "" for the pseudo-dir whose only child is the walk's root
	names []string
	next  int     // index in names of the next child to issue
	key   string  // path of names[next]
	queue []*task // issued and not yet written, in order
	index int     // in the issue heap, -1 when not in it
}

func (d *dir) childPath(i int) string {
	if d.path == "" {
		return d.names[i]
	}
	return znode.Join(d.path, d.names[i])
}

func newReorder(w *Walker, sink Sink, work chan<- *task) *reorder {
	r := &reorder{w: w, sink: sink, work: work, maxInflight: w.maxInflight()}
	root := &dir{names: []string{w.cfg.Root}, index: -1}
	root.key = root.childPath(0)
	heap.Push(&r.issue, root)
	r.stack = []*dir{root}
	return r
}

// run issues reads and writes nodes until the tree is written or the walk fails.
func (r *reorder) run(ctx context.Context, results <-chan *task) error {
	for {
		// Writing moves the head, which may make it the next node to issue.
		if err := r.emit(); err != nil {
			return err
		}
		if len(r.stack) == 0 {
			return nil
		}
		r.schedule()
		select {
		case t := <-results:
			if err := r.complete(t); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		// Take whatever else has completed before scheduling again.
		for more := true; more; {
			select {
			case t := <-results:
				if err := r.complete(t); err != nil {
					return err
				}
			default:
				more = false
			}
		}
	}
}

// schedule issues reads in file order while the limits allow.
func (r *reorder) schedule() {
	cfg := &r.w.cfg
	for r.issue.Len() > 0 {
		d := r.issue[0]
		top := r.stack[len(r.stack)-1]
		isHead := d == top && len(d.queue) == 0
		if !isHead {
			if r.inflight >= r.maxInflight {
				return
			}
			if len(r.late) >= cfg.Window || r.held >= cfg.MaxBufferedBytes {
				if !r.evictFor(d.key) {
					return
				}
				continue // the eviction may have changed the issue heap's minimum
			}
		}
		r.issueNext(d)
	}
}

// issueNext sends d's next child to the workers.
func (r *reorder) issueNext(d *dir) {
	t := &task{path: d.key, parent: d}
	d.next++
	if d.next < len(d.names) {
		d.key = d.childPath(d.next)
		heap.Fix(&r.issue, d.index)
	} else {
		d.key = ""
		heap.Remove(&r.issue, d.index)
	}
	d.queue = append(d.queue, t)
	heap.Push(&r.late, t)
	r.inflight++
	r.work <- t // never blocks: the channel holds Window+1
}

// evictFor makes room for the node at path by evicting the latest outstanding
// task, if path comes before it and it has been read. It reports whether it did.
func (r *reorder) evictFor(path string) bool {
	if len(r.late) == 0 {
		return false
	}
	m := r.late[0]
	if !m.done || !pathLess(path, m.path) {
		return false
	}
	heap.Pop(&r.late)
	d := m.parent
	if len(d.queue) == 0 || d.queue[len(d.queue)-1] != m {
		panic("exporter: reorder: evicted task is not the last issued child of its parent")
	}
	d.queue[len(d.queue)-1] = nil
	d.queue = d.queue[:len(d.queue)-1]
	d.next--
	d.key = m.path
	if d.index >= 0 {
		heap.Fix(&r.issue, d.index)
	} else {
		heap.Push(&r.issue, d)
	}
	if m.kids != nil && m.kids.index >= 0 {
		heap.Remove(&r.issue, m.kids.index)
	}
	r.held -= m.size
	r.evicted++
	return true
}

// complete takes a finished read into the buffer.
func (r *reorder) complete(t *task) error {
	t.done = true
	r.inflight--
	switch t.outcome {
	case outcomeFailed:
		return t.err
	case outcomeRead:
	default:
		return nil
	}
	n := t.node
	t.size = int64(len(n.Path) + len(n.Data))
	for _, a := range n.ACL {
		t.size += int64(len(a.ID.Scheme) + len(a.ID.ID) + 4)
	}
	if len(t.children) > 0 {
		names := t.children[:0]
		filter := r.w.excl.mayExclude(n.Path)
		for _, c := range t.children {
			if filter && r.w.excl.excluded(znode.Join(n.Path, c)) {
				t.excluded++
				continue
			}
			names = append(names, c)
			t.size += int64(len(c)) + 16
		}
		t.children = nil
		if len(names) > 0 {
			slices.Sort(names)
			t.kids = &dir{path: n.Path, names: names, index: -1}
			t.kids.key = t.kids.childPath(0)
			heap.Push(&r.issue, t.kids)
		}
	}
	r.held += t.size
	return nil
}

// emit writes every node that has reached the head of the file order.
func (r *reorder) emit() error {
	for len(r.stack) > 0 {
		d := r.stack[len(r.stack)-1]
		if len(d.queue) == 0 {
			if d.next == len(d.names) {
				r.stack[len(r.stack)-1] = nil
				r.stack = r.stack[:len(r.stack)-1]
				continue
			}
			return nil // the head is not issued yet
		}
		t := d.queue[0]
		if !t.done {
			return nil
		}
		d.queue[0] = nil
		d.queue = d.queue[1:]
		heap.Remove(&r.late, t.lateIndex)
		r.held -= t.size
		if err := r.write(t); err != nil {
			return err
		}
		if t.kids != nil {
			r.stack = append(r.stack, t.kids)
		}
	}
	return nil
}

// write accounts for one task at the head and sends its node to the sink.
func (r *reorder) write(t *task) error {
	st := &r.w.stats
	start := r.w.startZxid
	switch t.outcome {
	case outcomeGone:
		if t.path == r.w.cfg.Root {
			return fmt.Errorf("%w: %s", ErrNoRoot, t.path)
		}
		st.deleted.Add(1)
		r.listChange(t.path, ChangeDeleted)
		return nil
	case outcomeUnreadable:
		st.noAuth.Add(1)
		if len(r.unreadable) < r.w.cfg.MaxListed {
			r.unreadable = append(r.unreadable, t.path)
		}
		r.w.cfg.Logger.Warn("node unreadable with the given credentials", "path", t.path)
		return nil
	case outcomeRead:
	default:
		return fmt.Errorf("exporter: internal error: %s reached the head with outcome %d", t.path, t.outcome)
	}
	n := t.node
	t.node = nil
	st.excluded.Add(t.excluded)
	var c Change
	if n.Stat.Czxid > start {
		c |= ChangeCreated
	}
	if n.Stat.Mzxid > start && n.Stat.Mzxid != n.Stat.Czxid {
		c |= ChangeData
	}
	if n.Stat.Pzxid > start && n.Stat.Pzxid != n.Stat.Czxid {
		c |= ChangeChildren
	}
	if t.rereads > 0 {
		c |= ChangeReread
	}
	if c != 0 {
		st.changed.Add(1)
		r.listChange(n.Path, c)
	}
	r.maxNodeZxid = max(r.maxNodeZxid, n.Stat.Czxid, n.Stat.Mzxid, n.Stat.Pzxid)
	if n.Stat.EphemeralOwner != 0 && r.w.cfg.Ephemerals == EphemeralsSkip {
		st.ephemeralsSkipped.Add(1)
		return nil
	}
	if n.Stat.EphemeralOwner != 0 {
		r.ephemerals++
	}
	if IsMaskedACL(n.ACL) {
		// Recorded as shown, so the tree keeps its shape, and listed: the
		// walk fails at the end unless AllowPartial.
		st.aclMasked.Add(1)
		if len(r.unreadable) < r.w.cfg.MaxListed {
			r.unreadable = append(r.unreadable, n.Path)
		}
		if len(r.aclMasked) < r.w.cfg.MaxListed {
			r.aclMasked = append(r.aclMasked, n.Path)
		}
		r.w.cfg.Logger.Warn("node's ACL masked by ZooKeeper: the credentials lack ADMIN on it", "path", n.Path)
	}
	if err := r.sink.WriteNode(n); err != nil {
		return fmt.Errorf("exporter: writing %s: %w", n.Path, err)
	}
	r.digest.Add(n.Digest())
	st.nodes.Add(1)
	st.dataBytes.Add(int64(len(n.Data)))
	return nil
}

func (r *reorder) listChange(path string, c Change) {
	if len(r.changed) < r.w.cfg.MaxListed {
		r.changed = append(r.changed, ChangedNode{Path: path, Change: c})
	}
}

// summary gathers the walk's outcome.
func (r *reorder) summary(w *Walker, began time.Time, maxZxid int64) *Summary {
	st := &w.stats
	s := &Summary{
		Source:            Source(w.cfg.Hosts, w.cfg.Root),
		Root:              w.cfg.Root,
		Nodes:             st.nodes.Load(),
		DataBytes:         st.dataBytes.Load(),
		StartZxid:         w.startZxid,
		MaxZxid:           maxZxid,
		Digest:            r.digest,
		Duration:          time.Since(began),
		ReadMode:          w.ReadMode().String(),
		Requests:          st.requests.Load(),
		Rereads:           st.rereads.Load(),
		Retries:           st.retries.Load(),
		SessionsRenewed:   st.renewed.Load(),
		Changed:           st.changed.Load(),
		ChangedList:       r.changed,
		Deleted:           st.deleted.Load(),
		Unreadable:        st.noAuth.Load() + st.aclMasked.Load(),
		UnreadableList:    r.unreadable,
		ACLMasked:         st.aclMasked.Load(),
		ACLMaskedList:     r.aclMasked,
		Excluded:          st.excluded.Load(),
		Ephemerals:        r.ephemerals,
		EphemeralsSkipped: st.ephemeralsSkipped.Load(),
		Evicted:           r.evicted,
	}
	if s.ChangedList == nil {
		s.ChangedList = []ChangedNode{}
	}
	if s.UnreadableList == nil {
		s.UnreadableList = []string{}
	}
	if s.ACLMaskedList == nil {
		s.ACLMaskedList = []string{}
	}
	s.Partial = s.Unreadable > 0
	return s
}

// pathLess orders paths depth-first with children in byte order: component by
// component, which is byte order with '/' below every other byte.
func pathLess(a, b string) bool {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return true
		}
		if cb == '/' {
			return false
		}
		return ca < cb
	}
	return len(a) < len(b)
}

// taskHeap holds the outstanding tasks, latest in file order on top.
type taskHeap []*task

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return pathLess(h[j].path, h[i].path) }
func (h taskHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].lateIndex = i
	h[j].lateIndex = j
}
func (h *taskHeap) Push(x any) {
	t := x.(*task)
	t.lateIndex = len(*h)
	*h = append(*h, t)
}
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.lateIndex = -1
	return t
}

// dirHeap is the issue heap: dirs with children left to issue, by next child.
type dirHeap []*dir

func (h dirHeap) Len() int           { return len(h) }
func (h dirHeap) Less(i, j int) bool { return pathLess(h[i].key, h[j].key) }
func (h dirHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *dirHeap) Push(x any) {
	d := x.(*dir)
	d.index = len(*h)
	*h = append(*h, d)
}
func (h *dirHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.index = -1
	return d
}

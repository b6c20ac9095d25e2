package raftjournal

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/zk2raft/zk2raft/znode"
)

// EventType is a watch event's type, with ZooKeeper's values (Watcher.Event.EventType).
type EventType int32

// The event types the tree fires.
const (
	EventNodeCreated         EventType = 1
	EventNodeDeleted         EventType = 2
	EventNodeDataChanged     EventType = 3
	EventNodeChildrenChanged EventType = 4
)

func (t EventType) String() string {
	switch t {
	case EventNodeCreated:
		return "NodeCreated"
	case EventNodeDeleted:
		return "NodeDeleted"
	case EventNodeDataChanged:
		return "NodeDataChanged"
	case EventNodeChildrenChanged:
		return "NodeChildrenChanged"
	}
	return fmt.Sprintf("EventType(%d)", int32(t))
}

// Event is one watch notification: what happened to which path, and the zxid of
// the txn that did it (-1 for an import batch, which has no single zxid).
type Event struct {
	Type EventType
	Path string
	Zxid int64
}

// Watcher receives the events of the watches registered with it, in order,
// in a queue that holds at most its limit. Delivery never blocks Apply: when
// the queue is full the watcher overflows, which drops all its watches, and
// Err then says ErrWatcherOverflow. A client connection whose watcher
// overflowed must be closed: the client then reconnects and re-registers
// its watches with SetWatches, which reports what it missed, as after any
// disconnection.
//
// The queue grows with what is waiting and is emptied by Take, so an idle
// watcher costs a few words however large its limit (a client port holds
// one per connection). Ready is signalled when events arrive and closed on
// overflow and Close; a consumer waits on it, then calls Take and Err:
//
//	for {
//		<-w.Ready()
//		for _, e := range w.Take() { ... }
//		if w.Err() != nil { break }
//	}
//
// A Watcher belongs to the FSM it was first registered with.
type Watcher struct {
	mu     sync.Mutex // guards queue, err and closed
	queue  []Event
	limit  int
	ready  chan struct{} // capacity 1
	err    error
	m      *watchManager
	data   map[string]uint8 // path → modes, the reverse index (guarded by m.mu)
	child  map[string]uint8
	closed bool
}

// NewWatcher returns a watcher whose queue holds at most limit events (at
// least 1).
func NewWatcher(limit int) *Watcher {
	return &Watcher{limit: max(limit, 1), ready: make(chan struct{}, 1), data: map[string]uint8{}, child: map[string]uint8{}}
}

// Ready is signalled when events are waiting, and closed when the watcher
// overflows or is closed (events may still be waiting then: Take them).
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Take returns the events waiting, oldest first, and empties the queue
// (nil when none).
func (w *Watcher) Take() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

// Next waits for the next event: ok is false once the watcher is closed or
// overflowed and nothing is left, or ctx ended. For callers that want one
// event at a time.
func (w *Watcher) Next(ctx context.Context) (Event, bool) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			e := w.queue[0]
			w.queue = w.queue[1:]
			if len(w.queue) > 0 {
				select {
				case w.ready <- struct{}{}:
				default:
				}
			}
			w.mu.Unlock()
			return e, true
		}
		closed := w.closed
		w.mu.Unlock()
		if closed {
			return Event{}, false
		}
		select {
		case <-w.ready:
		case <-ctx.Done():
			return Event{}, false
		}
	}
}

// Err returns why the watcher stopped (ErrWatcherOverflow or
// ErrWatcherClosed), or nil while it runs.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close removes all the watcher's watches and closes Ready. It is idempotent.
func (w *Watcher) Close() {
	w.mu.Lock()
	m := w.m
	w.mu.Unlock()
	if m != nil {
		m.mu.Lock()
		m.removeAllLocked(w)
		m.mu.Unlock()
	}
	w.shut(ErrWatcherClosed)
}

// shut stops the watcher once, recording why.
func (w *Watcher) shut(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		w.err = err
		close(w.ready)
	}
}

// deliver queues an event without blocking; it reports false if the queue
// was full.
func (w *Watcher) deliver(e Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return true
	}
	if len(w.queue) >= w.limit {
		return false
	}
	w.queue = append(w.queue, e)
	if len(w.queue) == 1 {
		select {
		case w.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// Watch modes, as in ZooKeeper's WatchStats: a path may hold a standard
// (one-shot) and a persistent or persistent-recursive watch for the same watcher.
const (
	modeStandard   uint8 = 1
	modePersistent uint8 = 2
	modeRecursive  uint8 = 4
)

type watchTableKind uint8

const (
	watchData watchTableKind = iota
	watchChild
)

// watchManager is ZooKeeper's pair of WatchManagers (data watches and child
// watches) for one FSM. Watches are local to the node, not replicated.
type watchManager struct {
	mu        sync.Mutex
	data      map[string]map[*Watcher]uint8
	child     map[string]map[*Watcher]uint8
	recursive int          // recursive registrations in data
	n         atomic.Int64 // registrations in both tables
}

func newWatchManager() *watchManager {
	return &watchManager{data: map[string]map[*Watcher]uint8{}, child: map[string]map[*Watcher]uint8{}}
}

func (m *watchManager) active() bool { return m.n.Load() > 0 }
func (m *watchManager) count() int   { return int(m.n.Load()) }

func (m *watchManager) table(k watchTableKind) map[string]map[*Watcher]uint8 {
	if k == watchData {
		return m.data
	}
	return m.child
}

func (w *Watcher) index(k watchTableKind) map[string]uint8 {
	if k == watchData {
		return w.data
	}
	return w.child
}

func (m *watchManager) add(w *Watcher, path string, k watchTableKind, mode uint8) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	if w.m == nil {
		w.m = m
	}
	w.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	tbl := m.table(k)
	set := tbl[path]
	if set == nil {
		set = make(map[*Watcher]uint8)
		tbl[path] = set
	}
	old := set[w]
	if old&mode != 0 {
		return
	}
	if old == 0 {
		m.n.Add(1)
	}
	if mode == modeRecursive {
		m.recursive++
	}
	set[w] = old | mode
	w.index(k)[path] = old | mode
}

// removeLocked drops one registration entirely.
func (m *watchManager) removeLocked(w *Watcher, path string, k watchTableKind) {
	tbl := m.table(k)
	set := tbl[path]
	mode, ok := set[w]
	if !ok {
		return
	}
	if mode&modeRecursive != 0 {
		m.recursive--
	}
	delete(set, w)
	if len(set) == 0 {
		delete(tbl, path)
	}
	delete(w.index(k), path)
	m.n.Add(-1)
}

func (m *watchManager) removeAllLocked(w *Watcher) {
	for _, k := range []watchTableKind{watchData, watchChild} {
		for path := range w.index(k) {
			m.removeLocked(w, path, k)
		}
	}
}

// dispatch fires the events one apply collected, in order, with DataTree's
// mapping of tree changes to the two tables.
func (m *watchManager) dispatch(events []Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range events {
		switch e.Type {
		case EventNodeCreated, EventNodeDataChanged:
			m.triggerLocked(watchData, e, nil)
		case EventNodeDeleted:
			fired := m.triggerLocked(watchData, e, nil)
			m.triggerLocked(watchChild, e, fired)
		case EventNodeChildrenChanged:
			m.triggerLocked(watchChild, e, nil)
		}
	}
}

// triggerLocked is watchManager.triggerWatch: the watches on the path itself fire
// (standard ones are used up), and, when there are recursive watches, so do the
// recursive watches on every ancestor. Each watcher gets the event once; those in
// suppress are skipped. It returns the watchers it fired.
func (m *watchManager) triggerLocked(k watchTableKind, e Event, suppress []*Watcher) []*Watcher {
	tbl := m.table(k)
	var fired []*Watcher
	path := e.Path
	for exact := true; ; exact = false {
		if set := tbl[path]; len(set) > 0 {
			for w, mode := range set {
				switch {
				case exact:
					fired = appendOnce(fired, w)
					if mode&modeStandard != 0 {
						if rest := mode &^ modeStandard; rest == 0 {
							m.removeLocked(w, path, k)
						} else {
							set[w] = rest
							w.index(k)[path] = rest
						}
					}
				case mode&modeRecursive != 0:
					fired = appendOnce(fired, w)
				}
			}
		}
		if k != watchData || m.recursive == 0 || path == "/" {
			break
		}
		path = znode.Parent(path)
	}
	for _, w := range fired {
		if contains(suppress, w) {
			continue
		}
		if !w.deliver(e) {
			m.removeAllLocked(w)
			w.shut(ErrWatcherOverflow)
		}
	}
	return fired
}

func appendOnce(ws []*Watcher, w *Watcher) []*Watcher {
	if contains(ws, w) {
		return ws
	}
	return append(ws, w)
}

func contains(ws []*Watcher, w *Watcher) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

// RemoveWatches removes w's watches on path of the given ZooKeeper WatcherType
// (1 children, 2 data, 3 any, 4 persistent, 5 persistent-recursive) and reports
// whether there was one (removeWatches; false maps to NoWatcher).
func (f *FSM) RemoveWatches(path string, w *Watcher, watcherType int32) bool {
	m := f.watches
	m.mu.Lock()
	defer m.mu.Unlock()
	found := false
	drop := func(k watchTableKind, modes uint8) {
		mode, ok := m.table(k)[path][w]
		if !ok || mode&modes == 0 {
			return
		}
		found = true
		if rest := mode &^ modes; rest == 0 {
			m.removeLocked(w, path, k)
		} else {
			if mode&modeRecursive != 0 && rest&modeRecursive == 0 {
				m.recursive--
			}
			m.table(k)[path][w] = rest
			w.index(k)[path] = rest
		}
	}
	switch watcherType {
	case 1:
		drop(watchChild, modeStandard)
	case 2:
		drop(watchData, modeStandard)
	case 3:
		drop(watchChild, modeStandard|modePersistent)
		drop(watchData, modeStandard|modePersistent|modeRecursive)
	case 4:
		drop(watchChild, modePersistent)
		drop(watchData, modePersistent)
	case 5:
		drop(watchData, modeRecursive)
	}
	return found
}

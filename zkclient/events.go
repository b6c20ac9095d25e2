package zkclient

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
)

// Event is a watch notification or a change of the connection.
type Event struct {
	// Type is the node event (NodeCreated, NodeDeleted, NodeDataChanged,
	// NodeChildrenChanged), or EventNone for a connection change.
	Type zkwire.EventType
	// State is SyncConnected for node events; for connection changes
	// Disconnected, SyncConnected (reconnected: credentials and watches set
	// again), Expired (the session was lost; a new one follows with
	// SyncConnected) or AuthFailed (the client gave up).
	State zkwire.KeeperState
	// Path is the node's path, the chroot removed (node events).
	Path string
	// Zxid is the notification's zxid: −1 before ZooKeeper 3.9, the
	// triggering txn's since.
	Zxid int64
	// Time is when the client received the event.
	Time time.Time
	// Missed says events may have been lost before this one: a reconnect
	// (persistent watches miss what fired while no connection had them), a
	// new session, or a consumer so slow that the buffer
	// (Config.EventBuffer) overflowed.
	Missed bool
	// NewSession is set on the SyncConnected event of a new session.
	NewSession bool
}

// watchKind is a set of one-shot watches on a path.
type watchKind uint8

const (
	watchData  watchKind = 1 << iota // getData, exists on a node that exists
	watchExist                       // exists on a node that does not
	watchChild                       // getChildren
)

// watchSet is what the session watches, by server path, so that a new
// connection can set it again. Guarded by Client.mu.
type watchSet struct {
	persistent map[string]zkwire.AddWatchMode
	oneShot    map[string]watchKind
}

func newWatchSet() watchSet {
	return watchSet{persistent: make(map[string]zkwire.AddWatchMode), oneShot: make(map[string]watchKind)}
}

type persistentWatch struct {
	path string
	mode zkwire.AddWatchMode
}

func (w *watchSet) persistentList() []persistentWatch {
	var out []persistentWatch
	for _, p := range slices.Sorted(maps.Keys(w.persistent)) {
		out = append(out, persistentWatch{p, w.persistent[p]})
	}
	return out
}

// setWatches is the request that sets the one-shot watches again on a
// resumed session, nil when there are none.
func (w *watchSet) setWatches(relativeZxid int64) *zkwire.SetWatchesRequest {
	if len(w.oneShot) == 0 {
		return nil
	}
	req := &zkwire.SetWatchesRequest{RelativeZxid: relativeZxid}
	for _, p := range slices.Sorted(maps.Keys(w.oneShot)) {
		k := w.oneShot[p]
		if k&watchData != 0 {
			req.DataWatches = append(req.DataWatches, p)
		}
		if k&watchExist != 0 {
			req.ExistWatches = append(req.ExistWatches, p)
		}
		if k&watchChild != 0 {
			req.ChildWatches = append(req.ChildWatches, p)
		}
	}
	return req
}

func (w *watchSet) dropOneShot() { clear(w.oneShot) }

func (w *watchSet) clearKinds(path string, k watchKind) {
	if left := w.oneShot[path] &^ k; left == 0 {
		delete(w.oneShot, path)
	} else {
		w.oneShot[path] = left
	}
}

// fired forgets the one-shot watches an event used up (as ZooKeeper's
// WatchManager triggers them).
func (w *watchSet) fired(ev zkwire.WatcherEvent) {
	switch ev.Type {
	case zkwire.EventNodeCreated, zkwire.EventNodeDataChanged:
		w.clearKinds(ev.Path, watchData|watchExist)
	case zkwire.EventNodeDeleted:
		w.clearKinds(ev.Path, watchData|watchExist|watchChild)
	case zkwire.EventNodeChildrenChanged:
		w.clearKinds(ev.Path, watchChild)
	}
}

func (w *watchSet) remove(path string, typ zkwire.WatcherType) {
	switch typ {
	case zkwire.WatcherChildren:
		w.clearKinds(path, watchChild)
	case zkwire.WatcherData:
		w.clearKinds(path, watchData|watchExist)
	case zkwire.WatcherPersistent, zkwire.WatcherPersistentRecursive:
		delete(w.persistent, path)
	case zkwire.WatcherAny:
		delete(w.oneShot, path)
		delete(w.persistent, path)
	}
}

// watchReplied records the one-shot watch a read set, as the server did:
// getData and getChildren on success, exists as a data watch on a node that
// exists and an exist watch on one that does not. The read loop calls it
// before any later notification can be read.
func (c *Client) watchReplied(cl *Call, code zkwire.Code) {
	var k watchKind
	switch {
	case code == zkwire.CodeOK:
		k = cl.watch &^ watchExist
	case code == zkwire.CodeNoNode && cl.watch&watchExist != 0:
		k = watchExist
	}
	if k == 0 {
		return
	}
	p := pathOf(cl.req)
	c.mu.Lock()
	c.watches.oneShot[p] |= k
	c.mu.Unlock()
}

// notify hands a notification to the events.
func (c *Client) notify(ev zkwire.WatcherEvent, zxid int64) {
	c.mu.Lock()
	c.watches.fired(ev)
	c.mu.Unlock()
	c.events.push(Event{Type: ev.Type, State: ev.State, Path: c.rel(ev.Path), Zxid: zxid, Time: time.Now()})
}

// eventQueue holds events between the connection's reader and the consumer,
// so that a slow consumer (or none) never stalls replies; past its bound it
// drops events and marks the next one delivered Missed.
type eventQueue struct {
	mu      sync.Mutex
	q       []Event
	limit   int
	missed  bool
	stopped bool
	wake    chan struct{}
	out     chan Event
	closed  chan struct{}
}

func newEventQueue(limit int) *eventQueue {
	return &eventQueue{limit: limit, wake: make(chan struct{}, 1), out: make(chan Event), closed: make(chan struct{})}
}

func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	if len(q.q) >= q.limit {
		q.missed = true
		q.mu.Unlock()
		return
	}
	if q.missed {
		ev.Missed, q.missed = true, false
	}
	q.q = append(q.q, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close stops accepting events; deliver closes out once it has handed over
// what was queued.
func (q *eventQueue) close() {
	q.mu.Lock()
	if !q.stopped {
		q.stopped = true
		close(q.closed)
	}
	q.mu.Unlock()
}

// deliver hands queued events to out until ctx ends (Close) or the queue is
// closed and empty, then closes out.
func (q *eventQueue) deliver(ctx context.Context) {
	defer close(q.out)
	for {
		q.mu.Lock()
		batch := q.q
		q.q = nil
		stopped := q.stopped
		q.mu.Unlock()
		for _, ev := range batch {
			select {
			case q.out <- ev:
			case <-ctx.Done():
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		if stopped {
			return
		}
		select {
		case <-q.wake:
		case <-q.closed:
		case <-ctx.Done():
			return
		}
	}
}

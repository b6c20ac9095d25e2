package raftjournal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/zk2raft/zk2raft/znode"
)

// What the ZooKeeper protocol server (zkserver) needs from the FSM and the
// node beyond the embedding API: reads that check a node's ACL and set a
// watch atomically, SetWatches with DataTree's catch-up rules, session
// look-ups, batched session touches, and the node's client-port figures in
// its status.

// Access decides whether a read of a node with this ACL list is allowed:
// CodeOK, or the code to fail with (CodeNoAuth). Nil allows everything.
type Access func(acl []znode.ACL) Code

func (a Access) check(acls *aclCache, n *node) Code {
	if a == nil {
		return CodeOK
	}
	return a(acls.get(n.acl))
}

// LastZxid returns the largest zxid this FSM has applied (a ZooKeeper
// server's lastProcessedZxid). It takes no lock.
func (f *FSM) LastZxid() int64 { return f.lastZxid.Load() }

// Restores counts the snapshots restored into this FSM since it was made. A
// restore fires no watches, so a server drops its clients' connections when
// the count moves (they re-register with SetWatches and learn what changed).
func (f *FSM) Restores() uint64 { return f.restores.Load() }

// ReadData is getData with an ACL check: the data and stat, and a one-shot
// data watch on w (when not nil) set only if the node exists and access
// allows it, atomically with the read.
func (f *FSM) ReadData(path string, w *Watcher, access Access) ([]byte, znode.WireStat, Code) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.s.t.nodes[path]
	if n == nil {
		return nil, znode.WireStat{}, CodeNoNode
	}
	if c := access.check(f.s.t.acls, n); c != CodeOK {
		return nil, znode.WireStat{}, c
	}
	if w != nil {
		f.watches.add(w, path, watchData, modeStandard)
	}
	return n.data, n.wireStat(), CodeOK
}

// ReadExists is exists with ZooKeeper 3.8's ACL check (READ, only when the
// node exists): the stat, or CodeNoNode; the watch is set whether or not the
// node exists, unless access refused.
func (f *FSM) ReadExists(path string, w *Watcher, access Access) (znode.WireStat, Code) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.s.t.nodes[path]
	if n != nil {
		if c := access.check(f.s.t.acls, n); c != CodeOK {
			return znode.WireStat{}, c
		}
	}
	if w != nil {
		f.watches.add(w, path, watchData, modeStandard)
	}
	if n == nil {
		return znode.WireStat{}, CodeNoNode
	}
	return n.wireStat(), CodeOK
}

// ReadChildren is getChildren/getChildren2 with an ACL check: the sorted
// child names and the node's stat, and a one-shot child watch on w.
func (f *FSM) ReadChildren(path string, w *Watcher, access Access) ([]string, znode.WireStat, Code) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.s.t.nodes[path]
	if n == nil {
		return nil, znode.WireStat{}, CodeNoNode
	}
	if c := access.check(f.s.t.acls, n); c != CodeOK {
		return nil, znode.WireStat{}, c
	}
	if w != nil {
		f.watches.add(w, path, watchChild, modeStandard)
	}
	return sortedChildren(n), n.wireStat(), CodeOK
}

// ReadACL returns a node's ACL list (the cache's: do not modify it) and stat.
func (f *FSM) ReadACL(path string) ([]znode.ACL, znode.WireStat, Code) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.s.t.nodes[path]
	if n == nil {
		return nil, znode.WireStat{}, CodeNoNode
	}
	return f.s.t.acls.get(n.acl), n.wireStat(), CodeOK
}

// AllChildrenNumber is getAllChildrenNumber: the number of nodes below path
// (for "/", every node but the root, /zookeeper and its children included),
// after access allowed reading path itself.
func (f *FSM) AllChildrenNumber(path string, access Access) (int32, Code) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.s.t
	n := t.nodes[path]
	if n == nil {
		return 0, CodeNoNode
	}
	if c := access.check(t.acls, n); c != CodeOK {
		return 0, c
	}
	if path == "/" {
		return int32(len(t.nodes) - 1), CodeOK
	}
	// Walk the subtree through the child sets, not the whole table.
	count := 0
	stack := []string{path}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		nd := t.nodes[p]
		if nd == nil || nd.kids == nil {
			continue
		}
		for _, name := range nd.kids.names {
			count++
			stack = append(stack, p+"/"+name)
		}
	}
	return int32(count), CodeOK
}

// SetWatches re-registers a reconnected client's watches with DataTree's
// rules, atomically with respect to apply: a data watch fires NodeDeleted at
// once if the node is gone and NodeDataChanged if its mzxid is above
// relativeZxid, an exist watch fires NodeCreated if the node exists, a child
// watch fires NodeDeleted or NodeChildrenChanged (pzxid above relativeZxid);
// otherwise the watch is set. Persistent and recursive watches are set as
// they are. The events fired are delivered to w in that order, before any
// event of a later entry.
func (f *FSM) SetWatches(relativeZxid int64, data, exist, child, persistent, recursive []string, w *Watcher) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.s.t
	fire := func(typ EventType, path string) {
		if !w.deliver(Event{Type: typ, Path: path, Zxid: -1}) {
			f.watches.mu.Lock()
			f.watches.removeAllLocked(w)
			f.watches.mu.Unlock()
			w.shut(ErrWatcherOverflow)
		}
	}
	for _, p := range data {
		switch n := t.nodes[p]; {
		case n == nil:
			fire(EventNodeDeleted, p)
		case n.mzxid > relativeZxid:
			fire(EventNodeDataChanged, p)
		default:
			f.watches.add(w, p, watchData, modeStandard)
		}
	}
	for _, p := range exist {
		if t.nodes[p] != nil {
			fire(EventNodeCreated, p)
		} else {
			f.watches.add(w, p, watchData, modeStandard)
		}
	}
	for _, p := range child {
		switch n := t.nodes[p]; {
		case n == nil:
			fire(EventNodeDeleted, p)
		case n.pzxid > relativeZxid:
			fire(EventNodeChildrenChanged, p)
		default:
			f.watches.add(w, p, watchChild, modeStandard)
		}
	}
	for _, p := range persistent {
		f.watches.add(w, p, watchData, modePersistent)
		f.watches.add(w, p, watchChild, modePersistent)
	}
	for _, p := range recursive {
		f.watches.add(w, p, watchData, modeRecursive)
	}
}

// HasWatch is checkWatches: whether w has a watch on path of the given
// ZooKeeper WatcherType (1 children, 2 data, 3 any, 4 persistent, 5
// persistent recursive).
func (f *FSM) HasWatch(path string, w *Watcher, watcherType int32) bool {
	m := f.watches
	m.mu.Lock()
	defer m.mu.Unlock()
	d, c := m.data[path][w], m.child[path][w]
	switch watcherType {
	case 1:
		return c&modeStandard != 0
	case 2:
		return d&modeStandard != 0
	case 3:
		return d != 0 || c != 0
	case 4:
		return d&modePersistent != 0 || c&modePersistent != 0
	case 5:
		return d&modeRecursive != 0
	}
	return false
}

// WatchCounts returns w's registrations: data-table and child-table paths.
func (w *Watcher) WatchCounts() (data, child int) {
	w.mu.Lock()
	m := w.m
	w.mu.Unlock()
	if m == nil {
		return 0, 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(w.data), len(w.child)
}

// WatchedPaths returns the paths w watches, sorted (the wchc four-letter word).
func (w *Watcher) WatchedPaths() []string {
	w.mu.Lock()
	m := w.m
	w.mu.Unlock()
	if m == nil {
		return nil
	}
	m.mu.Lock()
	out := make([]string, 0, len(w.data)+len(w.child))
	for p := range w.data {
		out = append(out, p)
	}
	for p := range w.child {
		out = append(out, p)
	}
	m.mu.Unlock()
	slices.Sort(out)
	return slices.Compact(out)
}

// WatchedPathCount returns the number of distinct paths with a watch.
func (f *FSM) WatchedPathCount() int {
	m := f.watches
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.data)
	for p := range m.child {
		if _, ok := m.data[p]; !ok {
			n++
		}
	}
	return n
}

// Session returns one session of the table.
func (f *FSM) Session(id int64) (SessionInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.s.sessions[id]
	if s == nil {
		return SessionInfo{}, false
	}
	return SessionInfo{ID: id, TimeoutMs: s.timeoutMs, Ephemerals: len(f.s.t.ephemerals[id])}, true
}

// EphemeralsUnder returns a session's ephemeral paths that start with prefix
// (getEphemerals; "" or "/" for all), sorted.
func (f *FSM) EphemeralsUnder(session int64, prefix string) []string {
	all := f.Ephemerals(session)
	if p := strings.TrimSpace(prefix); p == "" || p == "/" {
		return all
	}
	out := all[:0]
	for _, p := range all {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out
}

// Sync waits until this node has applied every write committed before the
// call, on any node (ZooKeeper's sync; the read index of Linearizable reads).
func (n *Node) Sync(ctx context.Context) error {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	return n.readBarrier(ctx)
}

// WaitApplied waits until this node's FSM has applied the log entry at index
// (a write's Result.Index), so that local reads show it.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	return n.fsm.waitApplied(ctx, index)
}

// SessionReport is the leader's answer to a node's session touches: the
// sessions the table no longer has, and those whose client another node has
// claimed since (they moved). The node must close its connections of both.
type SessionReport struct {
	Expired, Moved []int64
}

// TouchSessions tells the leader that these sessions' clients are connected
// to this node and alive, in one request however many there are (ZooKeeper
// followers batch their clients' pings the same way). A session nobody owns
// (new, or not heard of since this leader was elected) becomes this node's;
// one another node claimed is reported moved and not renewed.
func (n *Node) TouchSessions(ctx context.Context, ids []int64) (SessionReport, error) {
	return n.sessionsOnLeader(ctx, ids, false)
}

// ClaimSessions makes this node the owner of sessions whose clients just
// connected or reconnected to it, and renews them: the leader remembers the
// owner of each session in memory (like ZooKeeper's SessionTracker, not in
// the log), refuses writes for the session from any other node
// (SubmitForSession fails with CodeSessionMoved) and reports the session
// moved to the former owner's next TouchSessions, so that a client is never
// live on two nodes at once.
func (n *Node) ClaimSessions(ctx context.Context, ids []int64) (SessionReport, error) {
	return n.sessionsOnLeader(ctx, ids, true)
}

func (n *Node) sessionsOnLeader(ctx context.Context, ids []int64, claim bool) (SessionReport, error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return SessionReport{}, err
	}
	defer end()
	payload := appendString(nil, string(n.id))
	payload = append(payload, boolByte(claim))
	payload = appendUvarint(payload, uint64(len(ids)))
	for _, id := range ids {
		payload = appendVarint(payload, id)
	}
	resp, err := n.onLeader(ctx, rpcTouchBatch, payloadOf(payload), func(context.Context) ([]byte, error) {
		return n.touchBatchLocal(string(n.id), claim, ids)
	})
	if err != nil {
		return SessionReport{}, err
	}
	var rep SessionReport
	d := &decoder{b: resp}
	for _, list := range []*[]int64{&rep.Expired, &rep.Moved} {
		k := d.count("session count", 1)
		for i := 0; i < k && d.err == nil; i++ {
			*list = append(*list, d.varint("session"))
		}
	}
	if err := d.finish(); err != nil {
		return SessionReport{}, fmt.Errorf("raftjournal: malformed touch response: %v", err)
	}
	return rep, nil
}

// touchBatchLocal renews sessions on this node as leader for the node that
// serves their clients, and encodes the ones the table does not have and
// the ones another node owns.
func (n *Node) touchBatchLocal(owner string, claim bool, ids []int64) ([]byte, error) {
	if !n.isLeader() {
		return nil, ErrNotLeader
	}
	now := time.Now()
	var gone, moved []int64
	for _, id := range ids {
		s, ok := n.fsm.Session(id)
		if !ok {
			gone = append(gone, id)
			continue
		}
		if !n.tracker.own(id, owner, claim) {
			moved = append(moved, id)
			continue
		}
		n.tracker.touch(id, time.Duration(s.TimeoutMs)*time.Millisecond, now)
	}
	out := appendUvarint(nil, uint64(len(gone)))
	for _, id := range gone {
		out = appendVarint(out, id)
	}
	out = appendUvarint(out, uint64(len(moved)))
	for _, id := range moved {
		out = appendVarint(out, id)
	}
	return out, nil
}

func decodeTouchBatch(d *decoder) (owner string, claim bool, ids []int64) {
	owner = d.string("owner")
	claim = d.byte1("claim") != 0
	k := d.count("session count", 1)
	ids = make([]int64, 0, k)
	for i := 0; i < k && d.err == nil; i++ {
		ids = append(ids, d.varint("session"))
	}
	return owner, claim, ids
}

// SubmitForSession submits a command on behalf of a client session
// connected to this node (zkserver's writes and closeSession). The leader
// first checks that this node still owns the session (ClaimSessions): if
// another node claimed it since, the command is refused without reaching
// the log, with CodeSessionMoved, as ZooKeeper's PrepRequestProcessor
// refuses a request from a server the session moved away from.
func (n *Node) SubmitForSession(ctx context.Context, session int64, c Command) (*Result, error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	sub := &submission{cmd: c, typ: c.EntryType()}
	var res *Result
	start := time.Now()
	resp, err := n.onLeader(ctx, rpcApplyOwned, func() []byte {
		b := appendString(nil, string(n.id))
		b = appendVarint(b, session)
		return append(b, sub.encoded()...)
	}, func(ctx context.Context) ([]byte, error) {
		if !n.tracker.own(session, string(n.id), false) {
			return nil, sessionMoved(session)
		}
		r, err := n.applyLocal(ctx, sub.stamped(time.Now().UnixMilli()), sub.typ)
		res = r
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	if res == nil {
		if res, err = decodeResult(resp); err != nil {
			return nil, err
		}
		n.metrics.observeApply(sub.typ, time.Since(start))
	}
	return res, nil
}

// SubmitInOrder submits several commands for one client session connected
// to this node, as SubmitForSession does, in one request to the leader: a
// session's pipelined writes. The leader appends them in the order given,
// queueing each without waiting for the one before to commit (they share
// disk writes and replication rounds), and answers when all are applied.
// The results and errors are per command, in order: a command's error is
// its own (ErrOutcomeUnknown when it was queued and then lost its leader or
// its caller; later commands may then have been applied or not). err is
// set when none was queued: CodeSessionMoved, or no leader in time.
func (n *Node) SubmitInOrder(ctx context.Context, session int64, cmds []Command) (results []*Result, errs []error, err error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer end()
	subs := make([]*submission, len(cmds))
	for i, c := range cmds {
		subs[i] = &submission{cmd: c, typ: c.EntryType()}
	}
	start := time.Now()
	resp, err := n.onLeader(ctx, rpcApplyInOrder, func() []byte {
		b := appendString(nil, string(n.id))
		b = appendVarint(b, session)
		b = appendUvarint(b, uint64(len(subs)))
		for _, s := range subs {
			b = appendBytes(b, s.encoded())
		}
		return b
	}, func(ctx context.Context) ([]byte, error) {
		if !n.tracker.own(session, string(n.id), false) {
			return nil, sessionMoved(session)
		}
		now := time.Now().UnixMilli()
		entries := make([][]byte, len(subs))
		for i, s := range subs {
			entries[i] = s.stamped(now)
		}
		var lerr error
		results, errs, lerr = n.applyInOrderLocal(ctx, entries)
		return nil, lerr
	})
	if err != nil {
		return nil, nil, err
	}
	if results == nil {
		if results, errs, err = decodeInOrderResults(resp, len(cmds)); err != nil {
			return nil, nil, err
		}
		for i, r := range results {
			if r != nil {
				n.metrics.observeApply(subs[i].typ, time.Since(start))
			}
		}
	}
	return results, errs, nil
}

// applyInOrderLocal appends stamped entries in order on this node as leader
// and waits for all of them. It fails as a whole with ErrNotLeader only when
// raft queued none of them, so that the caller may retry at the leader.
func (n *Node) applyInOrderLocal(ctx context.Context, entries [][]byte) ([]*Result, []error, error) {
	start := time.Now()
	futures := make([]raft.ApplyFuture, len(entries))
	for i, e := range entries {
		futures[i] = n.raft.Apply(e, enqueueTimeout(ctx))
	}
	results := make([]*Result, len(entries))
	errs := make([]error, len(entries))
	for i, f := range futures {
		results[i], errs[i] = n.applied(ctx, f, entryTypeOf(entries[i]), start)
	}
	if errors.Is(errs[0], ErrNotLeader) {
		return nil, nil, ErrNotLeader
	}
	for i := range errs {
		if errors.Is(errs[i], ErrNotLeader) {
			// Queued after an entry that may have been: the order is lost,
			// so its outcome is as unknown as the caller must treat it.
			errs[i] = fmt.Errorf("%w (%w): %w", ErrOutcomeUnknown, CodeConnectionLoss, errs[i])
		}
	}
	return results, errs, nil
}

// appendInOrderResults encodes SubmitInOrder's answer: the count, then per
// command a status byte (0: a length-prefixed Result, 1: an error).
func appendInOrderResults(b []byte, results []*Result, errs []error) []byte {
	b = appendUvarint(b, uint64(len(results)))
	for i := range results {
		if errs[i] != nil {
			b = append(b, 1)
			b = appendError(b, errs[i])
			continue
		}
		b = append(b, 0)
		b = appendBytes(b, appendResult(nil, results[i]))
	}
	return b
}

func decodeInOrderResults(p []byte, want int) ([]*Result, []error, error) {
	d := &decoder{b: p}
	k := d.count("result count", 1)
	if d.err == nil && k != want {
		d.fail(fmt.Sprintf("%d results for %d commands", k, want))
	}
	results, errs := make([]*Result, k), make([]error, k)
	for i := 0; i < k && d.err == nil; i++ {
		if d.byte1("status") != 0 {
			errs[i] = decodeError(d)
			continue
		}
		raw := d.bytes("result")
		if d.err != nil {
			break
		}
		r, err := decodeResult(raw)
		if err != nil {
			return nil, nil, err
		}
		results[i] = r
	}
	if err := d.finish(); err != nil {
		return nil, nil, fmt.Errorf("raftjournal: malformed in-order apply response: %v", err)
	}
	return results, errs, nil
}

func sessionMoved(session int64) error {
	return &OpError{Op: OpCheck, Path: fmt.Sprintf("session 0x%x", session), Code: CodeSessionMoved}
}

// ClientPort is what a node's ZooKeeper-protocol port reports in the node's
// status: its address and open connections.
type ClientPort struct {
	Addr        string // plain; "" without one
	SecureAddr  string // TLS; "" without one
	Connections int
}

// SetClientPort makes the node's status report its client port: f is called
// for every status request. Nil removes it.
func (n *Node) SetClientPort(f func() ClientPort) {
	if f == nil {
		n.clientPort.Store(nil)
		return
	}
	n.clientPort.Store(&f)
}

func (n *Node) clientPortStatus() (ClientPort, bool) {
	p := n.clientPort.Load()
	if p == nil {
		return ClientPort{}, false
	}
	return (*p)(), true
}

// DataDir returns the node's data directory (the conf four-letter word).
func (n *Node) DataDir() string { return n.cfg.DataDir }

// ApproximateDataSize is DataTree.approximateDataSize, what ZooKeeper's mntr
// reports as zk_approximate_data_size: the length of every node's path
// plus the length of its data, with the root counted under both "" and "/"
// as ZooKeeper's node table holds it. It walks the tree, as ZooKeeper does.
func (f *FSM) ApproximateDataSize() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var size int64
	for p, n := range f.s.t.nodes {
		size += int64(len(p) + len(n.data))
	}
	return size
}

// EntrySizes returns the sizes in bytes of the last, smallest and largest
// command entries this node has applied since it started, -1 each before
// the first (ZooKeeper's proposal sizes, which srvr and mntr report on the
// leader).
func (n *Node) EntrySizes() (last, smallest, largest int64) {
	f := n.fsm
	if f.lastEntry.Load() == 0 {
		return -1, -1, -1
	}
	return f.lastEntry.Load(), f.minEntry.Load(), f.maxEntry.Load()
}

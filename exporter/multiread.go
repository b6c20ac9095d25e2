package exporter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// ReadMode says how a walk reads nodes (see the package documentation,
// "Reading one node").
type ReadMode uint8

const (
	// ReadModeAuto uses multiRead where the ensemble has it (ZooKeeper 3.6+,
	// probed once at Start) and Config.Dialer is nil, and the classic reads
	// otherwise.
	ReadModeAuto ReadMode = iota
	// ReadModeClassic reads each node with getData, getACL and getChildren2
	// over go-zookeeper sessions.
	ReadModeClassic
	// ReadModeMultiRead reads nodes in batches, each one multiRead (getData and
	// getChildren of every node) followed by a getACL per node, over
	// zkclient sessions; Start fails if the ensemble answers
	// multiRead with an error.
	ReadModeMultiRead
)

func (m ReadMode) String() string {
	switch m {
	case ReadModeAuto:
		return "auto"
	case ReadModeClassic:
		return "classic"
	case ReadModeMultiRead:
		return "multiread"
	}
	return fmt.Sprintf("ReadMode(%d)", uint8(m))
}

// ParseReadMode parses "auto", "classic" or "multiread".
func ParseReadMode(s string) (ReadMode, error) {
	for _, m := range []ReadMode{ReadModeAuto, ReadModeClassic, ReadModeMultiRead} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("exporter: read mode %q: want auto, classic or multiread", s)
}

// DefaultBatchSize is the nodes per multiRead: on a three-server loopback
// ensemble 32 gets within 10% of 128 (BenchmarkReadShapes) with a quarter of
// the read-ahead.
const DefaultBatchSize = 32

// maxBatchSize keeps one multiRead request well under jute.maxbuffer even
// with long paths.
const maxBatchSize = 1024

// ErrNoMultiRead is returned by Start when Config.ReadMode is
// ReadModeMultiRead and the ensemble does not answer multiRead.
var ErrNoMultiRead = errors.New("exporter: the ensemble does not support multiRead (ZooKeeper 3.6+)")

// readModeOverride replaces ReadModeAuto when set: the package's tests set it
// (-exporter.readmode) to run their whole suite in each mode.
var readModeOverride ReadMode

// batchReaders is how many batches a multiRead walk keeps in flight.
func (c Config) batchReaders() int { return max(c.Workers/4, 1) }

// maxInflight is how many nodes the reorder buffer lets be read at once.
func (w *Walker) maxInflight() int {
	if w.multiRead {
		return w.cfg.batchReaders() * w.cfg.BatchSize
	}
	return w.cfg.Workers + max(w.cfg.Workers/8, 1)
}

// chooseReadMode settles ReadModeAuto: multiRead when no dialer is set and a
// probe on a session of its own gets an answer to a multiRead. A probe that
// gets no session at all fails Start: the classic walk would not get one
// either, and trying it too would take a second ConnectTimeout.
func (w *Walker) chooseReadMode(ctx context.Context) (bool, error) {
	mode := w.cfg.ReadMode
	if mode == ReadModeAuto && readModeOverride != ReadModeAuto {
		mode = readModeOverride
	}
	switch mode {
	case ReadModeClassic:
		return false, nil
	case ReadModeAuto:
		if w.cfg.Dialer != nil {
			return false, nil
		}
	}
	err := w.probeMultiRead(ctx)
	var noSession *probeDialError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &noSession):
		return false, noSession.err
	case mode == ReadModeMultiRead:
		return false, fmt.Errorf("%w: %w", ErrNoMultiRead, err)
	}
	w.cfg.Logger.Info("multiRead unavailable, reading node by node", "err", err)
	return false, nil
}

// probeDialError is a probe that got no session.
type probeDialError struct{ err error }

func (e *probeDialError) Error() string { return e.err.Error() }

// probeMultiRead opens a session and sends one multiRead. Any per-op answer,
// even NoNode or NoAuth, means the server has it; an error reply or a closed
// connection (servers before 3.6 do not know opcode 22) means it does not.
func (w *Walker) probeMultiRead(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.ConnectTimeout)
	defer cancel()
	s, err := w.dialWire(ctx, 0, &replyTracker{})
	if err != nil {
		return &probeDialError{err}
	}
	defer s.Close()
	w.stats.requests.Add(1)
	resp, err := wait(ctx, s.send(zkclient.Request{Op: zkwire.OpMultiRead, Body: &zkwire.MultiRequest{Ops: []zkwire.MultiOp{
		{Op: zkwire.OpGetData, Request: &zkwire.GetDataRequest{Path: w.cfg.Root}}}}})[0])
	if err != nil {
		return err
	}
	if m, ok := resp.(*zkwire.MultiResponse); !ok || len(m.Results) != 1 {
		return fmt.Errorf("exporter: unexpected multiRead reply %T", resp)
	}
	return nil
}

// batchTasks forms the tasks from work into batches of at most
// Config.BatchSize for the batch readers, until work is closed. A batch goes
// out as soon as a reader is free, with whatever has been issued by then; while
// every reader is busy (the ensemble is the bottleneck) the next batch grows,
// which is what saves requests.
func (w *Walker) batchTasks(work <-chan *task, batches chan<- []*task) {
	defer close(batches)
	k := w.cfg.BatchSize
	var batch []*task
	for {
		if len(batch) == 0 {
			t, ok := <-work
			if !ok {
				return
			}
			batch = append(make([]*task, 0, k), t)
		}
	drain:
		for len(batch) < k {
			select {
			case t, ok := <-work:
				if !ok {
					batches <- batch
					return
				}
				batch = append(batch, t)
			default:
				break drain
			}
		}
		if len(batch) >= k {
			batches <- batch
			batch = nil
			continue
		}
		select {
		case t, ok := <-work:
			if !ok {
				batches <- batch
				return
			}
			batch = append(batch, t)
		case batches <- batch:
			batch = nil
		}
	}
}

// runBatchReader reads the batches it is given and hands their tasks on.
func (w *Walker) runBatchReader(ctx context.Context, s *session, batches <-chan []*task, results chan<- *task) {
	for batch := range batches {
		w.readBatch(ctx, s, batch)
		for _, t := range batch {
			results <- t
		}
	}
}

// readBatch reads every task of the batch until each has a consistent state
// or gives up, with read's rules: a node whose replies disagree is read again
// (in the next, smaller batch), connection loss is retried with backoff for
// up to RetryTimeout, a new session is synced before it is read from.
func (w *Walker) readBatch(ctx context.Context, s *session, tasks []*task) {
	var failingSince time.Time
	backoff := 20 * time.Millisecond
	pending := tasks
	failAll := func(err error) {
		for _, t := range pending {
			t.outcome, t.err = outcomeFailed, err
		}
	}
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			failAll(err)
			return
		}
		conn, sid := s.current()
		if conn == nil {
			failAll(ErrWalkerClosed)
			return
		}
		if conn.SessionID() != sid {
			if err := s.resync(ctx); err != nil {
				if !w.retryBatch(ctx, pending, &failingSince, &backoff, err) {
					return
				}
			}
			continue
		}
		wc, ok := conn.(*wireSession)
		if !ok {
			failAll(errors.New("exporter: internal error: a multiRead walk on a go-zookeeper session"))
			return
		}
		results, err := w.readBatchOnce(ctx, wc, pending)
		if conn.SessionID() != sid {
			// Some replies may come from a new session that has not synced.
			continue
		}
		switch {
		case err == nil:
		case errors.Is(err, zk.ErrSessionExpired):
			if !w.retryBatch(ctx, pending, &failingSince, &backoff, err) {
				return
			}
			continue
		case !retryable(err):
			if ctx.Err() != nil {
				err = ctx.Err()
			} else {
				err = fmt.Errorf("exporter: read %s and %d more: %w", pending[0].path, len(pending)-1, err)
			}
			failAll(err)
			return
		default:
			if !w.retryBatch(ctx, pending, &failingSince, &backoff, err) {
				return
			}
			continue
		}
		var again []*task
		var pause time.Duration
		for i, t := range pending {
			r := results[i]
			switch {
			case r.err == nil:
				t.outcome, t.node, t.children = outcomeRead, r.node, r.children
			case errors.Is(r.err, zk.ErrNoNode):
				t.outcome = outcomeGone
			case errors.Is(r.err, zk.ErrNoAuth):
				t.outcome = outcomeUnreadable
			case errors.Is(r.err, errMoved):
				t.rereads++
				w.stats.rereads.Add(1)
				if t.rereads >= maxWalkRereads {
					t.outcome, t.err = outcomeFailed, fmt.Errorf("exporter: read %s: it changed between the reads of each of %d attempts", t.path, t.rereads)
					continue
				}
				if t.rereads > quickStatRetries {
					pause = max(pause, time.Duration(t.rereads)*time.Millisecond)
				}
				again = append(again, t)
			default:
				t.outcome, t.err = outcomeFailed, fmt.Errorf("exporter: read %s: %w", t.path, r.err)
			}
		}
		pending = again
		if pause > 0 && len(pending) > 0 {
			sleep(ctx, pause) // a cancelled context is reported at the top
		}
	}
}

// retryBatch is retry for a batch: it waits, or fails every task once the
// batch has been failing for longer than RetryTimeout.
func (w *Walker) retryBatch(ctx context.Context, tasks []*task, failingSince *time.Time, backoff *time.Duration, err error) bool {
	if w.retry(ctx, tasks[0], failingSince, backoff, err) {
		return true
	}
	for _, t := range tasks[1:] {
		t.outcome, t.err = outcomeFailed, tasks[0].err
	}
	return false
}

// batchResult is what one attempt at one node of a batch came to: a node, or
// zk.ErrNoNode, zk.ErrNoAuth, errMoved or another ZooKeeper error.
type batchResult struct {
	node     *znode.Node
	children []string
	err      error
}

// readBatchOnce reads a batch of nodes with one multiRead holding, for each
// node in turn, getData then getChildren, followed on the same session by one
// getACL per node, all sent in one write. ZooKeeper answers a session's
// requests in order and a multiRead's ops in order, so for each node the
// getData, the getChildren and the getACL were evaluated in that order; the
// node is taken when the getData and getACL stats agree on czxid (same
// incarnation), mzxid (data), pzxid (children) and aversion (ACL): then the
// data, the child list read between them and the ACL all describe one state
// the node really had. The returned error is for the whole batch (connection
// loss, ctx); per-node outcomes are in the results.
func (w *Walker) readBatchOnce(ctx context.Context, s *wireSession, tasks []*task) ([]batchResult, error) {
	n := len(tasks)
	if err := w.limiter.wait(ctx, n+1); err != nil {
		return nil, err
	}
	ops := make([]zkwire.MultiOp, 0, 2*n)
	reqs := make([]zkclient.Request, 0, n+1)
	reqs = append(reqs, zkclient.Request{})
	for _, t := range tasks {
		ops = append(ops,
			zkwire.MultiOp{Op: zkwire.OpGetData, Request: &zkwire.GetDataRequest{Path: t.path}},
			zkwire.MultiOp{Op: zkwire.OpGetChildren, Request: &zkwire.GetChildrenRequest{Path: t.path}})
		reqs = append(reqs, zkclient.Request{Op: zkwire.OpGetACL, Body: &zkwire.GetACLRequest{Path: t.path}})
	}
	reqs[0] = zkclient.Request{Op: zkwire.OpMultiRead, Body: &zkwire.MultiRequest{Ops: ops}}
	w.stats.requests.Add(int64(n + 1))
	calls := s.send(reqs...)
	resp, err := wait(ctx, calls[0])
	if err != nil {
		return nil, err
	}
	multi, ok := resp.(*zkwire.MultiResponse)
	if !ok || len(multi.Results) != 2*n {
		return nil, fmt.Errorf("exporter: multiRead of %d ops answered with %d results", 2*n, len(multi.Results))
	}
	results := make([]batchResult, n)
	for i, t := range tasks {
		aresp, aerr := wait(ctx, calls[i+1])
		if aerr != nil && (ctx.Err() != nil || retryable(aerr) || errors.Is(aerr, zk.ErrSessionExpired)) {
			return nil, aerr
		}
		results[i] = nodeFromBatch(t.path, multi.Results[2*i], multi.Results[2*i+1], aresp, aerr)
	}
	return results, nil
}

// nodeFromBatch puts one node together from its getData and getChildren
// results and its getACL reply, checking that they describe one state.
func nodeFromBatch(path string, dataRes, kidsRes zkwire.MultiResult, aclResp zkwire.Response, aclErr error) batchResult {
	if dataRes.Op == zkwire.OpError {
		return batchResult{err: convertCode(dataRes.Err)}
	}
	gd, ok := dataRes.Response.(*zkwire.GetDataResponse)
	if !ok {
		return batchResult{err: fmt.Errorf("exporter: multiRead getData answered with %v", dataRes.Op)}
	}
	if aclErr != nil {
		return batchResult{err: aclErr}
	}
	ga := aclResp.(*zkwire.GetACLResponse)
	st := gd.Stat
	if !sameWireState(st, ga.Stat) {
		return batchResult{err: errMoved}
	}
	var children []string
	if kidsRes.Op == zkwire.OpError {
		// The node was there for the getData and the getACL, with the same
		// stat: a NoNode here means it went and came back, a NoAuth that its
		// ACL changed and changed back. Either way, read it again.
		if err := convertCode(kidsRes.Err); !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNoAuth) {
			return batchResult{err: err}
		}
		return batchResult{err: errMoved}
	}
	if gc, ok := kidsRes.Response.(*zkwire.GetChildrenResponse); ok {
		children = gc.Children
	} else {
		return batchResult{err: fmt.Errorf("exporter: multiRead getChildren answered with %v", kidsRes.Op)}
	}
	if len(children) != int(st.NumChildren) {
		return batchResult{err: errMoved}
	}
	return batchResult{
		node: &znode.Node{
			Path:        path,
			Data:        gd.Data,
			ACL:         ga.ACL,
			Stat:        znode.FromWire(st, st.EphemeralOwner),
			NumChildren: st.NumChildren,
		},
		children: children,
	}
}

// sameWireState is sameState for zkwire stats, and also compares the
// version counters, which move with the zxids it compares.
func sameWireState(a, b znode.WireStat) bool {
	return a.Czxid == b.Czxid && a.Mzxid == b.Mzxid && a.Pzxid == b.Pzxid &&
		a.Version == b.Version && a.Cversion == b.Cversion && a.Aversion == b.Aversion
}

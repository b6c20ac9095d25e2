package dualwrite

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
)

// deliveryState tells sync-mode writers when their mirror is committed.
type deliveryState struct {
	mu    sync.Mutex
	acked uint64
	ch    chan struct{} // closed and replaced at every ack
}

func newDeliveryState() *deliveryState { return &deliveryState{ch: make(chan struct{})} }

func (d *deliveryState) ack(seq uint64) {
	d.mu.Lock()
	if seq > d.acked {
		d.acked = seq
		close(d.ch)
		d.ch = make(chan struct{})
	}
	d.mu.Unlock()
}

// wait reports whether seq was delivered within timeout.
func (d *deliveryState) wait(ctx context.Context, seq uint64, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		d.mu.Lock()
		done, ch := d.acked >= seq, d.ch
		d.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// journalPingEvery is how often an idle tap checks that the journal answers
// (JournalPinger), so that its status tells an outage before a write does.
const journalPingEvery = 10 * time.Second

// JournalState is the tap's view of the journal it delivers to, for /status.
type JournalState struct {
	// State is "reachable" (the last delivery or ping succeeded),
	// "unreachable" (mirrored writes wait in the queue until it answers) or
	// "unknown" (not tried yet).
	State string `json:"state"`
	// Since is when the state began.
	Since time.Time `json:"since,omitzero"`
	// Error is why the journal is unreachable.
	Error string `json:"error,omitempty"`
	// LastDelivery is when mirrors were last committed by the journal.
	LastDelivery time.Time `json:"last_delivery,omitzero"`
	// Members are the journal members the tap reaches it through, the one
	// answering first (a journal reached through several members only).
	Members []string `json:"members,omitempty"`
}

// journalTracker follows whether the journal answers.
type journalTracker struct {
	mu        sync.Mutex
	st        JournalState
	lastWarn  time.Time
	failures  int
	delivered time.Time
}

// journalDown records a failed delivery (retry is the next attempt's delay)
// and says so: at once when the journal was reachable, then every minute.
func (t *Tap) journalDown(err error, retry time.Duration) {
	j := &t.jstate
	j.mu.Lock()
	was := j.st.State
	if was != "unreachable" {
		j.st = JournalState{State: "unreachable", Since: time.Now()}
	}
	j.st.Error = err.Error()
	j.failures++
	warn := was != "unreachable" || time.Since(j.lastWarn) >= time.Minute
	if warn {
		j.lastWarn = time.Now()
	}
	since, failures := j.st.Since, j.failures
	j.mu.Unlock()
	if warn {
		t.log.Warn("journal unreachable: mirrored writes stay queued and are delivered when it answers; ZooKeeper's clients are served meanwhile",
			"queued", t.queue.Stats().Records, "lag", t.lag().Round(time.Millisecond), "since", since.Format(time.RFC3339), "attempts", failures, "retry-in", retry, "err", err)
	}
}

// journalUp records a successful delivery or ping.
func (t *Tap) journalUp() {
	j := &t.jstate
	j.mu.Lock()
	was, since := j.st.State, j.st.Since
	if was != "reachable" {
		j.st = JournalState{State: "reachable", Since: time.Now()}
	}
	j.failures = 0
	j.mu.Unlock()
	if was == "unreachable" {
		t.log.Info("journal reachable again; delivering the queued mirrors", "queued", t.queue.Stats().Records, "outage", time.Since(since).Round(time.Millisecond))
	}
}

// ping checks an idle journal (JournalPinger).
func (t *Tap) ping() {
	p, ok := t.cfg.Journal.(JournalPinger)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		if t.ctx.Err() == nil {
			t.journalDown(err, journalPingEvery)
		}
		return
	}
	t.journalUp()
}

// journalState returns the tap's view of the journal.
func (t *Tap) journalState() JournalState {
	j := &t.jstate
	j.mu.Lock()
	st := j.st
	st.LastDelivery = j.delivered
	j.mu.Unlock()
	if st.State == "" {
		st.State = "unknown"
	}
	if m, ok := t.cfg.Journal.(JournalMembers); ok {
		st.Members = m.AdminAddrs()
	}
	return st
}

// maxBatchEntry bounds the bytes of one SourceBatch entry: a Raft entry
// replicated in one message.
const maxBatchEntry = 4 << 20

// deliverLoop drains the queue into the journal: the head of the queue is
// submitted as SourceBatch entries, one at a time and in queue order (the
// order ZooKeeper committed the writes, per connection; the journal logs a
// digest at a zxid only when the txns before it are applied), and acknowledged
// in the queue once applied. A journal that cannot be reached is retried with backoff; ZooKeeper
// traffic is never held for it (unless --sync, and then at most SyncTimeout).
func (t *Tap) deliverLoop() {
	defer t.wg.Done()
	if st := t.queue.Stats(); st.HeadSeq > 0 {
		t.delivered.ack(st.HeadSeq - 1)
	}
	t.ping() // say at once whether the journal is there
	backoff := 50 * time.Millisecond
	lastPing := time.Now()
	for t.ctx.Err() == nil {
		recs, err := t.queue.Peek(t.cfg.DeliveryBatch, 8<<20)
		if err != nil {
			t.log.Error("cannot read the mirror queue", "err", err)
			t.sleep(time.Second)
			continue
		}
		if len(recs) == 0 {
			if time.Since(lastPing) >= journalPingEvery {
				t.ping()
				lastPing = time.Now()
			}
			select {
			case <-t.queue.Ready():
			case <-t.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if err := t.submit(recs); err != nil {
			if t.ctx.Err() != nil {
				return
			}
			t.metrics.deliveryErrors.Inc()
			t.journalDown(err, backoff)
			t.sleep(backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		lastPing = time.Now()
		t.journalUp()
		backoff = 50 * time.Millisecond
		last := recs[len(recs)-1].Seq
		if err := t.queue.Ack(last); err != nil {
			t.log.Error("cannot acknowledge delivered mirrors in the queue; they will be delivered again", "err", err)
			t.sleep(time.Second)
			continue
		}
		t.metrics.delivered.Add(float64(len(recs)))
		t.delivered.ack(last)
		t.jstate.mu.Lock()
		t.jstate.delivered = time.Now()
		t.jstate.mu.Unlock()
		if len(recs) < t.cfg.DeliveryBatch && !t.cfg.Sync && t.cfg.DeliveryLinger > 0 {
			// A short batch: let more mirrors gather before the next Raft
			// round, which costs the journal the same for one txn as for a
			// thousand. Sync mode does not wait: a client is waiting.
			t.sleep(t.cfg.DeliveryLinger)
		}
	}
}

func (t *Tap) sleep(d time.Duration) {
	select {
	case <-t.ctx.Done():
	case <-time.After(d):
	}
}

// submit applies queued mirrors in order, as few SourceBatch entries as
// fit, once their read-backs are done (resolve). A refusal by the state machine (the journal left the shadow phase, a
// malformed txn) is final: those writes are counted as failed (divergence the
// reconciler must repair) and not retried.
func (t *Tap) submit(recs []Record) error {
	all := t.resolve(recs)
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) && (n == 0 || size+len(all[n]) <= maxBatchEntry) {
			size += len(all[n])
			n++
		}
		entries := slices.Clone(all[:n])
		// The queue holds writes in the order their replies reached the tap,
		// which is ZooKeeper's commit order per connection only. Mirrors
		// commute, so a batch is applied in zxid order: the journal then logs
		// ZooKeeper's digest at a zxid only with every earlier txn of the batch
		// applied.
		slices.SortStableFunc(entries, func(a, b []byte) int { return cmp.Compare(entryZxid(a), entryZxid(b)) })
		entry, err := raftjournal.EncodeSourceBatch(entries)
		if err != nil {
			// A record that is not a mirror: the queue holds only what the tap
			// wrote, so this is damage; it cannot be delivered.
			t.metrics.failed.WithLabelValues("undeliverable").Add(float64(n))
			t.log.Error("queued mirrors that are not SourceTxn entries; dropped", "from-seq", recs[0].Seq, "to-seq", recs[n-1].Seq, "err", err)
			recs, all = recs[n:], all[n:]
			continue
		}
		ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
		res, err := t.cfg.Journal.Submit(ctx, entry)
		cancel()
		if err != nil {
			return fmt.Errorf("submit %d mirrors: %w", n, err)
		}
		if res.Err != nil {
			reason := "refused"
			if errors.Is(res.Err, raftjournal.ErrWrongPhase) {
				reason = "wrong phase"
			}
			t.metrics.failed.WithLabelValues(reason).Inc()
			t.log.Error("journal refused mirrored writes: ZooKeeper and the journal diverge", "from-seq", recs[0].Seq, "to-seq", recs[n-1].Seq, "err", res.Err)
		}
		recs, all = recs[n:], all[n:]
	}
	return nil
}

// entryZxid orders queued mirrors: a record that is not a SourceTxn sorts
// first, and EncodeSourceBatch refuses it.
func entryZxid(e []byte) int64 {
	z, _ := raftjournal.SourceTxnZxid(e)
	return z
}

package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

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

// deliverParallel bounds the mirrors of one batch submitted at once: the
// journal groups concurrent entries into shared disk writes and replication
// rounds. SourceTxns commute, so their order does not matter.
const deliverParallel = 32

// deliverLoop drains the queue into the journal: a batch from the head is
// submitted, and acknowledged in the queue once every entry of it was
// applied. A journal that cannot be reached is retried with backoff; ZooKeeper
// traffic is never held for it (unless --sync, and then at most SyncTimeout).
func (t *Tap) deliverLoop() {
	defer t.wg.Done()
	if st := t.queue.Stats(); st.HeadSeq > 0 {
		t.delivered.ack(st.HeadSeq - 1)
	}
	backoff := 50 * time.Millisecond
	for t.ctx.Err() == nil {
		recs, err := t.queue.Peek(t.cfg.DeliveryBatch, 8<<20)
		if err != nil {
			t.log.Error("cannot read the mirror queue", "err", err)
			t.sleep(time.Second)
			continue
		}
		if len(recs) == 0 {
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
			t.log.Warn("journal unavailable; mirrored writes stay queued", "queued", t.queue.Stats().Records, "retry-in", backoff, "err", err)
			t.sleep(backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		last := recs[len(recs)-1].Seq
		if err := t.queue.Ack(last); err != nil {
			t.log.Error("cannot acknowledge delivered mirrors in the queue; they will be delivered again", "err", err)
			t.sleep(time.Second)
			continue
		}
		t.metrics.delivered.Add(float64(len(recs)))
		t.delivered.ack(last)
	}
}

func (t *Tap) sleep(d time.Duration) {
	select {
	case <-t.ctx.Done():
	case <-time.After(d):
	}
}

// submit applies a batch of queued mirrors. A refusal by the state machine
// (the journal left the shadow phase, a malformed entry) is final: the write
// is counted as failed divergence and not retried.
func (t *Tap) submit(recs []Record) error {
	g, ctx := errgroup.WithContext(t.ctx)
	g.SetLimit(deliverParallel)
	for _, r := range recs {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			res, err := t.cfg.Journal.Submit(cctx, r.Data)
			if err != nil {
				return err
			}
			if res.Err != nil {
				reason := "refused"
				if errors.Is(res.Err, raftjournal.ErrWrongPhase) {
					reason = "wrong phase"
				}
				t.metrics.failed.WithLabelValues(reason).Inc()
				t.log.Error("journal refused a mirrored write: ZooKeeper and the journal diverge", "seq", r.Seq, "err", res.Err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("submit %d mirrors: %w", len(recs), err)
	}
	return nil
}

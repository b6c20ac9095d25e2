package dualwrite

import (
	"context"
	"fmt"
	"time"
)

// ClearLost forgets the tap's record of lost mirrors, after a repair pass
// made the journal whole again.
func (t *Tap) ClearLost() error { return t.queue.ClearLost() }

// RepairOwed runs, until ctx ends, the repair pass the tap owes the journal
// whenever its queue records lost mirrors (the queue overflowed, a reply could
// not be mirrored, possibly before a restart): a full RepairAll of the
// reconciler's root once everything queued before it is delivered, after
// which the record is cleared, unless more writes were lost while the pass
// ran or a check of the pass failed (then it runs again). Nodes the
// reconciler cannot read do not hold the record: no pass would repair them;
// the reconciler reports them. It checks every interval.
func RepairOwed(ctx context.Context, t *Tap, r *Reconciler, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if before, ok := t.queue.Lost(); ok {
			t.log.Warn("the journal is missing mirrored writes; running a repair pass once the queue is delivered",
				"lost", before.Count, "first-zxid", fmt.Sprintf("%#x", before.FirstZxid), "last-zxid", fmt.Sprintf("%#x", before.LastZxid))
			// What was queued before the pass must be in the journal first:
			// a mirror delivered after the pass could bring back a node the
			// pass found gone from both sides.
			for tail := t.queue.Stats().TailSeq; !t.delivered.wait(ctx, tail, time.Minute); {
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			st, err := r.RepairAll(ctx, r.cfg.Root)
			switch {
			case err != nil && ctx.Err() != nil:
				return ctx.Err()
			case err != nil:
				t.log.Error("repair pass for lost mirrors failed; retrying", "err", err)
			case st.Failed > 0:
				// A check that failed (the journal changing leader, say) may be
				// the very write that was lost: the record stays until a pass
				// repairs everything it can read.
				t.log.Warn("repair pass for lost mirrors left paths unrepaired; retrying", "failed", st.Failed)
			default:
				if after, ok := t.queue.Lost(); ok && after == before {
					if err := t.queue.ClearLost(); err != nil {
						t.log.Error("cannot clear the lost-mirror record", "err", err)
					} else {
						t.log.Info("repair pass done: the journal has every lost mirror", "nodes", st.NodeRepairs, "deletes", st.DeleteRepairs)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

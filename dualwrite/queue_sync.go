package dualwrite

// The queue's background fsync and its clean shutdown.

import (
	"context"
	"fmt"
	"time"
)

// waitSynced waits until the records through seq are fsynced.
func (q *Queue) waitSynced(ctx context.Context, seq uint64) error {
	for {
		q.mu.Lock()
		synced, failed, ch := q.synced, q.failed, q.syncedCh
		q.mu.Unlock()
		switch {
		case synced >= seq:
			return nil
		case failed != nil:
			return failed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runSyncer fsyncs what Append wrote and writes the state file for acks;
// after stop, it does both a last time, marking the shutdown clean.
func (q *Queue) runSyncer() {
	defer close(q.syncerDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := q.syncPass(false)
		if wait == 0 {
			select {
			case <-q.stop:
				q.closeErr = q.finalPass()
				return
			default:
				continue
			}
		}
		var tick <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-q.kick:
		case <-tick:
		case <-q.stop:
			q.closeErr = q.finalPass()
			return
		}
	}
}

// syncPass does the fsync and the state write that are due, and returns how
// long until the next one is: 0 for at once, negative for none pending.
func (q *Queue) syncPass(final bool) time.Duration {
	now := time.Now()
	q.mu.Lock()
	stateDue := final || q.stateDirty && now.Sub(q.stateAt) >= queueStateEvery
	dataDue := (q.dataDirty || q.dirDirty) && (final || stateDue || q.cfg.SyncOnAppend || now.Sub(q.dirtyAt) >= q.cfg.SyncEvery)
	active, dir, target := q.segments[len(q.segments)-1], q.dirDirty, q.next-1
	if dataDue {
		q.dataDirty, q.dirDirty = false, false
	}
	if stateDue {
		q.stateDirty = false
	}
	// Once the fsync below is done (or, if none is due, already), the
	// records through st.next-1 are on disk; not so after a failed one.
	st := queueFileState{next: q.next, acked: q.acked}
	ok := q.failed == nil
	q.mu.Unlock()

	if dataDue {
		err := q.syncFile(active.f)
		if err == nil && dir {
			err = q.syncDir()
		}
		q.mu.Lock()
		if err != nil {
			q.fail(fmt.Errorf("dualwrite: sync queue segment %s: %w", active.path, err))
			ok = false
		} else {
			q.synced = max(q.synced, target)
			close(q.syncedCh)
			q.syncedCh = make(chan struct{})
		}
		q.mu.Unlock()
	}
	if stateDue && ok && !final {
		q.stateAt = now
		if err := q.persistState(st, false); err != nil {
			q.logger.Warn("cannot write the queue state; retrying", "dir", q.dir, "error", err)
			q.mu.Lock()
			q.stateDirty = true
			q.mu.Unlock()
		}
	}
	if final {
		return -1
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failed != nil {
		return -1 // nothing can be synced or persisted any more
	}
	wait := time.Duration(-1)
	if q.dataDirty || q.dirDirty {
		if q.cfg.SyncOnAppend {
			return 0
		}
		wait = max(0, q.cfg.SyncEvery-time.Since(q.dirtyAt))
	}
	if q.stateDirty {
		if w := max(0, queueStateEvery-time.Since(q.stateAt)); wait < 0 || w < wait {
			wait = w
		}
	}
	return wait
}

// persistState writes the state file with st's seqs and the lost mark held
// in memory, then deletes the segments it makes unneeded.
func (q *Queue) persistState(st queueFileState, clean bool) error {
	q.stateMu.Lock()
	q.mu.Lock()
	st.lost = q.lost
	q.mu.Unlock()
	st.clean = clean
	err := q.writeStateLocked(st)
	q.stateMu.Unlock()
	if err != nil {
		return err
	}
	return q.deleteAckedSegments(st.acked)
}

// finalPass runs after stop: everything appended is fsynced, and the state
// file says the shutdown was clean (unless an fsync failed, or a test
// simulates a crash).
func (q *Queue) finalPass() error {
	q.mu.Lock()
	crashed := q.crashed
	q.mu.Unlock()
	if crashed {
		return nil
	}
	q.syncPass(true)
	q.mu.Lock()
	st := queueFileState{next: q.next, acked: q.acked}
	failed := q.failed
	q.mu.Unlock()
	if failed != nil {
		return fmt.Errorf("dualwrite: queue not closed cleanly: %w", failed)
	}
	return q.persistState(st, true)
}

package dualwrite

// Reading the queue: Peek, Ack, the lost marker, stats and Close.

import (
	"fmt"
	"syscall"
	"time"
)

// Peek returns up to max records from the head, oldest first, without
// removing them: at most maxBytes of payload, but at least one record if
// there is any. A max or maxBytes ≤ 0 is no limit. The records' Data are the
// caller's. A record that fails its checks is an error wrapping
// ErrQueueCorrupt, naming the segment and offset.
func (q *Queue) Peek(max int, maxBytes int) ([]Record, error) {
	q.life.RLock()
	defer q.life.RUnlock()
	type span struct {
		s         *queueSegment
		first     uint64
		off, end  int64
		n         int
		dataBytes int
	}
	var spans []span
	count, total := 0, 0
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, ErrQueueClosed
	}
collect:
	for _, s := range q.segments {
		for i, m := range s.recs {
			if max > 0 && count == max || maxBytes > 0 && count > 0 && total+int(m.size) > maxBytes {
				break collect
			}
			if len(spans) == 0 || spans[len(spans)-1].s != s {
				spans = append(spans, span{s: s, first: s.base + uint64(i), off: m.off})
			}
			sp := &spans[len(spans)-1]
			sp.end = m.off + queueRecordHeaderLen + int64(m.size)
			sp.n++
			count++
			total += int(m.size)
		}
	}
	q.mu.Unlock()

	out := make([]Record, 0, count)
	for _, sp := range spans {
		buf := make([]byte, sp.end-sp.off)
		if _, err := sp.s.f.ReadAt(buf, sp.off); err != nil {
			return nil, fmt.Errorf("dualwrite: read queue segment %s at offset %d: %w", sp.s.path, sp.off, err)
		}
		pos := 0
		for i := range sp.n {
			h, data, n, err := decodeQueueRecord(buf[pos:])
			if err == nil && h.seq != sp.first+uint64(i) {
				err = fmt.Errorf("holds seq %d where seq %d belongs", h.seq, sp.first+uint64(i))
			}
			if err != nil {
				return nil, queueCorrupt(sp.s.path, "offset %d: %v", sp.off+int64(pos), err)
			}
			out = append(out, Record{Seq: h.seq, Data: data[:len(data):len(data)]})
			pos += n
		}
	}
	return out, nil
}

// Ready returns a channel that receives (a non-blocking send, capacity 1)
// after every Append that appended records.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Ack removes every record with Seq ≤ seq. Acking below the head does
// nothing; acking past the tail is an error, since those seqs were never
// handed out. The removal is durable within queueStateEvery (100 ms) and at
// Close; a crash before that brings the records back (see "Acks are lazy"
// in queue.go).
func (q *Queue) Ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return ErrQueueClosed
	case seq >= q.next:
		return fmt.Errorf("dualwrite: ack through %d is past the queue's tail %d", seq, q.next-1)
	case seq <= q.acked:
		return nil
	}
	for _, s := range q.segments {
		if len(s.recs) == 0 {
			continue
		}
		if s.base > seq {
			break
		}
		k := min(int(seq-s.base+1), len(s.recs))
		for _, m := range s.recs[:k] {
			q.bytes -= int64(m.size)
		}
		s.recs = s.recs[k:]
		s.base += uint64(k)
	}
	q.removed += seq - q.acked
	q.acked = seq
	if !q.stateDirty {
		q.stateDirty = true
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// MarkLost durably records that the mirrored write of source zxid was
// dropped (the queue was full), so that after a restart the proxy still
// knows the journal diverged and a repair pass is owed. It widens the
// recorded zxid range and counts the write.
func (q *Queue) MarkLost(zxid int64) error {
	return q.updateLost(func(l *LostInfo) *LostInfo {
		if l == nil {
			return &LostInfo{FirstZxid: zxid, LastZxid: zxid, Count: 1, Since: time.Now()}
		}
		n := *l
		n.FirstZxid = min(n.FirstZxid, zxid)
		n.LastZxid = max(n.LastZxid, zxid)
		n.Count++
		return &n
	})
}

// ClearLost durably forgets the lost writes, once a repair pass has made the
// journal whole again. Writes marked lost while the repair ran are forgotten
// too, so the repair must start after the last MarkLost it is meant to cover.
func (q *Queue) ClearLost() error {
	return q.updateLost(func(*LostInfo) *LostInfo { return nil })
}

// updateLost writes the state file with the lost mark fn makes of the current
// one (and the seqs of the last state written), then keeps it in memory.
func (q *Queue) updateLost(fn func(*LostInfo) *LostInfo) error {
	q.stateMu.Lock()
	defer q.stateMu.Unlock()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrQueueClosed
	}
	l := fn(q.lost)
	q.mu.Unlock()
	st := q.persisted
	st.lost = l
	if err := q.writeStateLocked(st); err != nil {
		return err
	}
	q.mu.Lock()
	q.lost = l
	q.mu.Unlock()
	return nil
}

// Lost reports the writes recorded by MarkLost (or an unknown loss to a host
// crash) since the last ClearLost.
func (q *Queue) Lost() (LostInfo, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lost == nil {
		return LostInfo{}, false
	}
	return *q.lost, true
}

// Stats returns the queue's counters.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := QueueStats{
		Records:  int(q.next - 1 - q.acked),
		Bytes:    q.bytes,
		HeadSeq:  q.acked + 1,
		TailSeq:  q.next - 1,
		Appended: q.added,
		Acked:    q.removed,
	}
	for _, s := range q.segments {
		if st.OldestAppended.IsZero() && len(s.recs) > 0 {
			st.OldestAppended = time.Unix(0, s.recs[0].at)
		}
		st.FileBytes += s.size
	}
	return st
}

// Close stops the syncer after a last fsync and state write (marking the
// shutdown clean), and closes the files. Appends that returned are in the
// queue; Appends waiting on SyncOnAppend are answered. It is idempotent;
// calls after it return ErrQueueClosed.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		close(q.stop)
		<-q.syncerDone
		q.closeFiles()
	})
	return q.closeErr
}

// closeFiles closes the segments and releases the lock.
func (q *Queue) closeFiles() {
	q.life.Lock()
	defer q.life.Unlock()
	for _, s := range q.segments {
		if s.f != nil {
			s.f.Close()
		}
	}
	q.segments = nil
	if q.lock != nil {
		_ = syscall.Flock(int(q.lock.Fd()), syscall.LOCK_UN)
		q.lock.Close()
		q.lock = nil
	}
}

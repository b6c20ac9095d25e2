package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
)

// Session mirroring (for the cutover's session handover).
//
// The tap sees every connect exchange: a session ZooKeeper created or
// resumed (its id and negotiated timeout), and a resume ZooKeeper refused
// because the session expired. It records them in the journal as
// raftjournal.SourceSessions, which the journal keeps apart from its own
// sessions and never expires while ZooKeeper is the source of truth; at the
// change to primary it adopts them, so that the client resumes its session
// on the journal. A closeSession is mirrored as a SourceTxn, which forgets
// the session too. Sessions are sent in the background, in batches; a
// journal that does not answer leaves them pending (SwitchStatus shows how
// many), and the cutover waits for none before it commits.
type sessionMirror struct {
	mu      sync.Mutex
	live    map[int64]int   // session → this tap's connections carrying it
	sent    map[int64]int32 // session → timeout the journal has
	open    map[int64]int32 // to send: session → timeout
	expired map[int64]struct{}
	kick    chan struct{}
}

func newSessionMirror() *sessionMirror {
	return &sessionMirror{live: map[int64]int{}, sent: map[int64]int32{}, open: map[int64]int32{},
		expired: map[int64]struct{}{}, kick: make(chan struct{}, 1)}
}

func (m *sessionMirror) signal() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// attach records a connection of session id with its negotiated timeout.
func (m *sessionMirror) attach(id int64, timeoutMs int32) {
	m.mu.Lock()
	m.live[id]++
	delete(m.expired, id)
	send := m.sent[id] != timeoutMs
	if send {
		m.open[id] = timeoutMs
	}
	m.mu.Unlock()
	if send {
		m.signal()
	}
}

// detach records the end of a connection of session id.
func (m *sessionMirror) detach(id int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live[id]--; m.live[id] <= 0 {
		delete(m.live, id)
	}
}

// closed records a closeSession ZooKeeper answered (the journal forgets the
// session through the mirrored txn).
func (m *sessionMirror) closed(id int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sent, id)
	delete(m.open, id)
}

// expiredSession records ZooKeeper's refusal to resume session id.
func (m *sessionMirror) expiredSession(id int64) {
	m.mu.Lock()
	delete(m.sent, id)
	delete(m.open, id)
	m.expired[id] = struct{}{}
	m.mu.Unlock()
	m.signal()
}

// snapshot returns the live sessions, sorted, and how many events are unsent.
func (m *sessionMirror) snapshot() ([]int64, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]int64, 0, len(m.live))
	for id := range m.live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, len(m.open) + len(m.expired)
}

// take removes a batch of events to send.
func (m *sessionMirror) take(limit int) *raftjournal.SourceSessions {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.open)+len(m.expired) == 0 {
		return nil
	}
	c := &raftjournal.SourceSessions{}
	for id, ms := range m.open {
		if len(c.Open) == limit {
			break
		}
		c.Open = append(c.Open, raftjournal.SourceSession{ID: id, TimeoutMs: ms})
		delete(m.open, id)
	}
	for id := range m.expired {
		if len(c.Open)+len(c.Closed) >= limit {
			break
		}
		c.Closed = append(c.Closed, id)
		delete(m.expired, id)
	}
	return c
}

// done records a batch's outcome: sent, or put back to be sent again.
func (m *sessionMirror) done(c *raftjournal.SourceSessions, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range c.Open {
		if ok {
			m.sent[s.ID] = s.TimeoutMs
		} else if _, newer := m.open[s.ID]; !newer {
			m.open[s.ID] = s.TimeoutMs
		}
	}
	if !ok {
		for _, id := range c.Closed {
			m.expired[id] = struct{}{}
		}
	}
}

// sessionLoop sends session events to the journal until the tap closes.
func (t *Tap) sessionLoop() {
	defer t.wg.Done()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.sessions.kick:
		case <-retry.C:
		}
		for {
			c := t.sessions.take(4096)
			if c == nil {
				break
			}
			ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
			res, err := t.cfg.Journal.Submit(ctx, raftjournal.Encode(c))
			cancel()
			if err == nil && res != nil {
				err = res.Err
			}
			switch {
			case err == nil:
				t.sessions.done(c, true)
				t.metrics.sessionsMirrored.Add(float64(len(c.Open) + len(c.Closed)))
				continue
			case errors.Is(err, raftjournal.ErrWrongPhase):
				// The journal left shadow: it adopted what it had, and
				// sessions no longer come from ZooKeeper.
				t.sessions.done(c, true)
				t.log.Debug("journal is past shadow; session mirror dropped", "sessions", len(c.Open)+len(c.Closed))
				continue
			}
			t.sessions.done(c, false)
			if t.ctx.Err() == nil {
				t.log.Warn("mirroring sessions into the journal failed; will retry", "sessions", len(c.Open)+len(c.Closed), "err", fmt.Sprint(err))
			}
			break
		}
	}
}

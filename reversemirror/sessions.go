package reversemirror

import (
	"context"
	"fmt"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkserver"
	"github.com/zk2raft/zk2raft/zkwire"
)

var errRuntimeInconsistency = zkwire.CodeRuntimeInconsistency.Err()

func zkMode(m raftjournal.CreateMode) zkwire.CreateMode { return zkwire.CreateMode(m) }

// The session keeper. An ephemeral must be owned by a live ZooKeeper session,
// and ZooKeeper deletes it when that session ends. For each journal session
// that owns ephemerals written in primary the mirror keeps one ZooKeeper
// session open (its "twin"), creates that session's ephemerals over it, and
// closes it when the journal closes or expires the session, after deleting
// the ephemerals explicitly (so the deletes keep the journal's order). For a
// session the journal adopted from ZooKeeper at the cutover, the twin is the
// very same ZooKeeper session, resumed with its id and ZooKeeper's
// deterministic password: its ephemerals keep their owner, and the ones made
// in shadow stay alive in ZooKeeper. A journal-minted session has no
// ZooKeeper twin by nature: its ephemerals are owned in ZooKeeper by a
// session the mirror opened (ephemeralOwner differs; documented).
//
// The journal → ZooKeeper session map is written into the marker with the
// entry that first needed it, so a mirror that restarts (another leader, a
// crash) resumes the same sessions within their timeout; one ZooKeeper has
// expired meanwhile took its ephemerals with it (LostSessions, logged): the
// journal keeps them, ZooKeeper lacks them until the journal's session ends.

// connFor returns the client a record's ops go through: the twin of the
// session whose ephemerals it creates, or cur (any session will do, and the
// one the previous record went through keeps them in one multi).
func (t *term) connFor(ctx context.Context, r *raftjournal.MirrorRecord, newSess map[int64]int64, cur *zkclient.Client) (*zkclient.Client, error) {
	var owner int64
	for i := range r.Ops {
		if op := &r.Ops[i]; op.Kind == raftjournal.MirrorCreate && op.Session != 0 {
			owner = op.Session
			break
		}
	}
	if owner == 0 {
		return cur, nil
	}
	if c := t.twins[owner]; c != nil {
		id := c.SessionID()
		if z, ok := t.live[owner]; ok && z != id && !t.counted[z] {
			t.counted[z] = true
			t.lost(owner, z, "expired in ZooKeeper while the mirror held it")
		}
		newSess[owner] = id
		return c, nil
	}
	c, err := t.openTwin(ctx, owner, 0)
	if err != nil {
		return nil, err
	}
	t.twins[owner] = c
	newSess[owner] = c.SessionID()
	return c, nil
}

// openTwin opens the ZooKeeper session for a journal session: resuming
// resume (a twin named in the marker), or the session itself if ZooKeeper
// made it (adopted), or a new one.
func (t *term) openTwin(ctx context.Context, owner, resume int64) (*zkclient.Client, error) {
	cfg := t.m.cfg.ZooKeeper
	cfg.SessionTimeout = t.timeout(owner)
	if resume == 0 && !raftjournal.JournalSession(owner) {
		resume = owner
	}
	if resume != 0 {
		cfg.ResumeSession, cfg.ResumePassword = resume, zkserver.SessionPassword(resume)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := zkclient.Dial(dctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("reversemirror: ZooKeeper session for journal session %#x: %w", owner, err)
	}
	if resume != 0 && c.SessionID() != resume {
		t.lost(owner, resume, "ZooKeeper had expired it before the mirror resumed it")
	}
	t.m.logger.Debug("reverse mirror holds a ZooKeeper session", "journal-session", fmt.Sprintf("%#x", owner),
		"zk-session", fmt.Sprintf("%#x", c.SessionID()), "resumed", resume != 0 && c.SessionID() == resume)
	return c, nil
}

func (t *term) lost(owner, zk int64, why string) {
	t.m.logger.Warn("reverse mirror lost a ZooKeeper session: its ephemerals are missing in ZooKeeper until the journal's session ends",
		"journal-session", fmt.Sprintf("%#x", owner), "zk-session", fmt.Sprintf("%#x", zk), "why", why)
	t.m.update(func(s *Status) { s.LostSessions++ })
}

// timeout is the journal session's timeout (30 s if unknown).
func (t *term) timeout(owner int64) time.Duration {
	if _, ok := t.timeouts[owner]; !ok {
		t.timeouts = map[int64]int32{}
		for _, s := range t.fsm.Sessions() {
			t.timeouts[s.ID] = s.TimeoutMs
		}
	}
	if ms := t.timeouts[owner]; ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 30 * time.Second
}

// resumeSessions takes over the ZooKeeper sessions the marker names, and
// every session the journal adopted from ZooKeeper (with or without
// ephemerals: kept alive in ZooKeeper, its client can resume it there after
// a rollback).
func (t *term) resumeSessions(ctx context.Context, marker map[int64]int64) error {
	t.sessions = maps(marker)
	sessions := map[int64]int64{}
	for j, z := range marker {
		c := t.twins[j]
		if c != nil && c.SessionID() != z {
			c.Detach()
			c = nil
		}
		if c == nil {
			var err error
			if c, err = t.openTwin(ctx, j, z); err != nil {
				return err
			}
		}
		t.twins[j] = c
		sessions[j] = c.SessionID()
	}
	for j, c := range t.twins {
		if _, ok := marker[j]; !ok {
			c.Detach() // opened for a write that did not reach ZooKeeper
			delete(t.twins, j)
		}
	}
	for _, s := range t.fsm.Sessions() {
		if _, ok := sessions[s.ID]; ok || raftjournal.JournalSession(s.ID) {
			continue
		}
		c, err := t.openTwin(ctx, s.ID, 0)
		if err != nil {
			return err
		}
		if c.SessionID() != s.ID {
			_ = c.Close() // nothing of the adopted session is left to keep
			continue
		}
		t.twins[s.ID] = c
		sessions[s.ID] = s.ID
	}
	t.live = sessions
	t.m.update(func(s *Status) { s.Sessions = len(sessions) })
	return nil
}

func (t *term) detachTwins() {
	for j, c := range t.twins {
		c.Detach()
		delete(t.twins, j)
	}
}

// endPeriod ends the ZooKeeper sessions of journal-minted sessions once the
// journal is no longer primary (a rollback, finalize): their clients cannot
// resume them on ZooKeeper (ZooKeeper never knew their ids), so their
// ephemerals go, as after an expiry, and the forward mirror carries those
// deletes back into the journal. The adopted ZooKeeper sessions are released
// (detached), for their clients to resume on ZooKeeper within their timeout.
//
// Once the journal is finalized there is no way back to ZooKeeper: every
// session the mirror holds there is closed, the adopted ones too (their
// clients live on the journal; ZooKeeper deletes their ephemerals there).
func (t *term) endPeriod(ctx context.Context) {
	final := t.fsm.Phase() == raftjournal.PhaseFinalized
	for j, c := range t.twins {
		if raftjournal.JournalSession(j) || final {
			_ = c.Close()
			t.m.logger.Info("reverse mirror ended the ZooKeeper session of a journal session", "journal-session", fmt.Sprintf("%#x", j),
				"zk-session", fmt.Sprintf("%#x", c.SessionID()))
		} else {
			c.Detach()
		}
		delete(t.twins, j)
	}
	t.live = map[int64]int64{}
	t.m.update(func(s *Status) { s.Sessions = 0 })
}

// closeSession ends ZooKeeper session z of journal session j: through the
// client that holds it, or by resuming it to close it (an earlier mirror's).
func (t *term) closeSession(ctx context.Context, j, z int64) {
	if c := t.twins[j]; c != nil && c.SessionID() == z {
		_ = c.Close()
		delete(t.twins, j)
		return
	}
	cfg := t.m.cfg.ZooKeeper
	cfg.ResumeSession, cfg.ResumePassword = z, zkserver.SessionPassword(z)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := zkclient.Dial(dctx, cfg)
	if err != nil {
		t.m.logger.Warn("reverse mirror could not end an earlier ZooKeeper session; it expires on its own", "zk-session", fmt.Sprintf("%#x", z), "error", err)
		return
	}
	_ = c.Close() // a new session if z had expired: closing it is harmless
}

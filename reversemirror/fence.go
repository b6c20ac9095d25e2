package reversemirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// The active fence: see "The fence" in the package documentation.

// Checkpoint keys of the fence. The request is written by the operator's
// command only, the state by the mirror only, so neither overwrites the
// other.
const (
	FenceRequestKey = "zk2raft/fence/request"
	FenceStateKey   = "zk2raft/fence/state"
)

// Fence wishes.
const (
	FenceOn  = "on"
	FenceOff = "off"
)

// FenceRequest asks the mirror to fence ZooKeeper (Want on) or to lift the
// fence (off).
type FenceRequest struct {
	ID        string    `json:"id"`
	Want      string    `json:"want"`
	Requested time.Time `json:"requested"`
}

// FenceState is what the mirror did about the last request.
type FenceState struct {
	// Request is the ID of the request this state answers, Want its wish.
	Request string `json:"request"`
	Want    string `json:"want"`
	// Period is the primary period (its SetPhase index) in which ACLs were
	// last changed by a fence: in it, ZooKeeper's aversions are no longer the
	// journal's, and the mirror writes ACLs with version −1.
	Period uint64 `json:"period"`
	// Done: every node under Root has the ACL Want asks for (fenced, or the
	// journal's). Changed counts the ACLs the walk set, Nodes the nodes it
	// saw, NotInJournal those it left alone because the journal lacks them
	// (split-brain creates: their original ACL is nowhere else).
	Done         bool      `json:"done"`
	Nodes        int       `json:"nodes"`
	Changed      int       `json:"changed"`
	NotInJournal int       `json:"not_in_journal,omitempty"`
	Error        string    `json:"error,omitempty"`
	At           time.Time `json:"at"`
}

// DecodeFence reads the fence's request and state among checkpoints (nil
// when absent).
func DecodeFence(cps []raftjournal.Checkpoint) (*FenceRequest, *FenceState) {
	var req *FenceRequest
	var st *FenceState
	for _, cp := range cps {
		switch cp.Key {
		case FenceRequestKey:
			var r FenceRequest
			if json.Unmarshal(cp.Value, &r) == nil {
				req = &r
			}
		case FenceStateKey:
			var s FenceState
			if json.Unmarshal(cp.Value, &s) == nil {
				st = &s
			}
		}
	}
	return req, st
}

// FenceRequestCheckpoint is the entry that writes r.
func FenceRequestCheckpoint(r *FenceRequest) *raftjournal.SetCheckpoint {
	v, _ := json.Marshal(r)
	return &raftjournal.SetCheckpoint{Checkpoint: raftjournal.Checkpoint{Key: FenceRequestKey, Value: v}}
}

// FencedACL is the ACL the fence gives a node whose journal ACL is acl: each
// entry keeps only its READ permission (who could read still can; nobody
// else can write, create, delete or change the ACL), and ids (the mirror's
// own) get every permission.
func FencedACL(acl []znode.ACL, ids []znode.ID) []znode.ACL {
	var out []znode.ACL
	for _, a := range acl {
		if a.Perms&znode.PermRead != 0 && !slices.Contains(ids, a.ID) {
			out = append(out, znode.ACL{Perms: znode.PermRead, ID: a.ID})
		}
	}
	for _, id := range ids {
		out = append(out, znode.ACL{Perms: znode.PermAll, ID: id})
	}
	return out
}

// fenceIDs are the mirror's digest identities (its ZooKeeper credentials).
func (m *Mirror) fenceIDs() []znode.ID {
	var ids []znode.ID
	for _, a := range m.cfg.ZooKeeper.Auth {
		if a.Scheme == "digest" {
			ids = append(ids, znode.ID{Scheme: "digest", ID: znode.DigestID(string(a.Cred))})
		}
	}
	return ids
}

func (t *term) fence() (*FenceRequest, *FenceState) { return fenceOf(t.fsm) }

func fenceOf(fsm *raftjournal.FSM) (*FenceRequest, *FenceState) {
	cps := make([]raftjournal.Checkpoint, 0, 2)
	for _, k := range []string{FenceRequestKey, FenceStateKey} {
		if v, ok := fsm.Checkpoint(k); ok {
			cps = append(cps, raftjournal.Checkpoint{Key: k, Value: v})
		}
	}
	return DecodeFence(cps)
}

// fenceTouchedIn is fenceTouched for the primary period that began at start.
func fenceTouchedIn(fsm *raftjournal.FSM, start uint64) bool {
	req, st := fenceOf(fsm)
	return req != nil && req.Want == FenceOn || st != nil && st.Period == start
}

// fencing reports whether the mirror writes fenced ACLs: a fence is asked
// for.
func (t *term) fencing() bool {
	req, _ := t.fence()
	return req != nil && req.Want == FenceOn
}

// fenceTouched reports whether ZooKeeper's aversions may differ from the
// journal's in this period (a fence is asked for, or one was set or lifted
// in it): ACL writes then go with version −1, and the sentry does not
// compare aversions.
func (t *term) fenceTouched() bool { return fenceTouchedIn(t.fsm, t.start) }

// aclFor is the ACL the mirror writes for a journal ACL.
func (t *term) aclFor(acl []znode.ACL) []znode.ACL {
	if t.batchFencing {
		return FencedACL(acl, t.m.fenceIDs())
	}
	return acl
}

// fenceDue reports a request the state does not answer yet.
func (t *term) fenceDue() *FenceRequest {
	req, st := t.fence()
	if req == nil || st != nil && st.Request == req.ID && (st.Done || st.Error != "") {
		return nil
	}
	return req
}

// runFence starts the fence's walk for a due request, in the background,
// unless one runs. Called between batches: every batch assembled from here
// on reads the request, so a node the mirror creates after this is created
// with the right ACL and one created before is in ZooKeeper for the walk to
// find.
func (t *term) runFence(ctx context.Context) {
	if t.walking != nil {
		select {
		case <-t.walking:
			t.walking = nil
		default:
			return
		}
	}
	if time.Since(t.fenceLook) < 50*time.Millisecond {
		return
	}
	t.fenceLook = time.Now()
	req := t.fenceDue()
	if req == nil || time.Since(t.walkFailed) < t.m.cfg.Retry {
		return
	}
	done := make(chan struct{})
	t.walking = done
	go func() {
		defer close(done)
		st := &FenceState{Request: req.ID, Want: req.Want, Period: t.start, At: time.Now().UTC()}
		switch {
		case req.Want == FenceOn && len(t.m.fenceIDs()) == 0:
			st.Error = "the fence needs the reverse mirror's ZooKeeper credentials (serve --auth digest:USER:PASSWORD, ideally ZooKeeper's super user): without them it would lock the mirror out too"
		case req.Want != FenceOn && req.Want != FenceOff:
			st.Error = fmt.Sprintf("fence request %q: want %q is neither on nor off", req.ID, req.Want)
		default:
			// The period is recorded before any aversion moves.
			err := t.submit(ctx, fenceStateCheckpoint(st))
			if err == nil {
				err = t.walkFence(ctx, req.Want == FenceOn, st)
			}
			if err != nil {
				// Transient (a lost connection, a leader change): walk again
				// later, or the next leader's mirror does.
				if ctx.Err() == nil {
					t.m.logger.Warn("fence: walk failed; walking again", "want", req.Want, "error", err, "retry-in", t.m.cfg.Retry)
				}
				t.walkFailed = time.Now()
				return
			}
			st.Done = true
		}
		st.At = time.Now().UTC()
		if err := t.submit(ctx, fenceStateCheckpoint(st)); err != nil {
			t.m.logger.Warn("fence: recording the outcome failed; walking again", "error", err)
			t.walkFailed = time.Now()
			return
		}
		t.m.logger.Info("fence: walk finished", "want", st.Want, "done", st.Done, "nodes", st.Nodes, "changed", st.Changed,
			"not-in-journal", st.NotInJournal, "error", st.Error)
	}()
}

func fenceStateCheckpoint(s *FenceState) *raftjournal.SetCheckpoint {
	v, _ := json.Marshal(s)
	return &raftjournal.SetCheckpoint{Checkpoint: raftjournal.Checkpoint{Key: FenceStateKey, Value: v}}
}

// walkFence sets every node under Root (breadth first, /zookeeper left out)
// to its fenced ACL (on) or to the journal's ACL (off), skipping nodes that
// already have it, so that a walk repeated after a crash changes nothing
// twice. A node the journal lacks is left alone.
func (t *term) walkFence(ctx context.Context, on bool, st *FenceState) error {
	ids := t.m.fenceIDs()
	level := []string{t.m.cfg.Root}
	for len(level) > 0 {
		var next []string
		for _, p := range level {
			if !t.m.inScope(p) {
				continue
			}
			have, _, err := t.zk.GetACL(ctx, p)
			if errors.Is(err, zkclient.ErrNoNode) {
				continue
			}
			if err != nil {
				return fmt.Errorf("reversemirror: fence: getACL %s: %w", p, err)
			}
			st.Nodes++
			jacl, _, jerr := t.fsm.GetACL(p)
			if jerr != nil {
				st.NotInJournal++
				t.m.sentry.suspect(p)
			} else {
				want := jacl
				if on {
					want = FencedACL(jacl, ids)
				}
				if !slices.Equal(have, want) {
					if _, err := t.zk.SetACL(ctx, p, want, -1); err != nil && !errors.Is(err, zkclient.ErrNoNode) {
						return fmt.Errorf("reversemirror: fence: setACL %s: %w", p, err)
					}
					st.Changed++
				}
			}
			kids, _, err := t.zk.GetChildren(ctx, p)
			if errors.Is(err, zkclient.ErrNoNode) {
				continue
			}
			if err != nil {
				return fmt.Errorf("reversemirror: fence: children of %s: %w", p, err)
			}
			for _, k := range kids {
				next = append(next, path.Join(p, k))
			}
		}
		level = next
	}
	return nil
}

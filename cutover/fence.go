package cutover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
)

// FenceView is the active fence as the journal records it: the operator's
// last request and the reverse mirror's answer.
type FenceView struct {
	Request *reversemirror.FenceRequest `json:"request,omitempty"`
	State   *reversemirror.FenceState   `json:"state,omitempty"`
}

// On reports whether a fence is asked for (set, or being set).
func (v *FenceView) On() bool {
	return v != nil && v.Request != nil && v.Request.Want == reversemirror.FenceOn
}

// Summary is the fence in a few words.
func (v *FenceView) Summary() string {
	switch {
	case v == nil || v.Request == nil:
		return "off (never set)"
	case v.State == nil || v.State.Request != v.Request.ID:
		return fmt.Sprintf("%s asked for at %s; the reverse mirror has not answered yet", v.Request.Want, v.Request.Requested.Format(time.RFC3339))
	case v.State.Error != "":
		return fmt.Sprintf("%s asked for; the reverse mirror refused: %s", v.Request.Want, v.State.Error)
	case !v.State.Done:
		return fmt.Sprintf("%s asked for; the reverse mirror is walking ZooKeeper's tree", v.Request.Want)
	}
	s := fmt.Sprintf("%s since %s (%d nodes, %d ACLs changed", v.State.Want, v.State.At.Format(time.RFC3339), v.State.Nodes, v.State.Changed)
	if v.State.NotInJournal > 0 {
		s += fmt.Sprintf(", %d nodes the journal lacks left alone", v.State.NotInJournal)
	}
	return s + ")"
}

func fenceOf(cps []raftjournal.Checkpoint) *FenceView {
	req, st := reversemirror.DecodeFence(cps)
	if req == nil && st == nil {
		return nil
	}
	return &FenceView{Request: req, State: st}
}

// Fence asks the reverse mirror to fence ZooKeeper — every node under its
// root gets an ACL that lets anyone who could read it read it and only the
// mirror's identity write it (reversemirror.FencedACL) — and waits until it
// has. The journal must be primary and its leader run the mirror (serve
// --zk with --auth, ZooKeeper's super user). See the runbook for the
// trade-offs (aversions move).
func Fence(ctx context.Context, o Options) (*reversemirror.FenceState, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	return e.setFence(ctx, reversemirror.FenceOn)
}

// LiftFence lifts the fence: the reverse mirror gives every node under its
// root the ACL the journal has for it — exactly the ACL it had before the
// fence, because every ACL change goes through the journal and the fence
// never changes the journal's — and LiftFence waits until it has. It
// returns (nil, nil) at once when no fence was ever asked for.
//
// The rollback calls it before it commits SetPhase(shadow): the mirror
// walks only while the journal is primary, so after the commit nothing
// would lift the fence. It is idempotent: lifting a lifted fence walks the
// tree again and changes nothing.
func LiftFence(ctx context.Context, o Options) (*reversemirror.FenceState, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	return e.liftFence(ctx)
}

// liftFence is LiftFence on an open env.
func (e *env) liftFence(ctx context.Context) (*reversemirror.FenceState, error) {
	js, err := e.journalState(ctx)
	if err != nil {
		return nil, err
	}
	if v := fenceOf(js.Checkpoints); v == nil || v.Request == nil {
		return nil, nil
	}
	return e.setFence(ctx, reversemirror.FenceOff)
}

// setFence writes a fence request and waits for the mirror's answer.
func (e *env) setFence(ctx context.Context, want string) (*reversemirror.FenceState, error) {
	js, err := e.journalState(ctx)
	if err != nil {
		return nil, err
	}
	if js.Phase != raftjournal.PhasePrimary.String() {
		return nil, fmt.Errorf("cutover: fence %s: the journal is %s; the fence is set and lifted by the reverse mirror, which runs only while the journal is primary", want, js.Phase)
	}
	req := &reversemirror.FenceRequest{ID: fmt.Sprintf("f%d", time.Now().UnixNano()), Want: want, Requested: time.Now().UTC()}
	if err := submit(ctx, e.cluster, reversemirror.FenceRequestCheckpoint(req)); err != nil {
		return nil, fmt.Errorf("cutover: fence %s: %w", want, err)
	}
	e.o.Logger.Info("cutover: fence asked for; waiting for the reverse mirror", "want", want, "request", req.ID)
	for {
		js, err := e.journalState(ctx)
		if err == nil {
			if v := fenceOf(js.Checkpoints); v != nil && v.State != nil && v.State.Request == req.ID {
				switch {
				case v.State.Error != "":
					return v.State, fmt.Errorf("cutover: fence %s: the reverse mirror refused: %s", want, v.State.Error)
				case v.State.Done:
					e.o.Logger.Info("cutover: fence "+want, "nodes", v.State.Nodes, "changed", v.State.Changed, "not-in-journal", v.State.NotInJournal)
					return v.State, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cutover: fence %s: no answer from the reverse mirror (is every journal node started with --zk and --auth as ZooKeeper's super user? `journal status` shows the leader's reverse_mirror): %w",
				want, errors.Join(ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

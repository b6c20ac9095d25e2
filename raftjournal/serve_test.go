package raftjournal

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestSessionOwnership: the leader remembers which node serves each
// session's client (ClaimSessions), refuses writes for the session from any
// other node with CodeSessionMoved, reports the move to the former owner's
// touches, and reports sessions the table lacks as expired — on the leader
// itself and through forwarding.
func TestSessionOwnership(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.primary()
	ctx := t.Context()
	l := c.leader()
	f1 := c.follower()
	f2 := c.follower(f1)
	leader, a, b := c.nodes[l], c.nodes[f1], c.nodes[f2]
	id, err := a.CreateSession(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	write := func(n *Node, path string) error {
		res, err := n.SubmitForSession(ctx, id, &Write{Session: id, Ops: []Op{create(path, "", ModeEphemeral)}})
		if err != nil {
			return err
		}
		return res.Err
	}
	// A new leader takes every node at its word until it has synced the
	// session table; wait until b's claim sticks.
	waitFor(t, 20*time.Second, "a's claim to be refused to b", func() error {
		if _, err := a.ClaimSessions(ctx, []int64{id}); err != nil {
			return err
		}
		if rep, err := b.TouchSessions(ctx, []int64{id}); err != nil || !slices.Equal(rep.Moved, []int64{id}) {
			return fmt.Errorf("b's touch: %+v, %v", rep, err)
		}
		return nil
	})
	if err := write(a, "/owned-by-a"); err != nil {
		t.Fatalf("write from the owner: %v", err)
	}
	rep, err := b.ClaimSessions(ctx, []int64{id})
	if err != nil || len(rep.Expired)+len(rep.Moved) != 0 {
		t.Fatalf("b claims: %+v, %v", rep, err)
	}
	for _, n := range []*Node{a, leader} {
		if err := write(n, "/stale-"+n.ID()); !errors.Is(err, CodeSessionMoved) {
			t.Fatalf("write from %s after the session moved to %s: %v, want SessionMoved", n.ID(), b.ID(), err)
		}
		if _, _, err := b.Get(ctx, "/stale-"+n.ID(), Linearizable()); !errors.Is(err, CodeNoNode) {
			t.Fatalf("the refused write from %s reached the tree: %v", n.ID(), err)
		}
	}
	if rep, err := a.TouchSessions(ctx, []int64{id}); err != nil || !slices.Equal(rep.Moved, []int64{id}) || len(rep.Expired) != 0 {
		t.Fatalf("the former owner's touch: %+v, %v; want moved", rep, err)
	}
	if err := write(b, "/owned-by-b"); err != nil {
		t.Fatalf("write from the new owner: %v", err)
	}
	if err := b.CloseSession(ctx, id); err != nil {
		t.Fatal(err)
	}
	rep, err = b.TouchSessions(ctx, []int64{id, 0x7A00_0000_0000_0001})
	if err != nil || !slices.Equal(rep.Expired, []int64{id, 0x7A00_0000_0000_0001}) || len(rep.Moved) != 0 {
		t.Fatalf("touching closed and unknown sessions: %+v, %v; want both expired", rep, err)
	}
}

// TestSubmitInOrder: a session's pipelined writes, submitted together from
// a follower and from the leader, are appended in the order given (the
// sequential names and zxids grow with it), each answered on its own — a
// failing one among them fails alone — and refused as a whole once the
// session moved.
func TestSubmitInOrder(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.primary()
	ctx := t.Context()
	leader, follower := c.nodes[c.leader()], c.nodes[c.follower()]
	for _, n := range []*Node{follower, leader} {
		id, err := n.CreateSession(ctx, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		base := "/in-order-" + n.ID()
		if _, _, err := n.Create(ctx, base, nil, ModePersistent); err != nil {
			t.Fatal(err)
		}
		var cmds []Command
		for i := range 20 {
			op := create(base+"/s-", fmt.Sprint(i), ModePersistentSequential)
			if i == 7 {
				op = create(base, "", ModePersistent) // exists: fails alone
			}
			cmds = append(cmds, &Write{Session: id, Ops: []Op{op}})
		}
		var results []*Result
		var errs []error
		waitFor(t, 20*time.Second, "the leader to accept "+n.ID()+"'s writes", func() error {
			var err error
			results, errs, err = n.SubmitInOrder(ctx, id, cmds)
			return err
		})
		var lastZxid int64
		seq := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatalf("%s: command %d: %v", n.ID(), i, errs[i])
			}
			if r.Zxid <= lastZxid {
				t.Fatalf("%s: command %d has zxid %#x after %#x", n.ID(), i, r.Zxid, lastZxid)
			}
			lastZxid = r.Zxid
			if i == 7 {
				if !errors.Is(r.Err, CodeNodeExists) {
					t.Fatalf("%s: command 7: %v, want NodeExists", n.ID(), r.Err)
				}
				continue
			}
			if want := fmt.Sprintf("%s/s-%010d", base, seq); r.Err != nil || r.Ops[0].Path != want {
				t.Fatalf("%s: command %d created %q (%v), want %s", n.ID(), i, r.Ops[0].Path, r.Err, want)
			}
			seq++
		}
		// Another node claims the session: the next batch is refused whole.
		other := c.nodes[(slices.Index(c.nodes, n)+1)%3]
		if _, err := other.ClaimSessions(ctx, []int64{id}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := n.SubmitInOrder(ctx, id, cmds[:2]); !errors.Is(err, CodeSessionMoved) {
			t.Fatalf("%s: a batch after the session moved: %v, want SessionMoved", n.ID(), err)
		}
	}
}

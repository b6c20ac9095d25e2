package exporter

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

func TestPathLessIsDepthFirstOrder(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"parent first", "/a", "/a/b", true},
		{"subtree before later sibling with lower byte", "/a/b", "/a-c", true},
		{"sibling order", "/a-c", "/a/b", false},
		{"prefix name", "/a/z", "/ab", true},
		{"equal", "/a", "/a", false},
		{"root first", "/", "/ a", true},
		{"dot and dash", "/x.y/z", "/x-y", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := pathLess(tc.a, tc.b); got != tc.want {
				t.Errorf("pathLess(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

// simTree is an in-memory tree for exercising the reorder buffer without an
// ensemble: the scheduler's order and memory bounds do not depend on ZooKeeper.
type simTree struct {
	children map[string][]string // unsorted names
	outcome  map[string]outcome  // outcomeRead unless set
}

// randomTree builds n nodes below "/" with names chosen to sort around '/',
// a few long chains and a few wide nodes.
func randomTree(rng *rand.Rand, n int) *simTree {
	st := &simTree{children: map[string][]string{}, outcome: map[string]outcome{}}
	paths := []string{"/"}
	alphabet := []string{"a", "b", "-", ".", "z", "a-", "a.b", "ü", "0"}
	for len(paths) < n {
		var parent string
		switch r := rng.IntN(10); {
		case r < 2: // deepen the last node: chains
			parent = paths[len(paths)-1]
		case r < 4: // widen an early node
			parent = paths[rng.IntN(min(len(paths), 5))]
		default:
			parent = paths[rng.IntN(len(paths))]
		}
		name := alphabet[rng.IntN(len(alphabet))] + alphabet[rng.IntN(len(alphabet))] + fmt.Sprint(rng.IntN(50))
		p := znode.Join(parent, name)
		if slices.Contains(st.children[parent], name) {
			continue
		}
		st.children[parent] = append(st.children[parent], name)
		paths = append(paths, p)
		switch rng.IntN(40) {
		case 0:
			st.outcome[p] = outcomeGone
		case 1:
			st.outcome[p] = outcomeUnreadable
		}
	}
	return st
}

// expected is the depth-first order with sorted children, leaving out what a
// walk cannot see (gone or unreadable nodes and their subtrees).
func (st *simTree) expected() []string {
	var out []string
	stack := []string{"/"}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if st.outcome[p] != 0 {
			continue
		}
		out = append(out, p)
		kids := slices.Clone(st.children[p])
		slices.Sort(kids)
		slices.Reverse(kids)
		for _, k := range kids {
			stack = append(stack, znode.Join(p, k))
		}
	}
	return out
}

// runSim drives a reorder over st with completions in random order and checks
// the bounds on every step.
func runSim(t *testing.T, st *simTree, seed uint64, workers, window int, maxBytes int64) ([]string, *reorder) {
	t.Helper()
	w, err := NewWalker(Config{Hosts: []string{"sim:1"}, Workers: workers, Window: window, MaxBufferedBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	work := make(chan *task, window+1)
	results := make(chan *task, window+1)
	var r *reorder
	r = newReorder(w, SinkFunc(func(n *znode.Node) error {
		got = append(got, n.Path)
		if len(r.late) > window+1 {
			t.Errorf("%d tasks outstanding, window %d", len(r.late), window)
		}
		return nil
	}), work)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	go func() {
		rng := rand.New(rand.NewPCG(seed, 7))
		var pending []*task
		for {
			if len(pending) == 0 {
				select {
				case tk, ok := <-work:
					if !ok {
						return
					}
					pending = append(pending, tk)
				case <-ctx.Done():
					return
				}
			}
			for more := true; more; {
				select {
				case tk, ok := <-work:
					if !ok {
						return
					}
					pending = append(pending, tk)
				default:
					more = false
				}
			}
			if len(pending) > window+1 {
				t.Errorf("%d tasks issued at once, window %d", len(pending), window)
			}
			i := rng.IntN(len(pending))
			tk := pending[i]
			pending = slices.Delete(pending, i, i+1)
			tk.outcome = st.outcome[tk.path]
			if tk.outcome == 0 {
				tk.outcome = outcomeRead
				tk.node = &znode.Node{Path: tk.path, Data: []byte(strings.Repeat("x", rng.IntN(100)))}
				tk.children = slices.Clone(st.children[tk.path])
				tk.node.NumChildren = int32(len(tk.children))
			}
			results <- tk
		}
	}()
	if err := r.run(ctx, results); err != nil {
		t.Fatal(err)
	}
	close(work)
	return got, r
}

// TestReorderOrderAndBounds checks, over random trees and random completion
// orders, that the reorder buffer writes exactly the depth-first order, keeps
// within its window, and never deadlocks, also with a window barely larger than
// the workers and a byte budget that is always exceeded.
func TestReorderOrderAndBounds(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	cases := []struct {
		name            string
		nodes           int
		workers, window int
		maxBytes        int64
	}{
		{"tiny window", 2000, 4, 4, 1 << 20},
		{"small window", 3000, 8, 20, 1 << 20},
		{"byte budget always full", 2000, 8, 1000, 1},
		{"roomy", 5000, 64, 1024, 64 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 5 {
				st := randomTree(rng, tc.nodes)
				got, r := runSim(t, st, rng.Uint64(), tc.workers, tc.window, tc.maxBytes)
				want := st.expected()
				if !slices.Equal(got, want) {
					for i := range min(len(got), len(want)) {
						if got[i] != want[i] {
							t.Fatalf("round %d: node %d is %q, want %q (%d written, %d expected)", round, i, got[i], want[i], len(got), len(want))
						}
					}
					t.Fatalf("round %d: %d written, %d expected", round, len(got), len(want))
				}
				if len(r.late) != 0 || r.held != 0 || r.inflight != 0 || len(r.stack) != 0 || r.issue.Len() != 0 {
					t.Fatalf("round %d: state left: %d outstanding, %d bytes, %d in flight, stack %d, heap %d",
						round, len(r.late), r.held, r.inflight, len(r.stack), r.issue.Len())
				}
				t.Logf("round %d: %d nodes, %d read-ahead evictions", round, len(got), r.evicted)
			}
		})
	}
}

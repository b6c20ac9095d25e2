package raftjournal

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

func TestSortCanonicalMatchesComparePaths(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 7))
	names := []string{"a", "b", "a-b", "a.b", "zookeeper", "é", "配置", "a b", "0", "~"}
	for round := range 50 {
		n := rnd.IntN(300)
		nodes := make([]snapNode, n)
		for i := range nodes {
			p := ""
			for range 1 + rnd.IntN(4) {
				p += "/" + names[rnd.IntN(len(names))]
			}
			nodes[i] = snapNode{path: p, numChildren: int32(i)}
		}
		if round == 0 && n > 0 {
			nodes[0].path = "/"
		}
		want := slices.Clone(nodes)
		slices.SortStableFunc(want, func(a, b snapNode) int { return znode.ComparePaths(a.path, b.path) })
		sortCanonical(nodes)
		for i := range nodes {
			if nodes[i].path != want[i].path {
				t.Fatalf("round %d: position %d holds %q, want %q", round, i, nodes[i].path, want[i].path)
			}
		}
		// Every node is still there exactly once (the permutation moved, not copied).
		seen := make(map[int32]bool, n)
		for i := range nodes {
			if seen[nodes[i].numChildren] {
				t.Fatalf("round %d: node %d appears twice", round, nodes[i].numChildren)
			}
			seen[nodes[i].numChildren] = true
		}
	}
}

package raftjournal

import (
	"cmp"
	"slices"
)

// sortCanonical sorts nodes in znode.ComparePaths order (depth-first, children
// by name), the order of FSM snapshots and of Walk.
//
// A snapshot sorts every node of the tree, so this is on the import's critical
// path (1M nodes at the end of an offline import). It sorts small index records
// by keys in which '/' is replaced by 0x00 — valid paths hold no NUL byte, so
// plain string order on those keys is exactly ComparePaths order, and the
// runtime compares strings much faster than a byte loop — and then moves each
// 100-odd-byte node once, following the permutation's cycles in place.
func sortCanonical(nodes []snapNode) {
	total := 0
	for i := range nodes {
		total += len(nodes[i].path)
	}
	arena := make([]byte, 0, total)
	for i := range nodes {
		p := nodes[i].path
		for j := 0; j < len(p); j++ {
			c := p[j]
			if c == '/' {
				c = 0
			}
			arena = append(arena, c)
		}
	}
	keys := string(arena) // one copy; every key is a substring of it
	type keyed struct {
		key string
		i   int32
	}
	ks := make([]keyed, len(nodes))
	off := 0
	for i := range nodes {
		ks[i] = keyed{key: keys[off : off+len(nodes[i].path)], i: int32(i)}
		off += len(nodes[i].path)
	}
	slices.SortFunc(ks, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })

	// Position k must end up holding the node now at ks[k].i.
	perm := make([]int32, len(ks))
	for k := range ks {
		perm[k] = ks[k].i
	}
	for k := range perm {
		if perm[k] < 0 {
			continue
		}
		tmp := nodes[k]
		j := k
		for {
			src := int(perm[j])
			perm[j] = -1
			if src == k {
				nodes[j] = tmp
				break
			}
			nodes[j] = nodes[src]
			j = src
		}
	}
}

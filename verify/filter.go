package verify

import (
	"path"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// filter decides, for a stream in canonical order, which nodes a comparison
// covers: those in the scope's subtree that neither match an exclusion pattern
// nor lie below a node that does. Ancestors are checked too, not only the
// nodes seen, so a subtree whose top is missing from one side is left out of
// that side as well.
//
// It keeps the chain of ancestors of the last node with their verdicts, so a
// node costs one pattern check per pattern when its parent came before it, as
// it does in any complete stream.
type filter struct {
	root     string
	patterns []pattern
	chain    []filtered // ancestors-or-self of the last node, root first
}

// pattern is an exclusion glob with what makes most paths fail it fast: its
// depth (path.Match's * does not cross a slash, so only paths as deep can
// match) and, for a glob without metacharacters, the literal path.
type pattern struct {
	glob    string
	depth   int
	literal bool
}

type filtered struct {
	path     string
	excluded bool
}

func newFilter(s Scope) *filter {
	f := &filter{root: s.Root}
	for _, g := range s.Exclude {
		f.patterns = append(f.patterns, pattern{glob: g, depth: strings.Count(g, "/"), literal: !strings.ContainsAny(g, `*?[\`)})
	}
	return f
}

// keep reports whether the node at p is compared. Calls must follow canonical
// order for the chain to be reused; out of order they are still right, only
// slower.
func (f *filter) keep(p string) bool {
	if !inSubtree(p, f.root) {
		return false
	}
	if len(f.patterns) == 0 {
		return true
	}
	// Drop what is not an ancestor of p.
	for len(f.chain) > 0 && !inSubtree(p, f.chain[len(f.chain)-1].path) {
		f.chain = f.chain[:len(f.chain)-1]
	}
	excluded := false
	if len(f.chain) > 0 {
		top := f.chain[len(f.chain)-1]
		if top.path == p {
			return !top.excluded
		}
		excluded = top.excluded
		// The common case in a complete stream: the parent came just before.
		if znode.Parent(p) == top.path {
			if !excluded {
				excluded = f.matches(p)
			}
			f.chain = append(f.chain, filtered{path: p, excluded: excluded})
			return !excluded
		}
	}
	// Fill in the ancestors between the chain's top (or the scope's root) and
	// p that the stream did not show, then p itself.
	var from string
	if len(f.chain) > 0 {
		from = f.chain[len(f.chain)-1].path
	}
	for _, a := range ancestorsBetween(from, f.root, p) {
		if !excluded {
			excluded = f.matches(a)
		}
		f.chain = append(f.chain, filtered{path: a, excluded: excluded})
	}
	return !excluded
}

func (f *filter) matches(p string) bool {
	depth := -1
	for _, pat := range f.patterns {
		if pat.literal {
			if p == pat.glob {
				return true
			}
			continue
		}
		if depth < 0 {
			depth = strings.Count(p, "/")
		}
		if depth != pat.depth {
			continue
		}
		if ok, _ := path.Match(pat.glob, p); ok {
			return true
		}
	}
	return false
}

// ancestorsBetween lists, top down, the paths strictly below from (or, when
// from is empty, from root down, root included) that lead to p, p included.
func ancestorsBetween(from, root, p string) []string {
	var out []string
	for q := p; ; q = znode.Parent(q) {
		if q == from || q == "" {
			break
		}
		out = append(out, q)
		if from == "" && q == root {
			break
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

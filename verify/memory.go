package verify

import (
	"context"
	"slices"

	"github.com/zk2raft/zk2raft/znode"
)

// FuncSource adapts a walk function to a Source. The function must stream in
// canonical order; the comparison checks that it does. digests, when not nil,
// makes the source a Digester.
func FuncSource(info Info, walk func(ctx context.Context, scope Scope, fn func(*znode.Node) error) error, digests *DigestInfo) Source {
	if info.Root == "" {
		info.Root = "/"
	}
	if info.Scheme == "" {
		info.Scheme = "memory"
	}
	s := &funcSource{info: info, walk: walk}
	if digests != nil {
		return &digestFuncSource{funcSource: s, digests: *digests}
	}
	return s
}

type funcSource struct {
	info Info
	walk func(ctx context.Context, scope Scope, fn func(*znode.Node) error) error
}

func (s *funcSource) Info() Info { return s.info }
func (s *funcSource) Walk(ctx context.Context, scope Scope, fn func(*znode.Node) error) error {
	return s.walk(ctx, scope, fn)
}
func (s *funcSource) Close() error { return nil }

type digestFuncSource struct {
	*funcSource
	digests DigestInfo
}

func (s *digestFuncSource) Digests(context.Context) (DigestInfo, error) { return s.digests, nil }

// MemorySource is a static tree held in memory: a journal's tree, or a test's.
// The nodes are sorted into canonical order (a copy of the slice; the nodes are
// shared and must not change while the source is used).
func MemorySource(info Info, nodes []*znode.Node, digests *DigestInfo) Source {
	sorted := slices.Clone(nodes)
	SortNodes(sorted)
	if info.Nodes == 0 {
		info.Nodes = int64(len(sorted))
	}
	return FuncSource(info, func(ctx context.Context, scope Scope, fn func(*znode.Node) error) error {
		// Start at the scope's root: everything before it in canonical order
		// is outside the subtree.
		i, _ := slices.BinarySearchFunc(sorted, scope.Root, func(n *znode.Node, p string) int {
			return znode.ComparePaths(n.Path, p)
		})
		for ; i < len(sorted) && scope.Contains(sorted[i].Path); i++ {
			if i&1023 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := fn(sorted[i]); err != nil {
				return err
			}
		}
		return nil
	}, digests)
}

// SortNodes sorts nodes into canonical order (znode.ComparePaths).
func SortNodes(nodes []*znode.Node) {
	slices.SortFunc(nodes, func(a, b *znode.Node) int { return znode.ComparePaths(a.Path, b.Path) })
}

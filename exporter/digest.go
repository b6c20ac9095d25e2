package exporter

import (
	"context"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/znode"
)

// ClientDigest recomputes ZooKeeper's tree digest from what the client API returns,
// walking the whole tree with [SequentialWalk]. It is exact for trees without
// container and TTL nodes; for those, opts.RawOwner must supply the raw owners.
// The digest is only comparable with the server's when no write lands during the
// walk.
func ClientDigest(ctx context.Context, conn *zk.Conn, opts WalkOptions) (znode.Digest, int, error) {
	var d znode.Digest
	nodes := 0
	opts.SkipSystem = false // /zookeeper itself counts; its children contribute 0
	err := SequentialWalk(ctx, conn, "/", opts, func(n *znode.Node) error {
		d.Add(n.Digest())
		nodes++
		return nil
	})
	return d, nodes, err
}

package dualwrite

import (
	"context"

	"github.com/zk2raft/zk2raft/raftjournal"
)

// Journal is the cluster mirrored writes and repairs are submitted to:
// importer.NodeJournal (a node in this process) and importer.RemoteJournal
// (a cluster reached through a member's admin address) satisfy it.
type Journal interface {
	// Submit appends an encoded entry (raftjournal.Encode) through the leader
	// and returns its result once applied there.
	Submit(ctx context.Context, entry []byte) (*raftjournal.Result, error)
}

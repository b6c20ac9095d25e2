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

// JournalPinger is implemented by journals that can say whether they are
// reachable without a write (importer.JournalCluster): the tap pings an idle
// journal, so that its status tells an outage before the next write does.
type JournalPinger interface {
	Ping(ctx context.Context) error
}

// JournalMembers is implemented by journals reached through several members
// (importer.JournalCluster): the tap's status lists them.
type JournalMembers interface {
	AdminAddrs() []string
}

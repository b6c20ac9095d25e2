package raftjournal

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// LogStoreKind names an on-disk Raft log store implementation.
type LogStoreKind string

// The log stores. See "Storage" in store.go for why LogStoreWAL is the default.
const (
	// LogStoreWAL is hashicorp/raft-wal: segment files appended sequentially,
	// a small bbolt file for metadata.
	LogStoreWAL LogStoreKind = "wal"
	// LogStoreBolt is hashicorp/raft-boltdb/v2: one bbolt B+tree file.
	LogStoreBolt LogStoreKind = "bolt"
)

// NodeConfig configures a journal node (Open). The zero value is not usable;
// start from DefaultNodeConfig and set DataDir, NodeID, RaftAddr, Secret (or
// Insecure) and, for an empty data dir, one of Bootstrap or Join.
type NodeConfig struct {
	// DataDir holds the node's Raft log, stable store, snapshots and a LOCK file
	// that keeps a second process out. Created if missing.
	DataDir string
	// NodeID is the node's Raft server id, unique in the cluster and stable
	// across restarts.
	NodeID string
	// RaftAddr is the TCP address the node listens on for Raft and for the
	// journal's own RPCs (write forwarding, read index, membership). Port 0 picks
	// a free port, which is only useful for a node that is never restarted: the
	// address is part of the cluster configuration.
	RaftAddr string
	// AdvertiseAddr is the Raft address other nodes dial, when it differs from
	// RaftAddr (RaftAddr 0.0.0.0:7000, say). Empty: the bound RaftAddr.
	AdvertiseAddr string
	// AdminAddr is the HTTP address of /status, /metrics and the membership
	// endpoints (/join, /remove, /transfer-leadership). Empty: no admin server.
	AdminAddr string

	// Secret is the cluster secret (LoadSecretFile): every member, proxy and
	// tool that talks to the node's ports must hold it (see "Security" in
	// security.go). Required unless Insecure.
	Secret []byte
	// Insecure runs the node without a cluster secret: its admin and Raft
	// ports then answer anyone who can reach them. For tests and demos on
	// loopback only.
	Insecure bool
	// TLS, when not nil, puts the admin and Raft ports behind mutual TLS (on
	// top of the secret): peers need a certificate from the cluster's CA.
	TLS *ClusterTLS
	// OpenMetrics serves /metrics to callers without the secret (a Prometheus
	// without it); OpenStatus serves them a minimal /status (health checks).
	OpenMetrics, OpenStatus bool
	// SuperDigest is ZooKeeper's super user for tree reads over the admin port
	// (zookeeper.DigestAuthenticationProvider.superDigest): "super:HASH" where
	// HASH is base64(sha1("super:PASSWORD")). A request authenticated as that
	// digest reads every node whatever its ACL. Empty: no super user.
	SuperDigest string

	// Bootstrap makes a node with an empty data dir the first member of a new
	// cluster. It is ignored when the data dir already holds Raft state.
	Bootstrap bool
	// Join is the admin address of a running member. A node with an empty data
	// dir asks it to add this node as a voter (the request reaches the leader),
	// retrying for up to JoinTimeout. Ignored when the data dir holds Raft state.
	Join string
	// JoinTimeout bounds the join in Open.
	JoinTimeout time.Duration

	// AcceptLogLoss starts a node whose data dir is damaged in a way that can
	// be survived by forgetting log entries (datadir.go): the log is cut back
	// to the intact entries after the snapshot, and the loss is logged. For an
	// operator who chose it (serve --accept-data-loss); a member of a cluster
	// is better rebuilt (wiped and joined again).
	AcceptLogLoss bool

	// Logger receives the node's logs and, bridged to hclog, Raft's. Nil drops them.
	Logger *slog.Logger

	// LogStore selects the on-disk log store.
	LogStore LogStoreKind
	// WALSegmentBytes is the size raft-wal rolls segment files at (0: its
	// default, 64 MiB). Compaction frees disk a whole segment at a time.
	WALSegmentBytes int
	// CompressSnapshots stores FSM snapshots zstd-compressed (smaller files and
	// snapshot installs, about half the write speed).
	CompressSnapshots bool
	// SnapshotRetain is how many snapshots the snapshot store keeps.
	SnapshotRetain int

	// Raft timing. ElectionTimeout and HeartbeatTimeout are Raft's; on loopback
	// in tests 200–300 ms is fine, across machines keep the 1 s defaults.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// LogCacheEntries is how many of the newest log entries the leader keeps in
	// memory to replicate from, instead of reading them back from disk (0:
	// none). Import entries are large; 128 of 1,000-node batches is ~20 MB.
	LogCacheEntries int
	// MaxAppendEntries is how many entries one AppendEntries RPC and one disk
	// write may carry (Raft's MaxAppendEntries, at most 1024). It is also the
	// depth of the apply queue that concurrent writers are batched from.
	MaxAppendEntries int

	// Snapshots and log compaction (see "Snapshots" in compaction.go). The node
	// snapshots when the log applied since the last snapshot reaches
	// max(SnapshotMinLogBytes, SnapshotLogRatio × the last snapshot's size), so the
	// snapshot work stays proportional to the log written however large the tree
	// grows, and a bulk import of big entries does not snapshot every few seconds.
	// SnapshotThreshold (entries) is Raft's own count trigger, checked every
	// SnapshotInterval, as a backstop for floods of tiny entries.
	SnapshotMinLogBytes int64
	SnapshotLogRatio    float64
	SnapshotThreshold   uint64
	SnapshotInterval    time.Duration
	// TrailingLogBytes is roughly how much log is kept behind a snapshot so that a
	// briefly lagging follower catches up from the log rather than by a snapshot
	// install. It is converted to Raft's TrailingLogs (an entry count) from the
	// average entry size seen, within [MinTrailingLogs, MaxTrailingLogs].
	TrailingLogBytes int64
	MinTrailingLogs  uint64
	MaxTrailingLogs  uint64

	// SessionTick is how often the leader looks for expired sessions.
	SessionTick time.Duration
	// CleanupInterval is how often the leader deletes empty containers and
	// expired TTL nodes (ZooKeeper's znode.container.checkIntervalMs), once the
	// journal is primary. 0 disables the clean-up.
	CleanupInterval time.Duration
	// CleanupBatch caps the paths one clean-up entry deletes
	// (znode.container.maxPerMinute spirit).
	CleanupBatch int

	// ForwardTimeout bounds one forwarded request when the caller's context has
	// no deadline.
	ForwardTimeout time.Duration
}

// DefaultNodeConfig returns a configuration with the defaults filled in and the
// identity fields (DataDir, NodeID, RaftAddr, Bootstrap/Join) and the cluster
// secret empty.
func DefaultNodeConfig() NodeConfig {
	return NodeConfig{
		JoinTimeout:         60 * time.Second,
		LogStore:            LogStoreWAL,
		SnapshotRetain:      2,
		HeartbeatTimeout:    time.Second,
		ElectionTimeout:     time.Second,
		LeaderLeaseTimeout:  500 * time.Millisecond,
		CommitTimeout:       20 * time.Millisecond,
		MaxAppendEntries:    128,
		LogCacheEntries:     128,
		SnapshotMinLogBytes: 64 << 20,
		SnapshotLogRatio:    1,
		SnapshotThreshold:   1 << 20,
		SnapshotInterval:    30 * time.Second,
		TrailingLogBytes:    64 << 20,
		MinTrailingLogs:     128,
		MaxTrailingLogs:     1 << 18,
		SessionTick:         100 * time.Millisecond,
		CleanupInterval:     60 * time.Second,
		CleanupBatch:        1000,
		ForwardTimeout:      30 * time.Second,
	}
}

// ErrInvalidConfig is returned (wrapped) by NodeConfig.Validate and Open for a
// configuration that cannot be used.
var ErrInvalidConfig = errors.New("raftjournal: invalid node configuration")

func invalidConfig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// Credentials are what the node presents when it dials other members.
func (c *NodeConfig) Credentials() Credentials { return Credentials{Secret: c.Secret, TLS: c.TLS} }

// checkSecret is Open's check that the node's ports will be protected (an
// offline bootstrap, which opens no port, needs no secret).
func (c *NodeConfig) checkSecret() error {
	if len(c.Secret) == 0 && !c.Insecure {
		return fmt.Errorf("%w: %w: set Secret (every member and tool holds the same), or Insecure for a node whose ports anyone may use", ErrInvalidConfig, ErrNoSecret)
	}
	return nil
}

// Validate reports whether the configuration can be used. Open also needs a
// Secret, or Insecure (see "Security" in security.go).
func (c NodeConfig) Validate() error {
	switch {
	case c.DataDir == "":
		return invalidConfig("DataDir is empty")
	case c.NodeID == "":
		return invalidConfig("NodeID is empty")
	case c.RaftAddr == "":
		return invalidConfig("RaftAddr is empty")
	case c.Bootstrap && c.Join != "":
		return invalidConfig("Bootstrap and Join are exclusive")
	case len(c.Secret) > 0 && c.Insecure:
		return invalidConfig("Secret and Insecure are exclusive")
	case len(c.Secret) > 0 && len(c.Secret) < MinSecretBytes:
		return invalidConfig("Secret is %d bytes, want at least %d", len(c.Secret), MinSecretBytes)
	case c.SuperDigest != "" && !validSuperDigest(c.SuperDigest):
		return invalidConfig("SuperDigest %q: want super:BASE64(SHA1(super:PASSWORD)), as zookeeper.DigestAuthenticationProvider.superDigest", c.SuperDigest)
	case c.LogStore != LogStoreWAL && c.LogStore != LogStoreBolt:
		return invalidConfig("LogStore %q: want %q or %q", c.LogStore, LogStoreWAL, LogStoreBolt)
	case c.LogCacheEntries < 0:
		return invalidConfig("LogCacheEntries %d is negative", c.LogCacheEntries)
	case c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024:
		return invalidConfig("MaxAppendEntries %d: want 1..1024", c.MaxAppendEntries)
	case c.WALSegmentBytes < 0:
		return invalidConfig("WALSegmentBytes %d is negative", c.WALSegmentBytes)
	case c.SnapshotRetain < 1:
		return invalidConfig("SnapshotRetain %d: want at least 1", c.SnapshotRetain)
	case c.HeartbeatTimeout <= 0 || c.ElectionTimeout <= 0 || c.LeaderLeaseTimeout <= 0 || c.CommitTimeout <= 0:
		return invalidConfig("Raft timeouts must be positive")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return invalidConfig("LeaderLeaseTimeout %v exceeds HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.SnapshotMinLogBytes <= 0 || c.SnapshotLogRatio <= 0 || c.SnapshotThreshold == 0 || c.SnapshotInterval <= 0:
		return invalidConfig("snapshot policy values must be positive")
	case c.MinTrailingLogs == 0 || c.MaxTrailingLogs < c.MinTrailingLogs || c.TrailingLogBytes <= 0:
		return invalidConfig("trailing log bounds: want 0 < MinTrailingLogs <= MaxTrailingLogs and TrailingLogBytes > 0")
	case c.SessionTick <= 0:
		return invalidConfig("SessionTick must be positive")
	case c.CleanupInterval < 0 || c.CleanupBatch < 1:
		return invalidConfig("CleanupInterval must not be negative and CleanupBatch must be positive")
	case c.JoinTimeout <= 0 || c.ForwardTimeout <= 0:
		return invalidConfig("JoinTimeout and ForwardTimeout must be positive")
	}
	for name, addr := range map[string]string{"RaftAddr": c.RaftAddr, "AdvertiseAddr": c.AdvertiseAddr, "AdminAddr": c.AdminAddr, "Join": c.Join} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return invalidConfig("%s %q: %v", name, addr, err)
		}
	}
	return nil
}

package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// ErrCheckpointUnsupported is returned by Journal.Checkpoint when the journal
// cannot report importer checkpoints (a node that predates the endpoint). An
// online import then starts from the beginning, which is safe: applying a
// batch again changes nothing.
var ErrCheckpointUnsupported = errors.New("importer: the journal cannot report import checkpoints")

// Journal is a running journal cluster an online import writes to.
type Journal interface {
	// Submit appends an encoded entry through the leader and returns its
	// result once applied there.
	Submit(ctx context.Context, entry []byte) (*raftjournal.Result, error)
	// Checkpoint returns the importer checkpoint stored under key, as of a
	// linearizable read.
	Checkpoint(ctx context.Context, key string) (value []byte, ok bool, err error)
	// State returns the journal's state once the node asked has applied at
	// least index (0: as it is).
	State(ctx context.Context, index uint64) (JournalState, error)
	// Close releases the connection. It is idempotent.
	Close() error
}

// JournalState is the part of a journal's status an import checks.
type JournalState struct {
	Digest       znode.Digest
	Nodes        int64
	AppliedIndex uint64
	Phase        string
}

// fresh reports whether the journal holds nothing but the system nodes.
func (s JournalState) fresh() bool {
	return s.Nodes == int64(len(SystemPaths)) && s.Digest == znode.EmptyTreeDigest
}

// NodeJournal is a Journal backed by a node in this process.
func NodeJournal(n *raftjournal.Node) Journal { return nodeJournal{n} }

type nodeJournal struct{ n *raftjournal.Node }

func (j nodeJournal) Submit(ctx context.Context, entry []byte) (*raftjournal.Result, error) {
	return j.n.SubmitEntry(ctx, entry)
}

func (j nodeJournal) Checkpoint(ctx context.Context, key string) ([]byte, bool, error) {
	// A linearizable read makes this node apply everything committed so far.
	if _, _, err := j.n.Exists(ctx, "/", raftjournal.Linearizable()); err != nil {
		return nil, false, fmt.Errorf("importer: linearizable read: %w", err)
	}
	v, ok := j.n.FSM().Checkpoint(key)
	return v, ok, nil
}

func (j nodeJournal) State(ctx context.Context, index uint64) (JournalState, error) {
	for j.n.AppliedIndex() < index {
		select {
		case <-ctx.Done():
			return JournalState{}, fmt.Errorf("importer: waiting for index %d: %w", index, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	st := j.n.FSM().Status()
	return JournalState{Digest: st.Digest, Nodes: int64(st.Nodes), AppliedIndex: st.AppliedIndex, Phase: st.Phase.String()}, nil
}

func (nodeJournal) Close() error { return nil }

// RemoteJournal reaches a cluster from outside through one member's admin
// address: /status names the leader, whose Raft port takes the entries over
// the journal RPC. Both carry the admin client's credentials.
type RemoteJournal struct {
	admin  *raftjournal.AdminClient
	rpc    *raftjournal.RPCClient
	logger *slog.Logger

	mu     sync.Mutex
	leader string // Raft address
}

// DialJournal checks that the node admin reaches answers and learns the leader.
func DialJournal(ctx context.Context, admin *raftjournal.AdminClient, logger *slog.Logger) (*RemoteJournal, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	j := &RemoteJournal{admin: admin, rpc: raftjournal.NewRPCClient(admin.Credentials(), 30*time.Second), logger: logger}
	if _, err := j.leaderAddr(ctx, true); err != nil {
		j.rpc.Close()
		return nil, err
	}
	return j, nil
}

// NewRemoteJournal is DialJournal without the check: nothing is dialled
// until the first call, which finds the leader then.
func NewRemoteJournal(admin *raftjournal.AdminClient, logger *slog.Logger) *RemoteJournal {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &RemoteJournal{admin: admin, rpc: raftjournal.NewRPCClient(admin.Credentials(), 30*time.Second), logger: logger}
}

// MemberAdminAddrs returns the admin addresses of the cluster's members as
// this member reports them (GET /status): those whose own status it could
// read, itself included.
func (j *RemoteJournal) MemberAdminAddrs(ctx context.Context) ([]string, error) {
	cs, err := j.admin.ClusterStatus(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("importer: journal at %s: %w", j.admin.Addr(), err)
	}
	var out []string
	for _, m := range cs.Members {
		if m.Status == nil || m.Status.AdminAddr == "" {
			continue
		}
		addr := m.Status.AdminAddr
		// A member bound to every interface reports 0.0.0.0 or [::]: reach it
		// at the host of the Raft address it advertises.
		if host, port, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				if rhost, _, err := net.SplitHostPort(m.RaftAddr); err == nil {
					addr = net.JoinHostPort(rhost, port)
				}
			}
		}
		out = append(out, addr)
	}
	return out, nil
}

func (j *RemoteJournal) status(ctx context.Context) (raftjournal.ClusterStatus, error) {
	return j.admin.ClusterStatus(ctx, true)
}

// leaderAddr returns the leader's Raft address, asking the admin endpoint
// when it is not known or refresh is set, until one is elected or ctx ends.
func (j *RemoteJournal) leaderAddr(ctx context.Context, refresh bool) (string, error) {
	j.mu.Lock()
	l := j.leader
	j.mu.Unlock()
	if l != "" && !refresh {
		return l, nil
	}
	backoff := 20 * time.Millisecond
	for {
		cs, err := j.status(ctx)
		if err != nil {
			return "", fmt.Errorf("importer: journal at %s: %w", j.admin.Addr(), err)
		}
		if cs.LeaderAddr != "" {
			j.mu.Lock()
			j.leader = cs.LeaderAddr
			j.mu.Unlock()
			return cs.LeaderAddr, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("importer: journal at %s: %w (%v)", j.admin.Addr(), raftjournal.ErrNoLeader, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Submit implements Journal. A leader change surfaces as an error the online
// importer retries; the next call asks for the leader again.
func (j *RemoteJournal) Submit(ctx context.Context, entry []byte) (*raftjournal.Result, error) {
	addr, err := j.leaderAddr(ctx, false)
	if err != nil {
		return nil, err
	}
	res, err := j.rpc.Apply(ctx, addr, entry)
	if err != nil {
		j.mu.Lock()
		if j.leader == addr {
			j.leader = "" // ask again next time
		}
		j.mu.Unlock()
		return nil, err
	}
	return res, nil
}

// Checkpoint implements Journal through the admin endpoint's
// GET /checkpoint?key=K, answered {"key": K, "value": base64 or null}. A node
// without that endpoint makes it ErrCheckpointUnsupported.
func (j *RemoteJournal) Checkpoint(ctx context.Context, key string) ([]byte, bool, error) {
	var out struct {
		Key   string `json:"key"`
		Value []byte `json:"value"`
	}
	err := j.admin.Call(ctx, http.MethodGet, "/checkpoint?key="+url.QueryEscape(key), nil, &out)
	if err != nil {
		if errors.Is(err, raftjournal.ErrRemote) && (strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "405")) {
			return nil, false, ErrCheckpointUnsupported
		}
		return nil, false, fmt.Errorf("importer: read checkpoint: %w", err)
	}
	return out.Value, out.Value != nil, nil
}

// State implements Journal with the admin node's own status.
func (j *RemoteJournal) State(ctx context.Context, index uint64) (JournalState, error) {
	for {
		cs, err := j.status(ctx)
		if err != nil {
			return JournalState{}, fmt.Errorf("importer: journal at %s: %w", j.admin.Addr(), err)
		}
		if cs.AppliedIndex >= index {
			d, err := znode.ParseDigest(cs.Digest)
			if err != nil {
				return JournalState{}, fmt.Errorf("importer: journal at %s reports digest %q: %w", j.admin.Addr(), cs.Digest, err)
			}
			return JournalState{Digest: d, Nodes: int64(cs.NodeCount), AppliedIndex: cs.AppliedIndex, Phase: cs.Phase}, nil
		}
		select {
		case <-ctx.Done():
			return JournalState{}, fmt.Errorf("importer: journal at %s applied %d, waiting for %d: %w", j.admin.Addr(), cs.AppliedIndex, index, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close implements Journal: it closes the pooled RPC connections.
func (j *RemoteJournal) Close() error {
	j.rpc.Close()
	return nil
}

// Checkpoint values. The checkpoint is stored in the journal with the batch
// that carries it, so it never claims more than the journal holds.

// CheckpointValue is what an import records under its key.
type CheckpointValue struct {
	Version int    `json:"v"`
	Source  string `json:"source"`
	// Nodes is a prefix of the stream known to be applied: every node before
	// it is in the journal. Batches in flight may have applied more.
	Nodes int64 `json:"nodes"`
	// Total and Digest describe the whole stream (the snapshot's trailer).
	Total  int64  `json:"total"`
	Digest string `json:"digest"`
	// Done is set by the import's last entry, after every batch was applied.
	Done bool `json:"done"`
	// BaseFresh says the journal held nothing but the system nodes when the
	// import began, so the result must equal the stream (see Expectation).
	BaseFresh bool `json:"base_fresh"`
}

const checkpointVersion = 1

// Encode renders the value as stored in the journal.
func (v CheckpointValue) Encode() []byte {
	v.Version = checkpointVersion
	b, _ := json.Marshal(v)
	return b
}

// DecodeCheckpoint parses a checkpoint value.
func DecodeCheckpoint(b []byte) (CheckpointValue, error) {
	var v CheckpointValue
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("importer: checkpoint value: %w", err)
	}
	if v.Version != checkpointVersion {
		return v, fmt.Errorf("importer: checkpoint version %d, this build reads %d", v.Version, checkpointVersion)
	}
	return v, nil
}

// SnapshotCheckpointKey names the checkpoint of an import of a snapshot: its
// node count, digest and creation time identify it.
func SnapshotCheckpointKey(h znode.SnapshotHeader, tr znode.SnapshotTrailer) string {
	return fmt.Sprintf("import/snapshot/%d-%d-%d", tr.NodeCount, uint64(tr.Digest), h.CreatedAt.UnixNano())
}

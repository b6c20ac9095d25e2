package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
)

// JournalCluster reaches a journal cluster through whichever of its members
// answers: it starts from the admin addresses it is given, learns the others
// from the cluster's own status (GET /status lists every member with its
// admin address), and sends each call to the member that answered last,
// moving on to the next one when that member does not answer. Each member is
// a RemoteJournal (its /status names the leader, whose Raft port takes the
// entry), so a leader change within the cluster is followed as before, and
// the death of the member it was reaching through is survived too.
//
// Nothing is dialled until the first call, so a JournalCluster can be made
// while the whole cluster is down: calls then fail until a member answers.
// Submit may send an entry again to another member after an unknown outcome,
// so it is for entries whose second apply is harmless (ImportBatch,
// SourceTxn, SourceBatch: the dual-write proxy's and the importer's).
type JournalCluster struct {
	logger *slog.Logger
	creds  raftjournal.Credentials

	mu          sync.Mutex
	members     []*RemoteJournal // seeds first, then learned
	current     int              // the member that answered last
	learned     time.Time        // when the membership was last read
	learnErr    error
	lastErr     error     // the last call's error when every member failed
	reachableAt time.Time // the last call a member answered
}

// membershipEvery is how often JournalCluster reads the membership again
// while calls succeed (and at once after a member stopped answering).
const membershipEvery = 30 * time.Second

// NewJournalCluster returns a JournalCluster starting from the given admin
// addresses (host:port or URLs), reached with creds (raftjournal.AdminClient,
// RPCClient). It does not dial.
func NewJournalCluster(adminAddrs []string, creds raftjournal.Credentials, logger *slog.Logger) (*JournalCluster, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &JournalCluster{logger: logger, creds: creds}
	for _, a := range adminAddrs {
		if a != "" {
			c.add(a)
		}
	}
	if len(c.members) == 0 {
		return nil, errors.New("importer: no journal admin address")
	}
	return c, nil
}

// add adds a member by admin address unless it is known; the caller holds mu
// or owns c.
func (c *JournalCluster) add(addr string) bool {
	admin := raftjournal.NewAdminClient(addr, c.creds)
	if slices.ContainsFunc(c.members, func(m *RemoteJournal) bool { return m.admin.Addr() == admin.Addr() }) {
		return false
	}
	c.members = append(c.members, NewRemoteJournal(admin, c.logger))
	return true
}

// Credentials returns the credentials the members are reached with.
func (c *JournalCluster) Credentials() raftjournal.Credentials { return c.creds }

// AdminAddrs returns the admin addresses the cluster is reached through,
// the member answering first.
func (c *JournalCluster) AdminAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.members))
	for i := range c.members {
		out = append(out, c.members[(c.current+i)%len(c.members)].admin.Addr())
	}
	return out
}

// ClusterReach is what a JournalCluster knows about reaching the cluster.
type ClusterReach struct {
	// Members are the admin addresses known, the one answering first.
	Members []string `json:"members"`
	// Reachable says the last call was answered by a member.
	Reachable bool `json:"reachable"`
	// LastAnswer is when a member last answered (zero: never).
	LastAnswer time.Time `json:"last_answer,omitzero"`
	// Error is why the last call failed on every member.
	Error string `json:"error,omitempty"`
}

// Reach reports whether the cluster answers, as of the last call.
func (c *JournalCluster) Reach() ClusterReach {
	r := ClusterReach{Members: c.AdminAddrs()}
	c.mu.Lock()
	defer c.mu.Unlock()
	r.LastAnswer = c.reachableAt
	r.Reachable = c.lastErr == nil && !c.reachableAt.IsZero()
	if c.lastErr != nil {
		r.Error = c.lastErr.Error()
	}
	return r
}

// Submit implements the Journal interfaces: the entry goes to the leader
// through the member that answered last, or the next one that answers.
func (c *JournalCluster) Submit(ctx context.Context, entry []byte) (*raftjournal.Result, error) {
	var res *raftjournal.Result
	err := c.each(ctx, func(ctx context.Context, m *RemoteJournal) error {
		var err error
		res, err = m.Submit(ctx, entry)
		return err
	})
	return res, err
}

// Ping checks that a member answers and names a leader, as a call would
// find them, and reads the membership again if it is due.
func (c *JournalCluster) Ping(ctx context.Context) error {
	return c.each(ctx, func(ctx context.Context, m *RemoteJournal) error {
		_, err := m.leaderAddr(ctx, true)
		return err
	})
}

// each runs call on the member that answered last, then on the others in
// turn until one succeeds. A member is given a share of ctx's time, at least
// 5 seconds (finding the leader waits out an election).
func (c *JournalCluster) each(ctx context.Context, call func(context.Context, *RemoteJournal) error) error {
	c.mu.Lock()
	members := slices.Clone(c.members)
	start := c.current
	stale := time.Since(c.learned) > membershipEvery
	c.mu.Unlock()
	var errs []error
	for i := range members {
		k := (start + i) % len(members)
		mctx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && len(members)-i > 1 {
			share := max(time.Until(dl)/time.Duration(len(members)-i), 5*time.Second)
			mctx, cancel = context.WithTimeout(ctx, share)
		}
		err := call(mctx, members[k])
		cancel()
		if err == nil {
			c.mu.Lock()
			if k != c.current {
				c.logger.Info("reaching the journal through another member", "admin", members[k].admin.Addr())
			}
			c.current, c.lastErr, c.reachableAt = k, nil, time.Now()
			c.mu.Unlock()
			if stale || i > 0 {
				c.learn(ctx, members[k])
			}
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", members[k].admin.Addr(), err))
		if ctx.Err() != nil {
			break
		}
	}
	err := fmt.Errorf("importer: no journal member answered: %w", errors.Join(errs...))
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
	return err
}

// learn reads the membership from m and adds the members not known yet.
// Members are never dropped: one that left stops answering and is skipped.
func (c *JournalCluster) learn(ctx context.Context, m *RemoteJournal) {
	addrs, err := m.MemberAdminAddrs(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.learned, c.learnErr = time.Now(), err
	if err != nil {
		c.logger.Debug("cannot read the journal's membership", "admin", m.admin.Addr(), "err", err)
		return
	}
	for _, a := range addrs {
		if c.add(a) {
			c.logger.Info("learned a journal member", "admin", a)
		}
	}
}

// Close implements the Journal interfaces.
func (c *JournalCluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, m := range c.members {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

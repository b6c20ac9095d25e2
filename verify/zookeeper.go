package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// ZKOptions configure a ZooKeeperSource.
type ZKOptions struct {
	// Hosts are the ensemble's servers, "host:port" each.
	Hosts []string
	// Chroot is the subtree the side stands for ("/" or empty: the whole tree).
	// Paths stay absolute: the migration keeps them.
	Chroot string
	// Auth are credentials added to every session; without them, nodes whose
	// ACL denies READ make the walk fail (a verifier cannot vouch for what it
	// cannot read), and nodes whose ACL denies ADMIN show their ACL masked, which
	// the comparison reports as FieldACLMasked.
	Auth []zkclient.Auth
	// Sessions and Workers tune the parallel walk (exporter.Config); 0 means
	// the walker's defaults.
	Sessions, Workers int
	// Logger receives the walk's log lines; nil discards them.
	Logger *slog.Logger
	// AllowUnreadable makes a walk that meets nodes the credentials cannot
	// read (NoAuth: left out with their subtrees, and a re-read of them finds
	// nothing; a masked ACL: streamed as shown) succeed; Unreadable lists the
	// NoAuth ones. A comparison then shows the other side's copies of a
	// left-out subtree as extra: for callers that check each difference
	// themselves (the dual-write reconciler), not for a verdict.
	AllowUnreadable bool
}

// ZooKeeperSource is a live ensemble read through the client API (zk://). It
// walks with exporter.Walker, whose output is already in canonical order (its
// reorder buffer writes depth-first with children in byte order), over a few
// pipelined sessions. Container and TTL nodes show ephemeralOwner 0 to clients,
// so Info().RawOwners is false.
type ZooKeeperSource struct {
	opts ZKOptions
	info Info

	mu     sync.Mutex
	conn   *zkclient.Client // for Reread, opened on first use
	closed bool
	// unreadable is what the last Walk could not read (AllowUnreadable).
	unreadable      int64
	unreadablePaths []string
}

// Unreadable returns the number of nodes the last Walk could not read with
// AllowUnreadable (NoAuth: left out with their subtrees), and the first of
// them. Nodes whose ACL came back masked were streamed as shown and are not
// counted: the comparison reports them (FieldACLMasked).
func (s *ZooKeeperSource) Unreadable() (int64, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unreadable, slices.Clone(s.unreadablePaths)
}

var (
	_ Source   = (*ZooKeeperSource)(nil)
	_ Rereader = (*ZooKeeperSource)(nil)
	_ Syncer   = (*ZooKeeperSource)(nil)
	_ Digester = (*ZooKeeperSource)(nil)
)

// NewZooKeeperSource returns a source for the ensemble; it connects on first use.
func NewZooKeeperSource(opts ZKOptions) (*ZooKeeperSource, error) {
	if len(opts.Hosts) == 0 {
		return nil, fmt.Errorf("%w: zk:// without hosts", ErrInvalidURI)
	}
	if opts.Chroot == "" {
		opts.Chroot = "/"
	}
	if err := znode.ValidatePath(opts.Chroot); err != nil {
		return nil, fmt.Errorf("%w: chroot: %w", ErrInvalidURI, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	uri := "zk://" + strings.Join(opts.Hosts, ",")
	if opts.Chroot != "/" {
		uri += opts.Chroot
	}
	return &ZooKeeperSource{opts: opts, info: Info{
		URI:         uri,
		Scheme:      "zk",
		Description: "live ensemble, client API",
		Live:        true,
		Root:        opts.Chroot,
		Nodes:       -1,
	}}, nil
}

// Info implements Source.
func (s *ZooKeeperSource) Info() Info { return s.info }

// Walk implements Source with a fresh exporter.Walker per call. Nodes the
// credentials cannot read fail the walk. Nodes whose ACL ZooKeeper masked
// (credentials without ADMIN) are streamed as shown: the comparison knows a
// live side's masked ACL for what it is.
func (s *ZooKeeperSource) Walk(ctx context.Context, scope Scope, fn func(*znode.Node) error) error {
	cfg := exporter.DefaultConfig(s.opts.Hosts)
	cfg.Root = scope.Root
	cfg.Exclude = scope.Exclude
	cfg.Auth = s.opts.Auth
	cfg.Logger = s.opts.Logger
	cfg.AllowPartial = s.opts.AllowUnreadable
	if s.opts.Sessions > 0 {
		cfg.Sessions = s.opts.Sessions
	}
	if s.opts.Workers > 0 {
		cfg.Workers = s.opts.Workers
	}
	w, err := exporter.NewWalker(cfg)
	if err != nil {
		return fmt.Errorf("verify: %s: %w", s.info.URI, err)
	}
	defer w.Close()
	if err := w.Start(ctx); err != nil {
		return fmt.Errorf("verify: %s: %w", s.info.URI, err)
	}
	sum, err := w.Walk(ctx, exporter.SinkFunc(fn))
	if s.opts.AllowUnreadable && sum != nil {
		masked := make(map[string]bool, len(sum.ACLMaskedList))
		for _, p := range sum.ACLMaskedList {
			masked[p] = true
		}
		var paths []string
		for _, p := range sum.UnreadableList {
			if !masked[p] {
				paths = append(paths, p)
			}
		}
		s.mu.Lock()
		s.unreadable, s.unreadablePaths = sum.Unreadable-sum.ACLMasked, paths
		s.mu.Unlock()
	}
	var unreadable *exporter.UnreadableError
	switch {
	case errors.Is(err, exporter.ErrNoRoot):
		return nil // the scope's root does not exist here: no nodes
	case errors.As(err, &unreadable) && unreadable.Count == unreadable.ACLMasked:
		return nil // every node was streamed; only ACLs were masked
	case errors.Is(err, exporter.ErrUnreadable):
		return fmt.Errorf("verify: %s: %w (pass --auth)", s.info.URI, err)
	case err != nil:
		return fmt.Errorf("verify: %s: %w", s.info.URI, err)
	}
	return nil
}

// maxRereads bounds the attempts to read one node in a consistent state.
const maxRereads = 20

// Reread implements Rereader: getData and getACL on one session, until both
// replies describe the same incarnation and ACL version (the node's data and
// stat are getData's, its ACL was the same then). A
// masked ACL is returned as ZooKeeper shows it, as Walk streams it.
func (s *ZooKeeperSource) Reread(ctx context.Context, path string) (*znode.Node, error) {
	conn, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	for range maxRereads {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, st, err := conn.GetData(ctx, path)
		if errors.Is(err, zkclient.ErrNoNode) || (s.opts.AllowUnreadable && errors.Is(err, zkclient.ErrNoAuth)) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("verify: %s: re-read %s: %w", s.info.URI, path, err)
		}
		acl, ast, err := conn.GetACL(ctx, path)
		if errors.Is(err, zkclient.ErrNoNode) || (s.opts.AllowUnreadable && errors.Is(err, zkclient.ErrNoAuth)) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("verify: %s: re-read %s: %w", s.info.URI, path, err)
		}
		// The ACL getACL returned was the node's when getData read it if the
		// incarnation and the ACL's version are the same: a setData or a
		// child's change in between moves only what getData's stat
		// already describes, so a node written without pause still reads
		// consistently.
		if st.Czxid != ast.Czxid || st.Aversion != ast.Aversion {
			continue
		}
		return &znode.Node{
			Path:        path,
			Data:        data,
			ACL:         acl,
			Stat:        znode.FromWire(st, st.EphemeralOwner),
			NumChildren: st.NumChildren,
		}, nil
	}
	return nil, fmt.Errorf("verify: %s: %s changed on each of %d re-reads", s.info.URI, path, maxRereads)
}

// Sync implements Syncer: the re-read session catches up with the leader.
func (s *ZooKeeperSource) Sync(ctx context.Context) error {
	conn, err := s.session(ctx)
	if err != nil {
		return err
	}
	if err := conn.Sync(ctx, "/"); err != nil {
		return fmt.Errorf("verify: %s: sync: %w", s.info.URI, err)
	}
	return nil
}

func (s *ZooKeeperSource) session(ctx context.Context) (*zkclient.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("verify: %s: source closed", s.info.URI)
	}
	if s.conn != nil {
		return s.conn, nil
	}
	cctx, cancel := context.WithTimeout(ctx, exporter.DefaultConnectTimeout)
	defer cancel()
	conn, err := zkclient.Dial(cctx, zkclient.Config{Hosts: s.opts.Hosts, FirstHost: -1, Retry: zkclient.Resend,
		Auth: s.opts.Auth, Logger: s.opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("verify: %s: %w", s.info.URI, err)
	}
	// A read on this session must not be older than what the walk saw.
	if err := conn.Sync(cctx, "/"); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("verify: %s: sync: %w", s.info.URI, err)
	}
	s.conn = conn
	return conn, nil
}

// Digests implements Digester with the `hash` four-letter word of the first
// server that answers it: ZooKeeper's digest of the whole tree at the zxids it
// logged (multiples of 128, the last 1024), and its current zxid (`srvr`), so
// that the newest entry counts as current when no write came after it.
func (s *ZooKeeperSource) Digests(ctx context.Context) (DigestInfo, error) {
	var errs []error
	for _, host := range s.opts.Hosts {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		info, err := serverDigests(hctx, host)
		cancel()
		if err == nil {
			return info, nil
		}
		errs = append(errs, err)
	}
	return DigestInfo{}, fmt.Errorf("verify: %s: no server's digest log: %w", s.info.URI, errors.Join(errs...))
}

func serverDigests(ctx context.Context, host string) (DigestInfo, error) {
	zxid, err := zkclient.ServerZxid(ctx, host)
	if err != nil {
		return DigestInfo{}, err
	}
	out, err := zkclient.FourLetterWord(ctx, host, "hash")
	if err != nil {
		return DigestInfo{}, err
	}
	log, err := zkclient.ParseDigestLog(out)
	if err != nil {
		return DigestInfo{}, err
	}
	// The zxid after the hash answer: if it did not move, the newest entry is
	// the current tree.
	after, err := zkclient.ServerZxid(ctx, host)
	if err != nil {
		return DigestInfo{}, err
	}
	info := DigestInfo{Method: "hash four-letter word of " + host, Zxid: after, Nodes: -1, Coverage: WholeTree()}
	for _, e := range log {
		info.History = append(info.History, ZxidDigest{Zxid: e.Zxid, Digest: e.Digest})
	}
	if n := len(log); n > 0 && log[n-1].Zxid == zxid && zxid == after {
		info.HasCurrent, info.Current, info.Exact = true, log[n-1].Digest, true
	}
	return info, nil
}

// Close implements Source.
func (s *ZooKeeperSource) Close() error {
	s.mu.Lock()
	conn := s.conn
	s.conn, s.closed = nil, true
	s.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
	return nil
}

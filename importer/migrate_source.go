package importer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/znode"
)

// migrateSource is where a migration's node stream comes from: the live
// ensemble's walk, or a ZooKeeper server's data directory.
type migrateSource interface {
	// Start connects (or loads); it fails before anything is written.
	Start(ctx context.Context) error
	Header() znode.SnapshotHeader
	StartZxid() int64
	// Walk streams every node (and, from a data directory, its sessions) to
	// sink and sums up what it wrote as a walk's summary.
	Walk(ctx context.Context, sink teeSink) (*exporter.Summary, error)
	Progress() exporter.Progress
	// Exists reports whether ZooKeeper holds path now (the live ensemble) or
	// at the exported zxid (a data directory), with its pzxid: the sweep's
	// question. close ends what it opened.
	Exists(ctx context.Context, logger *slog.Logger) (exists func(path string) (pzxid int64, ok bool, err error), close func(), err error)
	Close()
}

// walkSource is the live ensemble, walked by exporter.Walker.
type walkSource struct {
	cfg exporter.Config
	w   *exporter.Walker
}

func (s *walkSource) Start(ctx context.Context) error {
	w, err := exporter.NewWalker(s.cfg)
	if err != nil {
		return err
	}
	s.w = w
	return w.Start(ctx)
}

func (s *walkSource) Header() znode.SnapshotHeader { return s.w.Header() }
func (s *walkSource) StartZxid() int64             { return s.w.StartZxid() }
func (s *walkSource) Progress() exporter.Progress  { return s.w.Progress() }

func (s *walkSource) Walk(ctx context.Context, sink teeSink) (*exporter.Summary, error) {
	return s.w.Walk(ctx, sink)
}

func (s *walkSource) Close() {
	if s.w != nil {
		s.w.Close()
	}
}

func (s *walkSource) Exists(ctx context.Context, logger *slog.Logger) (func(string) (int64, bool, error), func(), error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout+time.Minute)
	defer cancel()
	conn, err := exporter.Connect(cctx, s.cfg.Hosts, exporter.ConnectOptions{Auth: s.cfg.Auth, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	return func(p string) (int64, bool, error) {
		ok, st, err := conn.Exists(p)
		if err != nil {
			return 0, false, fmt.Errorf("zookeeper: exists %s: %w", p, err)
		}
		if !ok {
			return 0, false, nil
		}
		return st.Pzxid, true, nil
	}, conn.Close, nil
}

// dataDirSource is a ZooKeeper server's data directory, loaded with
// datadir.Load: the tree exactly at one zxid, proven by ZooKeeper's digest.
type dataDirSource struct {
	opts    datadir.Options
	eo      datadir.ExportOptions
	source  string
	st      *datadir.State
	written atomic.Int64
}

func newDataDirSource(opts datadir.Options, toolVersion string, extended bool) *dataDirSource {
	return &dataDirSource{opts: opts, eo: datadir.ExportOptions{ToolVersion: toolVersion, ExtendedTypes: extended},
		source: datadir.SourceURI(opts.DataDir, opts.LogDir)}
}

func (s *dataDirSource) Start(ctx context.Context) error {
	st, err := datadir.Load(ctx, s.opts)
	if err != nil {
		return err
	}
	s.st = st
	return nil
}

func (s *dataDirSource) Header() znode.SnapshotHeader { return s.st.Header(s.source, s.eo) }
func (s *dataDirSource) StartZxid() int64             { return s.st.Zxid }
func (s *dataDirSource) Close()                       {}

func (s *dataDirSource) Progress() exporter.Progress {
	return exporter.Progress{Nodes: s.written.Load()}
}

func (s *dataDirSource) Walk(ctx context.Context, sink teeSink) (*exporter.Summary, error) {
	ds, err := s.st.Export(ctx, countingSink{teeSink: sink, n: &s.written})
	if err != nil {
		return nil, err
	}
	return &exporter.Summary{
		Source: s.source, Root: "/", Nodes: ds.Nodes, DataBytes: ds.DataBytes,
		StartZxid: ds.Zxid, MaxZxid: ds.Zxid, Digest: ds.Digest,
		Ephemerals: ds.Ephemerals, Excluded: 1, // /zookeeper
		ReadMode: "datadir",
	}, nil
}

func (s *dataDirSource) Exists(context.Context, *slog.Logger) (func(string) (int64, bool, error), func(), error) {
	return func(p string) (int64, bool, error) {
		n := s.st.Tree.Node(p)
		if n == nil {
			return 0, false, nil
		}
		return n.Stat.Pzxid, true, nil
	}, func() {}, nil
}

// quotas lists the paths with a quota under /zookeeper/quota in the loaded
// tree.
func (s *dataDirSource) quotas() []string {
	var out []string
	_ = s.st.Tree.Walk("/zookeeper/quota", nil, func(n *znode.Node) error {
		if strings.HasSuffix(n.Path, "/zookeeper_limits") {
			out = append(out, strings.TrimPrefix(strings.TrimSuffix(n.Path, "/zookeeper_limits"), "/zookeeper/quota"))
		}
		return nil
	})
	return out
}

// digestCheck compares the journal's digest with ZooKeeper's own at the
// exported zxid: the loaded tree's, which the load proved equal to a digest
// ZooKeeper recorded. A journal that held other nodes before the import is
// not comparable with it.
func (s *dataDirSource) digestCheck(journal string, fresh bool) Check {
	c := Check{Check: CheckZooKeeperDigest, Result: NotComparable}
	zd := s.st.Tree.Digest()
	c.Detail = fmt.Sprintf("ZooKeeper's digest at zxid %#x is %v (the tree rebuilt from %s, proven by its %s), the journal's %s",
		s.st.Zxid, zd, s.source, s.st.Check.Record, journal)
	switch {
	case zd.String() == journal:
		c.Result = Equal
	case !fresh:
		c.Detail += "; the journal held other nodes before the import, so its digest is not ZooKeeper's"
	default:
		c.Result = Different
	}
	return c
}

// verifyURI is the data directory pinned at the exported zxid, for verify.
func (s *dataDirSource) verifyURI() string {
	u := s.source
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%szxid=%#x", u, sep, s.st.Zxid)
}

// countingSink passes a data-directory export on and counts its nodes for
// the progress bar.
type countingSink struct {
	teeSink
	n *atomic.Int64
}

func (c countingSink) WriteNode(n *znode.Node) error {
	c.n.Add(1)
	return c.teeSink.WriteNode(n)
}

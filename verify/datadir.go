package verify

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/znode"
)

// DataDirSource is a ZooKeeper server's data directory
// (datadir://DIR[?log=DIR][&zxid=Z]): the tree rebuilt from its newest
// snapshot and the logs after it, exactly as of one zxid and proven by the
// digest ZooKeeper wrote there (exporter/datadir), with raw owners. Opening
// it does the whole load; the source is then static.
type DataDirSource struct {
	uri  string
	st   *datadir.State
	info Info
}

var (
	_ Source   = (*DataDirSource)(nil)
	_ Digester = (*DataDirSource)(nil)
)

// parseDataDirURI splits the part of a datadir:// URI after the scheme:
// DIR, then optional query parameters log (the dataLogDir) and zxid (stop
// there; hex with 0x, or decimal).
func parseDataDirURI(rest string) (dir, logDir string, zxid int64, err error) {
	dir, query, _ := strings.Cut(rest, "?")
	if dir == "" {
		return "", "", 0, fmt.Errorf("no data directory")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", 0, err
	}
	for k := range q {
		if k != "log" && k != "zxid" {
			return "", "", 0, fmt.Errorf("unknown parameter %q (want log or zxid)", k)
		}
	}
	logDir = q.Get("log")
	if z := q.Get("zxid"); z != "" {
		if zxid, err = strconv.ParseInt(z, 0, 64); err != nil || zxid <= 0 {
			return "", "", 0, fmt.Errorf("zxid %q: want a positive number (0x… for hex)", z)
		}
	}
	return dir, logDir, zxid, nil
}

// OpenDataDir loads the data directory (datadir.Load). A directory that
// cannot be brought to a zxid ZooKeeper's digest vouches for is an error,
// never a smaller tree.
func OpenDataDir(ctx context.Context, uri, dataDir, logDir string, toZxid int64, logger *slog.Logger) (*DataDirSource, error) {
	st, err := datadir.Load(ctx, datadir.Options{DataDir: dataDir, LogDir: logDir, ToZxid: toZxid, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("verify: %s: %w", uri, err)
	}
	exact := "exactly"
	if !st.Check.Exact {
		exact = fmt.Sprintf("(unchanged since zxid %s)", FormatZxid(st.Check.Zxid))
	}
	desc := fmt.Sprintf("ZooKeeper data directory, %d nodes at zxid %s, proven %s by its %s", st.Tree.Len(), FormatZxid(st.Zxid), exact, st.Check.Record)
	return &DataDirSource{uri: uri, st: st, info: Info{
		URI: uri, Scheme: "datadir", Description: desc,
		RawOwners: true, ExtendedTypes: st.Tree.ExtendedTypes(), Root: "/", Nodes: -1,
	}}, nil
}

// State returns the load behind the source.
func (s *DataDirSource) State() *datadir.State { return s.st }

// Info implements Source.
func (s *DataDirSource) Info() Info { return s.info }

// Walk implements Source.
func (s *DataDirSource) Walk(ctx context.Context, scope Scope, fn func(*znode.Node) error) error {
	i := 0
	return s.st.Tree.Walk(scope.Root, nil, func(n *znode.Node) error {
		if i++; i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return fn(n)
	})
}

// Digests implements Digester: ZooKeeper's digest of the whole tree, exact
// at the zxid the directory was loaded to.
func (s *DataDirSource) Digests(context.Context) (DigestInfo, error) {
	st := s.st
	return DigestInfo{
		Method:     "ZooKeeper data directory, checked against its " + st.Check.Record,
		HasCurrent: true,
		Current:    st.Tree.Digest(),
		Zxid:       st.Zxid,
		Exact:      true,
		Nodes:      int64(st.Tree.Len()),
		Coverage:   WholeTree(),
		History:    []ZxidDigest{{Zxid: st.Check.Zxid, Digest: st.Check.Digest}},
	}, nil
}

// Close implements Source.
func (s *DataDirSource) Close() error { return nil }

package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/zk2raft/zk2raft/znode"
)

// SnapshotSource is a snapshot file (snap://FILE): an export or a journal FSM
// snapshot. Opening it reads the header and the footer only; Walk streams the
// body and fails, naming the offset, on any damage, so a truncated file is never
// compared as a smaller tree.
type SnapshotSource struct {
	uri     string
	path    string
	header  znode.SnapshotHeader
	trailer znode.SnapshotTrailer
	info    Info
}

var (
	_ Source           = (*SnapshotSource)(nil)
	_ Digester         = (*SnapshotSource)(nil)
	_ IntegrityChecker = (*SnapshotSource)(nil)
)

// OpenSnapshot opens the snapshot file at path, checking its header and footer
// (znode.ReadSnapshotTrailer; O(1) in the file's size).
func OpenSnapshot(path string) (*SnapshotSource, error) {
	h, tr, err := znode.ReadSnapshotTrailer(path)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	s := &SnapshotSource{uri: "snap://" + path, path: path, header: h, trailer: tr}
	s.info = s.describe()
	return s, nil
}

// Header returns the snapshot's header.
func (s *SnapshotSource) Header() znode.SnapshotHeader { return s.header }

// Trailer returns the snapshot's footer trailer (not yet checked against the
// body; Walk does that).
func (s *SnapshotSource) Trailer() znode.SnapshotTrailer { return s.trailer }

func (s *SnapshotSource) describe() Info {
	h := &s.header
	root := h.Filters.Path
	if root == "" {
		root = "/"
	}
	var excl []string
	for _, p := range h.Filters.Exclude {
		if p != "/zookeeper" {
			excl = append(excl, p)
		}
	}
	kind := string(h.Kind)
	if kind == "" {
		kind = "snapshot"
	}
	desc := fmt.Sprintf("%s snapshot, %d nodes", kind, s.trailer.NodeCount)
	switch {
	case h.Kind == znode.SnapshotKindFSM:
		desc += ", zxid " + FormatZxid(h.StartZxid)
	case s.trailer.MaxZxid > h.StartZxid:
		desc += fmt.Sprintf(", fuzzy over zxids %s..%s", FormatZxid(h.StartZxid), FormatZxid(s.trailer.MaxZxid))
	default:
		desc += ", zxid " + FormatZxid(h.StartZxid)
	}
	if h.Source != "" {
		desc += ", from " + h.Source
	}
	return Info{
		URI:             s.uri,
		Scheme:          "snap",
		Description:     desc,
		RawOwners:       !clientOwners(h),
		ExtendedTypes:   h.ExtendedTypes,
		Root:            root,
		Exclude:         excl,
		SkipsEphemerals: h.Filters.Ephemerals == "skip",
		Nodes:           int64(s.trailer.NodeCount),
	}
}

// clientOwners reports whether the snapshot's owners are as the client API
// shows them. Only a header that says so counts: assuming raw owners where they
// are not would report container and TTL nodes as different (loud), while the
// reverse would excuse real differences (silent).
func clientOwners(h *znode.SnapshotHeader) bool { return h.Meta["owner_source"] == "client-api" }

// Info implements Source.
func (s *SnapshotSource) Info() Info { return s.info }

// Walk implements Source. Nodes outside scope.Root are read and dropped; the
// whole body is always read, so that the file is verified to its end.
func (s *SnapshotSource) Walk(ctx context.Context, scope Scope, fn func(*znode.Node) error) error {
	r, err := znode.OpenSnapshotFile(s.path)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer r.Close()
	for i := 0; ; i++ {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		n, err := r.NextNode()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if !scope.Contains(n.Path) {
			continue
		}
		if err := fn(n); err != nil {
			return err
		}
	}
}

// CheckIntegrity implements IntegrityChecker: it reads the whole file
// sequentially, checking every record's CRC and the end record and footer
// against the body (node count, record count, digest).
func (s *SnapshotSource) CheckIntegrity(ctx context.Context) (string, error) {
	r, err := znode.OpenSnapshotFile(s.path)
	if err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	defer r.Close()
	for i := 0; ; i++ {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return "", err
			}
		}
		if _, err := r.Next(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("verify: %w", err)
		}
	}
	return fmt.Sprintf("%s was read in full: every record's CRC checked, and its trailer is its body's (%d nodes, digest %v)",
		s.path, s.trailer.NodeCount, s.trailer.Digest), nil
}

// Digests implements Digester from the footer: the digest of every node in the
// file, exact when the snapshot is (an FSM snapshot, or an export that saw no
// write during its walk).
func (s *SnapshotSource) Digests(context.Context) (DigestInfo, error) {
	h := &s.header
	cov := Coverage{Root: s.info.Root, Exclude: slices.Clone(s.info.Exclude), SkipsEphemerals: s.info.SkipsEphemerals}
	cov.SystemNode = cov.Root == "/" && !slices.Contains(h.Filters.Exclude, "/zookeeper")
	return DigestInfo{
		Method:     "snapshot trailer",
		HasCurrent: true,
		Current:    s.trailer.Digest,
		Zxid:       h.StartZxid,
		Exact:      h.Kind == znode.SnapshotKindFSM || s.trailer.MaxZxid <= h.StartZxid,
		Nodes:      int64(s.trailer.NodeCount),
		Coverage:   cov,
	}, nil
}

// Close implements Source.
func (s *SnapshotSource) Close() error { return nil }

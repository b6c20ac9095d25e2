package raftjournal

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/zk2raft/zk2raft/znode"
)

// The tree's read endpoints on the admin server, for a reader in another
// process (the dual-write reconciler's RemoteView). All need the cluster
// secret; /node and /tree also need ZooKeeper's READ permission on every node
// they return (admin_acl.go): /node answers 403 for a node the caller may not
// read, /tree answers 403 naming the first such node of the subtree, before
// anything is streamed.
//
//	GET /node?path=P      the node at P as JSON (adminNode below); 404 when absent
//	GET /tree?path=P      the subtree at P, P included, as a snapshot stream (the
//	                      znode snapshot format, kind "export", Filters.Path P, raw
//	                      owners) in canonical order (znode.ComparePaths); a
//	                      missing P gives a stream without nodes
//	GET /digests          ZooKeeper's digest of the visible tree now, the digest
//	                      history (the `hash` four-letter word's equivalent) and
//	                      the zxids they relate to (adminDigests below)
//	GET /rebased?limit=N  the nodes that still carry the last rollback's base
//	                      zxid (FSM.Rebased; adminRebased below), at most N
//	                      paths (default 100000); 403 naming the first listed
//	                      node the caller may not read
//
// They are local reads of the node that answers, so a follower may lag behind
// the leader: point the reader at the leader, or accept the staleness. With
// linearizable=1, /node and /tree first wait until this node has applied
// everything committed when the request arrived (the read barrier of
// Linearizable reads), which costs a round trip to the leader.
//
// /tree takes the FSM's node copy (as Walk does: the whole tree, under the
// read lock for the copy only) and streams the subtree from it, so a subtree
// read costs a copy and a sort of the whole tree's node records. A stream cut short (the client left, the node closed) lacks the
// snapshot's trailer, which readers detect: a truncated stream is never a
// smaller tree.
//
// In JSON, zxids and raw ephemeral owners are "0x…" strings and digests signed
// decimal strings, as /status and verify's reports write them.

// registerTreeHandlers adds the endpoints above to the admin mux, each behind
// the secret check.
func (n *Node) registerTreeHandlers(mux *http.ServeMux, secret func(http.HandlerFunc) http.Handler) {
	mux.Handle("GET /node", secret(n.handleNode))
	mux.Handle("GET /tree", secret(n.handleTree))
	mux.Handle("GET /digests", secret(n.handleDigests))
	mux.Handle("GET /rebased", secret(n.handleRebased))
}

// hexInt is an int64 carried in JSON as "0x…" (zxids, raw owners).
type hexInt int64

func (h hexInt) MarshalText() ([]byte, error) { return fmt.Appendf(nil, "%#x", uint64(h)), nil }

func (h *hexInt) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 0, 64)
	if err != nil {
		return fmt.Errorf("raftjournal: %q is not a 0x… number: %w", b, err)
	}
	*h = hexInt(v)
	return nil
}

// digestText is a tree digest carried in JSON as ZooKeeper prints it.
type digestText znode.Digest

func (d digestText) MarshalText() ([]byte, error) { return []byte(znode.Digest(d).String()), nil }

func (d *digestText) UnmarshalText(b []byte) error {
	v, err := znode.ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = digestText(v)
	return nil
}

type adminACL struct {
	Perms  int32  `json:"perms"`
	Scheme string `json:"scheme"`
	ID     string `json:"id"`
}

// adminStat is the persisted stat: cversion is the persisted count of child
// creates and ephemeral_owner the raw value.
type adminStat struct {
	Czxid          hexInt `json:"czxid"`
	Mzxid          hexInt `json:"mzxid"`
	Pzxid          hexInt `json:"pzxid"`
	Ctime          int64  `json:"ctime"`
	Mtime          int64  `json:"mtime"`
	Version        int32  `json:"version"`
	Cversion       int32  `json:"cversion"`
	Aversion       int32  `json:"aversion"`
	EphemeralOwner hexInt `json:"ephemeral_owner"`
}

// adminNode is GET /node's answer. Data is base64, null for nil data and ""
// for empty data.
type adminNode struct {
	Path        string     `json:"path"`
	Data        []byte     `json:"data"`
	ACL         []adminACL `json:"acl"`
	Stat        adminStat  `json:"stat"`
	NumChildren int32      `json:"num_children"`
}

func adminNodeOf(n *znode.Node) adminNode {
	a := adminNode{Path: n.Path, Data: n.Data, NumChildren: n.NumChildren, Stat: adminStat{
		Czxid: hexInt(n.Stat.Czxid), Mzxid: hexInt(n.Stat.Mzxid), Pzxid: hexInt(n.Stat.Pzxid),
		Ctime: n.Stat.Ctime, Mtime: n.Stat.Mtime, Version: n.Stat.Version, Cversion: n.Stat.Cversion,
		Aversion: n.Stat.Aversion, EphemeralOwner: hexInt(n.Stat.EphemeralOwner),
	}}
	a.ACL = make([]adminACL, 0, len(n.ACL))
	for _, e := range n.ACL {
		a.ACL = append(a.ACL, adminACL{Perms: int32(e.Perms), Scheme: e.ID.Scheme, ID: e.ID.ID})
	}
	return a
}

func (a *adminNode) node() *znode.Node {
	n := &znode.Node{Path: a.Path, Data: a.Data, NumChildren: a.NumChildren, Stat: znode.Stat{
		Czxid: int64(a.Stat.Czxid), Mzxid: int64(a.Stat.Mzxid), Pzxid: int64(a.Stat.Pzxid),
		Ctime: a.Stat.Ctime, Mtime: a.Stat.Mtime, Version: a.Stat.Version, Cversion: a.Stat.Cversion,
		Aversion: a.Stat.Aversion, EphemeralOwner: int64(a.Stat.EphemeralOwner),
	}}
	for _, e := range a.ACL {
		n.ACL = append(n.ACL, znode.ACL{Perms: znode.Perm(e.Perms), ID: znode.ID{Scheme: e.Scheme, ID: e.ID}})
	}
	return n
}

type adminDigestEntry struct {
	Zxid   hexInt     `json:"zxid"`
	Digest digestText `json:"digest"`
}

// adminDigests is GET /digests's answer.
type adminDigests struct {
	AppliedIndex  uint64             `json:"applied_index"`
	Digest        digestText         `json:"digest"`
	LastZxid      hexInt             `json:"last_zxid"`
	MaxSourceZxid hexInt             `json:"max_source_zxid"`
	History       []adminDigestEntry `json:"history"`
}

// AdminDigests is what GET /digests reports about a node's state.
type AdminDigests struct {
	// AppliedIndex is the log index the figures are as of.
	AppliedIndex uint64
	// Digest is ZooKeeper's digest of the whole visible tree now.
	Digest znode.Digest
	// LastZxid is the largest zxid applied, from either side; MaxSourceZxid
	// the largest ZooKeeper zxid seen (in imported stats or mirrored txns).
	LastZxid, MaxSourceZxid int64
	// History is the digest history, oldest first (FSM.DigestHistory).
	History []DigestEntry
}

// pathParam returns the validated path query parameter.
func pathParam(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	if p == "" {
		return "", fmt.Errorf("%w: %s needs ?path=", ErrBadCommand, r.URL.Path)
	}
	if err := znode.ValidatePath(p); err != nil {
		return "", fmt.Errorf("%w: path: %v", ErrBadCommand, err)
	}
	return p, nil
}

// treeBarrier waits, when the request asks for linearizable=1, until this node
// has applied everything committed before the request.
func (n *Node) treeBarrier(r *http.Request) error {
	if r.URL.Query().Get("linearizable") != "1" {
		return nil
	}
	ctx, end, err := n.begin(r.Context())
	if err != nil {
		return err
	}
	defer end()
	return n.readBarrier(ctx)
}

func (n *Node) handleNode(w http.ResponseWriter, r *http.Request) {
	rd, err := n.readerOf(r)
	var p string
	if err == nil {
		p, err = pathParam(r)
	}
	if err == nil {
		err = n.treeBarrier(r)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	zn, ok := n.fsm.Node(p)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no node " + p})
		return
	}
	if !rd.may(zn.ACL, znode.PermRead) {
		writeError(w, &OpError{Op: OpGetData, Path: p, Code: CodeNoAuth})
		return
	}
	writeJSON(w, http.StatusOK, adminNodeOf(zn))
}

func (n *Node) handleTree(w http.ResponseWriter, r *http.Request) {
	rd, err := n.readerOf(r)
	var root string
	if err == nil {
		root, err = pathParam(r)
	}
	if err == nil {
		err = n.treeBarrier(r)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	st := n.fsm.Status()
	// One copy of the node records serves both passes: the ACL check of every
	// node in the subtree, then the stream, so a refusal comes before any byte.
	snap := n.fsm.capture(true)
	sortCanonical(snap.nodes)
	lo := sort.Search(len(snap.nodes), func(i int) bool { return znode.ComparePaths(snap.nodes[i].path, root) >= 0 })
	hi := lo
	for hi < len(snap.nodes) && pathInSubtree(snap.nodes[hi].path, root) {
		hi++
	}
	sub := snap.nodes[lo:hi]
	for i := range sub {
		if !rd.may(snap.acls[sub[i].acl].acl, znode.PermRead) {
			writeError(w, &OpError{Op: OpGetData, Path: sub[i].path, Code: CodeNoAuth})
			return
		}
	}
	h := znode.SnapshotHeader{
		Source:        "zk2raft journal " + string(n.id),
		StartZxid:     st.LastZxid,
		Kind:          znode.SnapshotKindExport,
		ExtendedTypes: true,
		Filters:       znode.SnapshotFilters{Path: root, Ephemerals: "kept"},
		Meta: map[string]string{
			"applied_index": strconv.FormatUint(st.AppliedIndex, 10),
			"owner_source":  "raw",
		},
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	sw, err := znode.NewSnapshotWriter(w, h, znode.SnapshotWriterOptions{})
	if err != nil {
		writeError(w, err)
		return
	}
	for i := range sub {
		sn := &sub[i]
		if i&1023 == 0 {
			err = r.Context().Err()
		}
		if err == nil {
			err = sw.WriteNode(&znode.Node{Path: sn.path, Data: sn.data, ACL: snap.acls[sn.acl].acl, Stat: sn.st, NumChildren: sn.numChildren})
		}
		if err != nil {
			// The header is out: leave the stream without its trailer, which
			// the reader reports as truncated.
			n.logger.Warn("admin tree stream cut short", "path", root, "error", err)
			return
		}
	}
	if _, err := sw.Close(); err != nil {
		n.logger.Warn("admin tree stream cut short", "path", root, "error", err)
	}
}

// pathInSubtree reports whether p is root or below it.
func pathInSubtree(p, root string) bool {
	if root == "/" || p == root {
		return true
	}
	return len(p) > len(root) && p[:len(root)] == root && p[len(root)] == '/'
}

func (n *Node) handleDigests(w http.ResponseWriter, r *http.Request) {
	// One lock for the status and one for the history: an entry applied in
	// between shows in the history only, which readers tolerate (they match
	// the history on zxids).
	st := n.fsm.Status()
	hist := n.fsm.DigestHistory()
	out := adminDigests{
		AppliedIndex:  st.AppliedIndex,
		Digest:        digestText(st.Digest),
		LastZxid:      hexInt(st.LastZxid),
		MaxSourceZxid: hexInt(st.MaxSourceZxid),
		History:       make([]adminDigestEntry, 0, len(hist)),
	}
	for _, e := range hist {
		out.History = append(out.History, adminDigestEntry{Zxid: hexInt(e.Zxid), Digest: digestText(e.Digest)})
	}
	writeJSON(w, http.StatusOK, out)
}

// defaultRebasedLimit bounds GET /rebased's paths when the request names no
// limit.
const defaultRebasedLimit = 100_000

// adminRebased is GET /rebased's answer.
type adminRebased struct {
	AppliedIndex uint64   `json:"applied_index"`
	Base         hexInt   `json:"base"`
	UpTo         hexInt   `json:"up_to"`
	Total        int      `json:"total"`
	Paths        []string `json:"paths"`
}

func (n *Node) handleRebased(w http.ResponseWriter, r *http.Request) {
	rd, err := n.readerOf(r)
	limit := defaultRebasedLimit
	if err == nil {
		if s := r.URL.Query().Get("limit"); s != "" {
			if limit, err = strconv.Atoi(s); err != nil || limit <= 0 {
				err = fmt.Errorf("%w: limit %q is not a positive number", ErrBadCommand, s)
			}
		}
	}
	if err == nil {
		err = n.treeBarrier(r)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	applied := n.fsm.Status().AppliedIndex
	rb := n.fsm.Rebased(limit)
	for _, p := range rb.Paths {
		if zn, ok := n.fsm.Node(p); ok && !rd.may(zn.ACL, znode.PermRead) {
			writeError(w, &OpError{Op: OpGetData, Path: p, Code: CodeNoAuth})
			return
		}
	}
	if rb.Paths == nil {
		rb.Paths = []string{}
	}
	writeJSON(w, http.StatusOK, adminRebased{AppliedIndex: applied, Base: hexInt(rb.Base), UpTo: hexInt(rb.UpTo), Total: rb.Total, Paths: rb.Paths})
}

package raftjournal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/zk2raft/zk2raft/znode"
)

// The tree's read endpoints on the admin server, for a reader in another
// process (the dual-write reconciler's RemoteView):
//
//	GET /node?path=P      the node at P as JSON (adminNode below); 404 when absent
//	GET /tree?path=P      the subtree at P, P included, as a snapshot stream (the
//	                      znode snapshot format, kind "export", Filters.Path P, raw
//	                      owners) in canonical order (znode.ComparePaths); a
//	                      missing P gives a stream without nodes
//	GET /digests          ZooKeeper's digest of the visible tree now, the digest
//	                      history (the `hash` four-letter word's equivalent) and
//	                      the zxids they relate to (adminDigests below)
//
// They are local reads of the node that answers, so a follower may lag behind
// the leader: point the reader at the leader, or accept the staleness. With
// linearizable=1, /node and /tree first wait until this node has applied
// everything committed when the request arrived (the read barrier of
// Linearizable reads), which costs a round trip to the leader.
//
// /tree takes the FSM's node copy (Walk: the whole tree, under the read lock
// for the copy only) and streams the subtree from it, so a subtree read costs
// a copy of the whole tree's node records; it stops early once past the
// subtree. A stream cut short (the client left, the node closed) lacks the
// snapshot's trailer, which readers detect: a truncated stream is never a
// smaller tree.
//
// In JSON, zxids and raw ephemeral owners are "0x…" strings and digests signed
// decimal strings, as /status and verify's reports write them.

// registerTreeHandlers adds the endpoints above to the admin mux.
func (n *Node) registerTreeHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /node", n.handleNode)
	mux.HandleFunc("GET /tree", n.handleTree)
	mux.HandleFunc("GET /digests", n.handleDigests)
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
	p, err := pathParam(r)
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
	writeJSON(w, http.StatusOK, adminNodeOf(zn))
}

// errEndOfSubtree stops a walk that has left the subtree it streams.
var errEndOfSubtree = errors.New("raftjournal: end of subtree")

func (n *Node) handleTree(w http.ResponseWriter, r *http.Request) {
	root, err := pathParam(r)
	if err == nil {
		err = n.treeBarrier(r)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	st := n.fsm.Status()
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
	inside := false
	err = n.fsm.Walk(func(zn *znode.Node) error {
		if !pathInSubtree(zn.Path, root) {
			if inside {
				return errEndOfSubtree // canonical order keeps a subtree contiguous
			}
			return nil
		}
		inside = true
		if err := r.Context().Err(); err != nil {
			return err
		}
		return sw.WriteNode(zn)
	})
	if err != nil && !errors.Is(err, errEndOfSubtree) {
		// The header is out: leave the stream without its trailer, which the
		// reader reports as truncated.
		n.logger.Warn("admin tree stream cut short", "path", root, "error", err)
		return
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

// adminGet sends GET to a node's admin endpoint. A 2xx answer is returned for
// the caller to read and close; a 404 is returned as well when notFoundOK.
// Anything else is an error wrapping ErrRemote with the node's message.
func adminGet(ctx context.Context, adminAddr, path string, q url.Values, notFoundOK bool) (*http.Response, error) {
	u := adminURL(adminAddr) + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: GET %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: GET %s: %w", u, err)
	}
	if resp.StatusCode/100 == 2 || (notFoundOK && resp.StatusCode == http.StatusNotFound) {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("%w: GET %s: %s: %s", ErrRemote, u, resp.Status, e.Error)
	}
	return nil, fmt.Errorf("%w: GET %s: %s", ErrRemote, u, resp.Status)
}

func treeQuery(path string, linearizable bool) url.Values {
	q := url.Values{"path": {path}}
	if linearizable {
		q.Set("linearizable", "1")
	}
	return q
}

// AdminGetNode reads the node at path from a journal node's admin endpoint
// (GET /node): the persisted stat with the raw owner, the data (nil and empty
// kept apart) and the ACL. ok is false when the node does not exist.
func AdminGetNode(ctx context.Context, adminAddr, path string, linearizable bool) (n *znode.Node, ok bool, err error) {
	resp, err := adminGet(ctx, adminAddr, "/node", treeQuery(path, linearizable), true)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	var an adminNode
	if err := json.NewDecoder(io.LimitReader(resp.Body, znode.MaxSnapshotRecordPayload*2)).Decode(&an); err != nil {
		return nil, false, fmt.Errorf("raftjournal: GET /node %s from %s: %w", path, adminAddr, err)
	}
	return an.node(), true, nil
}

// AdminWalkTree streams the subtree at root from a journal node's admin
// endpoint (GET /tree) and calls fn with each node in canonical order. The
// stream is verified as it is read (record CRCs, then the trailer's count and
// digest), so a stream cut short is an error, never a smaller tree. fn may
// keep the nodes. A missing root yields no nodes.
func AdminWalkTree(ctx context.Context, adminAddr, root string, linearizable bool, fn func(*znode.Node) error) error {
	resp, err := adminGet(ctx, adminAddr, "/tree", treeQuery(root, linearizable), false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sr, err := znode.NewSnapshotReader(resp.Body)
	if err != nil {
		return fmt.Errorf("raftjournal: GET /tree %s from %s: %w", root, adminAddr, err)
	}
	defer sr.Close()
	for {
		zn, err := sr.NextNode()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("raftjournal: GET /tree %s from %s: %w", root, adminAddr, err)
		}
		if err := fn(zn); err != nil {
			return err
		}
	}
}

// AdminGetDigests reads a journal node's digest figures (GET /digests).
func AdminGetDigests(ctx context.Context, adminAddr string) (*AdminDigests, error) {
	resp, err := adminGet(ctx, adminAddr, "/digests", nil, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ad adminDigests
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ad); err != nil {
		return nil, fmt.Errorf("raftjournal: GET /digests from %s: %w", adminAddr, err)
	}
	out := &AdminDigests{
		AppliedIndex: ad.AppliedIndex, Digest: znode.Digest(ad.Digest),
		LastZxid: int64(ad.LastZxid), MaxSourceZxid: int64(ad.MaxSourceZxid),
		History: make([]DigestEntry, 0, len(ad.History)),
	}
	for _, e := range ad.History {
		out.History = append(out.History, DigestEntry{Zxid: int64(e.Zxid), Digest: znode.Digest(e.Digest)})
	}
	return out, nil
}

package raftjournal

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// What the cutover (package cutover) needs from the replicated state beyond
// the phase: the ZooKeeper sessions the proxies mirrored in shadow
// (SourceSessions), and the checkpoints under a prefix (the proxies'
// registry, written with SetCheckpoint).

// SourceSessions returns the ZooKeeper sessions mirrored in shadow and not yet
// adopted, sorted by id (Ephemerals counts the nodes each owns in the tree).
func (f *FSM) SourceSessions() []SessionInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]SessionInfo, 0, len(f.s.sourceSessions))
	for id, ms := range f.s.sourceSessions {
		out = append(out, SessionInfo{ID: id, TimeoutMs: ms, Ephemerals: len(f.s.t.ephemerals[id])})
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Checkpoints returns the checkpoints whose key starts with prefix, sorted by
// key. The values are copies.
func (f *FSM) Checkpoints(prefix string) []Checkpoint {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Checkpoint
	for k, v := range f.s.checkpoints {
		if strings.HasPrefix(k, prefix) {
			out = append(out, Checkpoint{Key: k, Value: slices.Clone(v)})
		}
	}
	slices.SortFunc(out, func(a, b Checkpoint) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// CutoverState is what the cutover reads from the journal in one linearizable
// look (GET /cutover on the admin port).
type CutoverState struct {
	Phase         string `json:"phase"`
	AppliedIndex  uint64 `json:"applied_index"`
	LastZxid      int64  `json:"last_zxid"`
	MaxSourceZxid int64  `json:"max_source_zxid"`
	Digest        string `json:"digest"`
	// Sessions is the journal's session table; SourceSessions the ZooKeeper
	// sessions mirrored in shadow and not yet adopted.
	Sessions       []SessionInfo `json:"sessions"`
	SourceSessions []SessionInfo `json:"source_sessions"`
	// Checkpoints are those under the prefix asked for.
	Checkpoints []Checkpoint `json:"checkpoints"`
	// ReverseMirror is the reverse mirror's replicated state (nil if the
	// journal was never primary); PendingEntries 0 means ZooKeeper holds
	// every journal write.
	ReverseMirror *ReverseMirrorStatus `json:"reverse_mirror,omitempty"`
	// ZxidMap is the journal → ZooKeeper zxid map (CutoverStateOptions.ZxidMap
	// only).
	ZxidMap []ZxidPeriod `json:"zxid_map,omitempty"`
}

// CutoverState reads the state the cutover needs after a read barrier, so it
// is as new as anything committed before the call.
func (n *Node) CutoverState(ctx context.Context, prefix string) (CutoverState, error) {
	return n.cutoverState(ctx, prefix, false)
}

func (n *Node) cutoverState(ctx context.Context, prefix string, zmap bool) (CutoverState, error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return CutoverState{}, err
	}
	defer end()
	if err := n.readBarrier(ctx); err != nil {
		return CutoverState{}, err
	}
	st := n.fsm.Status()
	return CutoverState{
		Phase: st.Phase.String(), AppliedIndex: st.AppliedIndex, LastZxid: st.LastZxid,
		MaxSourceZxid: st.MaxSourceZxid, Digest: st.Digest.String(),
		Sessions: n.fsm.Sessions(), SourceSessions: n.fsm.SourceSessions(),
		Checkpoints:   n.fsm.Checkpoints(prefix),
		ReverseMirror: reverseMirrorStatus(n.fsm.MirrorStatus(), time.Now().UnixMilli()),
		ZxidMap:       zxidMapIf(n.fsm.FSM, zmap),
	}, nil
}

func zxidMapIf(f *FSM, want bool) []ZxidPeriod {
	if !want {
		return nil
	}
	return f.ZxidMap()
}

func (n *Node) handleCutover(w http.ResponseWriter, r *http.Request) {
	st, err := n.cutoverState(r.Context(), r.URL.Query().Get("prefix"), r.URL.Query().Get("zxid_map") == "1")
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// CutoverState reads GET /cutover: the phase, the sessions on both sides and
// the checkpoints under prefix, after a read barrier on the member asked.
func (c *AdminClient) CutoverState(ctx context.Context, prefix string) (CutoverState, error) {
	var st CutoverState
	err := c.Call(ctx, http.MethodGet, "/cutover?prefix="+url.QueryEscape(prefix), nil, &st)
	return st, err
}

// ZxidMap reads the journal → ZooKeeper zxid map (GET /cutover?zxid_map=1)
// after a read barrier on the member asked, with the phase it holds in.
func (c *AdminClient) ZxidMap(ctx context.Context) (string, []ZxidPeriod, error) {
	var st CutoverState
	err := c.Call(ctx, http.MethodGet, "/cutover?prefix=%00&zxid_map=1", nil, &st)
	return st.Phase, st.ZxidMap, err
}

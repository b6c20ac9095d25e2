package raftjournal

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The admin endpoint (NodeConfig.AdminAddr), HTTP (HTTPS with mutual TLS when
// NodeConfig.TLS is set). Callers present the cluster secret as a bearer token;
// which endpoints need it, and what OpenStatus and OpenMetrics open, is drawn
// in security.go. AdminClient (adminclient.go) is the client side.
//
//	GET  /status                cluster status as this node sees it (JSON ClusterStatus);
//	                            each member is asked for its own figures (1 s each)
//	GET  /status?local=1        this node only (JSON ClusterStatus without member figures)
//	GET  /metrics               Prometheus text format, the node's own registry
//	POST /join                  {"id": ..., "raft_addr": ...}: add a voter (via the leader)
//	POST /remove                {"id": ...}: remove a member (via the leader)
//	POST /transfer-leadership   {"id": ...} or {}: hand leadership over (via the leader)
//	GET  /node, /tree, /digests  reads of the tree and its digests (admin_tree.go)
//
// Errors are JSON {"error": "..."} with status 400 (bad request), 401 (no or
// wrong cluster secret), 403 (a ZooKeeper ACL denies a tree read), 503 (no
// leader, closing) or 500.

// MemberStatus is one node's own view of itself.
type MemberStatus struct {
	ID                string `json:"id"`
	RaftAddr          string `json:"raft_addr"`
	AdminAddr         string `json:"admin_addr,omitempty"`
	Role              string `json:"role"`
	Leader            string `json:"leader"`
	LeaderAddr        string `json:"leader_addr"`
	Term              uint64 `json:"term"`
	AppliedIndex      uint64 `json:"applied_index"`
	CommitIndex       uint64 `json:"commit_index"`
	LastLogIndex      uint64 `json:"last_log_index"`
	LastSnapshotIndex uint64 `json:"last_snapshot_index"`
	NodeCount         int    `json:"node_count"`
	Digest            string `json:"digest"`
	Phase             string `json:"phase"`
	Sessions          int    `json:"sessions"`
	SourceSessions    int    `json:"source_sessions"`
	Ephemerals        int    `json:"ephemerals"`
	Watches           int    `json:"watches"`
	JournalEpoch      uint32 `json:"journal_epoch"`
	LastZxid          string `json:"last_zxid"`
	MaxSourceZxid     string `json:"max_source_zxid"`
	// ReverseMirror is the reverse mirror's lag, from the replicated outbox
	// (the same on every node up to its applied index): set once the
	// journal has been primary. A cutover gate reads it.
	ReverseMirror *ReverseMirrorStatus `json:"reverse_mirror,omitempty"`
	// ClientAddr, SecureClientAddr and ClientConnections describe the node's
	// ZooKeeper-protocol ports (serve --client-addr, --secure-client-addr),
	// when it has them.
	ClientAddr        string `json:"client_addr,omitempty"`
	SecureClientAddr  string `json:"secure_client_addr,omitempty"`
	ClientConnections int    `json:"client_connections"`
}

// MinimalStatus is what /status tells a caller without the cluster secret when
// NodeConfig.OpenStatus allows it: enough for a health check, nothing about the
// cluster's addresses or data.
type MinimalStatus struct {
	ID           string `json:"id"`
	Role         string `json:"role"`
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	Phase        string `json:"phase"`
}

// Member is one entry of the Raft configuration, with the member's own status
// when it answered.
type Member struct {
	ID       string        `json:"id"`
	RaftAddr string        `json:"raft_addr"`
	Suffrage string        `json:"suffrage"`
	Leader   bool          `json:"leader"`
	Status   *MemberStatus `json:"status,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// ClusterStatus is a node's status with the cluster's membership (what /status
// serves): role, leader, term, indexes, node count, digest, phase, members.
type ClusterStatus struct {
	MemberStatus
	MemberCount int      `json:"member_count"`
	Members     []Member `json:"members"`
	// Extensions are the statuses of components running next to the node
	// (the dual-write proxy of `serve --proxy-addr`), by name.
	Extensions map[string]any `json:"extensions,omitempty"`
}

func roleName(s raft.RaftState) string { return strings.ToLower(s.String()) }

func (n *Node) memberStatus() MemberStatus {
	st := n.fsm.Status()
	leaderAddr, leaderID := n.raft.LeaderWithID()
	stats := n.raft.Stats()
	var snapIdx uint64
	fmt.Sscan(stats["last_snapshot_index"], &snapIdx)
	cp, _ := n.clientPortStatus()
	return MemberStatus{
		ClientAddr:        cp.Addr,
		SecureClientAddr:  cp.SecureAddr,
		ClientConnections: cp.Connections,
		ID:                string(n.id),
		RaftAddr:          string(n.addr),
		AdminAddr:         n.AdminAddr(),
		Role:              roleName(n.raft.State()),
		Leader:            string(leaderID),
		LeaderAddr:        string(leaderAddr),
		Term:              n.raft.CurrentTerm(),
		AppliedIndex:      n.fsm.applied.Load(),
		CommitIndex:       n.raft.CommitIndex(),
		LastLogIndex:      n.raft.LastIndex(),
		LastSnapshotIndex: snapIdx,
		NodeCount:         st.Nodes,
		Digest:            st.Digest.String(),
		Phase:             st.Phase.String(),
		Sessions:          st.Sessions,
		SourceSessions:    st.SourceSessions,
		Ephemerals:        st.Ephemerals,
		Watches:           st.Watches,
		JournalEpoch:      st.Epoch,
		LastZxid:          fmt.Sprintf("%#x", st.LastZxid),
		MaxSourceZxid:     fmt.Sprintf("%#x", st.MaxSourceZxid),
		ReverseMirror:     reverseMirrorStatus(n.fsm.MirrorStatus(), time.Now().UnixMilli()),
	}
}

// Status returns this node's status and the membership, without asking the
// other members.
func (n *Node) Status() ClusterStatus {
	cs := ClusterStatus{MemberStatus: n.memberStatus()}
	f := n.raft.GetConfiguration()
	if f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			cs.Members = append(cs.Members, Member{
				ID: string(s.ID), RaftAddr: string(s.Address), Suffrage: strings.ToLower(s.Suffrage.String()),
				Leader: string(s.ID) == cs.Leader,
			})
		}
	}
	slices.SortFunc(cs.Members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	cs.MemberCount = len(cs.Members)
	cs.Extensions = n.extensionStatus()
	return cs
}

// ClusterStatus is Status with every member's own status, asked over the
// journal RPC in parallel (an unreachable member gets an Error instead).
func (n *Node) ClusterStatus(ctx context.Context) ClusterStatus {
	cs := n.Status()
	var wg sync.WaitGroup
	for i := range cs.Members {
		m := &cs.Members[i]
		if m.ID == string(n.id) {
			own := cs.MemberStatus
			m.Status = &own
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			resp, err := n.rpc.call(cctx, m.RaftAddr, rpcStatus, nil)
			if err == nil {
				var ms MemberStatus
				if err = json.Unmarshal(resp, &ms); err == nil {
					m.Status = &ms
					return
				}
			}
			m.Error = err.Error()
		}()
	}
	wg.Wait()
	return cs
}

// AdminGuard checks the cluster secret on requests to an admin endpoint (a
// journal node's, or a proxy's).
type AdminGuard struct {
	// Secret is the cluster secret; Insecure lets every request in instead.
	Secret   []byte
	Insecure bool
}

// Authorized reports whether r carries the cluster secret (or the guard lets
// everyone in).
func (g AdminGuard) Authorized(r *http.Request) bool {
	if g.Insecure {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && secretEqual([]byte(strings.TrimSpace(tok)), g.Secret)
}

// Refuse answers a request that lacks the secret: 401 with a JSON error.
func (g AdminGuard) Refuse(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="zk2raft"`)
	msg := "the admin endpoint needs the cluster secret (Authorization: Bearer SECRET)"
	if r.Header.Get("Authorization") != "" {
		msg = "the cluster secret given is not this cluster's"
	}
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": ErrUnauthenticated.Error() + ": " + msg})
}

// Require wraps h so that it runs only for requests holding the secret.
func (g AdminGuard) Require(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.Authorized(r) {
			g.Refuse(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// adminServer serves the admin endpoint.
type adminServer struct {
	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup
}

// listenAdmin binds the admin address (with TLS when configured); startAdmin
// serves it once the node is up. Binding first lets the node report its admin
// address from the start.
func listenAdmin(addr string, ct *ClusterTLS) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: listen on admin address %s: %w", addr, err)
	}
	if ct != nil {
		ln = tls.NewListener(ln, ct.ServerConfig())
	}
	return ln, nil
}

func (n *Node) adminGuard() AdminGuard {
	return AdminGuard{Secret: n.cfg.Secret, Insecure: n.cfg.Insecure}
}

func startAdmin(n *Node, ln net.Listener) *adminServer {
	g := n.adminGuard()
	secret := func(h http.HandlerFunc) http.Handler { return g.Require(h) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", n.handleStatus) // checks the secret itself (OpenStatus)
	metrics := promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{})
	if n.cfg.OpenMetrics {
		mux.Handle("GET /metrics", metrics)
	} else {
		mux.Handle("GET /metrics", g.Require(metrics))
	}
	mux.Handle("GET /checkpoint", secret(n.handleCheckpoint))
	mux.Handle("GET /cutover", secret(n.handleCutover))
	mux.Handle("POST /join", secret(n.handleJoin))
	mux.Handle("POST /remove", secret(n.handleRemove))
	mux.Handle("POST /transfer-leadership", secret(n.handleTransfer))
	n.registerTreeHandlers(mux, secret)
	a := &adminServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn)}}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("admin server stopped", "error", err)
		}
	}()
	return a
}

func (a *adminServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, a.srv.Close())
	}
	a.wg.Wait()
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrBadCommand), errors.Is(err, ErrInvalidConfig):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrNotLeader), errors.Is(err, ErrClosed):
		status = http.StatusServiceUnavailable
	case errors.Is(err, CodeNoAuth):
		status = http.StatusForbidden
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	g := n.adminGuard()
	if !g.Authorized(r) {
		if !n.cfg.OpenStatus {
			g.Refuse(w, r)
			return
		}
		ms := n.memberStatus()
		writeJSON(w, http.StatusOK, MinimalStatus{ID: ms.ID, Role: ms.Role, Leader: ms.Leader, Term: ms.Term,
			AppliedIndex: ms.AppliedIndex, CommitIndex: ms.CommitIndex, Phase: ms.Phase})
		return
	}
	if r.URL.Query().Get("local") != "" {
		writeJSON(w, http.StatusOK, n.Status())
		return
	}
	writeJSON(w, http.StatusOK, n.ClusterStatus(r.Context()))
}

// checkpointResponse answers GET /checkpoint?key=K; Value is null when no import
// stored that key.
type checkpointResponse struct {
	Key   string `json:"key"`
	Value []byte `json:"value"` // base64 in JSON
}

func (n *Node) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		writeError(w, fmt.Errorf("%w: checkpoint needs ?key=", ErrBadCommand))
		return
	}
	v, ok, err := n.Checkpoint(r.Context(), key)
	if err != nil {
		writeError(w, err)
		return
	}
	if !ok {
		v = nil
	}
	writeJSON(w, http.StatusOK, checkpointResponse{Key: key, Value: v})
}

type joinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", ErrBadCommand, err)
	}
	return nil
}

func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.ID == "" || req.RaftAddr == "" {
		writeError(w, fmt.Errorf("%w: join needs id and raft_addr", ErrBadCommand))
		return
	}
	if err := n.AddVoter(r.Context(), req.ID, req.RaftAddr); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"joined": req.ID})
}

func (n *Node) handleRemove(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID string `json:"id"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.ID == "" {
		writeError(w, fmt.Errorf("%w: remove needs id", ErrBadCommand))
		return
	}
	if err := n.RemoveServer(r.Context(), req.ID); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": req.ID})
}

func (n *Node) handleTransfer(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID string `json:"id"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := n.TransferLeadership(r.Context(), req.ID); err != nil {
		writeError(w, err)
		return
	}
	id, _ := n.Leader()
	writeJSON(w, http.StatusOK, map[string]string{"leader": id})
}

package raftjournal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/zk2raft/zk2raft/znode"
)

// AdminClient talks to one journal node's admin endpoint with the cluster's
// credentials: every request carries the secret, and goes over mutual TLS when
// the credentials have it. It is the one way this module reaches an admin
// port (the command line, the importer, the dual-write proxy, a joining node),
// so no caller can forget the secret. Safe for concurrent use.
type AdminClient struct {
	addr   string // host:port
	creds  Credentials
	zkAuth []string // SCHEME:CRED, sent in ZKAuthHeader
	hc     *http.Client
}

// NewAdminClient returns a client for the admin endpoint at addr (host:port,
// or a URL whose scheme is then ignored: TLS follows the credentials).
func NewAdminClient(addr string, creds Credentials) *AdminClient {
	for _, p := range []string{"http://", "https://"} {
		addr = strings.TrimPrefix(addr, p)
	}
	addr = strings.TrimRight(addr, "/")
	hc := http.DefaultClient
	if creds.TLS != nil {
		hc = creds.TLS.httpClient()
	}
	return &AdminClient{addr: addr, creds: creds, hc: hc}
}

// WithZooKeeperAuth returns a copy of the client that sends ZooKeeper
// credentials (SCHEME:CRED, the form --auth takes) with tree reads, which the
// node checks against each node's ACL (admin_acl.go).
func (c *AdminClient) WithZooKeeperAuth(auth []string) *AdminClient {
	cp := *c
	cp.zkAuth = append([]string(nil), auth...)
	return &cp
}

// Addr returns the admin address (host:port).
func (c *AdminClient) Addr() string { return c.addr }

// Credentials returns the credentials the client presents (which the journal
// RPC on a node's Raft port takes too).
func (c *AdminClient) Credentials() Credentials { return c.creds }

func (c *AdminClient) url(path string) string {
	scheme := "http://"
	if c.creds.TLS != nil {
		scheme = "https://"
	}
	return scheme + c.addr + path
}

// do sends a request with the credentials and returns the response when its
// status is 2xx (or 404 when notFoundOK); otherwise an error carrying the
// node's message: ErrUnauthenticated for 401, CodeNoAuth for 403, ErrRemote
// for the rest.
func (c *AdminClient) do(ctx context.Context, method, path string, body io.Reader, notFoundOK bool) (*http.Response, error) {
	u := c.url(path)
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: %s %s: %w", method, u, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if len(c.creds.Secret) > 0 {
		req.Header.Set("Authorization", "Bearer "+string(c.creds.Secret))
	}
	for _, a := range c.zkAuth {
		req.Header.Add(ZKAuthHeader, a)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: %s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 == 2 || (notFoundOK && resp.StatusCode == http.StatusNotFound) {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error string `json:"error"`
	}
	msg := resp.Status
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg += ": " + e.Error
	}
	kind := ErrRemote
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		kind = ErrUnauthenticated
	case http.StatusForbidden:
		kind = CodeNoAuth
	}
	return nil, fmt.Errorf("%w: %s %s: %s", kind, method, u, msg)
}

// Call sends a request to the node's admin endpoint and decodes the JSON
// answer into out (nil: discard). A non-2xx answer is an error carrying the
// node's message (see do).
func (c *AdminClient) Call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, rd, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("raftjournal: %s %s: read answer: %w", method, c.url(path), err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("raftjournal: %s %s: answer is not the expected JSON: %w", method, c.url(path), err)
		}
	}
	return nil
}

// ErrNotJournal is returned by ClusterStatus when the endpoint answers, but not
// as a journal node (a proxy's admin port, another service).
var ErrNotJournal = errors.New("raftjournal: not a journal node's admin endpoint")

// ClusterStatus reads GET /status (local: this node's view only, without
// asking the other members) and checks that the answer is a journal node's.
func (c *AdminClient) ClusterStatus(ctx context.Context, local bool) (ClusterStatus, error) {
	var cs ClusterStatus
	path := "/status"
	if local {
		path += "?local=1"
	}
	if err := c.Call(ctx, http.MethodGet, path, nil, &cs); err != nil {
		return cs, err
	}
	switch {
	case cs.ID != "" && cs.Role != "" && cs.RaftAddr == "":
		return cs, fmt.Errorf("%w: %s answered with the minimal status it shows callers without the cluster secret", ErrUnauthenticated, c.url(path))
	case cs.ID == "" || cs.Role == "":
		return cs, fmt.Errorf("%w: %s answers /status without a node id or role", ErrNotJournal, c.url(path))
	}
	return cs, nil
}

func (c *AdminClient) join(ctx context.Context, id, raftAddr string) error {
	return c.Call(ctx, http.MethodPost, "/join", joinRequest{ID: id, RaftAddr: raftAddr}, nil)
}

func treeQuery(path string, linearizable bool) string {
	q := url.Values{"path": {path}}
	if linearizable {
		q.Set("linearizable", "1")
	}
	return "?" + q.Encode()
}

// GetNode reads the node at path (GET /node): the persisted stat with the raw
// owner, the data (nil and empty kept apart) and the ACL. ok is false when the
// node does not exist. A node the client's ZooKeeper credentials may not read
// is an error matching CodeNoAuth.
func (c *AdminClient) GetNode(ctx context.Context, path string, linearizable bool) (n *znode.Node, ok bool, err error) {
	resp, err := c.do(ctx, http.MethodGet, "/node"+treeQuery(path, linearizable), nil, true)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	var an adminNode
	if err := json.NewDecoder(io.LimitReader(resp.Body, znode.MaxSnapshotRecordPayload*2)).Decode(&an); err != nil {
		return nil, false, fmt.Errorf("raftjournal: GET /node %s from %s: %w", path, c.addr, err)
	}
	return an.node(), true, nil
}

// WalkTree streams the subtree at root (GET /tree) and calls fn with each node
// in canonical order. The stream is verified as it is read (record CRCs, then
// the trailer's count and digest), so a stream cut short is an error, never a
// smaller tree. fn may keep the nodes. A missing root yields no nodes; a
// subtree holding a node the client's ZooKeeper credentials may not read is an
// error matching CodeNoAuth.
func (c *AdminClient) WalkTree(ctx context.Context, root string, linearizable bool, fn func(*znode.Node) error) error {
	resp, err := c.do(ctx, http.MethodGet, "/tree"+treeQuery(root, linearizable), nil, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sr, err := znode.NewSnapshotReader(resp.Body)
	if err != nil {
		return fmt.Errorf("raftjournal: GET /tree %s from %s: %w", root, c.addr, err)
	}
	defer sr.Close()
	for {
		zn, err := sr.NextNode()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("raftjournal: GET /tree %s from %s: %w", root, c.addr, err)
		}
		if err := fn(zn); err != nil {
			return err
		}
	}
}

// Rebased reads the nodes that still carry the last rollback's base zxid
// (GET /rebased, FSM.Rebased), at most limit paths (≤ 0: the node's default).
// With linearizable, the node first applies everything committed before the
// call. A listed node the client's ZooKeeper credentials may not read is an
// error matching CodeNoAuth.
func (c *AdminClient) Rebased(ctx context.Context, limit int, linearizable bool) (RebasedNodes, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if linearizable {
		q.Set("linearizable", "1")
	}
	path := "/rebased"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var ar adminRebased
	if err := c.Call(ctx, http.MethodGet, path, nil, &ar); err != nil {
		return RebasedNodes{}, err
	}
	return RebasedNodes{Base: int64(ar.Base), UpTo: int64(ar.UpTo), Total: ar.Total, Paths: ar.Paths}, nil
}

// Digests reads the node's digest figures (GET /digests).
func (c *AdminClient) Digests(ctx context.Context) (*AdminDigests, error) {
	resp, err := c.do(ctx, http.MethodGet, "/digests", nil, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ad adminDigests
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ad); err != nil {
		return nil, fmt.Errorf("raftjournal: GET /digests from %s: %w", c.addr, err)
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

// httpClient is an HTTP client presenting the TLS certificate, one per
// ClusterTLS so that its connections are pooled.
func (c *ClusterTLS) httpClient() *http.Client {
	c.once.Do(func() {
		t := http.DefaultTransport.(*http.Transport).Clone()
		cfg := c.ClientConfig("")
		cfg.ServerName = "" // the transport names each host it dials
		t.TLSClientConfig = cfg
		c.hc = &http.Client{Transport: t}
	})
	return c.hc
}

// tlsOnce is ClusterTLS's lazily built HTTP client.
type tlsOnce struct {
	once sync.Once
	hc   *http.Client
}

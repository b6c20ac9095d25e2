package raftjournal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/znode"
)

// rawAdmin sends a request to an admin endpoint by hand, with the given
// bearer token ("" for none), and returns the status and body.
func rawAdmin(t *testing.T, method, url, token, body string, headers ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Item 9: a stranger who reaches the admin port can neither change the
// membership nor read the tree, its digests or the importer's checkpoints.
func TestAdminPortRequiresSecret(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	c.primary()
	n := c.nodes[0]
	base := "http://" + n.AdminAddr()
	secret := string(testCreds().Secret)
	requests := []struct{ method, path, body string }{
		{"POST", "/remove", `{"id":"n2"}`},
		{"POST", "/join", `{"id":"bogus","raft_addr":"127.0.0.1:1"}`},
		{"POST", "/transfer-leadership", `{}`},
		{"GET", "/node?path=/", ""},
		{"GET", "/tree?path=/", ""},
		{"GET", "/digests", ""},
		{"GET", "/checkpoint?key=k", ""},
		{"GET", "/status", ""},
		{"GET", "/metrics", ""},
	}
	for _, token := range []string{"", "not-the-cluster-secret-at-all"} {
		for _, r := range requests {
			code, body := rawAdmin(t, r.method, base+r.path, token, r.body)
			if code != http.StatusUnauthorized || !strings.Contains(body, "cluster secret") {
				t.Errorf("%s %s with token %q: %d %s, want 401 naming the cluster secret", r.method, r.path, token, code, body)
			}
		}
	}
	if st := n.Status(); st.MemberCount != 2 {
		t.Fatalf("the membership changed under unauthenticated requests: %+v", st.Members)
	}
	// With the secret, the same endpoints answer.
	for _, p := range []string{"/status", "/metrics", "/digests", "/node?path=/", "/tree?path=/"} {
		if code, body := rawAdmin(t, "GET", base+p, secret, ""); code != http.StatusOK {
			t.Errorf("GET %s with the secret: %d %s", p, code, body)
		}
	}
	// The journal RPC on the Raft port refuses a caller with the wrong secret
	// (and with none) before it acts.
	for _, creds := range []Credentials{{Secret: []byte("not-the-cluster-secret-at-all")}, {}} {
		if _, err := RemoteStatus(t.Context(), creds, n.RaftAddr()); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("remote status with secret %q: %v, want ErrUnauthenticated", creds.Secret, err)
		}
	}
}

// Item 9: /metrics and a minimal /status are open only when the node says so.
func TestAdminOpenStatusAndMetrics(t *testing.T) {
	c := newTestCluster(t, 1, func(cfg *NodeConfig) { cfg.OpenStatus, cfg.OpenMetrics = true, true })
	base := "http://" + c.nodes[0].AdminAddr()
	code, body := rawAdmin(t, "GET", base+"/status", "", "")
	if code != http.StatusOK {
		t.Fatalf("open /status: %d %s", code, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "role", "leader", "term", "applied_index", "phase"} {
		if _, ok := m[k]; !ok {
			t.Errorf("minimal status lacks %q: %s", k, body)
		}
	}
	for _, k := range []string{"members", "raft_addr", "digest", "leader_addr"} {
		if _, ok := m[k]; ok {
			t.Errorf("minimal status tells a stranger %q: %s", k, body)
		}
	}
	if code, body := rawAdmin(t, "GET", base+"/metrics", "", ""); code != http.StatusOK || !strings.Contains(body, "zk2raft_journal_") {
		t.Errorf("open /metrics: %d", code)
	}
	if code, _ := rawAdmin(t, "POST", base+"/remove", "", `{"id":"n1"}`); code != http.StatusUnauthorized {
		t.Errorf("POST /remove on a node with open status: %d, want 401", code)
	}
	// A client without the secret is told so, not handed a half status.
	if _, err := NewAdminClient(c.nodes[0].AdminAddr(), Credentials{}).ClusterStatus(t.Context(), false); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("status without the secret from an open-status node: %v, want ErrUnauthenticated", err)
	}
	// With the secret, /status is the full one.
	code, body = rawAdmin(t, "GET", base+"/status", string(testCreds().Secret), "")
	if code != http.StatusOK || !strings.Contains(body, `"members"`) {
		t.Errorf("/status with the secret: %d %s", code, body)
	}
}

// Item 9: tree reads over the admin port honour the nodes' ZooKeeper ACLs for
// the credentials the request carries (and super).
func TestAdminTreeReadsHonourACL(t *testing.T) {
	const super = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=" // super:test
	c := newTestCluster(t, 1, func(cfg *NodeConfig) { cfg.SuperDigest = super })
	n := c.nodes[0]
	adminTreeFixture(t, n) // /a/b: digest u:pw with READ|ADMIN
	ctx := t.Context()
	plain := testAdmin(n)
	for name, cl := range map[string]*AdminClient{
		"no credentials": plain, "wrong password": plain.WithZooKeeperAuth([]string{"digest:u:wrong"}),
	} {
		if _, _, err := cl.GetNode(ctx, "/a/b", false); !errors.Is(err, CodeNoAuth) {
			t.Errorf("%s: GET /node /a/b: %v, want NoAuth", name, err)
		}
		err := cl.WalkTree(ctx, "/a", false, func(*znode.Node) error { return nil })
		if !errors.Is(err, CodeNoAuth) || !strings.Contains(err.Error(), "/a/b") {
			t.Errorf("%s: GET /tree /a: %v, want NoAuth naming /a/b", name, err)
		}
		// What the ACL lets anyone read stays readable.
		if got, ok, err := cl.GetNode(ctx, "/a/b/c", false); err != nil || !ok || !bytes.Equal(got.Data, []byte{0, 1, 2, 0xff}) {
			t.Errorf("%s: GET /node /a/b/c: %v %v", name, ok, err)
		}
		if err := cl.WalkTree(ctx, "/a-b", false, func(*znode.Node) error { return nil }); err != nil {
			t.Errorf("%s: GET /tree /a-b: %v", name, err)
		}
	}
	for name, cl := range map[string]*AdminClient{
		"digest": plain.WithZooKeeperAuth([]string{"digest:u:pw"}),
		"super":  plain.WithZooKeeperAuth([]string{"digest:super:test"}),
	} {
		if _, ok, err := cl.GetNode(ctx, "/a/b", false); err != nil || !ok {
			t.Errorf("%s: GET /node /a/b: %v %v", name, ok, err)
		}
		nodes := 0
		if err := cl.WalkTree(ctx, "/a", false, func(*znode.Node) error { nodes++; return nil }); err != nil || nodes != 6 {
			t.Errorf("%s: GET /tree /a: %d nodes, %v", name, nodes, err)
		}
	}
	// An unknown scheme is a bad request, not a silent anonymous read.
	code, body := rawAdmin(t, "GET", "http://"+n.AdminAddr()+"/node?path=/a", string(testCreds().Secret), "", ZKAuthHeader, "sasl:x")
	if code != http.StatusBadRequest {
		t.Errorf("unknown scheme: %d %s", code, body)
	}
}

// hello is what a stranger that does not know the handshake might send: the
// journal RPC's old first byte, then a request header announcing a 256 MiB
// payload, padded to the hello's size.
func strangerHello() []byte {
	b := []byte{muxJournal, rpcApply, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[2:], 256<<20)
	return append(b, make([]byte, helloSize)...)
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Items 9 and 10: five strangers announcing 256 MiB journal RPCs on the Raft
// port are disconnected at the handshake, and the node allocates nothing for
// them.
func TestRaftPortRejectsStrangersBeforeAllocating(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.nodes[0]
	before := heapInUse()
	var conns []net.Conn
	for range 5 {
		conn, err := net.Dial("tcp", n.RaftAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(strangerHello()); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	for i, conn := range conns {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		got, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection %d still open after 30s: the node waits for the stranger's payload", i)
		}
		// The challenge, then a refusal.
		if len(got) < challengeSize+1 || got[challengeSize] != 1 {
			t.Errorf("connection %d: got %d bytes %x, want the challenge and a refusal", i, len(got), got[:min(len(got), 48)])
		}
	}
	if grown := int64(heapInUse()) - int64(before); grown > 64<<20 {
		t.Fatalf("the heap grew by %d MiB for five unauthenticated connections", grown>>20)
	}
	if n.Status().Role != "leader" {
		t.Fatalf("node role %s after the strangers", n.Status().Role)
	}
}

// Item 10: an authenticated peer's frame lengths are bounded by method before
// anything is allocated, and a payload is read as it arrives.
func TestRaftPortBoundsFrameLengths(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.nodes[0]
	for _, tc := range []struct {
		name   string
		method byte
		size   uint32
	}{
		{"apply over the entry bound", rpcApply, 256 << 20},
		{"read index over the small bound", rpcReadIndex, 2 << 20},
		{"status over the small bound", rpcStatus, maxSmallRPCFrame + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := dialMux(n.RaftAddr(), muxJournal, testCreds(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var h [5]byte
			h[0] = tc.method
			binary.BigEndian.PutUint32(h[1:], tc.size)
			if _, err := conn.Write(h[:]); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			if b, err := io.ReadAll(conn); err != nil || len(b) != 0 {
				t.Fatalf("want the connection closed without an answer: %d bytes, %v", len(b), err)
			}
		})
	}
	// A request within the bounds still works on a fresh connection.
	if ms, err := RemoteStatus(t.Context(), testCreds(), n.RaftAddr()); err != nil || ms.ID != "n1" {
		t.Fatalf("status after the oversized frames: %+v %v", ms, err)
	}
}

// Item 10: a frame that announces 60 MiB and delivers 1 KiB costs about 1 KiB.
func TestReadPayloadGrowsWithData(t *testing.T) {
	src := bytes.NewReader(make([]byte, 1<<10))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	_, err := readPayload(src, 60<<20)
	runtime.ReadMemStats(&ms)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short payload: %v, want ErrUnexpectedEOF", err)
	}
	if alloc := ms.TotalAlloc - before; alloc > 8<<20 {
		t.Fatalf("reading 1 KiB of an announced 60 MiB allocated %d MiB", alloc>>20)
	}
	got, err := readPayload(bytes.NewReader(bytes.Repeat([]byte{7}, 3<<20)), 3<<20)
	if err != nil || len(got) != 3<<20 || got[len(got)-1] != 7 {
		t.Fatalf("full payload: %d bytes, %v", len(got), err)
	}
}

// A node given another cluster's secret cannot join, and says why at once
// instead of retrying until its join timeout.
func TestJoinWithWrongSecretFails(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	cfg := testNodeConfig(t, "intruder", testLogger(t))
	cfg.Secret = []byte("another-clusters-secret-0123456789")
	cfg.Join = c.nodes[0].AdminAddr()
	start := time.Now()
	n, err := Open(cfg)
	if err == nil {
		n.Close()
		t.Fatal("a node with the wrong secret joined")
	}
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("join with the wrong secret: %v, want ErrUnauthenticated", err)
	}
	if time.Since(start) > cfg.JoinTimeout/2 {
		t.Errorf("the refusal took %v: it was retried", time.Since(start))
	}
	if st := c.nodes[0].Status(); st.MemberCount != 1 {
		t.Fatalf("members %+v", st.Members)
	}
}

// Item 9: mutual TLS on the admin and Raft ports, on top of the secret.
func TestClusterMutualTLS(t *testing.T) {
	ca := testlog.NewTLSCA(t, "cluster")
	load := func(ca *testlog.TLSCA, name string) *ClusterTLS {
		cert, key := ca.Issue(name)
		ct, err := LoadTLS(TLSFiles{CertFile: cert, KeyFile: key, CAFile: ca.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	c := newTestCluster(t, 2, func(cfg *NodeConfig) { cfg.TLS = load(ca, cfg.NodeID) })
	c.primary()
	ctx := t.Context()
	if _, _, err := c.nodes[1].Create(ctx, "/tls", []byte("x"), ModePersistent); err != nil {
		t.Fatal(err) // forwarded to the leader over the TLS journal RPC
	}
	tool := Credentials{Secret: testCreds().Secret, TLS: load(ca, "tool")}
	cs, err := NewAdminClient(c.nodes[1].AdminAddr(), tool).ClusterStatus(ctx, false)
	if err != nil || cs.MemberCount != 2 {
		t.Fatalf("status over TLS: %+v %v", cs, err)
	}
	for _, m := range cs.Members {
		if m.Status == nil {
			t.Fatalf("member %s unreachable over TLS: %s", m.ID, m.Error)
		}
	}
	if data, _, ok, err := RemoteRead(ctx, tool, c.nodes[0].RaftAddr(), "/tls", true); err != nil || !ok || string(data) != "x" {
		t.Fatalf("remote read over TLS: %q %v %v", data, ok, err)
	}
	// Without TLS, or with a certificate of another CA, both ports refuse.
	other := Credentials{Secret: testCreds().Secret, TLS: load(testlog.NewTLSCA(t, "other"), "stranger")}
	for name, creds := range map[string]Credentials{"plain": testCreds(), "other CA": other} {
		if _, err := NewAdminClient(c.nodes[0].AdminAddr(), creds).ClusterStatus(ctx, true); err == nil {
			t.Errorf("%s: the admin port answered", name)
		}
		if _, err := RemoteStatus(ctx, creds, c.nodes[0].RaftAddr()); err == nil {
			t.Errorf("%s: the raft port answered", name)
		}
	}
}

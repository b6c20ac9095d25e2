package raftjournal

import (
	"errors"
	"slices"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

func TestEmptyTree(t *testing.T) {
	h := newHarness(t)
	f := h.f
	if d := f.Digest(); d != znode.EmptyTreeDigest {
		t.Errorf("empty tree digest = %s, want %s", d, znode.EmptyTreeDigest)
	}
	if n := f.NodeCount(); n != 4 {
		t.Errorf("node count %d, want 4 (/, /zookeeper, /zookeeper/quota, /zookeeper/config)", n)
	}
	kids, st, err := f.Children("/", nil)
	if err != nil || !slices.Equal(kids, []string{"zookeeper"}) {
		t.Errorf("children of / = %v, %v", kids, err)
	}
	// Persisted cversion 0 with one child: clients see −1 (zetcd hard-codes it).
	if st.Cversion != -1 || st.NumChildren != 1 {
		t.Errorf("root stat %+v, want cversion -1 and 1 child", st)
	}
	if kids, _, _ := f.Children("/zookeeper", nil); !slices.Equal(kids, []string{"config", "quota"}) {
		t.Errorf("children of /zookeeper = %v", kids)
	}
	acl, st, err := f.GetACL("/zookeeper/config")
	if err != nil || len(acl) != 1 || acl[0].Perms != znode.PermRead || st.Aversion != -1 {
		t.Errorf("/zookeeper/config acl %v stat %+v err %v, want world:anyone:r and aversion -1", acl, st, err)
	}
	if f.Phase() != PhaseShadow {
		t.Errorf("fresh phase %s", f.Phase())
	}
	checkInvariants(t, f)
}

func TestNativeWritesRefusedInShadow(t *testing.T) {
	h := newHarness(t)
	res := h.write(0, create("/a", "x", ModePersistent))
	if !errors.Is(res.Err, CodeNotReadOnly) || res.Zxid != 0 || res.Ops[0].Err != CodeNotReadOnly {
		t.Fatalf("create in shadow: %+v", res)
	}
	if _, ok := h.f.Exists("/a", nil); ok {
		t.Fatal("node created in shadow")
	}
}

func TestNativeOpErrors(t *testing.T) {
	digestID := znode.ID{Scheme: "digest", ID: "alice:X/1rW2n3dvG+Mj8nLOQEIm1GlkI="}
	tests := []struct {
		name  string
		setup []Op
		auth  []znode.ID
		op    Op
		noSes bool // run without the session
		want  Code
	}{
		{name: "create ok", op: create("/a", "x", ModePersistent), want: CodeOK},
		{name: "create exists", setup: []Op{create("/a", "", ModePersistent)}, op: create("/a", "", ModePersistent), want: CodeNodeExists},
		{name: "create root", op: create("/", "", ModePersistent), want: CodeNodeExists},
		{name: "create no parent", op: create("/a/b", "", ModePersistent), want: CodeNoNode},
		{name: "create empty component", setup: []Op{create("/a", "", ModePersistent)}, op: create("/a//b", "", ModePersistent), want: CodeNoNode},
		{name: "create trailing slash", setup: []Op{create("/a", "", ModePersistent)}, op: create("/a/", "", ModePersistent), want: CodeBadArguments},
		{name: "create relative", op: create("a", "", ModePersistent), want: CodeBadArguments},
		{name: "create dot", setup: []Op{create("/a", "", ModePersistent)}, op: create("/a/.", "", ModePersistent), want: CodeBadArguments},
		{name: "create nul", op: create("/a\x00", "", ModePersistent), want: CodeBadArguments},
		{name: "create bad mode", op: create("/a", "", CreateMode(7)), want: CodeBadArguments},
		{name: "create ttl without ttl", op: create("/a", "", ModePersistentTTL), want: CodeBadArguments},
		{name: "create ttl on persistent", op: Op{Kind: OpCreate, Path: "/a", ACL: znode.WorldAnyone(), TTL: 5}, want: CodeBadArguments},
		{name: "create ttl too long", op: Op{Kind: OpCreate, Path: "/a", ACL: znode.WorldAnyone(), Mode: ModePersistentTTL, TTL: znode.MaxTTLMillis + 1}, want: CodeBadArguments},
		{name: "create empty acl", op: Op{Kind: OpCreate, Path: "/a"}, want: CodeInvalidACL},
		{name: "create unknown scheme", op: Op{Kind: OpCreate, Path: "/a", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "magic", ID: "x"}}}}, want: CodeInvalidACL},
		{name: "create world not anyone", op: Op{Kind: OpCreate, Path: "/a", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "world", ID: "bob"}}}}, want: CodeInvalidACL},
		{name: "create bad ip", op: Op{Kind: OpCreate, Path: "/a", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "10.0.0.300"}}}}, want: CodeInvalidACL},
		{name: "create ip cidr", op: Op{Kind: OpCreate, Path: "/a", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "10.0.0.0/8"}}}}, want: CodeOK},
		{name: "create auth unauthenticated", op: Op{Kind: OpCreate, Path: "/a", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "auth"}}}}, want: CodeInvalidACL},
		{name: "create auth", auth: []znode.ID{digestID}, op: Op{Kind: OpCreate, Path: "/a", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "auth"}}}}, want: CodeOK},
		{name: "create acl checked before parent", op: Op{Kind: OpCreate, Path: "/missing/a"}, want: CodeInvalidACL},
		{name: "create ephemeral without session", noSes: true, op: create("/e", "", ModeEphemeral), want: CodeSessionExpired},
		{name: "create under ephemeral", setup: []Op{create("/e", "", ModeEphemeral)}, op: create("/e/c", "", ModePersistent), want: CodeNoChildrenForEphemerals},
		{name: "create under ephemeral sequential", setup: []Op{create("/e", "", ModeEphemeral)}, op: create("/e/c", "", ModePersistentSequential), want: CodeNoChildrenForEphemerals},
		{name: "create container", op: create("/c", "", ModeContainer), want: CodeOK},
		{name: "create ttl", op: Op{Kind: OpCreate, Path: "/t", ACL: znode.WorldAnyone(), Mode: ModePersistentTTL, TTL: 1000}, want: CodeOK},
		{name: "delete ok", setup: []Op{create("/a", "", ModePersistent)}, op: del("/a", -1), want: CodeOK},
		{name: "delete exact version", setup: []Op{create("/a", "", ModePersistent)}, op: del("/a", 0), want: CodeOK},
		{name: "delete bad version", setup: []Op{create("/a", "", ModePersistent)}, op: del("/a", 3), want: CodeBadVersion},
		{name: "delete missing", op: del("/a", -1), want: CodeNoNode},
		{name: "delete missing parent", op: del("/a/b", -1), want: CodeNoNode},
		{name: "delete not empty", setup: []Op{create("/a", "", ModePersistent), create("/a/b", "", ModePersistent)}, op: del("/a", -1), want: CodeNotEmpty},
		{name: "delete version before children", setup: []Op{create("/a", "", ModePersistent), create("/a/b", "", ModePersistent)}, op: del("/a", 9), want: CodeBadVersion},
		{name: "delete root", op: del("/", -1), want: CodeBadArguments},
		{name: "delete /zookeeper", op: del("/zookeeper", -1), want: CodeBadArguments},
		{name: "delete /zookeeper/config", op: del("/zookeeper/config", -1), want: CodeBadArguments},
		{name: "setData ok", setup: []Op{create("/a", "", ModePersistent)}, op: setData("/a", "y", 0), want: CodeOK},
		{name: "setData bad version", setup: []Op{create("/a", "", ModePersistent)}, op: setData("/a", "y", 1), want: CodeBadVersion},
		{name: "setData missing", op: setData("/a", "y", -1), want: CodeNoNode},
		{name: "setData bad path", op: setData("/a/", "y", -1), want: CodeBadArguments},
		{name: "setACL ok", setup: []Op{create("/a", "", ModePersistent)}, op: Op{Kind: OpSetACL, Path: "/a", ACL: znode.WorldAnyone(), Version: 0}, want: CodeOK},
		{name: "setACL bad aversion", setup: []Op{create("/a", "", ModePersistent)}, op: Op{Kind: OpSetACL, Path: "/a", ACL: znode.WorldAnyone(), Version: 2}, want: CodeBadVersion},
		{name: "setACL invalid before missing", op: Op{Kind: OpSetACL, Path: "/a", Version: -1}, want: CodeInvalidACL},
		{name: "setACL missing", op: Op{Kind: OpSetACL, Path: "/a", ACL: znode.WorldAnyone(), Version: -1}, want: CodeNoNode},
		{name: "check ok", setup: []Op{create("/a", "", ModePersistent)}, op: check("/a", 0), want: CodeOK},
		{name: "check bad version", setup: []Op{create("/a", "", ModePersistent)}, op: check("/a", 1), want: CodeBadVersion},
		{name: "check missing", op: check("/a", -1), want: CodeNoNode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.primary()
			s := h.session()
			for _, op := range tc.setup {
				h.mustWrite(s, op)
			}
			before := h.f.Digest()
			sess := s
			if tc.noSes {
				sess = 0
			}
			res := h.apply(&Write{Session: sess, Time: h.tick(), Auth: tc.auth, Ops: []Op{tc.op}})
			if got := CodeOf(res.Err); got != tc.want || res.Ops[0].Err != tc.want {
				t.Fatalf("%s %q: got %v (op result %v), want %v", tc.op.Kind, tc.op.Path, res.Err, res.Ops[0].Err, tc.want)
			}
			if res.Zxid == 0 {
				t.Error("a native write must consume a zxid, failed or not")
			}
			if tc.want != CodeOK && h.f.Digest() != before {
				t.Error("a failed write changed the tree")
			}
			checkInvariants(t, h.f)
		})
	}
}

func TestNativeUnknownSession(t *testing.T) {
	h := newHarness(t)
	h.primary()
	for _, op := range []Op{create("/a", "", ModePersistent), create("/e", "", ModeEphemeral), del("/a", -1), setData("/", "x", -1), check("/", -1)} {
		res := h.write(12345, op)
		if CodeOf(res.Err) != CodeSessionExpired {
			t.Errorf("%s with an unknown session: %v, want SessionExpired", op.Kind, res.Err)
		}
	}
}

func TestNativeStats(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s := h.session()
	r := h.mustWrite(s, create("/a", "hello", ModePersistent))
	zxid1 := h.f.Status().JournalZxid
	if r.Path != "/a" || r.Stat.Czxid != zxid1 || r.Stat.Mzxid != zxid1 || r.Stat.Pzxid != zxid1 ||
		r.Stat.Ctime != h.now || r.Stat.Mtime != h.now || r.Stat.DataLength != 5 || r.Stat.Version != 0 {
		t.Errorf("create stat %+v (zxid %#x, time %d)", r.Stat, zxid1, h.now)
	}
	root, _ := h.f.Exists("/", nil)
	if root.Pzxid != zxid1 || root.Cversion != 2*1-2 || root.NumChildren != 2 {
		t.Errorf("root after create: %+v", root)
	}
	ctime := h.now
	r = h.mustWrite(s, setData("/a", "bye", 0))
	zxid2 := h.f.Status().JournalZxid
	if r.Stat.Version != 1 || r.Stat.Mzxid != zxid2 || r.Stat.Czxid != zxid1 || r.Stat.Mtime != h.now || r.Stat.Ctime != ctime {
		t.Errorf("setData stat %+v", r.Stat)
	}
	r = h.mustWrite(s, Op{Kind: OpSetACL, Path: "/a", ACL: []znode.ACL{{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}}}, Version: -1})
	if r.Stat.Aversion != 1 || r.Stat.Mzxid != zxid2 || r.Stat.Version != 1 {
		t.Errorf("setACL stat %+v: aversion must move, mzxid must not", r.Stat)
	}
	data, st, err := h.f.Get("/a", nil)
	if err != nil || string(data) != "bye" || st != r.Stat {
		t.Errorf("get: %q %+v %v", data, st, err)
	}

	// nil and empty data are different values
	h.mustWrite(s, Op{Kind: OpCreate, Path: "/nil", ACL: znode.WorldAnyone()})
	h.mustWrite(s, Op{Kind: OpCreate, Path: "/empty", Data: []byte{}, ACL: znode.WorldAnyone()})
	if n, _ := h.f.Node("/nil"); n.Data != nil {
		t.Error("nil data became empty")
	}
	if n, _ := h.f.Node("/empty"); n.Data == nil {
		t.Error("empty data became nil")
	}

	// raw owners for ephemerals, containers and TTL nodes; clients see 0 for the latter
	h.mustWrite(s, create("/e", "", ModeEphemeral))
	h.mustWrite(s, create("/c", "", ModeContainer))
	h.mustWrite(s, Op{Kind: OpCreate, Path: "/t", ACL: znode.WorldAnyone(), Mode: ModePersistentTTL, TTL: 3_600_000})
	ttlOwner, _ := znode.TTLOwner(3_600_000)
	for path, raw := range map[string]int64{"/e": s, "/c": znode.ContainerOwner, "/t": ttlOwner} {
		n, _ := h.f.Node(path)
		if n.Stat.EphemeralOwner != raw {
			t.Errorf("%s raw owner %#x, want %#x", path, n.Stat.EphemeralOwner, raw)
		}
		ws, _ := h.f.Exists(path, nil)
		want := int64(0)
		if path == "/e" {
			want = s
		}
		if ws.EphemeralOwner != want {
			t.Errorf("%s client owner %#x, want %#x", path, ws.EphemeralOwner, want)
		}
	}
	if got := h.f.Ephemerals(s); !slices.Equal(got, []string{"/e"}) {
		t.Errorf("ephemerals of the session: %v", got)
	}
	checkInvariants(t, h.f)
}

// After five sequential creates and a delete the next name is ...0000000005,
// and clients see cversion 2·persisted − children (zookeeper-internals.md §5).
func TestSequentialNamesAfterDelete(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s := h.session()
	h.mustWrite(s, create("/q", "", ModePersistent))
	for i := range 5 {
		r := h.mustWrite(s, create("/q/seq-", "", ModePersistentSequential))
		if want := znode.SequentialName("/q/seq-", int32(i)); r.Path != want {
			t.Fatalf("create %d named %s, want %s", i, r.Path, want)
		}
	}
	h.mustWrite(s, del("/q/seq-0000000001", -1))
	r := h.mustWrite(s, create("/q/seq-", "", ModeEphemeralSequential))
	if r.Path != "/q/seq-0000000005" {
		t.Fatalf("after a delete: %s, want /q/seq-0000000005", r.Path)
	}
	n, _ := h.f.Node("/q")
	ws, _ := h.f.Exists("/q", nil)
	if n.Stat.Cversion != 6 || ws.NumChildren != 5 || ws.Cversion != 2*6-5 {
		t.Fatalf("persisted cversion %d, client cversion %d with %d children; want 6, 7, 5", n.Stat.Cversion, ws.Cversion, ws.NumChildren)
	}
	// The counter is shared with non-sequential children.
	h.mustWrite(s, create("/q/plain", "", ModePersistent))
	if r := h.mustWrite(s, create("/q/x", "", ModePersistentSequential)); r.Path != "/q/x0000000007" {
		t.Fatalf("after a plain create: %s", r.Path)
	}
	checkInvariants(t, h.f)
}

func TestMultiFailurePattern(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s := h.session()
	h.mustWrite(s, create("/x", "keep", ModePersistent))
	before := h.f.Digest()
	status := h.f.Status()
	res := h.multi(s,
		create("/a", "", ModePersistent),
		del("/x", -1),
		create("/b/c", "", ModePersistent), // NoNode
		setData("/a", "y", -1),
	)
	want := []Code{CodeOK, CodeOK, CodeNoNode, CodeRuntimeInconsistency}
	for i, r := range res.Ops {
		if r.Err != want[i] || r.Path != "" {
			t.Errorf("op %d: %v %q, want %v", i, r.Err, r.Path, want[i])
		}
	}
	if CodeOf(res.Err) != CodeNoNode {
		t.Errorf("result error %v", res.Err)
	}
	if res.Zxid != status.JournalZxid+1 {
		t.Errorf("failed multi zxid %#x, want %#x (it still consumes one)", res.Zxid, status.JournalZxid+1)
	}
	if _, ok := h.f.Exists("/a", nil); ok || h.f.Digest() != before {
		t.Error("a failed multi left changes behind")
	}
	if _, ok := h.f.Exists("/x", nil); !ok {
		t.Error("a failed multi deleted /x")
	}
	checkInvariants(t, h.f)

	// A successful multi: every op sees the earlier ones, one zxid for all.
	res = h.multi(s,
		create("/a", "", ModePersistent),
		create("/a/b", "1", ModePersistentSequential),
		setData("/a", "y", 0),
		check("/a", 1),
		del("/x", 0),
		Op{Kind: OpCreate, Path: "/x", Data: []byte("again"), ACL: []znode.ACL{{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}}}},
	)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Ops[1].Path != "/a/b0000000000" || res.Ops[2].Stat.Version != 1 || res.Ops[3].Stat.Mzxid != res.Zxid {
		t.Errorf("multi results %+v", res.Ops)
	}
	n, _ := h.f.Node("/x")
	if n.Stat.Czxid != res.Zxid || string(n.Data) != "again" {
		t.Errorf("recreated /x: %+v", n)
	}
	checkInvariants(t, h.f)

	// setACL is not a multi op in ZooKeeper.
	res = h.multi(s, Op{Kind: OpSetACL, Path: "/a", ACL: znode.WorldAnyone(), Version: -1})
	if res.Ops[0].Err != CodeBadArguments {
		t.Errorf("setACL in multi: %v", res.Ops[0].Err)
	}
	// An empty multi succeeds and consumes a zxid.
	if res := h.multi(s); res.Err != nil || res.Zxid == 0 {
		t.Errorf("empty multi: %+v", res)
	}
}

// A failed multi that deleted and re-created nodes sharing an ACL list must leave
// the ACL cache's reference counts exactly as they were.
func TestMultiRollbackACLs(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s := h.session()
	odd := []znode.ACL{{Perms: znode.PermRead | znode.PermAdmin, ID: znode.ID{Scheme: "ip", ID: "10.1.2.3"}}}
	h.mustWrite(s, Op{Kind: OpCreate, Path: "/odd", ACL: odd})
	res := h.multi(s,
		del("/odd", -1),
		Op{Kind: OpCreate, Path: "/new", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "10.9.9.9"}}}},
		Op{Kind: OpCreate, Path: "/odd", ACL: odd},
		setData("/odd", "x", 0),
		del("/missing", -1),
	)
	if CodeOf(res.Err) != CodeNoNode {
		t.Fatalf("multi: %v", res.Err)
	}
	checkInvariants(t, h.f)
	acl, _, err := h.f.GetACL("/odd")
	if err != nil || !znode.EqualACLs(acl, odd) {
		t.Fatalf("/odd ACL after rollback: %v %v", acl, err)
	}
}

func TestSessionCloseRemovesEphemerals(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s1, s2 := h.session(), h.session()
	if s1 == s2 {
		t.Fatal("two sessions got one id")
	}
	h.mustWrite(s1, create("/app", "", ModePersistent))
	h.mustWrite(s1, create("/app/e1", "", ModeEphemeral))
	h.mustWrite(s1, create("/app/lock-", "", ModeEphemeralSequential))
	h.mustWrite(s2, create("/app/other", "", ModeEphemeral))
	res := h.apply(&CloseSession{Session: s1, Time: h.tick()})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if !slices.Equal(res.Deleted, []string{"/app/e1", "/app/lock-0000000001"}) {
		t.Errorf("deleted %v", res.Deleted)
	}
	kids, st, _ := h.f.Children("/app", nil)
	if !slices.Equal(kids, []string{"other"}) || st.Pzxid != res.Zxid {
		t.Errorf("/app after close: %v, pzxid %#x, want close zxid %#x", kids, st.Pzxid, res.Zxid)
	}
	if st.Cversion != 2*3-1 {
		t.Errorf("/app client cversion %d, want 5 (3 creates, 2 deletes)", st.Cversion)
	}
	if res := h.apply(&CloseSession{Session: s1, Time: h.tick()}); CodeOf(res.Err) != CodeSessionExpired {
		t.Errorf("closing a closed session: %v", res.Err)
	}
	if res := h.write(s1, create("/app/late", "", ModeEphemeral)); CodeOf(res.Err) != CodeSessionExpired {
		t.Errorf("ephemeral on a closed session: %v", res.Err)
	}

	// Expiry: one zxid per session, in order.
	s3 := h.session()
	h.mustWrite(s3, create("/app/e3", "", ModeEphemeral))
	res = h.apply(&ExpireSessions{Sessions: []int64{s2, 999, s3}, Time: h.tick()})
	if !slices.Equal(res.Deleted, []string{"/app/other", "/app/e3"}) {
		t.Errorf("expired %v", res.Deleted)
	}
	_, st, _ = h.f.Children("/app", nil)
	if st.NumChildren != 0 || st.Pzxid != res.Zxid {
		t.Errorf("/app after expiry %+v, zxid %#x", st, res.Zxid)
	}
	if n := len(h.f.Sessions()); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	checkInvariants(t, h.f)
}

func TestCleanupNodes(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s := h.session()
	h.mustWrite(s, create("/used", "", ModeContainer))
	h.mustWrite(s, create("/used/c", "", ModePersistent))
	h.mustWrite(s, del("/used/c", -1))
	h.mustWrite(s, create("/unused", "", ModeContainer))
	h.mustWrite(s, create("/busy", "", ModeContainer))
	h.mustWrite(s, create("/busy/c", "", ModePersistent))
	h.mustWrite(s, Op{Kind: OpCreate, Path: "/ttl", ACL: znode.WorldAnyone(), Mode: ModePersistentTTL, TTL: 100})
	born := h.now
	if got := h.f.CleanupCandidates(born+50, 0); !slices.Equal(got, []string{"/used"}) {
		t.Errorf("candidates before the TTL: %v", got)
	}
	if got := h.f.CleanupCandidates(born+101, 0); !slices.Equal(got, []string{"/ttl", "/used"}) {
		t.Errorf("candidates after the TTL: %v", got)
	}
	// The leader's list is re-checked at the entry's time: /ttl is not due yet,
	// /busy has a child, /unused never had one.
	res := h.apply(&CleanupNodes{Paths: []string{"/ttl", "/used", "/busy", "/unused", "/nope"}, Time: born + 60})
	if !slices.Equal(res.Deleted, []string{"/used"}) || res.Zxid == 0 {
		t.Errorf("cleanup deleted %v (zxid %#x)", res.Deleted, res.Zxid)
	}
	res = h.apply(&CleanupNodes{Paths: []string{"/ttl"}, Time: born + 101})
	if !slices.Equal(res.Deleted, []string{"/ttl"}) {
		t.Errorf("cleanup deleted %v", res.Deleted)
	}
	checkInvariants(t, h.f)
}

func TestPhaseTransitions(t *testing.T) {
	tests := []struct {
		name  string
		steps []SetPhase
		want  Phase
		err   error
	}{
		{"forward", []SetPhase{{Phase: PhasePrimary}, {Phase: PhaseFinalized}}, PhaseFinalized, nil},
		{"same phase is a no-op", []SetPhase{{Phase: PhaseShadow}}, PhaseShadow, nil},
		{"skip primary", []SetPhase{{Phase: PhaseFinalized}}, PhaseShadow, ErrPhaseTransition},
		{"back without flag", []SetPhase{{Phase: PhasePrimary}, {Phase: PhaseShadow}}, PhasePrimary, ErrPhaseTransition},
		{"rollback", []SetPhase{{Phase: PhasePrimary}, {Phase: PhaseShadow, Rollback: true}}, PhaseShadow, nil},
		{"no way back from finalized", []SetPhase{{Phase: PhasePrimary}, {Phase: PhaseFinalized}, {Phase: PhasePrimary, Rollback: true}}, PhaseFinalized, ErrPhaseTransition},
		{"invalid phase", []SetPhase{{Phase: 9}}, PhaseShadow, ErrBadCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			var err error
			for i := range tc.steps {
				err = h.apply(&tc.steps[i]).Err
			}
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Errorf("last step: %v, want %v", err, tc.err)
			}
			if p := h.f.Phase(); p != tc.want {
				t.Errorf("phase %s, want %s", p, tc.want)
			}
		})
	}
	if p, err := ParsePhase("Primary"); err != nil || p != PhasePrimary || p.String() != "primary" {
		t.Errorf("ParsePhase: %v %v", p, err)
	}
}

// Journal zxids continue ZooKeeper's: a new epoch above every source epoch seen.
func TestJournalEpoch(t *testing.T) {
	h := newHarness(t)
	srcZxid := int64(5)<<32 | 0x1234
	h.apply(&ImportBatch{Nodes: []*znode.Node{{Path: "/a", Data: []byte("x"), ACL: znode.WorldAnyone(), Stat: znode.Stat{Czxid: srcZxid, Mzxid: srcZxid, Pzxid: srcZxid}}}})
	h.apply(&SourceTxn{Zxid: srcZxid + 1, Ops: []SourceOp{{Kind: SourceSetData, Path: "/a", Data: []byte("y"), Stat: znode.Stat{Czxid: srcZxid, Mzxid: srcZxid + 1, Version: 1, Pzxid: srcZxid}}}})
	h.primary()
	s := h.session()
	if want := int64(6)<<32 | 1; s == 0 || h.f.Status().JournalZxid != want {
		t.Fatalf("first journal zxid %#x, want %#x", h.f.Status().JournalZxid, want)
	}
	r := h.mustWrite(s, setData("/a", "z", 1))
	if r.Stat.Mzxid != int64(6)<<32|2 || r.Stat.Czxid != srcZxid {
		t.Errorf("setData after cutover: %+v", r.Stat)
	}
	if res := h.apply(&SourceTxn{Zxid: srcZxid + 2, Ops: []SourceOp{{Kind: SourceDelete, Path: "/a"}}}); !errors.Is(res.Err, ErrWrongPhase) {
		t.Errorf("mirrored txn after cutover: %v", res.Err)
	}
}

func TestDigestHistory(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s := h.session() // zxid counter 1
	var at128 znode.Digest
	for i := 2; i <= 300; i++ {
		h.mustWrite(s, create("/n-", "x", ModePersistentSequential))
		if i == 128 {
			at128 = h.f.Digest()
		}
	}
	hist := h.f.DigestHistory()
	if len(hist) != 2 {
		t.Fatalf("history %v, want entries at counters 128 and 256", hist)
	}
	epoch := int64(h.f.Status().Epoch)
	if hist[0].Zxid != epoch<<32|128 || hist[0].Digest != at128 {
		t.Errorf("history[0] = %+v, want zxid %#x digest %s", hist[0], epoch<<32|128, at128)
	}
	var l digestLog
	for i := range 5000 {
		l.add(DigestEntry{Zxid: int64(i)})
	}
	if got := l.list(); len(got) != digestLogLimit || got[0].Zxid != 5000-digestLogLimit {
		t.Errorf("digest log keeps %d entries from %d", len(got), got[0].Zxid)
	}
}

package raftjournal

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/znode"
)

// TestNodeDifferentialZooKeeper runs the same operation sequences against a real
// ZooKeeper 3.8 (go-zookeeper) and against a three-node journal through the
// embedding API (every op on the next node in turn, so most are forwarded), and
// after every step compares the results, the error codes and the whole subtree:
// data, ACLs, children and every stat field. Zxids are compared as offsets from
// the zxid of the sequence's first write (both sides consume one zxid per write,
// failed ones included, and per session created or closed), times as the
// relation ctime = mtime, and session ids through a mapping. At the end, the
// leader's container and TTL clean-up and session expiry are compared with
// ZooKeeper's own. (TestDifferentialZooKeeper does the same for the bare FSM.)
func TestNodeDifferentialZooKeeper(t *testing.T) {
	ens := zktest.New(t, zktest.Options{Servers: 1, ExtendedTypes: true,
		// Containers and TTL nodes are collected every 200 ms; the sequence
		// only lets them become eligible at the end.
		SystemProperties: map[string]string{"znode.container.checkIntervalMs": "200"}})
	c := newTestCluster(t, 3, func(cfg *NodeConfig) { cfg.CleanupInterval = 200 * time.Millisecond })
	c.primary()
	z := newZKSide(t, ens)
	j := &journalSide{t: t, c: c, sessions: map[string]int64{}}
	d := &differ{t: t, z: z, j: j}
	z.openSession("main", 30*time.Second)
	j.openSession("main", 10*time.Minute)

	world := znode.WorldAnyone()
	readOnly := []znode.ACL{{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}}}
	mixed := []znode.ACL{{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}},
		{Perms: znode.PermAll, ID: znode.ID{Scheme: "digest", ID: "bob:Xuh3CASrBd3xjr4RYKHzVzRRUgM="}},
		{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "127.0.0.0/8"}}}
	create := func(path, data string, mode CreateMode) diffOp {
		return diffOp{op: Op{Kind: OpCreate, Path: path, Data: []byte(data), Mode: mode, ACL: world}}
	}
	nilCreate := func(path string) diffOp {
		return diffOp{op: Op{Kind: OpCreate, Path: path, Mode: ModePersistent, ACL: world}}
	}
	set := func(path, data string, v int32) diffOp {
		return diffOp{op: Op{Kind: OpSetData, Path: path, Data: []byte(data), Version: v}}
	}
	del := func(path string, v int32) diffOp { return diffOp{op: Op{Kind: OpDelete, Path: path, Version: v}} }
	setACL := func(path string, acl []znode.ACL, v int32) diffOp {
		return diffOp{op: Op{Kind: OpSetACL, Path: path, ACL: acl, Version: v}}
	}
	ttl := func(path string, mode CreateMode, d time.Duration) diffOp {
		return diffOp{op: Op{Kind: OpCreate, Path: path, Mode: mode, ACL: world, TTL: d.Milliseconds()}}
	}
	in := func(session string, o diffOp) diffOp { o.session = session; return o }
	multi := func(ops ...Op) diffOp { return diffOp{multi: ops} }
	open := func(name string) diffOp { return diffOp{openSession: name} }
	closeS := func(name string) diffOp { return diffOp{closeSession: name} }

	sequences := []struct {
		name  string
		steps []diffOp
	}{
		{"basics", []diffOp{
			create("/diff", "root", ModePersistent),
			nilCreate("/diff/nil"),
			create("/diff/empty", "", ModePersistent),
			create("/diff/nil", "again", ModePersistent), // NodeExists
			create("/diff/x/y", "", ModePersistent),      // NoNode
			set("/diff/nil", "v1", 0),
			set("/diff/nil", "v2", 0), // BadVersion
			set("/diff/nil", "v3", -1),
			set("/diff/gone", "v", -1), // NoNode
			del("/diff/nil", 7),        // BadVersion
			del("/diff/empty", -1),
			del("/diff/empty", -1), // NoNode
			del("/diff", -1),       // NotEmpty
			del("/zookeeper", -1),  // BadArguments
		}},
		{"sequential names after deletes", []diffOp{
			create("/diff/s", "", ModePersistent),
			create("/diff/s/n-", "a", ModePersistentSequential),
			create("/diff/s/n-", "b", ModePersistentSequential),
			create("/diff/s/n-", "c", ModePersistentSequential),
			del("/diff/s/n-0000000001", -1),
			del("/diff/s/n-0000000002", -1),
			create("/diff/s/n-", "d", ModePersistentSequential), // n-0000000003
			create("/diff/s/plain", "", ModePersistent),
			create("/diff/s/n-", "e", ModePersistentSequential), // n-0000000005
			create("/diff/s/", "", ModePersistentSequential),    // an empty prefix: s/0000000006
		}},
		{"ephemerals on session close", []diffOp{
			open("s1"),
			in("s1", create("/diff/e1", "", ModeEphemeral)),
			in("s1", create("/diff/s/eph-", "", ModeEphemeralSequential)),
			in("s1", create("/diff/e1/child", "", ModePersistent)), // NoChildrenForEphemerals
			create("/diff/e1", "", ModePersistent),                 // NodeExists
			closeS("s1"),
			create("/diff/e1", "after", ModePersistent),
			create("/diff/s/n-", "f", ModePersistentSequential),
		}},
		{"multi", []diffOp{
			multi(Op{Kind: OpCreate, Path: "/diff/m", ACL: world},
				Op{Kind: OpCreate, Path: "/diff/m/q-", Mode: ModePersistentSequential, ACL: world},
				Op{Kind: OpSetData, Path: "/diff/m", Data: []byte("mv"), Version: 0},
				Op{Kind: OpCheck, Path: "/diff/m", Version: 1},
				Op{Kind: OpDelete, Path: "/diff/s/n-0000000000", Version: -1}),
			multi(Op{Kind: OpCreate, Path: "/diff/m2", ACL: world}, // ok, then rolled back
				Op{Kind: OpCheck, Path: "/diff/m", Version: 9},                        // BadVersion
				Op{Kind: OpSetData, Path: "/diff/m", Data: []byte("x"), Version: -1}), // RuntimeInconsistency
			multi(Op{Kind: OpDelete, Path: "/diff/m", Version: -1}), // NotEmpty
			multi(Op{Kind: OpCreate, Path: "/diff/m/q-", Mode: ModePersistentSequential, ACL: world},
				Op{Kind: OpCreate, Path: "/diff/m/q-", Mode: ModePersistentSequential, ACL: world},
				Op{Kind: OpCreate, Path: "/diff/nope/x", ACL: world}), // NoNode
			multi(Op{Kind: OpCreate, Path: "/diff/m/q-", Mode: ModePersistentSequential, ACL: world},
				Op{Kind: OpCreate, Path: "/diff/m/q-", Mode: ModePersistentSequential, ACL: world}),
			multi(), // an empty multi is a txn too
		}},
		{"ACLs and versions", []diffOp{
			create("/diff/acl", "a", ModePersistent),
			setACL("/diff/acl", mixed, 0),
			setACL("/diff/acl", readOnly, 0), // BadVersion
			setACL("/diff/acl", nil, -1),     // InvalidACL
			setACL("/diff/acl", []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "bogus", ID: "x"}}}, -1), // InvalidACL
			{op: Op{Kind: OpCreate, Path: "/diff/acl2", ACL: mixed}},
			{op: Op{Kind: OpCreate, Path: "/diff/acl3", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "300.1.1.1"}}}}}, // InvalidACL
			setACL("/diff/acl", world, 1),
			set("/diff/acl", "b", 0),
		}},
		{"containers and TTL", []diffOp{
			create("/diff/c", "", ModeContainer),
			create("/diff/c/x", "", ModePersistent),
			create("/diff/c/y-", "", ModePersistentSequential),
			ttl("/diff/t", ModePersistentTTL, time.Hour),
			ttl("/diff/t/s-", ModePersistentSequentialTTL, time.Hour),
			set("/diff/t", "keep", -1),
		}},
	}
	for _, seq := range sequences {
		for i, s := range seq.steps {
			d.step(fmt.Sprintf("%s step %d", seq.name, i), s)
		}
	}

	// Clean-up: make a container empty and a TTL node expire, and let a session
	// time out; both sides must end with the same tree.
	z.openSession("expiring", 2*time.Second)
	j.openSession("expiring", 2*time.Second)
	d.step("ephemeral of an expiring session", in("expiring", create("/diff/exp", "", ModeEphemeral)))
	d.stepOnly("short TTL", ttl("/diff/short", ModePersistentTTL, 100*time.Millisecond))
	d.stepOnly("empty the container", del("/diff/c/x", -1))
	d.stepOnly("empty the container", del("/diff/c/y-0000000001", -1))
	z.end("expiring")
	waitFor(t, 30*time.Second, "clean-up and expiry on both sides", func() error {
		for _, p := range []string{"/diff/c", "/diff/short", "/diff/exp"} {
			if z.exists(p) || j.exists(p) {
				return fmt.Errorf("%s still exists (ZooKeeper %t, journal %t)", p, z.exists(p), j.exists(p))
			}
		}
		return nil
	})
	d.compareTrees("after clean-up", false)
	t.Logf("%d steps, %d node comparisons", d.steps, d.seen)
}

// diffOp is one step: a single op, a multi, or a session change.
type diffOp struct {
	op           Op
	multi        []Op
	session      string // the session a single op runs in ("": main)
	openSession  string
	closeSession string
}

func (o diffOp) isMulti() bool {
	return o.multi != nil || (o.op.Kind == 0 && o.openSession == "" && o.closeSession == "")
}

// diffResult is what a step returned, normalized.
type diffResult struct {
	code  Code
	path  string
	codes []Code
	paths []string
}

// diffNode is a node with its stat normalized for comparison.
type diffNode struct {
	data                string
	dataNil             bool
	acl                 string
	czxid, mzxid, pzxid int64
	ctimeIsMtime        bool
	version, cversion   int32
	aversion            int32
	owner               string
	dataLength, kids    int32
	children            string
}

type diffSide interface {
	name() string
	run(o diffOp) diffResult
	dump(root string) map[string]diffNode
	firstZxid() int64
}

type differ struct {
	t           *testing.T
	z, j        diffSide
	steps, seen int
}

func (d *differ) step(what string, o diffOp) {
	d.t.Helper()
	d.stepOnly(what, o)
	d.compareTrees(what, true)
}

// stepOnly runs a step and compares its results, not the trees (once clean-up
// runs on both sides at its own pace).
func (d *differ) stepOnly(what string, o diffOp) {
	d.t.Helper()
	zr, jr := d.z.run(o), d.j.run(o)
	if zr.code != jr.code || zr.path != jr.path || !slices.Equal(zr.codes, jr.codes) || !slices.Equal(zr.paths, jr.paths) {
		d.t.Fatalf("%s (%+v): ZooKeeper %+v, journal %+v", what, o, zr, jr)
	}
	d.steps++
}

func (d *differ) compareTrees(what string, zxids bool) {
	d.t.Helper()
	zt, jt := d.z.dump("/diff"), d.j.dump("/diff")
	d.seen += len(zt)
	var diffs []string
	for p, zn := range zt {
		jn, ok := jt[p]
		if !zxids {
			zn.czxid, zn.mzxid, zn.pzxid, jn.czxid, jn.mzxid, jn.pzxid = 0, 0, 0, 0, 0, 0
			zn.cversion, jn.cversion = 0, 0
		}
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s only in ZooKeeper: %+v", p, zn))
		case zn != jn:
			diffs = append(diffs, fmt.Sprintf("%s\n    zookeeper %+v\n    journal   %+v", p, zn, jn))
		}
	}
	for p, jn := range jt {
		if _, ok := zt[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s only in the journal: %+v", p, jn))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		d.t.Fatalf("%s: trees differ:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

// normalize turns a client stat into a diffNode; base is the side's first
// write zxid, sessions maps session ids to names.
func normalize(data []byte, acl []znode.ACL, ws znode.WireStat, kids []string, base int64, sessions map[int64]string) diffNode {
	rel := func(z int64) int64 {
		if z < base {
			return z - base - 1_000_000 // before the sequence: kept distinct
		}
		return z - base
	}
	owner := "0"
	if ws.EphemeralOwner != 0 {
		owner = sessions[ws.EphemeralOwner]
		if owner == "" {
			owner = fmt.Sprintf("unknown %#x", ws.EphemeralOwner)
		}
	}
	slices.Sort(kids)
	return diffNode{
		data: string(data), dataNil: data == nil, acl: fmt.Sprint(acl),
		czxid: rel(ws.Czxid), mzxid: rel(ws.Mzxid), pzxid: rel(ws.Pzxid), ctimeIsMtime: ws.Ctime == ws.Mtime,
		version: ws.Version, cversion: ws.Cversion, aversion: ws.Aversion, owner: owner,
		dataLength: ws.DataLength, kids: ws.NumChildren, children: strings.Join(kids, ","),
	}
}

// zkSide is ZooKeeper through go-zookeeper, one connection per session.
type zkSide struct {
	t        *testing.T
	ens      *zktest.Ensemble
	conns    map[string]*zk.Conn
	sessions map[int64]string
	base     int64
}

func newZKSide(t *testing.T, ens *zktest.Ensemble) *zkSide {
	return &zkSide{t: t, ens: ens, conns: map[string]*zk.Conn{}, sessions: map[int64]string{}}
}

func (z *zkSide) name() string { return "ZooKeeper" }

func (z *zkSide) openSession(name string, timeout time.Duration) {
	z.t.Helper()
	conn, events, err := zk.Connect(z.ens.Hosts(), timeout, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	if err != nil {
		z.t.Fatal(err)
	}
	z.t.Cleanup(conn.Close)
	deadline := time.After(20 * time.Second)
	for conn.State() != zk.StateHasSession {
		select {
		case <-events:
		case <-deadline:
			z.t.Fatalf("no ZooKeeper session for %s", name)
		}
	}
	go func() {
		for range events {
		}
	}()
	z.conns[name] = conn
	z.sessions[conn.SessionID()] = name
}

// end closes a session's connection. go-zookeeper cannot stop pinging without
// closing, so on this side the session is closed rather than expired; the
// journal's twin session is left to expire, and the end states must agree.
func (z *zkSide) end(name string) {
	z.conns[name].Close()
	delete(z.conns, name)
}

type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

func (z *zkSide) conn(session string) *zk.Conn {
	if session == "" {
		session = "main"
	}
	return z.conns[session]
}

var zkUnknownCode = regexp.MustCompile(`unknown error: (-?\d+)`)

// zkCodeOf maps a go-zookeeper error to ZooKeeper's code.
func zkCodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	for code, e := range map[Code]error{
		CodeNoNode: zk.ErrNoNode, CodeNodeExists: zk.ErrNodeExists, CodeBadVersion: zk.ErrBadVersion,
		CodeNotEmpty: zk.ErrNotEmpty, CodeNoChildrenForEphemerals: zk.ErrNoChildrenForEphemerals,
		CodeInvalidACL: zk.ErrInvalidACL, CodeBadArguments: zk.ErrBadArguments, CodeSessionExpired: zk.ErrSessionExpired,
		CodeNoAuth: zk.ErrNoAuth, CodeAPIError: zk.ErrAPIError, CodeSessionMoved: zk.ErrSessionMoved,
	} {
		if errors.Is(err, e) {
			return code
		}
	}
	if m := zkUnknownCode.FindStringSubmatch(err.Error()); m != nil {
		v, _ := strconv.Atoi(m[1])
		return Code(v)
	}
	if errors.Is(err, zk.ErrInvalidPath) {
		return CodeBadArguments
	}
	return CodeSystemError
}

func zkACLs(acl []znode.ACL) []zk.ACL {
	out := []zk.ACL{}
	for _, a := range acl {
		out = append(out, zk.ACL{Perms: int32(a.Perms), Scheme: a.ID.Scheme, ID: a.ID.ID})
	}
	return out
}

func (z *zkSide) run(o diffOp) diffResult {
	z.t.Helper()
	switch {
	case o.openSession != "":
		z.openSession(o.openSession, 30*time.Second)
		return diffResult{}
	case o.closeSession != "":
		z.conns[o.closeSession].Close()
		delete(z.conns, o.closeSession)
		return diffResult{}
	case o.isMulti():
		var ops []any
		for _, op := range o.multi {
			switch op.Kind {
			case OpCreate:
				ops = append(ops, &zk.CreateRequest{Path: op.Path, Data: op.Data, Acl: zkACLs(op.ACL), Flags: int32(op.Mode)})
			case OpDelete:
				ops = append(ops, &zk.DeleteRequest{Path: op.Path, Version: op.Version})
			case OpSetData:
				ops = append(ops, &zk.SetDataRequest{Path: op.Path, Data: op.Data, Version: op.Version})
			case OpCheck:
				ops = append(ops, &zk.CheckVersionRequest{Path: op.Path, Version: op.Version})
			}
		}
		res, err := z.conn("").Multi(ops...)
		if errors.Is(err, zk.ErrConnectionClosed) {
			z.t.Fatal(err)
		}
		out := diffResult{}
		for i, r := range res {
			c := zkCodeOf(r.Error)
			out.codes = append(out.codes, c)
			if c != CodeOK && out.code == CodeOK {
				out.code = c
			}
			if c == CodeOK && o.multi[i].Kind == OpCreate {
				out.paths = append(out.paths, r.String)
			} else {
				out.paths = append(out.paths, "")
			}
		}
		if out.code == CodeRuntimeInconsistency {
			out.code = CodeOK
		}
		return out
	}
	conn := z.conn(o.session)
	op := o.op
	var err error
	var path string
	switch op.Kind {
	case OpCreate:
		switch {
		case op.Mode == ModeContainer:
			path, err = conn.CreateContainer(op.Path, op.Data, zk.FlagContainer, zkACLs(op.ACL))
		case op.Mode.IsTTL():
			path, err = conn.CreateTTL(op.Path, op.Data, int32(op.Mode), zkACLs(op.ACL), time.Duration(op.TTL)*time.Millisecond)
		default:
			path, err = conn.Create(op.Path, op.Data, int32(op.Mode), zkACLs(op.ACL))
		}
	case OpDelete:
		err = conn.Delete(op.Path, op.Version)
	case OpSetData:
		_, err = conn.Set(op.Path, op.Data, op.Version)
	case OpSetACL:
		_, err = conn.SetACL(op.Path, zkACLs(op.ACL), op.Version)
	}
	if errors.Is(err, zk.ErrConnectionClosed) {
		z.t.Fatal(err)
	}
	if z.base == 0 {
		_, st, serr := z.conn("").Exists("/")
		if serr != nil {
			z.t.Fatal(serr)
		}
		z.base = st.Pzxid // the first step creates /diff
	}
	return diffResult{code: zkCodeOf(err), path: path}
}

func (z *zkSide) exists(path string) bool {
	ok, _, err := z.conn("").Exists(path)
	if err != nil {
		z.t.Fatal(err)
	}
	return ok
}

func (z *zkSide) firstZxid() int64 { return z.base }

func (z *zkSide) dump(root string) map[string]diffNode {
	z.t.Helper()
	out := map[string]diffNode{}
	conn := z.conn("")
	var walk func(p string)
	walk = func(p string) {
		data, st, err := conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			return
		}
		if err != nil {
			z.t.Fatal(err)
		}
		acl, _, err := conn.GetACL(p)
		if err != nil {
			z.t.Fatal(err)
		}
		kids, _, err := conn.Children(p)
		if err != nil {
			z.t.Fatal(err)
		}
		var zacl []znode.ACL
		for _, a := range acl {
			zacl = append(zacl, znode.ACL{Perms: znode.Perm(a.Perms), ID: znode.ID{Scheme: a.Scheme, ID: a.ID}})
		}
		ws := znode.WireStat{Czxid: st.Czxid, Mzxid: st.Mzxid, Ctime: st.Ctime, Mtime: st.Mtime, Version: st.Version,
			Cversion: st.Cversion, Aversion: st.Aversion, EphemeralOwner: st.EphemeralOwner, DataLength: st.DataLength,
			NumChildren: st.NumChildren, Pzxid: st.Pzxid}
		out[p] = normalize(data, zacl, ws, slices.Clone(kids), z.base, z.sessions)
		for _, k := range kids {
			walk(znode.Join(p, k))
		}
	}
	walk(root)
	return out
}

// journalSide is the journal through the Node API, each op on the next node.
type journalSide struct {
	t        *testing.T
	c        *testCluster
	next     int
	sessions map[string]int64
	names    map[int64]string
	base     int64
}

func (j *journalSide) name() string { return "journal" }

func (j *journalSide) node() *Node {
	n := j.c.nodes[j.next%len(j.c.nodes)]
	j.next++
	return n
}

func (j *journalSide) openSession(name string, timeout time.Duration) {
	j.t.Helper()
	id, err := j.node().CreateSession(j.t.Context(), timeout)
	if err != nil {
		j.t.Fatal(err)
	}
	j.sessions[name] = id
	if j.names == nil {
		j.names = map[int64]string{}
	}
	j.names[id] = name
}

func (j *journalSide) session(name string) int64 {
	if name == "" {
		name = "main"
	}
	return j.sessions[name]
}

func (j *journalSide) run(o diffOp) diffResult {
	j.t.Helper()
	ctx := j.t.Context()
	switch {
	case o.openSession != "":
		j.openSession(o.openSession, 10*time.Minute)
		return diffResult{}
	case o.closeSession != "":
		if err := j.node().CloseSession(ctx, j.sessions[o.closeSession]); err != nil {
			j.t.Fatal(err)
		}
		return diffResult{}
	case o.isMulti():
		res, err := j.node().Multi(ctx, o.multi, WithSession(j.session("")))
		out := diffResult{code: CodeOf(err)}
		if res == nil && err != nil {
			j.t.Fatal(err)
		}
		for _, r := range res {
			out.codes = append(out.codes, r.Err)
			out.paths = append(out.paths, r.Path)
		}
		return out
	}
	n := j.node()
	op := o.op
	opts := []WriteOption{WithSession(j.session(o.session))}
	var err error
	var path string
	switch op.Kind {
	case OpCreate:
		opts = append(opts, WithACL(op.ACL), WithTTL(time.Duration(op.TTL)*time.Millisecond))
		path, _, err = n.Create(ctx, op.Path, op.Data, op.Mode, opts...)
	case OpDelete:
		err = n.Delete(ctx, op.Path, op.Version, opts...)
	case OpSetData:
		_, err = n.Set(ctx, op.Path, op.Data, op.Version, opts...)
	case OpSetACL:
		_, err = n.SetACL(ctx, op.Path, op.ACL, op.Version, opts...)
	}
	var oe *OpError
	if err != nil && !errors.As(err, &oe) && !errors.As(err, new(Code)) {
		j.t.Fatalf("%s %s: %v", op.Kind, op.Path, err)
	}
	if j.base == 0 {
		st, _, err := j.c.nodes[0].Exists(ctx, "/", Linearizable())
		if err != nil {
			j.t.Fatal(err)
		}
		j.base = st.Pzxid
	}
	return diffResult{code: CodeOf(err), path: path}
}

func (j *journalSide) exists(path string) bool {
	_, ok, err := j.c.nodes[0].Exists(j.t.Context(), path, Linearizable())
	if err != nil {
		j.t.Fatal(err)
	}
	return ok
}

func (j *journalSide) firstZxid() int64 { return j.base }

// dump reads the subtree from a node in turn, linearizably.
func (j *journalSide) dump(root string) map[string]diffNode {
	j.t.Helper()
	ctx := j.t.Context()
	n := j.node()
	if _, _, err := n.Exists(ctx, root, Linearizable()); err != nil {
		j.t.Fatal(err)
	}
	out := map[string]diffNode{}
	var walk func(p string)
	walk = func(p string) {
		data, st, err := n.Get(ctx, p)
		if errors.Is(err, CodeNoNode) {
			return
		}
		if err != nil {
			j.t.Fatal(err)
		}
		acl, _, err := n.GetACL(ctx, p)
		if err != nil {
			j.t.Fatal(err)
		}
		kids, _, err := n.Children(ctx, p)
		if err != nil {
			j.t.Fatal(err)
		}
		out[p] = normalize(data, acl, st, slices.Clone(kids), j.base, j.names)
		for _, k := range kids {
			walk(znode.Join(p, k))
		}
	}
	walk(root)
	return out
}

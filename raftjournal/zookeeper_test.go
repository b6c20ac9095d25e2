package raftjournal

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/znode"
)

// TestDifferentialZooKeeper runs the same writes against a real ZooKeeper 3.8 and
// against the FSM and compares every result code, every created name and every
// stat field. Zxids are compared as offsets from the first write's (the epochs
// differ; both consume one zxid per write, failed ones included), times are not
// compared (the journal's come from the leader's stamp), and session ids are
// mapped.
func TestDifferentialZooKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ZooKeeper server")
	}
	ens := zktest.New(t, zktest.Options{Servers: 1, ExtendedTypes: true})
	dial := func() (*zk.Conn, int64) {
		t.Helper()
		c, events, err := zk.Connect(ens.Hosts(), 10*time.Second, zk.WithLogInfo(false))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		deadline := time.After(20 * time.Second)
		for c.State() != zk.StateHasSession {
			select {
			case <-events:
			case <-deadline:
				t.Fatal("no ZooKeeper session")
			}
		}
		return c, c.SessionID()
	}
	conn, zkSession := dial()
	conn2, zkSession2 := dial()

	h := newHarness(t)
	h.primary()
	js, js2 := h.session(), h.session()
	sessions := map[int64]int64{zkSession: js, zkSession2: js2} // ZooKeeper's → journal's

	var zkBase, jBase int64
	normZ := func(z, base int64) int64 {
		if z == 0 {
			return 0
		}
		return z - base + 1_000_000
	}
	fromZK := func(s *zk.Stat) znode.WireStat {
		owner := s.EphemeralOwner
		if j, ok := sessions[owner]; ok {
			owner = j
		}
		return znode.WireStat{Czxid: normZ(s.Czxid, zkBase), Mzxid: normZ(s.Mzxid, zkBase), Pzxid: normZ(s.Pzxid, zkBase),
			Version: s.Version, Cversion: s.Cversion, Aversion: s.Aversion, EphemeralOwner: owner,
			DataLength: s.DataLength, NumChildren: s.NumChildren}
	}
	fromJ := func(s znode.WireStat) znode.WireStat {
		s.Czxid, s.Mzxid, s.Pzxid = normZ(s.Czxid, jBase), normZ(s.Mzxid, jBase), normZ(s.Pzxid, jBase)
		s.Ctime, s.Mtime = 0, 0
		return s
	}
	zkCode := func(err error) Code {
		for code, e := range map[Code]error{
			CodeNoNode: zk.ErrNoNode, CodeNodeExists: zk.ErrNodeExists, CodeBadVersion: zk.ErrBadVersion,
			CodeNotEmpty: zk.ErrNotEmpty, CodeNoChildrenForEphemerals: zk.ErrNoChildrenForEphemerals,
			CodeInvalidACL: zk.ErrInvalidACL, CodeBadArguments: zk.ErrBadArguments, CodeSessionExpired: zk.ErrSessionExpired,
			CodeNoAuth: zk.ErrNoAuth,
		} {
			if errors.Is(err, e) {
				return code
			}
		}
		if err != nil {
			return CodeSystemError // a code go-zookeeper has no error for
		}
		return CodeOK
	}
	zkACL := func(acl []znode.ACL) []zk.ACL {
		out := []zk.ACL{}
		for _, a := range acl {
			out = append(out, zk.ACL{Perms: int32(a.Perms), Scheme: a.ID.Scheme, ID: a.ID.ID})
		}
		return out
	}
	compareStat := func(what, path string) {
		t.Helper()
		ok1, zs, err := conn.Exists(path)
		if err != nil {
			t.Fatal(err)
		}
		js, ok2 := h.f.Exists(path, nil)
		if ok1 != ok2 {
			t.Fatalf("%s: %s exists in ZooKeeper %t, journal %t", what, path, ok1, ok2)
		}
		if ok1 && fromZK(zs) != fromJ(js) {
			t.Errorf("%s: stat of %s\n  zookeeper %+v\n  journal   %+v", what, path, fromZK(zs), fromJ(js))
		}
	}

	type step struct {
		op      Op
		session int // 1 or 2
	}
	run := func(s step) {
		t.Helper()
		c, sess := conn, js
		if s.session == 2 {
			c, sess = conn2, js2
		}
		op := s.op
		var zerr error
		var zpath string
		var zstat *zk.Stat
		switch op.Kind {
		case OpCreate:
			switch {
			case op.Mode == ModeContainer:
				zpath, zerr = c.CreateContainer(op.Path, op.Data, zk.FlagContainer, zkACL(op.ACL))
			case op.Mode.IsTTL():
				zpath, zerr = c.CreateTTL(op.Path, op.Data, int32(op.Mode), zkACL(op.ACL), time.Duration(op.TTL)*time.Millisecond)
			default:
				zpath, zerr = c.Create(op.Path, op.Data, int32(op.Mode), zkACL(op.ACL))
			}
		case OpDelete:
			zerr = c.Delete(op.Path, op.Version)
		case OpSetData:
			zstat, zerr = c.Set(op.Path, op.Data, op.Version)
		case OpSetACL:
			zstat, zerr = c.SetACL(op.Path, zkACL(op.ACL), op.Version)
		}
		res := h.write(sess, op)
		if zkBase == 0 {
			// The first write: both sides' zxid for it becomes offset zero.
			_, st, err := conn.Exists("/")
			if err != nil {
				t.Fatal(err)
			}
			zkBase, jBase = st.Pzxid, res.Zxid
		}
		what := fmt.Sprintf("%s %s (mode %s, version %d)", op.Kind, op.Path, op.Mode, op.Version)
		if zc, jc := zkCode(zerr), CodeOf(res.Err); zc != jc {
			t.Fatalf("%s: ZooKeeper %v (%v), journal %v", what, zc, zerr, jc)
		}
		if zerr != nil {
			return
		}
		if op.Kind == OpCreate && zpath != res.Ops[0].Path {
			t.Errorf("%s: ZooKeeper named it %s, journal %s", what, zpath, res.Ops[0].Path)
		}
		if zstat != nil && fromZK(zstat) != fromJ(res.Ops[0].Stat) {
			t.Errorf("%s: result stat\n  zookeeper %+v\n  journal   %+v", what, fromZK(zstat), fromJ(res.Ops[0].Stat))
		}
		if op.Kind == OpCreate {
			compareStat(what, zpath)
		}
		if p := znode.Parent(op.Path); p != "" {
			if _, ok := h.f.Exists(p, nil); ok {
				compareStat(what+" (parent)", p)
			}
		}
	}

	readOnly := []znode.ACL{{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}}}
	steps := []step{
		{op: create("/d", "x", ModePersistent)},
		{op: create("/d", "y", ModePersistent)},    // NodeExists
		{op: create("/d/a/b", "", ModePersistent)}, // NoNode
		{op: create("/d/s-", "", ModePersistentSequential)},
		{op: create("/d/s-", "", ModePersistentSequential)},
		{op: create("/d/s-", "", ModeEphemeralSequential)},
		{op: create("/d/s-", "", ModePersistentSequential)},
		{op: create("/d/s-", "", ModePersistentSequential)},
		{op: del("/d/s-0000000001", -1)},
		{op: create("/d/s-", "", ModePersistentSequential)}, // s-0000000005
		{op: setData("/d", "z", 7)},                         // BadVersion
		{op: setData("/d", "z", 0)},
		{op: setData("/d", "", -1)},
		{op: Op{Kind: OpSetACL, Path: "/d", ACL: readOnly, Version: 5}}, // BadVersion
		{op: Op{Kind: OpSetACL, Path: "/d", ACL: znode.WorldAnyone(), Version: 0}},
		{op: Op{Kind: OpSetACL, Path: "/nope", ACL: znode.WorldAnyone(), Version: -1}}, // NoNode
		{op: create("/d/e", "", ModeEphemeral)},
		{op: create("/d/e/x", "", ModePersistent)}, // NoChildrenForEphemerals
		{op: del("/d", -1)},                        // NotEmpty
		{op: del("/d/s-0000000000", 3)},            // BadVersion
		{op: del("/d/s-0000000000", 0)},
		{op: del("/nope", -1)}, // NoNode
		{op: create("/c", "", ModeContainer)},
		{op: create("/c/x", "", ModePersistent)},
		{op: del("/c/x", -1)},
		{op: Op{Kind: OpCreate, Path: "/t", Data: []byte("ttl"), ACL: znode.WorldAnyone(), Mode: ModePersistentTTL, TTL: 3_600_000}},
		{op: Op{Kind: OpCreate, Path: "/t/s-", ACL: znode.WorldAnyone(), Mode: ModePersistentSequentialTTL, TTL: 1000}},
		{op: Op{Kind: OpCreate, Path: "/bad", ACL: []znode.ACL{}}},                                                                 // InvalidACL
		{op: Op{Kind: OpCreate, Path: "/bad", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "world", ID: "bob"}}}}}, // InvalidACL
		{op: Op{Kind: OpCreate, Path: "/bad", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "nope", ID: "x"}}}}},    // InvalidACL
		{op: Op{Kind: OpCreate, Path: "/ip", ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "127.0.0.0/8"}}}}},
		{op: del("/zookeeper", -1)}, // BadArguments
		{op: del("/", -1)},          // BadArguments
		{op: create("/d/e2", "", ModeEphemeral), session: 2},
		{op: create("/d/e3", "", ModeEphemeralSequential), session: 2},
	}
	for _, s := range steps {
		run(s)
	}

	// Multis: a success, and the failure pattern.
	multi := func(ops ...Op) {
		t.Helper()
		var zops []any
		for _, op := range ops {
			switch op.Kind {
			case OpCreate:
				zops = append(zops, &zk.CreateRequest{Path: op.Path, Data: op.Data, Acl: zkACL(op.ACL), Flags: int32(op.Mode)})
			case OpDelete:
				zops = append(zops, &zk.DeleteRequest{Path: op.Path, Version: op.Version})
			case OpSetData:
				zops = append(zops, &zk.SetDataRequest{Path: op.Path, Data: op.Data, Version: op.Version})
			case OpCheck:
				zops = append(zops, &zk.CheckVersionRequest{Path: op.Path, Version: op.Version})
			}
		}
		zres, zerr := conn.Multi(zops...)
		res := h.multi(js, ops...)
		if (zerr == nil) != (res.Err == nil) {
			t.Fatalf("multi %v: ZooKeeper %v, journal %v", ops, zerr, res.Err)
		}
		for i := range ops {
			zc := zkCode(zres[i].Error)
			jc := res.Ops[i].Err
			if jc == CodeRuntimeInconsistency && zc == CodeSystemError {
				continue // go-zookeeper has no error value for −2
			}
			if zc != jc {
				t.Errorf("multi op %d (%s %s): ZooKeeper %v (%v), journal %v", i, ops[i].Kind, ops[i].Path, zc, zres[i].Error, jc)
			}
			if zc == CodeOK && ops[i].Kind == OpCreate && zres[i].String != res.Ops[i].Path {
				t.Errorf("multi op %d: ZooKeeper named %s, journal %s", i, zres[i].String, res.Ops[i].Path)
			}
			if zc == CodeOK && ops[i].Kind == OpSetData && fromZK(zres[i].Stat) != fromJ(res.Ops[i].Stat) {
				t.Errorf("multi op %d stat\n  zookeeper %+v\n  journal   %+v", i, fromZK(zres[i].Stat), fromJ(res.Ops[i].Stat))
			}
		}
	}
	multi(create("/m", "", ModePersistent), create("/m/q-", "", ModePersistentSequential), setData("/m", "v", 0), check("/m", 1), del("/d/s-0000000002", -1))
	multi(create("/n", "", ModePersistent), create("/x/y", "", ModePersistent), setData("/d", "w", -1)) // NoNode: [0, -101, -2]
	multi(check("/d", 99), create("/n", "", ModePersistent))                                            // BadVersion first
	multi(del("/m", -1))                                                                                // NotEmpty

	// Closing a session deletes its ephemerals and bumps their parent's pzxid.
	conn2.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		kids, _, err := conn.Children("/d")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(kids, "e2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ZooKeeper did not close the second session")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.apply(&CloseSession{Session: js2, Time: h.tick()})
	compareStat("close session", "/d")

	// Finally every node, field by field.
	var walk func(path string)
	walk = func(path string) {
		zdata, zs, err := conn.Get(path)
		if err != nil {
			t.Fatal(err)
		}
		jdata, jst, err := h.f.Get(path, nil)
		if err != nil {
			t.Fatalf("%s: only in ZooKeeper", path)
		}
		if string(zdata) != string(jdata) || fromZK(zs) != fromJ(jst) {
			t.Errorf("%s\n  zookeeper %q %+v\n  journal   %q %+v", path, zdata, fromZK(zs), jdata, fromJ(jst))
		}
		zacl, _, _ := conn.GetACL(path)
		jacl, _, _ := h.f.GetACL(path)
		if fmt.Sprint(zkACL(jacl)) != fmt.Sprint(zacl) {
			t.Errorf("%s ACL: zookeeper %v, journal %v", path, zacl, jacl)
		}
		zkids, _, _ := conn.Children(path)
		jkids, _, _ := h.f.Children(path, nil)
		slices.Sort(zkids)
		if !slices.Equal(zkids, jkids) {
			t.Errorf("%s children: zookeeper %v, journal %v", path, zkids, jkids)
		}
		for _, k := range zkids {
			if path == "/" && k == "zookeeper" {
				continue // /zookeeper/config holds the server's config in ZooKeeper
			}
			walk(znode.Join(path, k))
		}
	}
	walk("/")
}

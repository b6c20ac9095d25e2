package zkserver_test

import (
	"testing"

	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

var world = znode.WorldAnyone()

func create(path string, data []byte, mode zkwire.CreateMode) *zkwire.CreateRequest {
	return &zkwire.CreateRequest{Path: path, Data: data, ACL: world, Flags: mode}
}

// TestDifferentialOpcodes: every opcode a client sends, successes and
// ZooKeeper's error codes, on one session.
func TestDifferentialOpcodes(t *testing.T) {
	differential(t, func(d *side) {
		a := d.open(connectOpts{})
		d.do(a, zkwire.OpCreate, create(d.p(""), []byte("root"), zkwire.ModePersistent))
		d.do(a, zkwire.OpCreate, create(d.p(""), nil, zkwire.ModePersistent))
		d.do(a, zkwire.OpCreate2, create(d.p("eph"), []byte{}, zkwire.ModeEphemeral))
		d.do(a, zkwire.OpCreate, create(d.p("pseq-"), nil, zkwire.ModePersistentSequential))
		d.do(a, zkwire.OpCreate2, create(d.p("eseq-"), []byte("e"), zkwire.ModeEphemeralSequential))
		d.do(a, zkwire.OpCreateContainer, create(d.p("container"), nil, zkwire.ModeContainer))
		d.do(a, zkwire.OpCreateTTL, &zkwire.CreateTTLRequest{Path: d.p("ttl"), Data: []byte("t"), ACL: world, Flags: zkwire.ModePersistentWithTTL, TTL: 3600000})
		d.do(a, zkwire.OpCreateTTL, &zkwire.CreateTTLRequest{Path: d.p("ttlseq-"), ACL: world, Flags: zkwire.ModePersistentSequentialWithTTL, TTL: 60000})
		d.do(a, zkwire.OpCreate, create(d.p("missing/child"), nil, zkwire.ModePersistent))
		d.do(a, zkwire.OpCreate, create(d.p("eph/child"), nil, zkwire.ModePersistent))
		d.do(a, zkwire.OpCreate, &zkwire.CreateRequest{Path: d.p("noacl"), ACL: nil})
		d.do(a, zkwire.OpCreate, &zkwire.CreateRequest{Path: d.p("badacl"), ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "nope", ID: "x"}}}})
		d.do(a, zkwire.OpExists, &zkwire.ExistsRequest{Path: d.p(""), Watch: true})
		d.do(a, zkwire.OpExists, &zkwire.ExistsRequest{Path: d.p("missing"), Watch: true})
		d.do(a, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p(""), Watch: true})
		d.do(a, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p("pseq-0000000001")})
		d.do(a, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p("missing")})
		d.do(a, zkwire.OpGetChildren, &zkwire.GetChildrenRequest{Path: d.p("")})
		d.do(a, zkwire.OpGetChildren2, &zkwire.GetChildrenRequest{Path: d.p(""), Watch: true})
		d.do(a, zkwire.OpGetChildren2, &zkwire.GetChildrenRequest{Path: d.p("missing")})
		d.do(a, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p(""), Data: []byte("root2"), Version: 0})
		d.do(a, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p(""), Data: []byte("x"), Version: 0})
		d.do(a, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p("missing"), Data: []byte("x"), Version: -1})
		d.do(a, zkwire.OpGetACL, &zkwire.GetACLRequest{Path: d.p("")})
		d.do(a, zkwire.OpGetACL, &zkwire.GetACLRequest{Path: d.p("missing")})
		d.do(a, zkwire.OpSetACL, &zkwire.SetACLRequest{Path: d.p("pseq-0000000001"), ACL: world, Version: 0})
		d.do(a, zkwire.OpSetACL, &zkwire.SetACLRequest{Path: d.p("pseq-0000000001"), ACL: world, Version: 0})
		d.do(a, zkwire.OpSync, &zkwire.SyncRequest{Path: d.p("")})
		if d.name == "journal" {
			d.do(a, zkwire.OpCheck, &zkwire.CheckVersionRequest{Path: d.p(""), Version: 1})
		}
		d.do(a, zkwire.OpGetEphemerals, &zkwire.GetEphemeralsRequest{PrefixPath: d.p("")})
		d.do(a, zkwire.OpGetAllChildrenNumber, &zkwire.GetAllChildrenNumberRequest{Path: d.p("")})
		d.do(a, zkwire.OpGetAllChildrenNumber, &zkwire.GetAllChildrenNumberRequest{Path: d.p("missing")})
		d.do(a, zkwire.OpWhoAmI, nil)
		d.do(a, zkwire.OpPing, nil)
		d.do(a, zkwire.OpSASL, &zkwire.SASLRequest{Token: []byte("x")})
		j := "server.9=127.0.0.1:1:2;3"
		d.do(a, zkwire.OpReconfig, &zkwire.ReconfigRequest{JoiningServers: &j, CurConfigID: -1})
		d.do(a, zkwire.OpDelete, &zkwire.DeleteRequest{Path: d.p(""), Version: -1})
		d.do(a, zkwire.OpDelete, &zkwire.DeleteRequest{Path: d.p("eph"), Version: 5})
		d.do(a, zkwire.OpDelete, &zkwire.DeleteRequest{Path: d.p("eph"), Version: 0})
		d.do(a, zkwire.OpDelete, &zkwire.DeleteRequest{Path: d.p("missing"), Version: -1})
		d.do(a, zkwire.OpGetChildren, &zkwire.GetChildrenRequest{Path: d.p("")})
		// An opcode ZooKeeper does not know: UNIMPLEMENTED (the connection
		// is dropped after it, at a moment that varies on ZooKeeper).
		d.do(a, zkwire.OpCode(99), nil)
	})
}

// TestDifferentialMulti: multi success with every op kind, failure at each
// position with ZooKeeper's rollback encoding, multiRead.
func TestDifferentialMulti(t *testing.T) {
	differential(t, func(d *side) {
		a := d.open(connectOpts{})
		d.do(a, zkwire.OpCreate, create(d.p(""), nil, zkwire.ModePersistent))
		d.do(a, zkwire.OpMulti, &zkwire.MultiRequest{Ops: []zkwire.MultiOp{
			{Op: zkwire.OpCreate, Request: create(d.p("m1"), []byte("1"), zkwire.ModePersistent)},
			{Op: zkwire.OpCreate2, Request: create(d.p("m2"), []byte("2"), zkwire.ModePersistent)},
			{Op: zkwire.OpCreateTTL, Request: &zkwire.CreateTTLRequest{Path: d.p("m3"), ACL: world, Flags: zkwire.ModePersistentWithTTL, TTL: 60000}},
			{Op: zkwire.OpCreateContainer, Request: create(d.p("m4"), nil, zkwire.ModeContainer)},
			{Op: zkwire.OpSetData, Request: &zkwire.SetDataRequest{Path: d.p("m1"), Data: []byte("1b"), Version: 0}},
			{Op: zkwire.OpCheck, Request: &zkwire.CheckVersionRequest{Path: d.p("m1"), Version: 1}},
			{Op: zkwire.OpDelete, Request: &zkwire.DeleteRequest{Path: d.p("m1"), Version: -1}},
		}})
		ops := func() []zkwire.MultiOp {
			return []zkwire.MultiOp{
				{Op: zkwire.OpCreate, Request: create(d.p("x"), nil, zkwire.ModePersistent)},
				{Op: zkwire.OpSetData, Request: &zkwire.SetDataRequest{Path: d.p("m2"), Data: []byte("y"), Version: -1}},
				{Op: zkwire.OpCheck, Request: &zkwire.CheckVersionRequest{Path: d.p("m2"), Version: -1}},
				{Op: zkwire.OpDelete, Request: &zkwire.DeleteRequest{Path: d.p("m3"), Version: -1}},
			}
		}
		failures := []zkwire.MultiOp{
			{Op: zkwire.OpCreate, Request: create(d.p("m2"), nil, zkwire.ModePersistent)},           // NodeExists
			{Op: zkwire.OpSetData, Request: &zkwire.SetDataRequest{Path: d.p("nope"), Version: -1}}, // NoNode
			{Op: zkwire.OpCheck, Request: &zkwire.CheckVersionRequest{Path: d.p("m2"), Version: 7}}, // BadVersion
			{Op: zkwire.OpDelete, Request: &zkwire.DeleteRequest{Path: d.p(""), Version: -1}},       // NotEmpty
		}
		for pos := range 4 {
			for _, f := range failures {
				o := ops()
				o[pos] = f
				d.do(a, zkwire.OpMulti, &zkwire.MultiRequest{Ops: o})
			}
		}
		d.do(a, zkwire.OpGetChildren2, &zkwire.GetChildrenRequest{Path: d.p("")})
		d.do(a, zkwire.OpMulti, &zkwire.MultiRequest{})
		d.do(a, zkwire.OpMultiRead, &zkwire.MultiRequest{Ops: []zkwire.MultiOp{
			{Op: zkwire.OpGetData, Request: &zkwire.GetDataRequest{Path: d.p("m2")}},
			{Op: zkwire.OpGetChildren, Request: &zkwire.GetChildrenRequest{Path: d.p("")}},
			{Op: zkwire.OpGetData, Request: &zkwire.GetDataRequest{Path: d.p("missing")}},
		}})
	})
}

// TestDifferentialSequentialAndVersions: sequential names follow the
// parent's create counter across deletes; version and cversion arithmetic.
func TestDifferentialSequentialAndVersions(t *testing.T) {
	differential(t, func(d *side) {
		a := d.open(connectOpts{})
		d.do(a, zkwire.OpCreate, create(d.p(""), nil, zkwire.ModePersistent))
		for range 5 {
			d.do(a, zkwire.OpCreate, create(d.p("seq-"), nil, zkwire.ModePersistentSequential))
		}
		d.do(a, zkwire.OpDelete, &zkwire.DeleteRequest{Path: d.p("seq-0000000001"), Version: -1})
		d.do(a, zkwire.OpDelete, &zkwire.DeleteRequest{Path: d.p("seq-0000000004"), Version: -1})
		d.do(a, zkwire.OpCreate, create(d.p("plain"), nil, zkwire.ModePersistent))
		d.do(a, zkwire.OpCreate2, create(d.p("seq-"), nil, zkwire.ModeEphemeralSequential))
		d.do(a, zkwire.OpExists, &zkwire.ExistsRequest{Path: d.p("")})
		for v := int32(0); v < 3; v++ {
			d.do(a, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p("plain"), Data: []byte{byte(v)}, Version: v})
		}
		d.do(a, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p("plain"), Data: nil, Version: 1})
		d.do(a, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p("plain"), Data: nil, Version: -1})
		d.do(a, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p("plain")})
	})
}

// TestDifferentialACL: digest auth, denial of each operation, getACL
// masking, the auth scheme, ip ACLs, a failed addauth.
func TestDifferentialACL(t *testing.T) {
	alice := znode.ACL{Perms: znode.PermAll, ID: znode.ID{Scheme: "digest", ID: digestOf("alice:secret")}}
	readOnly := znode.ACL{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}}
	differential(t, func(d *side) {
		a := d.open(connectOpts{})
		b := d.open(connectOpts{})
		d.do(a, zkwire.OpAuth, &zkwire.AuthPacket{Scheme: "digest", Auth: []byte("alice:secret")})
		d.do(a, zkwire.OpWhoAmI, nil)
		d.do(a, zkwire.OpCreate, create(d.p(""), nil, zkwire.ModePersistent))
		d.do(a, zkwire.OpCreate, &zkwire.CreateRequest{Path: d.p("private"), Data: []byte("p"), ACL: []znode.ACL{alice, readOnly}})
		d.do(a, zkwire.OpCreate, &zkwire.CreateRequest{Path: d.p("authed"), ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "auth"}}}})
		d.do(b, zkwire.OpCreate, &zkwire.CreateRequest{Path: d.p("noauth"), ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "auth"}}}})
		d.do(a, zkwire.OpGetACL, &zkwire.GetACLRequest{Path: d.p("authed")})
		d.do(a, zkwire.OpCreate, &zkwire.CreateRequest{Path: d.p("secret"), Data: []byte("s"), ACL: []znode.ACL{alice}})
		d.do(a, zkwire.OpCreate, &zkwire.CreateRequest{Path: d.p("local"), ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "127.0.0.0/8"}}}})
		d.do(a, zkwire.OpCreate, &zkwire.CreateRequest{Path: d.p("elsewhere"), ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "10.1.2.3"}}}})
		// b is not alice.
		d.do(b, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p("private"), Watch: true})
		d.do(b, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p("secret"), Watch: true})
		if d.name == "journal" { // see intendedDifferences: exists checks READ
			if r := d.do(b, zkwire.OpExists, &zkwire.ExistsRequest{Path: d.p("secret")}); r.Err != zkwire.CodeNoAuth {
				t.Errorf("exists of an unreadable node: %v, want NoAuth", r.Err)
			}
		}
		d.do(b, zkwire.OpGetChildren, &zkwire.GetChildrenRequest{Path: d.p("secret")})
		d.do(b, zkwire.OpGetACL, &zkwire.GetACLRequest{Path: d.p("private")})
		d.do(b, zkwire.OpGetACL, &zkwire.GetACLRequest{Path: d.p("secret")})
		d.do(b, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p("private"), Data: []byte("x"), Version: -1})
		d.do(b, zkwire.OpCreate, create(d.p("private/kid"), nil, zkwire.ModePersistent))
		d.do(b, zkwire.OpSetACL, &zkwire.SetACLRequest{Path: d.p("private"), ACL: world, Version: -1})
		d.do(b, zkwire.OpMulti, &zkwire.MultiRequest{Ops: []zkwire.MultiOp{
			{Op: zkwire.OpCheck, Request: &zkwire.CheckVersionRequest{Path: d.p("secret"), Version: -1}},
		}})
		d.do(b, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p("local")})
		d.do(b, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p("elsewhere")})
		d.do(b, zkwire.OpGetAllChildrenNumber, &zkwire.GetAllChildrenNumberRequest{Path: d.p("secret")})
		// alice may.
		d.do(a, zkwire.OpGetACL, &zkwire.GetACLRequest{Path: d.p("private")})
		d.do(a, zkwire.OpCreate, create(d.p("private/kid"), nil, zkwire.ModePersistent))
		d.do(a, zkwire.OpDelete, &zkwire.DeleteRequest{Path: d.p("private/kid"), Version: -1})
		d.do(b, zkwire.OpAuth, &zkwire.AuthPacket{Scheme: "digest", Auth: []byte("alice:secret")})
		d.do(b, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p("secret")})
		d.do(b, zkwire.OpAuth, &zkwire.AuthPacket{Scheme: "bogus", Auth: []byte("x")})
	})
}

// TestDifferentialWatches: one-shot and persistent watches fired by another
// session's writes, removeWatches and checkWatches, and setWatches after a
// reconnect firing for what the client missed.
func TestDifferentialWatches(t *testing.T) {
	differential(t, func(d *side) {
		a := d.open(connectOpts{})
		b := d.open(connectOpts{})
		d.do(a, zkwire.OpCreate, create(d.p(""), nil, zkwire.ModePersistent))
		d.do(a, zkwire.OpCreate, create(d.p("n"), []byte("v"), zkwire.ModePersistent))
		d.do(a, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p("n"), Watch: true})
		d.do(a, zkwire.OpExists, &zkwire.ExistsRequest{Path: d.p("later"), Watch: true})
		d.do(a, zkwire.OpGetChildren, &zkwire.GetChildrenRequest{Path: d.p(""), Watch: true})
		d.do(b, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p("n"), Data: []byte("w"), Version: -1})
		d.wait(a, 1)
		d.do(b, zkwire.OpCreate, create(d.p("later"), nil, zkwire.ModePersistent))
		d.wait(a, 2)
		d.do(a, zkwire.OpAddWatch, &zkwire.AddWatchRequest{Path: d.p(""), Mode: zkwire.AddWatchPersistentRecursive})
		d.do(a, zkwire.OpAddWatch, &zkwire.AddWatchRequest{Path: d.p("n"), Mode: zkwire.AddWatchPersistent})
		d.do(b, zkwire.OpCreate, create(d.p("later/deep"), nil, zkwire.ModePersistent))
		d.wait(a, 1)
		d.do(b, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p("n"), Data: []byte("x"), Version: -1})
		d.wait(a, 1)
		d.do(b, zkwire.OpDelete, &zkwire.DeleteRequest{Path: d.p("later/deep"), Version: -1})
		d.wait(a, 1)
		// The session's own write: its events come before its reply.
		d.do(a, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p("n"), Data: []byte("y"), Version: -1})
		d.do(a, zkwire.OpCheckWatches, &zkwire.CheckWatchesRequest{Path: d.p("n"), Type: zkwire.WatcherPersistent})
		d.do(a, zkwire.OpRemoveWatches, &zkwire.RemoveWatchesRequest{Path: d.p("n"), Type: zkwire.WatcherAny})
		d.do(a, zkwire.OpCheckWatches, &zkwire.CheckWatchesRequest{Path: d.p("n"), Type: zkwire.WatcherPersistent})
		d.do(a, zkwire.OpRemoveWatches, &zkwire.RemoveWatchesRequest{Path: d.p("n"), Type: zkwire.WatcherData})
		d.do(a, zkwire.OpRemoveWatches, &zkwire.RemoveWatchesRequest{Path: d.p(""), Type: zkwire.WatcherPersistentRecursive})
		d.do(a, zkwire.OpCheckWatches, &zkwire.CheckWatchesRequest{Path: d.p(""), Type: zkwire.WatcherAny})

		// setWatches after a reconnect: c saw the state at zxid r, then b
		// changes things, and a fresh connection re-registers c's watches.
		c := d.open(connectOpts{})
		d.do(c, zkwire.OpGetData, &zkwire.GetDataRequest{Path: d.p("n")})
		rel := d.s[c].lastZxid
		d.do(b, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p("n"), Data: []byte("missed"), Version: -1})
		d.do(b, zkwire.OpCreate, create(d.p("born"), nil, zkwire.ModePersistent))
		d.do(b, zkwire.OpDelete, &zkwire.DeleteRequest{Path: d.p("later"), Version: -1})
		e := d.open(connectOpts{})
		d.do(e, zkwire.OpSetWatches, &zkwire.SetWatchesRequest{RelativeZxid: rel,
			DataWatches:  []string{d.p("n"), d.p("later"), d.p("")},
			ExistWatches: []string{d.p("born"), d.p("unborn")},
			ChildWatches: []string{d.p(""), d.p("later"), d.p("born")}})
		d.do(e, zkwire.OpSetWatches2, &zkwire.SetWatches2Request{RelativeZxid: rel,
			PersistentWatches: []string{d.p("born")}, PersistentRecursiveWatches: []string{d.p("")}})
		d.do(b, zkwire.OpCreate, create(d.p("unborn"), nil, zkwire.ModePersistent))
		d.wait(e, 1)
		d.do(b, zkwire.OpSetData, &zkwire.SetDataRequest{Path: d.p(""), Data: []byte("r"), Version: -1})
		d.wait(e, 1)
	})
}

// TestDifferentialSessions: ephemerals across close and expiry, watches
// firing for them, resume with the password, expired sessions told so.
func TestDifferentialSessions(t *testing.T) {
	differential(t, func(d *side) {
		a := d.open(connectOpts{})
		d.do(a, zkwire.OpCreate, create(d.p(""), nil, zkwire.ModePersistent))
		b := d.open(connectOpts{timeout: 4000})
		d.do(b, zkwire.OpCreate, create(d.p("eph-b"), nil, zkwire.ModeEphemeral))
		d.do(b, zkwire.OpCreate2, create(d.p("seq-"), nil, zkwire.ModeEphemeralSequential))
		d.do(b, zkwire.OpGetEphemerals, &zkwire.GetEphemeralsRequest{})
		// a reads on another server what b wrote: neither ZooKeeper nor the
		// journal promises that without a sync first.
		d.do(a, zkwire.OpSync, &zkwire.SyncRequest{Path: d.p("")})
		d.do(a, zkwire.OpExists, &zkwire.ExistsRequest{Path: d.p("eph-b"), Watch: true})
		d.do(a, zkwire.OpGetChildren, &zkwire.GetChildrenRequest{Path: d.p(""), Watch: true})
		// Resume b on another connection (another server): same session.
		id, pw := d.s[b].id, d.s[b].passwd
		d.s[b].close()
		b2 := len(d.s)
		s := mustDialRaw(d.t, d.addrs[(b+1)%len(d.addrs)], connectOpts{session: id, passwd: pw, lastZxid: d.s[b].lastZxid, timeout: 4000})
		d.s = append(d.s, s)
		d.log("resumed same=%t", s.id == id)
		d.do(b2, zkwire.OpGetEphemerals, &zkwire.GetEphemeralsRequest{PrefixPath: d.p("")})
		// A wrong password is refused like an expired session.
		_, resp, err := dialRaw(d.t, d.addrs[0], connectOpts{session: id, passwd: make([]byte, 16)})
		d.log("wrong password: err=%v session=%d timeout=%d", err, resp.SessionID, resp.TimeOut)
		// b's owner goes silent: the session expires and its ephemerals go.
		d.s[b2].close()
		d.waitUnordered(a, 2)
		d.do(a, zkwire.OpGetChildren, &zkwire.GetChildrenRequest{Path: d.p("")})
		_, resp, err = dialRaw(d.t, d.addrs[0], connectOpts{session: id, passwd: pw})
		d.log("expired: err=%v session=%d timeout=%d", err, resp.SessionID, resp.TimeOut)
		// closeSession deletes at once.
		c := d.open(connectOpts{})
		d.do(c, zkwire.OpCreate, create(d.p("eph-c"), nil, zkwire.ModeEphemeral))
		d.do(a, zkwire.OpExists, &zkwire.ExistsRequest{Path: d.p("eph-c"), Watch: true})
		d.do(c, zkwire.OpCloseSession, nil)
		d.wait(a, 1)
		d.do(a, zkwire.OpExists, &zkwire.ExistsRequest{Path: d.p("eph-c")})
	})
}

// TestDifferentialContainersAndTTL: an emptied container and an expired TTL
// node are deleted by the server.
func TestDifferentialContainersAndTTL(t *testing.T) {
	differential(t, func(d *side) {
		a := d.open(connectOpts{})
		d.do(a, zkwire.OpCreate, create(d.p(""), nil, zkwire.ModePersistent))
		d.do(a, zkwire.OpCreateContainer, create(d.p("box"), nil, zkwire.ModeContainer))
		d.do(a, zkwire.OpCreateContainer, create(d.p("never-used"), nil, zkwire.ModeContainer))
		d.do(a, zkwire.OpCreate, create(d.p("box/item"), nil, zkwire.ModePersistent))
		d.do(a, zkwire.OpCreateTTL, &zkwire.CreateTTLRequest{Path: d.p("short"), ACL: world, Flags: zkwire.ModePersistentWithTTL, TTL: 100})
		d.do(a, zkwire.OpExists, &zkwire.ExistsRequest{Path: d.p("box"), Watch: true})
		d.do(a, zkwire.OpExists, &zkwire.ExistsRequest{Path: d.p("short"), Watch: true})
		d.do(a, zkwire.OpDelete, &zkwire.DeleteRequest{Path: d.p("box/item"), Version: -1})
		d.waitUnordered(a, 2)
		d.do(a, zkwire.OpGetChildren, &zkwire.GetChildrenRequest{Path: d.p("")})
	})
}

func sortEvents(evs []zkwire.WatcherEvent) []zkwire.WatcherEvent {
	out := append([]zkwire.WatcherEvent(nil), evs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].Path < out[i].Path {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestTopLevelCheck is the journal's answer to a check outside a multi, which
// ZooKeeper 3.8 never answers (see intendedDifferences).
func TestTopLevelCheck(t *testing.T) {
	s := mustDialRaw(t, shared.addrs()[0], connectOpts{})
	p := testPath(t)
	if r := s.call(zkwire.OpCreate, create(p, []byte("x"), zkwire.ModePersistent)); r.Err != zkwire.CodeOK {
		t.Fatal(r.Err)
	}
	r := s.call(zkwire.OpCheck, &zkwire.CheckVersionRequest{Path: p, Version: 0})
	if r.Err != zkwire.CodeOK || r.Body.(*zkwire.SetDataResponse).Stat.DataLength != 1 {
		t.Fatalf("check: %+v", r)
	}
	if r := s.call(zkwire.OpCheck, &zkwire.CheckVersionRequest{Path: p, Version: 3}); r.Err != zkwire.CodeBadVersion {
		t.Fatalf("check with a wrong version: %v", r.Err)
	}
}

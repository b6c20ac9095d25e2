package zkserver_test

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// connect opens a go-zookeeper session to servers and waits until it has one.
func connect(t testing.TB, servers []string) (*zk.Conn, <-chan zk.Event) {
	t.Helper()
	return connectTimeout(t, servers, 10*time.Second)
}

func connectTimeout(t testing.TB, servers []string, timeout time.Duration) (*zk.Conn, <-chan zk.Event) {
	t.Helper()
	c, ev, err := zk.Connect(servers, timeout, zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	deadline := time.After(30 * time.Second)
	for c.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-deadline:
			t.Fatalf("no session with %v (state %v)", servers, c.State())
		}
	}
	return c, ev
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func testPath(t testing.TB) string {
	return "/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
}

func TestGoZookeeperSmoke(t *testing.T) {
	c, _ := connect(t, shared.addrs()[1:2])
	p := testPath(t)
	if _, err := c.Create(p, []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	data, st, err := c.Get(p)
	if err != nil || string(data) != "x" || st.Version != 0 {
		t.Fatalf("get: %q %+v %v", data, st, err)
	}
	if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("second create: %v", err)
	}
	_, _, w, err := c.GetW(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(p, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w:
		if ev.Type != zk.EventNodeDataChanged || ev.Path != p {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
	if err := c.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
}

// TestGoZookeeperAPI runs every method go-zookeeper's Conn exposes, its Lock
// recipe and its four-letter-word helpers against a real ZooKeeper 3.8 and
// against the journal, and compares the transcripts: paths, data, errors,
// versions, ephemeral owners, watch events and lock order must be the same.
func TestGoZookeeperAPI(t *testing.T) {
	base := uniquePath(t)
	zkLog := goZKTranscript(t, ensemble.Hosts(), base)
	jLog := goZKTranscript(t, shared.addrs(), base)
	if !slices.Equal(zkLog, jLog) {
		t.Errorf("go-zookeeper transcripts differ\n%s", sideBySide(zkLog, jLog))
	}
	if len(jLog) < 60 {
		t.Fatalf("only %d transcript lines: the script stopped early\n%s", len(jLog), strings.Join(jLog, "\n"))
	}

	// The four-letter-word helpers parse the same from both.
	zkOK, jOK := zk.FLWRuok(ensemble.Hosts(), 10*time.Second), zk.FLWRuok(shared.addrs(), 10*time.Second)
	if !slices.Equal(zkOK, jOK) || !slices.Contains(jOK, true) {
		t.Errorf("FLWRuok: zookeeper %v, journal %v", zkOK, jOK)
	}
	// FLWSrvr parses ZooKeeper 3.4's "built on MM/DD/YYYY" only; 3.8's srvr
	// (and so the journal's, which prints 3.8's form) fails it the same way.
	zs, zsOK := zk.FLWSrvr(ensemble.Hosts()[:1], 10*time.Second)
	js, jsOK := zk.FLWSrvr(shared.addrs()[:1], 10*time.Second)
	if zsOK != jsOK || fmt.Sprint(zs[0].Error) != fmt.Sprint(js[0].Error) {
		t.Errorf("FLWSrvr: zookeeper ok=%v %v, journal ok=%v %v", zsOK, zs[0].Error, jsOK, js[0].Error)
	}
	// FLWCons parses every connection with a session, on both.
	for name, hosts := range map[string][]string{"zookeeper": ensemble.Hosts(), "journal": shared.addrs()} {
		c, _ := connect(t, hosts[:1])
		if _, _, err := c.Exists("/"); err != nil {
			t.Fatal(err)
		}
		cons, _ := zk.FLWCons(hosts[:1], 10*time.Second)
		found := false
		for _, cl := range cons[0].Clients {
			if cl.SessionID == c.SessionID() {
				found = cl.LastOperation == "EXIS" && cl.Timeout > 0
			}
		}
		if !found {
			t.Errorf("FLWCons on %s: session %#x not listed with lop EXIS (%+v)", name, c.SessionID(), cons[0])
		}
	}
}

func sideBySide(a, b []string) string {
	var sb strings.Builder
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		mark := "   "
		if x != y {
			mark = "!= "
		}
		fmt.Fprintf(&sb, "%s%-70s | %s\n", mark, x, y)
	}
	return sb.String()
}

// goZKTranscript drives the go-zookeeper API against hosts and returns what
// it saw, with the values that legitimately differ between servers (zxids,
// times, session ids, the protected-node GUID) left out or named.
func goZKTranscript(t *testing.T, hosts []string, base string) []string {
	t.Helper()
	var out []string
	log := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	rel := func(p string) string { return strings.TrimPrefix(p, base) }
	errName := func(err error) string {
		if err == nil {
			return "ok"
		}
		return err.Error()
	}
	c1, ev1 := connect(t, hosts)
	c2, _ := connect(t, hosts)
	go func() {
		for range ev1 {
		}
	}()
	owner := func(st *zk.Stat) string {
		switch st.EphemeralOwner {
		case 0:
			return "none"
		case c1.SessionID():
			return "c1"
		case c2.SessionID():
			return "c2"
		}
		return "other"
	}
	stat := func(st *zk.Stat) string {
		if st == nil {
			return "nil"
		}
		return fmt.Sprintf("v=%d cv=%d av=%d owner=%s len=%d kids=%d", st.Version, st.Cversion, st.Aversion, owner(st), st.DataLength, st.NumChildren)
	}
	wait := func(name string, ch <-chan zk.Event) {
		select {
		case e := <-ch:
			log("%s: event %v %s", name, e.Type, rel(e.Path))
		case <-time.After(30 * time.Second):
			log("%s: no event", name)
		}
	}
	acl := zk.WorldACL(zk.PermAll)

	p, err := c1.Create(base, []byte("root"), zk.FlagPersistent, acl)
	log("create base: %q %s", rel(p), errName(err))
	p, err = c1.Create(base+"/p", []byte("a"), zk.FlagPersistent, acl)
	log("create p: %q %s", rel(p), errName(err))
	_, err = c1.Create(base+"/p", nil, zk.FlagPersistent, acl)
	log("create p again: %s", errName(err))
	_, err = c1.Create(base+"/missing/child", nil, zk.FlagPersistent, acl)
	log("create under a missing parent: %s", errName(err))
	_, err = c1.Create("relative", nil, zk.FlagPersistent, acl)
	log("create a relative path: %s", errName(err))
	for range 3 {
		p, err = c1.Create(base+"/s-", nil, zk.FlagSequence, acl)
		log("create sequential: %q %s", rel(p), errName(err))
	}
	p, err = c1.Create(base+"/e", []byte("eph"), zk.FlagEphemeral, acl)
	log("create ephemeral: %q %s", rel(p), errName(err))
	_, err = c1.Create(base+"/e/child", nil, zk.FlagPersistent, acl)
	log("create under an ephemeral: %s", errName(err))
	p, err = c2.Create(base+"/es-", nil, zk.FlagEphemeralSequential, acl)
	log("create ephemeral sequential (c2): %q %s", rel(p), errName(err))
	p, err = c1.CreateContainer(base+"/box", nil, zk.FlagContainer, acl)
	log("create container: %q %s", rel(p), errName(err))
	_, err = c1.CreateContainer(base+"/box2", nil, zk.FlagPersistent, acl)
	log("create container without the flag: %s", errName(err))
	p, err = c1.Create(base+"/box/item", nil, zk.FlagPersistent, acl)
	log("create in container: %q %s", rel(p), errName(err))
	p, err = c1.CreateTTL(base+"/ttl", []byte("t"), zk.FlagTTL, acl, time.Hour)
	log("create TTL: %q %s", rel(p), errName(err))
	p, err = c1.CreateTTL(base+"/ttls-", nil, zk.FlagPersistentSequentialWithTTL, acl, time.Hour)
	log("create sequential TTL: %q %s", rel(p), errName(err))
	_, err = c1.CreateTTL(base+"/ttl0", nil, zk.FlagTTL, acl, 0)
	log("create TTL 0: %s", errName(err))
	p, err = c1.CreateProtectedEphemeralSequential(base+"/prot-", []byte("x"), acl)
	log("create protected: %s %s", regexp.MustCompile(`_c_[0-9a-f]{32}-`).ReplaceAllString(rel(p), "_c_GUID-"), errName(err))

	ok, st, err := c1.Exists(base + "/e")
	log("exists e: %v %s %s", ok, stat(st), errName(err))
	ok, st, err = c1.Exists(base + "/nope")
	log("exists nope: %v %s %s", ok, stat(st), errName(err))
	data, st, err := c1.Get(base + "/p")
	log("get p: %q %s %s", data, stat(st), errName(err))
	_, _, err = c1.Get(base + "/nope")
	log("get nope: %s", errName(err))
	st, err = c1.Set(base+"/p", []byte("b"), 0)
	log("set p v0: %s %s", stat(st), errName(err))
	_, err = c1.Set(base+"/p", []byte("c"), 0)
	log("set p v0 again: %s", errName(err))
	kids, st, err := c1.Children(base)
	slices.Sort(kids)
	for i, k := range kids {
		kids[i] = regexp.MustCompile(`_c_[0-9a-f]{32}-`).ReplaceAllString(k, "_c_GUID-")
	}
	log("children: %v %s %s", kids, stat(st), errName(err))

	// Watches, fired by the other session.
	_, _, w, err := c1.GetW(base + "/p")
	log("getW p: %s", errName(err))
	_, err = c2.Set(base+"/p", []byte("by c2"), -1)
	log("c2 set p: %s", errName(err))
	wait("data watch", w)
	ok, _, w, err = c1.ExistsW(base + "/new")
	log("existsW new: %v %s", ok, errName(err))
	_, err = c2.Create(base+"/new", nil, zk.FlagPersistent, acl)
	log("c2 create new: %s", errName(err))
	wait("exist watch", w)
	_, _, w, err = c1.ChildrenW(base + "/box")
	log("childrenW box: %s", errName(err))
	_, err = c2.Create(base+"/box/more", nil, zk.FlagPersistent, acl)
	log("c2 create box/more: %s", errName(err))
	wait("child watch", w)
	_, _, w, err = c1.GetW(base + "/new")
	log("getW new: %s", errName(err))
	err = c2.Delete(base+"/new", -1)
	log("c2 delete new: %s", errName(err))
	wait("delete watch", w)

	// ACLs and auth.
	got, st, err := c1.GetACL(base + "/p")
	log("getACL p: %v %s %s", got, stat(st), errName(err))
	st, err = c1.SetACL(base+"/p", zk.WorldACL(zk.PermRead|zk.PermWrite), 0)
	log("setACL p v0: %s %s", stat(st), errName(err))
	_, err = c1.SetACL(base+"/p", acl, 0)
	log("setACL p v0 again: %s", errName(err))
	err = c1.AddAuth("digest", []byte("alice:secret"))
	log("addAuth: %s", errName(err))
	p, err = c1.Create(base+"/mine", []byte("hers"), zk.FlagPersistent, zk.DigestACL(zk.PermAll, "alice", "secret"))
	log("create with a digest ACL: %q %s", rel(p), errName(err))
	data, _, err = c1.Get(base + "/mine")
	log("alice gets mine: %q %s", data, errName(err))
	// c2 may be on another server: sync so that it sees c1's create (a
	// ZooKeeper follower may lag too; the window is smaller there).
	_, err = c2.Sync(base)
	log("c2 sync: %s", errName(err))
	_, _, err = c2.Get(base + "/mine")
	log("c2 gets mine: %s", errName(err))
	err = c2.AddAuth("digest", []byte("alice:wrong"))
	log("c2 addAuth with a wrong password: %s", errName(err))
	_, _, err = c2.Get(base + "/mine")
	log("c2 gets mine after it: %s", errName(err))
	got, _, err = c2.GetACL(base + "/mine")
	log("c2 getACL mine: %v %s", got, errName(err))
	p, err = c1.Create(base+"/authacl", nil, zk.FlagPersistent, zk.AuthACL(zk.PermAll))
	log("create with an auth ACL: %q %s", rel(p), errName(err))
	got, _, err = c1.GetACL(base + "/authacl")
	log("getACL authacl: %v %s", got, errName(err))
	_, err = c2.Create(base+"/authacl2", nil, zk.FlagPersistent, zk.AuthACL(zk.PermAll))
	log("c2 create with an auth ACL and only a failed digest: %s", errName(err))

	// Sync, multi.
	p, err = c1.Sync(base)
	log("sync: %q %s", rel(p), errName(err))
	res, err := c1.Multi(
		&zk.CreateRequest{Path: base + "/m1", Data: []byte("1"), Acl: acl},
		&zk.SetDataRequest{Path: base + "/m1", Data: []byte("2"), Version: 0},
		&zk.CheckVersionRequest{Path: base + "/m1", Version: 1},
		&zk.DeleteRequest{Path: base + "/ttl", Version: -1},
	)
	log("multi: %s", errName(err))
	for i, r := range res {
		log("multi result %d: %q %s %s", i, rel(r.String), stat(r.Stat), errName(r.Error))
	}
	res, err = c1.Multi(
		&zk.CreateRequest{Path: base + "/m2", Acl: acl},
		&zk.CheckVersionRequest{Path: base + "/m1", Version: 7},
		&zk.DeleteRequest{Path: base + "/m1", Version: -1},
	)
	log("failing multi: %s", errName(err))
	for i, r := range res {
		log("failing multi result %d: %s", i, errName(r.Error))
	}
	ok, _, err = c1.Exists(base + "/m2")
	log("m2 after the failed multi: %v %s", ok, errName(err))

	// Deletes.
	err = c1.Delete(base+"/s-0000000000", 5)
	log("delete with a wrong version: %s", errName(err))
	err = c1.Delete(base+"/s-0000000000", 0)
	log("delete: %s", errName(err))
	err = c1.Delete(base+"/box", -1)
	log("delete a node with children: %s", errName(err))
	err = c1.Delete(base+"/nope", -1)
	log("delete nope: %s", errName(err))
	p, err = c1.Create(base+"/s-", nil, zk.FlagSequence, acl)
	log("sequential after a delete: %q %s", rel(p), errName(err))

	// Reconfig is off, as on a ZooKeeper with reconfigEnabled=false.
	_, err = c1.IncrementalReconfig(nil, []string{"3"}, -1)
	log("incremental reconfig: %s", errName(err))
	_, err = c1.Reconfig([]string{"server.1=127.0.0.1:1:2:participant;3"}, -1)
	log("reconfig: %s", errName(err))

	// The Lock recipe: c2 waits until c1 releases.
	l1, l2 := zk.NewLock(c1, base+"/lock", acl), zk.NewLock(c2, base+"/lock", acl)
	log("c1 lock: %s", errName(l1.LockWithData([]byte("c1"))))
	log("c1 lock again: %s", errName(l1.Lock()))
	got2 := make(chan error, 1)
	go func() { got2 <- l2.Lock() }()
	select {
	case err := <-got2:
		log("c2 locked while c1 held the lock: %s", errName(err))
	case <-time.After(500 * time.Millisecond):
		log("c2 waits")
	}
	log("c1 unlock: %s", errName(l1.Unlock()))
	select {
	case err := <-got2:
		log("c2 lock: %s", errName(err))
	case <-time.After(30 * time.Second):
		log("c2 never got the lock")
	}
	log("c2 unlock: %s", errName(l2.Unlock()))
	log("c2 unlock again: %s", errName(l2.Unlock()))

	// Session state, then c2 closes: its ephemerals go.
	log("c1 state %v, server known %v, session set %v", c1.State(), slices.Contains(hosts, c1.Server()), c1.SessionID() != 0)
	ok, _, w, err = c1.ExistsW(base + "/es-0000000003")
	log("existsW c2's ephemeral: %v %s", ok, errName(err))
	c2.Close()
	wait("after c2 closed", w)
	kids, _, err = c1.Children(base)
	slices.Sort(kids)
	for i, k := range kids {
		kids[i] = regexp.MustCompile(`_c_[0-9a-f]{32}-`).ReplaceAllString(k, "_c_GUID-")
	}
	log("children at the end: %v %s", kids, errName(err))
	return out
}

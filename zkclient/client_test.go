package zkclient

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

func nodeEvent(typ zkwire.EventType, path string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == typ && ev.Path == path }
}

// nodeEvents keeps the node events of evs, rendered.
func nodeEvents(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type != zkwire.EventNone {
			out = append(out, eventString(ev))
		}
	}
	return out
}

// TestClientReadsWatchesAuth watches a subtree and checks the events of
// creates, setData and delete under it, the reads (nil against empty data,
// ACLs, children, a missing node), pipelined calls, auth, a refused auth
// (the server closes the connection: the client resumes the session and
// keeps its credentials and watch) and Close.
func TestClientReadsWatchesAuth(t *testing.T) {
	t.Parallel()
	hosts := ensemble.Hosts()
	root := freshRoot(t)
	w := independent(t, hosts)
	c := dial(t, Config{Hosts: hosts, Retry: Resend, SessionTimeout: 6 * time.Second})
	ctx := t.Context()
	if err := c.AddWatch(ctx, root, zkwire.AddWatchPersistentRecursive); err != nil {
		t.Fatal(err)
	}
	sid := c.SessionID()

	mustCreate(t, w, root, nil, 0, nil)
	mustCreate(t, w, root+"/a", []byte("1"), 0, nil)
	if _, err := w.Set(root+"/a", []byte("2"), -1); err != nil {
		t.Fatal(err)
	}
	if err := w.Delete(root+"/a", -1); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, w, root+"/b", []byte{}, 0, nil)
	evs := awaitEvents(t, c, 10*time.Second, nodeEvent(zkwire.EventNodeCreated, root+"/b"))
	want := []string{"NodeCreated " + root, "NodeCreated " + root + "/a", "NodeDataChanged " + root + "/a",
		"NodeDeleted " + root + "/a", "NodeCreated " + root + "/b"}
	if got := nodeEvents(evs); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}

	data, st, err := c.GetData(ctx, root)
	if err != nil || data != nil || st.NumChildren != 1 {
		t.Errorf("GetData %s: %q (nil %v) %+v %v", root, data, data == nil, st, err)
	}
	data, _, err = c.GetData(ctx, root+"/b")
	if err != nil || data == nil || len(data) != 0 {
		t.Errorf("GetData of empty data: %q (nil %v) %v", data, data == nil, err)
	}
	acl, _, err := c.GetACL(ctx, root+"/b")
	if err != nil || !znode.EqualACLs(acl, znode.WorldAnyone()) {
		t.Errorf("GetACL: %v %v", acl, err)
	}
	kids, _, err := c.GetChildren(ctx, root)
	if err != nil || !slices.Equal(kids, []string{"b"}) {
		t.Errorf("GetChildren: %q %v", kids, err)
	}
	if _, ok, err := c.Exists(ctx, root+"/a"); ok || err != nil {
		t.Errorf("Exists of a deleted node: %v %v", ok, err)
	}
	if _, _, err := c.GetData(ctx, root+"/a"); !errors.Is(err, ErrNoNode) || !strings.Contains(err.Error(), root+"/a") {
		t.Errorf("GetData of a deleted node: %v, want NoNode naming the path", err)
	}
	if err := c.Sync(ctx, root); err != nil {
		t.Errorf("Sync: %v", err)
	}

	// Pipelined calls from many goroutines, and a batch in one write.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			if st, ok, err := c.Exists(ctx, root+"/b"); err != nil || !ok || st.Czxid == 0 {
				errs <- fmt.Errorf("%+v %v %v", st, ok, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Exists: %v", err)
	}
	calls := c.Send(Request{zkwire.OpGetData, &zkwire.GetDataRequest{Path: root + "/b"}},
		Request{zkwire.OpGetACL, &zkwire.GetACLRequest{Path: root + "/b"}},
		Request{zkwire.OpGetData, &zkwire.GetDataRequest{Path: root + "/nope"}})
	for i, want := range []zkwire.Code{zkwire.CodeOK, zkwire.CodeOK, zkwire.CodeNoNode} {
		if _, err := calls[i].Wait(ctx); zkwire.CodeOf(err) != want || calls[i].Zxid() == 0 {
			t.Errorf("batched call %d: %v (zxid %#x), want %v", i, err, calls[i].Zxid(), want)
		}
	}

	// A node only a digest identity can read.
	mustCreate(t, w, root+"/secret", []byte("s"), 0, zk.DigestACL(zk.PermAll, "user", "pw"))
	if _, _, err := c.GetData(ctx, root+"/secret"); !errors.Is(err, ErrNoAuth) {
		t.Errorf("GetData without auth: %v, want NoAuth", err)
	}
	if err := c.AddAuth(ctx, "digest", []byte("user:pw")); err != nil {
		t.Fatal(err)
	}
	if data, _, err := c.GetData(ctx, root+"/secret"); err != nil || string(data) != "s" {
		t.Errorf("GetData with auth: %q %v", data, err)
	}
	who, err := c.WhoAmI(ctx)
	if err != nil || !slices.ContainsFunc(who, func(ci zkwire.ClientInfo) bool { return ci.AuthScheme == "digest" && ci.User == "user" }) {
		t.Errorf("WhoAmI: %+v %v", who, err)
	}

	// A refused credential: ZooKeeper answers AuthFailed and closes the
	// connection; the client resumes the session, authenticated as before,
	// with its watch.
	if err := c.AddAuth(ctx, "nosuchscheme", []byte("x")); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("AddAuth with an unknown scheme: %v, want ErrAuthFailed", err)
	}
	evs = awaitEvents(t, c, 20*time.Second, connState(int32(zkwire.StateSyncConnected)))
	if last := evs[len(evs)-1]; !last.Missed || last.NewSession || c.SessionID() != sid {
		t.Errorf("after the refused auth: %q, session %#x (was %#x)", eventString(last), c.SessionID(), sid)
	}
	if data, _, err := c.GetData(ctx, root+"/secret"); err != nil || string(data) != "s" {
		t.Errorf("GetData after the reconnect: %q %v", data, err)
	}
	mustCreate(t, w, root+"/c", nil, 0, nil)
	awaitEvents(t, c, 10*time.Second, nodeEvent(zkwire.EventNodeCreated, root+"/c"))

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.GetData(ctx, root); !errors.Is(err, ErrClosed) {
		t.Errorf("GetData after Close: %v, want ErrClosed", err)
	}
	for range c.Events() {
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestClientWrites creates nodes of every mode and checks them with an
// independent client, and runs setData, setACL, delete, multi (applied, and
// failed with its rollback) and multiRead.
func TestClientWrites(t *testing.T) {
	t.Parallel()
	hosts := ensemble.Hosts()
	root := freshRoot(t)
	w := independent(t, hosts)
	c := dial(t, Config{Hosts: hosts, Retry: Resend})
	ctx := t.Context()
	open := znode.WorldAnyone()

	if p, st, err := c.Create(ctx, root, nil, open, zkwire.ModePersistent); err != nil || p != root || st.Czxid == 0 {
		t.Fatalf("Create %s: %q %+v %v", root, p, st, err)
	}
	if _, _, err := c.Create(ctx, root, nil, open, zkwire.ModePersistent); !errors.Is(err, ErrNodeExists) {
		t.Errorf("Create again: %v, want NodeExists", err)
	}
	modes := []struct {
		mode zkwire.CreateMode
		ttl  time.Duration
	}{
		{zkwire.ModeEphemeral, 0}, {zkwire.ModePersistentSequential, 0}, {zkwire.ModeEphemeralSequential, 0},
		{zkwire.ModeContainer, 0}, {zkwire.ModePersistentWithTTL, time.Hour}, {zkwire.ModePersistentSequentialWithTTL, time.Hour},
	}
	var ephemerals []string
	for i, m := range modes {
		path := fmt.Sprintf("%s/m%d-", root, i)
		var p string
		var st znode.WireStat
		var err error
		if m.ttl > 0 {
			p, st, err = c.CreateTTL(ctx, path, []byte(m.mode.String()), open, m.mode, m.ttl)
		} else {
			p, st, err = c.Create(ctx, path, []byte(m.mode.String()), open, m.mode)
		}
		if err != nil {
			t.Fatalf("create %v: %v", m.mode, err)
		}
		if m.mode.Sequential() != (len(p) == len(path)+10) {
			t.Errorf("%v: path %q", m.mode, p)
		}
		data, zst, err := w.Get(p)
		if err != nil || string(data) != m.mode.String() || zst.Czxid != st.Czxid || zst.Mzxid != st.Mzxid {
			t.Errorf("%v: the independent client reads %q %+v %v, the create said %+v", m.mode, data, zst, err, st)
		}
		if m.mode.Ephemeral() {
			ephemerals = append(ephemerals, p)
			if st.EphemeralOwner != c.SessionID() {
				t.Errorf("%v: owner %#x, session %#x", m.mode, st.EphemeralOwner, c.SessionID())
			}
		}
	}
	if got, err := c.GetEphemerals(ctx, root); err != nil || !slices.Equal(sortedCopy(got), sortedCopy(ephemerals)) {
		t.Errorf("GetEphemerals: %q %v, want %q", got, err, ephemerals)
	}
	if n, err := c.GetAllChildrenNumber(ctx, root); err != nil || n != len(modes) {
		t.Errorf("GetAllChildrenNumber: %d %v, want %d", n, err, len(modes))
	}
	if _, _, err := c.Create(ctx, root+"/ttl", nil, open, zkwire.ModePersistentWithTTL); err == nil {
		t.Error("Create with a TTL mode and no TTL succeeded")
	}

	node := root + "/n"
	if _, _, err := c.Create(ctx, node, []byte("0"), open, zkwire.ModePersistent); err != nil {
		t.Fatal(err)
	}
	st, err := c.SetData(ctx, node, []byte("1"), 0)
	if err != nil || st.Version != 1 {
		t.Fatalf("SetData: %+v %v", st, err)
	}
	if _, err := c.SetData(ctx, node, []byte("x"), 0); !errors.Is(err, ErrBadVersion) {
		t.Errorf("SetData at a stale version: %v, want BadVersion", err)
	}
	acl := []znode.ACL{{Perms: znode.PermRead | znode.PermWrite | znode.PermDelete | znode.PermAdmin, ID: znode.ID{Scheme: "world", ID: "anyone"}}}
	if st, err := c.SetACL(ctx, node, acl, -1); err != nil || st.Aversion != 1 {
		t.Fatalf("SetACL: %+v %v", st, err)
	}
	if zacl, _, err := w.GetACL(node); err != nil || len(zacl) != 1 || zacl[0].Perms != int32(acl[0].Perms) {
		t.Errorf("the independent client reads the ACL %+v %v", zacl, err)
	}
	if err := c.Delete(ctx, root, -1); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Delete of a parent: %v, want NotEmpty", err)
	}
	if err := c.Delete(ctx, node, 1); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := w.Exists(node); ok || err != nil {
		t.Errorf("deleted node: exists %v %v", ok, err)
	}

	// A multi that applies, with its results.
	res, err := c.Multi(ctx,
		CreateOp(root+"/x", []byte("x"), open, zkwire.ModePersistentSequential, 0),
		CreateOp(root+"/y", nil, open, zkwire.ModePersistent, 0),
		SetDataOp(root+"/y", []byte("y"), 0),
		CheckOp(root+"/y", 1),
		CreateOp(root+"/z", nil, open, zkwire.ModeContainer, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res[0].Path, root+"/x") || len(res[0].Path) != len(root)+12 || res[1].Path != root+"/y" ||
		res[2].Stat.Version != 1 || res[4].Path != root+"/z" || res[4].Stat.Czxid == 0 {
		t.Errorf("multi results %+v", res)
	}
	for i, r := range res {
		if r.Err != nil || r.RolledBack {
			t.Errorf("multi result %d: %+v", i, r)
		}
	}
	// A multi that fails at its third op: nothing is applied.
	res, err = c.Multi(ctx,
		CreateOp(root+"/q", nil, open, zkwire.ModePersistent, 0),
		SetDataOp(root+"/y", []byte("q"), -1),
		CheckOp(root+"/y", 7),
		DeleteOp(root+"/z", -1))
	if !errors.Is(err, ErrBadVersion) || !strings.Contains(err.Error(), root+"/y") {
		t.Errorf("failed multi: %v, want BadVersion naming %s/y", err, root)
	}
	if len(res) != 4 || !res[0].RolledBack || !res[1].RolledBack || !errors.Is(res[2].Err, ErrBadVersion) ||
		zkwire.CodeOf(res[3].Err) != zkwire.CodeRuntimeInconsistency {
		t.Errorf("failed multi results %+v", res)
	}
	if ok, _, _ := w.Exists(root + "/q"); ok {
		t.Error("a failed multi created a node")
	}
	if data, _, _ := w.Get(root + "/y"); string(data) != "y" {
		t.Errorf("a failed multi left data %q", data)
	}
	// A multiRead answers per operation.
	res, err = c.MultiRead(ctx, GetDataOp(root+"/y"), GetDataOp(root+"/nope"), GetChildrenOp(root))
	if err != nil {
		t.Fatal(err)
	}
	if string(res[0].Data) != "y" || res[0].Stat.Version != 1 || !errors.Is(res[1].Err, ErrNoNode) ||
		!slices.Contains(res[2].Children, "y") {
		t.Errorf("multiRead results %+v", res)
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestClientChroot: a chrooted client's paths, results and events are
// relative to its chroot; the server holds them below it.
func TestClientChroot(t *testing.T) {
	t.Parallel()
	hosts := ensemble.Hosts()
	root := freshRoot(t)
	w := independent(t, hosts)
	mustCreate(t, w, root, nil, 0, nil)
	cs, err := ParseConnectString(strings.Join(hosts, ",") + root)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, Config{Hosts: cs.Hosts, Chroot: cs.Chroot, Retry: Resend})
	ctx := t.Context()
	if err := c.AddWatch(ctx, "/", zkwire.AddWatchPersistentRecursive); err != nil {
		t.Fatal(err)
	}
	p, _, err := c.Create(ctx, "/e", []byte("e"), znode.WorldAnyone(), zkwire.ModeEphemeralSequential)
	if err != nil || !strings.HasPrefix(p, "/e") {
		t.Fatalf("Create in the chroot: %q %v", p, err)
	}
	if data, _, err := w.Get(root + p); err != nil || string(data) != "e" {
		t.Errorf("the server holds %s%s: %q %v", root, p, data, err)
	}
	awaitEvents(t, c, 10*time.Second, nodeEvent(zkwire.EventNodeCreated, p))
	if eph, err := c.GetEphemerals(ctx, "/"); err != nil || !slices.Equal(eph, []string{p}) {
		t.Errorf("GetEphemerals: %q %v, want [%s]", eph, err, p)
	}
	if kids, _, err := c.GetChildren(ctx, "/"); err != nil || !slices.Equal(kids, []string{p[1:]}) {
		t.Errorf("GetChildren of the chroot: %q %v", kids, err)
	}
	res, err := c.Multi(ctx, CreateOp("/m", nil, znode.WorldAnyone(), zkwire.ModePersistent, 0))
	if err != nil || res[0].Path != "/m" {
		t.Errorf("multi in the chroot: %+v %v", res, err)
	}
}

// TestOneShotWatches sets data, exist and child watches, sees each fire
// once, and sees a watch survive a reconnect: the client sets it again
// relative to the last zxid it saw, so a change made while it was cut off
// fires as soon as it is back.
func TestOneShotWatches(t *testing.T) {
	t.Parallel()
	hosts := ensemble.Hosts()
	root := freshRoot(t)
	w := independent(t, hosts)
	mustCreate(t, w, root, []byte("0"), 0, nil)
	proxy := newFaultProxy(t, hosts[0])
	c := dial(t, Config{Hosts: []string{proxy.addr()}, Retry: Resend, SessionTimeout: 20 * time.Second})
	ctx := t.Context()

	if _, _, err := c.GetDataWatch(ctx, root); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.ExistsWatch(ctx, root+"/new"); ok || err != nil {
		t.Fatalf("ExistsWatch of a missing node: %v %v", ok, err)
	}
	if _, _, err := c.GetChildrenWatch(ctx, root); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Set(root, []byte("1"), -1); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, w, root+"/new", nil, 0, nil)
	evs := awaitEvents(t, c, 10*time.Second, nodeEvent(zkwire.EventNodeChildrenChanged, root))
	want := []string{"NodeDataChanged " + root, "NodeCreated " + root + "/new", "NodeChildrenChanged " + root}
	if got := nodeEvents(evs); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	// Fired watches are gone: the next change fires nothing, and the next
	// event is the one of a watch set after it.
	if _, err := w.Set(root, []byte("2"), -1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.GetDataWatch(ctx, root+"/new"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Set(root+"/new", []byte("n"), -1); err != nil {
		t.Fatal(err)
	}
	evs = awaitEvents(t, c, 10*time.Second, func(Event) bool { return true })
	if got := eventString(evs[0]); got != "NodeDataChanged "+root+"/new" {
		t.Errorf("event %q, want only the new watch's", got)
	}

	// A watch set before the connection is cut fires for a change made
	// while it was.
	if _, _, err := c.GetDataWatch(ctx, root); err != nil {
		t.Fatal(err)
	}
	sid := c.SessionID()
	proxy.setDown(true)
	awaitEvents(t, c, 20*time.Second, connState(int32(zkwire.StateDisconnected)))
	if _, err := w.Set(root, []byte("3"), -1); err != nil {
		t.Fatal(err)
	}
	proxy.setDown(false)
	evs = awaitEvents(t, c, 30*time.Second, nodeEvent(zkwire.EventNodeDataChanged, root))
	if c.SessionID() != sid {
		t.Errorf("session %#x after the reconnect, was %#x", c.SessionID(), sid)
	}
	if got := nodeEvents(evs); len(got) != 1 {
		t.Errorf("events after the reconnect %q", got)
	}
}

// TestResendPolicy cuts connections under the Resend policy: a read whose
// reply was lost is sent again and answered; a write whose reply was lost
// is not sent again and fails saying its outcome is unknown (it was
// applied, once); a write made while the client is disconnected waits and
// goes out once it is back.
func TestResendPolicy(t *testing.T) {
	t.Parallel()
	hosts := ensemble.Hosts()
	root := freshRoot(t)
	w := independent(t, hosts)
	mustCreate(t, w, root, []byte("0"), 0, nil)
	proxy := newFaultProxy(t, hosts[0])
	c := dial(t, Config{Hosts: []string{proxy.addr()}, Retry: Resend, SessionTimeout: 20 * time.Second})
	ctx := t.Context()
	sid := c.SessionID()

	proxy.cutNextReply()
	if data, _, err := c.GetData(ctx, root); err != nil || string(data) != "0" {
		t.Errorf("GetData whose reply was cut: %q %v, want it resent and answered", data, err)
	}
	if proxy.cutCount() != 1 {
		t.Fatalf("%d replies cut, want 1", proxy.cutCount())
	}
	awaitEvents(t, c, 20*time.Second, connState(int32(zkwire.StateSyncConnected)))

	proxy.cutNextReply()
	_, err := c.SetData(ctx, root, []byte("1"), -1)
	if !errors.Is(err, ErrConnectionLoss) || !strings.Contains(err.Error(), "outcome is unknown") || !strings.Contains(err.Error(), root) {
		t.Fatalf("SetData whose reply was cut: %v, want ErrConnectionLoss saying the outcome is unknown", err)
	}
	if proxy.cutCount() != 2 {
		t.Fatalf("%d replies cut, want 2", proxy.cutCount())
	}
	awaitEvents(t, c, 20*time.Second, connState(int32(zkwire.StateSyncConnected)))
	if _, err := w.Sync(root); err != nil {
		t.Fatal(err)
	}
	if data, st, err := w.Get(root); err != nil || string(data) != "1" || st.Version != 1 {
		t.Errorf("after the cut setData: %q version %d %v, want it applied exactly once", data, st.Version, err)
	}

	// Disconnected: the write waits, then goes out.
	proxy.setDown(true)
	awaitEvents(t, c, 20*time.Second, connState(int32(zkwire.StateDisconnected)))
	done := make(chan error, 1)
	go func() {
		_, err := c.SetData(ctx, root, []byte("2"), 1)
		done <- err
	}()
	proxy.setDown(false)
	if err := <-done; err != nil {
		t.Errorf("SetData while disconnected: %v", err)
	}
	if data, _, err := c.GetData(ctx, root); err != nil || string(data) != "2" {
		t.Errorf("GetData: %q %v", data, err)
	}
	if c.SessionID() != sid {
		t.Errorf("session %#x, was %#x", c.SessionID(), sid)
	}
}

// TestFailPendingPolicy: a read whose reply was lost, and a read made while
// the client is disconnected, fail at once with ErrConnectionLoss; the
// session continues once the connection is back.
func TestFailPendingPolicy(t *testing.T) {
	t.Parallel()
	hosts := ensemble.Hosts()
	root := freshRoot(t)
	w := independent(t, hosts)
	mustCreate(t, w, root, []byte("0"), 0, nil)
	proxy := newFaultProxy(t, hosts[0])
	c := dial(t, Config{Hosts: []string{proxy.addr()}, Retry: FailPending, SessionTimeout: 20 * time.Second})
	ctx := t.Context()
	sid := c.SessionID()

	proxy.cutNextReply()
	if _, _, err := c.GetData(ctx, root); !errors.Is(err, ErrConnectionLoss) {
		t.Errorf("GetData whose reply was cut: %v, want ErrConnectionLoss", err)
	}
	awaitEvents(t, c, 20*time.Second, connState(int32(zkwire.StateSyncConnected)))
	proxy.setDown(true)
	awaitEvents(t, c, 20*time.Second, connState(int32(zkwire.StateDisconnected)))
	if _, _, err := c.GetData(ctx, root); !errors.Is(err, ErrConnectionLoss) {
		t.Errorf("GetData while disconnected: %v, want ErrConnectionLoss", err)
	}
	proxy.setDown(false)
	awaitEvents(t, c, 20*time.Second, connState(int32(zkwire.StateSyncConnected)))
	if data, _, err := c.GetData(ctx, root); err != nil || string(data) != "0" || c.SessionID() != sid {
		t.Errorf("after the reconnect: %q %v, session %#x (was %#x)", data, err, c.SessionID(), sid)
	}
}

// TestSessionExpiry cuts the client off for longer than its session
// timeout: when it gets through again the session is gone, and the client
// says so (Expired), opens a new session (SyncConnected, NewSession) and
// sets its persistent watch again.
func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	hosts := ensemble.Hosts()
	root := freshRoot(t)
	proxy := newFaultProxy(t, hosts[0])
	c := dial(t, Config{Hosts: []string{proxy.addr()}, Retry: Resend, SessionTimeout: 2 * time.Second})
	ctx := t.Context()
	if err := c.AddWatch(ctx, root, zkwire.AddWatchPersistentRecursive); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Create(ctx, "/"+strings.TrimPrefix(root, "/")+"-eph", nil, znode.WorldAnyone(), zkwire.ModeEphemeral); err != nil {
		t.Fatal(err)
	}
	sid := c.SessionID()
	w := independent(t, hosts)

	proxy.setDown(true)
	awaitEvents(t, c, 10*time.Second, connState(int32(zkwire.StateDisconnected)))
	// The session is gone once its ephemeral is.
	testlog.WaitFor(t, 30*time.Second, "the session to expire", func() error {
		if ok, _, err := w.Exists(root + "-eph"); ok || err != nil {
			return fmt.Errorf("ephemeral still there (%v)", err)
		}
		return nil
	})
	mustCreate(t, w, root, nil, 0, nil) // fired while no connection watched: missed
	proxy.setDown(false)

	evs := awaitEvents(t, c, 30*time.Second, connState(int32(zkwire.StateSyncConnected)))
	var sawExpired bool
	for _, ev := range evs {
		sawExpired = sawExpired || (ev.State == zkwire.StateExpired && ev.Missed)
	}
	last := evs[len(evs)-1]
	if !sawExpired || !last.NewSession || !last.Missed {
		var s []string
		for _, ev := range evs {
			s = append(s, eventString(ev))
		}
		t.Errorf("events %q: want Expired, then SyncConnected on a new session", s)
	}
	if c.SessionID() == sid || c.SessionID() == 0 {
		t.Errorf("session %#x after expiry, was %#x", c.SessionID(), sid)
	}
	mustCreate(t, w, root+"/after", nil, 0, nil)
	awaitEvents(t, c, 10*time.Second, nodeEvent(zkwire.EventNodeCreated, root+"/after"))
}

// TestReconnectToAnotherServer kills the server the client is connected
// to: the client moves to another with the same session, says events may
// have been missed, and its persistent watch keeps firing.
func TestReconnectToAnotherServer(t *testing.T) {
	t.Parallel()
	ens := zktest.New(t, zktest.Options{Servers: 3})
	hosts := ens.Hosts()
	c := dial(t, Config{Hosts: hosts, FirstHost: -1, Retry: Resend, SessionTimeout: 10 * time.Second})
	ctx := t.Context()
	if err := c.AddWatch(ctx, "/r", zkwire.AddWatchPersistentRecursive); err != nil {
		t.Fatal(err)
	}
	sid, srv := c.SessionID(), c.Server()
	var victim int
	var others []string
	for _, s := range ens.Servers() {
		if s.ClientAddr == srv {
			victim = s.ID
		} else {
			others = append(others, s.ClientAddr)
		}
	}
	if victim == 0 {
		t.Fatalf("connected to %s, not one of %v", srv, hosts)
	}
	w := independent(t, others)
	mustCreate(t, w, "/r", nil, 0, nil)
	awaitEvents(t, c, 10*time.Second, nodeEvent(zkwire.EventNodeCreated, "/r"))

	if err := ens.Kill(victim); err != nil {
		t.Fatal(err)
	}
	evs := awaitEvents(t, c, 60*time.Second, connState(int32(zkwire.StateSyncConnected)))
	var states []string
	for _, ev := range evs {
		states = append(states, eventString(ev))
	}
	if len(evs) < 2 || evs[0].State != zkwire.StateDisconnected || !evs[len(evs)-1].Missed || evs[len(evs)-1].NewSession {
		t.Errorf("events after the kill: %q, want Disconnected then SyncConnected (missed, same session)", states)
	}
	if c.SessionID() != sid || c.Server() == srv || c.Server() == "" {
		t.Errorf("after the kill: session %#x on %s, was %#x on %s", c.SessionID(), c.Server(), sid, srv)
	}
	mustCreate(t, w, "/r/after", []byte("x"), 0, nil)
	awaitEvents(t, c, 20*time.Second, nodeEvent(zkwire.EventNodeCreated, "/r/after"))
	if data, _, err := c.GetData(ctx, "/r/after"); err != nil || string(data) != "x" {
		t.Errorf("GetData after the reconnect: %q %v", data, err)
	}
}

// TestDialFailures: refused credentials and an unreachable ensemble fail
// Dial with the matching error.
func TestDialFailures(t *testing.T) {
	t.Parallel()
	hosts := ensemble.Hosts()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := Dial(ctx, Config{Hosts: hosts, Auth: []Auth{{"nosuchscheme", []byte("x")}}}); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("Dial with refused credentials: %v, want ErrAuthFailed", err)
	}
	dead := deadAddr(t)
	short, cancel2 := context.WithTimeout(t.Context(), time.Second)
	defer cancel2()
	if _, err := Dial(short, Config{Hosts: []string{dead}}); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), dead) {
		t.Errorf("Dial of a closed port: %v, want ErrUnreachable naming it", err)
	}
	if _, err := Dial(ctx, Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Dial without hosts: %v", err)
	}
}

// TestNotZooKeeper points the client, and go-zookeeper behind Guard, at a
// port that answers with HTTP: Dial fails at once with one line quoting the
// answer, and neither client allocates anything near the 1.2 GB that
// "HTTP" declares as a frame length. Not parallel: it measures the
// process's allocations.
func TestNotZooKeeper(t *testing.T) {
	addr := testlog.HTTPAddr(t)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := Dial(ctx, Config{Hosts: []string{addr}})
	if !errors.Is(err, ErrNotZooKeeper) || !strings.Contains(err.Error(), `"HTTP/1.1 400`) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Dial: %v, want one line matching ErrNotZooKeeper quoting the answer", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Dial took the whole deadline")
	}

	violation := make(chan error, 1)
	guarded := GuardDialer(nil, GuardOptions{OnViolation: func(err error) {
		select {
		case violation <- err:
		default:
		}
	}})
	zc, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithDialer(zk.Dialer(guarded)),
		zk.WithMaxBufferSize(DefaultMaxReplyFrame), zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violation:
		if !errors.Is(err, ErrNotZooKeeper) {
			t.Errorf("violation %v", err)
		}
	case <-ctx.Done():
		t.Fatal("go-zookeeper's connection was not stopped")
	}
	zc.Close()

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("allocated %d MiB against a server answering HTTP", grew>>20)
	}
}

// TestSendMultiPipelined: multis sent one after the other without waiting
// are applied in order (each checks the version the one before it sets), and
// when one fails, the ones behind it that depend on it fail too; go-zookeeper
// reads the outcome.
func TestSendMultiPipelined(t *testing.T) {
	root := freshRoot(t)
	c := dial(t, Config{Hosts: ensemble.Hosts()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := c.Create(ctx, root, nil, znode.WorldAnyone(), zkwire.ModePersistent); err != nil {
		t.Fatal(err)
	}
	send := func(from, n int, version int32) []*MultiCall {
		var calls []*MultiCall
		for i := range n {
			calls = append(calls, c.SendMulti(
				CreateOp(fmt.Sprintf("%s/n%d", root, from+i), nil, znode.WorldAnyone(), zkwire.ModePersistent, 0),
				SetDataOp(root, []byte(fmt.Sprint(from+i)), version+int32(i))))
		}
		return calls
	}
	for i, mc := range send(0, 8, 0) {
		if _, err := mc.Wait(ctx); err != nil {
			t.Fatalf("multi %d: %v", i, err)
		}
	}
	// The third of five checks a wrong version: it fails, and the two after
	// it, which check the versions it would have left, fail with it.
	calls := send(8, 2, 8)
	calls = append(calls, send(10, 1, 99)...)
	calls = append(calls, send(11, 2, 11)...)
	for i, mc := range calls {
		<-mc.Done()
		res, err := mc.Wait(ctx)
		switch {
		case i < 2 && err != nil:
			t.Errorf("multi %d: %v", i, err)
		case i >= 2 && !errors.Is(err, ErrBadVersion):
			t.Errorf("multi %d: %v, want a bad version", i, err)
		case i >= 2 && (len(res) != 2 || !res[0].RolledBack):
			t.Errorf("multi %d results %+v: want the create rolled back", i, res)
		}
	}
	zc := independent(t, ensemble.Hosts())
	kids, st, err := zc.Children(root)
	slices.Sort(kids)
	if err != nil || len(kids) != 10 || kids[9] != "n9" || st.Version != 10 {
		t.Errorf("%s: children %v, version %d (%v): want n0..n9 at version 10", root, kids, st.Version, err)
	}
}

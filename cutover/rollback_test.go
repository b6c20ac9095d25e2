package cutover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// rollbackSuper is the ensemble's super user in the rollback tests: the
// reverse mirror writes with it, and the rebaseline reads with it.
const rollbackSuper = "super:rollback-secret"

func newRollbackRig(t *testing.T) *rig {
	t.Helper()
	return newRigWith(t, rollbackEnsemble())
}

// rollbackEnsemble is one server with extended types (TTL nodes) and the
// super user.
func rollbackEnsemble() zktest.Options {
	return zktest.Options{Servers: 1, ExtendedTypes: true, SystemProperties: map[string]string{
		"zookeeper.DigestAuthenticationProvider.superDigest": znode.DigestID(rollbackSuper),
	}}
}

// startMirror runs the reverse mirror beside the rig's journal node (what
// serve --zk does) until stop.
func (r *rig) startMirror(t testing.TB) (stop func()) {
	t.Helper()
	cfg := reversemirror.Config{Node: r.node, Logger: testlog.New(t).With("component", "reverse-mirror")}
	cfg.ZooKeeper.Hosts = r.ens.Hosts()
	cfg.ZooKeeper.Auth = []zkclient.Auth{{Scheme: "digest", Cred: []byte(rollbackSuper)}}
	cfg.ZooKeeper.SessionTimeout = 10 * time.Second
	m, err := reversemirror.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.node.SetStatusExtension("reverse_mirror", func() any { return m.Status() }) // as serve --zk does
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				// Say so rather than hang the test binary (and lose the
				// failure that led here).
				t.Errorf("the reverse mirror did not stop within 2 minutes of its cancellation")
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

func (r *rig) rollbackOptions() Options {
	o := r.options()
	o.ZKAuth = []string{"digest:" + rollbackSuper}
	return o
}

// superZK is a client straight to ZooKeeper as its super user (the test's
// own reads).
func (r *rig) superZK(t *testing.T) *zkclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zkclient.Dial(ctx, zkclient.Config{Hosts: r.ens.Hosts(), Auth: []zkclient.Auth{{Scheme: "digest", Cred: []byte(rollbackSuper)}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// verifyClean compares ZooKeeper with the journal, node by node, every
// field, nothing allowed.
func (r *rig) verifyClean(t *testing.T, when string) *verify.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src, err := verify.NewZooKeeperSource(verify.ZKOptions{Hosts: r.ens.Hosts(), Auth: []zkclient.Auth{{Scheme: "digest", Cred: []byte(rollbackSuper)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cfg := verify.DefaultConfig()
	rep, err := verify.Compare(ctx, src, verify.NewJournalSource("journal://test", verify.JournalState{Tree: r.node.FSM(), Nodes: -1}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Equal() {
		var b strings.Builder
		verify.WriteText(&b, rep)
		t.Fatalf("%s: ZooKeeper differs from the journal:\n%s", when, b.String())
	}
	return rep
}

// ackedWrite is a write a client saw acknowledged while the journal was
// primary: the node ZooKeeper must hold after the rollback (nil data with
// gone: it must not exist).
type ackedWrite struct {
	path string
	data string
	acl  []znode.ACL
	gone bool
}

// primaryWorkload writes, through the proxy (relayed to the journal), nodes
// of every mode, sequentials, a multi, setData, setACL and deletes, and
// returns what was acknowledged.
func primaryWorkload(t *testing.T, c *gozk.Conn, root string) []ackedWrite {
	t.Helper()
	out, err := tryPrimaryWorkload(c, root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tryPrimaryWorkload is primaryWorkload stopping at the first error (what
// it returns then is not the whole truth: a setData or a delete whose
// answer was lost may have been applied).
func tryPrimaryWorkload(c *gozk.Conn, root string) ([]ackedWrite, error) {
	all := gozk.WorldACL(gozk.PermAll)
	var out []ackedWrite
	var failed error
	mk := func(p, data string, flags int32) string {
		if failed != nil {
			return ""
		}
		name, err := c.Create(p, []byte(data), flags, all)
		if err != nil {
			failed = fmt.Errorf("create %s: %w", p, err)
			return ""
		}
		out = append(out, ackedWrite{path: name, data: data, acl: znode.WorldAnyone()})
		return name
	}
	mk(root, "r", 0)
	mk(root+"/p", "p0", 0)
	mk(root+"/q", "", 0)
	for i := range 3 {
		mk(root+"/q/job-", fmt.Sprintf("j%d", i), gozk.FlagSequence)
	}
	mk(root+"/eph-seq-", "es", gozk.FlagEphemeral|gozk.FlagSequence)
	mk(root+"/eph", "e", gozk.FlagEphemeral)
	if failed != nil {
		return out, failed
	}
	if _, err := c.CreateContainer(root+"/box", nil, gozk.FlagContainer, all); err != nil {
		return out, err
	}
	out = append(out, ackedWrite{path: root + "/box", acl: znode.WorldAnyone()})
	if mk(root+"/box/item", "i", 0); failed != nil {
		return out, failed
	}
	if _, err := c.CreateTTL(root+"/ttl", []byte("t"), gozk.FlagTTL, all, time.Hour); err != nil {
		return out, err
	}
	out = append(out, ackedWrite{path: root + "/ttl", data: "t", acl: znode.WorldAnyone()})
	if _, err := c.Set(root+"/p", []byte("p1"), 0); err != nil {
		return out, err
	}
	out[1].data = "p1"
	res, err := c.Multi(
		&gozk.CreateRequest{Path: root + "/m", Data: []byte("m0"), Acl: all},
		&gozk.CreateRequest{Path: root + "/q/job-", Data: []byte("in-multi"), Acl: all, Flags: gozk.FlagSequence},
		&gozk.SetDataRequest{Path: root + "/m", Data: []byte("m1"), Version: 0},
		&gozk.DeleteRequest{Path: out[3].path, Version: -1}, // the first job
	)
	if err != nil {
		return out, err
	}
	out[3].gone = true
	out = append(out, ackedWrite{path: root + "/m", data: "m1", acl: znode.WorldAnyone()},
		ackedWrite{path: res[1].String, data: "in-multi", acl: znode.WorldAnyone()})
	// An ACL the rig's reconcilers can still read (READ and ADMIN for
	// anyone), writable only by alice.
	acl := append(gozk.DigestACL(gozk.PermAll, "alice", "pw"), gozk.ACL{Perms: gozk.PermRead | gozk.PermAdmin, Scheme: "world", ID: "anyone"})
	if _, err := c.SetACL(root+"/p", acl, -1); err != nil {
		return out, err
	}
	zacl := []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "digest", ID: acl[0].ID}}, {Perms: znode.PermRead | znode.PermAdmin, ID: znode.ID{Scheme: "world", ID: "anyone"}}}
	for i := range out {
		if out[i].path == root+"/p" {
			out[i].acl = zacl
		}
	}
	gone := mk(root+"/gone", "g", 0)
	if failed != nil {
		return out, failed
	}
	if err := c.Delete(gone, -1); err != nil {
		return out, err
	}
	out[len(out)-1].gone = true
	return out, nil
}

// zkHolds checks that ZooKeeper holds every acknowledged write: the same
// paths (sequential names too), data and ACLs; deleted nodes gone.
func zkHolds(t *testing.T, c *zkclient.Client, want []ackedWrite) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, w := range want {
		data, _, err := c.GetData(ctx, w.path)
		if w.gone {
			if !errors.Is(err, zkclient.ErrNoNode) {
				t.Errorf("ZooKeeper still has %s, deleted in primary (%v)", w.path, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ZooKeeper lacks %s, written in primary: %v", w.path, err)
			continue
		}
		if string(data) != w.data {
			t.Errorf("ZooKeeper's %s holds %q, want %q", w.path, data, w.data)
		}
		acl, _, err := c.GetACL(ctx, w.path)
		if err != nil || !znode.EqualACLs(acl, w.acl) {
			t.Errorf("ZooKeeper's %s ACL %v (%v), want %v", w.path, acl, err, w.acl)
		}
	}
}

// waitMirrored waits until the journal knows the ZooKeeper sessions ids
// (the proxy mirrors them in the background; the cutover's sessions gate
// wants them).
func (r *rig) waitMirrored(t *testing.T, ids ...int64) {
	t.Helper()
	testlog.WaitFor(t, 60*time.Second, "the sessions mirrored into the journal", func() error {
		known := map[int64]bool{}
		for _, s := range r.node.FSM().SourceSessions() {
			known[s.ID] = true
		}
		for _, id := range ids {
			if !known[id] {
				return fmt.Errorf("session %#x not mirrored", id)
			}
		}
		return nil
	})
}

func gozkThrough(t *testing.T, addr string) (*gozk.Conn, <-chan gozk.Event) {
	t.Helper()
	return gozkThroughTimeout(t, addr, 10*time.Second)
}

// gozkThroughTimeout is gozkThrough with the session timeout asked for.
func gozkThroughTimeout(t *testing.T, addr string, timeout time.Duration) (*gozk.Conn, <-chan gozk.Event) {
	t.Helper()
	c, ev, err := gozk.Connect([]string{addr, addr}, timeout, gozk.WithLogger(slogPrintf{testlog.New(t).With("client", "go-zookeeper")}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	testlog.WaitFor(t, 30*time.Second, "a go-zookeeper session through the proxy", func() error {
		if s := c.State(); s != gozk.StateHasSession {
			return fmt.Errorf("state %v", s)
		}
		return nil
	})
	return c, ev
}

// TestRollbackRoundTrip is issue 16's rehearsal: clients through a proxy
// (go-zookeeper and kazoo) → cutover to primary → writes of every kind on
// the journal → rollback refused while the reverse mirror lags → rollback:
// ZooKeeper holds every acknowledged write (paths, data, ACLs, sequential
// names), verify finds ZooKeeper and the journal equal node by node, the
// clients keep their sessions on ZooKeeper (their journal zxids rewritten by
// the proxy), a journal-minted session expires, mirroring through the proxy
// resumes exactly; then a second round trip leaves both sides equal again.
func TestRollbackRoundTrip(t *testing.T) {
	t.Parallel()
	r := newRollbackRig(t)
	stopMirror := r.startMirror(t)
	p := r.startProxyWith("p1", r.jc, func(c *dualwrite.Config, _ *AgentConfig) { c.Auth = []string{"digest:" + rollbackSuper} })
	addr := p.tap.Addr()
	k := startKazoo(t, addr, "/kz")
	ksession := k.next(t, "ready")["session"].(string)
	gz, _ := gozkThrough(t, addr)
	gsession := gz.SessionID()
	if _, err := gz.Create("/app", []byte("shadow"), 0, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	kid, err := strconv.ParseUint(strings.TrimPrefix(ksession, "0x"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	r.waitMirrored(t, gsession, int64(kid))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	roundTrip := func(n int) {
		t.Helper()
		// Forward, once the proxy's reconciler is quiet (after a rollback it
		// repairs what the reverse mirror wrote, which its repairs gate
		// would count as writes around the proxies).
		testlog.WaitFor(t, 2*time.Minute, "the proxy's reconciler to be quiet", func() error {
			rs := p.agent.State().Reconcile
			if ago := time.Since(rs.LastRepair); !rs.LastRepair.IsZero() && ago < 2*time.Second {
				return fmt.Errorf("last repair %s ago", ago)
			}
			return nil
		})
		rep, err := ToPrimary(ctx, r.rollbackOptions())
		if err != nil {
			t.Fatalf("round trip %d: cutover: %v\nsteps: %+v", n, err, rep)
		}
		k.send(t, "switched")
		if res := k.next(t, "resumed on the journal"); res["session"] != ksession || res["owner"] != ksession {
			t.Fatalf("round trip %d: kazoo on the journal: %v, want session %s", n, res, ksession)
		}

		// Writes on the journal, through the proxy.
		root := fmt.Sprintf("/app/rt%d", n)
		var acked []ackedWrite
		testlog.WaitFor(t, 60*time.Second, "go-zookeeper's session on the journal", func() error {
			_, err := gz.Sync("/app")
			return err
		})
		acked = primaryWorkload(t, gz, root)
		if gz.SessionID() != gsession {
			t.Fatalf("round trip %d: go-zookeeper's session %#x became %#x on the journal", n, gsession, gz.SessionID())
		}
		// A watch set on the journal, to fire after the rollback.
		_, _, watch, err := gz.GetW(root + "/p")
		if err != nil {
			t.Fatal(err)
		}
		// A session the journal mints: it cannot live on in ZooKeeper.
		minted, _ := gozkThrough(t, addr)
		mintedID := minted.SessionID()
		if !raftjournal.JournalSession(minted.SessionID()) {
			t.Fatalf("round trip %d: a new session through the switched proxy is %#x, not the journal's", n, minted.SessionID())
		}
		if _, err := minted.Create(root+"/minted-eph", nil, gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll)); err != nil {
			t.Fatal(err)
		}

		if n == 1 {
			// Refused while the reverse mirror lags: stop it, write, wait.
			stopMirror()
			if _, err := gz.Create(root+"/while-lagging", []byte("l"), 0, gozk.WorldACL(gozk.PermAll)); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, ackedWrite{path: root + "/while-lagging", data: "l", acl: znode.WorldAnyone()})
			o := r.rollbackOptions()
			o.MaxLag = 100 * time.Millisecond
			testlog.WaitFor(t, 30*time.Second, "the reverse mirror to lag", func() error {
				if st := r.node.FSM().MirrorStatus(); st.LagMillis(time.Now().UnixMilli()) < 200 {
					return fmt.Errorf("lag %d ms", st.LagMillis(time.Now().UnixMilli()))
				}
				return nil
			})
			rep, err := ToShadow(ctx, o)
			var ge *GateError
			if !errors.As(err, &ge) || len(ge.Failing) != 1 || ge.Failing[0].Name != GateReverseLag || rep == nil || rep.Outcome != "refused" {
				t.Fatalf("rollback while the mirror lags: %v (report %+v)", err, rep)
			}
			if !strings.Contains(ge.Failing[0].Evidence, "not yet in ZooKeeper") {
				t.Errorf("the lag gate's evidence: %q", ge.Failing[0].Evidence)
			}
			if r.phase() != raftjournal.PhasePrimary || p.tap.Backend() != dualwrite.BackendJournal {
				t.Fatalf("refused rollback changed something: phase %s, backend %s", r.phase(), p.tap.Backend())
			}
			if held, _ := p.tap.Held(); held {
				t.Fatal("refused rollback left the proxy held")
			}
			t.Logf("refused: %v", err)
			stopMirror = r.startMirror(t)

			// A write straight to ZooKeeper while primary: the sentry
			// records it, the rollback names it, and it stays (ZooKeeper
			// is the source of truth again; verify below finds the journal
			// took it in).
			direct := r.superZK(t)
			if _, _, err := direct.Create(ctx, "/app/around-the-proxies", []byte("direct"), znode.WorldAnyone(), zkwire.ModePersistent); err != nil {
				t.Fatal(err)
			}
			direct.Close()
			testlog.WaitFor(t, time.Minute, "the sentry to record the write around the proxies", func() error {
				ws, err := SplitBrain(ctx, r.rollbackOptions())
				if err != nil {
					return err
				}
				for _, w := range ws {
					if w.Path == "/app/around-the-proxies" {
						return nil
					}
				}
				return fmt.Errorf("split-brain writes %+v", ws)
			})
		}

		if n == 2 {
			// The fence on: a client straight to ZooKeeper may read, not
			// write. The rollback lifts it (verify below compares the ACLs).
			if _, err := Fence(ctx, r.rollbackOptions()); err != nil {
				t.Fatalf("fence: %v", err)
			}
			direct, _, err := gozk.Connect(r.ens.Hosts(), 10*time.Second, gozk.WithLogger(silentLog{}))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := direct.Set("/app", []byte("around the proxies"), -1); !errors.Is(err, gozk.ErrNoAuth) {
				t.Fatalf("a direct setData with the fence on: %v, want NoAuth", err)
			}
			if _, _, err := direct.Get("/app"); err != nil {
				t.Fatalf("a direct read with the fence on: %v", err)
			}
			direct.Close()
		}

		// Back.
		rep, err = ToShadow(ctx, r.rollbackOptions())
		if err != nil {
			t.Fatalf("round trip %d: rollback: %v\nsteps: %+v", n, err, rep)
		}
		if rep.Outcome != "committed" || r.phase() != raftjournal.PhaseShadow || p.tap.Backend() != dualwrite.BackendZooKeeper {
			t.Fatalf("round trip %d: outcome %q, phase %s, backend %s", n, rep.Outcome, r.phase(), p.tap.Backend())
		}
		for _, s := range rep.Steps {
			t.Logf("round trip %d: rollback step %s ok=%t: %s", n, s.Name, s.OK, s.Detail)
		}
		if n == 1 && !slices.ContainsFunc(rep.Steps, func(s Step) bool {
			return s.Name == "split-brain writes" && strings.Contains(s.Detail, "/app/around-the-proxies")
		}) {
			t.Fatalf("round trip %d: the rollback did not name the split-brain write", n)
		}
		if lifted := slices.ContainsFunc(rep.Steps, func(s Step) bool { return s.Name == "lift fence" && s.OK }); lifted != (n == 2) {
			t.Fatalf("round trip %d: fence lifted %t, want %t", n, lifted, n == 2)
		}
		// The first rebaseline repairs what the journal wrote in its epoch
		// (and the split-brain write) and proves it by the digests, without
		// comparing the whole tree; the second follows a lifted fence, which
		// moved every node's ACL version in ZooKeeper, and compares the
		// whole tree.
		last := rep.Steps[len(rep.Steps)-1]
		targeted := strings.HasPrefix(last.Detail, rebaselineByDigest+": digests equal") && strings.Contains(last.Detail, "; targeted repair of ")
		full := rebaselineClean(last.Detail) && strings.Contains(last.Detail, "no targeted repair: lifting the fence")
		if last.Name != "rebaseline" || !last.OK || (n == 1 && !targeted) || (n == 2 && !full) {
			t.Fatalf("round trip %d: last step %+v", n, last)
		}
		t.Logf("round trip %d: clients held for %s", n, rep.Pause)

		// ZooKeeper holds every acknowledged write; verify is clean. (The
		// test's own client straight to ZooKeeper is closed before the next
		// cutover: its direct-clients gate would refuse it.)
		zk := r.superZK(t)
		defer zk.Close()
		zkHolds(t, zk, acked)
		r.verifyClean(t, fmt.Sprintf("round trip %d, after the rollback", n))

		// go-zookeeper and kazoo keep their sessions on ZooKeeper (their
		// journal zxids rewritten by the proxy).
		testlog.WaitFor(t, 60*time.Second, "go-zookeeper's session back on ZooKeeper", func() error {
			_, err := gz.Sync("/app")
			return err
		})
		if gz.SessionID() != gsession {
			t.Fatalf("round trip %d: go-zookeeper's session %#x became %#x on ZooKeeper", n, gsession, gz.SessionID())
		}
		_, st, err := zk.GetData(ctx, root+"/eph")
		if err != nil || st.EphemeralOwner != gsession {
			t.Fatalf("round trip %d: go-zookeeper's ephemeral in ZooKeeper: %+v %v, want owner %#x", n, st, err, gsession)
		}
		k.send(t, "switched")
		if res := k.next(t, "resumed on ZooKeeper"); res["session"] != ksession || res["owner"] != ksession {
			t.Fatalf("round trip %d: kazoo on ZooKeeper: %v, want session %s", n, res, ksession)
		}
		if ss := p.tap.SwitchStatus(); ss.ZxidsRewritten == 0 {
			t.Errorf("round trip %d: the proxy rewrote no zxid: %+v", n, ss)
		}
		// The journal-minted session expired; its ephemeral went with it.
		// (go-zookeeper, told its session expired, opens a new one.)
		testlog.WaitFor(t, 60*time.Second, "the journal-minted session to expire", func() error {
			if id := minted.SessionID(); id == mintedID || minted.State() != gozk.StateHasSession {
				return fmt.Errorf("session %#x, state %v", id, minted.State())
			}
			return nil
		})
		minted.Close()
		if _, _, err := zk.GetData(ctx, root+"/minted-eph"); !errors.Is(err, zkclient.ErrNoNode) {
			t.Errorf("round trip %d: the journal-minted session's ephemeral in ZooKeeper: %v", n, err)
		}
		// The watch set on the journal fires for a change on ZooKeeper.
		if _, err := zk.SetData(ctx, root+"/p", []byte("after"), -1); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-watch:
			if ev.Type != gozk.EventNodeDataChanged || ev.Path != root+"/p" {
				t.Fatalf("round trip %d: watch: %+v", n, ev)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("round trip %d: the watch set on the journal did not fire on ZooKeeper", n)
		}

		// Mirroring through the proxy resumes exactly.
		if _, err := gz.Create(root+"/after", []byte("a"), 0, gozk.WorldACL(gozk.PermAll)); err != nil {
			t.Fatal(err)
		}
		if _, err := gz.Set(root+"/m", []byte("m2"), -1); err != nil {
			t.Fatal(err)
		}
		testlog.WaitFor(t, 60*time.Second, "the proxy's mirrors in the journal", func() error {
			data, _, err := r.node.FSM().Get(root+"/m", nil)
			if err != nil || string(data) != "m2" {
				return fmt.Errorf("%q %v", data, err)
			}
			if _, _, err := r.node.FSM().Get(root+"/after", nil); err != nil {
				return err
			}
			return nil
		})
		// The reconcilers may still be repairing the keeper's deletes;
		// the comparison is clean once they have.
		testlog.WaitFor(t, 60*time.Second, "verify clean after mirroring resumed", func() error { return verifyErr(r) })
		if err := verifyDataDir(r); err != nil {
			t.Fatalf("round trip %d: ZooKeeper's data directory differs from the journal: %v", n, err)
		}
		zk.Close()
	}
	roundTrip(1)
	roundTrip(2)
	if ids := slices.Collect(func(yield func(int64) bool) {
		for _, s := range r.node.FSM().SourceSessions() {
			if !yield(s.ID) {
				return
			}
		}
	}); !slices.Contains(ids, gsession) {
		t.Errorf("go-zookeeper's session %#x is not among the journal's mirrored sessions after the round trips: %#x", gsession, ids)
	}
	k.send(t, "stop")
}

// verifyDataDir compares ZooKeeper's data directory (snapshot and log,
// raw ephemeral owners, proven by ZooKeeper's own digest) with the journal.
func verifyDataDir(r *rig) error {
	dd := r.ens.Servers()[0].DataDir
	return compareWithJournal(r, func(ctx context.Context) (verify.Source, error) {
		return verify.OpenDataDir(ctx, "datadir://"+dd, dd, dd, 0, nil)
	})
}

// verifyErr compares ZooKeeper with the journal and returns the differences
// as an error.
func verifyErr(r *rig) error {
	return compareWithJournal(r, func(context.Context) (verify.Source, error) {
		return verify.NewZooKeeperSource(verify.ZKOptions{Hosts: r.ens.Hosts(), Auth: []zkclient.Auth{{Scheme: "digest", Cred: []byte(rollbackSuper)}}})
	})
}

// compareWithJournal compares the source open makes with the rig's journal,
// node by node; the differences are the error.
func compareWithJournal(r *rig, open func(context.Context) (verify.Source, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src, err := open(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	rep, err := verify.Compare(ctx, src, verify.NewJournalSource("journal://test", verify.JournalState{Tree: r.node.FSM(), Nodes: -1}), verify.DefaultConfig())
	if err != nil {
		return err
	}
	if !rep.Equal() {
		var b strings.Builder
		verify.WriteText(&b, rep)
		return errors.New(b.String())
	}
	return nil
}

// TestRollbackOrchestratorGone: the orchestrator stops (returns without any
// clean-up, as if killed) with the proxy held. Before the commit, the
// proxy's hold expires, the agent fences the commit off and follows the
// journal, still primary: its clients go on on the journal, and the next
// rollback succeeds. After the commit, it follows the journal back to
// ZooKeeper by itself (with the zxid map), and go-zookeeper resumes its
// session there.
func TestRollbackOrchestratorGone(t *testing.T) {
	t.Parallel()
	r := newRollbackRig(t)
	r.startMirror(t)
	p := r.startProxyWith("p1", r.jc, func(c *dualwrite.Config, _ *AgentConfig) { c.Auth = []string{"digest:" + rollbackSuper} })
	gz, _ := gozkThrough(t, p.tap.Addr())
	session := gz.SessionID()
	r.waitMirrored(t, session)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if rep, err := ToPrimary(ctx, r.rollbackOptions()); err != nil {
		t.Fatalf("cutover: %v (%+v)", err, rep)
	}
	gone := errors.New("orchestrator gone")
	for _, step := range []string{"drain", "commit"} {
		testlog.WaitFor(t, 60*time.Second, "a write through the proxy to the journal", func() error {
			_, err := gz.Create("/gone-"+step, []byte(step), 0, gozk.WorldACL(gozk.PermAll))
			return err
		})
		o := r.rollbackOptions()
		o.HoldTimeout = 5 * time.Second
		o.stepHook = func(s string) error {
			if s == step {
				return gone
			}
			return nil
		}
		if _, err := ToShadow(ctx, o); !errors.Is(err, gone) {
			t.Fatalf("rollback stopped after %s: %v", step, err)
		}
		if held, _ := p.tap.Held(); !held {
			t.Fatalf("after %s: the proxy is not held", step)
		}
		want, backend := raftjournal.PhasePrimary, dualwrite.BackendJournal
		if step == "commit" {
			want, backend = raftjournal.PhaseShadow, dualwrite.BackendZooKeeper
		}
		testlog.WaitFor(t, 60*time.Second, "the proxy to settle its hold after "+step, func() error {
			if held, _ := p.tap.Held(); held || p.tap.Backend() != backend {
				return fmt.Errorf("held %t, backend %s", held, p.tap.Backend())
			}
			return nil
		})
		if r.phase() != want {
			t.Fatalf("after %s: phase %s, want %s", step, r.phase(), want)
		}
		testlog.WaitFor(t, 60*time.Second, "go-zookeeper's session after "+step, func() error {
			data, _, err := gz.Get("/gone-" + step)
			if err != nil {
				return err
			}
			if string(data) != step {
				return fmt.Errorf("data %q", data)
			}
			return nil
		})
		if gz.SessionID() != session {
			t.Fatalf("after %s: go-zookeeper's session %#x became %#x", step, session, gz.SessionID())
		}
	}
	if ss := p.tap.SwitchStatus(); ss.ZxidsRewritten == 0 {
		t.Errorf("the proxy that switched back by itself rewrote no zxid: %+v", ss)
	}
	zk := r.superZK(t)
	if data, _, err := zk.GetData(ctx, "/gone-commit"); err != nil || string(data) != "commit" {
		t.Fatalf("ZooKeeper's /gone-commit: %q %v", data, err)
	}
}

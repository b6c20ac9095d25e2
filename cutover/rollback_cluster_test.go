package cutover

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// newRollbackClusterRig is a three-node journal (node processes, killable),
// each node running the reverse mirror beside it as `serve --zk` does (it
// applies on the leader only), in front of the rollback tests' ensemble.
// mirror, when not nil, changes each node's reverse-mirror spec.
func newRollbackClusterRig(t *testing.T, mirror func(*testproc.ReverseMirrorSpec)) *rig {
	t.Helper()
	r := newClusterRigWith(t, rollbackEnsemble(), func(r *rig, s *testproc.JournalSpec) {
		s.SuperDigest = znode.DigestID(rollbackSuper)
		s.ReverseMirror = testproc.ReverseMirrorSpec{Hosts: r.ens.Hosts(), SuperCred: rollbackSuper}
		if mirror != nil {
			mirror(&s.ReverseMirror)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range r.procs {
				t.Logf("journal node %s's log:\n%s", p.Spec.ID, testproc.LogTail(p.Spec.LogFile(), 80))
			}
		}
	})
	return r
}

// clusterSide is one proxy of a cluster rig and the clients on it: kazoo and
// go-zookeeper sessions begun on ZooKeeper (handed to the journal at the
// cutover and back at the rollback).
type clusterSide struct {
	id, addr string
	p        *proxy     // an in-process proxy, or
	proc     *proxyProc // a proxy process (kill -9)
	r        *rig
	k        *kazoo
	ksession string
	gz       *gozk.Conn
	gsession int64
	acked    []ackedWrite // acknowledged in primary, through this proxy
	kacked   []kazooWrite
}

// kazooWrite is a write kazoo_rollback.py saw acknowledged.
type kazooWrite struct {
	Path      string  `json:"path"`
	Data      string  `json:"data"`
	ACL       [][]any `json:"acl"`
	Ephemeral bool    `json:"ephemeral"`
	Gone      bool    `json:"gone"`
}

func (w kazooWrite) acl(t *testing.T) []znode.ACL {
	t.Helper()
	var out []znode.ACL
	for _, a := range w.ACL {
		perms, ok1 := a[0].(float64)
		scheme, ok2 := a[1].(string)
		id, ok3 := a[2].(string)
		if !ok1 || !ok2 || !ok3 {
			t.Fatalf("kazoo's ACL %v", w.ACL)
		}
		out = append(out, znode.ACL{Perms: znode.Perm(perms), ID: znode.ID{Scheme: scheme, ID: id}})
	}
	return out
}

// startSide starts proxy id and its clients, whose sessions time out after
// sessionTimeout; roots are /<id>-….
func (r *rig) startSide(t *testing.T, id string, sessionTimeout time.Duration) *clusterSide {
	t.Helper()
	p := r.startProxyWith(id, r.jc, func(c *dualwrite.Config, _ *AgentConfig) { c.Auth = []string{"digest:" + rollbackSuper} })
	return r.startClients(t, &clusterSide{id: id, addr: p.tap.Addr(), p: p, r: r}, sessionTimeout)
}

// startProcSide is startSide with the proxy in a process of its own, its
// clients' sessions timing out after sessionTimeout.
func (r *rig) startProcSide(t *testing.T, id string, sessionTimeout time.Duration) *clusterSide {
	t.Helper()
	p := r.startProxyProc(t, id, "digest:"+rollbackSuper)
	return r.startClients(t, &clusterSide{id: id, addr: p.spec.Listen, proc: p, r: r}, sessionTimeout)
}

func (r *rig) startClients(t *testing.T, s *clusterSide, sessionTimeout time.Duration) *clusterSide {
	t.Helper()
	id, addr := s.id, s.addr
	s.k = startKazooScript(t, "kazoo_rollback.py", addr, "/kz-"+id, strconv.FormatFloat(sessionTimeout.Seconds(), 'f', -1, 64))
	ready := s.k.next(t, "ready")
	s.ksession, _ = ready["session"].(string)
	s.gz, _ = gozkThroughTimeout(t, addr, sessionTimeout)
	s.gsession = s.gz.SessionID()
	if _, err := s.gz.Create("/gz-"+id, []byte("shadow"), 0, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.gz.Create("/gz-"+id+"/eph", []byte(id), gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	return s
}

// tap returns the proxy's tap state (held, backend, zxids rewritten).
func (s *clusterSide) tap(t *testing.T) dualwrite.SwitchStatus {
	t.Helper()
	if s.p != nil {
		return s.p.tap.SwitchStatus()
	}
	return s.proc.state(t, s.r).Tap
}

// checkTap fails t unless the proxy relays to backend, unheld.
func (s *clusterSide) checkTap(t *testing.T, backend dualwrite.Backend, when string) {
	t.Helper()
	if st := s.tap(t); st.Held || st.Backend != backend.String() {
		t.Fatalf("%s proxy %s: held %t, relays to %s, want %s", when, s.id, st.Held, st.Backend, backend)
	}
}

// kazooSession parses kazoo's session id.
func (s *clusterSide) kazooSession(t *testing.T) int64 {
	t.Helper()
	id, err := strconv.ParseUint(strings.TrimPrefix(s.ksession, "0x"), 16, 64)
	if err != nil {
		t.Fatalf("kazoo's session %q: %v", s.ksession, err)
	}
	return int64(id)
}

// kazooResumed asks kazoo to check its session and ephemeral (where, for
// the message).
func (s *clusterSide) kazooResumed(t *testing.T, where string) {
	t.Helper()
	s.k.send(t, "switched")
	if res := s.k.next(t, "resumed "+where); res["session"] != s.ksession || res["owner"] != s.ksession {
		t.Fatalf("proxy %s: kazoo %s: %v, want session %s owning its ephemeral", s.id, where, res, s.ksession)
	}
}

// primaryWrites writes through the proxy while the journal is primary: the
// go-zookeeper workload of every kind (primaryWorkload) and kazoo's.
func (s *clusterSide) primaryWrites(t *testing.T, round int) {
	t.Helper()
	testlog.WaitFor(t, 60*time.Second, "go-zookeeper's session on the journal through "+s.id, func() error {
		_, err := s.gz.Sync("/gz-" + s.id)
		return err
	})
	// A connection loss is every ZooKeeper client's lot (a journal node
	// drops its clients when it loses the leadership, which happens under
	// load with the tests' short Raft timings): a workload cut short by one
	// is written again under a new root, and only a complete one's
	// acknowledgements are checked (those of the cut one are not the whole
	// truth: a write whose answer was lost may have been applied). The
	// comparison of ZooKeeper with the journal covers both.
	for attempt := 1; ; attempt++ {
		root := fmt.Sprintf("/gz-%s/rt%d-%d", s.id, round, attempt)
		acked, err := tryPrimaryWorkload(s.gz, root)
		if err == nil {
			s.acked = append(s.acked, acked...)
			break
		}
		if attempt == 3 || !(errors.Is(err, gozk.ErrConnectionClosed) || errors.Is(err, gozk.ErrNoServer)) {
			t.Fatalf("proxy %s: go-zookeeper's writes on the journal under %s: %v", s.id, root, err)
		}
		t.Logf("proxy %s: go-zookeeper's writes under %s cut short by a connection loss (%v); writing them again under a new root", s.id, root, err)
	}
	var res map[string]any
	for attempt := 1; ; attempt++ {
		root := fmt.Sprintf("/kz-%s/rt%d-%d", s.id, round, attempt)
		s.k.send(t, "write "+root)
		res = s.k.next(t, "kazoo's writes in primary")
		e, failed := res["error"].(string)
		if !failed {
			break
		}
		if attempt == 3 || !strings.Contains(e, "ConnectionLoss") {
			t.Fatalf("proxy %s: kazoo's writes on the journal under %s: %v", s.id, root, e)
		}
		t.Logf("proxy %s: kazoo's writes under %s cut short by a connection loss (%s); writing them again under a new root", s.id, root, e)
	}
	raw, ok := res["acked"].([]any)
	if !ok || len(raw) == 0 {
		t.Fatalf("proxy %s: kazoo acknowledged nothing: %v", s.id, res)
	}
	for _, x := range raw {
		m, _ := x.(map[string]any)
		w := kazooWrite{}
		w.Path, _ = m["path"].(string)
		w.Data, _ = m["data"].(string)
		w.Ephemeral, _ = m["ephemeral"].(bool)
		w.Gone, _ = m["gone"].(bool)
		if acl, ok := m["acl"].([]any); ok {
			for _, a := range acl {
				e, _ := a.([]any)
				w.ACL = append(w.ACL, e)
			}
		}
		s.kacked = append(s.kacked, w)
	}
}

// checkZooKeeper checks that ZooKeeper holds every write this side saw
// acknowledged in primary (paths with their sequential names, data, ACLs,
// deletes), that the ephemerals made in primary by sessions begun on
// ZooKeeper are still there owned by them, and that go-zookeeper's session
// lives on ZooKeeper with its ephemeral made in shadow.
func (s *clusterSide) checkZooKeeper(t *testing.T, zk *zkclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	zkHolds(t, zk, s.acked)
	var kw []ackedWrite
	for _, w := range s.kacked {
		kw = append(kw, ackedWrite{path: w.Path, data: w.Data, acl: w.acl(t), gone: w.Gone})
	}
	zkHolds(t, zk, kw)
	owners := map[string]int64{"/gz-" + s.id + "/eph": s.gsession}
	for _, w := range s.kacked {
		if w.Ephemeral && !w.Gone {
			owners[w.Path] = s.kazooSession(t)
		}
	}
	for _, w := range s.acked {
		if strings.HasSuffix(w.path, "/eph") || strings.Contains(w.path, "/eph-seq-") {
			owners[w.path] = s.gsession
		}
	}
	for p, owner := range owners {
		_, st, err := zk.GetData(ctx, p)
		if err != nil || st.EphemeralOwner != owner {
			t.Errorf("proxy %s: ephemeral %s in ZooKeeper: owner %#x (%v), want %#x", s.id, p, st.EphemeralOwner, err, owner)
		}
	}
}

// waitSessionsKnown waits until the journal knows every session the
// proxies' clients hold (the cutover's sessions gate).
func (r *rig) waitSessionsKnown(t *testing.T, ctx context.Context) {
	t.Helper()
	testlog.WaitFor(t, 2*time.Minute, "the clients' sessions known to the journal", func() error {
		st, err := Inspect(ctx, r.rollbackOptions())
		if err != nil {
			return err
		}
		if st.Sessions.AtProxies == 0 || len(st.Sessions.Missing) > 0 {
			return fmt.Errorf("sessions %+v", st.Sessions)
		}
		return nil
	})
}

// cutoverRetrying runs ToPrimary, again while a gate refuses (the load's
// writes and the reconcilers' passes keep some gates moving), then checks
// that every member is primary and every proxy relays to the journal.
func (r *rig) cutoverRetrying(t *testing.T, ctx context.Context, sides []*clusterSide) {
	t.Helper()
	testlog.WaitFor(t, 3*time.Minute, "the cutover to primary", func() error {
		rep, err := ToPrimary(ctx, r.rollbackOptions())
		var ge *GateError
		var ae *AbortError
		switch {
		case err == nil:
			t.Logf("cutover: pause %s", rep.Pause)
			return nil
		case errors.As(err, &ge), errors.As(err, &ae):
			return err
		}
		t.Fatalf("cutover: %v\nsteps %+v", err, rep)
		return nil
	})
	for id, ph := range r.phases(ctx) {
		if ph != raftjournal.PhasePrimary.String() {
			t.Fatalf("after the cutover member %s is %s", id, ph)
		}
	}
	for _, s := range sides {
		s.checkTap(t, dualwrite.BackendJournal, "after the cutover")
	}
}

// checkRolledBack checks a rollback's outcome: committed, the rebaseline's
// comparison clean, every answering member shadow, every proxy relaying to
// ZooKeeper again, unheld.
func (r *rig) checkRolledBack(t *testing.T, ctx context.Context, rep *Report, sides []*clusterSide) {
	t.Helper()
	for _, s := range rep.Steps {
		t.Logf("rollback step %s ok=%t: %s", s.Name, s.OK, s.Detail)
	}
	if rep.Outcome != "committed" {
		t.Fatalf("rollback outcome %q", rep.Outcome)
	}
	if last := rep.Steps[len(rep.Steps)-1]; last.Name != "rebaseline" || !strings.Contains(last.Detail, "none differs") {
		t.Fatalf("the rollback's last step: %+v", last)
	}
	for id, ph := range r.phases(ctx) {
		if ph != raftjournal.PhaseShadow.String() {
			t.Fatalf("after the rollback member %s is %s", id, ph)
		}
	}
	for _, s := range sides {
		s.checkTap(t, dualwrite.BackendZooKeeper, "after the rollback")
		if ss := s.tap(t); ss.ZxidsRewritten == 0 {
			t.Errorf("proxy %s rewrote no zxid on the way back: %+v", s.id, ss)
		}
	}
	t.Logf("rollback: clients held for %s", rep.Pause)
}

// checkSessions checks that go-zookeeper's and kazoo's sessions on every
// proxy are the ones begun on ZooKeeper before the cutover.
func checkSessions(t *testing.T, sides []*clusterSide, where string) {
	t.Helper()
	for _, s := range sides {
		testlog.WaitFor(t, 60*time.Second, "go-zookeeper's session through "+s.id+" "+where, func() error {
			_, err := s.gz.Sync("/gz-" + s.id)
			return err
		})
		if id := s.gz.SessionID(); id != s.gsession {
			t.Fatalf("proxy %s: go-zookeeper's session %#x became %#x %s", s.id, s.gsession, id, where)
		}
		s.kazooResumed(t, where)
	}
}

// mirroringResumes writes through every proxy on ZooKeeper and waits until
// every live journal member has the writes (each proxy's mirror into the
// journal resumed).
func (r *rig) mirroringResumes(t *testing.T, ctx context.Context, sides []*clusterSide, tag string) {
	t.Helper()
	for _, s := range sides {
		p := fmt.Sprintf("/gz-%s/%s", s.id, tag)
		if _, err := s.gz.Create(p, []byte(tag), 0, gozk.WorldACL(gozk.PermAll)); err != nil {
			t.Fatalf("proxy %s: a write on ZooKeeper after the rollback: %v", s.id, err)
		}
		if _, err := s.gz.Set("/gz-"+s.id, []byte(tag), -1); err != nil {
			t.Fatal(err)
		}
		for _, a := range r.liveAdmins() {
			admin := raftjournal.NewAdminClient(a, creds())
			testlog.WaitFor(t, 60*time.Second, "proxy "+s.id+"'s mirror of "+p+" on member "+a, func() error {
				n, ok, err := admin.GetNode(ctx, p, true)
				if err != nil || !ok || string(n.Data) != tag {
					return fmt.Errorf("%v %v %v", n, ok, err)
				}
				if n, ok, err = admin.GetNode(ctx, "/gz-"+s.id, true); err != nil || !ok || string(n.Data) != tag {
					return fmt.Errorf("/gz-%s: %v %v %v", s.id, n, ok, err)
				}
				return nil
			})
		}
	}
}

// waitMirrorCaughtUp waits until ZooKeeper holds every journal write (the
// reverse mirror's outbox is empty).
func (r *rig) waitMirrorCaughtUp(t *testing.T, ctx context.Context) {
	t.Helper()
	testlog.WaitFor(t, 2*time.Minute, "the reverse mirror to catch up", func() error {
		js, err := raftjournal.NewAdminClient(r.liveAdmins()[0], creds()).CutoverState(ctx, "zk2raft/")
		if err != nil || js.ReverseMirror == nil || js.ReverseMirror.PendingEntries > 0 {
			return fmt.Errorf("%+v %v", js.ReverseMirror, err)
		}
		return nil
	})
}

// liveAdmins returns the admin addresses of the journal processes that run.
func (r *rig) liveAdmins() []string {
	var out []string
	for _, p := range r.procs {
		if exited, _ := p.Exited(); !exited {
			out = append(out, p.Spec.AdminAddr)
		}
	}
	return out
}

// membersEqualZooKeeper compares ZooKeeper with every live journal member's
// tree (read over its admin port after a read barrier, raw owners), node by
// node, every field; the differences, member by member, are the error. All
// members equal to ZooKeeper is all three agreeing.
func (r *rig) membersEqualZooKeeper(ctx context.Context) error {
	var errs []error
	admins := r.liveAdmins()
	if len(admins) == 0 {
		return errors.New("no journal member runs")
	}
	for _, a := range admins {
		var nodes []*znode.Node
		admin := raftjournal.NewAdminClient(a, creds()).WithZooKeeperAuth([]string{"digest:" + rollbackSuper})
		if err := admin.WalkTree(ctx, "/", true, func(n *znode.Node) error { nodes = append(nodes, n); return nil }); err != nil {
			errs = append(errs, fmt.Errorf("member %s: %w", a, err))
			continue
		}
		src, err := verify.NewZooKeeperSource(verify.ZKOptions{Hosts: r.ens.Hosts(), Auth: []zkclient.Auth{{Scheme: "digest", Cred: []byte(rollbackSuper)}}})
		if err != nil {
			return err
		}
		rep, err := verify.Compare(ctx, src, verify.MemorySource(verify.Info{URI: "journal-admin://" + a, Scheme: "journal", RawOwners: true, ExtendedTypes: true}, nodes, nil), verify.DefaultConfig())
		src.Close()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("member %s: %w", a, err))
		case !rep.Equal():
			var b strings.Builder
			verify.WriteText(&b, rep)
			errs = append(errs, fmt.Errorf("member %s differs from ZooKeeper:\n%s", a, b.String()))
		case rep.Compared == 0:
			errs = append(errs, fmt.Errorf("member %s: no node compared", a))
		}
	}
	return errors.Join(errs...)
}

// TestRollbackCluster is the rollback with several proxies and a three-node
// journal (issue 16): two proxies, on each a kazoo and a go-zookeeper
// session begun on ZooKeeper; cutover to primary; writes of every kind
// through both proxies on the journal (creates of every mode, sequentials,
// multi, setData, setACL, deletes, ephemerals; kazoo's and go-zookeeper's);
// a rollback whose drain would outlast half the sessions' timeout is
// refused, the clients kept on the journal with their sessions; a
// journal-minted session with an ephemeral; then the rollback. Checked
// after it: every member is shadow and both proxies relay to ZooKeeper;
// ZooKeeper holds every write acknowledged in primary (paths with their
// sequential names, data, ACLs, deletes, the ephemerals with their owners);
// the sessions of kazoo and go-zookeeper on both proxies are the same; the
// journal-minted session expired with its ephemeral; the mirroring into the
// journal resumes through both proxies; and ZooKeeper equals each of the
// three journal members, node by node.
//
// No rehearsal load runs here: on a three-node journal whose leadership
// moves under load it reported a write applied twice (its check after a
// connection loss reads without a sync), and its watchers' reconnects hit
// go-zookeeper v1.0.4's own data race (Conn.lastZxid, sendSetWatches
// against recvLoop) under -race.
func TestRollbackCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := newRollbackClusterRig(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// Sessions of 20 s: a forward cutover's hold under load (8 s seen) plus
	// the time since a client's last ping stays within them.
	sides := []*clusterSide{r.startSide(t, "p1", 20*time.Second), r.startSide(t, "p2", 20*time.Second)}
	r.waitSessionsKnown(t, ctx)
	r.cutoverRetrying(t, ctx, sides)
	checkSessions(t, sides, "on the journal")

	for _, s := range sides {
		s.primaryWrites(t, 1)
	}
	// A rollback whose drain would outlast the clients' sessions is
	// refused: held clients cannot ping, so the drain and the commit get
	// half the shortest session timeout (20 s here); the hook stands for a
	// drain slower than that (a deliberate delay, not a wait for an event).
	// The clients go on on the journal with their sessions.
	o := r.rollbackOptions()
	o.stepHook = func(step string) error {
		if step == "hold" {
			<-time.After(11 * time.Second)
		}
		return nil
	}
	rep, err := ToShadow(ctx, o)
	var ae *RollbackAbortError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "half the shortest session timeout") {
		t.Fatalf("a rollback whose drain outlasts half the sessions' timeout: want it refused, saying why; got %v (report %+v)", err, rep)
	}
	t.Logf("refused: %v", err)
	for _, s := range sides {
		s.checkTap(t, dualwrite.BackendJournal, "after the refused rollback")
	}
	checkSessions(t, sides, "on the journal after the refused rollback")

	// A session the journal mints, through the second proxy: it cannot live
	// on in ZooKeeper; it expires at the rollback, with its ephemeral.
	minted, _ := gozkThrough(t, sides[1].addr)
	mintedID := minted.SessionID()
	if !raftjournal.JournalSession(mintedID) {
		t.Fatalf("a new session through the switched proxy is %#x, not the journal's", mintedID)
	}
	testlog.WaitFor(t, 60*time.Second, "the journal-minted session's ephemeral", func() error {
		_, err := minted.Create("/gz-p2/minted-eph", nil, gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll))
		switch {
		case err == nil, errors.Is(err, gozk.ErrNodeExists): // a retry after a connection loss: its own
			return nil
		case errors.Is(err, gozk.ErrConnectionClosed), errors.Is(err, gozk.ErrNoServer):
			return err
		}
		t.Fatal(err)
		return nil
	})

	rep, err = ToShadow(ctx, r.rollbackOptions())
	if err != nil {
		t.Fatalf("rollback: %v\nsteps %+v", err, rep)
	}
	r.checkRolledBack(t, ctx, rep, sides)

	zk := r.superZK(t)
	for _, s := range sides {
		s.checkZooKeeper(t, zk)
	}
	checkSessions(t, sides, "back on ZooKeeper")
	testlog.WaitFor(t, 60*time.Second, "the journal-minted session to expire", func() error {
		if id := minted.SessionID(); id == mintedID || minted.State() != gozk.StateHasSession {
			return fmt.Errorf("session %#x, state %v", id, minted.State())
		}
		return nil
	})
	minted.Close()
	if _, _, err := zk.GetData(ctx, "/gz-p2/minted-eph"); !errors.Is(err, zkclient.ErrNoNode) {
		t.Errorf("the journal-minted session's ephemeral in ZooKeeper: %v", err)
	}
	r.mirroringResumes(t, ctx, sides, "after-rollback")
	// The proxies' reconcilers may still repair what the keeper's deletes
	// left; the comparison is clean once they have.
	testlog.WaitFor(t, 2*time.Minute, "ZooKeeper equal to each of the three journal members", func() error { return r.membersEqualZooKeeper(ctx) })
	for _, s := range sides {
		s.k.send(t, "stop")
	}
	t.Logf("wall time %s", time.Since(start).Round(time.Second))
}

// TestRollbackClusterLeaderKilled: two round trips through two proxies
// and a three-node journal, and in each rollback the journal's leader — the
// node whose reverse mirror applies — is killed with kill -9:
//
//   - right after the rollback held the proxies, with journal writes still
//     owed to ZooKeeper (the mirror is throttled to one entry per multi,
//     150 ms apart): the new leader's mirror resumes from ZooKeeper's marker
//     and the drain goes on;
//   - right after the commit, before its mirror was seen letting go of the
//     ZooKeeper sessions it kept: the proxies switch back without waiting
//     for the election (the sessions the dead mirror kept run out in
//     ZooKeeper meanwhile), the clients resume them, and a journal-minted
//     session's ephemeral still goes.
//
// The rollback either commits, or refuses with the journal still primary
// and the proxies released to it, saying so — and then a second rollback
// commits. Either way: ZooKeeper holds every write acknowledged in primary
// through both proxies, the sessions of kazoo and go-zookeeper on both
// proxies survive, mirroring resumes through both, and ZooKeeper equals all
// three members once the killed node is back.
func TestRollbackClusterLeaderKilled(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := newRollbackClusterRig(t, func(m *testproc.ReverseMirrorSpec) { m.Throttle, m.MaxBatchOps = 150*time.Millisecond, 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// The throttled drain holds the clients for seconds (9–17 s here under
	// load), and the drain and the commit get half the shortest session
	// timeout: sessions of 40 s leave it 20 s.
	sides := []*clusterSide{r.startSide(t, "p1", 40*time.Second), r.startSide(t, "p2", 40*time.Second)}
	r.waitSessionsKnown(t, ctx)
	for round, killAt := range []string{"hold", "commit"} {
		round++
		r.cutoverRetrying(t, ctx, sides)
		checkSessions(t, sides, "on the journal")
		for _, s := range sides {
			s.primaryWrites(t, round)
		}
		// A session the journal mints, with an ephemeral: whichever node
		// leads after the commit, it must not outlive the rollback in
		// ZooKeeper.
		minted, _ := gozkThrough(t, sides[1].addr)
		mintedEph := fmt.Sprintf("/gz-p2/minted-%d", round)
		testlog.WaitFor(t, 60*time.Second, "the journal-minted session's ephemeral", func() error {
			_, err := minted.Create(mintedEph, nil, gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll))
			if err == nil || errors.Is(err, gozk.ErrNodeExists) {
				return nil
			}
			return err
		})

		if killAt == "commit" {
			// This round is about the commit, not the drain: the
			// throttled mirror catches up first.
			r.waitMirrorCaughtUp(t, ctx)
		}
		o := r.rollbackOptions()
		o.MaxLag = 5 * time.Minute // the throttled mirror lags on purpose
		o.HoldTimeout = 45 * time.Second
		var killed *testproc.Journal
		pending := -1
		o.stepHook = func(step string) error {
			if step != killAt || killed != nil {
				return nil
			}
			for _, a := range r.liveAdmins() {
				if js, err := raftjournal.NewAdminClient(a, creds()).CutoverState(ctx, "zk2raft/"); err == nil && js.ReverseMirror != nil {
					pending = js.ReverseMirror.PendingEntries
					break
				}
			}
			lp, err := r.leaderProc(ctx)
			if err != nil {
				return err
			}
			killed = lp
			lp.Kill()
			return nil
		}
		rep, err := ToShadow(ctx, o)
		if killed == nil {
			t.Fatalf("round %d: the rollback did not reach the %s step: %v\nsteps %+v", round, killAt, err, rep)
		}
		t.Logf("round %d: killed the leader %s after the %s step with %d journal entries owed to ZooKeeper", round, killed.Spec.ID, killAt, pending)
		if killAt == "hold" && pending <= 0 {
			t.Fatalf("the leader was killed with %d entries owed to ZooKeeper: the drain had nothing to resume", pending)
		}
		var ae *RollbackAbortError
		switch {
		case err == nil:
			t.Logf("round %d: the rollback committed", round)
		case errors.As(err, &ae) && killAt == "hold":
			// Refused, with nothing lost: the journal is still primary and
			// the proxies relay to it again; a second rollback goes through.
			t.Logf("round %d: the rollback refused: %v", round, err)
			for id, ph := range r.phases(ctx) {
				if ph != raftjournal.PhasePrimary.String() {
					t.Fatalf("after the refused rollback member %s is %s", id, ph)
				}
			}
			for _, s := range sides {
				s.checkTap(t, dualwrite.BackendJournal, "after the refused rollback")
			}
			r.waitMirrorCaughtUp(t, ctx)
			if rep, err = ToShadow(ctx, r.rollbackOptions()); err != nil {
				t.Fatalf("the second rollback: %v\nsteps %+v", err, rep)
			}
		default:
			t.Fatalf("round %d: rollback with the leader killed after the %s step: %v\nsteps %+v", round, killAt, err, rep)
		}
		r.checkRolledBack(t, ctx, rep, sides)
		if killAt == "commit" {
			// Every node runs a mirror: the report must not say otherwise
			// while the others elect a leader.
			for _, st := range rep.Steps {
				if st.Name == "switch" && strings.Contains(st.Detail, "runs no reverse mirror") {
					t.Errorf("round %d: the switch step says %q", round, st.Detail)
				}
			}
		}
		// The test's own client straight to ZooKeeper is closed before the
		// next cutover, whose direct-clients gate would refuse it.
		zk := r.superZK(t)
		for _, s := range sides {
			s.checkZooKeeper(t, zk)
		}
		checkSessions(t, sides, "back on ZooKeeper")
		testlog.WaitFor(t, 2*time.Minute, "the journal-minted session's ephemeral to leave ZooKeeper", func() error {
			if _, _, err := zk.GetData(ctx, mintedEph); !errors.Is(err, zkclient.ErrNoNode) {
				return fmt.Errorf("%s: %v", mintedEph, err)
			}
			return nil
		})
		minted.Close()

		// The killed node comes back and catches up.
		spec := killed.Spec
		spec.Bootstrap, spec.Join = false, ""
		for i, p := range r.procs {
			if p == killed {
				r.procs[i] = testproc.StartJournal(t, spec)
				r.procs[i].WaitListening(t, spec.AdminAddr, time.Minute)
			}
		}
		r.mirroringResumes(t, ctx, sides, fmt.Sprintf("after-rollback-%d", round))
		testlog.WaitFor(t, 2*time.Minute, "ZooKeeper equal to each of the three journal members", func() error { return r.membersEqualZooKeeper(ctx) })
		if n := len(r.liveAdmins()); n != 3 {
			t.Fatalf("%d journal members run, want 3", n)
		}
		zk.Close()
	}
	for _, s := range sides {
		s.k.send(t, "stop")
	}
	t.Logf("wall time %s", time.Since(start).Round(time.Second))
}

// TestRollbackClusterProxyKilled: of two proxies in front of a three-node
// journal, the second runs in a process of its own and is killed with
// kill -9 in the middle of a rollback, twice.
//
// While it holds, and started again at once on the same addresses and
// state directory: the restarted proxy fences the rollback off (its state
// directory says a rollback held it) and follows the journal, still
// primary; the rollback refuses before its commit, saying so, and both
// proxies relay to the journal again. Nothing is lost.
//
// After the commit, started again before the command ends: the command
// says the journal is shadow and the proxy did not switch back; the
// restarted proxy relays to ZooKeeper (it read the committed phase), with
// the journal's zxid map, and its switch record is gone.
//
// Throughout, the sessions of kazoo and go-zookeeper on both proxies (begun
// on ZooKeeper) survive, and ZooKeeper ends with every write acknowledged
// in primary and equal to each journal member.
func TestRollbackClusterProxyKilled(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := newRollbackClusterRig(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// The killed proxy's clients ride out its restart: their sessions'
	// timeout covers a race-built process starting under load.
	sides := []*clusterSide{r.startSide(t, "p1", 20*time.Second), r.startProcSide(t, "p2", 30*time.Second)}
	p2 := sides[1].proc
	r.waitSessionsKnown(t, ctx)
	r.cutoverRetrying(t, ctx, sides)
	checkSessions(t, sides, "on the journal")
	for _, s := range sides {
		s.primaryWrites(t, 1)
	}

	// Killed while holding, and back before the drain.
	o := r.rollbackOptions()
	o.stepHook = func(step string) error {
		if step == "hold" {
			p2.proc.Kill()
			p2.startOnly(t, r, false)
		}
		return nil
	}
	rep, err := ToShadow(ctx, o)
	var ae *RollbackAbortError
	if !errors.As(err, &ae) || rep == nil || rep.Outcome != "aborted" {
		t.Fatalf("a proxy killed and restarted during the rollback's hold: want the rollback refused, got %v (report %+v)", err, rep)
	}
	t.Logf("killed while holding: %v", err)
	for id, ph := range r.phases(ctx) {
		if ph != raftjournal.PhasePrimary.String() {
			t.Fatalf("after the refused rollback member %s is %s", id, ph)
		}
	}
	for _, s := range sides {
		s.checkTap(t, dualwrite.BackendJournal, "after the refused rollback")
	}
	checkSessions(t, sides, "on the journal after the refused rollback")
	for _, s := range sides {
		s.primaryWrites(t, 2)
	}

	// Killed after the commit, before the switch back; started again
	// before the command ends.
	o = r.rollbackOptions()
	o.stepHook = func(step string) error {
		switch step {
		case "commit":
			p2.proc.Kill()
		case "switch":
			p2.startOnly(t, r, false)
		}
		return nil
	}
	rep, err = ToShadow(ctx, o)
	if err == nil || rep == nil || rep.Outcome != "committed" || !strings.Contains(err.Error(), "did not switch back") {
		t.Fatalf("a proxy killed after the rollback's commit: want committed and a proxy not switched back, got %v (report %+v)", err, rep)
	}
	t.Logf("killed after the commit: %v", err)
	for _, s := range rep.Steps {
		t.Logf("rollback step %s ok=%t: %s", s.Name, s.OK, s.Detail)
	}
	if last := rep.Steps[len(rep.Steps)-1]; last.Name != "rebaseline" || !strings.Contains(last.Detail, "none differs") {
		t.Fatalf("the rollback's last step: %+v", last)
	}
	for id, ph := range r.phases(ctx) {
		if ph != raftjournal.PhaseShadow.String() {
			t.Fatalf("after the rollback member %s is %s", id, ph)
		}
	}
	for _, s := range sides {
		s.checkTap(t, dualwrite.BackendZooKeeper, "after the rollback")
	}
	if SwitchedBefore(p2.spec.QueueDir) || heldBefore(p2.spec.QueueDir) != "" {
		t.Errorf("the restarted proxy relays to ZooKeeper in shadow but its state directory says switched %t, held by %q: its next start would wait for the journal",
			SwitchedBefore(p2.spec.QueueDir), heldBefore(p2.spec.QueueDir))
	}

	zk := r.superZK(t)
	for _, s := range sides {
		s.checkZooKeeper(t, zk)
	}
	checkSessions(t, sides, "back on ZooKeeper")
	if ss := sides[1].tap(t); ss.ZxidsRewritten == 0 {
		t.Errorf("the restarted proxy rewrote no zxid: %+v", ss)
	}
	r.mirroringResumes(t, ctx, sides, "after-rollback")
	testlog.WaitFor(t, 2*time.Minute, "ZooKeeper equal to each of the three journal members", func() error { return r.membersEqualZooKeeper(ctx) })
	for _, s := range sides {
		s.k.send(t, "stop")
	}
	t.Logf("wall time %s", time.Since(start).Round(time.Second))
}

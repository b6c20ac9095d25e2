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
	if last := rep.Steps[len(rep.Steps)-1]; last.Name != "rebaseline" || !rebaselineClean(last.Detail) {
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

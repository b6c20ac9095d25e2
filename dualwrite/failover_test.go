package dualwrite

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/verify"
)

// compareView verifies ZooKeeper's subtree at root against a journal read
// through view (a live side the comparison re-reads).
func compareView(t testing.TB, hosts []string, root string, view JournalView, creds ...string) *verify.Report {
	t.Helper()
	return compareZooKeeper(t, hosts, root, viewSource{view}, creds...)
}

// TestTapJournalFailover is issue 12 item 7: a tap given one journal member
// (the leader, a process) keeps delivering when that member is killed with
// SIGKILL and the other two elect a leader: it learned them from the
// cluster, and its queue drains without the dead member coming back. The
// journal then holds exactly ZooKeeper's subtree.
func TestTapJournalFailover(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ens := testEnsemble(t)
	jc := startJournalCluster(t)
	lead := jc.leader()
	if lead < 0 {
		t.Fatal("no journal leader")
	}
	cl, err := importer.NewJournalCluster([]string{jc.specs[lead].AdminAddr}, testCreds(), testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	tap := startTap(t, ens.Hosts(), cl, nil)
	root := freshRoot(t)
	conn, _, err := zk.Connect([]string{tap.Addr()}, 30*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	write := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := conn.Create(fmt.Sprintf("%s/n%d", root, i), []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := conn.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	write(0, 50)
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	members := tap.Status().Journal.Members
	for _, s := range jc.specs {
		if !slices.Contains(members, s.AdminAddr) {
			t.Fatalf("the tap knows members %v, not %s: it did not learn the cluster", members, s.AdminAddr)
		}
	}
	t.Logf("killing %s, the leader the tap reaches the journal through", jc.specs[lead].ID)
	jc.kill(lead)
	write(50, 200)
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatalf("the queue did not drain with %s down: %v (status %+v)", jc.specs[lead].ID, err, tap.Status())
	}
	if st := tap.Status().Journal; st.State != "reachable" || st.Members[0] == jc.specs[lead].AdminAddr {
		t.Fatalf("journal state %+v: want reachable through another member", st)
	}
	requireEqual(t, compareView(t, ens.Hosts(), root, FailoverView(cl.AdminAddrs, func(a string) *raftjournal.AdminClient { return raftjournal.NewAdminClient(a, testCreds()) })), root)
}

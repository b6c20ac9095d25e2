package reversemirror_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/verify"
)

// TestMirrorZooKeeperLeaderKilled: the ZooKeeper leader is killed with
// SIGKILL while the mirror writes to a three-server ensemble (throttled, so
// it owes entries at that moment). Writes whose outcome the loss leaves
// unknown are settled by re-reading the marker; the mirror ends with
// ZooKeeper equal to the journal and no error.
func TestMirrorZooKeeperLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a three-server ensemble")
	}
	ens := zktest.New(t, ensembleOptions(3))
	n, addr := primaryNode(t)
	f := n.FSM()
	m := runMirror(t, n, func(c *reversemirror.Config) {
		c.ZooKeeper.Hosts = ens.Hosts()
		c.MaxBatchOps, c.Throttle = 2, 10*time.Millisecond
	})
	root := testRoot(t, "/zkleaderkilled")
	c := gozk(t, addr)
	all := zk.WorldACL(zk.PermAll)
	if _, err := c.Create(root, nil, 0, all); err != nil {
		t.Fatal(err)
	}
	// A bounded workload, faster than the throttled mirror: it owes entries
	// when ZooKeeper's leader dies.
	var wg sync.WaitGroup
	for w := range 2 {
		wc := gozk(t, addr)
		mine := fmt.Sprintf("%s/w%d", root, w)
		if _, err := wc.Create(mine, nil, 0, all); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				var err error
				if i%2 == 0 {
					_, err = wc.Create(mine+"/item-", []byte(fmt.Sprint(i)), zk.FlagSequence, all)
				} else {
					_, err = wc.Set(mine, []byte(fmt.Sprint(i)), -1)
				}
				if err != nil {
					t.Errorf("journal write: %v", err)
					return
				}
			}
		}()
	}
	testlog.WaitFor(t, time.Minute, "the mirror mid-stream", func() error {
		if st := f.MirrorStatus(); st.Acked <= st.Start || st.Pending < 20 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, err := ens.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := f.MirrorStatus()
	if err := ens.Kill(leader); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed ZooKeeper server %d (the leader) with %d journal entries owed", leader, before.Pending)
	testlog.WaitFor(t, 2*time.Minute, "the mirror past the kill", func() error {
		if st := f.MirrorStatus(); st.Acked <= before.LastIndex {
			return fmt.Errorf("acked %d, want past %d (mirror %+v)", st.Acked, before.LastIndex, m.Status())
		}
		return nil
	})
	wg.Wait()
	waitDrained(t, f, m)
	var hosts []string
	for _, s := range ens.Servers() {
		if s.ID != leader {
			hosts = append(hosts, s.ClientAddr)
		}
	}
	rep := compareReportOn(t, hosts, f, root)
	if !rep.Equal() {
		var b strings.Builder
		verify.WriteText(&b, rep)
		t.Fatalf("ZooKeeper differs from the journal under %s:\n%s", root, b.String())
	}
	t.Logf("mirror: %+v", m.Status())
}

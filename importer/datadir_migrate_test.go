package importer

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// TestMigrateFromDataDir (issue 17): a migration that reads a running
// ZooKeeper server's data directory instead of walking it. Offline into a
// fresh data dir with full verification: containers, TTL nodes and
// ephemerals keep their raw owners, so the journal's digest equals
// ZooKeeper's own at the exported zxid, and the node-by-node check against
// the data directory is equal. Online into a running journal, then again
// after deletes in ZooKeeper: the rerun sweeps the deleted nodes, judged
// against the data directory's tree, and ends verified.
func TestMigrateFromDataDir(t *testing.T) {
	t.Parallel()
	ens := zktest.New(t, zktest.Options{Servers: 1, ExtendedTypes: true})
	hosts := ens.Hosts()
	tree, err := treegen.Seed(t.Context(), hosts, treegen.Options{Profile: treegen.ProfileAdversarial, Nodes: 800, Seed: 3, Root: "/adv",
		BigChildren: 50, DeepLevels: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if tree.Counts.Container == 0 || tree.Counts.TTL == 0 || tree.Counts.Ephemeral == 0 {
		t.Fatalf("the seeded tree has %d containers, %d TTL nodes, %d ephemerals; the test needs each", tree.Counts.Container, tree.Counts.TTL, tree.Counts.Ephemeral)
	}
	zkDir := ens.Servers()[0].DataDir
	logger := testLogger(t)
	base := func() MigrateOptions {
		o := MigrateOptions{Walk: exporter.DefaultConfig(hosts), Import: DefaultOptions(), Logger: logger,
			FromDataDir: datadir.Options{DataDir: zkDir, Logger: logger}, Accept: []string{KindIPACL}}
		o.Walk.ExtendedTypes = true
		return o
	}
	checks := func(t *testing.T, sum *MigrateSummary) map[CheckName]Check {
		out := map[CheckName]Check{}
		for _, ch := range sum.Verification {
			t.Logf("check %s: %v — %s", ch.Check, ch.Result, ch.Detail)
			out[ch.Check] = ch
		}
		return out
	}

	t.Run("offline, full", func(t *testing.T) {
		o := base()
		o.Node = raftjournal.DefaultNodeConfig()
		o.Node.DataDir, o.Node.NodeID, o.Node.RaftAddr = filepath.Join(t.TempDir(), "j"), "node-1", "127.0.0.1:7000"
		o.Verify = VerifyFull
		sum, err := Migrate(t.Context(), o)
		if err != nil {
			if sum != nil && sum.Preflight != nil {
				var b strings.Builder
				_ = sum.Preflight.WriteText(&b)
				t.Log(b.String())
			}
			t.Fatal(err)
		}
		cs := checks(t, sum)
		if !strings.HasPrefix(sum.Source, "datadir://") || sum.Verdict != VerdictVerified ||
			cs[CheckZooKeeperDigest].Result != Equal || cs[CheckNodeByNode].Result != Equal || cs[CheckJournalExport].Result != Equal {
			t.Fatalf("summary: source %s, verdict %v (%s)", sum.Source, sum.Verdict, sum.VerdictReason)
		}
		if !strings.Contains(cs[CheckNodeByNode].Detail, "datadir://") {
			t.Errorf("the node-by-node check did not compare with the data directory: %s", cs[CheckNodeByNode].Detail)
		}
		// Raw owners reached the journal: read the installed data dir.
		fsm, _, err := raftjournal.OpenReadOnly(o.Node.DataDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[znode.EphemeralType]int{}
		if err := fsm.Walk(func(n *znode.Node) error { kinds[n.Kind()]++; return nil }); err != nil {
			t.Fatal(err)
		}
		if kinds[znode.Container] == 0 || kinds[znode.TTL] == 0 || kinds[znode.Ephemeral] == 0 {
			t.Errorf("the journal holds %d containers, %d TTL nodes, %d ephemerals: raw owners lost", kinds[znode.Container], kinds[znode.TTL], kinds[znode.Ephemeral])
		}
	})

	t.Run("online, then again after deletes", func(t *testing.T) {
		node := cluster(t, 1)[0]
		o := base()
		o.Journal = adminClient(node)
		// The rerun reads the journal's tree to sweep: with the generator's
		// credential, which reads its protected subtree.
		o.Walk.Auth = treeAuth(tree)
		sum, err := Migrate(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		if cs := checks(t, sum); sum.Verdict != VerdictVerified || cs[CheckZooKeeperDigest].Result != Equal {
			t.Fatalf("first run: verdict %v (%s)", sum.Verdict, sum.VerdictReason)
		}
		c, _, err := zk.Connect(hosts, 30*time.Second, zk.WithLogger(nopZKLogger{}), zk.WithLogInfo(false))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var deleted []string
		for _, op := range tree.Plan.Ops {
			p := op.Path
			if len(deleted) == 10 {
				break
			}
			if kids, st, err := c.Children(p); err == nil && len(kids) == 0 && st.EphemeralOwner == 0 && c.Delete(p, -1) == nil {
				deleted = append(deleted, p)
			}
		}
		if len(deleted) < 5 {
			t.Fatalf("deleted only %d nodes", len(deleted))
		}
		sum, err = Migrate(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		checks(t, sum)
		if sum.Swept == nil || sum.Swept.Deleted < len(deleted) || sum.Verdict != VerdictVerified {
			t.Fatalf("rerun: swept %+v, verdict %v (%s)", sum.Swept, sum.Verdict, sum.VerdictReason)
		}
		for _, p := range deleted {
			if _, ok, err := o.Journal.GetNode(t.Context(), p, true); err != nil || ok {
				t.Errorf("%s, deleted in ZooKeeper, is still in the journal (%v)", p, err)
			}
		}
		// The journal against the data directory, node by node.
		src, err := verify.Open(t.Context(), "datadir://"+zkDir, verify.OpenOptions{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		var nodes []*znode.Node
		if err := o.Journal.WithZooKeeperAuth(authStrings(o.Walk.Auth)).WalkTree(t.Context(), "/", true, func(n *znode.Node) error {
			if !znode.IsSystemPath(n.Path) {
				nodes = append(nodes, n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		tgt := verify.MemorySource(verify.Info{URI: "journal", Scheme: "journal", RawOwners: true, ExtendedTypes: true, Exclude: []string{"/zookeeper"}}, nodes, nil)
		rep, err := verify.Compare(t.Context(), src, tgt, verify.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Equal() {
			var b strings.Builder
			_ = verify.WriteText(&b, rep)
			t.Errorf("journal differs from the data directory:\n%s", b.String())
		}
	})
}

func treeAuth(tree *treegen.Tree) []zkclient.Auth {
	return []zkclient.Auth{{Scheme: tree.Credential.Scheme(), Cred: tree.Credential.Auth()}}
}

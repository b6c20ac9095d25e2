package importer

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/znode"
)

// TestMigrateResumeConvergesWithDeletes (issue 11 item 1): `migrate
// --journal` killed with SIGKILL mid-import, then znodes it had already
// imported are deleted in ZooKeeper, then the migration is run again: the
// journal must end up holding ZooKeeper's current tree, deletes included,
// and the summary may say "verified" only because a check compared the
// final state and found it equal. The rerun used to keep the deleted znodes
// and print "result verified" over two "not comparable" checks.
func TestMigrateResumeConvergesWithDeletes(t *testing.T) {
	t.Parallel()
	ens := zktest.New(t, zktest.Options{Servers: 1})
	hosts := ens.Hosts()
	tree, err := treegen.Seed(t.Context(), hosts, treegen.Options{Profile: treegen.ProfileKafka, Nodes: 3000, Seed: 5, Root: "/app"})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	node := cluster(t, 1)[0]
	admin := adminClient(node)

	// The first run, killed once the journal holds part of the tree.
	cmd := exec.Command(zk2raftBin, "migrate", "--zk", strings.Join(hosts, ","), "--path", "/app",
		"--journal", node.AdminAddr(), "--batch-bytes", "2048", "--in-flight", "1", "--no-progress")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killed := false
	deadline := time.After(2 * time.Minute)
wait:
	for {
		select {
		case err := <-exited:
			t.Logf("the first run finished before it could be killed (%v); the rerun still meets deletes", err)
			break wait
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("the first migrate did not finish in 2 minutes; stderr:\n%s", errOut.String())
		case <-time.After(2 * time.Millisecond):
			if node.FSM().NodeCount() > 600 {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-exited
				killed = true
				break wait
			}
		}
	}
	t.Logf("first run killed: %v; the journal holds %d nodes", killed, node.FSM().NodeCount())

	// Delete, in ZooKeeper, persistent leaves the journal already holds, and
	// one subtree.
	c, _, err := zk.Connect(hosts, 30*time.Second, zk.WithLogger(nopZKLogger{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var imported []*znode.Node
	if err := admin.WalkTree(t.Context(), "/app", true, func(n *znode.Node) error {
		imported = append(imported, n)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	var subtree string
	for _, n := range imported {
		if n.Path == "/app" || n.Stat.EphemeralOwner != 0 {
			continue
		}
		kids, _, err := c.Children(n.Path)
		if err != nil {
			continue // gone already, or the generator's
		}
		switch {
		case len(kids) == 0 && len(deleted) < 20:
			if err := c.Delete(n.Path, -1); err == nil {
				deleted = append(deleted, n.Path)
			}
		case len(kids) > 0 && subtree == "" && strings.Count(n.Path, "/") >= 3:
			if err := deleteRecursive(c, n.Path); err == nil {
				subtree = n.Path
				deleted = append(deleted, n.Path)
			}
		}
	}
	if len(deleted) < 10 || subtree == "" {
		t.Fatalf("could delete only %d imported nodes (subtree %q)", len(deleted), subtree)
	}

	// The rerun, as a library call.
	o := MigrateOptions{Walk: exporter.DefaultConfig(hosts), Import: DefaultOptions(), Journal: admin, Logger: testLogger(t)}
	o.Walk.Root, o.Walk.Logger = "/app", o.Logger
	sum, err := Migrate(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range sum.Verification {
		t.Logf("check %s: %v — %s", ch.Check, ch.Result, ch.Detail)
	}
	for _, p := range deleted {
		if _, ok, err := admin.GetNode(t.Context(), p, true); err != nil || ok {
			t.Errorf("%s, deleted in ZooKeeper, is still in the journal (%v)", p, err)
		}
	}
	// The journal's /app against ZooKeeper's, node by node.
	var nodes []*znode.Node
	if err := admin.WalkTree(t.Context(), "/app", true, func(n *znode.Node) error {
		nodes = append(nodes, n)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	src, err := verify.NewZooKeeperSource(verify.ZKOptions{Hosts: hosts, Chroot: "/app"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tgt := verify.MemorySource(verify.Info{URI: "journal " + node.AdminAddr(), Scheme: "journal", RawOwners: true, ExtendedTypes: true, Root: "/app"}, nodes, nil)
	rep, err := verify.Compare(t.Context(), src, tgt, verify.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Equal() {
		var b strings.Builder
		_ = verify.WriteText(&b, rep)
		t.Errorf("the journal's /app differs from ZooKeeper's after the rerun:\n%s", b.String())
	}
	// The verdict rests on a check of the final state.
	i := slices.IndexFunc(sum.Verification, func(c Check) bool { return c.Check == CheckJournalExport })
	if sum.Verdict != VerdictVerified || !sum.Verified || i < 0 || sum.Verification[i].Result != Equal {
		t.Errorf("rerun: verdict %v (%s), checks %+v; want verified by an equal %q", sum.Verdict, sum.VerdictReason, sum.Verification, CheckJournalExport)
	}
}

// deleteRecursive deletes path and its subtree in ZooKeeper.
func deleteRecursive(c *zk.Conn, path string) error {
	kids, _, err := c.Children(path)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := deleteRecursive(c, path+"/"+k); err != nil {
			return err
		}
	}
	return c.Delete(path, -1)
}

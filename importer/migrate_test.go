package importer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// TestMigrateLibrary runs migrations as a library call against a real
// ZooKeeper: option checks, a dry run, a data-dir migration with a kept
// snapshot and full verification (every check a typed outcome, the verdict
// from them), and a migration the pre-flight refuses, which leaves the
// target untouched.
func TestMigrateLibrary(t *testing.T) {
	t.Parallel()
	ens := zktest.New(t, zktest.Options{Servers: 1})
	hosts := ens.Hosts()
	c, _, err := zk.Connect(hosts, 30*time.Second, zk.WithLogger(nopZKLogger{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	open := zk.WorldACL(zk.PermAll)
	for _, p := range []string{"/app", "/app/a", "/app/b", "/app/b/c"} {
		if _, err := c.Create(p, []byte(p), 0, open); err != nil {
			t.Fatal(err)
		}
	}
	logger := testLogger(t)
	base := func() MigrateOptions {
		o := MigrateOptions{Walk: exporter.DefaultConfig(hosts), Import: DefaultOptions(), Logger: logger}
		o.Walk.Root, o.Walk.Logger = "/app", logger
		return o
	}
	dir := t.TempDir()

	for _, tc := range []struct {
		name string
		edit func(*MigrateOptions)
	}{
		{"no target", func(*MigrateOptions) {}},
		{"two targets", func(o *MigrateOptions) {
			o.Journal, o.Node.DataDir = raftjournal.NewAdminClient("127.0.0.1:1", raftjournal.Credentials{}), dir
		}},
		{"unknown accept kind", func(o *MigrateOptions) { o.DryRun, o.Accept = true, []string{"everything"} }},
		{"full verification of a journal", func(o *MigrateOptions) {
			o.Journal, o.Verify = raftjournal.NewAdminClient("127.0.0.1:1", raftjournal.Credentials{}), VerifyFull
		}},
		{"bad walk", func(o *MigrateOptions) { o.DryRun, o.Walk.Root = true, "app" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			tc.edit(&o)
			if err := o.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
			if _, err := Migrate(t.Context(), o); err == nil {
				t.Error("Migrate accepted it")
			}
		})
	}

	t.Run("dry run", func(t *testing.T) {
		o := base()
		o.DryRun = true
		sum, err := Migrate(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Preflight == nil || !sum.Preflight.OK() || sum.Nodes != 4 || sum.Installed != nil || len(sum.Verification) != 0 {
			t.Errorf("dry run summary %+v", sum)
		}
	})

	t.Run("data dir, full verification", func(t *testing.T) {
		o := base()
		o.Node = raftjournal.DefaultNodeConfig()
		o.Node.DataDir, o.Node.NodeID, o.Node.RaftAddr, o.Node.Logger = filepath.Join(dir, "j1"), "node-1", "127.0.0.1:7000", logger
		o.KeepSnapshot, o.Verify = filepath.Join(dir, "kept.snap"), VerifyFull
		var walked []string
		o.Walking = func(desc string, progress func() exporter.Progress) func() {
			walked = append(walked, desc)
			return func() { walked = append(walked, fmt.Sprint(progress().Nodes)) }
		}
		sum, err := Migrate(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(walked, []string{"export+import", "4"}) {
			t.Errorf("Walking saw %q", walked)
		}
		var names []CheckName
		for _, ch := range sum.Verification {
			names = append(names, ch.Check)
			want := Equal
			if ch.Check == CheckZooKeeperDigest {
				want = NotComparable // a subtree: ZooKeeper's digest covers the whole tree
			}
			if ch.Result != want || ch.Detail == "" {
				t.Errorf("check %q: %v (%s), want %v", ch.Check, ch.Result, ch.Detail, want)
			}
		}
		wantNames := []CheckName{CheckKeptSnapshot, CheckJournalExport, CheckInstalled, CheckZooKeeperDigest, CheckNodeByNode}
		if !slices.Equal(names, wantNames) || !sum.Verified || sum.Installed == nil || sum.Full == nil || sum.Nodes != 4 {
			t.Errorf("summary: checks %q, verified %v, installed %+v", names, sum.Verified, sum.Installed)
		}
		if _, err := os.Stat(sum.Installed.Path); err != nil {
			t.Error(err)
		}
		// The same data dir again: refused before the walk.
		if _, err := Migrate(t.Context(), o); err == nil {
			t.Error("a second migration into the same data dir was accepted")
		}
	})

	t.Run("refused by the pre-flight", func(t *testing.T) {
		if _, err := c.Create("/app/secret", nil, 0, zk.DigestACL(zk.PermAll, "u", "p")); err != nil {
			t.Fatal(err)
		}
		defer c.Delete("/app/secret", -1)
		o := base()
		o.Node = raftjournal.DefaultNodeConfig()
		o.Node.DataDir, o.Node.NodeID, o.Node.RaftAddr = filepath.Join(dir, "j2"), "node-1", "127.0.0.1:7000"
		sum, err := Migrate(t.Context(), o)
		var blocked *BlockedError
		if !errors.As(err, &blocked) || !errors.Is(err, ErrBlocked) || blocked.Blockers == 0 || sum == nil || sum.Preflight.OK() {
			t.Fatalf("Migrate: %v, summary %+v; want a BlockedError with the report", err, sum)
		}
		if _, err := os.Stat(o.Node.DataDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the refused migration touched its target: %v", err)
		}
	})
}

// TestVerdictFromChecks (issue 11 item 1): "verified" needs a check of the
// final state that found equality; "not comparable" is not success, and
// any difference denies it.
func TestVerdictFromChecks(t *testing.T) {
	tests := []struct {
		name   string
		checks []Check
		want   Verdict
		reason string
	}{
		{"none", nil, VerdictUnverified, "no check compared"},
		{"all equal", []Check{{CheckJournalExport, Equal, "x"}, {CheckNodeByNode, Equal, "y"}}, VerdictVerified, ""},
		{"equal export, digest not comparable", []Check{{CheckJournalExport, Equal, "x"}, {CheckZooKeeperDigest, NotComparable, "subtree"}}, VerdictVerified, ""},
		{"only not comparable", []Check{{CheckJournalExport, NotComparable, "held other nodes"}, {CheckZooKeeperDigest, NotComparable, "writes during the walk"}},
			VerdictUnverified, "held other nodes"},
		{"only copies compared", []Check{{CheckKeptSnapshot, Equal, "x"}, {CheckInstalled, Equal, "y"}}, VerdictUnverified, "no check compared"},
		{"node by node different", []Check{{CheckJournalExport, Equal, "x"}, {CheckNodeByNode, Different, "1 difference"}}, VerdictDifferent, "1 difference"},
		{"zookeeper's digest different", []Check{{CheckJournalExport, Equal, "x"}, {CheckZooKeeperDigest, Different, "digest 5"}}, VerdictDifferent, "digest 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := verdict(tc.checks)
			if got != tc.want || !strings.Contains(reason, tc.reason) {
				t.Errorf("verdict = %v (%q), want %v (%q)", got, reason, tc.want, tc.reason)
			}
		})
	}
}

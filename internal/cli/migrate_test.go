package cli

import (
	"encoding/json"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
)

type quietZK struct{}

func (quietZK) Printf(string, ...any) {}

func dialTestZK(t testing.TB, hosts []string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect(hosts, 30*time.Second, zk.WithLogger(quietZK{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Sync("/"); err != nil {
		t.Fatal(err)
	}
	return c
}

// checkJSON is a verification step as `migrate --json` prints it.
type checkJSON struct {
	Check  string `json:"check"`
	Result string `json:"result"` // "equal", "different", "not comparable"
	Detail string `json:"detail"`
}

func TestImportMigrateUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"import needs a snapshot", []string{"import", "--data-dir", "x"}, "--snapshot"},
		{"import needs one target", []string{"import", "--snapshot", "s"}, "exactly one of --data-dir"},
		{"import online takes no node id", []string{"import", "--snapshot", "s", "--journal", "127.0.0.1:1", "--node-id", "n"}, "offline import"},
		{"migrate needs hosts", []string{"migrate", "--data-dir", "x"}, "--zk"},
		{"migrate needs a target", []string{"migrate", "--zk", "127.0.0.1:1"}, "--dry-run"},
		{"migrate targets are exclusive", []string{"migrate", "--zk", "127.0.0.1:1", "--data-dir", "x", "--journal", "y"}, "exclusive"},
		{"migrate verify mode", []string{"migrate", "--zk", "127.0.0.1:1", "--dry-run", "--verify", "some"}, "--verify"},
		{"migrate accept kind", []string{"migrate", "--zk", "127.0.0.1:1", "--dry-run", "--accept", "everything"}, "--accept"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.args...)
			if code != ExitUsage || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut, ExitUsage, tc.want)
			}
		})
	}
}

func TestImportBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.snap")
	if err := os.WriteFile(bad, []byte("ZK2RSNAP this is not a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "journal")
	code, _, errOut := run(t, "import", "--snapshot", bad, "--data-dir", target, "--log-level", "warn")
	if code != ExitFailure || !strings.HasPrefix(errOut, "zk2raft: ") || !strings.Contains(errOut, "snapshot") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q: want 1 and one line naming the snapshot", code, errOut)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the target was created: %v", err)
	}
}

// TestMigrateEndToEnd migrates a seeded tree from a real ZooKeeper into a
// journal data dir, checks the summary's digests (ZooKeeper's own included)
// and the node-by-node verification, imports the kept snapshot into another
// data dir with the same result, and refuses to migrate into a used target.
func TestMigrateEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ZooKeeper server")
	}
	ens := zktest.New(t, zktest.Options{Servers: 1, ExtendedTypes: true})
	hosts := ens.Hosts()
	tree, err := treegen.Seed(t.Context(), hosts, treegen.Options{Profile: treegen.ProfileKafka, Nodes: 3000, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	zkConn := dialTestZK(t, hosts)
	if code, out, errOut := run(t, "dev", "digest", "--zk", ens.ConnectString(), "--align", "/zk2raft-test-align"); code != 0 {
		t.Fatalf("dev digest --align: exit %d\n%s%s", code, out, errOut)
	}

	dir := t.TempDir()
	data := filepath.Join(dir, "journal")
	kept := filepath.Join(dir, "export.snap")
	code, out, errOut := run(t, "migrate", "--zk", ens.ConnectString(), "--data-dir", data, "--keep-snapshot", kept,
		"--verify", "full", "--json", "--raft-addr", "127.0.0.1:7999", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	var sum struct {
		Nodes         int64  `json:"nodes"`
		ExportDigest  string `json:"export_digest"`
		JournalDigest string `json:"journal_digest"`
		Verified      bool   `json:"verified"`
		Verification  []checkJSON
		Serve         string `json:"serve"`
		Phases        []importer.PhaseTime
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("migrate --json: %v\n%s", err, out)
	}
	if !sum.Verified || sum.Nodes < 3000 || len(sum.Phases) < 3 {
		t.Fatalf("summary: %s", out)
	}
	for _, c := range sum.Verification {
		if c.Result != "equal" {
			t.Errorf("check %q: %s (%s)", c.Check, c.Result, c.Detail)
		}
	}
	if !strings.Contains(sum.Serve, "--raft-addr 127.0.0.1:7999") {
		t.Errorf("serve line %q", sum.Serve)
	}

	// The kept snapshot imports offline to the same journal.
	code, out, errOut = run(t, "import", "--snapshot", kept, "--data-dir", filepath.Join(dir, "again"), "--json", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	var imp map[string]any
	if err := json.Unmarshal([]byte(out), &imp); err != nil {
		t.Fatal(err)
	}
	if imp["journal_digest"] != sum.JournalDigest || imp["snapshot_digest"] != sum.ExportDigest || imp["digest_equal"] != true {
		t.Errorf("import of the kept snapshot: %s; migrate said journal %s, export %s", out, sum.JournalDigest, sum.ExportDigest)
	}

	// A used target is refused before the walk, and left as it was.
	before := listDir(t, data)
	code, _, errOut = run(t, "migrate", "--zk", ens.ConnectString(), "--data-dir", data)
	if code != ExitFailure || !strings.Contains(errOut, "holds a journal") {
		t.Fatalf("migrate into a used data dir: exit %d, %q", code, errOut)
	}
	if after := listDir(t, data); after != before {
		t.Errorf("the refused migration changed %s:\n%s\n%s", data, before, after)
	}

	// Pre-flight: another migration's control znode blocks, until accepted.
	if _, err := zkConn.Create("/migration", []byte(`{"version":0}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, "migrate", "--zk", ens.ConnectString(), "--dry-run", "--log-level", "warn")
	if code != ExitFailure || !strings.Contains(out, "BLOCKER") || !strings.Contains(out, "foreign-migration") {
		t.Fatalf("dry run with /migration: exit %d\n%s", code, out)
	}
	blocked := filepath.Join(dir, "blocked")
	code, _, errOut = run(t, "migrate", "--zk", ens.ConnectString(), "--data-dir", blocked, "--log-level", "warn")
	if code != ExitFailure || !strings.Contains(errOut, "refused") {
		t.Fatalf("migration with a blocker: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(blocked); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused migration created its target: %v", err)
	}
	code, out, _ = run(t, "migrate", "--zk", ens.ConnectString(), "--dry-run", "--accept", "foreign-migration", "--json", "--log-level", "warn")
	if code != 0 || !strings.Contains(out, `"accepted": true`) {
		t.Fatalf("dry run accepting foreign-migration: exit %d\n%s", code, out)
	}
}

func listDir(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p)
		if !fi.IsDir() {
			b.WriteString(" " + fi.ModTime().String() + " " + string(rune('0'+fi.Size()%10)))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestMigrateIntoRunningJournal migrates into a running (fresh) journal
// through its admin address; the journal ends with the export's digest.
func TestMigrateIntoRunningJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ZooKeeper server")
	}
	ens := zktest.New(t, zktest.Options{Servers: 1, ExtendedTypes: true})
	tree, err := treegen.Seed(t.Context(), ens.Hosts(), treegen.Options{Profile: treegen.ProfileConfig, Nodes: 1500, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := ln.Addr().String()
	ln.Close()
	cfg := raftjournal.DefaultNodeConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.AdminAddr, cfg.Bootstrap = "node-1", t.TempDir(), raftAddr, "127.0.0.1:0", true
	cfg.Secret = testlog.Secret() // the verbs find it in $ZK2RAFT_CLUSTER_SECRET (TestMain)
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 400*time.Millisecond, 400*time.Millisecond, 200*time.Millisecond
	n, err := raftjournal.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	code, out, errOut := run(t, "migrate", "--zk", ens.ConnectString(), "--journal", n.AdminAddr(), "--json", "--log-level", "warn", "--timeout", "2m")
	if code != 0 {
		t.Fatalf("migrate --journal: exit %d\n%s%s", code, out, errOut)
	}
	var sum struct {
		ExportDigest  string `json:"export_digest"`
		JournalDigest string `json:"journal_digest"`
		Verified      bool   `json:"verified"`
		Verification  []checkJSON
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatal(err)
	}
	if !sum.Verified || len(sum.Verification) == 0 || sum.Verification[0].Result != "equal" {
		t.Fatalf("summary: %s", out)
	}
	if got := n.Digest().String(); got != sum.JournalDigest {
		t.Errorf("node digest %s, summary says %s", got, sum.JournalDigest)
	}
}

// TestMigrateMaskedACL checks that NoAuth subtrees and masked ACLs are
// pre-flight blockers of their own kinds, so that accepting a partial copy
// (unreadable) does not also accept ACLs that would lock clients out, and that
// a migration accepting masked ACLs copies them with the subtrees below.
func TestMigrateMaskedACL(t *testing.T) {
	t.Parallel()
	root := cliRoot(t)
	maskedTree(t, root)
	hosts := sharedZK.ConnectString()

	type finding struct {
		Kind     string   `json:"kind"`
		Severity string   `json:"severity"`
		Count    int64    `json:"count"`
		Paths    []string `json:"paths"`
		Accepted bool     `json:"accepted"`
	}
	tests := []struct {
		name   string
		path   string
		accept []string
		code   int
		want   map[string]string // kind → severity, "+accepted" when accepted
	}{
		{"nothing accepted", root, nil, ExitFailure,
			map[string]string{"unreadable": "blocker", "acl-masked": "blocker"}},
		{"unreadable accepted", root, []string{"unreadable"}, ExitFailure,
			map[string]string{"unreadable": "warning+accepted", "acl-masked": "blocker"}},
		{"acl-masked accepted", root, []string{"acl-masked"}, ExitFailure,
			map[string]string{"unreadable": "blocker", "acl-masked": "warning+accepted"}},
		{"both accepted", root, []string{"unreadable", "acl-masked"}, ExitOK,
			map[string]string{"unreadable": "warning+accepted", "acl-masked": "warning+accepted"}},
		{"masked only, acl-masked accepted", root + "/masked", []string{"acl-masked"}, ExitOK,
			map[string]string{"acl-masked": "warning+accepted"}},
		{"masked only, unreadable accepted", root + "/masked", []string{"unreadable"}, ExitFailure,
			map[string]string{"acl-masked": "blocker"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"migrate", "--zk", hosts, "--path", tc.path, "--dry-run", "--json", "--log-level", "error"}
			for _, k := range tc.accept {
				args = append(args, "--accept", k)
			}
			code, out, errOut := run(t, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			var rep struct {
				Findings []finding `json:"findings"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("report is not JSON: %v\n%s", err, out)
			}
			got := map[string]string{}
			for _, f := range rep.Findings {
				if f.Kind != "unreadable" && f.Kind != "acl-masked" {
					continue
				}
				sev := f.Severity
				if f.Accepted {
					sev += "+accepted"
				}
				got[f.Kind] = sev
				want := root + "/locked"
				if f.Kind == "acl-masked" {
					want = root + "/masked"
				}
				if f.Count != 1 || len(f.Paths) != 1 || f.Paths[0] != want {
					t.Errorf("%s: count %d, paths %v; want 1, [%s]", f.Kind, f.Count, f.Paths, want)
				}
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("findings %v, want %v\n%s", got, tc.want, out)
			}
		})
	}

	// The text report says what each kind means.
	code, out, _ := run(t, "migrate", "--zk", hosts, "--path", root, "--dry-run", "--log-level", "error")
	for _, want := range []string{
		"BLOCKER  unreadable: 1 node(s) could not be read with the given credentials (NoAuth); their subtrees are not in the export",
		"BLOCKER  acl-masked: 1 node(s) came back with their ACL masked (digest:USER:x)",
		"paths: " + root + "/locked", "paths: " + root + "/masked",
	} {
		if code != ExitFailure || !strings.Contains(out, want) {
			t.Errorf("exit %d, report lacks %q:\n%s", code, want, out)
		}
	}

	// A migration accepting both copies the masked node and its child, not the
	// NoAuth subtree.
	data := filepath.Join(t.TempDir(), "journal")
	code, out, errOut := run(t, "migrate", "--zk", hosts, "--path", root, "--data-dir", data, "--accept", "unreadable", "--accept", "acl-masked",
		"--raft-addr", "127.0.0.1:7999", "--log-level", "error")
	if code != ExitOK {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"1 unreadable (NoAuth) subtree(s) (" + root + "/locked)",
		"acl masked   1 node(s) copied with a masked ACL (digest:USER:x) that no one can authenticate as (" + root + "/masked)",
		"nodes        4 ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestMigrateIPACL: every node with an ip: ACL entry is a pre-flight blocker
// for the proxy route, named with its entries; --accept ip-acl lets the
// migration through (issue 12 item 10). The ensemble answers the walk, which
// connects from 127.0.0.1, so the ip:127.0.0.1 entries admit it.
func TestMigrateIPACL(t *testing.T) {
	t.Parallel()
	root := cliRoot(t)
	c := dialTestZK(t, sharedZK.Hosts())
	ipACL := []zk.ACL{{Perms: zk.PermAll, Scheme: "ip", ID: "127.0.0.1"}}
	mixed := append(zk.WorldACL(zk.PermRead), zk.ACL{Perms: zk.PermAll, Scheme: "ip", ID: "127.0.0.0/8"})
	want := map[string]string{
		root + "/ip":       root + "/ip (ip:127.0.0.1)",
		root + "/ip/mixed": root + "/ip/mixed (ip:127.0.0.0/8)",
		root + "/b/ip":     root + "/b/ip (ip:127.0.0.1)",
	}
	for _, n := range []struct {
		path string
		acl  []zk.ACL
	}{
		{root, zk.WorldACL(zk.PermAll)},
		{root + "/ip", ipACL},
		{root + "/ip/mixed", mixed},
		{root + "/b", zk.WorldACL(zk.PermAll)},
		{root + "/b/ip", ipACL},
	} {
		if _, err := c.Create(n.path, []byte("x"), 0, n.acl); err != nil {
			t.Fatalf("create %s: %v", n.path, err)
		}
	}
	for _, accept := range []bool{false, true} {
		args := []string{"migrate", "--zk", sharedZK.ConnectString(), "--path", root, "--dry-run", "--json", "--log-level", "error"}
		wantCode, wantSev := ExitFailure, "blocker"
		if accept {
			args = append(args, "--accept", "ip-acl")
			wantCode, wantSev = ExitOK, "warning"
		}
		code, out, errOut := run(t, args...)
		if code != wantCode {
			t.Fatalf("accept %v: exit %d, want %d\n%s%s", accept, code, wantCode, out, errOut)
		}
		var rep struct {
			Findings []struct {
				Kind     string   `json:"kind"`
				Severity string   `json:"severity"`
				Count    int64    `json:"count"`
				Paths    []string `json:"paths"`
			} `json:"findings"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, out)
		}
		found := false
		for _, f := range rep.Findings {
			if f.Kind != "ip-acl" {
				continue
			}
			found = true
			got := map[string]bool{}
			for _, p := range f.Paths {
				got[p] = true
			}
			if f.Severity != wantSev || f.Count != 3 || len(f.Paths) != 3 {
				t.Errorf("accept %v: ip-acl %s, count %d, paths %v", accept, f.Severity, f.Count, f.Paths)
			}
			for _, p := range want {
				if !got[p] {
					t.Errorf("accept %v: ip-acl does not name %q: %v", accept, p, f.Paths)
				}
			}
		}
		if !found {
			t.Fatalf("accept %v: no ip-acl finding:\n%s", accept, out)
		}
	}
	code, out, _ := run(t, "migrate", "--zk", sharedZK.ConnectString(), "--path", root, "--dry-run", "--log-level", "error")
	if code != ExitFailure || !strings.Contains(out, "BLOCKER  ip-acl: 3 node(s) have ip: ACL entries, which the dual-write proxy cannot honour") ||
		!strings.Contains(out, "the proxy's") {
		t.Errorf("exit %d, text report:\n%s", code, out)
	}
}

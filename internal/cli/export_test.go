package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// sharedZK is the single-server ensemble (extended types on) shared by the CLI
// tests that inject no faults; each works under its own root.
var sharedZK *zktest.Ensemble

func TestMain(m *testing.M) {
	// Every verb the tests run finds the test cluster's secret here, as an
	// operator's would in $ZK2RAFT_CLUSTER_SECRET_FILE.
	os.Setenv(envClusterSecret, string(testlog.Secret()))
	zktest.Main(m, zktest.Options{Servers: 1, ExtendedTypes: true}, &sharedZK)
}

// testAdmin is a client of the admin endpoint at addr with the tests' secret.
func testAdmin(addr string) *raftjournal.AdminClient {
	return raftjournal.NewAdminClient(addr, raftjournal.Credentials{Secret: testlog.Secret()})
}

// adminGet is GET on an admin endpoint with the tests' secret.
func adminGet(t *testing.T, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+string(testlog.Secret()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// exportTree creates a small tree under root: nil and empty data, binary data,
// an ephemeral, a protected subtree (digest owner:pw) and some width.
func exportTree(t *testing.T, root string) {
	t.Helper()
	c := dialTestZK(t, sharedZK.Hosts())
	if err := c.AddAuth("digest", []byte("owner:pw")); err != nil {
		t.Fatal(err)
	}
	create := func(p string, data []byte, flags int32, acl []zk.ACL) {
		t.Helper()
		if acl == nil {
			acl = zk.WorldACL(zk.PermAll)
		}
		if _, err := c.Create(p, data, flags, acl); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	create(root, nil, 0, nil)
	create(root+"/nil", nil, 0, nil)
	create(root+"/empty", []byte{}, 0, nil)
	create(root+"/binary", []byte{0, 1, 2, 0xff, '\t', '\n'}, 0, nil)
	create(root+"/ephemeral", []byte("e"), zk.FlagEphemeral, nil)
	create(root+"/protected", []byte("p"), 0, zk.DigestACL(zk.PermAll, "owner", "pw"))
	create(root+"/protected/inner", nil, 0, zk.DigestACL(zk.PermAll, "owner", "pw"))
	create(root+"/wide", nil, 0, nil)
	for i := range 40 {
		create(fmt.Sprintf("%s/wide/%02d", root, i), fmt.Appendf(nil, "child %d", i), 0, nil)
	}
}

// cliRoot is a root of the test's own in the shared ensemble, new on every run
// (so -count works).
func cliRoot(t *testing.T) string {
	return fmt.Sprintf("/cli-%s-%d", strings.NewReplacer("/", "_").Replace(t.Name()), time.Now().UnixNano())
}

func TestExportInspectCat(t *testing.T) {
	t.Parallel()
	root := cliRoot(t)
	exportTree(t, root)
	hosts := sharedZK.ConnectString()
	file := filepath.Join(t.TempDir(), "tree.snap")

	code, out, errOut := run(t, "export", "--zk", hosts, "--path", root, "--out", file, "--auth", "digest:owner:pw", "--json", "--extended-types", "--workers", "8", "--compress")
	if code != ExitOK {
		t.Fatalf("export exit %d: %s", code, errOut)
	}
	var sum struct {
		Nodes     int64   `json:"nodes"`
		File      string  `json:"file"`
		FileBytes int64   `json:"file_bytes"`
		StartZxid int64   `json:"start_zxid"`
		MaxZxid   int64   `json:"max_zxid"`
		Digest    string  `json:"digest"`
		Partial   bool    `json:"partial"`
		Seconds   float64 `json:"duration_seconds"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out)
	}
	const wantNodes = 48
	if sum.Nodes != wantNodes || sum.File != file || sum.FileBytes == 0 || sum.StartZxid == 0 || sum.MaxZxid < sum.StartZxid || sum.Digest == "" || sum.Partial {
		t.Errorf("summary %+v", sum)
	}

	code, out, errOut = run(t, "snapshot", "inspect", file)
	if code != ExitOK {
		t.Fatalf("inspect exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"kind           export", "compressed true", "source         zk://" + hosts + root,
		fmt.Sprintf("start zxid     %#x", sum.StartZxid), "extended types true",
		"nodes          48 (ephemeral 1, persistent 47)", "4 nil, 1 empty", "digest         " + sum.Digest,
		"acl schemes    digest 2, world 46", "widest " + root + "/wide with 40 children", "integrity      ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = run(t, "snapshot", "inspect", "--json", file)
	if code != ExitOK {
		t.Fatalf("inspect --json exit %d: %s", code, errOut)
	}
	var rep struct {
		Verified bool `json:"verified"`
		Stats    struct {
			Nodes  uint64            `json:"nodes"`
			ByKind map[string]uint64 `json:"by_kind"`
		} `json:"stats"`
		Trailer struct {
			Digest string `json:"digest"`
		} `json:"trailer"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Verified || rep.Stats.Nodes != wantNodes || rep.Stats.ByKind["ephemeral"] != 1 || rep.Trailer.Digest != sum.Digest {
		t.Errorf("inspect --json: %+v", rep)
	}

	code, out, errOut = run(t, "snapshot", "cat", file)
	if code != ExitOK {
		t.Fatalf("cat exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != wantNodes || !strings.HasPrefix(lines[0], root+"\tpersistent\tnil\t[world:anyone:cdrwa]\tczxid=") {
		t.Errorf("cat: %d lines, first %q", len(lines), lines[0])
	}
	if !strings.Contains(out, root+"/binary\tpersistent\t\"\\x00\\x01\\x02\\xff\\t\\n\"\t") {
		t.Errorf("cat does not show binary data quoted:\n%s", out)
	}

	code, out, errOut = run(t, "snapshot", "cat", "--json", file)
	if code != ExitOK {
		t.Fatalf("cat --json exit %d: %s", code, errOut)
	}
	lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != wantNodes {
		t.Fatalf("cat --json: %d lines", len(lines))
	}
	byPath := map[string]map[string]any{}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		byPath[m["path"].(string)] = m
	}
	if d := byPath[root+"/nil"]["data"]; d != nil {
		t.Errorf("nil data as %v, want null", d)
	}
	if d := byPath[root+"/empty"]["data"]; d != "" {
		t.Errorf("empty data as %v, want \"\"", d)
	}
	if d, _ := base64.StdEncoding.DecodeString(byPath[root+"/binary"]["data"].(string)); string(d) != "\x00\x01\x02\xff\t\n" {
		t.Errorf("binary data decodes to %q", d)
	}
	stat := byPath[root+"/wide"]["stat"].(map[string]any)
	if stat["cversion"].(float64) != 40 || byPath[root+"/wide"]["num_children"].(float64) != 40 {
		t.Errorf("wide: stat %v", stat)
	}
	if k := byPath[root+"/ephemeral"]["kind"]; k != "ephemeral" {
		t.Errorf("ephemeral kind %v", k)
	}
}

func TestExportDefaultNameAndText(t *testing.T) {
	root := cliRoot(t)
	exportTree(t, root)
	dir := t.TempDir()
	t.Chdir(dir)
	code, out, errOut := run(t, "export", "--zk", sharedZK.ConnectString(), "--path", root, "--allow-partial", "--ephemerals", "skip", "--exclude", root+"/wide/1*")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "zk-export-") || !strings.HasSuffix(entries[0].Name(), ".snap") {
		t.Fatalf("directory holds %v", entries)
	}
	// 48 nodes, less the protected subtree's 2, the ephemeral, and wide/10..19.
	for _, want := range []string{
		"exported     35 nodes", "file         " + entries[0].Name(), "skipped      10 excluded subtrees, 1 ephemerals, 1 unreadable",
		"unreadable " + root + "/protected", "partial      yes", "zxid range   0x",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	var start uint64
	if _, err := fmt.Sscanf(out[strings.Index(out, "zxid range"):], "zxid range   %v", &start); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("zk-export-%016x.snap", start); entries[0].Name() != want {
		t.Errorf("file %q, want %q (the start zxid)", entries[0].Name(), want)
	}
}

func TestExportFailures(t *testing.T) {
	t.Parallel()
	root := cliRoot(t)
	exportTree(t, root)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	hosts := sharedZK.ConnectString()

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no hosts", []string{"export"}, ExitUsage, "--zk is required"},
		{"bad ephemerals", []string{"export", "--zk", hosts, "--ephemerals", "keep"}, ExitUsage, "--ephemerals"},
		{"bad exclude", []string{"export", "--zk", hosts, "--exclude", "/a/["}, ExitUsage, "exclude"},
		{"relative exclude", []string{"export", "--zk", hosts, "--exclude", "a"}, ExitUsage, "must start with /"},
		{"bad path", []string{"export", "--zk", hosts, "--path", "nope"}, ExitUsage, "invalid path"},
		{"bad auth", []string{"export", "--zk", hosts, "--auth", "nocolon"}, ExitUsage, "--auth"},
		{"bad workers", []string{"export", "--zk", hosts, "--workers", "0"}, ExitUsage, "--workers"},
		{"half a client certificate", []string{"export", "--zk", hosts, "--tls-cert", "c.pem"}, ExitUsage, "both"},
		{"unreachable", []string{"export", "--zk", dead, "--connect-timeout", "2s", "--out", filepath.Join(dir, "u.snap")}, ExitFailure, "ensemble unreachable"},
		{"missing path", []string{"export", "--zk", hosts, "--path", root + "/nope", "--out", filepath.Join(dir, "m.snap")}, ExitFailure, "no such node"},
		{"wrong password", []string{"export", "--zk", hosts, "--path", root, "--auth", "digest:owner:wrong", "--out", filepath.Join(dir, "w.snap")}, ExitFailure, "--allow-partial"},
		{"unknown scheme", []string{"export", "--zk", hosts, "--path", root, "--auth", "nosuch:x", "--connect-timeout", "5s", "--out", filepath.Join(dir, "s.snap")}, ExitFailure, "auth"},
		{"inspect needs a file", []string{"snapshot", "inspect"}, ExitUsage, "one snapshot file"},
		{"cat missing file", []string{"snapshot", "cat", filepath.Join(dir, "none.snap")}, ExitFailure, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, _, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errOut)
			}
			first := strings.SplitN(errOut, "\n", 2)[0]
			if tc.code == ExitFailure {
				// Only the error line; log lines come before it.
				lines := strings.Split(strings.TrimSpace(errOut), "\n")
				first = lines[len(lines)-1]
			}
			if !strings.HasPrefix(first, "zk2raft: ") || !strings.Contains(first, tc.stderr) {
				t.Errorf("stderr %q: want one line with %q", errOut, tc.stderr)
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed exports left %v", entries)
	}
}

func TestSnapshotCorrupt(t *testing.T) {
	t.Parallel()
	root := cliRoot(t)
	exportTree(t, root)
	dir := t.TempDir()
	file := filepath.Join(dir, "ok.snap")
	if code, _, errOut := run(t, "export", "--zk", sharedZK.ConnectString(), "--path", root, "--allow-partial", "--out", file); code != ExitOK {
		t.Fatalf("export: %s", errOut)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.snap")
	if err := os.WriteFile(truncated, b[:len(b)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	flipped := filepath.Join(dir, "flipped.snap")
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(flipped, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{truncated, flipped} {
		for _, verb := range []string{"inspect", "cat"} {
			code, out, errOut := run(t, "snapshot", verb, f)
			if code != ExitFailure {
				t.Errorf("%s %s: exit %d", verb, filepath.Base(f), code)
			}
			if !strings.Contains(errOut, "offset") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("%s %s: stderr %q, want one line naming the offset", verb, filepath.Base(f), errOut)
			}
			if verb == "inspect" && !strings.Contains(out, "integrity      FAILED") {
				t.Errorf("inspect %s: %s", filepath.Base(f), out)
			}
		}
	}
}

// TestExportProgress draws the progress bar into a buffer (the CLI draws it only
// on a terminal) and checks it shows the count and stops cleanly.
func TestExportProgress(t *testing.T) {
	t.Parallel()
	root := cliRoot(t)
	exportTree(t, root)
	cfg := exporter.DefaultConfig(sharedZK.Hosts())
	cfg.Root, cfg.AllowPartial, cfg.RateLimit = root, true, 100
	w, err := exporter.NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var buf progressBuffer
	prog := startExportProgress(t.Context(), &buf, w, cfg, false)
	if _, err := w.Walk(t.Context(), exporter.SinkFunc(func(*znode.Node) error { return nil })); err != nil {
		t.Fatal(err)
	}
	prog.stop()
	prog.stop()
	if out := buf.String(); !strings.Contains(out, "exporting") || !strings.Contains(out, "nodes") {
		t.Errorf("progress output %q", out)
	}
}

// progressBuffer is a bytes.Buffer safe for the progress bar's goroutine.
type progressBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *progressBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *progressBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// maskedTree creates, under root, a node whose ACL ZooKeeper masks to callers
// without ADMIN on it (digest u:p with every permission, the world may read)
// with a readable child, a NoAuth subtree (digest owner:pw) and an open node.
func maskedTree(t *testing.T, root string) {
	t.Helper()
	c := dialTestZK(t, sharedZK.Hosts())
	for _, auth := range []string{"owner:pw", "u:p"} {
		if err := c.AddAuth("digest", []byte(auth)); err != nil {
			t.Fatal(err)
		}
	}
	masked := append(zk.DigestACL(zk.PermAll, "u", "p"), zk.WorldACL(zk.PermRead)...)
	for _, n := range []struct {
		path string
		acl  []zk.ACL
	}{
		{root, zk.WorldACL(zk.PermAll)},
		{root + "/masked", masked},
		{root + "/masked/child", zk.WorldACL(zk.PermAll)},
		{root + "/locked", zk.DigestACL(zk.PermAll, "owner", "pw")},
		{root + "/locked/inner", zk.WorldACL(zk.PermAll)},
		{root + "/open", zk.WorldACL(zk.PermAll)},
	} {
		if _, err := c.Create(n.path, []byte("x"), 0, n.acl); err != nil {
			t.Fatalf("create %s: %v", n.path, err)
		}
	}
}

// TestExportMaskedACL checks that the summary tells a NoAuth node (its subtree
// missing) from a node whose ACL came back masked (kept, subtree included, with
// an ACL no one can authenticate as), in text, in JSON and in the error.
func TestExportMaskedACL(t *testing.T) {
	t.Parallel()
	root := cliRoot(t)
	maskedTree(t, root)
	hosts := sharedZK.ConnectString()
	dir := t.TempDir()

	// --allow-partial: root, masked, masked/child and open are written.
	file := filepath.Join(dir, "partial.snap")
	code, out, errOut := run(t, "export", "--zk", hosts, "--path", root, "--allow-partial", "--out", file)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"exported     4 nodes", "1 unreadable (NoAuth)\n", "  unreadable " + root + "/locked\n",
		"acl masked   1 node(s) kept with a masked ACL (digest:USER:x) that no one can authenticate as; re-export with --auth of an identity with ADMIN on them, or super\n",
		"  masked " + root + "/masked\n",
		"partial      yes: the unreadable subtrees are missing; the masked ACLs are not the nodes' real ones\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "unreadable "+root+"/masked") {
		t.Errorf("summary lists the masked node as unreadable:\n%s", out)
	}
	code, out, errOut = run(t, "snapshot", "cat", file)
	if code != ExitOK {
		t.Fatalf("cat exit %d: %s", code, errOut)
	}
	acls := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if f := strings.Split(l, "\t"); len(f) > 3 {
			acls[f[0]] = f[3]
		}
	}
	if _, ok := acls[root+"/masked/child"]; !ok || !strings.Contains(acls[root+"/masked"], "digest:u:x") {
		t.Errorf("the masked node's subtree or masked ACL is not in the export: %v", acls)
	}
	if _, ok := acls[root+"/locked"]; ok {
		t.Errorf("the NoAuth node is in the export: %v", acls)
	}

	// JSON: the exporter's fields, unreadable counting both reasons.
	code, out, errOut = run(t, "export", "--zk", hosts, "--path", root, "--allow-partial", "--json", "--out", filepath.Join(dir, "json.snap"))
	if code != ExitOK {
		t.Fatalf("--json exit %d: %s", code, errOut)
	}
	var sum struct {
		Unreadable     int64    `json:"unreadable"`
		UnreadableList []string `json:"unreadable_list"`
		ACLMasked      int64    `json:"acl_masked"`
		ACLMaskedList  []string `json:"acl_masked_list"`
		Partial        bool     `json:"partial"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out)
	}
	if sum.Unreadable != 2 || len(sum.UnreadableList) != 2 || sum.ACLMasked != 1 ||
		len(sum.ACLMaskedList) != 1 || sum.ACLMaskedList[0] != root+"/masked" || !sum.Partial {
		t.Errorf("summary %+v", sum)
	}

	// Without --allow-partial: each reason's advice, and no file.
	tests := []struct {
		name    string
		path    string
		want    []string
		notWant string
	}{
		{"masked", root + "/masked", []string{"ACL masked", "--allow-partial keeps the nodes whose ACL is masked"}, "NoAuth"},
		{"both", root, []string{"NoAuth", "ACL masked", "or --allow-partial to export without their subtrees", "--allow-partial keeps the nodes whose ACL is masked"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".snap")
			code, stdout, errOut := run(t, "export", "--zk", hosts, "--path", tc.path, "--out", out)
			if code != ExitFailure {
				t.Fatalf("exit %d, want %d: %s", code, ExitFailure, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			last := lines[len(lines)-1]
			for _, want := range tc.want {
				if !strings.Contains(last, want) {
					t.Errorf("error %q lacks %q", last, want)
				}
			}
			if tc.notWant != "" && strings.Contains(last, tc.notWant) {
				t.Errorf("error %q mentions %q", last, tc.notWant)
			}
			if !strings.Contains(stdout, "acl masked   1 node(s) whose ACL ZooKeeper masked") || strings.Contains(stdout, "kept with") {
				t.Errorf("summary of a failed export:\n%s", stdout)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed export left %s: %v", out, err)
			}
		})
	}
}

package raftjournal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/zk2raft/zk2raft/znode"
)

// testCounter reads a counter's value.
func testCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func TestNodeConfigValidate(t *testing.T) {
	base := func() NodeConfig {
		c := DefaultNodeConfig()
		c.DataDir, c.NodeID, c.RaftAddr = "/tmp/x", "n1", "127.0.0.1:7000"
		return c
	}
	tests := []struct {
		name  string
		tweak func(*NodeConfig)
		want  string
	}{
		{"ok", func(*NodeConfig) {}, ""},
		{"no data dir", func(c *NodeConfig) { c.DataDir = "" }, "DataDir"},
		{"no id", func(c *NodeConfig) { c.NodeID = "" }, "NodeID"},
		{"bootstrap and join", func(c *NodeConfig) { c.Bootstrap, c.Join = true, "127.0.0.1:1" }, "exclusive"},
		{"bad store", func(c *NodeConfig) { c.LogStore = "mem" }, "LogStore"},
		{"bad raft addr", func(c *NodeConfig) { c.RaftAddr = "nowhere" }, "RaftAddr"},
		{"max append", func(c *NodeConfig) { c.MaxAppendEntries = 2000 }, "MaxAppendEntries"},
		{"lease", func(c *NodeConfig) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }, "LeaderLeaseTimeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.tweak(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrInvalidConfig about %s", err, tc.want)
			}
		})
	}
}

func TestDataDirLocked(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	cfg := c.cfgs[0]
	cfg.RaftAddr = freeAddr(t)
	_, err := Open(cfg)
	if !errors.Is(err, ErrDataDirLocked) {
		t.Fatalf("second open of a data dir: %v", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(cfg.DataDir, "LOCK")) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Fatalf("error does not name the lock file and holder: %v", err)
	}
	// The raft port of the running node is not disturbed; closing releases it.
	c.stop(0)
	c.restart(0)
}

func TestRaftAddrInUse(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	cfg := testNodeConfig(t, "other", c.cfgs[0].Logger)
	cfg.RaftAddr = c.nodes[0].RaftAddr()
	cfg.Bootstrap = true
	_, err := Open(cfg)
	if err == nil || !strings.Contains(err.Error(), cfg.RaftAddr) {
		t.Fatalf("open on a taken raft address: %v", err)
	}
	// The failed open released its data dir.
	cfg.RaftAddr = freeAddr(t)
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
}

// writeAndStop fills a single-node journal, optionally snapshots it, and
// closes it, returning its config.
func writeAndStop(t *testing.T, snapshot bool) NodeConfig {
	t.Helper()
	c := newTestCluster(t, 1, nil)
	c.primary()
	n := c.nodes[0]
	ctx := t.Context()
	for i := range 300 {
		if _, _, err := n.Create(ctx, fmt.Sprintf("/n%03d", i), []byte(strings.Repeat("v", 50)), ModePersistent); err != nil {
			t.Fatal(err)
		}
		if snapshot && i == 150 {
			if err := n.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.stop(0)
	cfg := c.cfgs[0]
	cfg.Bootstrap = false
	return cfg
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptSnapshotNamesFile(t *testing.T) {
	cfg := writeAndStop(t, true)
	states, _ := filepath.Glob(filepath.Join(cfg.DataDir, "snapshots", "*", "state.bin"))
	if len(states) != 1 {
		t.Fatalf("snapshots: %v", states)
	}
	fi, err := os.Stat(states[0])
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, states[0], fi.Size()/2)
	_, err = Open(cfg)
	if !errors.Is(err, znode.ErrCorruptSnapshot) || !strings.Contains(err.Error(), states[0]) {
		t.Fatalf("open with a corrupt snapshot: %v", err)
	}
	t.Log(err)

	// Unreadable metadata is an error too, not a silent fall back to an older
	// snapshot (or none).
	flipByte(t, states[0], fi.Size()/2)
	meta := filepath.Join(filepath.Dir(states[0]), "meta.json")
	if err := os.WriteFile(meta, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(cfg)
	if !errors.Is(err, znode.ErrCorruptSnapshot) || !strings.Contains(err.Error(), meta) {
		t.Fatalf("open with corrupt snapshot metadata: %v", err)
	}
}

func TestCorruptLogNamesFile(t *testing.T) {
	cfg := writeAndStop(t, false)
	segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, walDirName, "*.wal"))
	if len(segs) == 0 {
		t.Fatal("no wal segments")
	}
	// Segments are preallocated: find the end of what was written, and flip a
	// byte of some node's data in the middle, far from the last commit (which
	// raft-wal itself would take for a torn write).
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	i := bytes.Index(b[end/2:], []byte("vvvvvvvvvv"))
	if i < 0 {
		t.Fatal("no node data in the segment")
	}
	flipByte(t, segs[0], int64(end/2+i+5))
	_, err = Open(cfg)
	if !errors.Is(err, ErrCorruptLog) || !strings.Contains(err.Error(), segs[0]) {
		t.Fatalf("open with a corrupt log segment: %v", err)
	}
	t.Log(err)
}

func TestBoltStoreRestart(t *testing.T) {
	c := newTestCluster(t, 1, func(cfg *NodeConfig) { cfg.LogStore = LogStoreBolt })
	c.primary()
	ctx := t.Context()
	for i := range 50 {
		if _, _, err := c.nodes[0].Create(ctx, fmt.Sprintf("/b%d", i), []byte("x"), ModePersistent); err != nil {
			t.Fatal(err)
		}
	}
	d := c.nodes[0].Digest()
	c.stop(0)
	// Reopening a bolt data dir as a wal one is refused.
	cfg := c.cfgs[0]
	cfg.LogStore = LogStoreWAL
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "raft.db") {
		t.Fatalf("open bolt data dir as wal: %v", err)
	}
	n := c.restart(0)
	waitFor(t, 10*time.Second, "the restarted node to apply its log", func() error {
		if n.Digest() != d {
			return fmt.Errorf("digest %s, want %s", n.Digest(), d)
		}
		return nil
	})
}

func TestAdminEndpoints(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.primary()
	ctx := t.Context()
	if _, _, err := c.nodes[1].Create(ctx, "/x", []byte("y"), ModePersistent); err != nil {
		t.Fatal(err)
	}
	c.converge()
	n := c.nodes[2]
	var cs ClusterStatus
	if err := testAdmin(n).Call(ctx, http.MethodGet, "/status", nil, &cs); err != nil {
		t.Fatal(err)
	}
	if cs.ID != "n3" || cs.Leader == "" || cs.Term == 0 || cs.AppliedIndex == 0 || cs.CommitIndex == 0 ||
		cs.NodeCount != 5 || cs.Digest != n.Digest().String() || cs.Phase != "primary" || len(cs.Members) != 3 || cs.MemberCount != 3 {
		t.Fatalf("status %+v", cs)
	}
	for _, m := range cs.Members {
		if m.Status == nil || m.Status.Digest != cs.Digest || m.Status.ID != m.ID {
			t.Fatalf("member %+v", m)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.AdminAddr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+string(testCreds().Secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"zk2raft_journal_apply_seconds", "zk2raft_journal_commit_index", "zk2raft_journal_applied_index",
		"zk2raft_journal_snapshot_seconds", "zk2raft_journal_znodes 5", "zk2raft_journal_sessions", "zk2raft_journal_members 3"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// A bad join request is a 400 with a message.
	err = testAdmin(n).Call(ctx, http.MethodPost, "/join", map[string]string{"id": "x"}, nil)
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("bad join: %v", err)
	}
	// The member status RPC, as tools outside the process use it.
	ms, err := RemoteStatus(ctx, testCreds(), n.RaftAddr())
	if err != nil || ms.ID != "n3" {
		t.Fatalf("remote status: %+v %v", ms, err)
	}
	data, st, ok, err := RemoteRead(ctx, testCreds(), c.nodes[0].RaftAddr(), "/x", true)
	if err != nil || !ok || string(data) != "y" || st.DataLength != 1 {
		t.Fatalf("remote read: %q %+v %v %v", data, st, ok, err)
	}
	raw, err := json.Marshal(cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"role"`, `"leader"`, `"term"`, `"applied_index"`, `"commit_index"`, `"node_count"`, `"digest"`, `"phase"`, `"members"`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("status JSON lacks %s", key)
		}
	}
}

func TestRPCErrorRoundTrip(t *testing.T) {
	errs := []error{
		&OpError{Op: OpCreate, Path: "/a", Code: CodeNodeExists},
		CodeNotReadOnly,
		fmt.Errorf("%w: import in phase primary", ErrWrongPhase),
		fmt.Errorf("%w (%w): lost", ErrOutcomeUnknown, CodeConnectionLoss),
		errors.New("something else"),
	}
	for _, e := range errs {
		d := &decoder{b: appendError(nil, e)}
		got := decodeError(d)
		if err := d.finish(); err != nil {
			t.Fatal(err)
		}
		if got.Error() != e.Error() || CodeOf(got) != CodeOf(e) {
			t.Fatalf("%v came back as %v (code %s, want %s)", e, got, CodeOf(got), CodeOf(e))
		}
		for _, s := range errorSentinels[1:] {
			if errors.Is(e, s) != errors.Is(got, s) {
				t.Fatalf("%v: errors.Is(%v) differs after the round trip", e, s)
			}
		}
	}
	res := &Result{Index: 9, Zxid: 1<<32 | 5, Err: &OpError{Op: OpCheck, Path: "/c", Code: CodeBadVersion},
		Ops:     []OpResult{{Kind: OpCreate, Path: "/p0000000001", Stat: znode.WireStat{Czxid: 3, DataLength: 4}}, {Kind: OpCheck, Err: CodeBadVersion}},
		Session: 7, Changed: 2, Deleted: []string{"/d"}, Purged: 1}
	got, err := decodeResult(appendResult(nil, res))
	if err != nil {
		t.Fatal(err)
	}
	if got.Index != res.Index || got.Zxid != res.Zxid || got.Err.Error() != res.Err.Error() || !slices.Equal(got.Ops, res.Ops) ||
		got.Session != 7 || got.Changed != 2 || !slices.Equal(got.Deleted, res.Deleted) || got.Purged != 1 {
		t.Fatalf("result round trip: %+v", got)
	}
}

func TestCloseIdempotentAndFailsCalls(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.nodes[0]
	c.nodes[0] = nil
	for range 3 {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := n.Get(ctx, "/"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if _, _, err := n.Create(ctx, "/x", nil, ModePersistent); !errors.Is(err, ErrClosed) {
		t.Fatalf("create after close: %v", err)
	}
}

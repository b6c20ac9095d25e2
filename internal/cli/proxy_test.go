package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// startVerb runs `zk2raft ARGS...` in the test's process until cleanup, like
// startServe for any long-running verb.
func startVerb(t *testing.T, args ...string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{cancel: cancel, done: make(chan int, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	go func() {
		root := NewRootCommand(strings.NewReader(""), s.stdout, s.stderr)
		root.SetArgs(args)
		code := ExitOK
		if err := root.ExecuteContext(ctx); err != nil {
			code = exitCode(err)
			fmt.Fprintln(s.stderr, "zk2raft: "+oneLine(err.Error()))
		}
		s.done <- code
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// writeThrough creates path with data through a ZooKeeper client connected
// to addr, retrying until the proxy serves.
func writeThrough(t *testing.T, addr, path, data string) {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(quietZK{}), zk.WithMaxBufferSize(8<<20), zk.WithMaxConnBufferSize(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitUntil(t, "a create through the proxy at "+addr, func() error {
		_, err := conn.Create(path, []byte(data), 0, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	})
}

// journalHas waits until the journal node at admin has path with data.
func journalHas(t *testing.T, admin, path, data string) {
	t.Helper()
	waitUntil(t, path+" in the journal", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, ok, err := testAdmin(admin).GetNode(ctx, path, false)
		switch {
		case err != nil:
			return err
		case !ok:
			return errors.New("absent")
		case string(n.Data) != data:
			return fmt.Errorf("data %q", n.Data)
		}
		return nil
	})
}

func TestServeWithProxy(t *testing.T) {
	dir := t.TempDir()
	admin, proxy := testlog.FreeAddr(t), testlog.FreeAddr(t)
	s := startServe(t, "--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin, "--bootstrap", "--zk", sharedZK.ConnectString(), "--proxy-addr", proxy)
	path := fmt.Sprintf("/serve-proxy-%d", time.Now().UnixNano()) // the ensemble outlives a run
	writeThrough(t, proxy, path, "mirrored")
	journalHas(t, admin, path, "mirrored")
	if out := s.stdout.String(); !strings.Contains(out, "dual-write proxy: clients "+proxy) {
		t.Errorf("serve did not announce the proxy: %q", out)
	}
	var cs raftjournal.ClusterStatus
	resp := adminGet(t, "http://"+admin+"/status")
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		t.Fatal(err)
	}
	p, ok := cs.Extensions["proxy"].(map[string]any)
	if !ok || p["tap"] == nil {
		t.Fatalf("/status has no proxy extension: %v", cs.Extensions)
	}
	// The cutover does not switch an in-process proxy: its gate says so.
	if code, out, errOut := run(t, "cutover", "status", "--journal", admin); code != ExitDifferences || !strings.Contains(out, "n1 runs an in-process proxy") {
		t.Errorf("cutover status with an in-process proxy: exit %d\n%s\n%s", code, out, errOut)
	}
	if code := s.stop(t); code != ExitOK {
		t.Fatalf("serve exited %d: %s", code, s.stderr.String())
	}
}

func TestProxyCommand(t *testing.T) {
	dir := t.TempDir()
	admin := testlog.FreeAddr(t)
	startServe(t, "--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin, "--bootstrap")
	waitUntil(t, "the journal to lead", func() error {
		code, _, errOut := run(t, "journal", "status", "--journal", admin)
		if code != ExitOK {
			return errors.New(errOut)
		}
		return nil
	})
	listen, padmin := testlog.FreeAddr(t), testlog.FreeAddr(t)
	p := startVerb(t, "proxy", "--listen", listen, "--zk", sharedZK.ConnectString(), "--journal", admin,
		"--queue-dir", filepath.Join(dir, "queue"), "--admin-addr", padmin, "--sync")
	path := fmt.Sprintf("/standalone-proxy-%d", time.Now().UnixNano()) // the ensemble outlives a run
	writeThrough(t, listen, path, "mirrored")
	journalHas(t, admin, path, "mirrored")
	resp := adminGet(t, "http://"+padmin+"/status")
	defer resp.Body.Close()
	var st struct {
		Tap struct {
			Sync     bool   `json:"sync"`
			Mirrored uint64 `json:"mirrored"`
		} `json:"tap"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if !st.Tap.Sync || st.Tap.Mirrored == 0 {
		t.Fatalf("proxy /status: %+v", st)
	}
	// Item 17: a proxy's admin port is not a journal's.
	if code, out, errOut := run(t, "journal", "status", "--journal", padmin); code != ExitFailure || !strings.Contains(errOut, "not a journal node") {
		t.Errorf("journal status against the proxy's admin port: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code := p.stop(t); code != ExitOK {
		t.Fatalf("proxy exited %d: %s", code, p.stderr.String())
	}
}

func TestProxyUsage(t *testing.T) {
	for _, args := range [][]string{
		{"proxy", "--zk", "127.0.0.1:1", "--journal", "127.0.0.1:2", "--queue-dir", "q"},
		{"proxy", "--listen", "127.0.0.1:0", "--journal", "127.0.0.1:2", "--queue-dir", "q"},
		{"serve", "--data-dir", "d", "--node-id", "n", "--raft-addr", "127.0.0.1:0", "--proxy-addr", "127.0.0.1:0"},
		{"proxy", "--listen", "127.0.0.1:0", "--zk", "127.0.0.1:1", "--journal", "127.0.0.1:2", "--queue-dir", "q", "--jute-maxbuffer", "0"},
	} {
		if code, _, errOut := run(t, args...); code != ExitUsage || !strings.Contains(errOut, "--") {
			t.Errorf("%v: exit %d, %q; want a usage error", args, code, errOut)
		}
	}
}

// proxyStatusOf reads a proxy's /status.
func proxyStatusOf(t *testing.T, padmin string) (st struct {
	Tap struct {
		QueueRecords int `json:"queue_records"`
		Journal      struct {
			State   string   `json:"state"`
			Error   string   `json:"error"`
			Members []string `json:"members"`
		} `json:"journal"`
	} `json:"tap"`
}) {
	t.Helper()
	resp := adminGet(t, "http://"+padmin+"/status")
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestProxyStartsDuringJournalOutage is issue 12 item 8: a proxy whose
// journal does not answer starts all the same, serves ZooKeeper's clients,
// queues their writes, says so in its log and /status, and delivers them once
// the journal is started.
func TestProxyStartsDuringJournalOutage(t *testing.T) {
	dir := t.TempDir()
	admin, listen, padmin := testlog.FreeAddr(t), testlog.FreeAddr(t), testlog.FreeAddr(t)
	p := startVerb(t, "proxy", "--listen", listen, "--zk", sharedZK.ConnectString(), "--journal", admin,
		"--queue-dir", filepath.Join(dir, "queue"), "--admin-addr", padmin, "--no-reconcile")
	path := fmt.Sprintf("/outage-proxy-%d", time.Now().UnixNano())
	writeThrough(t, listen, path, "queued")
	waitUntil(t, "/status to report the journal unreachable", func() error {
		st := proxyStatusOf(t, padmin)
		if st.Tap.Journal.State != "unreachable" || st.Tap.QueueRecords == 0 || st.Tap.Journal.Error == "" {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	if !strings.Contains(p.stderr.String(), "journal unreachable") {
		t.Errorf("the log does not say the journal is unreachable:\n%s", p.stderr.String())
	}
	startServe(t, "--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin, "--bootstrap")
	journalHas(t, admin, path, "queued")
	waitUntil(t, "/status to report the journal reachable", func() error {
		if st := proxyStatusOf(t, padmin); st.Tap.Journal.State != "reachable" || st.Tap.QueueRecords != 0 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	if code := p.stop(t); code != ExitOK {
		t.Fatalf("proxy exited %d: %s", code, p.stderr.String())
	}
}

// TestProxyJuteMaxBuffer: against an ensemble started with
// -Djute.maxbuffer=4194304, a 2 MB create goes through `proxy --jute-maxbuffer
// 4194304` and reaches the journal (issue 12 item 9).
func TestProxyJuteMaxBuffer(t *testing.T) {
	ens := zktest.New(t, zktest.Options{Servers: 1, JuteMaxBuffer: 4 << 20})
	dir := t.TempDir()
	admin := testlog.FreeAddr(t)
	startServe(t, "--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", testlog.FreeAddr(t),
		"--admin-addr", admin, "--bootstrap")
	journalHas(t, admin, "/", "")
	listen := testlog.FreeAddr(t)
	p := startVerb(t, "proxy", "--listen", listen, "--zk", ens.ConnectString(), "--journal", admin,
		"--queue-dir", filepath.Join(dir, "queue"), "--jute-maxbuffer", "4194304", "--no-reconcile")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("proxy stderr:\n%s", p.stderr.String())
		}
	})
	big := strings.Repeat("x", 2_000_000)
	writeThrough(t, listen, "/big", big)
	journalHas(t, admin, "/big", big)
	if code := p.stop(t); code != ExitOK {
		t.Fatalf("proxy exited %d: %s", code, p.stderr.String())
	}
}

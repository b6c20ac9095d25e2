package exporter

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/znode"
)

// history records every state a mutator gave its nodes: for each incarnation
// (path, czxid), the mzxid and data of each data version and the ACL of each
// ACL version.
type history struct {
	mu    sync.Mutex
	data  map[string]map[int64]map[int32]dataState // path → czxid → version
	acls  map[string]map[int64]map[int32][]znode.ACL
	zxids []int64 // of every mutation
}

type dataState struct {
	mzxid int64
	data  []byte
}

func newHistory() *history {
	return &history{data: map[string]map[int64]map[int32]dataState{}, acls: map[string]map[int64]map[int32][]znode.ACL{}}
}

func (h *history) recordData(path string, st *zk.Stat, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.data[path] == nil {
		h.data[path] = map[int64]map[int32]dataState{}
	}
	if h.data[path][st.Czxid] == nil {
		h.data[path][st.Czxid] = map[int32]dataState{}
	}
	h.data[path][st.Czxid][st.Version] = dataState{st.Mzxid, data}
	h.zxids = append(h.zxids, st.Mzxid)
}

func (h *history) recordACL(path string, czxid int64, aversion int32, acl []zk.ACL) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.acls[path] == nil {
		h.acls[path] = map[int64]map[int32][]znode.ACL{}
	}
	if h.acls[path][czxid] == nil {
		h.acls[path][czxid] = map[int32][]znode.ACL{}
	}
	h.acls[path][czxid][aversion] = ACLFromZK(acl)
}

// aclFor is the ACL the mutator gives a node at ACL version v: every version
// stays readable, and each looks different.
func aclFor(v int32) []zk.ACL {
	perms := []int32{zk.PermAll, zk.PermRead | zk.PermWrite, zk.PermRead | zk.PermCreate | zk.PermDelete, zk.PermRead | zk.PermAdmin}
	return zk.WorldACL(perms[int(v)%len(perms)])
}

// mutate creates, sets, re-ACLs and deletes nodes below root until ctx ends,
// recording each state in h.
func mutate(ctx context.Context, c *zk.Conn, root string, live []string, h *history, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	next := 0
	for ctx.Err() == nil {
		switch op := rng.IntN(10); {
		case op < 4 && len(live) > 0: // set
			p := live[rng.IntN(len(live))]
			data := fmt.Appendf(nil, "%s set %d", p, rng.Int64())
			st, err := c.Set(p, data, -1)
			if err == nil {
				h.recordData(p, st, data)
			}
		case op < 6 && len(live) > 0: // setACL
			p := live[rng.IntN(len(live))]
			_, st, err := c.Get(p)
			if err != nil {
				continue
			}
			acl := aclFor(st.Aversion + 1)
			if st2, err := c.SetACL(p, acl, st.Aversion); err == nil {
				h.recordACL(p, st2.Czxid, st2.Aversion, acl)
			}
		case op < 8: // create, sometimes under an existing node
			parent := root
			if len(live) > 0 && rng.IntN(2) == 0 {
				parent = live[rng.IntN(len(live))]
			}
			p := fmt.Sprintf("%s/new-%d", parent, next)
			next++
			data := []byte(p + " v0")
			if _, err := c.Create(p, data, 0, aclFor(0)); err == nil {
				_, st, err := c.Get(p)
				if err == nil && st.Version == 0 {
					h.recordData(p, st, data)
					h.recordACL(p, st.Czxid, 0, aclFor(0))
				}
				live = append(live, p)
			}
		default: // delete a leaf
			if len(live) == 0 {
				continue
			}
			i := rng.IntN(len(live))
			if err := c.Delete(live[i], -1); err == nil {
				live = append(live[:i], live[i+1:]...)
			}
		}
	}
}

// TestConcurrentMutator exports while a mutator creates, sets, re-ACLs and
// deletes: the export completes, every node in the file is a state the node
// really had (its data and ACL are the ones recorded for its version, mzxid
// included), and every node that changed after the start zxid is listed.
func TestConcurrentMutator(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	root := rootFor(t)
	c := dialZK(t, ensemble.Hosts())
	h := newHistory()
	mustCreate(t, c, root, nil, 0, nil)
	var live []string
	for i := range 300 {
		p := fmt.Sprintf("%s/n%03d", root, i)
		if i%10 != 0 {
			p = fmt.Sprintf("%s/n%03d/c%d", root, i-i%10, i)
		}
		data := []byte(p + " v0")
		mustCreate(t, c, p, data, 0, aclFor(0))
		_, st, err := c.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		h.recordData(p, st, data)
		h.recordACL(p, st.Czxid, 0, aclFor(0))
		live = append(live, p)
	}

	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	mc := dialZK(t, ensemble.Hosts())
	go func() {
		defer close(done)
		mutate(ctx, mc, root, live, h, seed)
	}()
	defer func() { stop(); <-done }()
	time.Sleep(100 * time.Millisecond) // let the mutator get going

	cfg := DefaultConfig(ensemble.Hosts())
	cfg.Root, cfg.Workers, cfg.RateLimit, cfg.MaxListed = root, 4, 600, 1<<20
	w, err := NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	path := filepath.Join(t.TempDir(), "x.snap")
	sum, err := ExportFile(t.Context(), w, FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	<-done
	nodes, _, _ := readSnapshot(t, path)

	listed := map[string]Change{}
	for _, cn := range sum.ChangedList {
		listed[cn.Path] = cn.Change
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	during := 0
	for _, z := range h.zxids {
		if z > sum.StartZxid && z <= sum.MaxZxid {
			during++
		}
	}
	if during == 0 {
		t.Fatal("the mutator wrote nothing during the walk; the test proves nothing")
	}
	changedSeen := 0
	for _, n := range nodes[1:] {
		byVersion := h.data[n.Path][n.Stat.Czxid]
		ds, ok := byVersion[n.Stat.Version]
		switch {
		case byVersion == nil:
			t.Errorf("%s (czxid %#x): an incarnation the mutator never made", n.Path, n.Stat.Czxid)
			continue
		case !ok:
			t.Errorf("%s: version %d never written", n.Path, n.Stat.Version)
			continue
		case ds.mzxid != n.Stat.Mzxid || string(ds.data) != string(n.Data):
			t.Errorf("%s version %d: mzxid %#x data %q, but that version had mzxid %#x data %q", n.Path, n.Stat.Version, n.Stat.Mzxid, n.Data, ds.mzxid, ds.data)
		}
		if acl, ok := h.acls[n.Path][n.Stat.Czxid][n.Stat.Aversion]; !ok || !znode.EqualACLs(acl, n.ACL) {
			t.Errorf("%s aversion %d: ACL %v, that version had %v", n.Path, n.Stat.Aversion, n.ACL, acl)
		}
		if n.Stat.Czxid > sum.StartZxid || n.Stat.Mzxid > sum.StartZxid || n.Stat.Pzxid > sum.StartZxid {
			changedSeen++
			if _, ok := listed[n.Path]; !ok {
				t.Errorf("%s changed during the walk (czxid %#x mzxid %#x pzxid %#x, start %#x) but is not listed",
					n.Path, n.Stat.Czxid, n.Stat.Mzxid, n.Stat.Pzxid, sum.StartZxid)
			}
		}
	}
	if int64(len(sum.ChangedList)) != sum.Changed+sum.Deleted {
		t.Errorf("listed %d changes, counted %d + %d deleted", len(sum.ChangedList), sum.Changed, sum.Deleted)
	}
	t.Logf("%d nodes, %d mutations during the walk, %d changed (%d seen by zxid), %d deleted, %d rereads, walk %v",
		sum.Nodes, during, sum.Changed, changedSeen, sum.Deleted, sum.Rereads, sum.Duration.Round(time.Millisecond))
}

// seedFlat creates n nodes below root in a two-level shape, over a few
// connections at once.
func seedFlat(t testing.TB, hosts []string, root string, n int) {
	t.Helper()
	c := dialZK(t, hosts)
	mustCreate(t, c, root, nil, 0, nil)
	for i := range n / 100 {
		mustCreate(t, c, fmt.Sprintf("%s/d%03d", root, i), []byte("dir"), 0, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				if _, err := c.Create(fmt.Sprintf("%s/d%03d/n%05d", root, i/100, i), fmt.Appendf(nil, "value %d", i), 0, zk.WorldACL(zk.PermAll)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// whenProgress calls fn once the walk has written at least n nodes.
func whenProgress(ctx context.Context, w *Walker, n int64, fn func()) {
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if w.Progress().Nodes >= n {
					fn()
					return
				}
			}
		}
	}()
}

// TestServerKilledMidExport kills the leader of a three-server ensemble while an
// export runs: the export completes and equals the tree.
func TestServerKilledMidExport(t *testing.T) {
	t.Parallel()
	e := zktest.New(t, zktest.Options{Servers: 3})
	root := "/killed"
	seedFlat(t, e.Hosts(), root, 4000)

	cfg := DefaultConfig(e.Hosts())
	cfg.Root, cfg.RateLimit, cfg.Workers = root, 3000, 16
	w, err := NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	killed := make(chan int, 1)
	path := filepath.Join(t.TempDir(), "x.snap")
	sum, err := ExportFile(t.Context(), w, FileOptions{Path: path, Started: func(w *Walker, _ string) {
		whenProgress(t.Context(), w, 800, func() {
			leader, err := e.Leader(t.Context())
			if err != nil {
				t.Error(err)
				return
			}
			if err := e.Kill(leader); err != nil {
				t.Error(err)
			}
			killed <- leader
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-killed:
		t.Logf("killed server %d mid-export; %d retries", id, sum.Retries)
	default:
		t.Fatal("the export finished before a server was killed")
	}
	if sum.Retries == 0 {
		t.Error("no read was retried: the kill did not hit the walk")
	}
	got, _, _ := readSnapshot(t, path)
	diffNodes(t, got, sequential(t, dialZK(t, e.Hosts()), root))
}

// partition is a dialer whose connections the test can cut: while cut, every
// connection is closed and dials fail, as for a client cut off from the
// ensemble.
type partition struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (p *partition) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return nil, errors.New("partitioned")
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err == nil {
		p.conns = append(p.conns, c)
	}
	return c, err
}

func (p *partition) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestSessionExpiredMidExport cuts the walker off from the ensemble for longer
// than its session timeout: the sessions expire, and the export resumes on new
// ones and equals the tree. It runs in both read modes: a dialer makes the
// automatic mode classic.
func TestSessionExpiredMidExport(t *testing.T) {
	t.Parallel()
	for _, mode := range []ReadMode{ReadModeClassic, ReadModeMultiRead} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			testSessionExpiredMidExport(t, mode)
		})
	}
}

func testSessionExpiredMidExport(t *testing.T, mode ReadMode) {
	root := rootFor(t)
	seedFlat(t, ensemble.Hosts(), root, 2000)

	p := &partition{}
	cfg := DefaultConfig(ensemble.Hosts())
	cfg.Root, cfg.RateLimit, cfg.Workers, cfg.Sessions = root, 1500, 8, 2
	cfg.SessionTimeout = 1500 * time.Millisecond
	cfg.Dialer = p.dial
	cfg.ReadMode = mode
	w, err := NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	path := filepath.Join(t.TempDir(), "x.snap")
	sum, err := ExportFile(t.Context(), w, FileOptions{Path: path, Started: func(w *Walker, _ string) {
		whenProgress(t.Context(), w, 400, func() {
			p.setCut(true)
			time.Sleep(4 * cfg.SessionTimeout)
			p.setCut(false)
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.SessionsRenewed == 0 {
		t.Errorf("no session was renewed (%d retries)", sum.Retries)
	}
	if sum.ReadMode != mode.String() {
		t.Errorf("read mode %s, want %v", sum.ReadMode, mode)
	}
	t.Logf("%d sessions renewed, %d retries", sum.SessionsRenewed, sum.Retries)
	got, _, _ := readSnapshot(t, path)
	diffNodes(t, got, sequential(t, dialZK(t, ensemble.Hosts()), root))
}

// TestCancelMidExport cancels the context of a running export: it returns the
// context's error promptly and leaves no file.
func TestCancelMidExport(t *testing.T) {
	t.Parallel()
	root := rootFor(t)
	seedFlat(t, ensemble.Hosts(), root, 1000)
	cfg := DefaultConfig(ensemble.Hosts())
	cfg.Root, cfg.RateLimit = root, 500
	w, err := NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var cancelled time.Time
	path := filepath.Join(t.TempDir(), "x.snap")
	_, err = ExportFile(ctx, w, FileOptions{Path: path, Started: func(w *Walker, _ string) {
		whenProgress(t.Context(), w, 100, func() {
			cancelled = time.Now()
			cancel()
		})
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(cancelled); d > 3*time.Second {
		t.Errorf("returned %v after the cancel", d)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Errorf("a cancelled export left %v", entries)
	}
}

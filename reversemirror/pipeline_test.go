package reversemirror_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/znode"
)

// holdProxy sits between the mirror and ZooKeeper: it can hold what goes
// one way (requests up, replies down) and cut every connection, so that a
// test decides what becomes of the multis in flight.
type holdProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	cond     *sync.Cond
	holdUp   bool
	holdDown bool
	gen      int // bumped by cut: a connection of an older generation is dead
	conns    []net.Conn
}

func newHoldProxy(t *testing.T, target string) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.hold(false, false)
		p.cut()
	})
	return p
}

func (p *holdProxy) addr() string { return p.ln.Addr().String() }

func (p *holdProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		gen := p.gen
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(s, c, gen, func() bool { return p.holdUp })
		go p.pipe(c, s, gen, func() bool { return p.holdDown })
	}
}

// pipe copies from src to dst, waiting while held says so.
func (p *holdProxy) pipe(dst, src net.Conn, gen int, held func() bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for held() && p.gen == gen {
				p.cond.Wait()
			}
			dead := p.gen != gen
			p.mu.Unlock()
			if dead {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold sets what is held: requests (up) and replies (down).
func (p *holdProxy) hold(up, down bool) {
	p.mu.Lock()
	p.holdUp, p.holdDown = up, down
	p.cond.Broadcast()
	p.mu.Unlock()
}

// cut closes every connection: what is held is dropped.
func (p *holdProxy) cut() {
	p.mu.Lock()
	p.gen++
	conns := p.conns
	p.conns = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// pipelineRig is a primary journal whose mirror reaches ZooKeeper through a
// holdProxy, with small batches and a wide window: every few entries are a
// multi of their own, and many go out before the first is answered.
type pipelineRig struct {
	t     *testing.T
	f     *raftjournal.FSM
	m     *reversemirror.Mirror
	proxy *holdProxy
	c     *zk.Conn // go-zookeeper on the journal's client port
	root  string
}

func newPipelineRig(t *testing.T, root string) *pipelineRig {
	t.Helper()
	n, addr := primaryNode(t)
	p := newHoldProxy(t, ensemble.Hosts()[0])
	m := runMirror(t, n, func(c *reversemirror.Config) {
		c.ZooKeeper.Hosts = []string{p.addr()}
		c.MaxBatchOps, c.MaxInFlight = 2, 64
		c.ZooKeeper.SessionTimeout = 30 * time.Second // held pings: the connection lives 20 s
		c.Retry = 100 * time.Millisecond
		c.Verify = time.Hour // no pause for the records' look while replies are held
	})
	r := &pipelineRig{t: t, f: n.FSM(), m: m, proxy: p, c: gozk(t, addr), root: testRoot(t, root)}
	for _, q := range []string{r.root, r.root + "/q", r.root + "/xp", r.root + "/xp/x"} {
		r.create(q, []byte("j0"), 0)
	}
	waitDrained(t, r.f, m)
	return r
}

func (r *pipelineRig) create(p string, data []byte, flags int32) string {
	r.t.Helper()
	name, err := r.c.Create(p, data, flags, zk.WorldACL(zk.PermAll))
	if err != nil {
		r.t.Fatalf("create %s: %v", p, err)
	}
	return name
}

// writeHeld writes, with ZooKeeper's requests or replies held at the proxy,
// sequential creates around a setData of xp/x, and waits until the mirror has
// sent all of it (at least several multis in flight). It returns the names.
func (r *pipelineRig) writeHeld(up, down bool) (before, after []string) {
	r.t.Helper()
	r.proxy.hold(up, down)
	for i := range 8 {
		before = append(before, r.create(r.root+"/q/a-", []byte{byte(i)}, zk.FlagSequence))
	}
	if _, err := r.c.Set(r.root+"/xp/x", []byte("j1"), 0); err != nil {
		r.t.Fatal(err)
	}
	for i := range 8 {
		after = append(after, r.create(r.root+"/q/b-", []byte{byte(i)}, zk.FlagSequence))
	}
	last := r.f.MirrorStatus().LastIndex
	testlog.WaitFor(r.t, time.Minute, "the mirror sends every entry", func() error {
		if st := r.m.Status(); st.Sent < last || st.InFlight < 5 {
			return fmt.Errorf("sent %d of %d, %d in flight (%s)", st.Sent, last, st.InFlight, st.LastError)
		}
		return nil
	})
	return before, after
}

// children lists ZooKeeper's children of root/q.
func (r *pipelineRig) children() []string {
	r.t.Helper()
	kids, _, err := zkDirect(r.t).GetChildren(context.Background(), r.root+"/q")
	if err != nil {
		r.t.Fatal(err)
	}
	slices.Sort(kids)
	return kids
}

func (r *pipelineRig) markerIndex() uint64 {
	r.t.Helper()
	var md struct{ Index uint64 }
	if err := json.Unmarshal([]byte(marker(r.t)), &md); err != nil {
		r.t.Fatal(err)
	}
	return md.Index
}

// equal checks ZooKeeper against the journal node by node: nothing doubled
// (the sequential names and every version and cversion agree), nothing
// skipped.
func (r *pipelineRig) equal() {
	r.t.Helper()
	waitDrained(r.t, r.f, r.m)
	compareWithZooKeeper(r.t, r.f, r.root)
	if st := r.m.Status(); st.MaxInFlight < 5 {
		r.t.Errorf("at most %d multis were in flight: the test did not pipeline", st.MaxInFlight)
	}
}

// TestPipelineConnectionLoss: the connection to ZooKeeper dies with many
// multis in flight, either after ZooKeeper applied them all (replies held)
// or before any reached it (requests held). Every outcome is unknown to the
// mirror; it waits for all of them, reads the marker and goes on from what
// it says, so ZooKeeper ends equal to the journal.
func TestPipelineConnectionLoss(t *testing.T) {
	for _, tc := range []struct {
		name     string
		up, down bool
		applied  bool // ZooKeeper has every entry when the connection dies
	}{
		{"replies-held", false, true, true},
		{"requests-held", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newPipelineRig(t, "/pipeline-loss-"+tc.name)
			before := r.m.Status().Resyncs
			start := r.markerIndex()
			r.writeHeld(tc.up, tc.down)
			last := r.f.MirrorStatus().LastIndex
			if tc.applied {
				testlog.WaitFor(t, time.Minute, "ZooKeeper applies every multi", func() error {
					if i := r.markerIndex(); i != last {
						return fmt.Errorf("marker at %d, want %d", i, last)
					}
					return nil
				})
			} else if i := r.markerIndex(); i != start {
				t.Fatalf("marker moved from %d to %d with the requests held", start, i)
			}
			r.proxy.cut()
			r.proxy.hold(false, false)
			r.equal()
			if st := r.m.Status(); st.Resyncs <= before {
				t.Errorf("mirror %+v: want a re-read of the marker after the loss", st)
			}
		})
	}
}

// TestPipelineSplitBrainMidway: a write straight to ZooKeeper makes one of
// many multis in flight fail its check; those before it apply, it and every
// one after it fail (the marker's and the pipeline node's versions), and
// the mirror stops at that entry. Once the node is put
// back it goes on, and ZooKeeper ends equal to the journal: the sequential
// names of the entries after the failure were not skipped nor doubled.
func TestPipelineSplitBrainMidway(t *testing.T) {
	r := newPipelineRig(t, "/pipeline-splitbrain")
	ctx := context.Background()
	direct := zkDirect(t)
	if _, err := direct.SetData(ctx, r.root+"/xp/x", []byte("straight to zookeeper"), 0); err != nil {
		t.Fatal(err)
	}
	before, _ := r.writeHeld(true, false)
	r.proxy.hold(false, false)
	testlog.WaitFor(t, time.Minute, "the mirror stops at the split-brain write", func() error {
		if e := r.m.Status().LastError; !strings.Contains(e, r.root+"/xp/x") || !strings.Contains(e, "differs") {
			return fmt.Errorf("last error %q", e)
		}
		return nil
	})
	// The failing multi holds the setData and at most one neighbour (two
	// ops a multi): ZooKeeper has the first seven or all eight creates before
	// it, in order, and none after it.
	var want []string
	for _, p := range before {
		want = append(want, p[len(r.root+"/q/"):])
	}
	if got := r.children(); len(got) < len(want)-1 || !slices.Equal(got, want[:len(got)]) {
		t.Errorf("ZooKeeper's %s/q = %v: want the entries before the failing one, %v (or all but the last)", r.root, got, want)
	}
	// Put the node back as the journal left it (a new node at version 0,
	// under a parent of its own so that only xp's cversion remembers it).
	if err := direct.Delete(ctx, r.root+"/xp/x", -1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := direct.Create(ctx, r.root+"/xp/x", []byte("j0"), znode.WorldAnyone(), 0); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, r.f, r.m)
	compareWithZooKeeper(t, r.f, r.root+"/q")
	rep := compareReport(t, r.f, r.root)
	if d := rep.Differences; len(d) != 1 || d[0].Path != r.root+"/xp" || d[0].Field != verify.FieldCversion {
		var b strings.Builder
		verify.WriteText(&b, rep)
		t.Errorf("after the repair, want only %s/xp's cversion to differ:\n%s", r.root, b.String())
	}
	if st := r.m.Status(); st.MaxInFlight < 5 {
		t.Errorf("at most %d multis were in flight: the test did not pipeline", st.MaxInFlight)
	}
}

// TestPipelineMarkerMovedMidway: with multis in flight (held at the proxy),
// someone else moves the marker one version on, as a second mirror (an old
// leader that has not noticed) would. The first multi in flight fails its
// marker check; the second one's marker check would now pass, and only the
// pipeline node's version (which the failed first one did not set) stops it
// from applying its entries on top of a ZooKeeper that lacks the first's.
// The mirror re-reads the marker and ZooKeeper ends equal to the journal.
func TestPipelineMarkerMovedMidway(t *testing.T) {
	r := newPipelineRig(t, "/pipeline-marker")
	start := r.markerIndex()
	r.writeHeld(true, false)
	ctx := context.Background()
	direct := zkDirect(t)
	data, st, err := direct.GetData(ctx, markerPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.SetData(ctx, markerPath(t), data, st.Version); err != nil {
		t.Fatal(err)
	}
	resyncs := r.m.Status().Resyncs
	r.proxy.hold(false, false)
	r.equal()
	if st := r.m.Status(); st.Resyncs <= resyncs || r.markerIndex() <= start {
		t.Errorf("mirror %+v: want a re-read of the marker and the marker moved on", st)
	}
}

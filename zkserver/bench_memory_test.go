package zkserver_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/zkwire"
)

var (
	benchMemNodes    = flag.Int("zkbench.nodes", 50_000, "znodes loaded to measure memory per znode (BenchmarkMemoryVsZooKeeper)")
	benchMemWatches  = flag.Int("zkbench.watches", 10_000, "watches set (BenchmarkMemoryVsZooKeeper)")
	benchMemSessions = flag.Int("zkbench.sessions", 10_000, "sessions opened (BenchmarkMemoryVsZooKeeper)")
)

// BenchmarkMemoryVsZooKeeper measures, on the same machine in the same run,
// the memory of a running server per znode (the journal node's live Go heap
// after a GC, against the ZooKeeper JVM's heap in use after a full GC, for
// the same tree loaded through the same client), and the memory and time of
// -zkbench.watches watches and -zkbench.sessions sessions, on both sides:
// three ZooKeeper 3.8 servers (forceSync=yes) against three journal node
// processes. Memory is read on the server the clients are connected to (a
// follower) and on the leader. Target: less memory per znode than
// ZooKeeper.
func BenchmarkMemoryVsZooKeeper(b *testing.B) {
	zkE := benchZooKeeper(b, nil)
	j := startProcJournal(b, 3, 200*time.Millisecond)
	type side struct {
		name   string
		hosts  []string
		leader func() int                 // index into hosts
		heap   func(i int) (int64, int64) // live heap, RSS of server i
	}
	zkHeap := func(i int) (int64, int64) { return jvmHeapUsed(b, zkE.Pids()[i]), int64(rss(zkE.Pids()[i])) }
	jHeap := func(i int) (int64, int64) {
		ms := j.memStats(b)[i]
		return int64(ms.HeapAlloc), int64(ms.RSS)
	}
	sides := []side{
		{"zookeeper", zkE.Hosts(), func() int {
			l, err := zkE.Leader(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			return l - 1
		}, zkHeap},
		{"journal", j.addrs(), func() int {
			for i, n := range j.nodes {
				if out, err := fourLetterWord(n.spec.ClientAddr, "srvr"); err == nil && regexp.MustCompile(`Mode: leader`).MatchString(out) {
					return i
				}
			}
			b.Fatal("no journal leader")
			return 0
		}, jHeap},
	}
	b.ResetTimer()
	for range b.N {
		for _, s := range sides {
			l := s.leader()
			f := (l + 1) % len(s.hosts)
			host := s.hosts[f]
			conns := make([]*zk.Conn, 8)
			for i := range conns {
				conns[i], _ = connect(b, []string{host})
			}
			measure := func() (fHeap, lHeap, fRSS int64) {
				fHeap, fRSS = s.heap(f)
				lHeap, _ = s.heap(l)
				return
			}

			// Memory per znode: -zkbench.nodes nodes of 100 bytes under
			// 100 parents, as a tree of many applications looks.
			if _, err := conns[0].Create("/mem", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
				b.Fatal(err)
			}
			for d := range 100 {
				if _, err := conns[0].Create(fmt.Sprintf("/mem/d%02d", d), nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
					b.Fatal(err)
				}
			}
			f0, l0, r0 := measure()
			start := time.Now()
			var g errgroup.Group
			g.SetLimit(64)
			data := make([]byte, 100)
			for i := range *benchMemNodes {
				c := conns[i%len(conns)]
				g.Go(func() error {
					_, err := c.Create(fmt.Sprintf("/mem/d%02d/node-%07d", i%100, i), data, 0, zk.WorldACL(zk.PermAll))
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			load := time.Since(start)
			// Every server has the tree before it is measured.
			for _, c := range conns[:1] {
				if _, err := c.Sync("/mem"); err != nil {
					b.Fatal(err)
				}
			}
			waitAllHave(b, s.hosts, fmt.Sprintf("/mem/d%02d/node-%07d", (*benchMemNodes-1)%100, *benchMemNodes-1))
			f1, l1, r1 := measure()
			n := float64(*benchMemNodes)
			b.ReportMetric(float64(f1-f0)/n, s.name+"-heap-B/znode")
			b.ReportMetric(float64(l1-l0)/n, s.name+"-leader-heap-B/znode")
			b.ReportMetric(float64(r1-r0)/n, s.name+"-rss-B/znode")
			b.ReportMetric(float64(f1)/1e6, s.name+"-heap-MB")
			b.ReportMetric(n/load.Seconds(), s.name+"-creates/s")

			// Watches: one data watch on each of -zkbench.watches nodes, set
			// from 8 sessions on the follower, then fired by setData from a
			// session on the leader.
			watcher := conns
			w0, _, _ := measure()
			var events sync.WaitGroup
			nw := min(*benchMemWatches, *benchMemNodes)
			events.Add(nw)
			var fired atomic.Int64
			start = time.Now()
			g = errgroup.Group{}
			g.SetLimit(64)
			for i := range nw {
				c := watcher[i%len(watcher)]
				g.Go(func() error {
					_, _, ch, err := c.GetW(fmt.Sprintf("/mem/d%02d/node-%07d", i%100, i))
					if err != nil {
						return err
					}
					go func() {
						if ev := <-ch; ev.Type == zk.EventNodeDataChanged {
							fired.Add(1)
						}
						events.Done()
					}()
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			setWatches := time.Since(start)
			w1, _, _ := measure()
			writer, _ := connect(b, []string{s.hosts[l]})
			start = time.Now()
			g = errgroup.Group{}
			g.SetLimit(64)
			for i := range nw {
				g.Go(func() error {
					_, err := writer.Set(fmt.Sprintf("/mem/d%02d/node-%07d", i%100, i), []byte("changed"), -1)
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			events.Wait()
			fire := time.Since(start)
			if fired.Load() != int64(nw) {
				b.Fatalf("%s: %d of %d watches fired NodeDataChanged", s.name, fired.Load(), nw)
			}
			b.ReportMetric(float64(w1-w0)/float64(nw), s.name+"-heap-B/watch")
			b.ReportMetric(float64(nw)/setWatches.Seconds(), s.name+"-watches-set/s")
			b.ReportMetric(float64(nw)/fire.Seconds(), s.name+"-watch-events/s")

			// Sessions: -zkbench.sessions bare sessions (connect, then a ping
			// now and then) on the follower.
			s0, sl0, _ := measure()
			start = time.Now()
			sessions, err := openBareSessions(s.hosts[f], *benchMemSessions, 30000)
			if err != nil {
				b.Fatal(err)
			}
			opened := time.Since(start)
			s1, sl1, _ := measure()
			b.ReportMetric(float64(s1-s0)/float64(*benchMemSessions), s.name+"-heap-B/session")
			b.ReportMetric(float64(sl1-sl0)/float64(*benchMemSessions), s.name+"-leader-heap-B/session")
			b.ReportMetric(float64(*benchMemSessions)/opened.Seconds(), s.name+"-sessions/s")
			sessions.close()
			for _, c := range append(conns, writer) {
				c.Close()
			}
		}
	}
}

// waitAllHave waits until path is visible on every server (each applied the
// load).
func waitAllHave(b *testing.B, hosts []string, path string) {
	b.Helper()
	for _, h := range hosts {
		c, _ := connect(b, []string{h})
		if err := waitUntil(2*time.Minute, func() bool {
			ok, _, err := c.Exists(path)
			return err == nil && ok
		}); err != nil {
			b.Fatalf("%s never showed %s: %v", h, path, err)
		}
		c.Close()
	}
}

var heapUsed = regexp.MustCompile(`total \d+K, used (\d+)K`)

// jvmHeapUsed asks a JVM (jcmd, Debian's JDK) to run a full GC and returns
// the heap in use after it, in bytes.
func jvmHeapUsed(b *testing.B, pid int) int64 {
	b.Helper()
	if out, err := exec.Command("jcmd", strconv.Itoa(pid), "GC.run").CombinedOutput(); err != nil {
		b.Fatalf("jcmd %d GC.run: %v\n%s", pid, err, out)
	}
	out, err := exec.Command("jcmd", strconv.Itoa(pid), "GC.heap_info").CombinedOutput()
	if err != nil {
		b.Fatalf("jcmd %d GC.heap_info: %v\n%s", pid, err, out)
	}
	var kb int64
	for _, m := range heapUsed.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseInt(m[1], 10, 64)
		kb += v
	}
	if kb == 0 {
		b.Fatalf("jcmd %d GC.heap_info: no heap figures in\n%s", pid, out)
	}
	return kb << 10
}

// bareSessions are sessions held open with nothing but pings: the
// smallest load a session puts on a server, without go-zookeeper's
// per-connection buffers (1.5 MB each) in the benchmark process.
type bareSessions struct {
	conns []net.Conn
	stop  chan struct{}
	wg    sync.WaitGroup
}

func openBareSessions(addr string, n int, timeoutMs int32) (*bareSessions, error) {
	s := &bareSessions{stop: make(chan struct{})}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(64)
	for range n {
		g.Go(func() error {
			nc, err := net.DialTimeout("tcp", addr, 30*time.Second)
			if err != nil {
				return err
			}
			_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
			fr := zkwire.NewFrameReader(bufio.NewReaderSize(nc, 512), zkwire.DefaultMaxReplyFrame)
			if _, err := zkwire.ClientHandshake(nc, fr, zkwire.ConnectRequest{TimeOut: timeoutMs}); err != nil {
				nc.Close()
				return err
			}
			_ = nc.SetDeadline(time.Time{})
			mu.Lock()
			s.conns = append(s.conns, nc)
			mu.Unlock()
			s.wg.Add(1)
			go s.keepAlive(nc, fr, time.Duration(timeoutMs)*time.Millisecond/3)
			return nil
		})
	}
	err := g.Wait()
	if err != nil {
		s.close()
	}
	return s, err
}

func (s *bareSessions) keepAlive(nc net.Conn, fr *zkwire.FrameReader, every time.Duration) {
	defer s.wg.Done()
	ping := zkwire.AppendFrame(nil, zkwire.AppendRecord(nil, &zkwire.RequestHeader{Xid: zkwire.XidPing, Op: zkwire.OpPing}))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if _, err := nc.Write(ping); err != nil {
				return
			}
			if _, err := fr.Next(); err != nil {
				return
			}
		}
	}
}

func (s *bareSessions) close() {
	close(s.stop)
	for _, c := range s.conns {
		c.Close()
	}
	s.wg.Wait()
}

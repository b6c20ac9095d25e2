package zkserver_test

// Journal nodes in processes of their own, for the benchmarks against
// ZooKeeper: ZooKeeper's servers are three JVMs, so the journal's nodes are
// three processes too (the test binary re-executed into
// TestJournalNodeProcess), each scheduled by the kernel apart from the load
// generator, with the defaults `zk2raft serve --client-addr` uses. A small
// control endpoint per process reports the live heap after a GC and writes
// CPU and block profiles, which `zk2raft serve` has no reason to offer.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/spawn"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkserver"
)

const nodeProcessEnv = "ZK2RAFT_ZKSERVER_NODE"

// nodeSpec is what a node process is started with.
type nodeSpec struct {
	ID, Dir, RaftAddr, AdminAddr, ClientAddr, ControlAddr string
	// Join is the admin address of the first node; empty bootstraps. The
	// bootstrapping node moves the journal to primary once Members have
	// joined.
	Join    string
	Members int
	// TickTime of the client port (0: the default); the benchmarks use
	// zktest's 200 ms so both sides negotiate the same timeouts.
	TickTime time.Duration
	// CommitTimeout overrides the node's (0: zkserver.DefaultCommitTimeout,
	// as `zk2raft serve` with a client port).
	CommitTimeout time.Duration
}

// memStats is a node process's memory, after a forced GC.
type memStats struct {
	HeapAlloc uint64 // live heap bytes after GC
	HeapInuse uint64
	Sys       uint64
	RSS       uint64 // VmRSS
}

// TestJournalNodeProcess is not a test: it is the body of a journal node
// process started by the benchmarks. It runs until SIGTERM.
func TestJournalNodeProcess(t *testing.T) {
	raw := os.Getenv(nodeProcessEnv)
	if raw == "" {
		return
	}
	var spec nodeSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "bad spec:", err)
		os.Exit(3)
	}
	if err := runNodeProcess(spec); err != nil {
		fmt.Fprintln(os.Stderr, "node process:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func runNodeProcess(spec nodeSpec) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := raftjournal.DefaultNodeConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.AdminAddr = spec.ID, spec.Dir, spec.RaftAddr, spec.AdminAddr
	cfg.Bootstrap, cfg.Join = spec.Join == "", spec.Join
	cfg.Secret = testlog.Secret()
	cfg.OpenMetrics = true // the benchmark reads the write phases
	cfg.Logger = logger
	cfg.CommitTimeout = zkserver.DefaultCommitTimeout // as serve --client-addr runs
	if spec.CommitTimeout > 0 {
		cfg.CommitTimeout = spec.CommitTimeout
	}
	n, err := raftjournal.Open(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if spec.Join == "" {
		for !n.IsLeader() || len(n.Status().Members) < spec.Members {
			if ctx.Err() != nil {
				return errors.New("the cluster never formed")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := n.SetPhase(ctx, raftjournal.PhasePrimary, false); err != nil {
			return err
		}
	}
	for n.FSM().Phase() != raftjournal.PhasePrimary {
		if ctx.Err() != nil {
			return errors.New("the journal never became primary")
		}
		time.Sleep(20 * time.Millisecond)
	}
	zc := zkserver.DefaultConfig()
	zc.Addr = spec.ClientAddr
	if spec.TickTime > 0 {
		zc.TickTime = spec.TickTime
	}
	zc.MaxSessionTimeout = 60 * time.Second
	zc.MaxClientConnsPerIP = 0
	zc.FourLetterWords = []string{"*"}
	zc.Logger = logger
	zc.Registerer = n.Metrics()
	s, err := zkserver.New(n, zc)
	if err != nil {
		return err
	}
	defer s.Close()

	runtime.SetBlockProfileRate(0)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /memstats", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = json.NewEncoder(w).Encode(memStats{HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, Sys: ms.Sys, RSS: rss(os.Getpid())})
	})
	var cpuFile *os.File
	mux.HandleFunc("POST /profile/start", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Create(r.URL.Query().Get("cpu"))
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		cpuFile = f
		runtime.SetBlockProfileRate(int(50 * time.Microsecond))
		runtime.SetMutexProfileFraction(5)
	})
	mux.HandleFunc("POST /profile/stop", func(w http.ResponseWriter, r *http.Request) {
		pprof.StopCPUProfile()
		if cpuFile != nil {
			cpuFile.Close()
			cpuFile = nil
		}
		for _, kind := range []string{"block", "mutex"} {
			f, err := os.Create(r.URL.Query().Get(kind))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			_ = pprof.Lookup(kind).WriteTo(f, 0)
			f.Close()
		}
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
	})
	ln, err := net.Listen("tcp", spec.ControlAddr)
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(ln, mux) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	ln.Close()
	return nil
}

// rss returns a process's resident set size in bytes (0 when unknown).
func rss(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// procJournal is a journal of node processes.
type procJournal struct {
	dir   string
	nodes []*procJournalNode
}

type procJournalNode struct {
	spec nodeSpec
	cmd  *exec.Cmd
	log  *os.File
}

// startProcJournal starts size node processes and waits until every client
// port answers and the journal is primary.
func startProcJournal(tb testing.TB, size int, tickTime time.Duration) *procJournal {
	tb.Helper()
	return startProcJournalCT(tb, size, tickTime, 0)
}

func startProcJournalCT(tb testing.TB, size int, tickTime, commitTimeout time.Duration) *procJournal {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	j := &procJournal{dir: tb.TempDir()}
	tb.Cleanup(j.stop)
	for i := range size {
		spec := nodeSpec{ID: fmt.Sprintf("p%d", i+1), Dir: filepath.Join(j.dir, fmt.Sprintf("p%d", i+1)),
			RaftAddr: freeAddrT(tb), AdminAddr: freeAddrT(tb), ClientAddr: freeAddrT(tb), ControlAddr: freeAddrT(tb),
			Members: size, TickTime: tickTime, CommitTimeout: commitTimeout}
		if i > 0 {
			spec.Join = j.nodes[0].spec.AdminAddr
		}
		raw, _ := json.Marshal(spec)
		logf, err := os.Create(filepath.Join(j.dir, spec.ID+".log"))
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run", "^TestJournalNodeProcess$", "-test.v=false")
		cmd.Env = append(os.Environ(), nodeProcessEnv+"="+string(raw))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := spawn.Start(cmd); err != nil {
			tb.Fatal(err)
		}
		j.nodes = append(j.nodes, &procJournalNode{spec: spec, cmd: cmd, log: logf})
		if i == 0 {
			if err := waitUntil(60*time.Second, func() bool { return adminUp(spec.AdminAddr) }); err != nil {
				tb.Fatalf("first node process never served its admin port: %v\n%s", err, j.logTail())
			}
		}
	}
	for _, n := range j.nodes {
		if err := waitUntil(2*time.Minute, func() bool {
			out, err := fourLetterWord(n.spec.ClientAddr, "isro")
			return err == nil && out == "rw"
		}); err != nil {
			tb.Fatalf("node process %s never served read-write: %v\n%s", n.spec.ID, err, j.logTail())
		}
	}
	return j
}

func adminUp(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (j *procJournal) addrs() []string {
	out := make([]string, len(j.nodes))
	for i, n := range j.nodes {
		out[i] = n.spec.ClientAddr
	}
	return out
}

func (j *procJournal) pids() []int {
	out := make([]int, len(j.nodes))
	for i, n := range j.nodes {
		out[i] = n.cmd.Process.Pid
	}
	return out
}

// memStats asks every node process for its memory after a GC.
func (j *procJournal) memStats(tb testing.TB) []memStats {
	tb.Helper()
	out := make([]memStats, len(j.nodes))
	for i, n := range j.nodes {
		resp, err := http.Get("http://" + n.spec.ControlAddr + "/memstats")
		if err != nil {
			tb.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&out[i])
		resp.Body.Close()
		if err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// profile starts CPU, block and mutex profiles in every node process and
// returns a function that stops them, writing DIR/NODE.{cpu,block,mutex}.
func (j *procJournal) profile(tb testing.TB, dir string) func() {
	tb.Helper()
	post := func(n *procJournalNode, path string, q string) {
		resp, err := http.Post("http://"+n.spec.ControlAddr+path+"?"+q, "", nil)
		if err != nil {
			tb.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			tb.Fatalf("%s %s: %s", n.spec.ID, path, resp.Status)
		}
	}
	for _, n := range j.nodes {
		post(n, "/profile/start", "cpu="+filepath.Join(dir, n.spec.ID+".cpu"))
	}
	return func() {
		for _, n := range j.nodes {
			base := filepath.Join(dir, n.spec.ID)
			post(n, "/profile/stop", "block="+base+".block&mutex="+base+".mutex")
		}
	}
}

func (j *procJournal) logTail() string {
	var b strings.Builder
	for _, n := range j.nodes {
		raw, _ := os.ReadFile(filepath.Join(j.dir, n.spec.ID+".log"))
		fmt.Fprintf(&b, "--- %s ---\n%s\n", n.spec.ID, tail(string(raw), 3000))
	}
	return b.String()
}

func (j *procJournal) stop() {
	for _, n := range j.nodes {
		if n.cmd.Process != nil {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, n := range j.nodes {
		done := make(chan struct{})
		go func() { _ = n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = n.cmd.Process.Kill()
			<-done
		}
		n.log.Close()
	}
}

// metricSums returns, summed over the node processes, the _sum and _count
// of a histogram's series by the value of label, from their /metrics.
func (j *procJournal) metricSums(tb testing.TB, histogram, label string) map[string][2]float64 {
	tb.Helper()
	out := map[string][2]float64{}
	for _, n := range j.nodes {
		resp, err := http.Get("http://" + n.spec.AdminAddr + "/metrics")
		if err != nil {
			tb.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			tb.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			for i, suffix := range []string{"_sum{", "_count{"} {
				rest, ok := strings.CutPrefix(line, histogram+suffix)
				if !ok {
					continue
				}
				labels, value, _ := strings.Cut(rest, "} ")
				v, _ := strconv.ParseFloat(value, 64)
				key := ""
				for _, kv := range strings.Split(labels, ",") {
					if k, val, _ := strings.Cut(kv, "="); k == label {
						key = strings.Trim(val, `"`)
					}
				}
				cur := out[key]
				cur[i] += v
				out[key] = cur
			}
		}
	}
	return out
}

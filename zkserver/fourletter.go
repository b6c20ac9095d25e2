package zkserver

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/internal/buildinfo"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkwire"
)

// Four-letter words, as ZooKeeper 3.8's command classes print them. A word
// not in the whitelist gets ZooKeeper's one-line refusal; either way the
// connection closes after the text.

func knownWord(w string) bool {
	if len(w) != 4 {
		return false
	}
	fw := zkwire.FourLetterWord(uint32(w[0])<<24 | uint32(w[1])<<16 | uint32(w[2])<<8 | uint32(w[3]))
	return fw.Known() && fw != zkwire.WordTelnetClose
}

func (s *Server) whitelisted(word string) bool {
	for _, w := range s.cfg.FourLetterWords {
		if w == "*" || w == word {
			return true
		}
	}
	return false
}

func (c *conn) fourLetterWord(w zkwire.FourLetterWord) {
	if w == zkwire.WordTelnetClose {
		return
	}
	word := w.String()
	c.s.m.fourLetter.WithLabelValues(word).Inc()
	var out string
	if !c.s.whitelisted(word) {
		out = word + " is not executed because it is not in the whitelist.\n"
	} else {
		out = c.s.fourLetterText(word)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.nc.Write([]byte(out))
}

// Version is what srvr, stat, mntr and envi report as the server version:
// ZooKeeper's protocol version served, then this build.
func Version() string {
	return "3.8.0-zk2raft " + buildinfo.Version()
}

func (s *Server) mode() string {
	if s.node.IsLeader() {
		if len(s.node.Status().Members) <= 1 {
			return "standalone"
		}
		return "leader"
	}
	if s.fsm.Phase() == raftjournal.PhaseShadow {
		return "read-only"
	}
	return "follower"
}

func (s *Server) statsText() string {
	st := &s.stats
	var b strings.Builder
	count := st.count.Load()
	avg := 0.0
	if count > 0 {
		avg = float64(st.totalLatency.Load()) / float64(count) / 1e6
	}
	fmt.Fprintf(&b, "Latency min/avg/max: %d/%.4f/%d\n", st.minLatency.Load()/1e6, avg, st.maxLatency.Load()/1e6)
	fmt.Fprintf(&b, "Received: %d\n", st.received.Load())
	fmt.Fprintf(&b, "Sent: %d\n", st.sent.Load())
	fmt.Fprintf(&b, "Connections: %d\n", s.ConnectionCount())
	fmt.Fprintf(&b, "Outstanding: %d\n", s.outstanding())
	fmt.Fprintf(&b, "Zxid: 0x%x\n", s.fsm.LastZxid())
	fmt.Fprintf(&b, "Mode: %s\n", s.mode())
	return b.String()
}

func (s *Server) outstanding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		n += len(c.queue)
	}
	return n
}

func (s *Server) connList() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *conn) int { return a.connected.Compare(b.connected) })
	return out
}

func (c *conn) info(brief bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, " /%s[1](queued=%d,recved=%d,sent=%d", c.nc.RemoteAddr(), len(c.queue), c.received.Load(), c.sent.Load())
	if id := c.sessionID.Load(); !brief && id != 0 {
		lop, _ := c.lastOp.Load().(string)
		if lop == "" {
			lop = "NA"
		}
		fmt.Fprintf(&b, ",sid=0x%x,lop=%s,est=%d,to=%d,lzxid=0x%x", id, lop, c.connected.UnixMilli(), c.timeout.Milliseconds(), c.lastZxid.Load())
	}
	b.WriteString(")")
	return b.String()
}

func (s *Server) fourLetterText(word string) string {
	var b strings.Builder
	switch word {
	case "ruok":
		return "imok"
	case "isro":
		if s.fsm.Phase() == raftjournal.PhaseShadow {
			return "ro"
		}
		return "rw"
	case "srvr":
		fmt.Fprintf(&b, "Zookeeper version: %s\n", Version())
		b.WriteString(s.statsText())
		fmt.Fprintf(&b, "Node count: %d\n", s.fsm.NodeCount())
	case "stat":
		fmt.Fprintf(&b, "Zookeeper version: %s\n", Version())
		if s.fsm.Phase() == raftjournal.PhaseShadow {
			b.WriteString("READ-ONLY mode; serving only read-only clients\n")
		}
		b.WriteString("Clients:\n")
		for _, c := range s.connList() {
			b.WriteString(c.info(true) + "\n")
		}
		b.WriteString("\n")
		b.WriteString(s.statsText())
		fmt.Fprintf(&b, "Node count: %d\n", s.fsm.NodeCount())
	case "cons":
		for _, c := range s.connList() {
			b.WriteString(c.info(false) + "\n")
		}
		b.WriteString("\n")
	case "conf":
		fmt.Fprintf(&b, "clientPort=%s\n", portOf(s.Addr()))
		fmt.Fprintf(&b, "secureClientPort=%s\n", portOf(s.SecureAddr()))
		fmt.Fprintf(&b, "dataDir=%s\n", s.node.Status().ID)
		fmt.Fprintf(&b, "tickTime=%d\n", s.cfg.TickTime.Milliseconds())
		fmt.Fprintf(&b, "maxClientCnxns=%d\n", s.cfg.MaxClientConnsPerIP)
		fmt.Fprintf(&b, "minSessionTimeout=%d\n", s.cfg.minTimeout().Milliseconds())
		fmt.Fprintf(&b, "maxSessionTimeout=%d\n", s.cfg.maxTimeout().Milliseconds())
		fmt.Fprintf(&b, "clientPortListenBacklog=-1\n")
		fmt.Fprintf(&b, "serverId=%s\n", s.node.ID())
	case "envi":
		host, _ := os.Hostname()
		b.WriteString("Environment:\n")
		fmt.Fprintf(&b, "zookeeper.version=%s\n", Version())
		fmt.Fprintf(&b, "host.name=%s\n", host)
		fmt.Fprintf(&b, "go.version=%s\n", runtime.Version())
		fmt.Fprintf(&b, "os.name=%s\nos.arch=%s\n", runtime.GOOS, runtime.GOARCH)
		if wd, err := os.Getwd(); err == nil {
			fmt.Fprintf(&b, "user.dir=%s\n", wd)
		}
	case "wchs":
		conns, paths, total := s.watchSummary()
		fmt.Fprintf(&b, "%d connections watching %d paths\nTotal watches:%d\n", conns, paths, total)
	case "wchc":
		for _, c := range s.connList() {
			if c.watcher == nil {
				continue
			}
			paths := c.watcher.WatchedPaths()
			if len(paths) == 0 {
				continue
			}
			fmt.Fprintf(&b, "0x%x\n", c.sessionID.Load())
			for _, p := range paths {
				fmt.Fprintf(&b, "\t%s\n", p)
			}
		}
		b.WriteString("\n")
	case "wchp":
		byPath := map[string][]int64{}
		for _, c := range s.connList() {
			if c.watcher == nil {
				continue
			}
			for _, p := range c.watcher.WatchedPaths() {
				byPath[p] = append(byPath[p], c.sessionID.Load())
			}
		}
		paths := make([]string, 0, len(byPath))
		for p := range byPath {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		for _, p := range paths {
			b.WriteString(p + "\n")
			for _, id := range byPath[p] {
				fmt.Fprintf(&b, "\t0x%x\n", id)
			}
		}
		b.WriteString("\n")
	case "dump":
		b.WriteString("SessionTracker dump:\n")
		sessions := s.fsm.Sessions()
		fmt.Fprintf(&b, "Global Sessions(%d):\n", len(sessions))
		for _, si := range sessions {
			fmt.Fprintf(&b, "0x%x\t%dms\n", si.ID, si.TimeoutMs)
		}
		b.WriteString("ephemeral nodes dump:\n")
		fmt.Fprintf(&b, "Sessions with Ephemerals (%d):\n", countWithEphemerals(sessions))
		for _, si := range sessions {
			if si.Ephemerals == 0 {
				continue
			}
			fmt.Fprintf(&b, "0x%x:\n", si.ID)
			for _, p := range s.fsm.Ephemerals(si.ID) {
				fmt.Fprintf(&b, "\t%s\n", p)
			}
		}
	case "hash":
		for _, d := range s.fsm.DigestHistory() {
			fmt.Fprintf(&b, "%x: %d\n", d.Zxid, int64(d.Digest))
		}
	case "mntr":
		return s.mntr()
	case "crst":
		for _, c := range s.connList() {
			c.received.Store(0)
			c.sent.Store(0)
		}
		return "Connection stats reset.\n"
	case "srst":
		st := &s.stats
		st.received.Store(0)
		st.sent.Store(0)
		st.count.Store(0)
		st.totalLatency.Store(0)
		st.minLatency.Store(0)
		st.maxLatency.Store(0)
		return "Server stats reset.\n"
	case "dirs":
		return "datadir_size: 0\nlogdir_size: 0\n"
	case "gtmk", "stmk":
		return "0\n"
	}
	return b.String()
}

func countWithEphemerals(ss []raftjournal.SessionInfo) int {
	n := 0
	for _, s := range ss {
		if s.Ephemerals > 0 {
			n++
		}
	}
	return n
}

func (s *Server) watchSummary() (conns, paths, total int) {
	for _, c := range s.connList() {
		if c.watcher == nil {
			continue
		}
		d, ch := c.watcher.WatchCounts()
		if d+ch > 0 {
			conns++
			total += d + ch
		}
	}
	return conns, s.fsm.WatchedPathCount(), total
}

// mntr prints ZooKeeper's mntr keys (tab-separated, zk_ prefixed) that have
// a meaning here, so that existing scrapers and dashboards keep working.
func (s *Server) mntr() string {
	var b strings.Builder
	kv := func(k string, v any) { fmt.Fprintf(&b, "zk_%s\t%v\n", k, v) }
	st := s.fsm.Status()
	stats := &s.stats
	count := stats.count.Load()
	avg := 0.0
	if count > 0 {
		avg = float64(stats.totalLatency.Load()) / float64(count) / 1e6
	}
	_, _, watches := s.watchSummary()
	kv("version", Version())
	kv("server_state", s.mode())
	kv("ephemerals_count", st.Ephemerals)
	kv("approximate_data_size", 0)
	kv("znode_count", st.Nodes)
	kv("watch_count", watches)
	kv("outstanding_requests", s.outstanding())
	kv("num_alive_connections", s.ConnectionCount())
	kv("avg_latency", fmt.Sprintf("%.4f", avg))
	kv("max_latency", stats.maxLatency.Load()/1e6)
	kv("min_latency", stats.minLatency.Load()/1e6)
	kv("packets_received", stats.received.Load())
	kv("packets_sent", stats.sent.Load())
	kv("uptime", time.Since(s.start).Milliseconds())
	kv("global_sessions", st.Sessions)
	s.mu.Lock()
	local := len(s.local)
	s.mu.Unlock()
	kv("local_sessions", local)
	kv("open_file_descriptor_count", openFDs())
	kv("max_file_descriptor_count", maxFDs())
	kv("last_proposal_size", -1)
	kv("digest_mismatches_count", 0)
	if s.node.IsLeader() {
		members := len(s.node.Status().Members)
		kv("learners", members-1)
		kv("synced_followers", members-1)
		kv("synced_non_voting_followers", 0)
		kv("synced_observers", 0)
		kv("pending_syncs", 0)
	}
	return b.String()
}

// portOf is the port of addr, or -1 (ZooKeeper's "none") without one.
func portOf(addr string) string {
	if addr == "" {
		return "-1"
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr
	}
	return addr[i+1:]
}

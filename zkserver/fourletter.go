package zkserver

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
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

// Version is what srvr, stat, mntr and envi report as the server version,
// in ZooKeeper 3.8's form: the protocol version served, this build
// (without spaces), and ", built on" its date in UTC — the VCS commit time
// Go records, or the executable's modification time.
func Version() string {
	versionOnce.Do(func() {
		v := strings.ReplaceAll(buildinfo.Version(), " ", "-")
		versionText = "3.8.0-zk2raft-" + v + ", built on " + buildTime().UTC().Format("2006-01-02 15:04") + " UTC"
	})
	return versionText
}

var (
	versionOnce sync.Once
	versionText string
)

func buildTime() time.Time {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t
				}
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		if fi, err := os.Stat(exe); err == nil {
			return fi.ModTime()
		}
	}
	return time.Unix(0, 0)
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
	lo, avg, hi := st.ms()
	fmt.Fprintf(&b, "Latency min/avg/max: %d/%.4f/%d\n", lo, avg, hi)
	fmt.Fprintf(&b, "Received: %d\n", st.received.Load())
	fmt.Fprintf(&b, "Sent: %d\n", st.sent.Load())
	fmt.Fprintf(&b, "Connections: %d\n", s.ConnectionCount())
	fmt.Fprintf(&b, "Outstanding: %d\n", s.outstanding())
	fmt.Fprintf(&b, "Zxid: 0x%x\n", s.fsm.LastZxid())
	fmt.Fprintf(&b, "Mode: %s\n", s.mode())
	return b.String()
}

// proposalSizes is the leader's "Proposal sizes" line: the sizes of the
// Raft entries it applied, ZooKeeper's proposals.
func (s *Server) proposalSizes(b *strings.Builder) {
	if s.node.IsLeader() {
		last, lo, hi := s.node.EntrySizes()
		fmt.Fprintf(b, "Proposal sizes last/min/max: %d/%d/%d\n", last, lo, hi)
	}
}

func (s *Server) outstanding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		n += c.queue.len()
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

// info is a connection's line in stat and cons, as ServerCnxn.dumpConnectionInfo
// prints it.
func (c *conn) info(brief bool) string {
	var b strings.Builder
	// [1]: ZooKeeper's interest ops, reading; [0] for a connection without a
	// session (the one asking, say).
	interest := 1
	if c.sessionID.Load() == 0 {
		interest = 0
	}
	fmt.Fprintf(&b, " /%s[%d](queued=%d,recved=%d,sent=%d", c.nc.RemoteAddr(), interest, c.queue.len(), c.received.Load(), c.sent.Load())
	if id := c.sessionID.Load(); !brief && id != 0 {
		lop, _ := c.lastOp.Load().(string)
		if lop == "" {
			lop = "NA"
		}
		fmt.Fprintf(&b, ",sid=0x%x,lop=%s,est=%d,to=%d", id, lop, c.connected.UnixMilli(), c.timeout.Milliseconds())
		if xid := c.lastCxid.Load(); xid >= 0 {
			fmt.Fprintf(&b, ",lcxid=0x%x", xid)
		}
		lo, avg, hi := c.latency.ms()
		fmt.Fprintf(&b, ",lzxid=0x%x,lresp=%d,llat=%d,minlat=%d,avglat=%d,maxlat=%d",
			c.lastZxid.Load(), c.lastResponse.Load(), c.lastLatency.Load()/1e6, lo, int64(avg), hi)
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
		s.proposalSizes(&b)
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
		s.proposalSizes(&b)
	case "cons":
		for _, c := range s.connList() {
			b.WriteString(c.info(false) + "\n")
		}
		b.WriteString("\n")
	case "conf":
		fmt.Fprintf(&b, "clientPort=%s\n", portOf(s.Addr()))
		fmt.Fprintf(&b, "secureClientPort=%s\n", portOf(s.SecureAddr()))
		dir := s.node.DataDir()
		size := dirSize(dir)
		fmt.Fprintf(&b, "dataDir=%s\ndataDirSize=%d\ndataLogDir=%s\ndataLogSize=%d\n", dir, size, dir, size)
		fmt.Fprintf(&b, "tickTime=%d\n", s.cfg.TickTime.Milliseconds())
		fmt.Fprintf(&b, "maxClientCnxns=%d\n", s.cfg.MaxClientConnsPerIP)
		fmt.Fprintf(&b, "minSessionTimeout=%d\n", s.cfg.minTimeout().Milliseconds())
		fmt.Fprintf(&b, "maxSessionTimeout=%d\n", s.cfg.maxTimeout().Milliseconds())
		fmt.Fprintf(&b, "clientPortListenBacklog=-1\n")
		fmt.Fprintf(&b, "serverId=%s\n", s.node.ID())
		b.WriteString("membership: \n")
		for _, m := range s.node.Status().Members {
			fmt.Fprintf(&b, "server.%s=%s:participant\n", m.ID, m.RaftAddr)
		}
	case "envi":
		host, _ := os.Hostname()
		b.WriteString("Environment:\n")
		fmt.Fprintf(&b, "zookeeper.version=%s\n", Version())
		fmt.Fprintf(&b, "host.name=%s\n", host)
		fmt.Fprintf(&b, "go.version=%s\n", runtime.Version())
		fmt.Fprintf(&b, "os.name=%s\nos.arch=%s\n", runtime.GOOS, runtime.GOARCH)
		if rel, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
			fmt.Fprintf(&b, "os.version=%s\n", strings.TrimSpace(string(rel)))
		}
		if u, err := user.Current(); err == nil {
			fmt.Fprintf(&b, "user.name=%s\nuser.home=%s\n", u.Username, u.HomeDir)
		}
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
			c.latency.reset()
		}
		return "Connection stats reset.\n"
	case "srst":
		st := &s.stats
		st.received.Store(0)
		st.sent.Store(0)
		st.latencyStats.reset()
		st.reads.reset()
		st.updates.reset()
		return "Server stats reset.\n"
	case "dirs":
		return "datadir_size: 0\nlogdir_size: 0\n"
	case "gtmk", "stmk":
		return "0\n"
	}
	return b.String()
}

// lastOpName is the name cons shows as a connection's last operation, as
// ZooKeeper's FinalRequestProcessor records it ("" for the requests it
// answers before that, auth and sasl, which leave it as it was).
func lastOpName(op zkwire.OpCode) string {
	switch op {
	case zkwire.OpPing:
		return "PING"
	case zkwire.OpMulti:
		return "MULT"
	case zkwire.OpMultiRead:
		return "MLTR"
	case zkwire.OpCreate, zkwire.OpCreate2, zkwire.OpCreateTTL, zkwire.OpCreateContainer:
		return "CREA"
	case zkwire.OpDelete, zkwire.OpDeleteContainer:
		return "DELE"
	case zkwire.OpSetData:
		return "SETD"
	case zkwire.OpReconfig:
		return "RECO"
	case zkwire.OpSetACL:
		return "SETA"
	case zkwire.OpCloseSession:
		return "CLOS"
	case zkwire.OpSync:
		return "SYNC"
	case zkwire.OpCheck:
		return "CHEC"
	case zkwire.OpExists:
		return "EXIS"
	case zkwire.OpGetData:
		return "GETD"
	case zkwire.OpSetWatches:
		return "SETW"
	case zkwire.OpSetWatches2:
		return "STW2"
	case zkwire.OpAddWatch:
		return "ADDW"
	case zkwire.OpGetACL:
		return "GETA"
	case zkwire.OpGetChildren, zkwire.OpGetChildren2:
		return "GETC"
	case zkwire.OpGetAllChildrenNumber:
		return "GETACN"
	case zkwire.OpCheckWatches:
		return "CHKW"
	case zkwire.OpRemoveWatches:
		return "REMW"
	case zkwire.OpWhoAmI:
		return "HOMI"
	case zkwire.OpGetEphemerals:
		return "GETE"
	case zkwire.OpAuth, zkwire.OpSASL:
		return ""
	}
	return "NA"
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

// mntr prints ZooKeeper 3.8's mntr keys (tab-separated, zk_ prefixed) that
// have a meaning here, with ZooKeeper's value types, so that existing
// scrapers and dashboards keep working; the keys it leaves out, and why,
// are listed in the tests (intendedMntrGaps).
func (s *Server) mntr() string {
	var b strings.Builder
	kv := func(k string, v any) { fmt.Fprintf(&b, "zk_%s\t%v\n", k, v) }
	summary := func(name string, ls *latencyStats) {
		lo, avg, hi := ls.ms()
		kv("avg_"+name, fmt.Sprintf("%.4f", avg))
		kv("min_"+name, lo)
		kv("max_"+name, hi)
		kv("cnt_"+name, ls.count.Load())
		kv("sum_"+name, ls.totalLatency.Load()/1e6)
	}
	st := s.fsm.Status()
	stats := &s.stats
	lo, avg, hi := stats.ms()
	_, _, watches := s.watchSummary()
	status := s.node.Status()
	leader := s.node.IsLeader()
	kv("version", Version())
	kv("server_state", s.mode())
	switch {
	case leader:
		kv("peer_state", "leading - broadcast")
	case status.Leader != "":
		kv("peer_state", "following - broadcast")
	default:
		kv("peer_state", "looking - leader election")
	}
	kv("ephemerals_count", st.Ephemerals)
	kv("approximate_data_size", s.fsm.ApproximateDataSize())
	kv("znode_count", st.Nodes)
	kv("watch_count", watches)
	kv("outstanding_requests", s.outstanding())
	kv("num_alive_connections", s.ConnectionCount())
	kv("avg_latency", fmt.Sprintf("%.4f", avg))
	kv("max_latency", hi)
	kv("min_latency", lo)
	kv("packets_received", stats.received.Load())
	kv("packets_sent", stats.sent.Load())
	kv("bytes_received_count", stats.bytesReceived.Load())
	kv("connection_request_count", stats.connectionRequests.Load())
	kv("connection_rejected", stats.connectionRejected.Load())
	kv("auth_failed_count", stats.authFailed.Load())
	kv("outstanding_tls_handshake", stats.tlsHandshakes.Load())
	kv("last_client_response_size", stats.lastResponseSize.Load())
	kv("min_client_response_size", stats.minResponseSize.Load())
	kv("max_client_response_size", stats.maxResponseSize.Load())
	kv("uptime", time.Since(s.start).Milliseconds())
	kv("global_sessions", st.Sessions)
	s.mu.Lock()
	local := len(s.local)
	s.mu.Unlock()
	kv("local_sessions", local)
	kv("open_file_descriptor_count", openFDs())
	kv("max_file_descriptor_count", maxFDs())
	voters := 0
	for _, m := range status.Members {
		if m.Suffrage == "voter" {
			voters++
		}
	}
	kv("quorum_size", voters)
	summary("readlatency", &stats.reads)
	summary("updatelatency", &stats.updates)
	if leader {
		last, lo, hi := s.node.EntrySizes()
		kv("last_proposal_size", last)
		kv("min_proposal_size", lo)
		kv("max_proposal_size", hi)
		kv("learners", len(status.Members)-1)
		kv("synced_followers", voters-1)
		kv("synced_non_voting_followers", len(status.Members)-voters)
		kv("synced_observers", 0)
		kv("pending_syncs", 0)
	}
	return b.String()
}

// dirSize is the bytes of the files under dir (conf's dataDirSize).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
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

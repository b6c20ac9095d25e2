package zktest_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/zktest"
)

// shared is started once for the whole test binary by TestMain, the pattern
// doc.go recommends to other packages.
var shared *zktest.Ensemble

func TestMain(m *testing.M) {
	zktest.Main(m, zktest.Options{ExtendedTypes: true}, &shared)
}

// zk is the accessor tests use to reach the shared ensemble.
func zk(t testing.TB) *zktest.Ensemble {
	t.Helper()
	if shared == nil {
		t.Fatal("shared ensemble not started; TestMain must call zktest.Main")
	}
	return shared
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func fourLetter(t testing.TB, e *zktest.Ensemble, id int, word string) string {
	t.Helper()
	out, err := e.FourLetterWord(ctxTimeout(t, 10*time.Second), id, word)
	if err != nil {
		t.Fatalf("%s on server %d: %v", word, id, err)
	}
	return out
}

func modes(t testing.TB, e *zktest.Ensemble) map[int]zktest.Mode {
	t.Helper()
	out := make(map[int]zktest.Mode)
	for _, s := range e.Servers() {
		m, err := e.Mode(ctxTimeout(t, 10*time.Second), s.ID)
		if err != nil {
			t.Fatalf("mode of server %d: %v", s.ID, err)
		}
		out[s.ID] = m
	}
	return out
}

func TestSharedFourLetterWords(t *testing.T) {
	e := zk(t)
	if got := fourLetter(t, e, 1, "ruok"); got != "imok" {
		t.Errorf("ruok = %q, want imok", got)
	}
	if got := fourLetter(t, e, 1, "srvr"); !strings.Contains(got, "Mode: standalone") {
		t.Errorf("srvr = %q, want Mode: standalone", got)
	}
	// hash is not in ZooKeeper's default whitelist; it answers (possibly
	// with nothing, see digestAt) only because the whitelist is "*".
	if got := fourLetter(t, e, 1, "hash"); strings.Contains(got, "whitelist") || strings.Contains(got, "not currently serving") {
		t.Errorf("hash = %q, want an answer", got)
	}
	if d := digestAt(t, e, 1); d == "" {
		t.Error("no digest after 128 transactions; is digest.enabled set?")
	}
	if got := fourLetter(t, e, 1, "envi"); !strings.Contains(got, "zookeeper.version=3.8") {
		t.Errorf("envi = %q, want zookeeper.version=3.8", got)
	}
	if got := fourLetter(t, e, 1, "conf"); !strings.Contains(got, "maxClientCnxns=0") {
		t.Errorf("conf = %q, want maxClientCnxns=0", got)
	}
	if got, want := e.ConnectString(), e.Servers()[0].ClientAddr; got != want {
		t.Errorf("ConnectString = %q, want %q", got, want)
	}
	if !strings.HasPrefix(e.Hosts()[0], "127.0.0.1:") {
		t.Errorf("Hosts = %v, want loopback", e.Hosts())
	}
	if id, err := e.Leader(t.Context()); err != nil || id != 1 {
		t.Errorf("Leader = %d, %v; want 1", id, err)
	}
}

func TestStandalone(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	e := zktest.New(t, zktest.Options{Servers: 1, JuteMaxBuffer: 4 << 20})
	t.Logf("1-node ensemble serving after %v", time.Since(begin).Round(time.Millisecond))

	if m := modes(t, e); m[1] != zktest.ModeStandalone {
		t.Fatalf("modes = %v, want standalone", m)
	}
	// The launch line zktest writes at the top of the log records the JVM flags.
	if log, err := os.ReadFile(e.Servers()[0].LogFile); err != nil || !strings.Contains(string(log), "-Djute.maxbuffer=4194304") {
		t.Errorf("JuteMaxBuffer not passed to the JVM (read log: %v)", err)
	}

	begin = time.Now()
	if err := e.Restart(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("standalone restart (SIGTERM + start) took %v", time.Since(begin).Round(time.Millisecond))
	if got := fourLetter(t, e, 1, "ruok"); got != "imok" {
		t.Errorf("after restart ruok = %q", got)
	}
	if err := e.StartServer(t.Context(), 1); !errors.Is(err, zktest.ErrRunning) {
		t.Errorf("StartServer on a running server = %v, want ErrRunning", err)
	}
	if _, err := e.Mode(t.Context(), 2); !errors.Is(err, zktest.ErrNoServer) {
		t.Errorf("Mode(2) = %v, want ErrNoServer", err)
	}

	addr := e.Servers()[0].ClientAddr
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Close", addr)
	}
	if _, err := e.FourLetterWord(t.Context(), 1, "ruok"); !errors.Is(err, zktest.ErrClosed) {
		t.Errorf("FourLetterWord after Close = %v, want ErrClosed", err)
	}
}

func TestThreeNodes(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	e := zktest.New(t, zktest.Options{Servers: 3})
	t.Logf("3-node ensemble serving after %v", time.Since(begin).Round(time.Millisecond))

	if n := len(strings.Split(e.ConnectString(), ",")); n != 3 {
		t.Fatalf("ConnectString %q has %d hosts, want 3", e.ConnectString(), n)
	}
	for _, s := range e.Servers() {
		if got := fourLetter(t, e, s.ID, "ruok"); got != "imok" {
			t.Errorf("server %d ruok = %q", s.ID, got)
		}
		if got := fourLetter(t, e, s.ID, "hash"); strings.Contains(got, "whitelist") {
			t.Errorf("server %d hash = %q", s.ID, got)
		}
	}
	leader, err := e.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m := modes(t, e)
	for id, mode := range m {
		want := zktest.ModeFollower
		if id == leader {
			want = zktest.ModeLeader
		}
		if mode != want {
			t.Errorf("server %d is %v, want %v (modes %v)", id, mode, want, m)
		}
	}
	follower := leader%3 + 1

	// kill -9 a follower: the remaining two keep a quorum.
	if err := e.Kill(follower); err != nil {
		t.Fatal(err)
	}
	if e.Running(follower) {
		t.Fatalf("server %d still running after Kill", follower)
	}
	if _, err := e.Mode(t.Context(), follower); err == nil {
		t.Errorf("killed server %d still answers", follower)
	}
	if err := e.Wait(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatalf("quorum lost after killing a follower: %v", err)
	}
	for _, s := range e.Servers() {
		if s.ID == follower {
			continue
		}
		if got := fourLetter(t, e, s.ID, "srvr"); !strings.Contains(got, "Mode: leader") && !strings.Contains(got, "Mode: follower") {
			t.Errorf("server %d srvr after follower kill = %q", s.ID, got)
		}
	}

	begin = time.Now()
	if err := e.StartServer(ctxTimeout(t, 60*time.Second), follower); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed follower rejoined after %v", time.Since(begin).Round(time.Millisecond))
	if mode, err := e.Mode(t.Context(), follower); err != nil || mode != zktest.ModeFollower {
		t.Errorf("restarted server %d is %v (%v), want follower", follower, mode, err)
	}

	// kill -9 the leader: the other two elect a new one.
	begin = time.Now()
	if err := e.Kill(leader); err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctxTimeout(t, 60*time.Second)); err != nil {
		t.Fatalf("no new leader after killing the leader: %v", err)
	}
	newLeader, err := e.Leader(t.Context())
	if err != nil || newLeader == leader {
		t.Fatalf("Leader after killing %d = %d, %v", leader, newLeader, err)
	}
	t.Logf("new leader %d elected %v after killing leader %d", newLeader, time.Since(begin).Round(time.Millisecond), leader)
	if err := e.StartServer(ctxTimeout(t, 60*time.Second), leader); err != nil {
		t.Fatal(err)
	}
	if mode, err := e.Mode(t.Context(), leader); err != nil || mode != zktest.ModeFollower {
		t.Errorf("old leader %d came back as %v (%v), want follower", leader, mode, err)
	}

	// Every member computes the same tree digest, including the two that
	// were killed and caught up from the leader.
	want := digestAt(t, e, newLeader)
	for _, s := range e.Servers() {
		if got := pollHash(t, e, s.ID, want); got != want {
			t.Errorf("server %d hash first line = %q, leader has %q", s.ID, got, want)
		}
	}

	// A graceful restart of a follower.
	if err := e.Restart(ctxTimeout(t, 60*time.Second), leader); err != nil {
		t.Fatal(err)
	}
	if err := e.Wait(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestStartFailureQuotesLog(t *testing.T) {
	t.Parallel()
	_, err := zktest.Start(ctxTimeout(t, 60*time.Second), zktest.Options{
		BaseDir: t.TempDir(),
		Config:  map[string]string{"tickTime": "not-a-number"},
	})
	var se *zktest.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("Start with a bad zoo.cfg = %v, want a *ServerError", err)
	}
	if se.ID != 1 || !strings.Contains(se.LogTail, "not-a-number") || !strings.Contains(err.Error(), se.LogFile) {
		t.Errorf("error does not quote the server's log:\n%v", err)
	}
}

func TestFind(t *testing.T) {
	in, err := zktest.Find()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(in.Version, "3.8") {
		t.Errorf("Version = %q, want 3.8.x", in.Version)
	}
	if in.Java == "" || len(in.Classpath) == 0 {
		t.Errorf("Find = %+v", in)
	}
}

func TestFindMissing(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"no java", map[string]string{zktest.EnvJava: "/nonexistent/bin/java"}},
		{"java is a directory", map[string]string{zktest.EnvJava: t.TempDir()}},
		{"no jars", map[string]string{zktest.EnvClasspath: "/nonexistent/zookeeper.jar"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := zktest.Find()
			if !errors.Is(err, zktest.ErrNotInstalled) {
				t.Fatalf("Find = %v, want ErrNotInstalled", err)
			}
			if !strings.Contains(err.Error(), "run `make deps`") {
				t.Errorf("message %q does not say to run make deps", err)
			}
			if _, err := zktest.Start(t.Context(), zktest.Options{}); !errors.Is(err, zktest.ErrNotInstalled) {
				t.Errorf("Start = %v, want ErrNotInstalled", err)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts zktest.Options
		ok   bool
	}{
		{"zero", zktest.Options{}, true},
		{"three", zktest.Options{Servers: 3}, true},
		{"two", zktest.Options{Servers: 2}, false},
		{"five", zktest.Options{Servers: 5}, false},
		{"negative tick", zktest.Options{TickTime: -time.Second}, false},
		{"sub-millisecond tick", zktest.Options{TickTime: time.Microsecond}, false},
		{"negative jute", zktest.Options{JuteMaxBuffer: -1}, false},
		{"owned config key", zktest.Options{Config: map[string]string{"clientPort": "2181"}}, false},
		{"owned server line", zktest.Options{Config: map[string]string{"server.1": "x"}}, false},
		{"newline in value", zktest.Options{Config: map[string]string{"snapCount": "1\nclientPort=1"}}, false},
		{"extra config", zktest.Options{Config: map[string]string{"snapCount": "1000"}}, true},
		{"bad property", zktest.Options{SystemProperties: map[string]string{"a=b": "c"}}, false},
		{"server property", zktest.Options{Servers: 3, ServerSystemProperties: map[int]map[string]string{3: {"a": "b"}}}, true},
		{"server property of no server", zktest.Options{Servers: 3, ServerSystemProperties: map[int]map[string]string{4: {"a": "b"}}}, false},
		{"bad server property", zktest.Options{ServerSystemProperties: map[int]map[string]string{1: {"": "b"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, zktest.ErrInvalidOptions) {
				t.Errorf("Validate = %v, want ErrInvalidOptions", err)
			}
		})
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[zktest.Mode]string{
		zktest.ModeUnknown: "unknown", zktest.ModeNotServing: "not-serving", zktest.ModeLeader: "leader",
		zktest.ModeFollower: "follower", zktest.ModeStandalone: "standalone", zktest.Mode(99): "Mode(99)",
	} {
		if got := m.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(m), got, want)
		}
	}
}

func TestFourLetterWordRejectsBadWord(t *testing.T) {
	if _, err := zk(t).FourLetterWord(t.Context(), 1, "status"); err == nil {
		t.Error("FourLetterWord accepted a six-letter word")
	}
}

// digestAt makes server id's ensemble commit transactions (one session
// created and closed per connection) until ZooKeeper's digest log, which
// records only zxids that are multiples of 128, has an entry, and returns the
// first line of hash: "<zxid hex>: <digest>".
func digestAt(t testing.TB, e *zktest.Ensemble, id int) string {
	t.Helper()
	addr := e.Servers()[id-1].ClientAddr
	for i := 0; i < 200; i++ {
		if line := firstLine(fourLetter(t, e, id, "hash")); line != "" {
			return line
		}
		for range 8 {
			churnSession(t, addr)
		}
	}
	return ""
}

// pollHash waits (bounded) for server id's first hash line to equal want;
// followers apply commits slightly after the leader.
func pollHash(t testing.TB, e *zktest.Ensemble, id int, want string) string {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		got := firstLine(fourLetter(t, e, id, "hash"))
		if got == want {
			return got
		}
		select {
		case <-ctx.Done():
			return got
		case <-tick.C:
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// churnSession opens a ZooKeeper session and closes it: two transactions
// (createSession, closeSession). Jute frames, big-endian, length-prefixed:
// ConnectRequest{protocolVersion int32, lastZxidSeen int64, timeOut int32,
// sessionId int64, passwd buffer, readOnly bool}, then
// RequestHeader{xid int32, type int32 = -11 closeSession}.
func churnSession(t testing.TB, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var req []byte
	req = binary.BigEndian.AppendUint32(req, 0)     // protocolVersion
	req = binary.BigEndian.AppendUint64(req, 0)     // lastZxidSeen
	req = binary.BigEndian.AppendUint32(req, 10000) // timeOut ms
	req = binary.BigEndian.AppendUint64(req, 0)     // sessionId
	req = binary.BigEndian.AppendUint32(req, 16)    // passwd length
	req = append(req, make([]byte, 16)...)
	req = append(req, 0) // readOnly
	writeFrame(t, conn, req)
	readFrame(t, conn)
	var closeReq []byte
	closeReq = binary.BigEndian.AppendUint32(closeReq, 1)
	closeReq = binary.BigEndian.AppendUint32(closeReq, uint32(0xfffffff5)) // -11
	writeFrame(t, conn, closeReq)
	readFrame(t, conn)
}

func writeFrame(t testing.TB, w io.Writer, b []byte) {
	t.Helper()
	if _, err := w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b)))); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

func readFrame(t testing.TB, r io.Reader) {
	t.Helper()
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if _, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(n[:]))); err != nil {
		t.Fatalf("read frame: %v", err)
	}
}

package zktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zk2raft/zk2raft/internal/freeport"
)

// Errors returned by Ensemble methods.
var (
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("zktest: ensemble closed")
	// ErrNoServer is returned when an id names no server of the ensemble.
	ErrNoServer = errors.New("zktest: no such server")
	// ErrRunning is returned by StartServer when the server is already running.
	ErrRunning = errors.New("zktest: server already running")
	// ErrNoLeader is returned by Leader when no running server leads.
	ErrNoLeader = errors.New("zktest: no leader")
	// errPortInUse marks start failures caused by a port taken between
	// choosing it and the JVM binding it; Start retries those.
	errPortInUse = errors.New("zktest: port already in use")
)

const (
	mainClass    = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
	startRetries = 3                        // whole-ensemble attempts when a port was taken
	pollInterval = 50 * time.Millisecond    // between srvr probes while waiting
	probeTimeout = 2 * time.Second          // one srvr probe
	stopGrace    = 30 * time.Second         // SIGTERM → SIGKILL when ctx has no deadline
	reapLimit    = 30 * time.Second         // SIGKILL → reaped
	logTailBytes = 16 << 10                 // read from the end of a log for errors
	logTailLines = 40                       // lines of log quoted in errors
	logName      = "zookeeper.log"          // JVM stdout/stderr and log4j output
	markerPrefix = "===== zktest: starting" // written to the log before each launch
)

// Server describes one member of an ensemble. Ports stay fixed across
// restarts.
type Server struct {
	ID           int    // myid, 1-based
	ClientAddr   string // "127.0.0.1:port"
	ClientPort   int    // the port of ClientAddr
	QuorumPort   int    // follower → leader port
	ElectionPort int    // leader election port
	Dir          string // holds zoo.cfg, log4j.properties and LogFile
	DataDir      string // dataDir (snapshots, transaction logs, myid)
	LogFile      string // everything the JVM and ZooKeeper print
}

type server struct {
	Server
	args []string // java command line after the executable
	proc *process // nil before the first start
}

// Ensemble is a running ZooKeeper ensemble of real JVMs on loopback ports.
// Its methods are safe for concurrent use.
type Ensemble struct {
	opts    Options
	install Install
	dir     string
	ownDir  bool
	spawner *spawner

	mu      sync.Mutex
	servers []*server
	closed  bool

	closeOnce sync.Once
	closeErr  error
}

// ServerError is a failure of one server, with the end of its log.
type ServerError struct {
	ID      int
	LogFile string
	LogTail string // last lines of LogFile
	Err     error
}

func (e *ServerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "zktest: server %d: %v", e.ID, e.Err)
	if e.LogTail != "" {
		fmt.Fprintf(&b, "\n----- last lines of %s -----\n%s\n-----", e.LogFile, strings.TrimRight(e.LogTail, "\n"))
	}
	return b.String()
}

func (e *ServerError) Unwrap() error { return e.Err }

// Start launches an ensemble and waits until every server serves and, for
// three servers, a leader has been elected. It fails with ErrNotInstalled
// when Java or ZooKeeper is missing. If a chosen port was taken by someone
// else before the JVM bound it, the whole start is retried on new ports.
// When ctx has no deadline, Options.StartTimeout applies.
func Start(ctx context.Context, opts Options) (*Ensemble, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	var install Install
	if opts.Install != nil {
		install = *opts.Install
	} else {
		var err error
		if install, err = Find(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := withDefaultTimeout(ctx, opts.StartTimeout)
	defer cancel()

	e := &Ensemble{opts: opts, install: install, dir: opts.BaseDir}
	if e.dir != "" {
		// The JVM gets file: URLs and paths made from it, which must be absolute.
		abs, err := filepath.Abs(e.dir)
		if err != nil {
			return nil, fmt.Errorf("zktest: base dir %s: %w", e.dir, err)
		}
		e.dir = abs
	}
	if e.dir == "" {
		d, err := os.MkdirTemp("", "zktest-")
		if err != nil {
			return nil, fmt.Errorf("zktest: %w", err)
		}
		e.dir, e.ownDir = d, true
	} else if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return nil, fmt.Errorf("zktest: %w", err)
	}
	e.spawner = newSpawner()

	var err error
	for attempt := 1; attempt <= startRetries; attempt++ {
		if err = e.launchAll(ctx); err == nil {
			return e, nil
		}
		e.killAll()
		if !errors.Is(err, errPortInUse) || ctx.Err() != nil {
			break
		}
		if rmErr := e.removeServerDirs(); rmErr != nil {
			err = errors.Join(err, rmErr)
			break
		}
	}
	if cerr := e.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return nil, err
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// launchAll picks ports, writes every server's files, starts the JVMs and
// waits for the ensemble to serve.
func (e *Ensemble) launchAll(ctx context.Context) error {
	n := e.opts.Servers
	ports, err := freePorts(3 * n)
	if err != nil {
		return err
	}
	servers := make([]*server, n)
	for i := range servers {
		id := i + 1
		dir := filepath.Join(e.dir, "server-"+strconv.Itoa(id))
		servers[i] = &server{Server: Server{
			ID:           id,
			ClientAddr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[3*i])),
			ClientPort:   ports[3*i],
			QuorumPort:   ports[3*i+1],
			ElectionPort: ports[3*i+2],
			Dir:          dir,
			DataDir:      filepath.Join(dir, "data"),
			LogFile:      filepath.Join(dir, logName),
		}}
	}
	for _, s := range servers {
		if err := e.writeFiles(s, servers); err != nil {
			return err
		}
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	e.servers = servers
	for _, s := range servers {
		if err := e.launchLocked(s); err != nil {
			e.mu.Unlock()
			return err
		}
	}
	e.mu.Unlock()
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i + 1
	}
	return e.waitServing(ctx, ids)
}

// freePorts returns n distinct loopback ports that were free a moment ago
// (internal/freeport: outside the ephemeral range, so a stopped server's
// ports are still free when it restarts).
func freePorts(n int) ([]int, error) {
	ports, err := freeport.Ports(n)
	if err != nil {
		return nil, fmt.Errorf("zktest: %w", err)
	}
	return ports, nil
}

// writeFiles creates s.Dir (which must not exist yet), its data directory,
// myid, zoo.cfg and log4j.properties, and fills s.args.
func (e *Ensemble) writeFiles(s *server, all []*server) error {
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		return fmt.Errorf("zktest: server %d: %w", s.ID, err)
	}
	if err := os.Mkdir(s.DataDir, 0o755); err != nil {
		return fmt.Errorf("zktest: server %d: %w", s.ID, err)
	}
	if err := os.WriteFile(filepath.Join(s.DataDir, "myid"), []byte(strconv.Itoa(s.ID)+"\n"), 0o644); err != nil {
		return fmt.Errorf("zktest: server %d: %w", s.ID, err)
	}

	tickMs := int(e.opts.TickTime / time.Millisecond)
	ticks := func(d time.Duration) int { return max(2, int(d/e.opts.TickTime)) }
	cfg := map[string]string{
		"tickTime":                strconv.Itoa(tickMs),
		"initLimit":               strconv.Itoa(ticks(10 * time.Second)),
		"syncLimit":               strconv.Itoa(ticks(5 * time.Second)),
		"maxSessionTimeout":       strconv.Itoa(max(60000, 20*tickMs)),
		"dataDir":                 s.DataDir,
		"clientPort":              strconv.Itoa(s.ClientPort),
		"clientPortAddress":       "127.0.0.1",
		"maxClientCnxns":          "0",
		"admin.enableServer":      "false",
		"4lw.commands.whitelist":  "*",
		"forceSync":               "no",   // process kills keep the page cache; no fsync needed
		"preAllocSize":            "4096", // KiB per transaction log instead of 64 MiB
		"autopurge.purgeInterval": "0",
	}
	if len(all) > 1 {
		for _, p := range all {
			cfg["server."+strconv.Itoa(p.ID)] = fmt.Sprintf("127.0.0.1:%d:%d", p.QuorumPort, p.ElectionPort)
		}
	}
	for k, v := range e.opts.Config {
		cfg[k] = v
	}
	var b bytes.Buffer
	b.WriteString("# written by zktest\n")
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		fmt.Fprintf(&b, "%s=%s\n", k, cfg[k])
	}
	cfgPath := filepath.Join(s.Dir, "zoo.cfg")
	if err := os.WriteFile(cfgPath, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("zktest: server %d: %w", s.ID, err)
	}

	// log4j 1.2 (Debian's binding) appends to the same file the JVM's
	// stdout/stderr go to, so one file tells the whole story.
	log4j := "log4j.rootLogger=INFO, FILE\n" +
		"log4j.appender.FILE=org.apache.log4j.FileAppender\n" +
		"log4j.appender.FILE.File=" + strings.ReplaceAll(s.LogFile, `\`, `\\`) + "\n" +
		"log4j.appender.FILE.Append=true\n" +
		"log4j.appender.FILE.ImmediateFlush=true\n" +
		"log4j.appender.FILE.layout=org.apache.log4j.PatternLayout\n" +
		"log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1} - %m%n\n"
	log4jPath := filepath.Join(s.Dir, "log4j.properties")
	if err := os.WriteFile(log4jPath, []byte(log4j), 0o644); err != nil {
		return fmt.Errorf("zktest: server %d: %w", s.ID, err)
	}

	args := []string{
		"-Xmx" + strconv.Itoa(e.opts.MaxHeapMB) + "m",
		"-XX:+UseSerialGC",
		"-XX:TieredStopAtLevel=1",
		"-XX:-UsePerfData",
		"-Djava.net.preferIPv4Stack=true",
		"-Dlog4j.configuration=" + (&url.URL{Scheme: "file", Path: log4jPath}).String(),
		"-Dzookeeper.log.dir=" + s.Dir,
		"-Dzookeeper.jmx.log4j.disable=true",
		"-Dzookeeper.digest.enabled=true",
		"-Dzookeeper.admin.enableServer=false",
		// Re-election after a leader is killed backs off up to this long.
		"-Dzookeeper.fastleader.maxNotificationInterval=1000",
	}
	if e.opts.ExtendedTypes {
		args = append(args, "-Dzookeeper.extendedTypesEnabled=true")
	}
	if e.opts.JuteMaxBuffer > 0 {
		args = append(args, "-Djute.maxbuffer="+strconv.Itoa(e.opts.JuteMaxBuffer))
	}
	for _, k := range slices.Sorted(maps.Keys(e.opts.SystemProperties)) {
		args = append(args, "-D"+k+"="+e.opts.SystemProperties[k])
	}
	own := e.opts.ServerSystemProperties[s.ID]
	for _, k := range slices.Sorted(maps.Keys(own)) {
		args = append(args, "-D"+k+"="+own[k])
	}
	args = append(args, e.opts.JVMArgs...)
	args = append(args, "-cp", e.install.ClasspathString(), mainClass, cfgPath)
	s.args = args
	return nil
}

// launchLocked starts s's JVM. e.mu must be held.
func (e *Ensemble) launchLocked(s *server) error {
	logf, err := os.OpenFile(s.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("zktest: server %d: %w", s.ID, err)
	}
	defer logf.Close() // the child holds its own descriptor
	fmt.Fprintf(logf, "%s server %d at %s: %s %s\n", markerPrefix, s.ID, time.Now().Format(time.RFC3339Nano), e.install.Java, strings.Join(s.args, " "))

	cmd := exec.Command(e.install.Java, s.args...)
	cmd.Dir = s.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := e.spawner.start(cmd); err != nil {
		return fmt.Errorf("zktest: server %d: start %s: %w", s.ID, e.install.Java, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p
	return nil
}

// waitServing polls srvr until every server in ids (nil: every server whose
// JVM is running) serves and, unless ids is a strict subset of the ensemble,
// one of them leads. A listed server whose JVM exits fails the wait at once.
func (e *Ensemble) waitServing(ctx context.Context, ids []int) error {
	all := ids == nil
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for round := 0; ; round++ {
		type state struct {
			s    *server
			p    *process
			mode Mode
			err  error
		}
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return ErrClosed
		}
		needLeader := all || len(ids) >= len(e.servers)
		var states []*state
		for _, s := range e.servers {
			if !all && !slices.Contains(ids, s.ID) {
				continue
			}
			if all && (s.proc == nil || s.proc.exited()) {
				continue // waiting on the survivors of a deliberate kill
			}
			states = append(states, &state{s: s, p: s.proc})
		}
		e.mu.Unlock()

		ready, leader := true, false
		for _, st := range states {
			if st.p == nil {
				return &ServerError{ID: st.s.ID, Err: errors.New("not started")}
			}
			if st.p.exited() {
				return e.exitError(st.s, st.p)
			}
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			st.mode, st.err = e.probe(pctx, st.s)
			cancel()
			ready = ready && st.mode.Serving()
			leader = leader || st.mode == ModeLeader || st.mode == ModeStandalone
			// A port grabbed by someone else can leave a JVM alive but
			// unable to elect (quorum/election port); look for it now and
			// then rather than waiting for the deadline.
			if round%20 == 19 && !st.mode.Serving() {
				if tail := logTail(st.s.LogFile); bindFailure(tail) {
					return &ServerError{ID: st.s.ID, LogFile: st.s.LogFile, LogTail: tail, Err: errPortInUse}
				}
			}
		}
		if all && len(states) == 0 {
			return errors.New("zktest: no server is running")
		}
		if ready && (leader || !needLeader) {
			return nil
		}

		select {
		case <-tick.C:
		case <-ctx.Done():
			var errs []error
			for _, st := range states {
				if st.mode.Serving() {
					continue
				}
				why := st.mode.String()
				if st.err != nil {
					why = st.err.Error()
				}
				errs = append(errs, &ServerError{
					ID: st.s.ID, LogFile: st.s.LogFile, LogTail: logTail(st.s.LogFile),
					Err: fmt.Errorf("not serving (last probe: %s): %w", why, ctx.Err()),
				})
			}
			if len(errs) == 0 {
				errs = append(errs, fmt.Errorf("zktest: no leader elected: %w", ctx.Err()))
			}
			return errors.Join(errs...)
		}
	}
}

func (e *Ensemble) probe(ctx context.Context, s *server) (Mode, error) {
	out, err := fourLetterWord(ctx, s.ClientAddr, "srvr")
	if err != nil {
		return ModeUnknown, err
	}
	return parseMode(out)
}

// exitError describes a JVM that exited while it should have been serving.
func (e *Ensemble) exitError(s *server, p *process) error {
	tail := logTail(s.LogFile)
	err := fmt.Errorf("exited during start: %v", p.err)
	if bindFailure(tail) {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return &ServerError{ID: s.ID, LogFile: s.LogFile, LogTail: tail, Err: err}
}

func bindFailure(log string) bool {
	return strings.Contains(log, "Address already in use") || strings.Contains(log, "BindException")
}

// logTail returns the last lines of a log file, from the latest launch only.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(0, fi.Size()-logTailBytes)
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return ""
	}
	s := string(b)
	if off > 0 {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	if i := strings.LastIndex(s, markerPrefix); i >= 0 {
		s = s[i:]
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return strings.Join(lines, "\n")
}

// serverLocked returns the server with id. e.mu must be held.
func (e *Ensemble) serverLocked(id int) (*server, error) {
	if e.closed {
		return nil, ErrClosed
	}
	if id < 1 || id > len(e.servers) {
		return nil, fmt.Errorf("%w: %d (ensemble has %d)", ErrNoServer, id, len(e.servers))
	}
	return e.servers[id-1], nil
}

// process returns server id's latest JVM, nil if it was never started.
func (e *Ensemble) process(id int) (*process, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.serverLocked(id)
	if err != nil {
		return nil, err
	}
	return s.proc, nil
}

// Servers describes every member, running or not, in id order.
func (e *Ensemble) Servers() []Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Server, len(e.servers))
	for i, s := range e.servers {
		out[i] = s.Server
	}
	return out
}

// Hosts returns every member's client address ("127.0.0.1:port") in id order.
func (e *Ensemble) Hosts() []string {
	srv := e.Servers()
	out := make([]string, len(srv))
	for i, s := range srv {
		out[i] = s.ClientAddr
	}
	return out
}

// ConnectString returns Hosts joined with commas, as ZooKeeper clients take it.
func (e *Ensemble) ConnectString() string { return strings.Join(e.Hosts(), ",") }

// Dir returns the directory holding the servers' directories.
func (e *Ensemble) Dir() string { return e.dir }

// Install returns the Java runtime and classpath the servers run with.
func (e *Ensemble) Install() Install { return e.install }

// Running reports whether server id's JVM is alive.
func (e *Ensemble) Running(id int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.serverLocked(id)
	return err == nil && s.proc != nil && !s.proc.exited()
}

// FourLetterWord sends a four-letter word ("ruok", "srvr", "mntr", "hash",
// "cons", ...) to server id's client port and returns the whole answer.
func (e *Ensemble) FourLetterWord(ctx context.Context, id int, word string) (string, error) {
	e.mu.Lock()
	s, err := e.serverLocked(id)
	e.mu.Unlock()
	if err != nil {
		return "", err
	}
	return fourLetterWord(ctx, s.ClientAddr, word)
}

// Mode asks server id for its role. A server that answers without a quorum
// is ModeNotServing with a nil error; one that does not answer is ModeUnknown
// with the error.
func (e *Ensemble) Mode(ctx context.Context, id int) (Mode, error) {
	out, err := e.FourLetterWord(ctx, id, "srvr")
	if err != nil {
		return ModeUnknown, err
	}
	return parseMode(out)
}

// Leader returns the id of the running server that is leader (or standalone).
// It does not wait; see Wait.
func (e *Ensemble) Leader(ctx context.Context) (int, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return 0, ErrClosed
	}
	var ids []int
	for _, s := range e.servers {
		if s.proc != nil && !s.proc.exited() {
			ids = append(ids, s.ID)
		}
	}
	e.mu.Unlock()
	for _, id := range ids {
		if m, err := e.Mode(ctx, id); err == nil && (m == ModeLeader || m == ModeStandalone) {
			return id, nil
		}
	}
	return 0, ErrNoLeader
}

// Wait blocks until every running server serves and one of them leads, for
// example after killing the leader. When ctx has no deadline,
// Options.StartTimeout applies.
func (e *Ensemble) Wait(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, e.opts.StartTimeout)
	defer cancel()
	return e.waitServing(ctx, nil)
}

// Kill sends SIGKILL to server id (kill -9: no shutdown, no flush) and waits
// until it is gone. Killing a server that is not running does nothing.
func (e *Ensemble) Kill(id int) error {
	p, err := e.process(id)
	if err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	if err := p.kill(reapLimit); err != nil {
		return &ServerError{ID: id, Err: err}
	}
	return nil
}

// Stop sends SIGTERM to server id and waits for it to exit; when ctx ends
// first (or after 30s without a deadline) it is killed. Stopping a server that
// is not running does nothing.
func (e *Ensemble) Stop(ctx context.Context, id int) error {
	p, err := e.process(id)
	if err != nil {
		return err
	}
	if p == nil || p.exited() {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx, stopGrace)
	defer cancel()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	if err := p.kill(reapLimit); err != nil {
		return &ServerError{ID: id, Err: err}
	}
	return nil
}

// StartServer starts a stopped or killed server again with its old ports and
// data directory, and waits until it serves. When ctx has no deadline,
// Options.StartTimeout applies.
func (e *Ensemble) StartServer(ctx context.Context, id int) error {
	ctx, cancel := withDefaultTimeout(ctx, e.opts.StartTimeout)
	defer cancel()
	e.mu.Lock()
	s, err := e.serverLocked(id)
	if err == nil && s.proc != nil && !s.proc.exited() {
		err = fmt.Errorf("%w: %d", ErrRunning, id)
	}
	if err == nil {
		err = e.launchLocked(s)
	}
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return e.waitServing(ctx, []int{id})
}

// Restart stops server id gracefully (see Stop) and starts it again (see
// StartServer).
func (e *Ensemble) Restart(ctx context.Context, id int) error {
	if err := e.Stop(ctx, id); err != nil {
		return err
	}
	return e.StartServer(ctx, id)
}

// killAll kills every JVM and waits for them.
func (e *Ensemble) killAll() error {
	e.mu.Lock()
	procs := make(map[int]*process)
	for _, s := range e.servers {
		if s.proc != nil {
			procs[s.ID] = s.proc
		}
	}
	e.mu.Unlock()
	for _, p := range procs {
		p.signal(syscall.SIGKILL) // all at once, then wait
	}
	var errs []error
	for id, p := range procs {
		if err := p.kill(reapLimit); err != nil {
			errs = append(errs, &ServerError{ID: id, Err: err})
		}
	}
	return errors.Join(errs...)
}

func (e *Ensemble) removeServerDirs() error {
	e.mu.Lock()
	servers := e.servers
	e.servers = nil
	e.mu.Unlock()
	for _, s := range servers {
		if err := os.RemoveAll(s.Dir); err != nil {
			return fmt.Errorf("zktest: %w", err)
		}
	}
	return nil
}

// Close kills every server (SIGKILL), waits for the JVMs to be reaped and
// removes the directory Start created (a caller's BaseDir is left alone).
// It is idempotent.
func (e *Ensemble) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true // no launch after this point
		e.mu.Unlock()
		err := e.killAll()
		e.spawner.close()
		if e.ownDir {
			if rmErr := os.RemoveAll(e.dir); rmErr != nil {
				err = errors.Join(err, fmt.Errorf("zktest: %w", rmErr))
			}
		}
		e.closeErr = err
	})
	return e.closeErr
}

// Pids returns the process ids of the members' running JVMs, in id order,
// for tests that account their CPU time or set their CPU affinity.
func (e *Ensemble) Pids() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	for _, s := range e.servers {
		if s.proc != nil && !s.proc.exited() && s.proc.cmd.Process != nil {
			out = append(out, s.proc.cmd.Process.Pid)
		}
	}
	return out
}

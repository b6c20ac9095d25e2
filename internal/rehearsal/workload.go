package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Config configures a workload.
type Config struct {
	// Hosts is the clients' connect string (the proxy's address; listed
	// twice, a go-zookeeper client reconnects at once instead of after its
	// one-second wait at the end of the list).
	Hosts []string
	// Root is where the workload writes; it must not exist.
	Root string
	// Writers and Watchers are go-zookeeper sessions (defaults 4 and 2).
	Writers, Watchers int
	// WriteEvery paces each writer (default 5 ms): a steady load, not a
	// flood.
	WriteEvery time.Duration
	// KazooClients contend in kazoo's Election and Lock (default 3; 0 with
	// NoKazoo).
	KazooClients int
	NoKazoo      bool
	// Python runs the kazoo script (default /usr/bin/python3: Debian's
	// python3-kazoo).
	Python string
	// SessionTimeout of every session (default 20 s).
	SessionTimeout time.Duration
	Logger         *slog.Logger
}

func (c *Config) defaults() {
	if c.Writers <= 0 {
		c.Writers = 4
	}
	if c.Watchers <= 0 {
		c.Watchers = 2
	}
	if c.WriteEvery <= 0 {
		c.WriteEvery = 5 * time.Millisecond
	}
	if c.KazooClients <= 0 {
		c.KazooClients = 3
	}
	if c.Python == "" {
		c.Python = "/usr/bin/python3"
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 20 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Root = strings.TrimRight(c.Root, "/")
}

// session is one go-zookeeper session and what its events said.
type session struct {
	name    string
	conn    *zk.Conn
	id      int64
	expired atomic.Bool

	mu          sync.Mutex
	disconnects []time.Time
}

func (s *session) firstDisconnect() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.disconnects) == 0 {
		return time.Time{}
	}
	return s.disconnects[0]
}

// writeState is a writer's accounting: every write id it issued ends in
// exactly one of acked, applied (a connection loss, then found in the tree)
// — a write found not applied is written again under the same id.
type writeState struct {
	dir     string
	acked   map[int64]string // id -> the name the create returned
	applied map[int64]bool   // id -> found after a connection loss
	retried int              // writes found not applied after a loss, written again
}

// request is one request's time, first attempt to answer.
type request struct {
	start time.Time
	took  time.Duration
}

type watchRecord struct {
	set, fired time.Time
	typ        zk.EventType
}

type watcherState struct {
	records []watchRecord
	last    string // the last beacon value read
	// late is the watch set at the start on the watcher's own node, which
	// nothing changes before Stop: set on ZooKeeper, it fires for a change
	// made on the journal.
	late     watchRecord
	lateDone chan struct{}
}

// Workload is a running rehearsal workload.
type Workload struct {
	cfg    Config
	log    *slog.Logger
	start  time.Time
	stop   chan struct{}
	wg     sync.WaitGroup // writers and the beacon
	wwg    sync.WaitGroup // watchers
	stopMu sync.Mutex
	closed bool // stop is closed (under stopMu)

	sessions       []*session
	writerSessions []*session
	writers        []*writeState
	watchers       []*watcherState
	beacon         *session

	mu        sync.Mutex
	final     string // the beacon's last value, once Stop sets it
	requests  []request
	connLoss  int
	errs      []string
	beaconVal int64 // last acknowledged beacon value
	acks      atomic.Int64

	kazoo  *kazoo
	report *kazooReport
}

func (w *Workload) dial(name string) (*session, error) {
	s := &session{name: name}
	conn, events, err := zk.Connect(w.cfg.Hosts, w.cfg.SessionTimeout, zk.WithLogger(discard{}))
	if err != nil {
		return nil, fmt.Errorf("rehearsal: connect %s: %w", name, err)
	}
	s.conn = conn
	// Each session's own goroutine drains its events until the channel
	// closes (Close of the connection).
	go func() {
		for ev := range events {
			if ev.Type != zk.EventSession {
				continue
			}
			switch ev.State {
			case zk.StateDisconnected:
				s.mu.Lock()
				s.disconnects = append(s.disconnects, time.Now())
				s.mu.Unlock()
			case zk.StateExpired:
				s.expired.Store(true)
			}
		}
	}()
	// The first request waits for the session.
	for attempt := 0; ; attempt++ {
		_, _, err := conn.Exists("/")
		if err == nil {
			break
		}
		if !isConnLoss(err) || attempt == 20 {
			conn.Close()
			return nil, fmt.Errorf("rehearsal: %s: no session: %w", name, err)
		}
	}
	// On an ensemble the session's server may lag the setup session's:
	// sync, so that it sees the tree made before it connected.
	if name != "setup" {
		for attempt := 0; ; attempt++ {
			_, err := conn.Sync("/")
			if err == nil {
				break
			}
			if !isConnLoss(err) || attempt == 20 {
				conn.Close()
				return nil, fmt.Errorf("rehearsal: %s: sync: %w", name, err)
			}
		}
	}
	s.id = conn.SessionID()
	w.sessions = append(w.sessions, s)
	return s, nil
}

// Start sets the tree up and starts every client. The kazoo clients are
// contending when it returns.
func Start(ctx context.Context, cfg Config) (*Workload, error) {
	cfg.defaults()
	if len(cfg.Hosts) == 0 || cfg.Root == "" || !strings.HasPrefix(cfg.Root, "/") {
		return nil, errors.New("rehearsal: hosts and an absolute root are required")
	}
	w := &Workload{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), start: time.Now()}
	ok := false
	defer func() {
		if !ok {
			w.Close() // stops the writers and watchers already started, too
		}
	}()
	setup, err := w.dial("setup")
	if err != nil {
		return nil, err
	}
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{cfg.Root, cfg.Root + "/eph", cfg.Root + "/beacon", cfg.Root + "/kz", cfg.Root + "/late"} {
		if _, err := setup.conn.Create(p, []byte("0"), 0, acl); err != nil {
			return nil, fmt.Errorf("rehearsal: create %s: %w", p, err)
		}
	}
	for i := range cfg.Writers {
		ws := &writeState{dir: fmt.Sprintf("%s/w%d", cfg.Root, i), acked: map[int64]string{}, applied: map[int64]bool{}}
		if _, err := setup.conn.Create(ws.dir, nil, 0, acl); err != nil {
			return nil, fmt.Errorf("rehearsal: create %s: %w", ws.dir, err)
		}
		w.writers = append(w.writers, ws)
	}
	for i := range cfg.Watchers {
		if _, err := setup.conn.Create(w.latePath(i), []byte("0"), 0, acl); err != nil {
			return nil, fmt.Errorf("rehearsal: create %s: %w", w.latePath(i), err)
		}
	}
	for i, ws := range w.writers {
		s, err := w.dial(fmt.Sprintf("writer-%d", i))
		if err != nil {
			return nil, err
		}
		w.writerSessions = append(w.writerSessions, s)
		if _, err := s.conn.Create(w.ephPath(i), []byte(s.name), zk.FlagEphemeral, acl); err != nil {
			return nil, fmt.Errorf("rehearsal: ephemeral of %s: %w", s.name, err)
		}
		w.wg.Go(func() { w.write(s, ws) })
	}
	if w.beacon, err = w.dial("beacon"); err != nil {
		return nil, err
	}
	for i := range cfg.Watchers {
		s, err := w.dial(fmt.Sprintf("watcher-%d", i))
		if err != nil {
			return nil, err
		}
		st := &watcherState{lateDone: make(chan struct{})}
		w.watchers = append(w.watchers, st)
		late := w.latePath(i)
		_, _, ch, err := s.conn.GetW(late)
		if err != nil {
			return nil, fmt.Errorf("rehearsal: watch %s: %w", late, err)
		}
		set := time.Now()
		go func() {
			defer close(st.lateDone)
			ev := <-ch
			w.mu.Lock()
			st.late = watchRecord{set: set, fired: time.Now(), typ: ev.Type}
			w.mu.Unlock()
		}()
		w.wwg.Go(func() { w.watch(s, st) })
	}
	w.wg.Go(w.beat)
	if !cfg.NoKazoo {
		if w.kazoo, err = startKazoo(ctx, cfg); err != nil {
			return nil, err
		}
	}
	ok = true
	return w, nil
}

func (w *Workload) latePath(i int) string { return fmt.Sprintf("%s/late/w%d", w.cfg.Root, i) }

func (w *Workload) ephPath(i int) string { return fmt.Sprintf("%s/eph/g%d", w.cfg.Root, i) }

func (w *Workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// isConnLoss says whether err is the one error a ZooKeeper client retries:
// the connection was lost with the request in flight (CONNECTIONLOSS), or
// the request was never sent (go-zookeeper's ErrNoServer).
func isConnLoss(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer)
}

func (w *Workload) note(err error, what string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if isConnLoss(err) {
		w.connLoss++
		return
	}
	w.errs = append(w.errs, what+": "+err.Error())
}

func (w *Workload) sample(t0 time.Time) {
	w.mu.Lock()
	w.requests = append(w.requests, request{start: t0, took: time.Since(t0)})
	w.mu.Unlock()
}

// write is a writer's loop: one sequential create at a time, each write
// accounted for.
func (w *Workload) write(s *session, ws *writeState) {
	tick := time.NewTicker(w.cfg.WriteEvery)
	defer tick.Stop()
	acl := zk.WorldACL(zk.PermAll)
	for id := int64(1); ; id++ {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		prefix := fmt.Sprintf("k%08d-", id)
		t0 := time.Now()
		for {
			name, err := s.conn.Create(ws.dir+"/"+prefix, []byte(s.name), zk.FlagSequence, acl)
			if err == nil {
				ws.acked[id] = name
				w.acks.Add(1)
				break
			}
			w.note(err, s.name+" create "+prefix)
			if !isConnLoss(err) {
				break
			}
			// Was it applied? The id in the name says.
			found, err := w.find(s, ws.dir, prefix)
			if err != nil {
				w.note(err, s.name+" children "+ws.dir)
				break
			}
			if found {
				ws.applied[id] = true
				break
			}
			ws.retried++
		}
		w.sample(t0)
	}
}

// find syncs and lists dir until it answers, and reports whether a child
// starts with prefix. The sync first: the reply of the create in doubt was
// lost, so the client never saw its zxid, and a server it reconnected to
// may not have applied it yet (ZooKeeper promises no more either).
func (w *Workload) find(s *session, dir, prefix string) (bool, error) {
	for {
		if _, err := s.conn.Sync(dir); err != nil {
			if !isConnLoss(err) {
				return false, err
			}
			w.note(err, s.name+" sync "+dir)
			continue
		}
		kids, _, err := s.conn.Children(dir)
		if err == nil {
			for _, k := range kids {
				if strings.HasPrefix(k, prefix) {
					return true, nil
				}
			}
			return false, nil
		}
		if !isConnLoss(err) {
			return false, err
		}
		w.note(err, s.name+" children "+dir)
	}
}

// beat sets the beacon until the workload stops.
func (w *Workload) beat() {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for v := int64(1); ; v++ {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		if err := w.setBeacon(v); err != nil {
			w.note(err, "beacon set")
		}
	}
}

// setBeacon sets the beacon to v, retrying a connection loss (setData of a
// value is idempotent).
func (w *Workload) setBeacon(v int64) error {
	t0 := time.Now()
	defer w.sample(t0)
	for {
		_, err := w.beacon.conn.Set(w.cfg.Root+"/beacon", []byte(strconv.FormatInt(v, 10)), -1)
		if err == nil {
			w.mu.Lock()
			w.beaconVal = v
			w.mu.Unlock()
			return nil
		}
		if !isConnLoss(err) {
			return err
		}
		w.note(err, "beacon set")
	}
}

// watch keeps a data watch on the beacon until the workload has stopped and
// the watcher has read the final value.
func (w *Workload) watch(s *session, st *watcherState) {
	path := w.cfg.Root + "/beacon"
	for {
		data, _, ch, err := s.conn.GetW(path)
		if err != nil {
			w.note(err, s.name+" getw")
			if !isConnLoss(err) {
				return
			}
			continue
		}
		set := time.Now()
		w.mu.Lock()
		st.last = string(data)
		final := w.final != "" && st.last == w.final
		w.mu.Unlock()
		if final {
			return
		}
		select {
		case ev := <-ch:
			w.mu.Lock()
			st.records = append(st.records, watchRecord{set: set, fired: time.Now(), typ: ev.Type})
			w.mu.Unlock()
			if ev.Type == zk.EventNotWatching {
				w.note(fmt.Errorf("watch lost: %v", ev.Err), s.name)
			}
		case <-time.After(2 * time.Minute):
			w.note(errors.New("no event in 2 minutes"), s.name+" watch")
			return
		}
	}
}

// Acked is the number of writes acknowledged so far.
func (w *Workload) Acked() int64 { return w.acks.Load() }

// Progress says what the workload has done since a moment: writes
// acknowledged after it, kazoo lock and election acquisitions after it (as
// far as the script has reported them), watches fired after it.
type Progress struct {
	Writes, LockAcquired, Elected, WatchesFired int
}

// ProgressSince counts the workload's progress after since.
func (w *Workload) ProgressSince(since time.Time) Progress {
	var p Progress
	w.mu.Lock()
	for _, r := range w.requests {
		if r.start.After(since) {
			p.Writes++
		}
	}
	for _, st := range w.watchers {
		for _, r := range st.records {
			if r.fired.After(since) {
				p.WatchesFired++
			}
		}
	}
	w.mu.Unlock()
	if w.kazoo != nil {
		p.LockAcquired, p.Elected = w.kazoo.acquisitionsSince(since)
	}
	return p
}

// Stop stops the writers and the kazoo contenders, makes a last beacon
// change that every watcher must see, and gets kazoo's report. The sessions
// stay open for Verify; Close ends them.
func (w *Workload) Stop(ctx context.Context) error {
	w.stopMu.Lock()
	defer w.stopMu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	close(w.stop)
	var errs []error
	// Writers and the beacon end within one request each; then the last
	// beacon value, which the watchers end on once they read it.
	if err := waitGroup(ctx, &w.wg); err != nil {
		return fmt.Errorf("rehearsal: writers still running: %w", err)
	}
	w.mu.Lock()
	final := w.beaconVal + 1000000
	w.final = strconv.FormatInt(final, 10)
	w.mu.Unlock()
	if err := w.setBeacon(final); err != nil {
		errs = append(errs, fmt.Errorf("rehearsal: final beacon value: %w", err))
	}
	if err := waitGroup(ctx, &w.wwg); err != nil {
		errs = append(errs, fmt.Errorf("rehearsal: a watcher did not see the final beacon value: %w", err))
	}
	// The watches set at the start fire now.
	for i, st := range w.watchers {
		for {
			_, err := w.beacon.conn.Set(w.latePath(i), []byte("changed"), -1)
			if err == nil {
				break
			}
			if !isConnLoss(err) {
				errs = append(errs, fmt.Errorf("rehearsal: change %s: %w", w.latePath(i), err))
				break
			}
		}
		select {
		case <-st.lateDone:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("rehearsal: the watch on %s did not fire: %w", w.latePath(i), ctx.Err()))
		}
	}
	if w.kazoo != nil {
		rep, err := w.kazoo.stop(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		w.report = rep
	}
	return errors.Join(errs...)
}

// Close ends every session and the kazoo process; it is idempotent.
func (w *Workload) Close() {
	w.stopMu.Lock()
	if !w.closed {
		close(w.stop)
		w.closed = true
	}
	w.stopMu.Unlock()
	w.closeAll()
}

func (w *Workload) closeAll() {
	if w.kazoo != nil {
		w.kazoo.close()
	}
	for _, s := range w.sessions {
		s.conn.Close()
	}
	w.sessions = nil
}

func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type discard struct{}

func (discard) Printf(string, ...any) {}

// Package zkload runs a concurrent write workload against a live ZooKeeper
// ensemble for tests and benchmarks: every kind of txn a server logs, from
// several sessions at once, until stopped. It is a client (go-zookeeper),
// like internal/treegen, and never part of the migration path.
//
// Each worker owns a session and a subtree Root/w<N> and cycles through:
// creates, setData and deletes of a rolling set of nodes; multis that
// create, update and delete in one txn; a multi that fails (an error txn);
// ephemerals; containers that get a child and lose it again, so that
// ZooKeeper's container manager deletes them (deleteContainer txns, when the
// servers run it often: znode.container.checkIntervalMs); TTL nodes with a
// short TTL, which the same manager expires (extended types); and, every so
// often, closing its session (deleting its ephemerals) and opening a new one.
package zkload

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Options configure a workload.
type Options struct {
	// Root is where the workload writes; it is created if missing.
	Root string
	// Workers is the number of sessions writing at once (0: 4).
	Workers int
	// Rate caps the writes per second over all workers (0: as fast as the
	// ensemble answers).
	Rate float64
	// TTL adds TTL nodes (the ensemble must run with extended types).
	TTL bool
	// SessionTimeout of the workers' sessions (0: 10 s).
	SessionTimeout time.Duration
}

// Stats count what a workload did. Writes counts requests ZooKeeper answered
// (a multi is one).
type Stats struct {
	Writes, Multis, Ephemerals, Containers, TTLNodes, SessionsClosed int64
	// Failed counts requests answered with an error the workload did not
	// expect (it expects the failing multi's).
	Failed int64
	// Lost counts requests whose connection was lost before the answer (the
	// write may or may not have been applied). The worker goes on, on the
	// same session if it survived or on a new one; after a loss, a version
	// or existence conflict on its own nodes is expected, not a failure.
	Lost int64
	// Elapsed is how long the workload ran.
	Elapsed time.Duration
}

// Load is a running workload.
type Load struct {
	opts    Options
	hosts   []string
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	start   time.Time
	limiter <-chan time.Time
	ticker  *time.Ticker

	writes, multis, ephemerals, containers, ttls, closes, failed, lost atomic.Int64

	mu  sync.Mutex
	err error
}

type silent struct{}

func (silent) Printf(string, ...any) {}

func dial(hosts []string, timeout time.Duration) (*zk.Conn, error) {
	c, ev, err := zk.Connect(hosts, timeout, zk.WithLogger(silent{}))
	if err != nil {
		return nil, err
	}
	deadline := time.After(30 * time.Second)
	for c.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-deadline:
			c.Close()
			return nil, fmt.Errorf("zkload: no session with %v", hosts)
		}
	}
	return c, nil
}

// Start begins the workload; Stop ends it.
func Start(hosts []string, opts Options) (*Load, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	if opts.Root == "" || opts.Root == "/" {
		return nil, errors.New("zkload: Root must be a path below /")
	}
	c, err := dial(hosts, opts.SessionTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	for _, p := range []string{opts.Root, opts.Root + "/c", opts.Root + "/ttl", opts.Root + "/m"} {
		if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return nil, fmt.Errorf("zkload: create %s: %w", p, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{opts: opts, hosts: hosts, cancel: cancel, start: time.Now()}
	if opts.Rate > 0 {
		l.ticker = time.NewTicker(time.Duration(float64(time.Second) / opts.Rate))
		l.limiter = l.ticker.C
	}
	for i := range opts.Workers {
		l.wg.Add(1)
		go l.worker(ctx, i)
	}
	return l, nil
}

// Stop ends the workload, closes its sessions and returns what it did, with
// the first error that stopped a worker (a lost connection, for one).
func (l *Load) Stop() (Stats, error) {
	l.cancel()
	l.wg.Wait()
	if l.ticker != nil {
		l.ticker.Stop()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Stats(), l.err
}

// Stats returns the counts so far.
func (l *Load) Stats() Stats {
	return Stats{
		Writes: l.writes.Load(), Multis: l.multis.Load(), Ephemerals: l.ephemerals.Load(),
		Containers: l.containers.Load(), TTLNodes: l.ttls.Load(), SessionsClosed: l.closes.Load(),
		Failed: l.failed.Load(), Lost: l.lost.Load(), Elapsed: time.Since(l.start),
	}
}

func (l *Load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

// wait paces one write; false when the workload is stopping.
func (l *Load) wait(ctx context.Context) bool {
	if l.limiter == nil {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-l.limiter:
		return true
	}
}

func (l *Load) worker(ctx context.Context, id int) {
	defer l.wg.Done()
	c, err := dial(l.hosts, l.opts.SessionTimeout)
	if err != nil {
		l.fail(err)
		return
	}
	defer func() { c.Close() }()
	world := zk.WorldACL(zk.PermAll)
	dir := l.opts.Root + "/w" + strconv.Itoa(id)
	if _, err := c.Create(dir, nil, 0, world); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		l.fail(fmt.Errorf("zkload: create %s: %w", dir, err))
		return
	}
	// uncertain is set once a request's outcome was lost: the worker's own
	// nodes may then be ahead of what it believes.
	uncertain := false
	// write counts an answered write; false stops the worker. A lost
	// connection is survived: go-zookeeper resumes the session, or a new one
	// is opened when it expired.
	write := func(_ any, err error) bool {
		l.writes.Add(1)
		switch {
		case err == nil:
			return true
		case ctx.Err() != nil:
			return false
		case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrSessionExpired), errors.Is(err, zk.ErrNoServer):
			l.lost.Add(1)
			uncertain = true
			if errors.Is(err, zk.ErrSessionExpired) || c.State() == zk.StateExpired {
				c.Close()
				if c, err = dial(l.hosts, l.opts.SessionTimeout); err != nil {
					l.fail(err)
					return false
				}
			}
			return true
		case uncertain && (errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNotEmpty)):
			return true
		}
		l.failed.Add(1)
		l.fail(err)
		return false
	}
	node := func(k int) string { return dir + "/n" + strconv.Itoa(k%64) }
	// Tags are unique across workloads on the same Root: a container or TTL
	// node of an earlier one may not be gone yet.
	run := l.start.UnixNano() % 1_000_000_000
	for k := 0; l.wait(ctx); k++ {
		tag := fmt.Sprintf("w%d-%d-%d", id, run, k)
		switch {
		case k%10 == 1:
			m := l.opts.Root + "/m/" + tag
			if !write(c.Multi(
				&zk.CreateRequest{Path: m, Data: []byte("m"), Acl: world},
				&zk.SetDataRequest{Path: m, Data: []byte("mm"), Version: 0},
				&zk.DeleteRequest{Path: m, Version: -1},
			)) {
				return
			}
			l.multis.Add(1)
		case k%50 == 2:
			// A multi that fails: ZooKeeper logs it with error sub-txns.
			_, err := c.Multi(&zk.CheckVersionRequest{Path: dir, Version: 1 << 30})
			l.writes.Add(1)
			if err == nil {
				l.fail(errors.New("zkload: a failing multi succeeded"))
				return
			}
		case k%25 == 3:
			if !write(c.Create(dir+"/e-", []byte(tag), zk.FlagEphemeralSequential, world)) {
				return
			}
			l.ephemerals.Add(1)
		case k%40 == 4:
			p := l.opts.Root + "/c/" + tag
			if !write(c.CreateContainer(p, nil, zk.FlagContainer, world)) ||
				!write(c.Create(p+"/child", []byte("x"), 0, world)) {
				return
			}
			if !write(nil, c.Delete(p+"/child", -1)) { // emptied: the container manager removes it
				return
			}
			l.containers.Add(1)
		case k%40 == 24 && l.opts.TTL:
			if !write(c.CreateTTL(l.opts.Root+"/ttl/"+tag, []byte("t"), zk.FlagTTL, world, 100*time.Millisecond)) {
				return
			}
			l.ttls.Add(1)
		case k%200 == 199:
			c.Close() // closeSession: ZooKeeper deletes the ephemerals
			l.closes.Add(1)
			if c, err = dial(l.hosts, l.opts.SessionTimeout); err != nil {
				if ctx.Err() == nil {
					l.fail(err)
				}
				return
			}
		default:
			p := node(k)
			ok, st, err := c.Exists(p)
			if err != nil {
				l.writes.Add(-1) // a read, counted by write only for its error handling
				if !write(nil, err) {
					return
				}
				continue
			}
			switch {
			case !ok:
				if !write(c.Create(p, []byte(tag), 0, world)) {
					return
				}
			case k%3 == 0:
				if !write(nil, c.Delete(p, st.Version)) {
					return
				}
			default:
				if !write(c.Set(p, []byte(tag), st.Version)) {
					return
				}
			}
		}
	}
}

package dualwrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// The tail is the other shadow route: instead of sitting between the clients
// and ZooKeeper, it reads one ZooKeeper server's transaction log (every
// server's log holds every committed txn) as it grows, and mirrors each txn
// into the journal as a raftjournal.SourceTxn, exactly as the tap does — the
// same ops, the same idempotent merge — with the stats taken from the tree
// it replays (exporter/datadir's Follower), checked txn by txn against the
// digest ZooKeeper wrote into the log. It sees what the tap cannot: writes
// from clients that bypass the proxies, session expiries, and ZooKeeper's own
// deletes of empty containers and expired TTL nodes.
//
// Delivery: txns are sent in log order, as SourceBatch entries of up to
// TailConfig.Batch txns, one entry in flight, so the journal logs ZooKeeper's
// digests at the same zxids. A txn that changes nothing in the tree (a failed
// write, a session's creation) has no SourceTxn and is skipped. After each
// batch, and at most every CheckpointEvery, the tail records its progress in
// the journal under TailCheckpointKey (an ImportBatch with no nodes and a
// checkpoint, so it commits through Raft like everything else): the last
// zxid up to which every txn is applied in the journal, ZooKeeper's digest
// there, and its lag. A restarted tail (after kill -9 too) resumes from that
// zxid; the txns between it and what had really been applied are sent again,
// which the merge makes harmless. The checkpoint is also what the cutover
// gates read to accept the tail as the shadow route.

// TailCheckpointKey is the journal checkpoint a tail records its progress
// under (TailConfig.Name, when set, is appended after a slash).
const TailCheckpointKey = "zk2raft/tail"

// TailJournal is the journal a tail writes to: importer.RemoteJournal and
// importer.NodeJournal satisfy it.
type TailJournal interface {
	Journal
	// Checkpoint returns the value stored under key, as of a linearizable
	// read.
	Checkpoint(ctx context.Context, key string) (value []byte, ok bool, err error)
}

// TailConfig configures a Tail.
type TailConfig struct {
	// DataDir and LogDir are the ZooKeeper server's dataDir and dataLogDir
	// (LogDir empty: the same).
	DataDir, LogDir string
	// Journal receives the mirrored txns and the progress checkpoints.
	Journal TailJournal
	// Name tells several tails of one journal apart (empty: the only one).
	Name string
	// From is where to start when the journal holds no checkpoint of this
	// tail: the zxid of the last txn the journal already reflects (the zxid
	// a data-dir export was taken at, or a walk's start zxid). FromSet says
	// it was given.
	From    int64
	FromSet bool
	// SourceZxid, when From is not given and there is no checkpoint, reports
	// the largest ZooKeeper zxid the journal holds (its max source zxid): 0
	// lets the tail start at the end of the log, anything else is refused
	// (the journal already holds a copy, and the tail cannot tell where it
	// ends).
	SourceZxid func(ctx context.Context) (int64, error)
	// ServerZxid, when set, reports the tailed server's last applied zxid
	// (`srvr`): the tail then mirrors only txns the server has applied,
	// never a proposal logged but not yet committed, and reports its lag
	// against it.
	ServerZxid func(ctx context.Context) (int64, error)
	// Batch bounds the txns of one SourceBatch (0: 1000); MaxBatchBytes its
	// size (0: 4 MiB).
	Batch         int
	MaxBatchBytes int
	// CheckpointEvery is how often progress is recorded in the journal
	// while it moves (0: 1 s).
	CheckpointEvery time.Duration
	// Poll is how often the log's end is looked at again (0: datadir's).
	Poll time.Duration
	// Logger, Registerer as everywhere; nil discards / does not register.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// TailProgress is a tail's checkpoint: JSON, under TailCheckpointKey.
type TailProgress struct {
	// Zxid is the last txn up to which every txn of the log is applied in
	// the journal; Digest is ZooKeeper's tree digest there (verified against
	// the log's TxnDigests by the replay).
	Zxid   int64        `json:"zxid"`
	Digest znode.Digest `json:"digest"`
	// ReadZxid is the last txn read from the log when the checkpoint was
	// written, and LagSeconds the age (by ZooKeeper's txn times) of the
	// oldest txn read and not yet applied then.
	ReadZxid   int64   `json:"read_zxid"`
	LagSeconds float64 `json:"lag_seconds"`
	// ServerZxid is the tailed server's last applied zxid, when known.
	ServerZxid int64     `json:"server_zxid,omitempty"`
	DataDir    string    `json:"datadir"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ReadTailProgress returns the progress a tail recorded in the journal (ok
// false when there is none).
func ReadTailProgress(ctx context.Context, j TailJournal, name string) (TailProgress, bool, error) {
	var p TailProgress
	v, ok, err := j.Checkpoint(ctx, tailKey(name))
	if err != nil || !ok {
		return p, false, err
	}
	if err := json.Unmarshal(v, &p); err != nil {
		return p, false, fmt.Errorf("dualwrite: tail checkpoint %s: %w", tailKey(name), err)
	}
	return p, true, nil
}

func tailKey(name string) string {
	if name == "" {
		return TailCheckpointKey
	}
	return TailCheckpointKey + "/" + name
}

// ErrNoTailStart is returned when the tail cannot tell where to start: the
// journal holds ZooKeeper's state but no checkpoint of this tail.
var ErrNoTailStart = errors.New("dualwrite: no tail checkpoint in a journal that already holds ZooKeeper's data")

// Tail mirrors a ZooKeeper server's transaction log into the journal.
type Tail struct {
	cfg TailConfig
	log *slog.Logger
	m   *tailMetrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	err    error

	startZxid atomic.Int64
	readZxid  atomic.Int64
	applied   atomic.Int64 // every txn up to it is in the journal
	appliedDg atomic.Uint64
	server    atomic.Int64
	txns      atomic.Int64
	ops       atomic.Int64
	batches   atomic.Int64

	mu          sync.Mutex
	pending     []pendingTxn // read, not yet applied (oldest first)
	lastErr     string
	lastCkpt    time.Time
	ckptZxid    int64
	position    datadir.Position
	startedFrom string
	closeOnce   sync.Once
}

type pendingTxn struct {
	zxid int64
	time int64 // ZooKeeper's, ms
}

// tailItem is one txn on its way to the journal.
type tailItem struct {
	zxid   int64
	time   int64
	digest znode.Digest
	entry  []byte // an encoded SourceTxn; nil when the txn mirrors nothing
}

// StartTail loads the server's tree up to the starting point (the journal's
// checkpoint of this tail, cfg.From, or the end of the log) and starts
// mirroring. Close stops it; Done is closed when it stops by itself, Err
// says why.
func StartTail(ctx context.Context, cfg TailConfig) (*Tail, error) {
	if cfg.Journal == nil || cfg.DataDir == "" {
		return nil, errors.New("dualwrite: a tail needs a data directory and a journal")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = maxBatchEntry
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tail{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	t.m = newTailMetrics(t)
	if cfg.Registerer != nil {
		if err := t.m.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	started := false
	defer func() {
		if !started && cfg.Registerer != nil {
			t.m.unregister(cfg.Registerer)
		}
	}()
	from, how, err := t.startPoint(ctx)
	if err != nil {
		return nil, err
	}
	fopts := datadir.FollowOptions{Options: datadir.Options{DataDir: cfg.DataDir, LogDir: cfg.LogDir, Logger: cfg.Logger}, From: from, Poll: cfg.Poll}
	f, err := datadir.Follow(ctx, fopts)
	for waited := false; errors.Is(err, datadir.ErrZxidNotReached) || errors.Is(err, datadir.ErrNoLogs); waited = true {
		// The journal has more than this server logged (a lagging follower),
		// or the server has logged nothing yet: wait for it.
		if !waited {
			t.log.Warn("the server's log does not reach the tail's starting point yet; waiting", "from", fmt.Sprintf("%#x", from), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		f, err = datadir.Follow(ctx, fopts)
	}
	if err != nil {
		return nil, fmt.Errorf("dualwrite: tail start at %s: %w", how, err)
	}
	st := f.State()
	t.startZxid.Store(st.Zxid)
	t.readZxid.Store(st.Zxid)
	t.applied.Store(st.Zxid)
	t.ckptZxid = -1
	t.appliedDg.Store(uint64(st.Tree.Digest()))
	t.startedFrom = how
	t.log.Info("tail started", "datadir", cfg.DataDir, "from", fmt.Sprintf("%#x", st.Zxid), "how", how,
		"snapshot", st.Snapshot.File.Path, "proof", st.Check.Record)
	started = true
	t.ctx, t.cancel = context.WithCancel(context.Background())
	items := make(chan tailItem, 4*cfg.Batch)
	readErr := make(chan error, 1)
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		err := t.read(t.ctx, f, items)
		f.Close()
		close(items)
		readErr <- err
	}()
	go func() {
		defer t.wg.Done()
		err := t.deliver(t.ctx, items)
		if err != nil {
			t.cancel() // the reader stops too
		}
		for range items {
		}
		t.finish(errors.Join(err, <-readErr))
	}()
	return t, nil
}

// startPoint decides where mirroring starts, and says why.
func (t *Tail) startPoint(ctx context.Context) (int64, string, error) {
	p, ok, err := ReadTailProgress(ctx, t.cfg.Journal, t.cfg.Name)
	if err != nil {
		return 0, "", fmt.Errorf("dualwrite: read the tail checkpoint: %w", err)
	}
	switch {
	case ok:
		return p.Zxid, fmt.Sprintf("the journal's checkpoint %s (zxid %#x)", tailKey(t.cfg.Name), p.Zxid), nil
	case t.cfg.FromSet:
		return t.cfg.From, fmt.Sprintf("--from-zxid %#x", t.cfg.From), nil
	case t.cfg.SourceZxid != nil:
		z, err := t.cfg.SourceZxid(ctx)
		if err != nil {
			return 0, "", fmt.Errorf("dualwrite: ask the journal what it holds: %w", err)
		}
		if z != 0 {
			return 0, "", fmt.Errorf("%w (its largest ZooKeeper zxid is %#x): give the zxid the copy was taken at (--from-zxid)", ErrNoTailStart, z)
		}
		return 0, "the end of the log (the journal holds nothing of ZooKeeper's yet)", nil
	}
	return 0, "", fmt.Errorf("%w: give the zxid the copy was taken at", ErrNoTailStart)
}

// read follows the log and hands each txn, encoded, to deliver.
func (t *Tail) read(ctx context.Context, f *datadir.Follower, items chan<- tailItem) error {
	committed := int64(-1)
	for {
		tx, res, err := f.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dualwrite: tail: %w", err)
		}
		if t.cfg.ServerZxid != nil && tx.Zxid > committed {
			// Only what the server has applied: a logged proposal may still
			// be dropped by a new leader, which truncates this log. A zxid
			// the server reports after tx was read may then be of the new
			// epoch and pass the dropped one's: such a report counts only
			// with the log still whole.
			for {
				if committed, err = t.cfg.ServerZxid(ctx); err != nil {
					t.log.Warn("cannot read the server's zxid", "err", err)
					committed = -1
				}
				t.server.Store(committed)
				if tx.Zxid <= committed {
					if err := f.CheckTruncated(); err != nil {
						return fmt.Errorf("dualwrite: tail: %w", err)
					}
					break
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(f.Poll()):
				}
			}
		}
		it := tailItem{zxid: tx.Zxid, time: tx.Time, digest: f.Tree().Digest()}
		if stx := sourceTxn(tx, res); stx != nil {
			it.entry = raftjournal.Encode(stx)
			t.ops.Add(int64(len(stx.Ops)))
			t.m.mirrored.WithLabelValues(mirrorKind(tx)).Inc()
		} else {
			t.m.skipped.Inc()
		}
		t.mu.Lock()
		t.pending = append(t.pending, pendingTxn{zxid: tx.Zxid, time: tx.Time})
		t.position = f.Position()
		t.mu.Unlock()
		t.readZxid.Store(tx.Zxid)
		t.txns.Add(1)
		select {
		case items <- it:
		case <-ctx.Done():
			return nil
		}
	}
}

func mirrorKind(tx *datadir.Txn) string {
	if tx.Type == datadir.TxnMulti {
		return "multi"
	}
	return tx.Type.String()
}

// sourceTxn is the mirror of a txn: the ops it applied, with the stats the
// replayed tree has after each; nil when it changed nothing mirrorable.
func sourceTxn(tx *datadir.Txn, res datadir.Result) *raftjournal.SourceTxn {
	if tx.Failed() || tx.Type == datadir.TxnReconfig {
		// A failed write changed nothing; a reconfig rewrites the server's
		// own /zookeeper/config, which the journal keeps its own of.
		return nil
	}
	stx := &raftjournal.SourceTxn{Zxid: tx.Zxid, Multi: tx.Type == datadir.TxnMulti}
	for _, c := range res.Changes {
		switch c.Kind {
		case datadir.ChangeCreate:
			stx.Ops = append(stx.Ops, raftjournal.SourceOp{Kind: raftjournal.SourceCreate, Path: c.Path, Data: c.Node.Data, ACL: c.Node.ACL,
				Stat: c.Node.Stat, ParentCversion: c.ParentCversion, ParentPzxid: c.ParentPzxid})
		case datadir.ChangeDelete:
			stx.Ops = append(stx.Ops, raftjournal.SourceOp{Kind: raftjournal.SourceDelete, Path: c.Path})
		case datadir.ChangeSetData:
			stx.Ops = append(stx.Ops, raftjournal.SourceOp{Kind: raftjournal.SourceSetData, Path: c.Path, Data: c.Node.Data, Stat: c.Node.Stat})
		case datadir.ChangeSetACL:
			stx.Ops = append(stx.Ops, raftjournal.SourceOp{Kind: raftjournal.SourceSetACL, Path: c.Path, ACL: c.Node.ACL, Stat: c.Node.Stat})
		case datadir.ChangeCloseSession:
			if len(c.Deleted) > 0 {
				stx.Ops = append(stx.Ops, raftjournal.SourceOp{Kind: raftjournal.SourceCloseSession, Session: c.Session, Paths: c.Deleted})
			}
		}
	}
	if len(stx.Ops) == 0 {
		return nil
	}
	if len(stx.Ops) > 1 && !stx.Multi {
		// A closeSession with its ephemerals is one op; nothing else has
		// more than one outside a multi.
		stx.Multi = true
	}
	return stx
}

// deliver sends the items in order, a batch at a time, and records progress.
func (t *Tail) deliver(ctx context.Context, items <-chan tailItem) error {
	var batch []tailItem
	for {
		batch = batch[:0]
		it, ok, idle := t.next(items)
		if idle {
			// Nothing new for a while and progress not yet recorded: an
			// idle tail records what it has, so its checkpoint does not
			// stay behind the last batch (the cutover gates read it).
			if err := t.checkpoint(ctx, true); err != nil && ctx.Err() == nil {
				t.log.Warn("cannot record the tail's progress in the journal; will try again", "err", err)
			}
			continue
		}
		if !ok {
			// The reader stopped (Close, or its error): record where the
			// journal is, if it answers.
			if err := t.checkpoint(context.Background(), true); err != nil {
				t.log.Warn("cannot record the tail's final progress", "err", err)
			}
			return nil
		}
		batch = append(batch, it)
		size := len(it.entry)
	gather:
		for len(batch) < t.cfg.Batch && size < t.cfg.MaxBatchBytes {
			select {
			case it, ok := <-items:
				if !ok {
					break gather
				}
				batch = append(batch, it)
				size += len(it.entry)
			default:
				break gather
			}
		}
		if err := t.send(ctx, batch); err != nil {
			if ctx.Err() != nil {
				if err := t.checkpoint(context.Background(), true); err != nil {
					t.log.Warn("cannot record the tail's final progress", "err", err)
				}
				return nil
			}
			return err
		}
		if err := t.checkpoint(ctx, false); err != nil && ctx.Err() == nil {
			t.log.Warn("cannot record the tail's progress in the journal; will try again", "err", err)
		}
	}
}

// next waits for the next item. While progress is left unrecorded (the
// last checkpoint was rate-limited), it waits at most until a checkpoint is
// due and then reports idle.
func (t *Tail) next(items <-chan tailItem) (it tailItem, ok, idle bool) {
	t.mu.Lock()
	owed := t.applied.Load() != t.ckptZxid
	wait := t.cfg.CheckpointEvery - time.Since(t.lastCkpt)
	t.mu.Unlock()
	if !owed {
		it, ok = <-items
		return it, ok, false
	}
	timer := time.NewTimer(max(wait, time.Millisecond))
	defer timer.Stop()
	select {
	case it, ok = <-items:
		return it, ok, false
	case <-timer.C:
		return tailItem{}, false, true
	}
}

// send applies one batch, retrying what may pass (no leader, a broken
// connection) until ctx ends; a refusal by the journal ends the tail.
func (t *Tail) send(ctx context.Context, batch []tailItem) error {
	var entries [][]byte
	for _, it := range batch {
		if it.entry != nil {
			entries = append(entries, it.entry)
		}
	}
	last := batch[len(batch)-1]
	if len(entries) > 0 {
		entry, err := raftjournal.EncodeSourceBatch(entries)
		if err != nil {
			return fmt.Errorf("dualwrite: tail: %w", err)
		}
		backoff := 50 * time.Millisecond
		for {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			res, err := t.cfg.Journal.Submit(sctx, entry)
			cancel()
			if err == nil && res.Err != nil {
				t.m.errors.WithLabelValues("refused").Inc()
				return fmt.Errorf("dualwrite: tail: the journal refused the txns %#x..%#x: %w", batch[0].zxid, last.zxid, res.Err)
			}
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t.m.errors.WithLabelValues("submit").Inc()
			t.setErr(err)
			t.log.Warn("journal unavailable; retrying", "txns", fmt.Sprintf("%#x..%#x", batch[0].zxid, last.zxid), "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		t.batches.Add(1)
		t.m.batches.Inc()
	}
	now := time.Now()
	for _, it := range batch {
		t.m.delay.Observe(max(now.Sub(time.UnixMilli(it.time)), 0).Seconds())
	}
	t.applied.Store(last.zxid)
	t.appliedDg.Store(uint64(last.digest))
	t.mu.Lock()
	n := 0
	for n < len(t.pending) && t.pending[n].zxid <= last.zxid {
		n++
	}
	t.pending = t.pending[n:]
	t.mu.Unlock()
	return nil
}

// checkpoint records the progress in the journal if it moved and it is time
// (or force).
func (t *Tail) checkpoint(ctx context.Context, force bool) error {
	z := t.applied.Load()
	t.mu.Lock()
	due := z != t.ckptZxid && (force || time.Since(t.lastCkpt) >= t.cfg.CheckpointEvery)
	t.mu.Unlock()
	if !due {
		return nil
	}
	p := t.Progress()
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	entry := raftjournal.Encode(&raftjournal.ImportBatch{Checkpoint: &raftjournal.Checkpoint{Key: tailKey(t.cfg.Name), Value: v}})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := t.cfg.Journal.Submit(cctx, entry)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.m.errors.WithLabelValues("checkpoint").Inc()
		t.mu.Lock()
		t.lastCkpt = time.Now() // the next try waits CheckpointEvery too
		t.mu.Unlock()
		return fmt.Errorf("dualwrite: tail checkpoint: %w", err)
	}
	t.mu.Lock()
	t.ckptZxid, t.lastCkpt = z, time.Now()
	t.mu.Unlock()
	t.m.checkpoints.Inc()
	return nil
}

func (t *Tail) setErr(err error) {
	t.mu.Lock()
	t.lastErr = err.Error()
	t.mu.Unlock()
}

func (t *Tail) finish(err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		t.log.Error("tail stopped", "err", err)
		t.setErr(err)
		t.err = err
	}
	close(t.done)
}

// Done is closed when the tail has stopped (Close, or an error: see Err).
func (t *Tail) Done() <-chan struct{} { return t.done }

// Err is why the tail stopped by itself (nil before it stops or after Close).
func (t *Tail) Err() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

// Close stops the tail, records its progress in the journal (if the journal
// answers) and waits. It is idempotent.
func (t *Tail) Close() error {
	t.closeOnce.Do(func() {
		t.cancel()
		t.wg.Wait()
		if t.cfg.Registerer != nil {
			t.m.unregister(t.cfg.Registerer)
		}
	})
	return t.err
}

// lag is the age, by ZooKeeper's txn times, of the oldest txn read and not
// yet applied in the journal.
func (t *Tail) lag() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) == 0 {
		return 0
	}
	return max(time.Since(time.UnixMilli(t.pending[0].time)), 0)
}

// Progress is what the tail records as its checkpoint.
func (t *Tail) Progress() TailProgress {
	return TailProgress{
		Zxid: t.applied.Load(), Digest: znode.Digest(t.appliedDg.Load()),
		ReadZxid: t.readZxid.Load(), LagSeconds: t.lag().Seconds(), ServerZxid: max(t.server.Load(), 0),
		DataDir: t.cfg.DataDir, UpdatedAt: time.Now().UTC(),
	}
}

// TailStatus is the tail's state for /status.
type TailStatus struct {
	DataDir        string  `json:"datadir"`
	StartedFrom    string  `json:"started_from"`
	StartZxid      string  `json:"start_zxid"`
	ReadZxid       string  `json:"read_zxid"`
	MirroredZxid   string  `json:"mirrored_zxid"`
	MirroredDigest string  `json:"mirrored_digest"`
	ServerZxid     string  `json:"server_zxid,omitempty"`
	LagSeconds     float64 `json:"lag_seconds"`
	LagTxns        int     `json:"lag_txns"`
	Txns           int64   `json:"txns"`
	Ops            int64   `json:"ops"`
	Batches        int64   `json:"batches"`
	Position       string  `json:"position"`
	Checkpoint     string  `json:"checkpoint_key"`
	CheckpointZxid string  `json:"checkpoint_zxid,omitempty"`
	LastError      string  `json:"last_error,omitempty"`
	Stopped        bool    `json:"stopped"`
}

// Status returns the tail's state.
func (t *Tail) Status() TailStatus {
	hex := func(z int64) string { return fmt.Sprintf("%#x", z) }
	t.mu.Lock()
	s := TailStatus{
		DataDir: t.cfg.DataDir, StartedFrom: t.startedFrom, LagTxns: len(t.pending),
		Position: t.position.String(), Checkpoint: tailKey(t.cfg.Name), LastError: t.lastErr,
	}
	if t.ckptZxid > 0 {
		s.CheckpointZxid = hex(t.ckptZxid)
	}
	t.mu.Unlock()
	s.StartZxid, s.ReadZxid, s.MirroredZxid = hex(t.startZxid.Load()), hex(t.readZxid.Load()), hex(t.applied.Load())
	s.MirroredDigest = znode.Digest(t.appliedDg.Load()).String()
	if z := t.server.Load(); z > 0 {
		s.ServerZxid = hex(z)
	}
	s.LagSeconds = t.lag().Seconds()
	s.Txns, s.Ops, s.Batches = t.txns.Load(), t.ops.Load(), t.batches.Load()
	select {
	case <-t.done:
		s.Stopped = true
	default:
	}
	return s
}

// Mirrored returns the last zxid up to which every txn is applied in the
// journal.
func (t *Tail) Mirrored() int64 { return t.applied.Load() }

// WaitMirrored waits until every txn up to zxid is applied in the journal.
func (t *Tail) WaitMirrored(ctx context.Context, zxid int64) error {
	for t.applied.Load() < zxid {
		select {
		case <-ctx.Done():
			return fmt.Errorf("dualwrite: tail at %#x, waiting for %#x: %w", t.applied.Load(), zxid, ctx.Err())
		case <-t.done:
			if t.err != nil {
				return t.err
			}
			return fmt.Errorf("dualwrite: tail stopped at %#x, before %#x", t.applied.Load(), zxid)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

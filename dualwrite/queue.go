package dualwrite

// The queue (Queue, OpenQueue):
//
// The proxy appends one record for every write ZooKeeper committed, and the
// delivery loop peeks batches from the head, submits them to the journal and
// acks them. A record is on disk (fsync'd) before Append returns and leaves
// only through Ack, so a mirrored write survives a proxy crash, kill -9 and
// power loss included; what Append has not returned for may or may not be there.
//
// Storage is one bbolt file. The queue is short in normal operation (the
// delivery loop keeps up) and holds at most MaxBytes (1 GiB by default) while
// the journal is away. bbolt's transactions commit appends, acks and the state
// that counts them together, so a crash never leaves half a record that would
// have to be told apart from a damaged one; a segment log (raft-wal, chosen for
// the Raft log in raftjournal/store.go) writes less per commit but has to
// guess at a torn tail, and would need records shaped as raft.Log with
// contiguous indexes reset through its own stable store. bbolt's costs —
// copy-on-write pages, two fsyncs a commit, a file that never shrinks — are
// paid against a small working set, and the last one is undone by shrinking
// (below). The freelist is not written at each commit (NoFreelistSync; bbolt
// rebuilds it at open) and is a hash map, so a long queue does not make
// commits dearer.
//
// On disk, under QueueConfig.Dir:
//
//	queue.db               bbolt, flock'd by the process that has it open
//	  bucket "meta"
//	    "state"            the next seq and the seq acked through
//	    "lost"             present while mirrored writes are known lost
//	  bucket "records"
//	    seq → record       seq as 8 bytes big-endian; records seq acked+1 … next-1
//	queue.db.tmp-*         a queue file being created or shrunk; removed at open
//
// A new queue.db is built under a temporary name and linked into place, so a
// queue.db exists only once it holds a state: an empty or headless one is
// damage, not a new queue.
//
// Values, integers big-endian, each with a CRC-32C (Castagnoli):
//
//	record   0         1                   9             13        17
//	        +---------+-------------------+-------------+---------+------------+
//	        | version | appended, unix ns | data length | CRC     | data ...   |
//	        +---------+-------------------+-------------+---------+------------+
//	         1 byte    int64               uint32        uint32
//	         the CRC covers bytes 0–12, the data, then the seq (8 bytes), so a
//	         record moved under another key fails it
//
//	state    version | next uint64 | acked uint64 | CRC of bytes 0–16     21 bytes
//	lost     version | first zxid int64 | last zxid int64 | count int64 |
//	         since unix ns int64 | CRC of bytes 0–32                      37 bytes
//
// Seqs start at 1 and are never reused: next only grows, an Ack moves acked up
// to at most next-1, and the state keeps both after everything is acked. The
// records held are exactly acked+1 … next-1.
//
// Group commit: Append, Ack, MarkLost and ClearLost hand their operation to
// the queue's one committer goroutine and wait. The committer takes everything
// that arrived while it was committing (up to queueGroupBytes of records, at
// least one operation), applies it in arrival order in one bbolt transaction
// and commits once, so N appenders arriving together cost one commit. The
// bounds are checked per Append against the state including the operations
// before it in the group; a refused Append (ErrQueueFull) adds nothing and does
// not affect the others. Records are encoded and checksummed by the caller's
// goroutine; the committer only finishes the CRC with the seq.
//
// Damage: OpenQueue reads every key and record header (not the data): the
// state and lost values must decode, the records must be exactly acked+1 …
// next-1, each header must be well formed and its length match the value. Peek
// checks the CRC of every record it returns. Any of these failing, a file that
// bbolt does not recognise, and a bbolt panic or memory fault on a damaged page
// are ErrQueueCorrupt naming the file and what is wrong — never a shorter
// queue. A panic while writing makes the queue fail every later write.
//
// Shrinking: bbolt reuses freed pages but never returns them. After an ack,
// if the file's used size is above ShrinkAboveBytes and the payload still held
// is at most an eighth of it and at most queueShrinkMaxLive, the committer
// copies the live content into a new file (bbolt.Compact) with the same
// guarantees, fsyncs it, renames it over queue.db (both files stay locked
// throughout) and fsyncs the dir before the next commit. A crash leaves either
// file, and both hold the same queue.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	// ErrQueueFull is returned (wrapped, with the queue's counts) by Append when
	// its records would take the queue past MaxRecords or MaxBytes. Nothing of
	// that Append was appended.
	ErrQueueFull = errors.New("dualwrite: queue full")
	// ErrQueueClosed is returned by a Queue's methods after Close.
	ErrQueueClosed = errors.New("dualwrite: queue closed")
	// ErrQueueLocked is returned (wrapped, naming the dir) by OpenQueue when
	// another process, or another Queue in this one, has the dir open.
	ErrQueueLocked = errors.New("dualwrite: queue dir is in use")
	// ErrQueueCorrupt is returned (wrapped, naming the file and what is wrong)
	// when the queue's on-disk state cannot be trusted.
	ErrQueueCorrupt = errors.New("dualwrite: queue file is damaged")
	// ErrInvalidQueueConfig is returned (wrapped) by QueueConfig.Validate and
	// OpenQueue for a configuration that cannot be used.
	ErrInvalidQueueConfig = errors.New("dualwrite: invalid queue configuration")
)

const (
	queueFileName   = "queue.db"
	queueTempPrefix = queueFileName + ".tmp-"

	// queueGroupBytes caps the record bytes of one group commit, so that a
	// burst of large records is committed in steps rather than held in one
	// transaction's memory.
	queueGroupBytes = 64 << 20
	// queueShrinkMaxLive caps the payload copied by a shrink, which stalls
	// appends while it runs.
	queueShrinkMaxLive = 16 << 20
	// queueShrinkRetry is how long a failed shrink waits before the next try.
	queueShrinkRetry = 10 * time.Minute

	queueValueVersion     = 1
	queueRecordHeaderLen  = 17
	queueStateLen         = 21
	queueLostLen          = 37
	queueMaxRecordDataLen = bbolt.MaxValueSize - queueRecordHeaderLen
)

var (
	queueMetaBucket    = []byte("meta")
	queueRecordsBucket = []byte("records")
	queueStateKey      = []byte("state")
	queueLostKey       = []byte("lost")
	queueCRCTable      = crc32.MakeTable(crc32.Castagnoli)
)

// QueueConfig configures a Queue. Zero MaxBytes, MaxRecords and
// ShrinkAboveBytes take DefaultQueueConfig's values.
type QueueConfig struct {
	// Dir holds the queue's file; it is created if missing. One process at a
	// time: OpenQueue takes an exclusive lock on the file.
	Dir string
	// MaxBytes bounds the payload bytes held (record data, not headers); 1 GiB
	// by default.
	MaxBytes int64
	// MaxRecords bounds the records held; 1<<20 by default.
	MaxRecords int
	// ShrinkAboveBytes is the file size above which the file is rewritten
	// once the queue has drained (see "Shrinking" in queue.go); 64 MiB by
	// default, negative for never.
	ShrinkAboveBytes int64
	// NoSync skips fsync: for tests and benchmarks only, since a machine crash
	// may then lose appended records or damage the file.
	NoSync bool
	// Logger receives the queue's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultQueueConfig returns the defaults for a queue in dir.
func DefaultQueueConfig(dir string) QueueConfig {
	return QueueConfig{
		Dir:              dir,
		MaxBytes:         1 << 30,
		MaxRecords:       1 << 20,
		ShrinkAboveBytes: 64 << 20,
	}
}

// Validate reports the first problem with c, wrapping ErrInvalidQueueConfig.
// Zero bounds are valid: OpenQueue replaces them with the defaults.
func (c QueueConfig) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: Dir is empty", ErrInvalidQueueConfig)
	case c.MaxBytes < 0:
		return fmt.Errorf("%w: MaxBytes is %d", ErrInvalidQueueConfig, c.MaxBytes)
	case c.MaxRecords < 0:
		return fmt.Errorf("%w: MaxRecords is %d", ErrInvalidQueueConfig, c.MaxRecords)
	}
	return nil
}

func (c QueueConfig) withDefaults() QueueConfig {
	d := DefaultQueueConfig(c.Dir)
	if c.MaxBytes == 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = d.MaxRecords
	}
	if c.ShrinkAboveBytes == 0 {
		c.ShrinkAboveBytes = d.ShrinkAboveBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Record is one queued record.
type Record struct {
	Seq  uint64
	Data []byte
}

// LostInfo says which mirrored writes were dropped since the last repair.
type LostInfo struct {
	FirstZxid int64     `json:"first_zxid"` // the lowest source zxid dropped
	LastZxid  int64     `json:"last_zxid"`  // the highest source zxid dropped
	Count     int64     `json:"count"`      // how many writes were dropped
	Since     time.Time `json:"since"`      // when the first was dropped
}

// QueueStats is a snapshot of a queue's counters.
type QueueStats struct {
	Records int   // records held
	Bytes   int64 // payload bytes held
	// HeadSeq is the oldest record's seq (TailSeq+1 when the queue is empty);
	// TailSeq is the last seq handed out (0 before the first Append ever).
	HeadSeq, TailSeq uint64
	// Appended and Acked count records appended and removed since OpenQueue.
	Appended, Acked uint64
	// OldestAppended is when the oldest record held was appended; zero when
	// the queue is empty.
	OldestAppended time.Time
	// FileBytes is the used size of the queue file.
	FileBytes int64
}

// Queue is the durable, bounded FIFO of records the proxy has still to
// deliver to the journal. Its methods are safe for concurrent use.
type Queue struct {
	cfg    QueueConfig
	dir    string
	path   string
	logger *slog.Logger
	ready  chan struct{}

	// life guards db and dbClosed against Close and shrinking: Peek holds it
	// shared; the committer reads db freely, since only it replaces db.
	life     sync.RWMutex
	db       *bbolt.DB
	dbClosed bool

	mu      sync.Mutex // guards closed and pending
	closed  bool
	pending []*queueOp
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}

	statsMu sync.Mutex // guards st, the committed state, and the counters
	st      queueState
	added   uint64
	removed uint64

	closeOnce sync.Once
	closeErr  error

	// Owned by the committer.
	failed      error     // set after a panic while writing; fails every later write
	shrinkAfter time.Time // no shrink before, after one failed
	shrinks     uint64    // names the shrink's temporary file
}

// queueState is the committed state of the queue, kept in memory.
type queueState struct {
	next, acked uint64
	bytes       int64
	oldest      time.Time
	lost        *LostInfo
	fileBytes   int64
}

func (s *queueState) records() int { return int(s.next - 1 - s.acked) }

type queueOpKind uint8

const (
	queueOpAppend queueOpKind = iota
	queueOpAck
	queueOpMarkLost
	queueOpClearLost
)

// queueOp is one call waiting for the committer; the committer fills in the
// results and closes done.
type queueOp struct {
	kind queueOpKind
	ctx  context.Context // appends only; an Append whose ctx ended is skipped
	at   time.Time       // append time
	vals [][]byte        // encoded records, CRC still to be finished with the seq
	size int64           // their payload bytes
	seq  uint64          // ack
	zxid int64           // mark lost

	first, last uint64
	err         error
	done        chan struct{}
}

// OpenQueue opens the queue in cfg.Dir, creating it if there is none.
func OpenQueue(cfg QueueConfig) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("dualwrite: create queue dir: %w", err)
	}
	q := &Queue{
		cfg:    cfg,
		dir:    cfg.Dir,
		path:   filepath.Join(cfg.Dir, queueFileName),
		logger: cfg.Logger,
		ready:  make(chan struct{}, 1),
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	db, err := q.openFile()
	if err != nil {
		return nil, err
	}
	q.db = db
	st, err := q.load()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	q.st = st
	// Leftovers of a creation or shrink that crashed; this process holds the
	// lock now, so nobody else is using them.
	if stale, _ := filepath.Glob(filepath.Join(q.dir, queueTempPrefix+"*")); len(stale) > 0 {
		for _, p := range stale {
			if err := os.Remove(p); err != nil {
				q.logger.Warn("cannot remove stale queue file", "path", p, "error", err)
			}
		}
	}
	q.logger.Info("opened queue", "path", q.path, "records", st.records(), "bytes", st.bytes,
		"head-seq", st.acked+1, "tail-seq", st.next-1)
	if st.lost != nil {
		q.logger.Warn("queue records mirrored writes lost; a repair is owed",
			"first-zxid", st.lost.FirstZxid, "last-zxid", st.lost.LastZxid, "count", st.lost.Count, "since", st.lost.Since)
	}
	go q.run()
	return q, nil
}

func (q *Queue) boltOptions() *bbolt.Options {
	return &bbolt.Options{
		// Any non-zero timeout makes bbolt try the lock once without
		// blocking; zero would wait forever.
		Timeout:        time.Nanosecond,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
		NoSync:         q.cfg.NoSync,
		NoGrowSync:     q.cfg.NoSync,
	}
}

// openFile opens (creating if needed) and locks queue.db.
func (q *Queue) openFile() (*bbolt.DB, error) {
	fi, err := os.Stat(q.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := q.create(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("dualwrite: queue file: %w", err)
	case !fi.Mode().IsRegular():
		return nil, q.corrupt("is not a regular file (%s)", fi.Mode().Type())
	case fi.Size() == 0:
		// bbolt would initialise it as a new database, silently empty.
		return nil, q.corrupt("is empty (0 bytes)")
	}
	db, err := q.openBolt(q.path)
	if err != nil {
		return nil, err
	}
	return db, nil
}

// openBolt opens and locks path with bbolt, turning its errors, and its
// panics on a damaged file, into the queue's. After a panic the file stays
// open, and locked, until the process exits: bbolt did not return it.
func (q *Queue) openBolt(path string) (db *bbolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %s: bbolt: %v", ErrQueueCorrupt, path, r)
		}
	}()
	db, err = bbolt.Open(path, 0o644, q.boltOptions())
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s (%s is locked by another process or queue)", ErrQueueLocked, q.dir, path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("%w: %s: not a bbolt database (%v)", ErrQueueCorrupt, path, err)
	default:
		return nil, fmt.Errorf("dualwrite: open queue file %s: %w", path, err)
	}
}

// create builds an empty queue file under a temporary name and links it into
// place, so that queue.db never exists without a state. A racing creator that
// links first wins; this one's file is discarded.
func (q *Queue) create() error {
	f, err := os.CreateTemp(q.dir, queueTempPrefix+"*")
	if err != nil {
		return fmt.Errorf("dualwrite: create queue file: %w", err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	db, err := q.openBolt(tmp)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(queueMetaBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(queueRecordsBucket); err != nil {
			return err
		}
		return meta.Put(queueStateKey, encodeQueueState(1, 0))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dualwrite: create queue file %s: %w", tmp, err)
	}
	if err := os.Link(tmp, q.path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("dualwrite: create queue file: %w", err)
	}
	return q.syncDir()
}

func (q *Queue) syncDir() error {
	if runtime.GOOS == "windows" || q.cfg.NoSync {
		return nil
	}
	d, err := os.Open(q.dir)
	if err != nil {
		return fmt.Errorf("dualwrite: sync queue dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("dualwrite: sync queue dir %s: %w", q.dir, err)
	}
	return nil
}

func (q *Queue) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrQueueCorrupt, q.path, fmt.Sprintf(format, args...))
}

// load reads and checks the state, the lost info and every record's header.
func (q *Queue) load() (queueState, error) {
	var st queueState
	err := q.view(func(tx *bbolt.Tx) error {
		meta, recs := tx.Bucket(queueMetaBucket), tx.Bucket(queueRecordsBucket)
		if meta == nil || recs == nil {
			return q.corrupt("has no %q or %q bucket: not a queue file", queueMetaBucket, queueRecordsBucket)
		}
		sv := meta.Get(queueStateKey)
		if sv == nil {
			return q.corrupt("has no state value")
		}
		var err error
		if st.next, st.acked, err = decodeQueueState(sv); err != nil {
			return q.corrupt("state value: %v", err)
		}
		if lv := meta.Get(queueLostKey); lv != nil {
			lost, err := decodeQueueLost(lv)
			if err != nil {
				return q.corrupt("lost value: %v", err)
			}
			st.lost = &lost
		}
		want := st.acked + 1
		c := recs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return q.corrupt("record key %x is not a seq", k)
			}
			seq := binary.BigEndian.Uint64(k)
			switch {
			case v == nil:
				return q.corrupt("record %d is a bucket", seq)
			case seq >= st.next:
				return q.corrupt("record %d is past the tail %d", seq, st.next-1)
			case seq < want:
				return q.corrupt("record %d is still present, but the queue is acked through %d", seq, st.acked)
			case seq > want:
				return q.corrupt("records %d to %d are missing", want, seq-1)
			}
			h, err := decodeQueueRecordHeader(v)
			if err != nil {
				return q.corrupt("record %d: %v", seq, err)
			}
			if seq == st.acked+1 {
				st.oldest = time.Unix(0, h.at)
			}
			st.bytes += int64(h.dataLen)
			want++
		}
		if want != st.next {
			return q.corrupt("records %d to %d are missing", want, st.next-1)
		}
		st.fileBytes = tx.Size()
		return nil
	})
	return st, err
}

// view runs fn in a read transaction, turning a bbolt panic (a damaged page)
// into ErrQueueCorrupt.
func (q *Queue) view(fn func(*bbolt.Tx) error) (err error) {
	// A damaged page can point outside the mapping.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = q.corrupt("bbolt: %v", r)
		}
	}()
	return q.db.View(fn)
}

// Append durably appends recs in order and returns the seqs of the first and
// last; Appends that arrive while a commit runs share the next one. If the
// records would take the queue past MaxRecords or MaxBytes, nothing is
// appended and the error wraps ErrQueueFull.
//
// If ctx ends first, Append returns ctx.Err() and the records may or may not
// have been appended: they are skipped if the commit that would carry them had
// not started, and are in the queue otherwise. A caller that must know treats
// the write as lost (MarkLost); a duplicate in the journal is harmless, since
// applying a mirrored write twice is. An Append with no records does nothing.
// The queue keeps no reference to recs.
func (q *Queue) Append(ctx context.Context, recs ...[]byte) (first, last uint64, err error) {
	if len(recs) == 0 {
		return 0, 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	o := &queueOp{kind: queueOpAppend, ctx: ctx, at: time.Now(), vals: make([][]byte, len(recs)), done: make(chan struct{})}
	for i, r := range recs {
		if len(r) > queueMaxRecordDataLen {
			return 0, 0, fmt.Errorf("dualwrite: record %d of the append is %d bytes, more than a queue record holds (%d)", i, len(r), queueMaxRecordDataLen)
		}
		o.vals[i] = encodeQueueRecordUnsealed(o.at.UnixNano(), r)
		o.size += int64(len(r))
	}
	if err := q.submit(o); err != nil {
		return 0, 0, err
	}
	select {
	case <-o.done:
		return o.first, o.last, o.err
	case <-ctx.Done():
		select {
		case <-o.done:
			return o.first, o.last, o.err
		default:
			return 0, 0, ctx.Err()
		}
	}
}

// Peek returns up to max records from the head, oldest first, without
// removing them: at most maxBytes of payload, but at least one record if
// there is any. A max or maxBytes ≤ 0 is no limit. The records' Data are the
// caller's. A record that fails its checksum is an error wrapping
// ErrQueueCorrupt, naming the file and its seq.
func (q *Queue) Peek(max int, maxBytes int) ([]Record, error) {
	q.life.RLock()
	defer q.life.RUnlock()
	if q.dbClosed {
		return nil, ErrQueueClosed
	}
	var out []Record
	err := q.view(func(tx *bbolt.Tx) error {
		recs := tx.Bucket(queueRecordsBucket)
		c := recs.Cursor()
		total := 0
		var prev uint64
		for k, v := c.First(); k != nil && (max <= 0 || len(out) < max); k, v = c.Next() {
			if len(k) != 8 {
				return q.corrupt("record key %x is not a seq", k)
			}
			seq := binary.BigEndian.Uint64(k)
			if prev != 0 && seq != prev+1 {
				return q.corrupt("records %d to %d are missing", prev+1, seq-1)
			}
			prev = seq
			data, _, err := decodeQueueRecord(seq, v)
			if err != nil {
				return q.corrupt("record %d: %v", seq, err)
			}
			if maxBytes > 0 && len(out) > 0 && total+len(data) > maxBytes {
				break
			}
			total += len(data)
			out = append(out, Record{Seq: seq, Data: append([]byte(nil), data...)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Ready returns a channel that receives (a non-blocking send, capacity 1)
// after every commit that appended records.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Ack durably removes every record with Seq ≤ seq. Acking below the head does
// nothing; acking past the tail is an error, since those seqs were never
// handed out.
func (q *Queue) Ack(seq uint64) error {
	return q.do(&queueOp{kind: queueOpAck, seq: seq})
}

// MarkLost durably records that the mirrored write of source zxid was
// dropped (the queue was full), so that after a restart the proxy still
// knows the journal diverged and a repair pass is owed. It widens the
// recorded zxid range and counts the write.
func (q *Queue) MarkLost(zxid int64) error {
	return q.do(&queueOp{kind: queueOpMarkLost, zxid: zxid})
}

// Lost reports the writes recorded by MarkLost since the last ClearLost.
func (q *Queue) Lost() (LostInfo, bool) {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	if q.st.lost == nil {
		return LostInfo{}, false
	}
	return *q.st.lost, true
}

// ClearLost durably forgets the lost writes, once a repair pass has made the
// journal whole again. Writes marked lost while the repair ran are forgotten
// too, so the repair must start after the last MarkLost it is meant to cover.
func (q *Queue) ClearLost() error {
	return q.do(&queueOp{kind: queueOpClearLost})
}

// Stats returns the queue's counters.
func (q *Queue) Stats() QueueStats {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	return QueueStats{
		Records:        q.st.records(),
		Bytes:          q.st.bytes,
		HeadSeq:        q.st.acked + 1,
		TailSeq:        q.st.next - 1,
		Appended:       q.added,
		Acked:          q.removed,
		OldestAppended: q.st.oldest,
		FileBytes:      q.st.fileBytes,
	}
}

// Close waits for the operations already submitted to commit and closes the
// file. It is idempotent; calls after it return ErrQueueClosed.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		close(q.stop)
		<-q.done
		q.life.Lock()
		q.dbClosed = true
		if err := q.db.Close(); err != nil {
			q.closeErr = fmt.Errorf("dualwrite: close queue file %s: %w", q.path, err)
		}
		q.life.Unlock()
	})
	return q.closeErr
}

func (q *Queue) do(o *queueOp) error {
	o.done = make(chan struct{})
	if err := q.submit(o); err != nil {
		return err
	}
	<-o.done
	return o.err
}

func (q *Queue) submit(o *queueOp) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrQueueClosed
	}
	q.pending = append(q.pending, o)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return nil
}

// run is the committer. After stop it drains what was submitted before
// Close, which refuses new operations before stopping it.
func (q *Queue) run() {
	defer close(q.done)
	for {
		select {
		case <-q.kick:
		case <-q.stop:
			for ops := q.take(); len(ops) > 0; ops = q.take() {
				q.commit(ops)
			}
			return
		}
		for ops := q.take(); len(ops) > 0; ops = q.take() {
			q.commit(ops)
		}
	}
}

// take removes the next group from pending: everything, up to
// queueGroupBytes of records and at least one operation.
func (q *Queue) take() []*queueOp {
	q.mu.Lock()
	defer q.mu.Unlock()
	var size int64
	n := 0
	for n < len(q.pending) {
		size += q.pending[n].size
		if n > 0 && size > queueGroupBytes {
			break
		}
		n++
	}
	ops := q.pending[:n:n]
	if n == len(q.pending) {
		q.pending = nil
	} else {
		q.pending = q.pending[n:]
	}
	return ops
}

// commit applies ops in order in one transaction and reports to each.
func (q *Queue) commit(ops []*queueOp) {
	defer func() {
		for _, o := range ops {
			close(o.done)
		}
	}()
	if q.failed != nil {
		for _, o := range ops {
			o.err = q.failed
		}
		return
	}
	q.statsMu.Lock()
	st := q.st
	q.statsMu.Unlock()
	if st.lost != nil {
		l := *st.lost
		st.lost = &l
	}
	var included []*queueOp
	var added, removed uint64
	acked := false
	now := time.Now()
	err := q.update(func(tx *bbolt.Tx) (bool, error) {
		meta, recs := tx.Bucket(queueMetaBucket), tx.Bucket(queueRecordsBucket)
		// Seqs only grow: keep leaf pages full instead of split in half.
		recs.FillPercent = 1
		next, ackedThrough := st.next, st.acked
		var key [8]byte
		for _, o := range ops {
			switch o.kind {
			case queueOpAppend:
				if err := o.ctx.Err(); err != nil {
					o.err = err
					continue
				}
				n := len(o.vals)
				if st.records()+n > q.cfg.MaxRecords || st.bytes+o.size > q.cfg.MaxBytes {
					o.err = fmt.Errorf("%w: %d records of %d bytes do not fit: the queue holds %d of %d records, %d of %d bytes",
						ErrQueueFull, n, o.size, st.records(), q.cfg.MaxRecords, st.bytes, q.cfg.MaxBytes)
					continue
				}
				for i, v := range o.vals {
					seq := st.next + uint64(i)
					sealQueueRecord(seq, v)
					binary.BigEndian.PutUint64(key[:], seq)
					if err := recs.Put(key[:], v); err != nil {
						return false, fmt.Errorf("dualwrite: append to queue file %s: %w", q.path, err)
					}
				}
				if st.records() == 0 {
					st.oldest = o.at
				}
				o.first, o.last = st.next, st.next+uint64(n)-1
				st.next += uint64(n)
				st.bytes += o.size
				added += uint64(n)
			case queueOpAck:
				if o.seq >= st.next {
					o.err = fmt.Errorf("dualwrite: ack through %d is past the queue's tail %d", o.seq, st.next-1)
					continue
				}
				for seq := st.acked + 1; seq <= o.seq; seq++ {
					binary.BigEndian.PutUint64(key[:], seq)
					v := recs.Get(key[:])
					if v == nil {
						return false, q.corrupt("record %d is missing", seq)
					}
					h, err := decodeQueueRecordHeader(v)
					if err != nil {
						return false, q.corrupt("record %d: %v", seq, err)
					}
					if err := recs.Delete(key[:]); err != nil {
						return false, fmt.Errorf("dualwrite: ack in queue file %s: %w", q.path, err)
					}
					st.bytes -= int64(h.dataLen)
					removed++
					acked = true
				}
				if o.seq > st.acked {
					st.acked = o.seq
					st.oldest = time.Time{}
					if st.records() > 0 {
						binary.BigEndian.PutUint64(key[:], st.acked+1)
						h, err := decodeQueueRecordHeader(recs.Get(key[:]))
						if err != nil {
							return false, q.corrupt("record %d: %v", st.acked+1, err)
						}
						st.oldest = time.Unix(0, h.at)
					}
				}
			case queueOpMarkLost:
				if st.lost == nil {
					st.lost = &LostInfo{FirstZxid: o.zxid, LastZxid: o.zxid, Since: now}
				}
				st.lost.FirstZxid = min(st.lost.FirstZxid, o.zxid)
				st.lost.LastZxid = max(st.lost.LastZxid, o.zxid)
				st.lost.Count++
				if err := meta.Put(queueLostKey, encodeQueueLost(*st.lost)); err != nil {
					return false, fmt.Errorf("dualwrite: mark lost in queue file %s: %w", q.path, err)
				}
			case queueOpClearLost:
				st.lost = nil
				if err := meta.Delete(queueLostKey); err != nil {
					return false, fmt.Errorf("dualwrite: clear lost in queue file %s: %w", q.path, err)
				}
			}
			included = append(included, o)
		}
		if len(included) == 0 {
			return false, nil
		}
		if st.next != next || st.acked != ackedThrough {
			if err := meta.Put(queueStateKey, encodeQueueState(st.next, st.acked)); err != nil {
				return false, fmt.Errorf("dualwrite: update queue file %s: %w", q.path, err)
			}
		}
		st.fileBytes = tx.Size()
		return true, nil
	})
	if err != nil {
		for _, o := range included {
			o.first, o.last, o.err = 0, 0, err
		}
		return
	}
	q.statsMu.Lock()
	q.st = st
	q.added += added
	q.removed += removed
	q.statsMu.Unlock()
	if added > 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	if acked {
		q.maybeShrink(st)
	}
}

// update runs fn in a write transaction and commits it if fn reports a
// change. A bbolt panic fails this and every later write.
func (q *Queue) update(fn func(*bbolt.Tx) (bool, error)) (err error) {
	tx, err := q.db.Begin(true)
	if err != nil {
		return fmt.Errorf("dualwrite: queue file %s: %w", q.path, err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			_ = tx.Rollback()
			err = q.corrupt("bbolt: %v", r)
			q.failed = err
		}
	}()
	changed, err := fn(tx)
	if err != nil || !changed {
		_ = tx.Rollback()
		return err
	}
	// Commit rolls back itself when it fails.
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("dualwrite: commit to queue file %s: %w", q.path, err)
	}
	return nil
}

// maybeShrink rewrites the file when it is much larger than what it holds;
// see "Shrinking" in the comment at the top.
func (q *Queue) maybeShrink(st queueState) {
	if q.cfg.ShrinkAboveBytes < 0 || st.fileBytes <= q.cfg.ShrinkAboveBytes ||
		st.bytes > queueShrinkMaxLive || st.bytes > st.fileBytes/8 || time.Now().Before(q.shrinkAfter) {
		return
	}
	if err := q.shrink(); err != nil {
		q.shrinkAfter = time.Now().Add(queueShrinkRetry)
		q.logger.Warn("cannot shrink queue file", "path", q.path, "error", err)
		return
	}
	q.statsMu.Lock()
	before := q.st.fileBytes
	q.statsMu.Unlock()
	var after int64
	if err := q.view(func(tx *bbolt.Tx) error { after = tx.Size(); return nil }); err == nil {
		q.statsMu.Lock()
		q.st.fileBytes = after
		q.statsMu.Unlock()
	}
	q.logger.Info("shrank queue file", "path", q.path, "from-bytes", before, "to-bytes", after, "records", st.records())
}

func (q *Queue) shrink() (err error) {
	q.shrinks++
	tmp := fmt.Sprintf("%s%d-%d", filepath.Join(q.dir, queueTempPrefix), os.Getpid(), q.shrinks)
	_ = os.Remove(tmp)
	ndb, err := q.openBolt(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = ndb.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := q.compactInto(ndb); err != nil {
		return err
	}
	q.life.Lock()
	defer q.life.Unlock()
	if err := os.Rename(tmp, q.path); err != nil {
		return fmt.Errorf("replace %s: %w", q.path, err)
	}
	old := q.db
	q.db = ndb
	if err := q.syncDir(); err != nil {
		// The new file is in use, but a machine crash could bring the old one
		// back and lose what is appended from now on.
		q.failed = fmt.Errorf("dualwrite: queue file %s was replaced, but its dir could not be synced: %w", q.path, err)
		q.logger.Error("queue fails every write from now on", "error", q.failed)
	}
	if err := old.Close(); err != nil {
		q.logger.Warn("cannot close replaced queue file", "error", err)
	}
	return nil
}

func (q *Queue) compactInto(ndb *bbolt.DB) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = q.corrupt("bbolt: %v", r)
		}
	}()
	return bbolt.Compact(ndb, q.db, 0)
}

// encodeQueueRecordUnsealed encodes a record with its CRC over everything but
// the seq; sealQueueRecord finishes it once the seq is known.
func encodeQueueRecordUnsealed(at int64, data []byte) []byte {
	v := make([]byte, queueRecordHeaderLen+len(data))
	v[0] = queueValueVersion
	binary.BigEndian.PutUint64(v[1:9], uint64(at))
	binary.BigEndian.PutUint32(v[9:13], uint32(len(data)))
	copy(v[queueRecordHeaderLen:], data)
	crc := crc32.Update(0, queueCRCTable, v[:13])
	crc = crc32.Update(crc, queueCRCTable, v[queueRecordHeaderLen:])
	binary.BigEndian.PutUint32(v[13:17], crc)
	return v
}

func sealQueueRecord(seq uint64, v []byte) {
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	crc := crc32.Update(binary.BigEndian.Uint32(v[13:17]), queueCRCTable, s[:])
	binary.BigEndian.PutUint32(v[13:17], crc)
}

func encodeQueueRecord(seq uint64, at int64, data []byte) []byte {
	v := encodeQueueRecordUnsealed(at, data)
	sealQueueRecord(seq, v)
	return v
}

type queueRecordHeader struct {
	at      int64
	dataLen uint32
	crc     uint32
}

// decodeQueueRecordHeader checks a record's header and length, not its CRC.
func decodeQueueRecordHeader(v []byte) (queueRecordHeader, error) {
	if len(v) < queueRecordHeaderLen {
		return queueRecordHeader{}, fmt.Errorf("value is %d bytes, shorter than a record header (%d)", len(v), queueRecordHeaderLen)
	}
	if v[0] != queueValueVersion {
		return queueRecordHeader{}, fmt.Errorf("unknown record version %d", v[0])
	}
	h := queueRecordHeader{
		at:      int64(binary.BigEndian.Uint64(v[1:9])),
		dataLen: binary.BigEndian.Uint32(v[9:13]),
		crc:     binary.BigEndian.Uint32(v[13:17]),
	}
	if got := len(v) - queueRecordHeaderLen; uint64(got) != uint64(h.dataLen) {
		return queueRecordHeader{}, fmt.Errorf("record holds %d bytes of data, its header says %d", got, h.dataLen)
	}
	return h, nil
}

// decodeQueueRecord checks a record stored under seq and returns its data (a
// slice of v) and append time.
func decodeQueueRecord(seq uint64, v []byte) (data []byte, at int64, err error) {
	h, err := decodeQueueRecordHeader(v)
	if err != nil {
		return nil, 0, err
	}
	data = v[queueRecordHeaderLen:]
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	crc := crc32.Update(0, queueCRCTable, v[:13])
	crc = crc32.Update(crc, queueCRCTable, data)
	crc = crc32.Update(crc, queueCRCTable, s[:])
	if crc != h.crc {
		return nil, 0, fmt.Errorf("checksum mismatch (stored %#08x, computed %#08x)", h.crc, crc)
	}
	return data, h.at, nil
}

func encodeQueueState(next, acked uint64) []byte {
	v := make([]byte, queueStateLen)
	v[0] = queueValueVersion
	binary.BigEndian.PutUint64(v[1:9], next)
	binary.BigEndian.PutUint64(v[9:17], acked)
	binary.BigEndian.PutUint32(v[17:21], crc32.Checksum(v[:17], queueCRCTable))
	return v
}

func decodeQueueState(v []byte) (next, acked uint64, err error) {
	if len(v) != queueStateLen {
		return 0, 0, fmt.Errorf("%d bytes, want %d", len(v), queueStateLen)
	}
	if v[0] != queueValueVersion {
		return 0, 0, fmt.Errorf("unknown version %d", v[0])
	}
	if got, want := binary.BigEndian.Uint32(v[17:21]), crc32.Checksum(v[:17], queueCRCTable); got != want {
		return 0, 0, fmt.Errorf("checksum mismatch (stored %#08x, computed %#08x)", got, want)
	}
	next, acked = binary.BigEndian.Uint64(v[1:9]), binary.BigEndian.Uint64(v[9:17])
	if next == 0 || acked >= next || next == math.MaxUint64 {
		return 0, 0, fmt.Errorf("next seq %d and acked seq %d are inconsistent", next, acked)
	}
	return next, acked, nil
}

func encodeQueueLost(l LostInfo) []byte {
	v := make([]byte, queueLostLen)
	v[0] = queueValueVersion
	binary.BigEndian.PutUint64(v[1:9], uint64(l.FirstZxid))
	binary.BigEndian.PutUint64(v[9:17], uint64(l.LastZxid))
	binary.BigEndian.PutUint64(v[17:25], uint64(l.Count))
	binary.BigEndian.PutUint64(v[25:33], uint64(l.Since.UnixNano()))
	binary.BigEndian.PutUint32(v[33:37], crc32.Checksum(v[:33], queueCRCTable))
	return v
}

func decodeQueueLost(v []byte) (LostInfo, error) {
	if len(v) != queueLostLen {
		return LostInfo{}, fmt.Errorf("%d bytes, want %d", len(v), queueLostLen)
	}
	if v[0] != queueValueVersion {
		return LostInfo{}, fmt.Errorf("unknown version %d", v[0])
	}
	if got, want := binary.BigEndian.Uint32(v[33:37]), crc32.Checksum(v[:33], queueCRCTable); got != want {
		return LostInfo{}, fmt.Errorf("checksum mismatch (stored %#08x, computed %#08x)", got, want)
	}
	l := LostInfo{
		FirstZxid: int64(binary.BigEndian.Uint64(v[1:9])),
		LastZxid:  int64(binary.BigEndian.Uint64(v[9:17])),
		Count:     int64(binary.BigEndian.Uint64(v[17:25])),
		Since:     time.Unix(0, int64(binary.BigEndian.Uint64(v[25:33]))),
	}
	if l.Count < 1 || l.FirstZxid > l.LastZxid {
		return LostInfo{}, fmt.Errorf("count %d and zxids %#x to %#x are inconsistent", l.Count, l.FirstZxid, l.LastZxid)
	}
	return l, nil
}

package dualwrite

// The queue (Queue, OpenQueue):
//
// The proxy appends one record for every write ZooKeeper committed, and only
// then releases the reply; the delivery loop peeks batches from the head,
// submits them to the journal and acks them. The queue sits in the reply path
// of every write, so an Append is done by the caller's goroutine: it encodes
// its records, then under one mutex stamps their seqs (finishing the CRCs),
// write()s them to the current segment file and returns. There is no hand-off
// to another goroutine and no fsync in that path. (Syncs are fsync, through
// os.File.Sync: fdatasync and flock would need per-OS files; flock is taken
// from syscall, so the queue builds on unix only.)
//
// Durability. Two levels, chosen by QueueConfig.SyncOnAppend:
//
//   - Default ("process-crash safe"): a record whose Append returned is in the
//     kernel's page cache, so it survives the proxy's crash, kill -9 included.
//     A background syncer fsyncs the segment being appended to (and the dir,
//     when segments were created or removed) at most SyncEvery (10 ms by
//     default) after the first append it does not cover. A crash of the HOST
//     (power loss, kernel panic) may lose the appends of the last SyncEvery:
//     OpenQueue detects it (below) and records an unknown loss, so the
//     proxy's repair pass (RepairOwed) makes the journal whole again.
//   - SyncOnAppend (strict): Append returns only once an fsync covering its
//     records has completed. The syncer does one fsync for every Append
//     waiting (group commit), so this mode hands off to it and back.
//
// NoSync (tests and benchmarks) skips every fsync.
//
// Detecting a host crash. The state file holds a "clean shutdown" flag and
// the Linux boot id (/proc/sys/kernel/random/boot_id; empty elsewhere).
// OpenQueue writes it with clean=false; Close rewrites it with clean=true after
// a last fsync. At open, an unclean previous run whose boot id differs from
// this one (or when no boot id is available) means the machine went down with
// the queue open: unless that run used SyncOnAppend, its last appends may be
// missing, and the queue records a lost mark with FirstZxid 0 (the start of
// the loss is unknown), LastZxid 0 and Count 0 ("unknown"; later MarkLost
// calls widen LastZxid and count as usual). An unclean shutdown with the same
// boot id was a process crash: nothing written is lost.
//
// Acks are lazy. Ack moves the head in memory at once; the syncer writes the
// acked seq to the state file at most every queueStateEvery (100 ms) and at
// Close, and only then deletes the segments whose every record is acked.
// After a crash (of the process or the host), records acked but not yet
// written to the state file come back and are delivered again: the journal
// applies a mirrored write twice harmlessly. So "Ack removes" holds for the
// running queue and across a Close; across a crash it holds for acks older
// than 100 ms.
//
// On disk, under QueueConfig.Dir:
//
//	LOCK                            flock'd by the process that has the queue open
//	state                           the state file (below), replaced atomically:
//	state.tmp                       written, fsynced, renamed over state, dir fsynced
//	seg-<first seq, 20 digits>.log  segments, in seq order; the last is appended to
//
// Segments hold records back to back; a segment is rolled (a new one created)
// when an Append would take it past SegmentBytes, after an fsync of the old
// one, so only the last segment can end with unsynced bytes. The seqs are
// contiguous across segments; segments before the head are deleted, the last
// one never. Integers are big-endian; CRCs are CRC-32C (Castagnoli).
//
//	record   0          4        8                16               24
//	        +----------+--------+----------------+----------------+-------------+
//	        | data len | CRC    | seq            | appended,      | data ...    |
//	        | uint32   | uint32 | uint64         | unix ns int64  | (data len)  |
//	        +----------+--------+----------------+----------------+-------------+
//	         the CRC covers the append time, the data and then the seq (bytes
//	         16…end, then 8…15): the appender computes all but the seq before it
//	         takes the lock, and a record moved under another seq fails it
//
//	state    0         1       2      10      18                              50
//	        +---------+-------+------+-------+-------------------------------+
//	        | version | flags | next | acked | lost: first zxid, last zxid,  |
//	        | 1       |       | u64  | u64   | count, since unix ns (4×i64)  |
//	        +---------+-------+------+-------+-------------------------------+
//	         50          51                 51+n
//	        +-----------+------------------+------------------------+
//	        | boot id   | boot id (n ≤ 64  | CRC of all before it   |
//	        | length n  | bytes)           | uint32                 |
//	        +-----------+------------------+------------------------+
//	         flags: 1 clean shutdown, 2 lost (the lost fields are zero
//	         otherwise), 4 the run used SyncOnAppend
//
// Seqs start at 1 and are never reused by a queue that was closed or whose
// process crashed: the next seq is one past the last record on disk (or the
// state's next, whichever is higher). After a HOST crash, the seqs of appends
// lost with it may be handed out again; nothing outside the queue keeps them
// across a restart. The syncer fsyncs the segment before it writes the state
// file, so the state's acked and next never run ahead of the records on disk.
//
// Opening reads every segment and checks every record (length, CRC, seq).
// Damage is ErrQueueCorrupt naming the file and byte offset, never a shorter
// queue, with one exception: after an unclean shutdown, a record in the last
// segment that is cut short or fails its CRC is a write the crash interrupted,
// and it and what follows are truncated away and logged. After a process
// crash (same boot id) only the last write can be torn, so the record must be
// the last one (no valid record follows it), and its Append never returned.
// After the machine went down, the unsynced tail may have reached the disk in
// pieces, so everything from the first bad record on goes; that is covered
// by the unknown-loss mark (or, with SyncOnAppend, by those Appends never
// having returned). Also damage: a seq out
// of place, segments that do not join up, fewer records than the state's next
// says, a state file that does not decode, a "seg-" file with a malformed
// name, or queue.db (the earlier bbolt format, to be drained by that version).
//
// Memory: for each record not yet acked, the queue keeps its offset, length
// and append time (24 bytes; 24 MiB at MaxRecords' default), so that Peek reads
// the head without a rescan and Ack keeps the byte count without a read.

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
	// ErrQueueCorrupt is returned (wrapped, naming the file, the byte offset
	// where it applies, and what is wrong) when the queue's on-disk state
	// cannot be trusted.
	ErrQueueCorrupt = errors.New("dualwrite: queue file is damaged")
	// ErrInvalidQueueConfig is returned (wrapped) by QueueConfig.Validate and
	// OpenQueue for a configuration that cannot be used.
	ErrInvalidQueueConfig = errors.New("dualwrite: invalid queue configuration")
)

const (
	queueLockName   = "LOCK"
	queueStateName  = "state"
	queueStateTemp  = "state.tmp"
	queueSegPrefix  = "seg-"
	queueSegSuffix  = ".log"
	queueSegDigits  = 20
	queueLegacyName = "queue.db"

	queueRecordHeaderLen  = 24
	queueMaxRecordDataLen = 1 << 30

	queueStateVersion  = 1
	queueStateFixedLen = 51 // through the boot id's length
	queueStateMinLen   = queueStateFixedLen + 4
	queueMaxBootIDLen  = 64
	queueStateClean    = 1 << 0
	queueStateLost     = 1 << 1
	queueStateStrict   = 1 << 2
	queueStateFlags    = queueStateClean | queueStateLost | queueStateStrict

	// queueStateEvery is how often, at most, the syncer writes the state file
	// for acks.
	queueStateEvery = 100 * time.Millisecond

	queueBootIDPath = "/proc/sys/kernel/random/boot_id"
)

var queueCRCTable = crc32.MakeTable(crc32.Castagnoli)

// QueueConfig configures a Queue. Zero MaxBytes, MaxRecords, SegmentBytes and
// SyncEvery take DefaultQueueConfig's values.
type QueueConfig struct {
	// Dir holds the queue's files; it is created if missing. One process at a
	// time: OpenQueue takes an exclusive lock on Dir/LOCK.
	Dir string
	// MaxBytes bounds the payload bytes held (record data, not headers); 1 GiB
	// by default.
	MaxBytes int64
	// MaxRecords bounds the records held; 1<<20 by default.
	MaxRecords int
	// SegmentBytes is the size at which the segment appended to is closed and
	// a new one started; 64 MiB by default. A single Append larger than it
	// makes a larger segment.
	SegmentBytes int64
	// SyncEvery bounds how long an appended record stays unsynced (in the
	// page cache only) in the default mode: what a host crash may lose. 10 ms
	// by default.
	SyncEvery time.Duration
	// SyncOnAppend makes Append return only after an fsync covering its
	// records (group-committed): a host crash then loses nothing whose Append
	// returned, at the cost of waiting for the disk in every Append.
	SyncOnAppend bool
	// NoSync skips fsync: for tests and benchmarks only, since a machine crash
	// may then lose appended records or damage the files.
	NoSync bool
	// Logger receives the queue's logs; nil discards them.
	Logger *slog.Logger

	// bootID, when set, replaces reading the machine's boot id (tests).
	bootID func() string
}

// DefaultQueueConfig returns the defaults for a queue in dir.
func DefaultQueueConfig(dir string) QueueConfig {
	return QueueConfig{
		Dir:          dir,
		MaxBytes:     1 << 30,
		MaxRecords:   1 << 20,
		SegmentBytes: 64 << 20,
		SyncEvery:    10 * time.Millisecond,
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
	case c.SegmentBytes < 0:
		return fmt.Errorf("%w: SegmentBytes is %d", ErrInvalidQueueConfig, c.SegmentBytes)
	case c.SyncEvery < 0:
		return fmt.Errorf("%w: SyncEvery is %v", ErrInvalidQueueConfig, c.SyncEvery)
	case c.SyncOnAppend && c.NoSync:
		return fmt.Errorf("%w: SyncOnAppend and NoSync contradict each other", ErrInvalidQueueConfig)
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
	if c.SegmentBytes == 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	if c.SyncEvery == 0 {
		c.SyncEvery = d.SyncEvery
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
// FirstZxid, LastZxid and Count all 0 mean an unknown loss (a host crash took
// the last unsynced appends); FirstZxid 0 with a Count means an unknown loss
// followed by known ones.
type LostInfo struct {
	FirstZxid int64     `json:"first_zxid"` // the lowest source zxid dropped
	LastZxid  int64     `json:"last_zxid"`  // the highest source zxid dropped
	Count     int64     `json:"count"`      // how many writes were known dropped
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
	// FileBytes is the size of the segment files.
	FileBytes int64
}

// Queue is the durable, bounded FIFO of records the proxy has still to
// deliver to the journal. Its methods are safe for concurrent use.
type Queue struct {
	cfg    QueueConfig
	dir    string
	logger *slog.Logger
	ready  chan struct{}
	bootID string
	lock   *os.File

	// life guards the segment files against being closed: Peek holds it
	// shared while it reads them, deleting segments and Close exclusively.
	// It is taken before mu.
	life sync.RWMutex

	mu       sync.Mutex
	closed   bool
	crashed  bool  // tests: Close leaves the files as a kill -9 would
	failed   error // a write or fsync failed: every later Append fails
	segments []*queueSegment
	next     uint64 // the seq the next record gets
	acked    uint64
	bytes    int64
	lost     *LostInfo
	added    uint64
	removed  uint64
	// dataDirty: records were written since the syncer last started an
	// fsync, the first of them at dirtyAt. dirDirty: a segment was created.
	dataDirty  bool
	dirtyAt    time.Time
	dirDirty   bool
	stateDirty bool          // acked moved since the state file was last written
	synced     uint64        // records through this seq are fsynced
	syncedCh   chan struct{} // closed (and replaced) when synced moves or failed is set

	// stateMu serialises writes of the state file; persisted is what the
	// last one wrote.
	stateMu   sync.Mutex
	persisted queueFileState

	kick       chan struct{}
	stop       chan struct{}
	syncerDone chan struct{}
	stateAt    time.Time // owned by the syncer: when it last wrote the state
	closeErr   error     // set by the syncer's last pass
	closeOnce  sync.Once

	syncs atomic.Uint64 // fsyncs of segment files (tests)
}

// queueSegment is one segment file. Its records are first … last; recs
// describes those not yet acked, base being the seq of recs[0].
type queueSegment struct {
	first, last uint64
	path        string
	f           *os.File
	size        int64
	base        uint64
	recs        []queueRecordMeta
}

type queueRecordMeta struct {
	off  int64
	size uint32 // data bytes
	at   int64  // appended, unix ns
}

// queueFileState is the content of the state file.
type queueFileState struct {
	next, acked   uint64
	clean, strict bool
	lost          *LostInfo
	bootID        string
}

// OpenQueue opens the queue in cfg.Dir, creating it if there is none.
func OpenQueue(cfg QueueConfig) (_ *Queue, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("dualwrite: create queue dir: %w", err)
	}
	q := &Queue{
		cfg:        cfg,
		dir:        cfg.Dir,
		logger:     cfg.Logger,
		ready:      make(chan struct{}, 1),
		syncedCh:   make(chan struct{}),
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		syncerDone: make(chan struct{}),
	}
	if cfg.bootID != nil {
		q.bootID = cfg.bootID()
	} else {
		q.bootID = readBootID()
	}
	if q.lock, err = lockQueueDir(q.dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			q.closeFiles()
		}
	}()
	if err := q.load(); err != nil {
		return nil, err
	}
	st := q.Stats()
	q.logger.Info("opened queue", "dir", q.dir, "records", st.Records, "bytes", st.Bytes,
		"head-seq", st.HeadSeq, "tail-seq", st.TailSeq, "segments", len(q.segments), "sync-on-append", cfg.SyncOnAppend)
	if l, ok := q.Lost(); ok {
		q.logger.Warn("queue records mirrored writes lost; a repair is owed",
			"first-zxid", l.FirstZxid, "last-zxid", l.LastZxid, "count", l.Count, "since", l.Since)
	}
	go q.runSyncer()
	return q, nil
}

func readBootID() string {
	b, err := os.ReadFile(queueBootIDPath)
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(string(b))
	if len(id) > queueMaxBootIDLen {
		id = id[:queueMaxBootIDLen]
	}
	return id
}

// lockQueueDir takes an exclusive flock on dir/LOCK. The kernel drops it
// when the process dies, so a stale file never keeps a restarted proxy out;
// a second open in the same process fails too (flock locks belong to the
// open file).
func lockQueueDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, queueLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dualwrite: open queue lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (%s is locked by another process or queue)", ErrQueueLocked, dir, path)
		}
		return nil, fmt.Errorf("dualwrite: lock queue dir %s: %w", dir, err)
	}
	return f, nil
}

func queueSegmentName(first uint64) string {
	return fmt.Sprintf("%s%0*d%s", queueSegPrefix, queueSegDigits, first, queueSegSuffix)
}

func parseQueueSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, queueSegPrefix)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, queueSegSuffix); !ok || len(digits) != queueSegDigits {
		return 0, false
	}
	first, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || first == 0 {
		return 0, false
	}
	return first, true
}

func queueCorrupt(path, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrQueueCorrupt, path, fmt.Sprintf(format, args...))
}

// Append appends recs in order and returns the seqs of the first and last.
// When it returns, the records are in the kernel's page cache (they survive
// the process's crash) and are fsynced within SyncEvery; with SyncOnAppend,
// they are fsynced. If the records would take the queue past MaxRecords or
// MaxBytes, nothing is appended and the error wraps ErrQueueFull.
//
// If ctx has ended, nothing is appended. With SyncOnAppend, if ctx ends while
// Append waits for the fsync, Append returns ctx.Err() and the records are in
// the queue but perhaps not yet on disk: a caller that must know treats the
// write as lost (MarkLost); a duplicate in the journal is harmless, since
// applying a mirrored write twice is. An Append with no records does nothing.
// The queue keeps no reference to recs.
func (q *Queue) Append(ctx context.Context, recs ...[]byte) (first, last uint64, err error) {
	if len(recs) == 0 {
		return 0, 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	at := time.Now()
	n, size := 0, int64(0)
	for i, r := range recs {
		if len(r) > queueMaxRecordDataLen {
			return 0, 0, fmt.Errorf("dualwrite: record %d of the append is %d bytes, more than a queue record holds (%d)", i, len(r), queueMaxRecordDataLen)
		}
		n += queueRecordHeaderLen + len(r)
		size += int64(len(r))
	}
	buf := make([]byte, 0, n)
	for _, r := range recs {
		buf = appendQueueRecordUnsealed(buf, at.UnixNano(), r)
	}

	q.mu.Lock()
	if err := q.appendLocked(buf, recs, size, at); err != nil {
		q.mu.Unlock()
		return 0, 0, err
	}
	last = q.next - 1
	first = last + 1 - uint64(len(recs))
	kick := q.cfg.SyncOnAppend || !q.dataDirty
	if !q.dataDirty {
		q.dataDirty, q.dirtyAt = true, at
	}
	q.mu.Unlock()
	if kick {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
	if !q.cfg.SyncOnAppend {
		return first, last, nil
	}
	if err := q.waitSynced(ctx, last); err != nil {
		return 0, 0, err
	}
	return first, last, nil
}

// appendLocked checks the bounds, seals and writes buf (the encoded recs) to
// the last segment, rolling it first if it is full, and indexes the records.
func (q *Queue) appendLocked(buf []byte, recs [][]byte, size int64, at time.Time) error {
	switch {
	case q.closed:
		return ErrQueueClosed
	case q.failed != nil:
		return q.failed
	}
	if held := int(q.next - 1 - q.acked); held+len(recs) > q.cfg.MaxRecords || q.bytes+size > q.cfg.MaxBytes {
		return fmt.Errorf("%w: %d records of %d bytes do not fit: the queue holds %d of %d records, %d of %d bytes",
			ErrQueueFull, len(recs), size, held, q.cfg.MaxRecords, q.bytes, q.cfg.MaxBytes)
	}
	s := q.segments[len(q.segments)-1]
	if s.size > 0 && s.size+int64(len(buf)) > q.cfg.SegmentBytes {
		var err error
		if s, err = q.rollLocked(s); err != nil {
			return err
		}
	}
	off := 0
	for i, r := range recs {
		sealQueueRecord(buf[off:], q.next+uint64(i))
		off += queueRecordHeaderLen + len(r)
	}
	if _, err := s.f.WriteAt(buf, s.size); err != nil {
		err = fmt.Errorf("dualwrite: append to queue segment %s at offset %d: %w", s.path, s.size, err)
		// A partial write would leave a torn record before the next one.
		if terr := s.f.Truncate(s.size); terr != nil {
			q.fail(fmt.Errorf("%w; cannot truncate it back: %v", err, terr))
		}
		return err
	}
	if len(s.recs) == 0 {
		s.base = q.next
	}
	pos := s.size
	for _, r := range recs {
		s.recs = append(s.recs, queueRecordMeta{off: pos, size: uint32(len(r)), at: at.UnixNano()})
		pos += int64(queueRecordHeaderLen + len(r))
	}
	s.size = pos
	q.next += uint64(len(recs))
	s.last = q.next - 1
	q.bytes += size
	q.added += uint64(len(recs))
	return nil
}

// rollLocked starts a new segment after s. s is fsynced first, so that only
// the last segment can end with a torn record; the syncer fsyncs the dir.
func (q *Queue) rollLocked(s *queueSegment) (*queueSegment, error) {
	if err := q.syncFile(s.f); err != nil {
		err = fmt.Errorf("dualwrite: sync queue segment %s: %w", s.path, err)
		q.fail(err)
		return nil, err
	}
	ns, err := q.createSegment(q.next)
	if err != nil {
		return nil, err
	}
	q.segments = append(q.segments, ns)
	q.dirDirty = true
	return ns, nil
}

// fail makes every later Append fail with err. The caller holds mu.
func (q *Queue) fail(err error) {
	if q.failed != nil {
		return
	}
	q.failed = err
	q.logger.Error("queue fails every append from now on", "dir", q.dir, "error", err)
	close(q.syncedCh)
	q.syncedCh = make(chan struct{})
}

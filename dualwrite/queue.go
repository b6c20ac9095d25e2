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
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
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

// load reads the state file and every segment, repairs a torn tail, records
// a host crash, and writes the state of this run (clean=false).
func (q *Queue) load() error {
	entries, err := os.ReadDir(q.dir)
	if err != nil {
		return fmt.Errorf("dualwrite: read queue dir: %w", err)
	}
	statePath := filepath.Join(q.dir, queueStateName)
	hasState := false
	var segs []*queueSegment
	for _, e := range entries {
		name, path := e.Name(), filepath.Join(q.dir, e.Name())
		switch {
		case name == queueLockName:
		case name == queueStateName:
			hasState = true
		case name == queueStateTemp:
			// A state write that crashed before its rename: the state file
			// still holds the previous state.
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("dualwrite: remove %s: %w", path, err)
			}
		case name == queueLegacyName:
			return queueCorrupt(path, "is a queue file of the earlier bbolt format; drain it with the version that wrote it, then remove it")
		case strings.HasPrefix(name, queueSegPrefix):
			first, ok := parseQueueSegmentName(name)
			if !ok || !e.Type().IsRegular() {
				return queueCorrupt(path, "offset 0: not a segment (segments are regular files named %s)", queueSegmentName(1))
			}
			// ReadDir sorts by name, and the fixed-width names sort by seq.
			segs = append(segs, &queueSegment{first: first, path: path})
		default:
			q.logger.Warn("ignoring a file that is not the queue's", "path", path)
		}
	}

	prev := queueFileState{next: 1}
	if hasState {
		b, err := os.ReadFile(statePath)
		if err != nil {
			return fmt.Errorf("dualwrite: read queue state: %w", err)
		}
		if prev, err = decodeQueueState(b); err != nil {
			return queueCorrupt(statePath, "offset 0: %v", err)
		}
	} else if len(segs) > 0 {
		return queueCorrupt(statePath, "offset 0: missing, but the dir holds segments (%s …)", filepath.Base(segs[0].path))
	}
	// An unclean shutdown under another boot id (or none to compare) was the
	// machine going down: what was not yet fsynced may be missing or garbage.
	unclean := hasState && !prev.clean
	machineDown := unclean && (q.bootID == "" || prev.bootID != q.bootID)
	hostCrash := machineDown && !prev.strict

	q.acked, q.lost = prev.acked, prev.lost
	expect := uint64(0)
	var buf []byte
	for i, s := range segs {
		lastSeg := i == len(segs)-1
		switch {
		case i == 0 && s.first > prev.acked+1:
			return queueCorrupt(s.path, "offset 0: starts at seq %d, but the queue is acked only through %d: records %d to %d are missing",
				s.first, prev.acked, prev.acked+1, s.first-1)
		case i > 0 && s.first != expect:
			return queueCorrupt(s.path, "offset 0: starts at seq %d, but the segment before ends at %d", s.first, expect-1)
		}
		f, err := os.OpenFile(s.path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("dualwrite: open queue segment: %w", err)
		}
		s.f = f
		q.segments = append(q.segments, s)
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("dualwrite: queue segment: %w", err)
		}
		if int64(cap(buf)) < fi.Size() {
			buf = make([]byte, fi.Size())
		}
		data := buf[:fi.Size()]
		if _, err := f.ReadAt(data, 0); err != nil {
			return fmt.Errorf("dualwrite: read queue segment %s: %w", s.path, err)
		}
		seq, off := s.first, 0
		s.base = max(s.first, prev.acked+1)
		for off < len(data) {
			h, _, n, err := decodeQueueRecord(data[off:])
			torn := err != nil
			if err == nil && h.seq != seq {
				err = fmt.Errorf("holds seq %d where seq %d belongs", h.seq, seq)
			}
			if err != nil {
				// After a process crash only the last write can be torn: a
				// valid record after the damage means damage in the middle.
				// After the machine went down, pages of the unsynced tail may
				// have reached the disk in any order.
				if !torn || !lastSeg || !unclean || !machineDown && queueRecordFollows(data, off) {
					return queueCorrupt(s.path, "offset %d: %v", off, err)
				}
				if err := q.truncateTornTail(s, data, off, err, machineDown); err != nil {
					return err
				}
				break
			}
			if seq > prev.acked {
				s.recs = append(s.recs, queueRecordMeta{off: int64(off), size: h.dataLen, at: h.at})
				q.bytes += int64(h.dataLen)
			}
			off += n
			seq++
		}
		s.size, s.last = int64(off), seq-1
		expect = seq
	}
	switch {
	case len(segs) == 0 && prev.acked != prev.next-1:
		return queueCorrupt(statePath, "offset 0: records %d to %d are missing: there are no segments", prev.acked+1, prev.next-1)
	case len(segs) > 0 && expect < prev.next:
		s := segs[len(segs)-1]
		return queueCorrupt(s.path, "offset %d: ends at seq %d, but the state says seqs through %d were handed out: records %d to %d are missing",
			s.size, expect-1, prev.next-1, expect, prev.next-1)
	}
	q.next = max(expect, prev.next)
	q.synced = q.next - 1

	if len(q.segments) == 0 {
		s, err := q.createSegment(q.next)
		if err != nil {
			return err
		}
		q.segments = append(q.segments, s)
	} else if err := q.syncFile(q.segments[len(q.segments)-1].f); err != nil {
		// What a crashed process left in the page cache must be on disk
		// before the state below counts it.
		return fmt.Errorf("dualwrite: sync queue segment: %w", err)
	}
	if err := q.syncDir(); err != nil {
		return err
	}
	if hostCrash {
		l := LostInfo{Since: time.Now()}
		if q.lost != nil {
			l = *q.lost
			l.FirstZxid = min(l.FirstZxid, 0)
			l.LastZxid = max(l.LastZxid, 0)
		}
		q.lost = &l
		q.logger.Error("the machine went down while the queue was open (unclean shutdown, boot id changed): "+
			"appends of its last sync interval may be lost; recording an unknown loss so that a repair pass runs",
			"dir", q.dir, "previous-boot-id", prev.bootID, "boot-id", q.bootID, "sync-every", q.cfg.SyncEvery)
	}
	q.stateMu.Lock()
	defer q.stateMu.Unlock()
	if err := q.writeStateLocked(queueFileState{next: q.next, acked: q.acked, lost: q.lost}); err != nil {
		return err
	}
	// Segments acked through by the state just written: the previous run
	// had not deleted them yet.
	return q.deleteAckedSegments(q.acked)
}

// queueRecordFollows reports whether a valid record starts right after the
// damaged one at off, going by its length: then the damage is in the middle
// of the log, not a torn end.
func queueRecordFollows(data []byte, off int) bool {
	if len(data)-off < queueRecordHeaderLen {
		return false
	}
	n := uint64(binary.BigEndian.Uint32(data[off:])) + queueRecordHeaderLen
	if n > uint64(len(data)-off) {
		return false
	}
	_, _, _, err := decodeQueueRecord(data[off+int(n):])
	return err == nil
}

func (q *Queue) truncateTornTail(s *queueSegment, data []byte, off int, cause error, machineDown bool) error {
	if err := s.f.Truncate(int64(off)); err != nil {
		return fmt.Errorf("dualwrite: truncate torn tail of queue segment %s: %w", s.path, err)
	}
	why := "the process crashed in the middle of an Append, which never returned"
	if machineDown {
		why = "the machine went down; appends not yet synced may be lost"
	}
	q.logger.Warn("truncated a torn record at the end of the queue's last segment: "+why,
		"path", s.path, "offset", off, "bytes", len(data)-off, "record-error", cause.Error())
	return nil
}

func (q *Queue) createSegment(first uint64) (*queueSegment, error) {
	path := filepath.Join(q.dir, queueSegmentName(first))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dualwrite: create queue segment: %w", err)
	}
	return &queueSegment{first: first, last: first - 1, path: path, f: f, base: first}, nil
}

func (q *Queue) syncFile(f *os.File) error {
	if q.cfg.NoSync {
		return nil
	}
	q.syncs.Add(1)
	return f.Sync()
}

func (q *Queue) syncDir() error {
	if q.cfg.NoSync {
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

// writeStateLocked writes st (with this run's boot id and mode) as the state
// file: a temporary file, fsynced, renamed over it, then the dir fsynced.
// The caller holds stateMu, and has made sure the records through st.next-1
// are on disk.
func (q *Queue) writeStateLocked(st queueFileState) error {
	st.bootID, st.strict = q.bootID, q.cfg.SyncOnAppend
	tmp, path := filepath.Join(q.dir, queueStateTemp), filepath.Join(q.dir, queueStateName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("dualwrite: write queue state: %w", err)
	}
	_, err = f.Write(encodeQueueState(st))
	if err == nil && !q.cfg.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("dualwrite: write queue state %s: %w", path, err)
	}
	if err := q.syncDir(); err != nil {
		return err
	}
	q.persisted = st
	return nil
}

// deleteAckedSegments deletes the segments, but the last, whose records are
// all acked through acked (as the state file says).
func (q *Queue) deleteAckedSegments(acked uint64) error {
	q.life.Lock()
	q.mu.Lock()
	var gone []*queueSegment
	for len(q.segments) > 1 && q.segments[0].last <= acked {
		gone = append(gone, q.segments[0])
		q.segments = q.segments[1:]
	}
	q.mu.Unlock()
	var errs []error
	for _, s := range gone {
		errs = append(errs, s.f.Close(), os.Remove(s.path))
	}
	q.life.Unlock()
	if len(gone) > 0 {
		errs = append(errs, q.syncDir())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dualwrite: delete acked queue segments: %w", err)
	}
	return nil
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

// waitSynced waits until the records through seq are fsynced.
func (q *Queue) waitSynced(ctx context.Context, seq uint64) error {
	for {
		q.mu.Lock()
		synced, failed, ch := q.synced, q.failed, q.syncedCh
		q.mu.Unlock()
		switch {
		case synced >= seq:
			return nil
		case failed != nil:
			return failed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runSyncer fsyncs what Append wrote and writes the state file for acks;
// after stop, it does both a last time, marking the shutdown clean.
func (q *Queue) runSyncer() {
	defer close(q.syncerDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := q.syncPass(false)
		if wait == 0 {
			select {
			case <-q.stop:
				q.closeErr = q.finalPass()
				return
			default:
				continue
			}
		}
		var tick <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-q.kick:
		case <-tick:
		case <-q.stop:
			q.closeErr = q.finalPass()
			return
		}
	}
}

// syncPass does the fsync and the state write that are due, and returns how
// long until the next one is: 0 for at once, negative for none pending.
func (q *Queue) syncPass(final bool) time.Duration {
	now := time.Now()
	q.mu.Lock()
	stateDue := final || q.stateDirty && now.Sub(q.stateAt) >= queueStateEvery
	dataDue := (q.dataDirty || q.dirDirty) && (final || stateDue || q.cfg.SyncOnAppend || now.Sub(q.dirtyAt) >= q.cfg.SyncEvery)
	active, dir, target := q.segments[len(q.segments)-1], q.dirDirty, q.next-1
	if dataDue {
		q.dataDirty, q.dirDirty = false, false
	}
	if stateDue {
		q.stateDirty = false
	}
	// Once the fsync below is done (or, if none is due, already), the
	// records through st.next-1 are on disk; not so after a failed one.
	st := queueFileState{next: q.next, acked: q.acked}
	ok := q.failed == nil
	q.mu.Unlock()

	if dataDue {
		err := q.syncFile(active.f)
		if err == nil && dir {
			err = q.syncDir()
		}
		q.mu.Lock()
		if err != nil {
			q.fail(fmt.Errorf("dualwrite: sync queue segment %s: %w", active.path, err))
			ok = false
		} else {
			q.synced = max(q.synced, target)
			close(q.syncedCh)
			q.syncedCh = make(chan struct{})
		}
		q.mu.Unlock()
	}
	if stateDue && ok && !final {
		q.stateAt = now
		if err := q.persistState(st, false); err != nil {
			q.logger.Warn("cannot write the queue state; retrying", "dir", q.dir, "error", err)
			q.mu.Lock()
			q.stateDirty = true
			q.mu.Unlock()
		}
	}
	if final {
		return -1
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failed != nil {
		return -1 // nothing can be synced or persisted any more
	}
	wait := time.Duration(-1)
	if q.dataDirty || q.dirDirty {
		if q.cfg.SyncOnAppend {
			return 0
		}
		wait = max(0, q.cfg.SyncEvery-time.Since(q.dirtyAt))
	}
	if q.stateDirty {
		if w := max(0, queueStateEvery-time.Since(q.stateAt)); wait < 0 || w < wait {
			wait = w
		}
	}
	return wait
}

// persistState writes the state file with st's seqs and the lost mark held
// in memory, then deletes the segments it makes unneeded.
func (q *Queue) persistState(st queueFileState, clean bool) error {
	q.stateMu.Lock()
	q.mu.Lock()
	st.lost = q.lost
	q.mu.Unlock()
	st.clean = clean
	err := q.writeStateLocked(st)
	q.stateMu.Unlock()
	if err != nil {
		return err
	}
	return q.deleteAckedSegments(st.acked)
}

// finalPass runs after stop: everything appended is fsynced, and the state
// file says the shutdown was clean (unless an fsync failed, or a test
// simulates a crash).
func (q *Queue) finalPass() error {
	q.mu.Lock()
	crashed := q.crashed
	q.mu.Unlock()
	if crashed {
		return nil
	}
	q.syncPass(true)
	q.mu.Lock()
	st := queueFileState{next: q.next, acked: q.acked}
	failed := q.failed
	q.mu.Unlock()
	if failed != nil {
		return fmt.Errorf("dualwrite: queue not closed cleanly: %w", failed)
	}
	return q.persistState(st, true)
}

// Peek returns up to max records from the head, oldest first, without
// removing them: at most maxBytes of payload, but at least one record if
// there is any. A max or maxBytes ≤ 0 is no limit. The records' Data are the
// caller's. A record that fails its checks is an error wrapping
// ErrQueueCorrupt, naming the segment and offset.
func (q *Queue) Peek(max int, maxBytes int) ([]Record, error) {
	q.life.RLock()
	defer q.life.RUnlock()
	type span struct {
		s         *queueSegment
		first     uint64
		off, end  int64
		n         int
		dataBytes int
	}
	var spans []span
	count, total := 0, 0
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, ErrQueueClosed
	}
collect:
	for _, s := range q.segments {
		for i, m := range s.recs {
			if max > 0 && count == max || maxBytes > 0 && count > 0 && total+int(m.size) > maxBytes {
				break collect
			}
			if len(spans) == 0 || spans[len(spans)-1].s != s {
				spans = append(spans, span{s: s, first: s.base + uint64(i), off: m.off})
			}
			sp := &spans[len(spans)-1]
			sp.end = m.off + queueRecordHeaderLen + int64(m.size)
			sp.n++
			count++
			total += int(m.size)
		}
	}
	q.mu.Unlock()

	out := make([]Record, 0, count)
	for _, sp := range spans {
		buf := make([]byte, sp.end-sp.off)
		if _, err := sp.s.f.ReadAt(buf, sp.off); err != nil {
			return nil, fmt.Errorf("dualwrite: read queue segment %s at offset %d: %w", sp.s.path, sp.off, err)
		}
		pos := 0
		for i := range sp.n {
			h, data, n, err := decodeQueueRecord(buf[pos:])
			if err == nil && h.seq != sp.first+uint64(i) {
				err = fmt.Errorf("holds seq %d where seq %d belongs", h.seq, sp.first+uint64(i))
			}
			if err != nil {
				return nil, queueCorrupt(sp.s.path, "offset %d: %v", sp.off+int64(pos), err)
			}
			out = append(out, Record{Seq: h.seq, Data: data[:len(data):len(data)]})
			pos += n
		}
	}
	return out, nil
}

// Ready returns a channel that receives (a non-blocking send, capacity 1)
// after every Append that appended records.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Ack removes every record with Seq ≤ seq. Acking below the head does
// nothing; acking past the tail is an error, since those seqs were never
// handed out. The removal is durable within queueStateEvery (100 ms) and at
// Close; a crash before that brings the records back (see "Acks are lazy"
// in queue.go).
func (q *Queue) Ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return ErrQueueClosed
	case seq >= q.next:
		return fmt.Errorf("dualwrite: ack through %d is past the queue's tail %d", seq, q.next-1)
	case seq <= q.acked:
		return nil
	}
	for _, s := range q.segments {
		if len(s.recs) == 0 {
			continue
		}
		if s.base > seq {
			break
		}
		k := min(int(seq-s.base+1), len(s.recs))
		for _, m := range s.recs[:k] {
			q.bytes -= int64(m.size)
		}
		s.recs = s.recs[k:]
		s.base += uint64(k)
	}
	q.removed += seq - q.acked
	q.acked = seq
	if !q.stateDirty {
		q.stateDirty = true
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// MarkLost durably records that the mirrored write of source zxid was
// dropped (the queue was full), so that after a restart the proxy still
// knows the journal diverged and a repair pass is owed. It widens the
// recorded zxid range and counts the write.
func (q *Queue) MarkLost(zxid int64) error {
	return q.updateLost(func(l *LostInfo) *LostInfo {
		if l == nil {
			return &LostInfo{FirstZxid: zxid, LastZxid: zxid, Count: 1, Since: time.Now()}
		}
		n := *l
		n.FirstZxid = min(n.FirstZxid, zxid)
		n.LastZxid = max(n.LastZxid, zxid)
		n.Count++
		return &n
	})
}

// ClearLost durably forgets the lost writes, once a repair pass has made the
// journal whole again. Writes marked lost while the repair ran are forgotten
// too, so the repair must start after the last MarkLost it is meant to cover.
func (q *Queue) ClearLost() error {
	return q.updateLost(func(*LostInfo) *LostInfo { return nil })
}

// updateLost writes the state file with the lost mark fn makes of the current
// one (and the seqs of the last state written), then keeps it in memory.
func (q *Queue) updateLost(fn func(*LostInfo) *LostInfo) error {
	q.stateMu.Lock()
	defer q.stateMu.Unlock()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrQueueClosed
	}
	l := fn(q.lost)
	q.mu.Unlock()
	st := q.persisted
	st.lost = l
	if err := q.writeStateLocked(st); err != nil {
		return err
	}
	q.mu.Lock()
	q.lost = l
	q.mu.Unlock()
	return nil
}

// Lost reports the writes recorded by MarkLost (or an unknown loss to a host
// crash) since the last ClearLost.
func (q *Queue) Lost() (LostInfo, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lost == nil {
		return LostInfo{}, false
	}
	return *q.lost, true
}

// Stats returns the queue's counters.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := QueueStats{
		Records:  int(q.next - 1 - q.acked),
		Bytes:    q.bytes,
		HeadSeq:  q.acked + 1,
		TailSeq:  q.next - 1,
		Appended: q.added,
		Acked:    q.removed,
	}
	for _, s := range q.segments {
		if st.OldestAppended.IsZero() && len(s.recs) > 0 {
			st.OldestAppended = time.Unix(0, s.recs[0].at)
		}
		st.FileBytes += s.size
	}
	return st
}

// Close stops the syncer after a last fsync and state write (marking the
// shutdown clean), and closes the files. Appends that returned are in the
// queue; Appends waiting on SyncOnAppend are answered. It is idempotent;
// calls after it return ErrQueueClosed.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		close(q.stop)
		<-q.syncerDone
		q.closeFiles()
	})
	return q.closeErr
}

// closeFiles closes the segments and releases the lock.
func (q *Queue) closeFiles() {
	q.life.Lock()
	defer q.life.Unlock()
	for _, s := range q.segments {
		if s.f != nil {
			s.f.Close()
		}
	}
	q.segments = nil
	if q.lock != nil {
		_ = syscall.Flock(int(q.lock.Fd()), syscall.LOCK_UN)
		q.lock.Close()
		q.lock = nil
	}
}

// appendQueueRecordUnsealed appends a record with no seq and its CRC over
// the append time and data only; sealQueueRecord finishes it once the seq is
// known.
func appendQueueRecordUnsealed(buf []byte, at int64, data []byte) []byte {
	off := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(data)))
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint64(buf, uint64(at))
	buf = append(buf, data...)
	binary.BigEndian.PutUint32(buf[off+4:], crc32.Update(0, queueCRCTable, buf[off+16:]))
	return buf
}

// sealQueueRecord sets the seq of the unsealed record at the start of v and
// finishes its CRC.
func sealQueueRecord(v []byte, seq uint64) {
	binary.BigEndian.PutUint64(v[8:16], seq)
	binary.BigEndian.PutUint32(v[4:8], crc32.Update(binary.BigEndian.Uint32(v[4:8]), queueCRCTable, v[8:16]))
}

func encodeQueueRecord(seq uint64, at int64, data []byte) []byte {
	v := appendQueueRecordUnsealed(nil, at, data)
	sealQueueRecord(v, seq)
	return v
}

type queueRecordHeader struct {
	dataLen uint32
	crc     uint32
	seq     uint64
	at      int64
}

// decodeQueueRecord decodes and checks the record at the start of b,
// returning its header, its data (a slice of b) and its length in b.
func decodeQueueRecord(b []byte) (h queueRecordHeader, data []byte, n int, err error) {
	if len(b) < queueRecordHeaderLen {
		return h, nil, 0, fmt.Errorf("%d bytes left, shorter than a record header (%d)", len(b), queueRecordHeaderLen)
	}
	h = queueRecordHeader{
		dataLen: binary.BigEndian.Uint32(b[0:4]),
		crc:     binary.BigEndian.Uint32(b[4:8]),
		seq:     binary.BigEndian.Uint64(b[8:16]),
		at:      int64(binary.BigEndian.Uint64(b[16:24])),
	}
	if h.dataLen > queueMaxRecordDataLen {
		return h, nil, 0, fmt.Errorf("record length %d is more than a record holds (%d)", h.dataLen, queueMaxRecordDataLen)
	}
	n = queueRecordHeaderLen + int(h.dataLen)
	if n > len(b) {
		return h, nil, 0, fmt.Errorf("record of %d bytes of data is cut short: %d bytes left", h.dataLen, len(b)-queueRecordHeaderLen)
	}
	crc := crc32.Update(0, queueCRCTable, b[16:n])
	crc = crc32.Update(crc, queueCRCTable, b[8:16])
	if crc != h.crc {
		return h, nil, 0, fmt.Errorf("checksum mismatch (stored %#08x, computed %#08x)", h.crc, crc)
	}
	return h, b[queueRecordHeaderLen:n], n, nil
}

func encodeQueueState(st queueFileState) []byte {
	v := make([]byte, queueStateFixedLen, queueStateMinLen+len(st.bootID))
	v[0] = queueStateVersion
	if st.clean {
		v[1] |= queueStateClean
	}
	if st.strict {
		v[1] |= queueStateStrict
	}
	binary.BigEndian.PutUint64(v[2:10], st.next)
	binary.BigEndian.PutUint64(v[10:18], st.acked)
	if l := st.lost; l != nil {
		v[1] |= queueStateLost
		binary.BigEndian.PutUint64(v[18:26], uint64(l.FirstZxid))
		binary.BigEndian.PutUint64(v[26:34], uint64(l.LastZxid))
		binary.BigEndian.PutUint64(v[34:42], uint64(l.Count))
		binary.BigEndian.PutUint64(v[42:50], uint64(l.Since.UnixNano()))
	}
	v[50] = byte(len(st.bootID))
	v = append(v, st.bootID...)
	return binary.BigEndian.AppendUint32(v, crc32.Checksum(v, queueCRCTable))
}

func decodeQueueState(v []byte) (queueFileState, error) {
	var st queueFileState
	if len(v) < queueStateMinLen {
		return st, fmt.Errorf("%d bytes, shorter than a state (%d)", len(v), queueStateMinLen)
	}
	if v[0] != queueStateVersion {
		return st, fmt.Errorf("unknown state version %d", v[0])
	}
	if n := int(v[50]); n > queueMaxBootIDLen || len(v) != queueStateMinLen+n {
		return st, fmt.Errorf("%d bytes with a boot id of %d bytes, want %d bytes and a boot id of at most %d", len(v), n, queueStateMinLen+n, queueMaxBootIDLen)
	}
	body := v[:len(v)-4]
	if got, want := binary.BigEndian.Uint32(v[len(v)-4:]), crc32.Checksum(body, queueCRCTable); got != want {
		return st, fmt.Errorf("checksum mismatch (stored %#08x, computed %#08x)", got, want)
	}
	flags := v[1]
	if flags&^queueStateFlags != 0 {
		return st, fmt.Errorf("unknown flags %#02x", flags)
	}
	st = queueFileState{
		next:   binary.BigEndian.Uint64(v[2:10]),
		acked:  binary.BigEndian.Uint64(v[10:18]),
		clean:  flags&queueStateClean != 0,
		strict: flags&queueStateStrict != 0,
		bootID: string(v[queueStateFixedLen : len(v)-4]),
	}
	if st.next == 0 || st.acked >= st.next || st.next == math.MaxUint64 {
		return queueFileState{}, fmt.Errorf("next seq %d and acked seq %d are inconsistent", st.next, st.acked)
	}
	l := LostInfo{
		FirstZxid: int64(binary.BigEndian.Uint64(v[18:26])),
		LastZxid:  int64(binary.BigEndian.Uint64(v[26:34])),
		Count:     int64(binary.BigEndian.Uint64(v[34:42])),
	}
	since := int64(binary.BigEndian.Uint64(v[42:50]))
	switch {
	case flags&queueStateLost == 0:
		if !bytes.Equal(v[18:50], make([]byte, 32)) {
			return queueFileState{}, errors.New("lost fields set without the lost flag")
		}
	case l.Count < 0 || l.FirstZxid > l.LastZxid || l.Count == 0 && (l.FirstZxid != 0 || l.LastZxid != 0):
		return queueFileState{}, fmt.Errorf("lost count %d and zxids %#x to %#x are inconsistent", l.Count, l.FirstZxid, l.LastZxid)
	default:
		l.Since = time.Unix(0, since)
		st.lost = &l
	}
	return st, nil
}

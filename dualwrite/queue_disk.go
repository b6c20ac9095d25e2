package dualwrite

// The queue on disk: loading and repairing segments, the state file, the record codec.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

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

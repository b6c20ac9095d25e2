package datadir

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/adler32"
	"io"
	"os"
	"time"
)

// The transaction log file, drawn where it is read (FileTxnLog, Util):
//
//	header  int magic "ZKLG" | int version 2 | long dbid          16 bytes
//	record  long crc | int len | byte txn[len] | byte 0x42 ('B')
//	        crc = Adler32(txn) — the txn bytes only
//	end     crc 0 and len 0 (the zeros ZooKeeper preallocates), or the
//	        file's end at a record boundary
//
// ZooKeeper grows a log in preAllocSize steps of zeros and writes records
// through a buffer, so a reader racing the writer (or a file the server was
// killed while writing) can see a record cut short: a length with too few
// bytes behind it, or no 0x42 after them, followed by nothing but zeros.
// That is a torn record (ErrTorn); anything else that does not add up is
// corruption (a *FileError).

const (
	logMagic      = 0x5A4B4C47 // "ZKLG"
	logVersion    = 2
	logHeaderSize = 16
	logRecordHead = 12 // crc, len
	endOfRecord   = 0x42

	// logReadChunk is how much of a log a reader reads at once.
	logReadChunk = 1 << 20
)

// DefaultMaxRecordBytes bounds a txn, string or buffer length read from a
// file: ZooKeeper's own bound is jute.maxbuffer plus
// zookeeper.jute.maxbuffer.extrasize (about 2 MiB by default); this leaves
// room for servers that raised jute.maxbuffer, and keeps a corrupt length
// from allocating without bound.
const DefaultMaxRecordBytes = 16 << 20

// ErrTorn is matched by the error a LogReader returns for a record cut short
// at the end of the data written so far (see TornError).
var ErrTorn = errors.New("datadir: torn txn record")

// TornError reports a record that is incomplete where the log's data ends:
// the server is still writing it, or died while writing it. The reader stays
// before it; Next reads it once it is complete.
type TornError struct {
	Pos    Position
	Reason string
}

func (e *TornError) Error() string {
	return fmt.Sprintf("datadir: %s: torn txn record (%s)", e.Pos, e.Reason)
}

func (e *TornError) Unwrap() error { return ErrTorn }

// LogReader reads one transaction log file, record by record, with ReadAt:
// it does not hold the file's position, and it reads again what it has not
// consumed, so it can follow a log that is still being written (Next after
// io.EOF or a TornError tries again).
type LogReader struct {
	f      io.ReaderAt
	file   *os.File // f, when the reader opened a file; nil otherwise
	closed bool
	path   string
	off    int64 // offset of the next record
	maxLen int

	buf    []byte // file bytes [bufOff, bufOff+len(buf))
	bufOff int64
}

// OpenLog opens the log at path and checks its header. maxLen bounds a txn's
// length (0: DefaultMaxRecordBytes).
func OpenLog(path string, maxLen int) (*LogReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	r, err := NewLogReader(f, path, maxLen)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.file = f
	return r, nil
}

// NewLogReader reads a log from ra (named path in errors) and checks its
// header.
func NewLogReader(ra io.ReaderAt, path string, maxLen int) (*LogReader, error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxRecordBytes
	}
	r := &LogReader{f: ra, path: path, maxLen: maxLen, off: logHeaderSize}
	var h [logHeaderSize]byte
	if n, err := ra.ReadAt(h[:], 0); n < logHeaderSize {
		if err == nil || err == io.EOF {
			return nil, &FileError{File: path, Offset: int64(n), Reason: fmt.Sprintf("file ends inside the header (%d of 16 bytes)", n)}
		}
		return nil, fmt.Errorf("datadir: %w", err)
	}
	if m := binary.BigEndian.Uint32(h[0:]); m != logMagic {
		return nil, &FileError{File: path, Offset: 0, Reason: fmt.Sprintf("magic %#08x is not a transaction log's (ZKLG)", m)}
	}
	if v := int32(binary.BigEndian.Uint32(h[4:])); v != logVersion {
		return nil, &FileError{File: path, Offset: 4, Reason: fmt.Sprintf("log format version %d, this build reads %d", v, logVersion)}
	}
	return r, nil
}

// Path returns the file's path.
func (r *LogReader) Path() string { return r.path }

// Offset returns the offset of the next record.
func (r *LogReader) Offset() int64 { return r.off }

// Close closes the file OpenLog opened; it is idempotent.
func (r *LogReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.file != nil {
		return r.file.Close()
	}
	return nil
}

// bytesAt returns the file's bytes [off, off+n), or fewer at the file's end.
func (r *LogReader) bytesAt(off int64, n int) ([]byte, error) {
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		s := off - r.bufOff
		return r.buf[s : s+int64(n)], nil
	}
	want := max(n, logReadChunk)
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	got, err := r.f.ReadAt(r.buf, off)
	r.buf, r.bufOff = r.buf[:got], off
	if err != nil && err != io.EOF {
		r.buf = r.buf[:0]
		return nil, &FileError{File: r.path, Offset: off, Reason: "read: " + err.Error(), Err: err}
	}
	return r.buf[:min(got, n)], nil
}

// forget drops the read buffer: bytes past the data (zeros, or nothing) are
// read again next time, as the writer may have written them since.
func (r *LogReader) forget() { r.buf = r.buf[:0] }

func (r *LogReader) torn(reason string) error {
	r.forget()
	return &TornError{Pos: Position{File: r.path, Offset: r.off}, Reason: reason}
}

func (r *LogReader) corrupt(off int64, err error, format string, args ...any) error {
	r.forget()
	return &FileError{File: r.path, Offset: off, Reason: fmt.Sprintf(format, args...), Err: err}
}

// Next returns the next txn. At the end of the data written so far it
// returns io.EOF, for a record cut short a *TornError, and for damage a
// *FileError; in all three cases it stays before the record, so a later call
// sees what was written since.
func (r *LogReader) Next() (*Txn, error) {
	if r.closed {
		return nil, fmt.Errorf("datadir: %s: reader closed", r.path)
	}
	head, err := r.bytesAt(r.off, logRecordHead)
	if err != nil {
		return nil, err
	}
	if len(head) < logRecordHead {
		if allZero(head) {
			r.forget()
			return nil, io.EOF
		}
		return nil, r.torn(fmt.Sprintf("%d of the record header's 12 bytes", len(head)))
	}
	crc := binary.BigEndian.Uint64(head[0:])
	n := int32(binary.BigEndian.Uint32(head[8:]))
	switch {
	case n == 0 && crc == 0:
		r.forget()
		return nil, io.EOF
	case n == 0:
		return nil, r.torn("a checksum with no length yet")
	case n < 0 || int(n) > r.maxLen:
		return nil, r.corrupt(r.off+8, nil, "txn length %d out of range (0..%d)", n, r.maxLen)
	}
	body, err := r.bytesAt(r.off+logRecordHead, int(n)+1)
	if err != nil {
		return nil, err
	}
	if len(body) < int(n)+1 {
		return nil, r.torn(fmt.Sprintf("the file ends %d bytes into a %d-byte txn", len(body), n))
	}
	txnBytes, eor := body[:n], body[n]
	switch {
	case eor == 0:
		return nil, r.torn("no end-of-record byte after the txn")
	case eor != endOfRecord:
		return nil, r.corrupt(r.off+logRecordHead+int64(n), nil, "end-of-record byte %#02x is not 0x42", eor)
	}
	if sum := adler32.Checksum(txnBytes); uint64(sum) != crc {
		return nil, r.corrupt(r.off, ErrChecksum, "txn Adler32 %#x does not match the stored %#x", sum, crc)
	}
	t, err := DecodeTxn(txnBytes, r.maxLen)
	if err != nil {
		return nil, r.corrupt(r.off+logRecordHead, err, "%v", err)
	}
	t.Pos = Position{File: r.path, Offset: r.off}
	r.off += logRecordHead + int64(n) + 1
	return &t, nil
}

// CheckTorn decides, for a record Next reported torn, whether the log really
// ends there: nothing but zeros from the torn record's end-of-record byte to
// the file's end (a torn write, or a write in progress) is a torn tail, and
// CheckTorn returns nil; data after it is damage in the middle of the log,
// reported as a *FileError. A record that the writer completed meanwhile is
// simply read: CheckTorn then returns it.
func (r *LogReader) CheckTorn() (*Txn, error) {
	for attempt := 0; ; attempt++ {
		t, err := r.Next()
		var te *TornError
		if !errors.As(err, &te) {
			return t, err
		}
		nonZero, err := r.firstNonZero(r.off + logRecordHead)
		if err != nil {
			return nil, err
		}
		if nonZero < 0 {
			return nil, nil
		}
		if attempt == 2 {
			return nil, r.corrupt(r.off, nil, "damaged txn record (%s) with data after it at offset %d", te.Reason, nonZero)
		}
		// A writer may be between the two writes; give it a moment.
		time.Sleep(20 * time.Millisecond)
	}
}

// firstNonZero returns the offset of the first non-zero byte at or after off
// that is not part of the torn record's own bytes, or −1.
func (r *LogReader) firstNonZero(from int64) (int64, error) {
	// The torn record's length, if it has one, says where its bytes end;
	// what it holds so far may be non-zero.
	head, err := r.bytesAt(r.off, logRecordHead)
	if err != nil {
		return 0, err
	}
	if len(head) == logRecordHead {
		if n := int32(binary.BigEndian.Uint32(head[8:])); n > 0 && int(n) <= r.maxLen {
			from = r.off + logRecordHead + int64(n)
		}
	}
	buf := make([]byte, 64<<10)
	for off := from; ; {
		got, err := r.f.ReadAt(buf, off)
		for i, c := range buf[:got] {
			if c != 0 {
				return off + int64(i), nil
			}
		}
		off += int64(got)
		if err == io.EOF || got == 0 {
			r.forget()
			return -1, nil
		}
		if err != nil {
			return 0, fmt.Errorf("datadir: %s: %w", r.path, err)
		}
	}
}

// sameFile reports whether fi describes the file OpenLog opened.
func (r *LogReader) sameFile(fi os.FileInfo) bool {
	if r.file == nil {
		return true
	}
	mine, err := r.file.Stat()
	return err == nil && os.SameFile(mine, fi)
}

// Size returns the size of the file OpenLog opened.
func (r *LogReader) Size() (int64, error) {
	if r.file == nil {
		return 0, fmt.Errorf("datadir: %s: not a file", r.path)
	}
	fi, err := r.file.Stat()
	if err != nil {
		return 0, fmt.Errorf("datadir: %w", err)
	}
	return fi.Size(), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

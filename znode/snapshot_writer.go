package znode

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
)

// SnapshotWriterOptions configures a SnapshotWriter.
type SnapshotWriterOptions struct {
	// Compress stores the body as one zstd stream.
	Compress bool
	// CompressionLevel is a zstd level (1–22), mapped to the nearest level the
	// encoder implements; 0 means zstd's default (3).
	CompressionLevel int
}

// snapshotWriterBufferSize is the bufio buffer between the writer and its destination.
const snapshotWriterBufferSize = 256 << 10

// SnapshotWriter streams a snapshot to an io.Writer: the header on creation, a record
// per call, and the end record and footer on Close. It keeps the trailer's counts and
// digest as it goes, so it holds no more than one record in memory.
//
// A SnapshotWriter is not safe for concurrent use. A write error is sticky: every
// later call returns it, and what was written must be discarded. A node rejected by
// validation writes nothing and leaves the writer usable.
type SnapshotWriter struct {
	dst       countingWriter
	bw        *bufio.Writer
	enc       *zstd.Encoder // nil when the body is not compressed
	body      io.Writer     // bw, or enc
	headerLen int64
	scratch   []byte // one record: length, type, payload, CRC
	trailer   SnapshotTrailer
	err       error // sticky write error
	closed    bool
}

// countingWriter counts the bytes that reach the destination.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewSnapshotWriter writes h to w and returns a writer for the body. The caller
// must call Close to finish the file; w itself is not closed.
//
// h.Kind must be SnapshotKindExport or SnapshotKindFSM. A zero h.CreatedAt is set to
// the current time, and CreatedAt is stored in UTC.
func NewSnapshotWriter(w io.Writer, h SnapshotHeader, opts SnapshotWriterOptions) (*SnapshotWriter, error) {
	if h.Kind != SnapshotKindExport && h.Kind != SnapshotKindFSM {
		return nil, fmt.Errorf("znode: snapshot kind %q: want %q or %q", h.Kind, SnapshotKindExport, SnapshotKindFSM)
	}
	if opts.CompressionLevel < 0 || opts.CompressionLevel > 22 {
		return nil, fmt.Errorf("znode: zstd level %d out of range (1..22, or 0 for the default)", opts.CompressionLevel)
	}
	if h.CreatedAt.IsZero() {
		h.CreatedAt = time.Now()
	}
	h.CreatedAt = h.CreatedAt.UTC()
	js, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("znode: encoding snapshot header: %w", err)
	}
	if len(js) > MaxSnapshotHeaderJSON {
		return nil, fmt.Errorf("znode: snapshot header is %d bytes of JSON, limit %d", len(js), MaxSnapshotHeaderJSON)
	}

	sw := &SnapshotWriter{dst: countingWriter{w: w}}
	sw.bw = bufio.NewWriterSize(&sw.dst, snapshotWriterBufferSize)
	var flags uint16
	if opts.Compress {
		flags |= snapshotFlagZstd
	}
	hdr := make([]byte, 0, snapshotHeaderPrefixSize+len(js)+4)
	hdr = append(hdr, snapshotMagic...)
	hdr = snapshotBE.AppendUint16(hdr, SnapshotFormatVersion)
	hdr = snapshotBE.AppendUint16(hdr, flags)
	hdr = snapshotBE.AppendUint32(hdr, uint32(len(js)))
	hdr = append(hdr, js...)
	hdr = snapshotBE.AppendUint32(hdr, crc32.Checksum(hdr, snapshotCRCTable))
	if _, err := sw.bw.Write(hdr); err != nil {
		return nil, fmt.Errorf("znode: writing snapshot header: %w", err)
	}
	sw.headerLen = int64(len(hdr))
	sw.body = sw.bw
	if opts.Compress {
		level := zstd.SpeedDefault
		if opts.CompressionLevel != 0 {
			level = zstd.EncoderLevelFromZstd(opts.CompressionLevel)
		}
		sw.enc, err = zstd.NewWriter(sw.bw, zstd.WithEncoderLevel(level), zstd.WithWindowSize(snapshotZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("znode: starting zstd: %w", err)
		}
		sw.body = sw.enc
	}
	return sw, nil
}

// WriteNode appends a node record. The path must pass ValidatePath; data of any
// size up to the record limit (64 MiB including path and ACLs) is accepted, and nil
// data and a nil ACL list are kept apart from empty ones.
func (w *SnapshotWriter) WriteNode(n *Node) error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := ValidatePath(n.Path); err != nil {
		return err
	}
	if size := nodePayloadSize(n); size > MaxSnapshotRecordPayload {
		return fmt.Errorf("znode: snapshot node %q is %d bytes encoded, limit %d", n.Path, size, MaxSnapshotRecordPayload)
	}
	w.scratch = appendNodePayload(w.beginRecord(), n)
	if err := w.emit(RecordNode); err != nil {
		return err
	}
	w.trailer.NodeCount++
	w.trailer.Digest.Add(n.Digest())
	w.ObserveZxid(n.Stat.Czxid)
	w.ObserveZxid(n.Stat.Mzxid)
	w.ObserveZxid(n.Stat.Pzxid)
	return nil
}

// WriteRecord appends an application record, whose type must be in
// FirstApplicationRecord..LastApplicationRecord. Readers hand the payload back
// verbatim.
func (w *SnapshotWriter) WriteRecord(t RecordType, payload []byte) error {
	if err := w.usable(); err != nil {
		return err
	}
	if !t.IsApplication() {
		return fmt.Errorf("znode: snapshot record type %d is not an application type (%d..%d)", t, FirstApplicationRecord, LastApplicationRecord)
	}
	if len(payload) > MaxSnapshotRecordPayload {
		return fmt.Errorf("znode: snapshot record of %d bytes, limit %d", len(payload), MaxSnapshotRecordPayload)
	}
	w.scratch = append(w.beginRecord(), payload...)
	return w.emit(t)
}

// ObserveZxid raises the trailer's max zxid to z if z is larger; use it for zxids
// that no node carries (a deleted node's, or the journal's applied zxid).
func (w *SnapshotWriter) ObserveZxid(z int64) {
	if z > w.trailer.MaxZxid {
		w.trailer.MaxZxid = z
	}
}

// Close writes the end record and the footer and flushes everything to the
// destination, which it does not close. It returns the trailer as stored in the
// footer. Calling Close again returns the same result.
func (w *SnapshotWriter) Close() (SnapshotTrailer, error) {
	if w.closed {
		if w.err != nil {
			return SnapshotTrailer{}, w.err
		}
		return w.trailer, nil
	}
	w.closed = true
	if w.err != nil {
		w.release()
		return SnapshotTrailer{}, w.err
	}
	end := w.trailer // BodyLength 0: the end record cannot measure the body it ends
	w.scratch = end.appendTo(w.beginRecord())
	if err := w.emit(RecordEnd); err != nil {
		w.release()
		return SnapshotTrailer{}, err
	}
	if w.enc != nil {
		err := w.enc.Close()
		w.enc = nil
		if err != nil {
			return SnapshotTrailer{}, w.fail(err)
		}
	}
	w.trailer.BodyLength = w.dst.n + int64(w.bw.Buffered()) - w.headerLen
	footer := w.trailer.appendTo(w.scratch[:0])
	footer = snapshotBE.AppendUint32(footer, crc32.Checksum(footer, snapshotCRCTable))
	footer = append(footer, snapshotEndMagic...)
	if _, err := w.bw.Write(footer); err != nil {
		return SnapshotTrailer{}, w.fail(err)
	}
	if err := w.bw.Flush(); err != nil {
		return SnapshotTrailer{}, w.fail(err)
	}
	return w.trailer, nil
}

func (w *SnapshotWriter) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrSnapshotWriterClosed
	}
	return nil
}

// beginRecord returns the scratch buffer with room for a record header, for the
// payload to be appended to.
func (w *SnapshotWriter) beginRecord() []byte {
	return append(w.scratch[:0], make([]byte, snapshotRecordHeaderSize)...)
}

// emit frames the payload that follows the header room in w.scratch as a record of
// type t and writes the record to the body in one call.
func (w *SnapshotWriter) emit(t RecordType) error {
	snapshotBE.PutUint32(w.scratch[0:], uint32(len(w.scratch)-snapshotRecordHeaderSize))
	w.scratch[4] = byte(t)
	w.scratch = snapshotBE.AppendUint32(w.scratch, crc32.Checksum(w.scratch[4:], snapshotCRCTable))
	_, err := w.body.Write(w.scratch)
	if cap(w.scratch) > 4<<20 {
		w.scratch = nil // do not pin one huge node's buffer for the rest of the stream
	}
	if err != nil {
		return w.fail(err)
	}
	if t != RecordEnd {
		w.trailer.RecordCount++
	}
	return nil
}

func (w *SnapshotWriter) fail(err error) error {
	w.err = fmt.Errorf("znode: writing snapshot: %w", err)
	w.release()
	return w.err
}

// release stops the encoder without finishing the stream.
func (w *SnapshotWriter) release() {
	if w.enc != nil {
		w.enc.Reset(io.Discard)
		_ = w.enc.Close()
		w.enc = nil
	}
}

// SnapshotFile writes a snapshot to a file atomically: the records go to a temporary
// file in the same directory, and Commit renames it into place only once it is
// complete and on disk. A crash or an Abort leaves nothing under the final name.
//
// The file is created with mode 0600, as it holds ACL credentials and data.
type SnapshotFile struct {
	path string
	tmp  *os.File
	w    *SnapshotWriter
	done bool // committed or aborted
}

// CreateSnapshotFile starts a snapshot that Commit will publish at path, replacing
// any file there. Callers should defer Abort, which is a no-op after Commit.
func CreateSnapshotFile(path string, h SnapshotHeader, opts SnapshotWriterOptions) (*SnapshotFile, error) {
	if err := CheckSnapshotPath(path); err != nil {
		return nil, fmt.Errorf("znode: creating snapshot: %w", err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("znode: creating snapshot: %w", err)
	}
	w, err := NewSnapshotWriter(tmp, h, opts)
	if err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return nil, err
	}
	return &SnapshotFile{path: path, tmp: tmp, w: w}, nil
}

// CheckSnapshotPath reports whether a snapshot file can be written at path:
// not a directory, in an existing directory where a temporary file can be
// created (and is removed again). Callers check before a long export rather
// than fail on the final rename.
func CheckSnapshotPath(path string) error {
	dir, base := filepath.Split(path)
	if base == "" {
		return fmt.Errorf("%q names a directory", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory; give a file name", path)
	}
	if dir == "" {
		dir = "."
	}
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("directory %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.check")
	if err != nil {
		return fmt.Errorf("cannot write in %s: %w", dir, err)
	}
	_ = tmp.Close()
	return os.Remove(tmp.Name())
}

// WriteNode appends a node record; see SnapshotWriter.WriteNode.
func (f *SnapshotFile) WriteNode(n *Node) error { return f.w.WriteNode(n) }

// WriteRecord appends an application record; see SnapshotWriter.WriteRecord.
func (f *SnapshotFile) WriteRecord(t RecordType, payload []byte) error {
	return f.w.WriteRecord(t, payload)
}

// ObserveZxid raises the trailer's max zxid; see SnapshotWriter.ObserveZxid.
func (f *SnapshotFile) ObserveZxid(z int64) { f.w.ObserveZxid(z) }

// Commit finishes the snapshot and publishes it: it closes the writer, fsyncs and
// closes the temporary file, renames it to the final path and fsyncs the directory.
// On failure before the rename the temporary file is removed. If only the directory
// fsync fails, the complete file is in place but its name may not survive a crash.
func (f *SnapshotFile) Commit() (SnapshotTrailer, error) {
	if f.done {
		return SnapshotTrailer{}, ErrSnapshotWriterClosed
	}
	f.done = true
	tr, err := f.w.Close()
	if err == nil {
		err = f.tmp.Sync()
	}
	if cerr := f.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.tmp.Name(), f.path)
	}
	if err != nil {
		_ = os.Remove(f.tmp.Name())
		return SnapshotTrailer{}, fmt.Errorf("znode: committing snapshot %s: %w", f.path, err)
	}
	if err := syncSnapshotDir(filepath.Dir(f.path)); err != nil {
		return SnapshotTrailer{}, fmt.Errorf("znode: committing snapshot %s: %w", f.path, err)
	}
	return tr, nil
}

// Abort discards the snapshot and removes the temporary file. It may be called any
// number of times, and does nothing after Commit.
func (f *SnapshotFile) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	f.w.closed = true
	f.w.release()
	cerr := f.tmp.Close()
	if err := os.Remove(f.tmp.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("znode: aborting snapshot %s: %w", f.path, err)
	}
	if cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		return fmt.Errorf("znode: aborting snapshot %s: %w", f.path, cerr)
	}
	return nil
}

// syncSnapshotDir makes a rename in dir durable.
func syncSnapshotDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

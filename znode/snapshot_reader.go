package znode

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// SnapshotReader streams the records of a snapshot and verifies it as it goes: the
// header CRC on creation, each record's CRC on Next, and, at the end, the end record
// and footer against the counts and digest recomputed from the records read. Next
// returns io.EOF only once all of that has passed, so a truncated or damaged file
// always ends in an error (matching ErrCorruptSnapshot), never in a shorter tree.
//
// A SnapshotReader holds one record in memory. It is not safe for concurrent use.
type SnapshotReader struct {
	src        *holdbackReader
	file       *os.File // closed by Close when the reader opened it
	path       string   // for errors, when known
	header     SnapshotHeader
	headerLen  int64
	compressed bool          // the body is zstd
	dec        *zstd.Decoder // the body's decompressor, until released
	body       io.Reader     // src, or dec
	bodyOff    int64         // bytes of the (decompressed) body consumed

	rec     [snapshotRecordHeaderSize + snapshotRecordCRCSize]byte
	payload []byte
	intern  map[string]string

	nodes, records uint64
	digest         Digest
	maxZxid        int64
	trailer        SnapshotTrailer
	err            error // sticky: io.EOF once verified, or the failure
}

// NewSnapshotReader reads and checks the header of the snapshot in r. The records
// follow with Next. r is read to its end, which must be the end of the snapshot.
// Close releases the decompressor; r itself is not closed.
func NewSnapshotReader(r io.Reader) (*SnapshotReader, error) {
	sr := &SnapshotReader{src: newHoldbackReader(r)}
	if err := sr.start(); err != nil {
		return nil, err
	}
	return sr, nil
}

// OpenSnapshotFile opens the snapshot at path and checks its header. Close closes
// the file.
func OpenSnapshotFile(path string) (*SnapshotReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("znode: opening snapshot: %w", err)
	}
	sr := &SnapshotReader{src: newHoldbackReader(f), file: f, path: path}
	if err := sr.start(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return sr, nil
}

func (r *SnapshotReader) start() error {
	h, flags, n, err := readSnapshotHeader(r.src, r.path)
	if err != nil {
		return err
	}
	r.header, r.headerLen = h, n
	r.src.hold = snapshotFooterSize
	r.body = r.src
	if flags&snapshotFlagZstd != 0 {
		r.compressed = true
		r.dec, err = zstd.NewReader(r.src,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(snapshotZstdWindow))
		if err != nil {
			return r.bodyError(0, "compressed body", err)
		}
		r.body = r.dec
	}
	r.intern = make(map[string]string)
	r.payload = make([]byte, 0, 4<<10) // never nil, so that an empty payload is not nil either
	return nil
}

// Header returns the snapshot's header.
func (r *SnapshotReader) Header() SnapshotHeader { return r.header }

// Compressed reports whether the body is zstd-compressed.
func (r *SnapshotReader) Compressed() bool { return r.compressed }

// Trailer returns the verified trailer once Next has returned io.EOF, and the zero
// value before.
func (r *SnapshotReader) Trailer() SnapshotTrailer {
	if r.err == io.EOF {
		return r.trailer
	}
	return SnapshotTrailer{}
}

// Next returns the next node or application record. It returns io.EOF after the
// end record once the whole file has been verified, and after that, or after any
// other error, it returns the same error again.
func (r *SnapshotReader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
		r.release()
	}
	return rec, err
}

// NextNode returns the next node, skipping application records, or io.EOF as Next
// does.
func (r *SnapshotReader) NextNode() (*Node, error) {
	for {
		rec, err := r.Next()
		if err != nil {
			return nil, err
		}
		if rec.Node != nil {
			return rec.Node, nil
		}
	}
}

// Close releases the decompressor and, for OpenSnapshotFile, closes the file. It is
// idempotent.
func (r *SnapshotReader) Close() error {
	r.release()
	if r.err == nil {
		r.err = ErrSnapshotReaderClosed
	}
	if r.file != nil {
		err := r.file.Close()
		r.file = nil
		return err
	}
	return nil
}

func (r *SnapshotReader) release() {
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
}

func (r *SnapshotReader) next() (Record, error) {
	start := r.bodyOff
	hdr := r.rec[:snapshotRecordHeaderSize]
	if err := r.readBody(hdr, start); err != nil {
		return Record{}, err
	}
	size := snapshotBE.Uint32(hdr)
	t := RecordType(hdr[4])
	if size > MaxSnapshotRecordPayload {
		return Record{}, r.corrupt(start, fmt.Sprintf("record length %d exceeds the %d-byte limit", size, MaxSnapshotRecordPayload))
	}
	payload, err := r.readPayload(int(size), start)
	if err != nil {
		return Record{}, err
	}
	crc := r.rec[snapshotRecordHeaderSize:]
	if err := r.readBody(crc, start); err != nil {
		return Record{}, err
	}
	sum := crc32.Update(crc32.Update(0, snapshotCRCTable, hdr[4:5]), snapshotCRCTable, payload)
	if sum != snapshotBE.Uint32(crc) {
		return Record{}, r.corrupt(start, "record CRC mismatch")
	}

	switch {
	case t == RecordNode:
		n, reason := decodeNodePayload(payload, r.intern)
		if n == nil {
			return Record{}, r.corrupt(start, "node record: "+reason)
		}
		if err := ValidatePath(n.Path); err != nil {
			return Record{}, r.bodyError(start, "node record", err)
		}
		r.nodes++
		r.records++
		r.digest.Add(n.Digest())
		r.maxZxid = max(r.maxZxid, n.Stat.Czxid, n.Stat.Mzxid, n.Stat.Pzxid)
		return Record{Type: t, Node: n}, nil
	case t.IsApplication():
		r.records++
		return Record{Type: t, Payload: payload}, nil
	case t == RecordEnd:
		if len(payload) != snapshotTrailerSize {
			return Record{}, r.corrupt(start, fmt.Sprintf("end record of %d bytes, want %d", len(payload), snapshotTrailerSize))
		}
		return Record{}, r.finish(start, decodeSnapshotTrailer(payload))
	}
	return Record{}, r.corrupt(start, fmt.Sprintf("unknown record type %d", uint8(t)))
}

// finish checks the end record found at body offset start, that the body ends
// there, and the footer; it returns io.EOF when all is well.
func (r *SnapshotReader) finish(start int64, end SnapshotTrailer) error {
	switch {
	case end.BodyLength != 0:
		return r.corrupt(start, fmt.Sprintf("end record body length %d, want 0", end.BodyLength))
	case end.NodeCount != r.nodes:
		return r.corrupt(start, fmt.Sprintf("end record counts %d nodes, body has %d", end.NodeCount, r.nodes))
	case end.RecordCount != r.records:
		return r.corrupt(start, fmt.Sprintf("end record counts %d records, body has %d", end.RecordCount, r.records))
	case end.Digest != r.digest:
		return r.corrupt(start, fmt.Sprintf("end record digest %s, nodes sum to %s", end.Digest, r.digest))
	case end.MaxZxid < r.maxZxid:
		return r.corrupt(start, fmt.Sprintf("end record max zxid %#x, a node has %#x", end.MaxZxid, r.maxZxid))
	}

	// The body must end with the end record: nothing more may decompress, and the
	// decompressor must have used all of the compressed body.
	var one [1]byte
	if n, err := r.body.Read(one[:]); n > 0 {
		return r.corrupt(r.bodyOff, "data after the end record (or after the footer)")
	} else if err != io.EOF {
		if err == nil {
			err = io.ErrNoProgress
		}
		return r.bodyError(r.bodyOff, "after the end record", err)
	}
	if r.compressed {
		if n, _ := r.src.Read(one[:]); n > 0 {
			return r.corrupt(r.src.n-1, "compressed data after the end of the zstd stream")
		}
	}
	if r.src.err != nil {
		return fmt.Errorf("znode: reading snapshot at offset %d: %w", r.src.n, r.src.err)
	}

	footerOff := r.src.n
	footer := r.src.tail()
	if len(footer) < snapshotFooterSize {
		return &SnapshotError{Path: r.path, Offset: footerOff + int64(len(footer)), Truncated: true, Reason: "file ends in the footer"}
	}
	tr, err := checkSnapshotFooter(footer, footerOff, r.path)
	if err != nil {
		return err
	}
	if bodyLen := footerOff - r.headerLen; tr.BodyLength != bodyLen {
		return r.fileCorrupt(footerOff+32, fmt.Sprintf("footer body length %d, body is %d bytes", tr.BodyLength, bodyLen))
	}
	if got := (SnapshotTrailer{NodeCount: tr.NodeCount, RecordCount: tr.RecordCount, Digest: tr.Digest, MaxZxid: tr.MaxZxid}); got != end {
		return r.fileCorrupt(footerOff, fmt.Sprintf("footer %+v does not match end record %+v", got, end))
	}
	r.trailer = tr
	return io.EOF
}

// checkSnapshotFooter checks the footer's magic and CRC and decodes its trailer;
// off is the footer's offset in the file.
func checkSnapshotFooter(footer []byte, off int64, path string) (SnapshotTrailer, error) {
	if string(footer[snapshotTrailerSize+4:]) != snapshotEndMagic {
		return SnapshotTrailer{}, &SnapshotError{Path: path, Offset: off + snapshotTrailerSize + 4,
			Reason: "no end magic (unfinished file, or data after the footer)"}
	}
	if crc32.Checksum(footer[:snapshotTrailerSize], snapshotCRCTable) != snapshotBE.Uint32(footer[snapshotTrailerSize:]) {
		return SnapshotTrailer{}, &SnapshotError{Path: path, Offset: off + snapshotTrailerSize, Reason: "footer CRC mismatch"}
	}
	return decodeSnapshotTrailer(footer), nil
}

// readBody fills p with the next bytes of the record that starts at body offset
// start. A body that ends early is reported at the record's start.
func (r *SnapshotReader) readBody(p []byte, start int64) error {
	n, err := io.ReadFull(r.body, p)
	r.bodyOff += int64(n)
	switch {
	case err == nil:
		return nil
	case r.src.err == nil && (err == io.EOF || err == io.ErrUnexpectedEOF):
		reason := "file ends inside a record"
		if r.bodyOff == start {
			reason = "file ends before the end record"
		}
		return r.truncated(start, fmt.Sprintf("%s (file length %d)", reason, r.src.n+int64(len(r.src.tail()))))
	}
	return r.bodyError(r.bodyOff, "decompressing", err)
}

// readPayload reads a record payload of n bytes into the reused buffer. A buffer
// too small grows as bytes arrive, so a corrupt length on a short file allocates
// in proportion to the file, not to the length.
func (r *SnapshotReader) readPayload(n int, start int64) ([]byte, error) {
	if n <= cap(r.payload) {
		r.payload = r.payload[:n]
		return r.payload, r.readBody(r.payload, start)
	}
	const chunk = 64 << 10
	buf := r.payload[:0]
	for len(buf) < n {
		step := min(n-len(buf), max(len(buf), chunk))
		buf = append(buf, make([]byte, step)...)
		if err := r.readBody(buf[len(buf)-step:], start); err != nil {
			return nil, err
		}
	}
	r.payload = buf
	return buf, nil
}

// bodyError turns a failure to read or decode the body at body offset off into an
// error: truncation and zstd errors are corruption, the source's read errors are
// passed on as they are, with the offset.
func (r *SnapshotReader) bodyError(off int64, what string, err error) error {
	switch {
	case r.src.err != nil:
		return fmt.Errorf("znode: reading snapshot at offset %d: %w", r.src.n, r.src.err)
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return r.truncated(off, what+": file ends")
	case errors.Is(err, ErrInvalidPath):
		return &SnapshotError{Path: r.path, Offset: r.fileOff(off), Compressed: r.compressed, Reason: what, Err: err}
	case r.compressed:
		return &SnapshotError{Path: r.path, Offset: off, Compressed: true, Reason: what + ": decompressing", Err: err}
	}
	return fmt.Errorf("znode: reading snapshot at offset %d: %w", r.fileOff(off), err)
}

// fileOff converts a body offset to the offset errors report: a file offset for an
// uncompressed body, the body offset itself for a compressed one.
func (r *SnapshotReader) fileOff(off int64) int64 {
	if r.compressed {
		return off
	}
	return r.headerLen + off
}

func (r *SnapshotReader) corrupt(bodyOff int64, reason string) error {
	return &SnapshotError{Path: r.path, Offset: r.fileOff(bodyOff), Compressed: r.compressed, Reason: reason}
}

func (r *SnapshotReader) truncated(bodyOff int64, reason string) error {
	return &SnapshotError{Path: r.path, Offset: r.fileOff(bodyOff), Compressed: r.compressed, Truncated: true, Reason: reason}
}

func (r *SnapshotReader) fileCorrupt(off int64, reason string) error {
	return &SnapshotError{Path: r.path, Offset: off, Reason: reason}
}

// readSnapshotHeader reads and checks the header from the start of a snapshot and
// returns it with its flags and its length in bytes.
func readSnapshotHeader(r io.Reader, path string) (SnapshotHeader, uint16, int64, error) {
	var h SnapshotHeader
	var off int64
	read := func(p []byte, what string) error {
		n, err := io.ReadFull(r, p)
		off += int64(n)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return &SnapshotError{Path: path, Offset: off, Truncated: true, Reason: "file ends in the header " + what}
		case err != nil:
			return fmt.Errorf("znode: reading snapshot header at offset %d: %w", off, err)
		}
		return nil
	}
	corrupt := func(at int64, reason string, err error) error {
		return &SnapshotError{Path: path, Offset: at, Reason: reason, Err: err}
	}

	var prefix [snapshotHeaderPrefixSize]byte
	if err := read(prefix[:len(snapshotMagic)], "magic"); err != nil {
		return h, 0, 0, err
	}
	if string(prefix[:len(snapshotMagic)]) != snapshotMagic {
		return h, 0, 0, corrupt(0, "not a zk2raft snapshot (bad magic)", nil)
	}
	if err := read(prefix[len(snapshotMagic):], "prefix"); err != nil {
		return h, 0, 0, err
	}
	jsonLen := snapshotBE.Uint32(prefix[12:])
	if jsonLen > MaxSnapshotHeaderJSON {
		return h, 0, 0, corrupt(12, fmt.Sprintf("header JSON length %d exceeds the %d-byte limit", jsonLen, MaxSnapshotHeaderJSON), nil)
	}
	// Read the JSON in steps so that a corrupt length on a short file does not
	// allocate the whole limit.
	js := make([]byte, 0, min(int(jsonLen), 64<<10))
	for len(js) < int(jsonLen) {
		step := min(int(jsonLen)-len(js), max(len(js), 64<<10))
		js = append(js, make([]byte, step)...)
		if err := read(js[len(js)-step:], "JSON"); err != nil {
			return h, 0, 0, err
		}
	}
	var crc [4]byte
	if err := read(crc[:], "CRC"); err != nil {
		return h, 0, 0, err
	}
	sum := crc32.Update(crc32.Checksum(prefix[:], snapshotCRCTable), snapshotCRCTable, js)
	if sum != snapshotBE.Uint32(crc[:]) {
		return h, 0, 0, corrupt(off-4, "header CRC mismatch", nil)
	}
	// The prefix is the same in every version, so a CRC-checked version number can
	// be trusted to mean a newer format rather than damage.
	if v := snapshotBE.Uint16(prefix[8:]); v != SnapshotFormatVersion {
		return h, 0, 0, fmt.Errorf("%w: format version %d, this build reads version %d", ErrUnsupportedSnapshot, v, SnapshotFormatVersion)
	}
	flags := snapshotBE.Uint16(prefix[10:])
	if flags&^snapshotKnownFlags != 0 {
		return h, 0, 0, fmt.Errorf("%w: unknown flags %#04x", ErrUnsupportedSnapshot, flags&^snapshotKnownFlags)
	}
	if err := json.Unmarshal(js, &h); err != nil {
		at := int64(snapshotHeaderPrefixSize)
		if se := (*json.SyntaxError)(nil); errors.As(err, &se) {
			at += se.Offset
		}
		return SnapshotHeader{}, 0, 0, corrupt(at, "header JSON", err)
	}
	return h, flags, off, nil
}

// ReadSnapshotTrailer reads the header and the footer of the snapshot at path
// without reading the body, checking both CRCs and that the header, body length and
// footer add up to the file's size. The trailer is what the writer recorded; only
// reading the whole file with a SnapshotReader verifies it against the records.
func ReadSnapshotTrailer(path string) (SnapshotHeader, SnapshotTrailer, error) {
	f, err := os.Open(path)
	if err != nil {
		return SnapshotHeader{}, SnapshotTrailer{}, fmt.Errorf("znode: opening snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return SnapshotHeader{}, SnapshotTrailer{}, fmt.Errorf("znode: opening snapshot: %w", err)
	}
	size := fi.Size()
	h, _, headerLen, err := readSnapshotHeader(io.NewSectionReader(f, 0, size), path)
	if err != nil {
		return SnapshotHeader{}, SnapshotTrailer{}, err
	}
	if size < headerLen+snapshotFooterSize {
		return SnapshotHeader{}, SnapshotTrailer{}, &SnapshotError{Path: path, Offset: size, Truncated: true,
			Reason: fmt.Sprintf("file of %d bytes ends before the footer", size)}
	}
	footer := make([]byte, snapshotFooterSize)
	footerOff := size - snapshotFooterSize
	if _, err := f.ReadAt(footer, footerOff); err != nil {
		return SnapshotHeader{}, SnapshotTrailer{}, fmt.Errorf("znode: reading snapshot footer of %s: %w", path, err)
	}
	tr, err := checkSnapshotFooter(footer, footerOff, path)
	if err != nil {
		return SnapshotHeader{}, SnapshotTrailer{}, err
	}
	if bodyLen := footerOff - headerLen; tr.BodyLength != bodyLen {
		return SnapshotHeader{}, SnapshotTrailer{}, &SnapshotError{Path: path, Offset: footerOff + 32,
			Reason: fmt.Sprintf("footer body length %d, the file has %d bytes between header and footer", tr.BodyLength, bodyLen)}
	}
	return h, tr, nil
}

// holdbackReader passes its source through except, once hold is set, for the last
// hold bytes, which it keeps back for tail. Reading the body through it with hold =
// snapshotFooterSize makes the body end where the footer starts without knowing the
// body's length in advance, which is what lets a zstd decoder read ahead freely.
// The header is read with hold = 0, so that a file too short for a footer still
// reports where its header ends.
type holdbackReader struct {
	r          io.Reader
	buf        []byte
	start, end int
	hold       int
	n          int64 // bytes passed through
	eof        bool  // the source is exhausted
	err        error // the source's error other than io.EOF
}

// The holdback buffer starts small, for small snapshots and for fuzzing, and
// doubles each time the source fills it, up to holdbackMaxBuffer.
const (
	holdbackMinBuffer = 4 << 10
	holdbackMaxBuffer = 256 << 10
)

func newHoldbackReader(r io.Reader) *holdbackReader {
	return &holdbackReader{r: r, buf: make([]byte, holdbackMinBuffer)}
}

func (h *holdbackReader) Read(p []byte) (int, error) {
	for empty := 0; ; {
		if avail := h.end - h.start - h.hold; avail > 0 {
			n := copy(p, h.buf[h.start:h.start+avail])
			h.start += n
			h.n += int64(n)
			return n, nil
		}
		switch {
		case h.err != nil:
			return 0, h.err
		case h.eof:
			return 0, io.EOF
		}
		if h.end == len(h.buf) && len(h.buf) < holdbackMaxBuffer {
			h.buf = append(make([]byte, 0, 2*len(h.buf)), h.buf[h.start:h.end]...)[:2*len(h.buf)]
			h.end -= h.start
			h.start = 0
		} else if h.start > 0 {
			h.end = copy(h.buf, h.buf[h.start:h.end])
			h.start = 0
		}
		m, err := h.r.Read(h.buf[h.end:])
		h.end += m
		switch {
		case err == io.EOF:
			h.eof = true
		case err != nil:
			h.err = err
		case m == 0:
			if empty++; empty >= 100 {
				h.err = io.ErrNoProgress
			}
		}
	}
}

// tail returns the bytes held back, once the source is exhausted.
func (h *holdbackReader) tail() []byte { return h.buf[h.start:h.end] }

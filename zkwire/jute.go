package zkwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/zk2raft/zk2raft/znode"
)

// Sentinel errors. Decoding failures are reported as a *DecodeError that
// unwraps to one of the first four.
var (
	// ErrTruncated is returned when a record needs more bytes than the payload holds.
	ErrTruncated = errors.New("zkwire: truncated record")
	// ErrBadLength is returned when a string, buffer or vector length is below −1,
	// above the decoder's limit, or longer than the bytes that remain.
	ErrBadLength = errors.New("zkwire: length out of range")
	// ErrMalformed is returned when bytes are not a canonical encoding of the record:
	// a boolean other than 0 or 1, a null where ZooKeeper never writes one, an
	// unexpected multi header or result type.
	ErrMalformed = errors.New("zkwire: malformed record")
	// ErrTrailingBytes is returned when a payload continues after its record.
	ErrTrailingBytes = errors.New("zkwire: trailing bytes after record")

	// ErrUnknownOpCode is returned when an opcode has no request or response record.
	ErrUnknownOpCode = errors.New("zkwire: unknown opcode")
	// ErrRecordType is returned by the encoders when a record is not the one the
	// opcode carries (a *DeleteRequest for OpCreate, a nil body for OpGetData).
	ErrRecordType = errors.New("zkwire: record does not match opcode")
	// ErrFrameLength is returned when a frame's length prefix is negative (as an
	// int32) or above the reader's limit.
	ErrFrameLength = errors.New("zkwire: frame length out of range")
)

// DecodeError says where and why bytes failed to decode. It unwraps to
// ErrTruncated, ErrBadLength, ErrMalformed or ErrTrailingBytes.
type DecodeError struct {
	Record string // what was being decoded, e.g. "create request"; may be empty
	Offset int    // byte offset in the payload where decoding failed
	Detail string // what was wrong
	Err    error  // the sentinel
}

func (e *DecodeError) Error() string {
	what := "zkwire: decode"
	if e.Record != "" {
		what += " " + e.Record
	}
	return fmt.Sprintf("%s: %s at offset %d", what, e.Detail, e.Offset)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// withRecord names the record in a decode error that does not name one yet.
func withRecord(err error, record string) error {
	var de *DecodeError
	if errors.As(err, &de) && de.Record == "" {
		c := *de
		c.Record = record
		return &c
	}
	return err
}

// Decoder reads jute values from a byte slice, front to back, without copying
// the slice. The first failure sticks: later reads return zero values and Err
// reports the first problem, so a record decoder can read every field and check
// once.
//
// Every length is checked before anything is allocated from it: strings and
// buffers must fit in the remaining bytes, vectors must have room for their
// smallest possible elements, and all must be at most MaxLen when MaxLen > 0.
type Decoder struct {
	b   []byte
	off int
	err error

	// MaxLen bounds every string, buffer and vector length; 0 means only the
	// remaining bytes bound them. ZooKeeper's own readers use
	// jute.maxbuffer + zookeeper.jute.maxbuffer.extrasize.
	MaxLen int
}

// NewDecoder returns a decoder reading b from its start.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Reset makes d read b from its start and clears any error; MaxLen is kept.
func (d *Decoder) Reset(b []byte) { d.b, d.off, d.err = b, 0, nil }

// Err returns the first failure, or nil.
func (d *Decoder) Err() error { return d.err }

// Offset is the number of bytes consumed so far.
func (d *Decoder) Offset() int { return d.off }

// Remaining is the number of bytes not yet consumed.
func (d *Decoder) Remaining() int { return len(d.b) - d.off }

// Finish reports d's error or, if everything decoded, ErrTrailingBytes when
// bytes remain.
func (d *Decoder) Finish() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail(ErrTrailingBytes, "%d bytes after the record", len(d.b)-d.off)
	}
	return d.err
}

// Fail records a failure at the current offset unless one is already recorded.
// Record decoders outside the package use it for their own consistency checks.
func (d *Decoder) Fail(sentinel error, format string, args ...any) {
	d.fail(sentinel, format, args...)
}

func (d *Decoder) fail(sentinel error, format string, args ...any) {
	if d.err == nil {
		d.err = &DecodeError{Offset: d.off, Detail: fmt.Sprintf(format, args...), Err: sentinel}
	}
}

// take returns the next n bytes, aliased.
func (d *Decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.fail(ErrTruncated, "%s needs %d bytes, %d remain", what, n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

// Int32 reads a jute int.
func (d *Decoder) Int32() int32 {
	p := d.take(4, "int")
	if p == nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(p))
}

// Int64 reads a jute long.
func (d *Decoder) Int64() int64 {
	p := d.take(8, "long")
	if p == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(p))
}

// Bool reads a jute boolean. Only 0 and 1 are accepted, so that every decoded
// record encodes back to the same bytes.
func (d *Decoder) Bool() bool {
	p := d.take(1, "boolean")
	if p == nil {
		return false
	}
	switch p[0] {
	case 0:
		return false
	case 1:
		return true
	}
	d.off--
	d.fail(ErrMalformed, "boolean byte 0x%02x is not 0 or 1", p[0])
	return false
}

// length reads a length prefix; elem is the smallest encoded size of one unit
// (1 for strings and buffers, more for vectors of records). It returns -1 for
// null.
func (d *Decoder) length(what string, elem int) int {
	start := d.off
	n := d.Int32()
	if d.err != nil {
		return 0
	}
	switch {
	case n == -1:
		return -1
	case n < -1:
		d.off = start
		d.fail(ErrBadLength, "%s length %d", what, n)
		return 0
	case d.MaxLen > 0 && int(n) > d.MaxLen:
		d.off = start
		d.fail(ErrBadLength, "%s length %d exceeds the limit %d", what, n, d.MaxLen)
		return 0
	case int64(n)*int64(elem) > int64(len(d.b)-d.off):
		d.off = start
		d.fail(ErrBadLength, "%s length %d exceeds the %d remaining bytes", what, n, len(d.b)-d.off-4)
		return 0
	}
	return int(n)
}

// Ustring reads a jute ustring that ZooKeeper never sends as null (paths,
// names, schemes); a null is ErrMalformed.
func (d *Decoder) Ustring() string {
	s, ok := d.NullableUstring()
	if !ok && d.err == nil {
		d.off -= 4
		d.fail(ErrMalformed, "null string")
	}
	return s
}

// NullableUstring reads a jute ustring; ok is false for null (length −1).
// The bytes are not checked for valid UTF-8: ZooKeeper's Java peers decode
// them leniently, and keeping them as they are keeps re-encoding exact.
func (d *Decoder) NullableUstring() (s string, ok bool) {
	n := d.length("string", 1)
	if d.err != nil || n < 0 {
		return "", false
	}
	return string(d.take(n, "string")), true
}

// Buffer reads a jute buffer into a new slice: nil for null (length −1), a
// non-nil empty slice for length 0.
func (d *Decoder) Buffer() []byte {
	p := d.BufferAlias()
	if p == nil {
		return nil
	}
	return append(make([]byte, 0, len(p)), p...)
}

// BufferAlias is Buffer without the copy: the result aliases the decoder's
// input and is only valid as long as that is.
func (d *Decoder) BufferAlias() []byte {
	n := d.length("buffer", 1)
	if d.err != nil || n < 0 {
		return nil
	}
	return d.take(n, "buffer")
}

// VectorLen reads a vector's element count; minElem is the smallest encoded
// size of one element, so that a count the remaining bytes cannot hold is
// rejected before anything is allocated. It returns −1 for a null vector.
func (d *Decoder) VectorLen(minElem int) int {
	return d.length("vector", max(minElem, 1))
}

// vector reads a non-null vector's count; ZooKeeper never sends null vectors.
func (d *Decoder) vector(minElem int) int {
	n := d.VectorLen(minElem)
	if n < 0 && d.err == nil {
		d.off -= 4
		d.fail(ErrMalformed, "null vector")
		return 0
	}
	return n
}

// Ustrings reads a vector<ustring>. An empty vector decodes to nil.
func (d *Decoder) Ustrings() []string {
	n := d.vector(4)
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		s := d.Ustring()
		if d.err != nil {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// ACL reads one ACL record {int perms; Id{ustring scheme; ustring id}}.
//
// The id may be a null string: kazoo sends make_acl("auth", "") that way, and
// ZooKeeper accepts it (fixupACL replaces "auth" entries and ignores the id).
// It decodes as "".
func (d *Decoder) ACL() znode.ACL {
	perms, scheme := znode.Perm(d.Int32()), d.Ustring()
	id, _ := d.NullableUstring()
	return znode.ACL{Perms: perms, ID: znode.ID{Scheme: scheme, ID: id}}
}

// ACLs reads a vector<ACL>. An empty vector decodes to nil.
func (d *Decoder) ACLs() []znode.ACL {
	n := d.vector(12)
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]znode.ACL, 0, n)
	for range n {
		a := d.ACL()
		if d.err != nil {
			return nil
		}
		out = append(out, a)
	}
	return out
}

// Stat reads the 68-byte Stat record.
func (d *Decoder) Stat() znode.WireStat {
	if d.take(StatSize, "stat") == nil {
		return znode.WireStat{}
	}
	d.off -= StatSize
	return znode.WireStat{
		Czxid:          d.Int64(),
		Mzxid:          d.Int64(),
		Ctime:          d.Int64(),
		Mtime:          d.Int64(),
		Version:        d.Int32(),
		Cversion:       d.Int32(),
		Aversion:       d.Int32(),
		EphemeralOwner: d.Int64(),
		DataLength:     d.Int32(),
		NumChildren:    d.Int32(),
		Pzxid:          d.Int64(),
	}
}

// Rest consumes and returns (aliased) every remaining byte.
func (d *Decoder) Rest() []byte {
	return d.take(len(d.b)-d.off, "rest")
}

// StatSize is the encoded size of a Stat record.
const StatSize = 68

// Encoder appends jute values to a byte slice.
type Encoder struct {
	b []byte
}

// NewEncoder returns an encoder appending to dst.
func NewEncoder(dst []byte) *Encoder { return &Encoder{b: dst} }

// Bytes returns everything appended so far (including dst's original bytes).
func (e *Encoder) Bytes() []byte { return e.b }

// Reset makes e append to dst.
func (e *Encoder) Reset(dst []byte) { e.b = dst }

// Int32 appends a jute int.
func (e *Encoder) Int32(v int32) { e.b = binary.BigEndian.AppendUint32(e.b, uint32(v)) }

// Int64 appends a jute long.
func (e *Encoder) Int64(v int64) { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }

// Bool appends a jute boolean (0 or 1).
func (e *Encoder) Bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// Ustring appends a jute ustring.
func (e *Encoder) Ustring(s string) {
	e.length(len(s))
	e.b = append(e.b, s...)
}

// NullableUstring appends a jute ustring, or null (−1) when s is nil.
func (e *Encoder) NullableUstring(s *string) {
	if s == nil {
		e.Int32(-1)
		return
	}
	e.Ustring(*s)
}

// Buffer appends a jute buffer: −1 for nil, 0 for a non-nil empty slice.
func (e *Encoder) Buffer(p []byte) {
	if p == nil {
		e.Int32(-1)
		return
	}
	e.length(len(p))
	e.b = append(e.b, p...)
}

// VectorLen appends a vector's element count; −1 writes a null vector.
func (e *Encoder) VectorLen(n int) { e.length(n) }

// Ustrings appends a vector<ustring>. Nil and empty both encode as an empty
// vector: ZooKeeper's peers never send null vectors and Java clients do not
// expect them.
func (e *Encoder) Ustrings(ss []string) {
	e.length(len(ss))
	for _, s := range ss {
		e.Ustring(s)
	}
}

// ACL appends one ACL record.
func (e *Encoder) ACL(a znode.ACL) {
	e.Int32(int32(a.Perms))
	e.Ustring(a.ID.Scheme)
	e.Ustring(a.ID.ID)
}

// ACLs appends a vector<ACL>; nil encodes as an empty vector.
func (e *Encoder) ACLs(acl []znode.ACL) {
	e.length(len(acl))
	for _, a := range acl {
		e.ACL(a)
	}
}

// Stat appends the 68-byte Stat record.
func (e *Encoder) Stat(s znode.WireStat) {
	e.Int64(s.Czxid)
	e.Int64(s.Mzxid)
	e.Int64(s.Ctime)
	e.Int64(s.Mtime)
	e.Int32(s.Version)
	e.Int32(s.Cversion)
	e.Int32(s.Aversion)
	e.Int64(s.EphemeralOwner)
	e.Int32(s.DataLength)
	e.Int32(s.NumChildren)
	e.Int64(s.Pzxid)
}

// Raw appends p as it is.
func (e *Encoder) Raw(p []byte) { e.b = append(e.b, p...) }

// length appends an int32 length. Lengths above MaxInt32 cannot be encoded
// and are a programming error.
func (e *Encoder) length(n int) {
	if n > math.MaxInt32 {
		panic(fmt.Sprintf("zkwire: length %d does not fit a jute int", n))
	}
	e.Int32(int32(n))
}

package raftjournal

import (
	"encoding/binary"
	"fmt"

	"github.com/zk2raft/zk2raft/znode"
)

// The payload codec: varints for integers (zigzag for signed), uvarint-length-prefixed
// strings, and byte fields whose length is stored plus one so that 0 means nil (nil
// data and empty data are different znode values). No reflection; every command
// appends itself field by field.

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
func appendVarint(b []byte, v int64) []byte   { return binary.AppendVarint(b, v) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendBytes stores nil as length 0 and a slice of n bytes as n+1.
func appendBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

func appendStat(b []byte, st *znode.Stat) []byte {
	b = appendVarint(b, st.Czxid)
	b = appendVarint(b, st.Mzxid)
	b = appendVarint(b, st.Ctime)
	b = appendVarint(b, st.Mtime)
	b = appendVarint(b, int64(st.Version))
	b = appendVarint(b, int64(st.Cversion))
	b = appendVarint(b, int64(st.Aversion))
	b = appendVarint(b, st.EphemeralOwner)
	return appendVarint(b, st.Pzxid)
}

// appendACL is also the canonical key of an ACL list in the ACL cache.
func appendACL(b []byte, acl []znode.ACL) []byte {
	b = appendUvarint(b, uint64(len(acl)))
	for i := range acl {
		b = appendUvarint(b, uint64(uint32(acl[i].Perms)))
		b = appendString(b, acl[i].ID.Scheme)
		b = appendString(b, acl[i].ID.ID)
	}
	return b
}

// decoder reads a payload. The first error sticks: later reads return zero values
// and err names the first field that failed and its offset.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at payload offset %d", ErrCorruptEntry, what, d.off)
	}
	d.off = len(d.b)
}

func (d *decoder) done() bool { return d.off >= len(d.b) }

// finish reports trailing garbage as corruption.
func (d *decoder) finish() error {
	if d.err == nil && d.off != len(d.b) {
		d.err = fmt.Errorf("%w: %d unexpected trailing bytes at payload offset %d", ErrCorruptEntry, len(d.b)-d.off, d.off)
	}
	return d.err
}

func (d *decoder) byte1(what string) byte {
	if d.off >= len(d.b) {
		d.fail(what)
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) int32v(what string) int32 {
	v := d.varint(what)
	if v != int64(int32(v)) {
		d.fail(what + " out of int32 range")
		return 0
	}
	return int32(v)
}

// count reads a element count and checks it against the bytes left, each element
// taking at least minSize bytes, so a corrupt count cannot make us allocate.
func (d *decoder) count(what string, minSize int) int {
	v := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if v > uint64(len(d.b)-d.off)/uint64(max(minSize, 1)) {
		d.fail(fmt.Sprintf("%s %d does not fit the payload", what, v))
		return 0
	}
	return int(v)
}

// length reads a length prefix; what names the field it prefixes and is only
// formatted on failure (this is the import hot path).
func (d *decoder) length(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(what + " length")
		return 0
	}
	d.off += n
	return v
}

// rawString returns the next string's bytes without copying.
func (d *decoder) rawString(what string) []byte {
	n := d.length(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail(what + " length")
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v
}

func (d *decoder) string(what string) string { return string(d.rawString(what)) }

// rawBytes returns the next byte field without copying; isNil reports length 0.
func (d *decoder) rawBytes(what string) (v []byte, isNil bool) {
	n := d.length(what)
	if d.err != nil {
		return nil, true
	}
	if n == 0 {
		return nil, true
	}
	n--
	if n > uint64(len(d.b)-d.off) {
		d.fail(what + " length")
		return nil, true
	}
	v = d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v, false
}

// bytes returns a copy of the next byte field, keeping nil apart from empty.
func (d *decoder) bytes(what string) []byte {
	v, isNil := d.rawBytes(what)
	if isNil {
		return nil
	}
	return append(make([]byte, 0, len(v)), v...)
}

func (d *decoder) stat(st *znode.Stat) {
	st.Czxid = d.varint("stat czxid")
	st.Mzxid = d.varint("stat mzxid")
	st.Ctime = d.varint("stat ctime")
	st.Mtime = d.varint("stat mtime")
	st.Version = d.int32v("stat version")
	st.Cversion = d.int32v("stat cversion")
	st.Aversion = d.int32v("stat aversion")
	st.EphemeralOwner = d.varint("stat ephemeralOwner")
	st.Pzxid = d.varint("stat pzxid")
}

// rawACL skips over an ACL list and returns its encoded bytes, which are the
// ACL cache's key for the list.
func (d *decoder) rawACL() []byte {
	start := d.off
	n := d.count("ACL count", 3)
	for i := 0; i < n && d.err == nil; i++ {
		d.uvarint("ACL perms")
		d.rawString("ACL scheme")
		d.rawString("ACL id")
	}
	if d.err != nil {
		return nil
	}
	return d.b[start:d.off:d.off]
}

func (d *decoder) acl() []znode.ACL {
	n := d.count("ACL count", 3)
	if n == 0 {
		return nil
	}
	acl := make([]znode.ACL, n)
	for i := range acl {
		p := d.uvarint("ACL perms")
		if p > 0xFFFF_FFFF {
			d.fail("ACL perms out of range")
		}
		acl[i].Perms = znode.Perm(int32(uint32(p)))
		acl[i].ID.Scheme = d.string("ACL scheme")
		acl[i].ID.ID = d.string("ACL id")
	}
	return acl
}

// decodeACLKey decodes an ACL list from its canonical encoding.
func decodeACLKey(key string) []znode.ACL {
	d := decoder{b: []byte(key)}
	acl := d.acl()
	if acl == nil {
		acl = []znode.ACL{}
	}
	return acl
}

// validatePath is znode.ValidatePath with an allocation-free fast path for the
// common case, printable ASCII without empty, "." or ".." components, which is
// always valid; anything else gets the full check.
func validatePath(p string) error {
	if fastValidPath(p) {
		return nil
	}
	return znode.ValidatePath(p)
}

func fastValidPath(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	if len(p) == 1 {
		return true
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if c := p[start:i]; c == "" || c == "." || c == ".." {
				return false
			}
			start = i + 1
			continue
		}
		if c := p[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

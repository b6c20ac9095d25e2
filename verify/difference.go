package verify

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/zk2raft/zk2raft/znode"
)

// Kind says how a node differs between the two sides.
type Kind uint8

// The kinds of difference. Source is the reference (normally ZooKeeper), target
// the candidate (normally the journal).
const (
	// KindMissing: the node is in the source and not in the target.
	KindMissing Kind = iota + 1
	// KindExtra: the node is in the target and not in the source.
	KindExtra
	// KindMismatch: both sides have the node and Field differs.
	KindMismatch
)

// Kinds lists the kinds in report order.
func Kinds() []Kind { return []Kind{KindMissing, KindExtra, KindMismatch} }

func (k Kind) String() string {
	switch k {
	case KindMissing:
		return "missing"
	case KindExtra:
		return "extra"
	case KindMismatch:
		return "mismatch"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Describe is the kind in words, for people.
func (k Kind) Describe() string {
	switch k {
	case KindMissing:
		return "missing in target"
	case KindExtra:
		return "extra in target"
	case KindMismatch:
		return "field mismatch"
	}
	return k.String()
}

// MarshalText renders the kind as String does.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Field names what differs in a KindMismatch difference. FieldNone goes with
// KindMissing and KindExtra.
type Field uint8

// The compared fields, in report order: data, ACL, every persisted stat field
// (ZooKeeper's StatPersisted, with the persisted cversion and the raw
// ephemeralOwner) and the derived child count. dataLength is not a field of its
// own: it follows from the data.
const (
	FieldNone Field = iota
	// FieldData: the bytes differ (nil against non-empty data included).
	FieldData
	// FieldNilData: one side has nil data, the other empty data. ZooKeeper keeps
	// them apart (getData answers length −1 for nil), so they differ.
	FieldNilData
	// FieldACL: the ACL lists differ, entries or order.
	FieldACL
	// FieldACLMasked: a live ZooKeeper side answered getACL with its digest
	// identities masked (digest:user:x), because the credentials lack ADMIN on
	// the node, and the lists agree as far as masking lets them be compared.
	// Whether the real ACLs agree is unknown, so it is not called equal; lists
	// that differ even once masked are a FieldACL difference.
	FieldACLMasked
	FieldCzxid
	FieldMzxid
	FieldPzxid
	FieldCtime
	FieldMtime
	FieldVersion
	FieldCversion // persisted: child creates so far
	FieldAversion
	FieldEphemeralOwner // raw where the side knows it
	FieldNumChildren
	fieldCount
)

// Fields lists the compared fields in report order.
func Fields() []Field {
	out := make([]Field, 0, fieldCount-1)
	for f := FieldData; f < fieldCount; f++ {
		out = append(out, f)
	}
	return out
}

var fieldNames = [...]string{
	FieldNone:           "",
	FieldData:           "data",
	FieldNilData:        "nil-vs-empty",
	FieldACL:            "acl",
	FieldACLMasked:      "acl-masked",
	FieldCzxid:          "czxid",
	FieldMzxid:          "mzxid",
	FieldPzxid:          "pzxid",
	FieldCtime:          "ctime",
	FieldMtime:          "mtime",
	FieldVersion:        "version",
	FieldCversion:       "cversion",
	FieldAversion:       "aversion",
	FieldEphemeralOwner: "ephemeralOwner",
	FieldNumChildren:    "numChildren",
}

// String is the field's name as reports and allow-lists spell it: ZooKeeper's
// stat names (czxid, ephemeralOwner, numChildren), "data", "nil-vs-empty", "acl",
// "acl-masked".
func (f Field) String() string {
	if f < fieldCount {
		return fieldNames[f]
	}
	return fmt.Sprintf("Field(%d)", uint8(f))
}

// Describe is the field in words, for people.
func (f Field) Describe() string {
	switch f {
	case FieldNilData:
		return "data, nil vs empty"
	case FieldCversion:
		return "cversion (persisted)"
	case FieldACL:
		return "ACL"
	case FieldACLMasked:
		return "ACL masked (no ADMIN)"
	}
	return f.String()
}

// MarshalText renders the field as String does.
func (f Field) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// ParseField parses a field name as String spells it (case-insensitive).
func ParseField(s string) (Field, error) {
	for f := FieldData; f < fieldCount; f++ {
		if strings.EqualFold(s, fieldNames[f]) {
			return f, nil
		}
	}
	return FieldNone, fmt.Errorf("verify: unknown field %q", s)
}

// isZxid reports whether the field holds a zxid.
func (f Field) isZxid() bool { return f == FieldCzxid || f == FieldMzxid || f == FieldPzxid }

// Value is one side's value in a Difference. Which members are set depends on
// the difference: Present alone for KindMissing/KindExtra (with the present
// side's Stat, DataLength and NumChildren), Data for the data fields, ACL for
// FieldACL and FieldACLMasked (as each side showed it), Int for the stat fields
// and numChildren.
type Value struct {
	Present bool // the node exists on this side
	Data    []byte
	ACL     []znode.ACL
	Int     int64

	// For a node present on one side only: what it is.
	Stat        znode.Stat
	DataLength  int
	NumChildren int32
}

// Difference is one way the target differs from the source at Path.
type Difference struct {
	Path   string
	Kind   Kind
	Field  Field // FieldNone unless Kind is KindMismatch
	Source Value
	Target Value
	// Rechecked counts the re-reads of a live side that still showed the
	// difference before it was reported (0: not re-checked).
	Rechecked int `json:"-"`
}

// String renders the difference on one line.
func (d Difference) String() string {
	if d.Kind != KindMismatch {
		return fmt.Sprintf("%s: %s (source %s, target %s)", d.Path, d.Kind.Describe(),
			d.SourceText(), d.TargetText())
	}
	if d.Field == FieldACLMasked {
		return fmt.Sprintf("%s: acl-masked, not known to agree (ZooKeeper masked the ACL; the credentials lack ADMIN): source %s, target %s",
			d.Path, d.SourceText(), d.TargetText())
	}
	return fmt.Sprintf("%s: %s differs: source %s, target %s", d.Path, d.Field, d.SourceText(), d.TargetText())
}

// SourceText renders the source's value readably: zxids in hex, times with
// their date, data quoted when it is printable UTF-8 and in hex otherwise.
func (d Difference) SourceText() string { return formatValue(d.Field, d.Source, d.Target) }

// TargetText renders the target's value as SourceText does the source's.
func (d Difference) TargetText() string { return formatValue(d.Field, d.Target, d.Source) }

// maxDataShown bounds the bytes of data rendered in a report.
const maxDataShown = 64

func formatValue(f Field, v, other Value) string {
	if !v.Present {
		return "absent"
	}
	switch f {
	case FieldNone:
		return describeNode(v)
	case FieldData, FieldNilData:
		s := FormatData(v.Data)
		if f == FieldData && other.Present && v.Data != nil && other.Data != nil {
			if i := firstDifference(v.Data, other.Data); i >= 0 {
				s += fmt.Sprintf(", first difference at byte %d", i)
			}
		}
		return s
	case FieldACL, FieldACLMasked:
		return FormatACL(v.ACL)
	case FieldCtime, FieldMtime:
		return FormatTime(v.Int)
	case FieldEphemeralOwner:
		return FormatOwner(v.Int)
	case FieldNumChildren, FieldVersion, FieldCversion, FieldAversion:
		return strconv.FormatInt(v.Int, 10)
	}
	if f.isZxid() {
		return FormatZxid(v.Int)
	}
	return strconv.FormatInt(v.Int, 10)
}

// describeNode summarizes a node present on one side only.
func describeNode(v Value) string {
	kind := znode.EphemeralTypeOf(v.Stat.EphemeralOwner, true)
	s := fmt.Sprintf("present: %s, %s of data, czxid %s, mzxid %s", kind, plural(int64(v.DataLength), "byte"),
		FormatZxid(v.Stat.Czxid), FormatZxid(v.Stat.Mzxid))
	if v.NumChildren > 0 {
		s += fmt.Sprintf(", %d children", v.NumChildren)
		if v.NumChildren == 1 {
			s = strings.TrimSuffix(s, "ren")
		}
	}
	if kind == znode.Ephemeral {
		s += ", owner " + FormatZxid(v.Stat.EphemeralOwner)
	}
	return s
}

// firstDifference is the offset of the first differing byte, the shorter
// length when one is a prefix of the other, or −1 when they are equal.
func firstDifference(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return n
	}
	return -1
}

// FormatZxid renders a zxid as ZooKeeper's tools do, in hex.
func FormatZxid(z int64) string { return fmt.Sprintf("0x%x", uint64(z)) }

// FormatTime renders a ZooKeeper time (ms since the epoch) with its UTC date.
func FormatTime(ms int64) string {
	if ms == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", ms, time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z"))
}

// FormatOwner renders a raw ephemeralOwner with what it encodes.
func FormatOwner(raw int64) string {
	switch znode.EphemeralTypeOf(raw, true) {
	case znode.Persistent:
		return "0 (persistent)"
	case znode.Container:
		return FormatZxid(raw) + " (container)"
	case znode.TTL:
		return fmt.Sprintf("%s (ttl %d ms)", FormatZxid(raw), znode.TTLMillis(raw))
	}
	return FormatZxid(raw) + " (session)"
}

// FormatData renders node data for people: nil, empty, a quoted string when the
// bytes are printable UTF-8, hex otherwise; long data is cut at 64 bytes and
// its length given.
func FormatData(b []byte) string {
	switch {
	case b == nil:
		return "nil"
	case len(b) == 0:
		return "empty (0 bytes)"
	}
	shown, cut := b, false
	if len(shown) > maxDataShown {
		shown, cut = shown[:maxDataShown], true
	}
	var s string
	if printable(shown, cut) {
		s = strconv.Quote(string(shown))
	} else {
		s = "0x" + fmt.Sprintf("%x", shown)
	}
	if cut {
		s += "…"
	}
	return fmt.Sprintf("%s (%d bytes)", s, len(b))
}

// printable reports whether b reads as text: valid UTF-8 (a rune cut at the end
// by truncation excepted) without control characters other than tab and newlines.
func printable(b []byte, cut bool) bool {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			return cut && len(b) < utf8.UTFMax && !utf8.FullRune(b)
		}
		if !unicode.IsPrint(r) && r != '\t' && r != '\n' && r != '\r' && r != ' ' {
			return false
		}
		b = b[size:]
	}
	return true
}

// FormatACL renders an ACL list as zkCli's getAcl does, one scheme:id:perms per
// entry, comma-separated.
func FormatACL(acl []znode.ACL) string {
	if len(acl) == 0 {
		return "[]"
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, a := range acl {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	b.WriteByte(']')
	return b.String()
}

// equalData compares data telling nil from empty.
func equalData(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

package znode

import (
	"bytes"
	"fmt"
	"strings"
)

// Perm is a ZooKeeper permission bit set (ZooDefs.Perms).
type Perm int32

// The permission bits of an ACL entry.
const (
	PermRead   Perm = 1 << 0
	PermWrite  Perm = 1 << 1
	PermCreate Perm = 1 << 2
	PermDelete Perm = 1 << 3
	PermAdmin  Perm = 1 << 4
	PermAll    Perm = PermRead | PermWrite | PermCreate | PermDelete | PermAdmin
)

// String renders the bits the way zkCli does: "cdrwa" letters in that order.
func (p Perm) String() string {
	var b strings.Builder
	for _, f := range []struct {
		bit Perm
		c   byte
	}{{PermCreate, 'c'}, {PermDelete, 'd'}, {PermRead, 'r'}, {PermWrite, 'w'}, {PermAdmin, 'a'}} {
		if p&f.bit != 0 {
			b.WriteByte(f.c)
		}
	}
	if rest := p &^ PermAll; rest != 0 {
		fmt.Fprintf(&b, "+0x%x", int32(rest))
	}
	return b.String()
}

// ID is an ACL identity: a scheme ("world", "digest", "ip", "auth", "x509", "sasl")
// and a scheme-specific id.
type ID struct {
	Scheme string
	ID     string
}

// ACL is one entry of a node's access control list.
type ACL struct {
	Perms Perm
	ID    ID
}

// String renders an entry as scheme:id:perms, as zkCli's getAcl does.
func (a ACL) String() string { return a.ID.Scheme + ":" + a.ID.ID + ":" + a.Perms.String() }

// WorldAnyone is ZooKeeper's OPEN_ACL_UNSAFE: every permission for everyone.
func WorldAnyone() []ACL { return []ACL{{Perms: PermAll, ID: ID{Scheme: "world", ID: "anyone"}}} }

// Stat is ZooKeeper's persisted stat (StatPersisted), stored verbatim.
// Cversion is the persisted count of child creations and EphemeralOwner is the raw
// owner value; see the package documentation.
type Stat struct {
	Czxid          int64 // zxid of the create
	Mzxid          int64 // zxid of the last setData
	Ctime          int64 // create time, ms since the Unix epoch
	Mtime          int64 // last setData time, ms since the Unix epoch
	Version        int32 // data version
	Cversion       int32 // persisted: child creates so far
	Aversion       int32 // ACL version
	EphemeralOwner int64 // raw: session id, container or TTL encoding
	Pzxid          int64 // zxid of the last child create or delete
}

// WireStat is the Stat record of the client protocol (68 bytes on the wire).
type WireStat struct {
	Czxid          int64
	Mzxid          int64
	Ctime          int64
	Mtime          int64
	Version        int32
	Cversion       int32 // creates + deletes of children
	Aversion       int32
	EphemeralOwner int64 // 0 for containers and TTL nodes
	DataLength     int32
	NumChildren    int32
	Pzxid          int64
}

// Wire converts a persisted stat to what a client sees for a node with the given
// data length and child count (DataNode.copyStat). The ephemeral owner is decoded as
// a server with extended types enabled would.
func (s Stat) Wire(dataLength, numChildren int32) WireStat {
	return WireStat{
		Czxid:          s.Czxid,
		Mzxid:          s.Mzxid,
		Ctime:          s.Ctime,
		Mtime:          s.Mtime,
		Version:        s.Version,
		Cversion:       2*s.Cversion - numChildren,
		Aversion:       s.Aversion,
		EphemeralOwner: ClientEphemeralOwner(s.EphemeralOwner, true),
		DataLength:     dataLength,
		NumChildren:    numChildren,
		Pzxid:          s.Pzxid,
	}
}

// FromWire recovers the persisted stat from a client-visible one. The persisted
// cversion is exact ((cversion+numChildren)/2). The raw ephemeral owner cannot be
// recovered for containers and TTL nodes, which clients see as 0; pass the raw value
// in rawOwner when it is known from elsewhere (a ZooKeeper snapshot or the create
// mode), or ws.EphemeralOwner otherwise.
func FromWire(ws WireStat, rawOwner int64) Stat {
	return Stat{
		Czxid:          ws.Czxid,
		Mzxid:          ws.Mzxid,
		Ctime:          ws.Ctime,
		Mtime:          ws.Mtime,
		Version:        ws.Version,
		Cversion:       PersistedCversion(ws.Cversion, ws.NumChildren),
		Aversion:       ws.Aversion,
		EphemeralOwner: rawOwner,
		Pzxid:          ws.Pzxid,
	}
}

// PersistedCversion recovers the persisted cversion from the client-visible one.
// Client cversion = creates + deletes and numChildren = creates − deletes, so their
// sum is always even.
func PersistedCversion(clientCversion, numChildren int32) int32 {
	return int32((int64(clientCversion) + int64(numChildren)) / 2)
}

// Node is one znode: its path, data, ACL list and persisted stat.
//
// Data nil ("no data", sent as length −1) and Data empty (length 0) are different.
// NumChildren is derived from the tree; it is carried so that a node read from a
// stream (where the children come later) still knows its child count.
type Node struct {
	Path        string
	Data        []byte
	ACL         []ACL
	Stat        Stat
	NumChildren int32
}

// Digest returns the node's contribution to ZooKeeper's tree digest.
func (n *Node) Digest() uint32 { return NodeDigest(n.Path, n.Data, n.Stat) }

// WireStat returns the stat a client would see for this node.
func (n *Node) WireStat() WireStat { return n.Stat.Wire(int32(len(n.Data)), n.NumChildren) }

// Kind reports the node's ephemeral type, assuming extended types are enabled.
func (n *Node) Kind() EphemeralType { return EphemeralTypeOf(n.Stat.EphemeralOwner, true) }

// Clone returns a deep copy of n, keeping nil data nil.
func (n *Node) Clone() *Node {
	c := *n
	if n.Data != nil {
		c.Data = bytes.Clone(n.Data)
	}
	if n.ACL != nil {
		c.ACL = append([]ACL(nil), n.ACL...)
	}
	return &c
}

// Equal reports whether two nodes are identical in every field, telling nil data
// apart from empty data.
func (n *Node) Equal(o *Node) bool {
	if n.Path != o.Path || n.Stat != o.Stat || n.NumChildren != o.NumChildren {
		return false
	}
	if (n.Data == nil) != (o.Data == nil) || !bytes.Equal(n.Data, o.Data) {
		return false
	}
	return EqualACLs(n.ACL, o.ACL)
}

// EqualACLs reports whether two ACL lists are the same, in the same order.
func EqualACLs(a, b []ACL) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

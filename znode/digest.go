package znode

import (
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"strings"
)

// DigestVersion is the version of ZooKeeper's digest algorithm implemented here
// (DigestCalculator.DIGEST_VERSION).
const DigestVersion = 2

// EmptyTreeDigest is the digest of a fresh ZooKeeper tree: the root and /zookeeper,
// with zero stats and empty data. It equals the digest carried by the first
// createSession txn of a new server.
const EmptyTreeDigest Digest = 1371985504

// NodeDigest is one node's contribution to the tree digest. path is the node's
// absolute path ("/" for the root); st must be the persisted stat.
func NodeDigest(path string, data []byte, st Stat) uint32 {
	if strings.HasPrefix(path, "/zookeeper/") {
		return 0
	}
	if path == "/" {
		path = ""
	}
	// The stat image's field order is DigestCalculator's, not StatPersisted's:
	// pzxid comes third.
	var b [60]byte
	be := binary.BigEndian
	be.PutUint64(b[0:], uint64(st.Czxid))
	be.PutUint64(b[8:], uint64(st.Mzxid))
	be.PutUint64(b[16:], uint64(st.Pzxid))
	be.PutUint64(b[24:], uint64(st.Ctime))
	be.PutUint64(b[32:], uint64(st.Mtime))
	be.PutUint32(b[40:], uint32(st.Version))
	be.PutUint32(b[44:], uint32(st.Cversion))
	be.PutUint32(b[48:], uint32(st.Aversion))
	be.PutUint64(b[52:], uint64(st.EphemeralOwner))
	crc := crc32.Update(0, crc32.IEEETable, []byte(path))
	crc = crc32.Update(crc, crc32.IEEETable, data)
	return crc32.Update(crc, crc32.IEEETable, b[:])
}

// Digest is ZooKeeper's tree digest (AdHash): the wrapping 64-bit sum of every
// node's digest. The zero value is the digest of no nodes.
type Digest uint64

// Add accounts for a node entering the tree (or a node's state after a change).
func (d *Digest) Add(nodeDigest uint32) { *d += Digest(nodeDigest) }

// Remove accounts for a node leaving the tree (or a node's state before a change).
func (d *Digest) Remove(nodeDigest uint32) { *d -= Digest(nodeDigest) }

// Int64 is the digest as ZooKeeper holds it, a signed Java long.
func (d Digest) Int64() int64 { return int64(d) }

// String prints the digest as ZooKeeper's `hash` four-letter word does: signed decimal.
func (d Digest) String() string { return strconv.FormatInt(int64(d), 10) }

// ParseDigest parses a signed or unsigned decimal digest.
func ParseDigest(s string) (Digest, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return Digest(v), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return Digest(v), err
}

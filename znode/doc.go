// Package znode is the data model every other zk2raft package shares: a ZooKeeper
// node with its data, ACL list and persisted stat; ZooKeeper's path rules; ZooKeeper's
// DataTree digest; and the snapshot file format that both `zk2raft export` and the Raft
// journal's FSM snapshots use.
//
// # Fidelity
//
// A Node carries ZooKeeper's *persisted* stat (StatPersisted in zookeeper.jute)
// verbatim. Two values differ from what a client sees over the wire:
//
//   - Cversion is the persisted count of child creations, which is also the counter
//     that names sequential children (path + fmt.Sprintf("%010d", cversion)).
//     Clients see 2·persisted − numChildren; see [Stat.Wire] and [FromWire].
//   - EphemeralOwner is the raw value: a session id for ephemerals, 0x8000000000000000
//     for containers, 0xFF00_0000_0000_0000|ttlMillis for TTL nodes. Clients see 0 for
//     containers and TTL nodes; see [EphemeralOwner].
//
// Data nil and data empty are different values and are kept apart everywhere.
//
// # Digest
//
// [NodeDigest] and [Digest] implement ZooKeeper's DataTree digest (DigestCalculator,
// digest version 2, ZooKeeper 3.6+): a CRC-32 (IEEE) per node over its path, data and
// a 60-byte stat image, summed with 64-bit wrapping addition. Nodes below "/zookeeper/"
// contribute nothing, the root is keyed "" and ACLs are not part of it. Because the sum
// is order-independent, the digest can be kept incrementally (Add on insert, Remove on
// delete, both around a change) and compared with ZooKeeper's `hash` four-letter word.
//
// # Paths
//
// [ValidatePath] applies the ZooKeeper server's rules (PathUtils.validatePath), which
// are stricter than go-zookeeper's: no empty components, no "." or ".." components,
// no trailing slash, and none of the characters the server rejects (control
// characters, U+D800–U+F8FF, U+FFF0–U+FFFF and anything outside the Basic Multilingual
// Plane, which Java sees as a surrogate pair).
//
// # Snapshot file format
//
// `zk2raft export` files and the Raft journal's FSM snapshots share one format,
// written by [SnapshotWriter] (or [CreateSnapshotFile], which adds the temp file,
// fsync, rename and directory fsync) and read by [SnapshotReader]. Integers are
// big-endian; CRCs are CRC-32C (Castagnoli).
//
//	file    = header | body | footer
//
//	header  +----------+---------+-------+--------+-------------+----------+
//	        | ZK2RSNAP | version | flags | n      | header JSON | CRC      |
//	        | 8 bytes  | u16 = 1 | u16   | u32    | n bytes     | u32      |
//	        +----------+---------+-------+--------+-------------+----------+
//	        flags bit 0: the body is one zstd stream. n is at most 1 MiB.
//	        The CRC covers everything from the magic through the JSON.
//
//	body    record* | end record            (zstd-compressed as a whole if flagged)
//
//	record  +--------+------+-------------+--------------------------+
//	        | L      | type | payload     | CRC of type and payload  |
//	        | u32    | u8   | L bytes     | u32                      |
//	        +--------+------+-------------+--------------------------+
//	        L is at most 64 MiB. type 1: node; 2–63: reserved (rejected);
//	        64–254: application records, passed through; 255: end record,
//	        whose 40-byte payload is the trailer with body length 0.
//
//	footer  +-----------------+----------------+----------------+
//	        | trailer         | CRC of trailer | ZK2REND\x00    |
//	        | 40 bytes        | u32            | 8 bytes        |
//	        +-----------------+----------------+----------------+
//	        never compressed, always the last 52 bytes of the file.
//
//	trailer +------------+--------------+--------+----------+-------------+
//	        | node count | record count | digest | max zxid | body length |
//	        | u64        | u64          | u64    | i64      | u64         |
//	        +------------+--------------+--------+----------+-------------+
//	        record count excludes the end record; digest is the Digest of the
//	        node records; body length is the body's size in the file
//	        (compressed size when compressed); max zxid is the largest czxid,
//	        mzxid or pzxid of the nodes, or larger (SnapshotWriter.ObserveZxid).
//
// A node record's payload is jute-style:
//
//	path      i32 length | bytes
//	data      i32 length | bytes            (length −1: nil data)
//	ACL list  i32 count  | count × { i32 perms | i32 len | scheme | i32 len | id }
//	                                        (count −1: nil list)
//	stat      czxid, mzxid, ctime, mtime i64 | version, cversion, aversion i32 |
//	          ephemeralOwner i64 | pzxid i64   (StatPersisted, 60 bytes)
//	children  i32 numChildren
//
// The header's JSON ([SnapshotHeader]) holds the source, the zxid the walk started
// at, the creation time, the tool version, the export filters, the kind ("export" or
// "fsm"), whether the source used extended ephemeral types, and free-form metadata.
// Readers ignore fields they do not know; new fields need no version change. The
// 16-byte prefix (magic, version, flags, n) keeps its layout in every version, so a
// reader checks the header CRC before it believes the version.
//
// The end record repeats the trailer inside the CRC-protected, possibly compressed
// body, so the footer is checked against it; its body length is 0 because a record
// inside the body cannot hold the body's compressed size. The footer has a fixed
// size at a fixed place, so [ReadSnapshotTrailer] reads the header and footer alone,
// and checks that header, body length and footer add up to the file's size.
//
// A reader returns io.EOF only after the end record, the end of the body (nothing
// more decompresses, no compressed bytes are left over), and a footer that matches
// both the end record and the node count, record count, digest and body length
// recomputed from what was read, with nothing after it. Every other outcome is an
// error matching [ErrCorruptSnapshot] (and [ErrTruncatedSnapshot] when the file ends
// early) that names the offset: a file offset, or for a compressed body an offset in
// the decompressed body. A truncated file therefore never reads as a smaller tree.
package znode

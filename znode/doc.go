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
package znode

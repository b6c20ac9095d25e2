// Package datadir reads a ZooKeeper server's data directory — its snapshots
// and transaction logs — and rebuilds ZooKeeper's tree from them exactly as
// of one zxid, proven by the digests ZooKeeper itself wrote into those files.
// It is the exporter's second source (DESIGN.md: "ZooKeeper data directory →
// snapshot stream; txn-log tail"): [Load] and [ExportFile] for `zk2raft
// export --from-datadir` and verify's datadir:// side, [Follower] for `zk2raft
// tail`.
//
// # Why a package of its own
//
// The client-API walk (package exporter) and this reader share nothing but
// the output format: one talks to servers, the other reads files. Keeping
// them apart keeps the walk's code untouched and this package's imports
// small: znode for the model and the digest, zkwire for jute decoding (the
// same codec the wire uses; a txn is jute like a request), klauspost/compress
// for gzip and snappy. It never writes to the directory and never takes a
// lock, so it works beside a running server.
//
// # What the files give that the client API does not
//
//   - The raw ephemeralOwner: containers (0x8000000000000000) and TTL nodes
//     (0xFF00…|ttl ms) are told apart from persistent nodes; a client sees 0.
//   - The persisted cversion, as stored, and every stat field.
//   - ACLs from the snapshot's ACL cache and the txns, sessions with their
//     timeouts.
//   - One point in time: the tree exactly as of a zxid, not a walk in which
//     each node has its own.
//
// # Formats
//
// The snapshot (snapshot.go), the transaction log (txnlog.go) and
// snappy-java's stream format that ZooKeeper's snappy snapshots use
// (snappy.go) are drawn where they are read. Everything is checked: the
// magic numbers and versions, each txn's Adler32 and its 0x42 end-of-record
// byte, each snapshot seal's running Adler32, every length before anything is
// allocated from it (Options.MaxRecordBytes). Damage is a *FileError naming
// the file and the offset (for a compressed snapshot, the offset in the
// decompressed stream).
//
// # Replay
//
// [Tree] is DataTree: the node map, child sets, ACL cache, sessions and the
// ephemeral index, with the digest kept as NodeHashMap keeps it. Apply
// follows DataTree.processTxn to the letter, tolerance included: a snapshot
// is fuzzy (ZooKeeper serializes the tree while it changes), so the txns
// after the snapshot's zxid may already be in it, and replaying them must
// end in the same tree as ZooKeeper's own restart. Hence a create that finds
// its node raises the parent's cversion and pzxid instead, a delete of a
// missing node still moves the parent's pzxid, a node is deleted without its
// children, and so on (apply.go). The ACL cache is ZooKeeper's too, reference
// counts and indices included (aclcache.go): a fuzzy snapshot can hold a node
// whose ACL index its cache, written first, does not have yet, and only
// replaying the txn that added the list, which hands out the same index
// again, resolves it — as it does for ZooKeeper.
//
// Load takes the newest snapshot that reads cleanly — a snapshot being
// written, or a damaged one, is skipped and reported (State.Skipped), as
// ZooKeeper skips it — then the logs: the newest log that starts at or before
// the snapshot's zxid and every later one. Txns at or below the snapshot's
// zxid are skipped; after that every txn must follow its predecessor (the
// next counter in its epoch, or the first txn of a later epoch), or a log is
// missing (ErrMissingLog, naming the zxids and where the next one was found).
//
// A log ends at a zero record (ZooKeeper preallocates zeros) or at the file's
// end. A record cut short where the data ends — a length with too few bytes
// behind it, no end-of-record byte after them, and nothing but zeros after
// that — is a torn record: the server is writing it, or died writing it.
// Load stops cleanly before it when it is the last log's last record
// (State.Torn); in an earlier log the next log must continue the sequence.
// A record cut short with data after it is damage.
//
// # Proof
//
// ZooKeeper 3.6+ writes its tree digest into both files: every txn that
// changes the tree carries a TxnDigest (the digest after it), and every
// snapshot a ZxidDigest (the digest ZooKeeper had when the snapshot
// finished, at that zxid). Load compares the rebuilt tree with them:
//
//   - Until the first record matches, the tree is inside the snapshot's fuzzy
//     range (it may hold changes of later txns), and a mismatch says nothing.
//     That holds at the snapshot's own ZxidDigest too: it is the digest
//     ZooKeeper had logged when the snapshot ended, while the next txn may
//     already have been half applied to nodes written into it (seen on a
//     loaded ensemble; ZooKeeper's own restart then logs a digest mismatch).
//     A match ends the fuzzy range: equal digests mean the tree is
//     ZooKeeper's at that zxid.
//   - From the first match on, every record must match: a mismatch is
//     ErrDigestMismatch naming the zxid and the record's file and offset.
//   - At the end zxid E (the last complete txn, or the last txn at or below
//     Options.ToZxid), the tree is proven by the nearest record at or before
//     E: exact when txn E carries one. A record at an earlier zxid T proves
//     the tree at E only because every txn after T changed nothing in the tree
//     (failed writes are logged as error txns without a digest; a session
//     that owns no ephemeral comes and goes without touching it); Load keeps
//     track of that and otherwise fails with ErrUnverified rather than claim
//     more than the record shows. DigestCheck.Exact says which case it was.
//   - When no txn follows the snapshot, only its own ZxidDigest can speak for
//     it, and only when it is at the snapshot's zxid (or, for the snapshot a
//     new leader takes at zxid epoch<<32, at the previous epoch's last txn,
//     which must then be the last txn logged). A snapshot whose zxid or
//     fuzzy range lies beyond every log is ErrSnapshotAhead: its state cannot
//     be brought to a zxid ZooKeeper vouched for.
//
// A digest that matches is ZooKeeper's own claim about the tree at that zxid
// (a 64-bit sum of CRC-32s: equal trees always match; unequal trees match by
// accident with negligible odds), and the digest covers every node with its
// path, data and persisted stat — but not ACLs or sessions, which are taken
// from the same files without a separate proof.
//
// # Memory
//
// The tree is held in memory, as ZooKeeper holds it: replay needs random
// access by path, and ZooKeeper's snapshot order (children in hash order) is
// not the project's canonical order, which Walk produces by sorting each
// node's children as it goes. This departs from DESIGN.md's streaming rule
// for exports (O(width)); the client-API walk keeps to it. A node costs about
// 230 bytes beyond its data at 1M nodes (BenchmarkLoad reports it): nodes
// are allocated in slabs and paths and data in arenas.
//
// # Following a log
//
// [Follower] is the tail's reader: it loads the tree to a starting zxid as
// Load does, then returns each new txn with what it changed ([Change], the
// stats after it), waiting for the log to grow and moving on to the next log
// file when ZooKeeper rolls it. It checks every TxnDigest as it goes, so a
// mirror fed from it carries ZooKeeper's own verified states. A log that
// shrinks under it (a follower truncating its log when it resyncs with a new
// leader) is ErrTruncatedLog: txns it returned may never have committed.
package datadir

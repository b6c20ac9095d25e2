// Package raftjournal is the embedded, replicated journal that takes over from
// ZooKeeper. It has two layers:
//
//   - FSM, the deterministic state machine: the znode tree with ZooKeeper's
//     semantics and digest, the session table, the zxid counter, the migration
//     phase and the importer's checkpoints, and the log entries that change them.
//     It implements raft.FSM and raft.BatchingFSM and never reads a clock.
//   - Node, an FSM replicated by hashicorp/raft: Open(NodeConfig), the
//     context-first Go API (api.go), membership and the admin HTTP endpoint
//     (admin.go), forwarding and linearizable reads (forward.go), the leader's
//     session expiry and clean-up (expiry.go), storage (store.go), the data
//     dir's checks (datadir.go), the ports' security (security.go,
//     handshake.go, admin_acl.go) and snapshot policy (compaction.go).
//     AdminClient (adminclient.go) and RPCClient reach a node from another
//     process with the cluster's Credentials. OpenReadOnly (readonly.go) rebuilds a stopped
//     node's state from its data dir without starting raft; the importer's
//     offline bootstrap is in offline.go.
//
// # The node
//
// Storage: the Raft log is raft-wal (raft-boltdb/v2 stays selectable); the
// measurements behind that choice are drawn at the top of store.go. Every log
// entry carries a CRC-32C, because neither store checks what it returns, and a
// damaged log or snapshot is an error naming the file. The data dir is locked
// (flock) by the process that uses it.
//
// Damaged or foreign storage is never served (datadir.go): before raft starts,
// the log must reach the index recorded at the last clean stop
// (raft/stopped.json), every raft-wal segment wal-meta.db lists must exist at
// its full, preallocated size, no committed batch may follow a zeroed range of
// the open segment, no log store may be missing beside snapshots, and a log
// that starts after index 1 needs a snapshot. Each is a *DamageError
// (ErrDataDirDamaged) naming the file; OpenReadOnly makes the same checks.
// AcceptLogLoss (an operator's explicit choice) cuts the log back to its intact
// prefix instead. A data dir with Raft state starts only as the member its Raft
// configuration names (id and address); one without starts only with
// Bootstrap or Join, and only if it holds nothing foreign.
//
// Security (security.go): the admin and Raft ports belong to the cluster.
// Every peer proves it holds the cluster secret (NodeConfig.Secret) — on the
// Raft port in an HMAC challenge–response before the connection is routed or
// any length is read (handshake.go), on the admin port as a bearer token — and
// mutual TLS can be required on both. Open refuses a node without a secret
// unless Insecure says so: safe by default, since a journal whose ports answer
// anyone can be re-membered, rewritten and read by a stranger. Tree reads over
// the admin port also honour the znodes' ZooKeeper ACLs (admin_acl.go).
//
// Snapshots are taken by bytes written, not entry count (compaction.go), so a
// bulk import does not snapshot-thrash: a snapshot when the log since the last
// one reaches max(SnapshotMinLogBytes, SnapshotLogRatio × the last snapshot's
// size), 64 MiB and 1× by default.
//
// Writes: any node accepts them. A follower forwards the encoded entry to the
// leader over the Raft port (the handshake's protocol byte tells Raft from the
// journal's own RPC), and the leader stamps the time into native writes before
// Apply. Import batches, SourceTxn, CompactTombstones and SetPhase are retried
// when a leader change leaves their outcome unknown, since applying them twice is
// harmless; other writes return ErrOutcomeUnknown (CodeConnectionLoss).
//
// Reads are local by default; Linearizable() makes a leader confirm its
// leadership, and a follower ask the leader for its commit index and wait until
// it has applied that far (the read-index pattern).
//
// Sessions: the leader tracks touches in memory and commits ExpireSessions
// entries; container and TTL clean-up run once the journal is primary. The
// leader also remembers, in memory, which node each session's client is
// connected to (ClaimSessions), and refuses that session's writes from any
// other node (SubmitForSession, CodeSessionMoved), as ZooKeeper's
// SessionTracker does.
//
// # What the FSM owns
//
//   - The visible tree: path → node, plus each node's child set. A node is
//     ZooKeeper's node (DESIGN.md "Fidelity"): path, data (nil and empty differ),
//     ACL list, and the persisted stat verbatim — the persisted cversion (the
//     sequential-name counter) and the raw ephemeralOwner. numChildren and
//     dataLength are derived. A fresh FSM holds what a fresh ZooKeeper 3.8 holds:
//     "/", /zookeeper, /zookeeper/quota and /zookeeper/config (ACL world:anyone:r,
//     aversion −1), so its digest is znode.EmptyTreeDigest.
//   - ZooKeeper's tree digest, kept incrementally (a node's digest is removed
//     before and added after every change), and a digest history like
//     ZooKeeper's: the digest after each txn whose zxid is a multiple of 128,
//     the last 1024 of them. For mirrored txns, only when the txn is the
//     newest source zxid seen; a later-arriving txn below a logged entry that
//     changes the tree drops the entries above it (see applySourceTxn).
//   - Sessions (id, timeout; their ephemerals are indexed by owner), the journal
//     epoch and zxid counter, the largest zxid applied and the largest source
//     zxid seen, the phase, and opaque importer checkpoints.
//   - For the shadow phase: tombstones of source deletes and pending records
//     (see "Merging ZooKeeper's writes").
//
// Watches are kept too, but they are local to a node, like ZooKeeper's, and not
// part of the replicated state or of snapshots.
//
// # Log entries
//
// Every entry is a type byte, a version byte and the command's payload:
//
//	 0         1         2
//	+---------+---------+------------------------------------------+
//	|I| type  | version | payload (varints, length-prefixed fields) |
//	+---------+---------+------------------------------------------+
//	 I (0x80): ignorable. A node that does not know the type skips the entry.
//
//	 1 ImportBatch        nodes verbatim from a snapshot stream (+ checkpoint)
//	 2 SourceTxn          a write ZooKeeper committed, mirrored by the proxy
//	 3 Write              a native write: one op or a multi
//	 4 CreateSession      5 CloseSession      6 ExpireSessions
//	 7 CleanupNodes       8 SetPhase          9 CompactTombstones
//	10 SourceBatch        mirrored txns in commit order (the proxy's delivery)
//	11 SourceSessions     ZooKeeper sessions the proxies saw (shadow only)
//	12 SetCheckpoint      one checkpoint, any phase (the cutover's proxy registry)
//	13 MirrorAck          ZooKeeper holds the reverse mirror's records up to an index
//
// Payloads use varints (zigzag for signed values), uvarint-length-prefixed
// strings, and byte fields stored as length+1 so that 0 is nil. Each command's
// layout is drawn next to its appendPayload in entry.go. An entry of an unknown
// type without the ignorable flag, of a newer version, or that does not decode,
// is a FatalEntryError: FSM.Apply panics with it, because a node that applied it
// differently from the others would fork the state. The leader stamps the time
// into the commands that need one; the FSM never reads a clock. Encode builds
// entries; Decode parses them.
//
// # Zxids
//
// Journal-originated zxids continue ZooKeeper's sequence: (epoch << 32) |
// counter, in an epoch strictly above every source epoch seen (in imported stats
// or mirrored txns), so zxids keep growing across the cutover. The epoch is
// raised, and the counter restarted at 1, when the first journal zxid is minted
// after a higher source epoch appears (and eagerly at the change to primary);
// a counter overflow moves to the next epoch, as a ZooKeeper election would.
//
// What consumes a journal zxid, as in ZooKeeper: every native Write, succeeded
// or failed (ZooKeeper logs failed writes as error txns; a multi takes one zxid
// for all its ops), CreateSession, CloseSession and each session an
// ExpireSessions closes, and each node a CleanupNodes deletes. Writes refused
// because of the phase, commands refused as malformed, SetPhase,
// CompactTombstones, ImportBatch and SourceTxn do not (a SourceTxn carries
// ZooKeeper's own zxid).
//
// # Native writes
//
// Native writes are allowed in the primary and finalized phases; in shadow they
// fail with CodeNotReadOnly (ZooKeeper is the source of truth, the journal is a
// read-only replica). They are checked in PrepRequestProcessor's order so that
// they fail with ZooKeeper's code, and applied with DataTree's effects: create
// raises the parent's persisted cversion and sets its pzxid; a sequential name is
// the prefix plus the parent's persisted cversion ("%010d", so after five
// creates and a delete the next suffix is 0000000005); delete raises the parent's
// pzxid but not its cversion; setData bumps version, mzxid and mtime; setACL
// bumps aversion only. A write naming a session the table does not have fails
// with SessionExpired (session 0 is the embedded API's "no session"; ephemerals
// need a real one). ACLs are stored interned and validated (non-empty, known
// schemes, well-formed ids, "auth" expanded to the caller's identities);
// permission checks against them are a later part. A multi is atomic: its ops
// run in order on the live tree with an undo log, and on the first failure
// everything is rolled back (tree, digest, indexes, ACL references, collected
// watch events) and the results follow ZooKeeper: OK for the ops before, the
// code for the failing op, RuntimeInconsistency after.
//
// # Merging ZooKeeper's writes
//
// In the shadow phase the journal receives the bulk copy (ImportBatch, from a
// fuzzy walk of a live tree or a data directory) and the mirror stream
// (SourceTxn) in any interleaving, with duplicates. Applying them must converge
// on ZooKeeper's tree (DESIGN.md "Zxid-ordered, idempotent apply"). Every input is
// turned into observations of paths at zxids, and the state kept per path is a
// join of its observations, so order and repetition do not matter:
//
//   - Incarnations. A path's incarnation is named by its czxid; every stat
//     observed (create, setData, setACL, import) carries it. An observation of
//     an older incarnation than the one held is dropped; one of a newer
//     incarnation replaces the one held, whose death is implied (it must have been
//     deleted in between).
//   - Data (data, version, mzxid, mtime) is last-writer-wins on mzxid, ties going
//     to the higher version (two setData in one multi share a zxid); the ACL and
//     aversion are last-writer-wins on aversion.
//   - Child registers. pzxid is the maximum of everything observed: the node's
//     own stats and its children's creates and deletes. The cversion is
//     last-writer-wins on the zxid as of which it was observed (a child create's
//     zxid with the parent cversion it produced, or a stat's pzxid, as of which
//     its cversion holds), ties going to the larger count; within one incarnation
//     that is the maximum. The node keeps that zxid (cvKey, in its child set, and
//     only when it differs from pzxid), so that when a newer incarnation of the
//     parent appears, the register values that belong to it — those observed at
//     or after its czxid — are kept and the rest dropped. A child event is
//     applied to the parent incarnation held if that one was created before it,
//     and dropped if the parent's tombstone or a newer parent incarnation shows
//     the incarnation alive at the event's zxid is dead.
//   - Deletes. A delete at zxid d kills the incarnation held if it was created
//     before d (never a newer one), records a tombstone (the largest d per path)
//     so that a create older than d arriving later does not resurrect the node,
//     and raises the parent's pzxid. Children created before d died before it and
//     go too; descendants created after d belong to a later incarnation and wait
//     as pending records. A child whose parent's tombstone or incarnation is newer
//     than the child's czxid is dead on arrival.
//   - Multis. Ops of one multi share a zxid, so their own order decides: an op
//     whose path (or, for its effect on the parent, whose parent path) is deleted
//     later in the same multi touched an incarnation that died at that zxid and is
//     skipped; the last delete of a path also kills the incarnation created at
//     that zxid ("inclusive") if the multi created the path before deleting it and
//     not again after.
//   - Pending records. What cannot be shown yet is kept aside, invisible: a
//     child's create seen before its parent's (the orphan waits under a pending
//     record of the parent path, and is promoted with its own waiting children when
//     the parent becomes visible), an incarnation seen through setData or setACL
//     only (no ACL or no data yet), and child registers for a parent incarnation
//     not seen yet. This was chosen over materializing placeholder parents: a
//     placeholder would show clients, and the digest, a node ZooKeeper never had
//     with a made-up ACL and stat. With a complete input (every txn after the walk
//     started, plus the walk) nothing stays pending; whatever does, and every
//     tombstone, is dropped when the journal becomes primary (Result.Purged
//     reports how many records were unresolved — divergence to investigate).
//   - The system nodes ("/" and ZooKeeper's three) exist from the start with
//     czxid 0 and only ever merge.
//
// Reads, the digest and snapshots of nodes see only the visible tree. Watches
// fire for visible changes. TestConvergence checks the property against a plain
// sequential model of DataTree on random histories with fuzzy walks, any order and
// duplicates. Tombstones accumulate during a long shadow period;
// CompactTombstones drops those at or below a zxid once the import is complete and
// the mirror has delivered everything up to it.
//
// Mirrored txns and imports are refused (ErrWrongPhase) once the journal is
// primary: from then on ZooKeeper only follows the journal through the reverse
// mirror, and a late mirrored write must be reported as divergence by its sender.
//
// # Sessions, expiry and clean-up
//
// Session ids are derived from the CreateSession entry's log index (unique for
// the journal's life, so an expired id is never handed out again): top byte 0x7A
// (where ZooKeeper keeps its server id), then the index, skipping ids in use or
// owning ephemerals. Touching a session is not replicated: the leader tracks
// liveness in memory and commits its expiry decisions as ExpireSessions, which the
// FSM applies like a close (ephemerals deleted in path order, parents' pzxid
// raised to the close's zxid). A new leader restarts every session's clock from
// its timeout, as ZooKeeper does. When the journal becomes primary, the ZooKeeper
// sessions are adopted into the table: those the proxies mirrored in shadow
// (SourceSessions: id and negotiated timeout, kept apart from the table and
// never expired by the journal while ZooKeeper is the source of truth), and
// any other owner of ephemerals (timeout SetPhase.AdoptTimeoutMs), so that a
// client resumes its ZooKeeper session on the journal with its id and
// password, and ephemerals go away if their clients do not come back. Containers and TTL nodes are chosen by the leader
// (CleanupCandidates) and committed as CleanupNodes; the FSM checks ContainerManager's
// conditions again at the entry's time and deletes only the still-eligible ones.
//
// # Phases
//
// shadow → primary → finalized, one step at a time, at a log index every node
// applies identically. primary → shadow is a rollback and needs SetPhase.Rollback;
// nothing leaves finalized.
//
// # Rollback
//
// SetPhase(shadow, rollback) is refused while the reverse mirror's outbox
// holds anything. Applied, it brings the state back under shadow's rules
// (rollback.go; Result.Rollback says what it did, in the applying process):
//
//   - Sessions: each journal-minted session is closed (its ephemerals
//     deleted, one zxid, as a closeSession), since ZooKeeper never knew it;
//     each adopted ZooKeeper session goes back to the mirrored sessions,
//     owned by ZooKeeper again and never expired by the journal.
//   - Rebase: every zxid the journal stamped in the period (czxid, mzxid,
//     pzxid, the cversion's key: those above the period's first journal zxid)
//     is lowered to ZooKeeper's zxid at the change to primary, the digest
//     kept. ZooKeeper's copies of those nodes carry ZooKeeper's zxids, all
//     above it, so they win every merge of an import, a repair or a mirrored
//     txn. An observation of a node the journal created in the period (its
//     czxid lowered) whose czxid lies in ZooKeeper's zxids of the period is
//     ZooKeeper's copy of the same node (every write ZooKeeper took in the
//     period was the mirror's, in the journal's order): it merges as the same
//     incarnation, taking ZooKeeper's czxid and ctime, keeping the node's
//     children and its raw owner (the client API shows a container's or TTL
//     node's as 0), instead of killing the node and its subtree as an older
//     incarnation. The window (ZooKeeper's zxid at the start, at the last
//     ack) is derived from the zxid map below, in snapshots too. Until
//     ZooKeeper's copy replaces it, a rebased node still carries the base
//     in one of those zxids: FSM.Rebased (admin GET /rebased) lists them,
//     which is what a rollback's rebaseline repairs (a node ZooKeeper itself
//     wrote at exactly the base is listed too).
//   - The digest history logged in the period (at journal zxids) is dropped.
//   - The zxid map's period is closed.
//
// Zxids stay monotonic across any number of round trips: the journal's
// epoch and counter survive the rollback, and the next primary mints above
// them and above every source epoch seen meanwhile (mint, and the eager epoch
// fix at the change to primary).
//
// The zxid map (ZxidPeriod, ZxidMap, TranslateZxid; snapshot record 74;
// GET /cutover?zxid_map=1): for each primary period (the last 16), the
// journal zxids it minted and points (journal zxid, ZooKeeper zxid) at which
// ZooKeeper held the journal's tree — the first at the change to primary
// (ZooKeeper's zxid there), one per MirrorAck (the last acknowledged record's
// zxid against the ack's ZooKeeper zxid), the last at the rollback. A
// period keeps at most 1024 points, dropping every other when full. The
// proxies translate a client's journal zxid to the last point at or below
// it, never ahead of ZooKeeper (package dualwrite, rewrite.go).
//
// # Reverse mirror
//
// While the journal is primary, every entry that changes the tree — a
// successful native Write, a session's close or expiry with its ephemerals,
// a CleanupNodes that deleted something — leaves a MirrorRecord in the FSM's
// outbox (reverse.go): the entry's index, zxid and leader time, and the
// ZooKeeper writes that reproduce its effect: creates under the exact names
// the journal gave (a sequential create is recorded as a plain create of its
// name, which bumps the parent's cversion alike), with the ACL as stored
// ("auth" expanded) and the owner of an ephemeral; setData and setACL with
// the version the node had before, so that ZooKeeper ends on the journal's
// number and a node changed behind the mirror's back fails rather than being
// overwritten; deletes and checks with the client's version; a multi's ops as
// one multi; a session end as its ephemerals' deletes (marked Cleanup:
// ZooKeeper may have deleted them itself) and a closeSession. Failed writes
// and check-only multis leave nothing. The outbox is replicated state, in
// snapshots (records 72, 73), so log compaction loses nothing. MirrorAck
// (sent by the applier, package reversemirror) drops the records up to an
// index and moves the cursor (Acked, with ZooKeeper's zxid for it); an ack at
// or below the cursor is a no-op, so it is retried freely. SetPhase to
// primary starts an empty outbox with the cursor at its own index; finalized
// drops it; a rollback to shadow is refused (ErrPhaseTransition) while the
// outbox holds anything, because those writes would exist nowhere but in the
// journal that is about to stop being the source of truth. MirrorStatus and
// MirrorPending read it.
//
// # Concurrency
//
// Apply runs on raft's FSM goroutine, under the FSM's write lock; reads take the
// read lock, so a read sees the state between two entries, never inside one.
// Watches are registered under the read lock and fired under the write lock at the
// end of the entry that triggered them, so a read-and-watch is atomic with respect
// to apply: no event is missed between the read and the registration. Firing never
// blocks: each Watcher has a bounded queue, and one that is full overflows (its
// watches are dropped, its channel closed, Err says ErrWatcherOverflow); the
// server closes that client's connection and the client re-registers its watches
// with SetWatches, which reports what it missed.
//
// Snapshot copies the state under the read lock — for the nodes, one fixed-size
// record each (path, stat, ACL id, child count; the data is shared, since node
// data is never modified in place) — and Persist sorts and writes it without any
// lock. At 1M nodes the copy holds the lock for a few hundred milliseconds; a
// copy-on-write scheme would remove even that and is a possible later step. Walk
// (for verify) streams from the same kind of copy.
//
// # Snapshots
//
// FSM snapshots are files of the shared snapshot format (znode, Kind "fsm"): the
// visible nodes as node records in path order (parents before children), then
// the rest of the state as application records (the layout is drawn in
// snapshot.go). Restore rebuilds the state off to the side, checks that the tree
// is well formed and that the recomputed digest equals both the trailer's and the
// one recorded in the state, and only then swaps it in; a damaged or inconsistent
// snapshot is an error naming what is wrong and leaves the FSM as it was. A
// restore does not fire watches: a node restores at start-up or when it was too
// far behind, and the server drops its client connections then (clients
// re-register with SetWatches and learn what changed).
//
// # Memory
//
// The tree costs about 200 bytes per node beyond the data at 1M nodes
// (BenchmarkMemoryPerNode), path bytes included. A node is a 96-byte struct (a Go
// size class): the persisted stat fields, the data slice, a 4-byte id into an
// interned ACL cache, and a pointer to a child set that only parents have. The
// path lives once, as the map key; a child set holds names that are substrings
// of the children's keys, in an unsorted slice (16 bytes a child), with a name →
// position map added only above 1024 children so that deletes from huge sets
// stay O(1) — below that a scan is cheaper than a map's 50 bytes a child. Readers
// get sorted copies. Import batches decode in place and copy paths and data into
// one arena each and nodes into one slab per batch, so an imported node costs no
// allocation of its own; the price is that a batch's arenas live as long as any
// of its nodes (replaced data is not freed while its batch lives). An importer
// that passes ImportBatch.SizeHint (the snapshot's node count) has the node
// table sized once instead of grown step by step.
package raftjournal

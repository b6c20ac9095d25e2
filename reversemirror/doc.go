// Package reversemirror keeps ZooKeeper current while the journal is primary,
// so that a rollback to ZooKeeper loses nothing: every write the journal
// commits is applied to the ensemble, in the journal's commit order, as
// ordinary ZooKeeper writes, exactly once across crashes and leader changes.
//
// It is the applying half. The replicated half is raftjournal's outbox (see
// "Reverse mirror" in raftjournal's documentation): while primary, each entry
// that changes the tree leaves a MirrorRecord with the ZooKeeper writes that
// reproduce it, kept in the FSM's state (snapshotted, so log compaction loses
// nothing) until a MirrorAck entry says ZooKeeper has it.
//
// # Who runs it
//
// A Mirror runs beside every journal node (`serve --zk`; --reverse-mirror is
// on by default) and applies only while its node leads a primary journal: a
// leader duty, like session expiry. Of the candidates this is the one that
// survives any single crash and needs nothing else to be up: the outbox is on
// every node, a new leader's mirror starts within an election, and it reads
// the records from its own FSM in commit order. The proxies were the other
// candidate; they are many, come and go, and clients may bypass them (straight
// to a journal node's client port), so none of them sees every write, and
// they would need the outbox anyway. A separate process would add one more
// thing to keep alive without adding anything the leader lacks. Two mirrors
// at once (an old leader that has not yet noticed) are harmless: see below.
//
// # Exactly once: the marker
//
// ZooKeeper holds, in a marker node (DefaultMarker, /zookeeper/zk2raft), the
// last journal index it has and the primary period it belongs to (the index
// and leader time of the SetPhase entry that began it), as JSON readable with
// zkCli. A marker of this journal's previous primary period (which the
// journal's replicated state remembers) is reset at the start of the next
// one; a marker that names any other period is refused, never trusted to
// skip entries: another journal writes to this ensemble, or this one was
// rebuilt, or (rarely) two round trips without a write passed before the
// mirror looked, and the operator deletes the marker
// (TestMirrorRefusesForeignMarker). Every write
// to ZooKeeper is one multi: the records' ops, then setData(marker, {index},
// version v), where v is the marker's version as last read. ZooKeeper applies
// all of it or none, so the marker's index is exactly what ZooKeeper holds:
//
//   - a crash (kill -9 of the leader, of the mirror) before the multi
//     commits leaves nothing; after it, the marker says so and the next mirror
//     starts after it, acknowledging to the journal what it had not yet;
//   - a lost connection leaves the outcome unknown: the mirror reads the
//     marker again (after a sync) and goes on from what it says;
//   - a second mirror writing at the same time fails its version check and
//     re-reads the marker: nothing is applied twice.
//
// The marker lives under /zookeeper, which ZooKeeper 3.8 lets a client create
// nodes in (the tests create theirs there): ZooKeeper's digest leaves the
// nodes below /zookeeper/ out, and exports and verify at the root scope the
// whole /zookeeper subtree, so the marker never shows as a difference
// between the two sides. Its creation does move /zookeeper's own child
// registers (cversion, pzxid), which ZooKeeper's digest includes: the
// rollback imports that node into the journal (package cutover's
// rebaseline), so that the next cutover's digests compare equal. Its ACL is
// world:read plus the mirror's own credentials.
//
// setACL is not a multi op in ZooKeeper (nor in the journal, which refuses it
// in a multi like ZooKeeper), so a setACL entry is written alone and then the
// marker; it carries the aversion the node had before, so a repeat after a
// crash between the two fails with BadVersion, and the mirror accepts that
// when the node already has the journal's ACL at the journal's aversion.
//
// Consecutive records that go through the same ZooKeeper session are batched
// into one multi (MaxBatchOps, MaxBatchBytes): a journal multi stays atomic
// and in order inside it; the journal zxid → ZooKeeper zxid map only gets
// coarser (one ZooKeeper zxid per batch, the marker's mzxid, reported with
// each MirrorAck). A record that creates an ephemeral must go through its
// session's ZooKeeper twin (below); any other goes through whichever session
// the previous record used, so that a stream of one session's ephemerals and
// plain writes stays one run of multis.
//
// # Pipelining
//
// The mirror does not wait for a multi's reply before it sends the next:
// up to MaxInFlight (DefaultMaxInFlight, 4) are in flight on one ZooKeeper
// session, which ZooKeeper applies in the order sent. Each multi checks the
// marker at the version the one before it leaves (v, v+1, …), so if one
// fails, every later one fails its check too and ZooKeeper holds exactly
// the multis before it. The marker alone would not do: with a second mirror
// about (an old leader), the first multi in flight could fail on the other
// mirror's marker write and the second one's check (v+1) then pass, applying
// its records on top of a ZooKeeper that lacks the first's. So each term of
// the mirror also keeps a pipeline node, an ephemeral child of the marker
// (p-<its ZooKeeper session>, no data), that every one of its multis sets at
// the version the one before it left: a multi applies only if every earlier
// multi of this term did, and no one else moved the marker since the term
// read it. When one fails, the mirror first waits for the outcome of every
// multi behind it (so that none can reach ZooKeeper later), then acts as
// above: an unknown outcome or a moved marker re-reads the marker; a
// divergence stops the mirror at that entry; a clean-up delete ZooKeeper had
// made itself is skipped and the failed multis assembled again. A multi that
// must go through another session (a twin), a setACL, and the sentry's and
// the fence's moments (below), wait until nothing is in flight.
// TestPipelineConnectionLoss, TestPipelineSplitBrainMidway and
// TestPipelineMarkerMovedMidway cut the connection, make a multi fail, and
// move the marker, each with many multis in flight.
//
// # What ZooKeeper ends up with
//
// With ZooKeeper equal to the journal at the start of the period (the
// cutover's gates prove it), every node ends with the same path, data (nil
// and empty kept apart), ACL list, version, cversion, aversion and number of
// children: sequential nodes are created under the exact name the journal
// gave them, and any create raises the parent's cversion as a sequential one
// does, so the next names agree; setData and setACL carry the version the
// node had before the journal's write, so ZooKeeper lands on the same
// number. What differs is what each side stamps itself: czxid, mzxid, pzxid,
// ctime, mtime, and the ephemeralOwner of ephemerals of journal-minted
// sessions (below). TestMirrorFollowsJournal checks this with verify, node by
// node, after a workload of every kind through the journal's client port
// (go-zookeeper and kazoo).
//
// # Ephemerals: the session keeper
//
// An ephemeral needs a live ZooKeeper session, and goes when it ends. For
// each session the journal adopted from ZooKeeper at the cutover, and each
// journal-minted session that creates ephemerals in primary, the mirror
// keeps a ZooKeeper session open, creates that session's ephemerals through
// it (the multi with the marker goes over that session's connection), and
// when the journal closes or expires the session, deletes its ephemerals
// explicitly, in the journal's order, and closes the ZooKeeper session.
//
//   - A session the journal adopted from ZooKeeper at the cutover is kept as
//     itself: the mirror resumes the very ZooKeeper session with its id and
//     ZooKeeper's deterministic password (zkserver.SessionPassword). Its
//     ephemerals keep their owner, the ones made in shadow stay alive in
//     ZooKeeper, and after a rollback its client can resume it on ZooKeeper.
//   - A journal-minted session has no ZooKeeper twin by nature; the mirror
//     opens one. Its ephemerals exist in ZooKeeper with that session as owner
//     (the documented ephemeralOwner difference). These sessions cannot be
//     resumed on ZooKeeper by their clients: at a rollback the mirror closes
//     them (their ephemerals go, as after an expiry; the forward mirror
//     brings those deletes into the journal) and the clients see their
//     session expire and recreate their ephemerals, as after a ZooKeeper
//     failover.
//
// Which ZooKeeper session stands for which journal session is recorded as the
// marker's session children (s-<journal id>, data the ZooKeeper id, hex;
// the p-… child is a running mirror's pipeline node), created and
// deleted in the same multis that first need them and that close them, so a
// restarted mirror resumes the same sessions. A ZooKeeper session that expired
// meanwhile (no mirror ran for longer than its timeout) took its ephemerals
// with it: the mirror counts it (Status.LostSessions) and logs it, and
// ZooKeeper lacks those ephemerals until the journal's session ends. One
// ZooKeeper connection per such session, from the leader, is the cost.
//
// # Divergence: stop, never skip
//
// A write ZooKeeper refuses — a version that does not match, a node that
// exists or does not — means ZooKeeper's copy differs from the journal's: a
// write made straight to ZooKeeper (split brain), or damage. The mirror stops
// at that entry, says which (Status.LastError: journal index, zxid, op, path,
// ZooKeeper's error), overwrites nothing, skips nothing, and retries every
// Retry until someone puts the node back (TestMirrorStopsOnSplitBrain); the
// sentry (below) records the write that caused it. The one exception is a delete made by a session's end or by container/TTL
// clean-up (MirrorOp.Cleanup): ZooKeeper may have made it itself (its own
// expiry or ContainerManager), so a missing node is skipped there and counted
// (Status.CleanupGone).
//
// # Split-brain writes: the sentry
//
// After the switch a write that reaches ZooKeeper around the proxies (a
// client still connected to it, a script, an operator's zkCli) forks the
// state: ZooKeeper has it, the journal does not. The mirror's sentry reports
// every such write, never merges or drops it: as a replicated record in the
// journal (a checkpoint under SplitBrainPrefix: path, what happened — create,
// delete, setData, setACL —, ZooKeeper's zxid, the session when known, what
// was expected and what was found), an ERROR log line, and the counter
// zk2raft_reverse_mirror_split_brain_writes_total (the gauge
// zk2raft_split_brain_writes_unresolved counts the open records, on every
// node with a mirror); `cutover status` lists them and `cutover --to
// finalized` refuses while one is unresolved.
//
// Where it runs: in the mirror, a leader duty, rather than in the proxies'
// reconcilers (which watch ZooKeeper in shadow and stop at the switch):
//
//   - Telling the mirror's own writes apart needs what only the journal's
//     nodes hold — the outbox (what ZooKeeper is still owed) and the
//     mirror's exact position (the marker's index, which it writes itself);
//     a proxy would have to fetch both over the network and would still race
//     the mirror's multi in flight.
//   - One instance, on the leader, in commit order: no duplicate reports from
//     several proxies, and it survives any single crash like the mirror.
//   - It has what it needs already: ZooKeeper's servers and the super
//     user's credentials (a watcher gets no event for a node it cannot
//     read). Proxies come and go and need not have them.
//
// How it tells them apart: by state, not by zxid. A persistent recursive
// watch on Root (on a session of its own) makes every changed path a suspect;
// a suspect is judged only between two of the mirror's batches, when no multi
// of the mirror is in flight (with suspects waiting, the mirror lets its
// pipeline run empty before it sends more) and ZooKeeper holds exactly the
// records up to the marker's index (each multi is atomic and moves the
// marker). The node's
// expected state is then known exactly: the state before the first outbox
// record not yet applied that touches it (a create expects no node, a
// setData or a delete with a version expects the node at that version), or
// the journal's current node when no pending record touches it (existence,
// version, data, aversion). ZooKeeper's copy is compared with it; a
// difference is a split-brain write. The mirror's own writes are exactly the
// transitions the records describe, so they never differ; the session
// keeper's sessions change no node but ephemerals, whose deletes the mirror
// makes explicitly in its multis. Alternatives considered: the set of
// ZooKeeper zxids the mirror's multis got (one per multi, the marker's
// mzxid) — exact for creates and setData, but a delete leaves no stat to read
// a zxid from, the set must survive restarts, and ZooKeeper 3.8's watch
// events carry no zxid to match; the ZooKeeper session ids the mirror and
// keeper own — right for the data-directory route (the txn log names the
// session), but a client-API watcher never sees who wrote. The zxid and the
// session are still reported: the node's czxid (create) or mzxid (setData),
// the parent's pzxid (delete), the ephemeral's owner, or else the server
// connection (`cons`) whose last zxid is the write's (best effort: the
// client may have moved on; "unknown" then).
//
// Not reported: a node ZooKeeper deleted itself that the journal holds as an
// ephemeral, a container or a TTL node (a session the keeper lost, the
// ContainerManager: Status.CleanupGone), and anything under /zookeeper. A
// setACL fires no watch event in ZooKeeper: it is found when the mirror next
// writes that node's ACL (it stops, and the path becomes a suspect) or by a
// scan; while the fence is on, nobody but the mirror can change an ACL.
//
// Lost events: a new watch (the mirror starts, a leader change, a new
// session) or a reconnect may have missed some, so the sentry then scans
// ZooKeeper's subtree against the journal (every node's existence, version,
// data and aversion — unless a fence moved the aversions in this period —;
// the journal's children ZooKeeper lacks) and makes every
// difference a suspect, judged as above. A write made while no mirror ran is
// found by the next one, and the records are Raft state: a restart forgets
// none (TestSplitBrainReported). The scan reads every node once (getData and
// getChildren, on the sentry's session, in the background of the mirror): at
// a million nodes, minutes of reads.
//
// Resolution: a record is resolved "verified" when the sentry, looking again
// every Verify, finds ZooKeeper's copy agreeing with the expected state
// (someone undid the write: deleted the stray node, recreated a deleted one
// as the journal has it), or "operator" when `cutover resolve` acknowledges
// it (ZooKeeper's copy stays forked and the operator accepts that, typically
// before finalize, after which ZooKeeper is retired). A setData around the
// proxies cannot be undone exactly (ZooKeeper's version only goes up): it is
// acknowledged, or a rollback's rebaseline takes it over. At most
// MaxSplitBrainRecords are kept; past that, one overflow record (resolved
// like the others) and the log lines name the rest.
//
// Cost to the mirror: under load every path it writes comes back as a
// suspect; the checks go out together between two batches (pipelined, 64 at
// once, one getData each). BENCHMARKS.md ("Reverse mirror") has the figures.
//
// # The fence
//
// Detection says a write happened; the fence, off by default, makes
// ZooKeeper refuse it. `cutover fence` (or `cutover --to primary --fence`)
// writes a request into the journal (FenceRequestKey); the mirror, between
// two batches, records the primary period in its answer (FenceStateKey),
// then walks ZooKeeper's subtree (Root, /zookeeper left out) and gives every
// node FencedACL(the journal's ACL): each entry keeps only its READ
// permission (who could read still can; nobody gains a read) and the
// mirror's digest identities get every permission. ZooKeeper checks the ACL
// of the node a request names (its parent's for create and delete) and ACLs
// are not inherited, so every node is fenced, the root too: top-level ACLs
// alone would not stop a setData below them. From the request on, every
// batch the mirror assembles creates nodes fenced and writes fenced ACLs, so
// a node created before the walk is in ZooKeeper when the walk passes and
// one created after arrives fenced. The mirror needs credentials (refused
// without: it would lock itself out); as ZooKeeper's super user it passes any
// ACL anyway. With the fence on, an independent client's setData, creates,
// delete and setACL fail with NoAuth (TestFenceRefusesDirectWrites, kazoo).
//
// The lift (cutover.LiftFence; `cutover fence --lift`) walks again and gives
// every node the journal's ACL. The originals are stored durably without a
// store of their own: they are the journal's ACLs, replicated and
// snapshotted — every ACL change goes through the journal, the mirror keeps
// ZooKeeper's ACLs equal to them, and the fence never writes the journal. So
// the lift restores every ACL list exactly, those the journal changed while
// the fence was on included. Nodes the journal lacks (split-brain creates)
// are left alone by both walks (NotInJournal; each made a suspect): their
// original ACL is nowhere else.
//
// What it costs: setACL always raises a node's aversion, so after a fence and
// a lift every node's aversion in ZooKeeper is the journal's plus two
// (verify and ZooKeeper's digest see it; a rollback's rebaseline takes
// ZooKeeper's). In a primary period whose ACLs a fence touched, the mirror
// writes ACLs with version −1 and the sentry does not compare aversions. Each
// walk is one getACL and at most one setACL per node (minutes at a million
// nodes, beside the mirror's own traffic), and skips nodes that already have
// the wanted ACL, so a walk repeated after a leader change raises no aversion
// twice. The lift must happen while the journal is primary (the mirror walks
// only then): a rollback lifts before it commits.
//
// # Finalize
//
// From SetPhase(finalized) on the journal records nothing for ZooKeeper (the
// outbox is dropped), the mirror stops applying, its sentry stops watching,
// and it closes every ZooKeeper session it kept — the adopted ones too, since
// no rollback will hand them back (ZooKeeper deletes their ephemerals there;
// TestFinalizeEndsTheMirror). A fence, if on, stays: ZooKeeper is retired.
//
// # Lag
//
// The replicated lag is readable on every node, from the outbox: pending
// entries and the age of the oldest (raftjournal.MirrorStatus; /status
// "reverse_mirror"; the gauges zk2raft_journal_reverse_mirror_pending_entries
// and zk2raft_journal_reverse_mirror_lag_seconds). That is what a rollback's
// gate reads; the journal itself refuses SetPhase(shadow, rollback) while the
// outbox is not empty. The mirror's own view (Status: applied index, counts,
// sessions, last error) is a /status extension of the node that runs it.
//
// # Limits
//
//   - ZooKeeper's ContainerManager keeps running: a container emptied in
//     primary may be deleted by ZooKeeper before the journal's clean-up, and a
//     child created in it on the journal meanwhile then stops the mirror (no
//     parent). Raise znode.container.checkIntervalMs on the ensemble while
//     the journal is primary; the journal's clean-up reaches ZooKeeper through
//     the mirror.
//   - While ZooKeeper is unreachable the outbox grows in every node's memory
//     and snapshots; the lag gauges say so. Finalize drops it.
//   - A journal write close to ZooKeeper's jute.maxbuffer, plus the marker,
//     may exceed it; the mirror then cannot apply it (a connection loss,
//     retried).
//   - Batches of different ZooKeeper sessions (ephemerals of several
//     journal sessions, interleaved) go one after the other, one round trip
//     each: ZooKeeper orders one session's requests only.
package reversemirror

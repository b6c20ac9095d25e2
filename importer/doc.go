// Package importer replays a snapshot stream (an export file, or an export
// walk streamed straight in) into the Raft journal, and checks, before any
// migration, what the journal cannot honour.
//
// # Offline: a fresh journal
//
// [Builder] applies ImportBatch entries to a raftjournal.FSM outside raft:
// nodes are cut into entries by encoded size (Options.BatchBytes) and node
// count, encoded on one goroutine and applied on another while the caller
// reads the next ones, at indexes 2, 3, ... ([Built.Install] hands the state
// to raftjournal.InstallInitialSnapshot, which puts the bootstrap
// configuration at index 1). [ImportFile] is the whole offline import of a
// file: refuse a data dir that is not fresh (before reading anything), stream
// and verify the file (every record's CRC, then the trailer's count and
// digest: a truncated or damaged file is an error naming the offset), check
// the journal against the stream, and install (the snapshot is decoded and
// checked as it is written, and its footer checked on disk). Nothing is written to the data dir before the whole file verified,
// and the snapshot appears there by an atomic rename, so a failure or a kill
// -9 leaves the directory as a rerun accepts it.
//
// The journal's digest equals the stream's plus the system nodes the stream
// did not carry, as a fresh journal holds them ([Expectation]): exports of the
// whole tree leave /zookeeper out, which ZooKeeper's own digest counts, so the
// journal's digest is ZooKeeper's digest of the same tree.
//
// # Online: a running journal
//
// [Online] sends the entries through the leader ([Journal]: a node in this
// process, or [RemoteJournal] through a member's admin address), up to
// Options.InFlight at once so that they share the leader's disk writes and
// replication rounds. Every entry carries the import's checkpoint
// ([CheckpointValue], stored by the FSM atomically with the entry's nodes):
// the length of the longest prefix of the stream whose entries had all been
// applied when the entry was sent. Entries in flight may be applied in any
// order, so the checkpoint never claims more than the journal holds, and an
// older one applied late only moves it back. A rerun skips that prefix and
// resends the rest; the FSM's merge makes a node applied twice the same as
// once. The last entry marks the checkpoint Done, after which a rerun of the
// same snapshot sends nothing.
//
// Errors that may pass (no leader, a leader change, a broken connection, an
// outcome unknown) are retried for Options.RetryTimeout; a refusal by the
// state machine (wrong phase, a malformed node) ends the import
// ([ErrRefused]).
//
// # Pre-flight
//
// [Preflight] is a sink over the same stream that counts what the operator
// must decide on: container and TTL nodes (a client-API walk cannot see them:
// ZooKeeper shows them ephemeralOwner 0), data near jute.maxbuffer, ACL
// schemes and those the journal cannot authenticate, unreadable subtrees,
// ephemerals and the sessions that own them, sequential counters near 2^31,
// and other tools' control znodes; and it says what the route the copy came
// by keeps (a client-API walk, or a ZooKeeper data directory, whose raw
// owners make containers and TTL nodes nothing to warn about). Findings are Info, Warning or Blocker; a
// blocker refuses the migration unless its kind is accepted. It holds
// counters and a few example paths per finding, never the tree.
//
// # Migrate
//
// [Migrate] is the whole migration as a library call, which `zk2raft
// migrate` only configures and prints: check the target (a fresh data dir,
// or a journal in the shadow phase) before anything else; walk the live
// ensemble (exporter.Walker), or load a ZooKeeper server's data directory
// ([MigrateOptions].FromDataDir, exporter/datadir: exact at one zxid, raw
// owners), and stream every node at once into the
// pre-flight, the kept snapshot ([MigrateOptions].KeepSnapshot) and the
// import (a [Builder] for a data dir, [Online] for a running journal); refuse
// on a blocker with nothing written to the target ([BlockedError]); finish
// and install; then the verification steps, each a [Check] whose [Outcome]
// is Equal, Different or NotComparable with the reason in its Detail:
//
//	CheckKeptSnapshot     kept snapshot's trailer = the walk's count and digest
//	CheckJournalExport    journal = stream + system nodes (Expectation)
//	CheckInstalled        installed snapshot read back = journal
//	CheckZooKeeperDigest  journal = ZooKeeper's own `hash` entry, where one is comparable
//	                      (from a data directory: its tree's digest at the exported zxid)
//	CheckNodeByNode       verify's field-by-field comparison (VerifyFull)
//
// The verdict ([MigrateSummary].Verdict, computed in one place: verdict) is
// [VerdictVerified] only when a check of the final state
// ([CheckName.FinalState]: journal = export, ZooKeeper's digest, node by
// node) compared and found equality and no check found a difference;
// [VerdictDifferent] when one found a difference; [VerdictUnverified], with
// the checks' reasons, when none could compare. "Not comparable" is not
// success.
//
// A journal that already held nodes when the run began (a rerun after an
// interrupted one, or a journal the mirror fills) cannot be checked against
// the stream's digest alone, and the merge cannot know what ZooKeeper
// deleted since those nodes arrived. The run records the paths it streamed
// and then sweeps (migrate_sweep.go): every journal node in scope that the
// stream did not carry is deleted if ZooKeeper no longer has it (the live
// ensemble, or the loaded data directory), by a mirrored delete at the
// parent's pzxid that spares a newer incarnation; one ZooKeeper still has
// is kept. The journal's scope is then compared with the stream's count and
// digest (CheckJournalExport).
//
// A run whose context ends (Ctrl-C) returns an [InterruptedError]
// (matching [ErrInterrupted] and the context's error) that says what it
// left: nothing, part of an online import (a rerun finishes it), or a
// complete install nothing verified. The pipeline lives here rather than in a package of
// its own because it is this package's import fed by a walk instead of a
// file: its sinks, pre-flight, checkpoint keys and expectations are
// importer's, and a migrate package would hold little but calls into it
// (DESIGN.md's layout already gives importer the exporter and verify
// imports it needs).
//
// # Memory
//
// The importer holds O(batch) nodes besides the journal's tree: the file is
// streamed, and an online import holds at most InFlight entries.
package importer

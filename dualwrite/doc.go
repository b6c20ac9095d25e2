// Package dualwrite is the cutover's safety net: the tap proxy that mirrors
// every write ZooKeeper commits into the journal, and the reconciler that
// repairs what the tap cannot see.
//
// # The tap
//
// Clients connect to the Tap instead of the ensemble. Each client connection
// gets its own connection to one ZooKeeper server (round robin; a server that
// just failed is tried last), and frames are relayed in both directions, so
// sessions, watches, auth and ephemerals stay ZooKeeper's. A four-letter-word
// connection is passed through as bytes. When the server side breaks, the
// client side is closed too: the client reconnects through the proxy, reaches
// another server, and resumes its session there.
//
//	client ──frames──▶ tap ──frames──▶ ZooKeeper server
//	       ◀─────────      ◀─────────
//	                    │ mirror of each successful write (SourceTxn)
//	                    ▼
//	         durable queue (QueueDir) ──delivery──▶ journal leader
//
// Both directions are decoded with zkwire, and a reply is matched to its
// request by xid. The tap changes the stream in exactly two places, neither of
// which the client can observe:
//
//   - A create (opcode 1) is sent as create2 (15), whose reply carries the new
//     node's stat; the reply is cut back to the create reply (path only).
//   - Before a closeSession it sends the session's own getEphemerals (xid
//     −0x7A7A), whose reply it drops: that lists exactly the ephemerals the
//     close deletes.
//
// After a rollback it also rewrites clients' journal zxids (see "The
// cutover's hooks").
//
// # Mirroring
//
// Every write ZooKeeper answered with success becomes a raftjournal.SourceTxn
// carrying the reply's zxid and the exact resulting stat: create of every mode
// (raw ephemeralOwner restored for containers and TTL nodes, which clients see
// as 0), delete, setData, setACL, multi (one txn, ops in order), closeSession
// (the ephemerals it deleted). The ACL mirrored is the one ZooKeeper stored
// (raftjournal.FixupACL, PrepRequestProcessor's fixupACL): duplicates in the
// request dropped, and each "auth" entry expanded into the connection's
// authenticated identities in the order ZooKeeper's identity set iterates
// them (raftjournal.AuthOrder: the order of a ConcurrentHashMap, which the
// tap replays from the connection's ip identity and its addauths). Failed
// writes, including failed multis, mirror nothing. The journal applies
// SourceTxns by the idempotent, order-insensitive rule of raftjournal
// ("Merging ZooKeeper's writes"), so duplicates, retries and races with an
// import or the reconciler converge.
//
// What a reply does not say is read back from ZooKeeper on the tap's own
// session (a zkclient.Client with the Resend policy, connecting in the
// background, each read-back bounded by 10 s) at delivery, never in the reply path (readback.go): the mirror is
// queued with a marker and the reply released; the delivery loop reads the
// values for a whole batch (one read per parent, pipelined) before it submits
// it. The markers are on disk with the mirror, so a restart resolves them too.
//
//   - The parent's cversion after a non-sequential create: an exists on the
//     parent, whose (cversion, pzxid) pair holds as of its pzxid (a server
//     behind the create is synced first); the last create under a parent in
//     the batch carries it. For a sequential create the name's suffix is the
//     parent's cversion before it, known at once. A parent gone or created
//     again meanwhile leaves the value unknown, which is right: the
//     incarnation the create touched is dead.
//   - The txn time of creates inside a multi (ZooKeeper before 3.9 answers them
//     without a stat): from another result of the same multi, or an exists on a
//     node it created.
//   - The ACL of a create or setACL with "auth" entries when the tap cannot
//     predict the expansion: the connection has an identity the tap cannot
//     name (a SASL login, a custom scheme's addauth), or one of its digest
//     credentials may be the super user's and that would change the order
//     (ZooKeeper adds {super, ""} to the set, which can move a resize). A
//     getACL with the tap's credentials (Config.Auth: READ and ADMIN on the
//     node; a super digest is the usual answer), used if the node is still the
//     incarnation and ACL version the write made.
//
// A read-back that fails (or an ACL the credentials cannot read) leaves the
// value out and records a lost mirror, so a repair pass follows (RepairOwed).
//
// # Delivery
//
// A write's mirror is appended to the durable queue before its reply is
// released to the client: written to the queue's segment file by the
// connection's own goroutine (no hand-off), so a proxy crash (kill -9) or
// restart loses nothing the client saw acknowledged, and fsynced within
// QueueSyncEvery (10 ms). A crash of the proxy's machine may lose that last
// window; the queue notices at the next start (unclean shutdown under a new
// boot id), records the loss, and RepairOwed makes the journal whole with a
// repair pass. QueueSyncOnAppend (`--queue-fsync`) closes the window: each
// reply then waits for the fsync of its mirror (group commit). The delivery loop submits queued
// mirrors to the journal in queue order as raftjournal.SourceBatch entries
// (up to DeliveryBatch txns, 4 MiB, each) and acknowledges them once applied;
// in order (each batch sorted by zxid), so that the journal's digest history
// holds ZooKeeper's digests. The queue keeps ZooKeeper's commit order per
// client connection only: a txn of one connection can reach the journal after
// a higher zxid of another, and the journal then drops the digests it logged
// above that txn's zxid (raftjournal's applySourceTxn).
//
// While the journal is unreachable the mirrors wait in the queue, and
// ZooKeeper traffic is not held; the tap starts without a journal as well.
// It says so at once in its log and Status (Journal: reachable or
// unreachable, since when, why), and pings an idle journal (JournalPinger) so
// that the status is true without traffic. A journal reached through several
// members (importer.JournalCluster: the members given, and those learned from
// the cluster) survives the death of the member it was reached through. With
// Sync, the reply is held until the journal
// committed the mirror (at most SyncTimeout). A queue past its bound, or a
// reply the tap cannot turn into a mirror, does not fail the client's
// request: the write is counted as lost, the queue records that a repair pass
// is owed, and the reconciler repairs it.
//
// # Cost
//
// Per request the tap does what any proxy in the path must: a read and a
// write on each side's TCP connection and two goroutine wake-ups; a write
// adds its mirror's append to the queue and a share of the journal's work.
// On the 2-core benchmark machine that is 40–70 µs of CPU per request,
// against 30–35 µs for a relay that only copies bytes and 90–165 µs for
// ZooKeeper's three servers (BENCHMARKS.md). A write at a time costs more
// per write (280–870 µs against 120–210 µs for the Go relay and 90–135 µs
// for socat, one create in flight): the delivery round, the queue's fsync
// and the journal's commit then serve a few writes each instead of hundreds
// (an fsync alone costs about 0.27 ms of CPU on the benchmark machine),
// while the reply itself waits only for the mirror's write to the queue file
// (tens of µs; no fsync unless QueueSyncOnAppend). Give the proxy CPU of its own
// (a journal node's machine, or cores ZooKeeper does not use): there it keeps
// the clients' throughput and adds well under a millisecond to a request.
// On the cores of a CPU-bound ensemble it takes its CPU time from ZooKeeper,
// as any proxy would.
//
// # The tail
//
// Tail (tail.go) is the other shadow route: it follows one ZooKeeper server's
// transaction log (exporter/datadir's Follower, which replays the tree and
// checks every txn against the digest ZooKeeper logged) and mirrors each txn
// as the same SourceTxn the tap would have built, with the stats the replayed
// tree has after each op, in log order, as SourceBatch entries. It needs no
// client re-pointed and sees what the tap cannot: writes that bypass the
// proxies, session expiries, ZooKeeper's own deletes of empty containers and
// expired TTL nodes. Its progress (every txn up to a zxid applied, ZooKeeper's
// digest there, its lag) is a journal checkpoint, TailCheckpointKey, written
// through Raft after the batches it covers: a restarted tail resumes from it,
// and the cutover gates read it. Metrics: zk2raft_tail_* (read_zxid,
// mirrored_zxid, server_zxid, lag_seconds, lag_txns, mirrored_total{type},
// skipped_total, batches_total, checkpoints_total, errors_total{reason}).
//
// # The cutover's hooks
//
// Package cutover drives the tap through the switch (switch.go): Hold stops
// anything more from reaching ZooKeeper (a connection's next request, and a
// new connection before it is dialled, wait in the tap; nothing held is in
// flight or sent), Release lets them go on, SwitchToJournal closes every
// connection relayed to ZooKeeper and relays new ones, as bytes, to a
// journal node's client port, and Align writes a node on the tap's own
// session, mirrored like a client's write, until ZooKeeper's zxid is a
// multiple of 128 (a digest point). The tap also mirrors the sessions it
// sees negotiated (sessions.go: raftjournal.SourceSessions; a resume
// ZooKeeper refuses as expired removes one) so that the journal can adopt
// them at the switch. Config.Held starts a tap holding, for a proxy that
// must not relay anywhere before it has read the journal's phase.
//
// The rollback drives it back: Hold, while the tap relays to the journal,
// stops the client bytes before they are written to the journal (and new
// connections); SwitchToZooKeeper closes the connections relayed to the
// journal, relays new ones to ZooKeeper again (mirrored, as in shadow) and
// ends the hold. From then on the tap changes the stream in one more place
// (rewrite.go): a client's journal zxid — ConnectRequest.lastZxidSeen, the
// relativeZxid of setWatches and setWatches2 — is rewritten in place to the
// ZooKeeper zxid at which ZooKeeper held the same state (the journal's zxid
// map, SetZxidMap), since ZooKeeper refuses a reconnect whose last zxid is
// ahead of its own. SwitchStatus.ZxidsRewritten counts them.
//
// # Metrics
//
// zk2raft_dualwrite_*: connections, requests_total, mirrored_total{op},
// failed_total{reason}, delivered_total, delivery_errors_total,
// queue_records, queue_bytes, lag_seconds (age of the oldest undelivered
// mirror), lost, journal_reachable, readbacks_total{kind,result},
// sync_wait_seconds, malformed_total, oversized_frames_total (requests over
// jute.maxbuffer, MaxRequestFrame), sessions_mirrored_total, and the
// cutover's held, relays_to_journal and journal_connections. Status returns the tap's figures for
// /status. The reconciler's are zk2raft_reconcile_* (ReconcilerStats):
// events, checks, skipped (events the zxid rule settled), repairs by kind,
// repair passes, digest checks by verdict, unreadable_nodes.
package dualwrite

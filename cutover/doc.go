// Package cutover switches the source of truth from ZooKeeper to the journal
// (issue 15): the gates that prove the switch safe, the proxies' hold, the
// drain and the proof, the commit as one Raft entry, the switch of the
// proxies' clients to the journal with their sessions, and `cutover status`.
// It sits above dualwrite (the proxies' tap) and raftjournal (the phase, the
// sessions, the checkpoints it keeps its state in); internal/cli's `cutover`
// verb only parses, calls and prints.
//
// # Single source of truth
//
// The journal's committed phase decides where clients go, never the
// orchestrator's word alone. Each proxy runs an Agent next to its tap:
//
//   - It registers the proxy with the cluster (a checkpoint under
//     ProxyKeyPrefix: id, client and admin addresses, ZooKeeper's servers),
//     so that the gates know whom to wait for and the orchestrator whom to
//     hold.
//   - It polls the phase members applied (every AgentConfig.Poll): a tap that
//     relays to ZooKeeper while the journal is primary switches by itself —
//     a proxy that missed the orchestrator's call, or restarted.
//   - A hold carries a deadline. When it passes without a release or a
//     switch (the orchestrator died, the network parted), the agent first
//     fences the commit — it writes TokenKey = "<cutover>/expired" — and then
//     reads the committed phase: primary switches, shadow releases the held
//     requests to ZooKeeper. The orchestrator's SetPhase carries a guard
//     (raftjournal.SetPhase.Guard: TokenKey must still say "<cutover>/hold"),
//     so a commit that arrives after a proxy gave up is refused by the FSM:
//     whatever the interleaving, every proxy ends on the side the journal's
//     phase names. A proxy that cannot reach the journal at its deadline keeps
//     holding (releasing could fork the state) and says so.
//   - A proxy restarted with its tap held (dualwrite.Config.Held) relays
//     nothing until it has read the phase (or StartWait passed without an
//     answer: then ZooKeeper, the shadow default, with a warning).
//     StartHeld says when to start held: the proxy switched before, or a
//     cutover held it when it stopped (the agent records the hold in its
//     state directory before the tap holds, and forgets it once the hold is
//     settled). A proxy killed while held may come back after the commit, or
//     while the orchestrator still runs: it first fences that cutover off
//     (as an expired hold does), then follows the phase, and keeps holding
//     until the journal answers. The orchestrator, for its part, checks in
//     the drain and the proof that every proxy still holds for this cutover,
//     and aborts when one does not (it restarted, or its hold expired).
//
// # Forward cutover (ToPrimary)
//
//  1. Gates (Inspect, with an alignment so the digest is compared at
//     ZooKeeper's latest zxid): journal in shadow; every registered proxy
//     answers; no ZooKeeper session (cons on every server, three looks a
//     second apart) but the proxies' clients', theirs and their
//     reconcilers' (a client around the proxies, or an unregistered proxy,
//     would not be switched); mirror lag (each proxy's queue, in-flight
//     writes, oldest undelivered mirror, nothing lost; each tail's progress
//     record — the data-directory route — caught up or moving); digests
//     equal at ZooKeeper's latest zxid (under steady writes, at a recent
//     common zxid: the proof below is what decides); no reconciler repair in the last RepairQuiet and nothing
//     unreadable (a repair means something writes around the proxies, whose
//     clients will not be switched); every session the proxies' clients hold
//     is known to the journal. A failing gate refuses the cutover with its
//     name and evidence; Options.Force passes named gates, each logged as a
//     warning and in the cutover's log.
//  2. Fence: TokenKey = "<cutover>/hold".
//  3. Hold: every proxy stops sending requests to ZooKeeper (dualwrite's
//     Hold: held requests are neither in flight nor sent), deadline
//     HoldTimeout. Held clients cannot ping, and ZooKeeper expires a silent
//     session: the drain, the proof and the commit get at most half the
//     shortest timeout of ZooKeeper's sessions (mirrored in the journal),
//     past which the cutover is refused with the clients released, their
//     sessions alive.
//  4. Drain: no request in flight at any proxy, every mirror and session
//     event committed by the journal.
//  5. Proof: an alignment write through a proxy's own session lands ZooKeeper
//     on a zxid Z where it logs its digest; the journal applies Z; the digests
//     are equal at Z and Z is still ZooKeeper's latest zxid (srvr on every
//     server); every proxy session is known to the journal. O(writes), never a
//     walk: the pause does not grow with the tree.
//  6. Commit: SetPhase(primary), guarded by the token — one Raft entry, so
//     every journal node switches at the same index and a leader change
//     leaves them all in one phase. An attempt whose outcome a leader change
//     left unknown is retried through the new leader while the hold lasts
//     (the guard and the entry's idempotence make that safe); when time runs
//     out the orchestrator fences first (token "<id>/aborted") and reads the
//     phase after, so that the answer cannot change behind it. The journal
//     adopts the mirrored sessions.
//  7. Switch: each proxy checks the committed phase itself, closes its
//     ZooKeeper connections (clients see one CONNECTIONLOSS; their held
//     requests were never sent) and relays new connections to a journal
//     node's client port. Clients reconnect through the same address with
//     their session id and password (ZooKeeper's, which the journal derives
//     the same way), keep their ephemerals, and re-register their watches
//     with setWatches at their last zxid, which the journal honours because
//     its zxids are ZooKeeper's. Requests held on a connection that is closed
//     fail with CONNECTIONLOSS (they were never sent, so the client's retry
//     cannot apply them twice); the proxy does not replay them on a journal
//     connection of its own, because it would have to re-register the
//     client's watches for it, which it does not track. Connections held
//     before their first request go on to the journal.
//
// A failure before the commit aborts: the token says aborted (a late commit
// is refused), the proxies release their held requests to ZooKeeper, and
// nothing is lost. A commit whose outcome is unknown leaves the proxies
// holding until their deadline, when each follows the phase. Each step is
// logged and recorded in the journal under LogKey, which `cutover status`
// shows with the phase, the proxies and the gates.
//
// # Sessions
//
// During shadow the proxies mirror the sessions they see negotiated
// (dualwrite's SourceSessions: id and timeout; a resume ZooKeeper refuses as
// expired forgets it; a closeSession is mirrored with its ephemerals). The
// journal keeps them apart and does not expire them while ZooKeeper owns
// them; at the commit their clocks start on the journal's leader. A session
// ZooKeeper expired without any proxy seeing it (its client vanished) is
// adopted all the same and expires on the journal's clock after its timeout.
//
// # After the switch: split-brain writes and the fence
//
// In primary a write that reaches ZooKeeper around the proxies forks the
// state. Detecting it is the reverse mirror's duty (package reversemirror,
// "Split-brain writes"): it runs on the journal's leader beside the outbox
// and the marker, which are what tell its own writes from anyone else's, and
// records each such write in the journal (a checkpoint under
// reversemirror.SplitBrainPrefix), so a restart or a leader change forgets
// none. This package reads them: Status.SplitBrain (`cutover status`, text and
// --json), SplitBrain, and Resolve — the operator's acknowledgement, kept in
// the record with a note; the sentry resolves a record by itself when
// ZooKeeper's copy agrees with the journal again.
//
// The active fence is off by default. Fence (`cutover --to primary --fence`,
// `cutover fence`) asks the mirror to give every ZooKeeper node an ACL that
// keeps who may read it and lets only the mirror write it; LiftFence gives
// every node back the journal's ACL, which is the one it had (every ACL
// change goes through the journal, the fence never writes it). Both write a
// request into the journal and wait for the mirror's answer there; the
// mirror walks only while the journal is primary, so a rollback calls
// LiftFence before it commits SetPhase(shadow). Aversions move: see the
// runbook.
//
// # Finalize (ToFinalized)
//
// The point of no return. Gates, none of which can be forced: the journal is
// primary; every registered proxy answers, relays to the journal, holds
// nobody and has no ZooKeeper connection left; no split-brain write is
// unresolved. Then the cutover token is set to "<id>/finalize" and
// SetPhase(finalized) is committed guarded by it (one Raft entry; a
// concurrent cutover command that takes the token first makes it fail with
// nothing changed). From that entry the journal drops the reverse mirror's
// outbox and refuses any phase change back to shadow; the mirror on every
// node stops applying and closes the ZooKeeper sessions it kept. The CLI asks
// for confirmation unless --yes and refuses without a terminal to ask on.
//
// # Rollback (ToShadow, issue 16)
//
// While the journal is primary, its leader's reverse mirror (package
// reversemirror, serve --zk) writes every journal write to ZooKeeper. The
// way back goes through the same proxies, now relaying bytes to the journal:
//
//  1. Gates (Inspect in primary): journal (answers, primary), proxies (every
//     registered one answers), reverse-mirror-lag (ZooKeeper lacks no
//     journal write older than MaxLag — the replicated outbox's oldest
//     pending entry — and the leader's mirror reports no error). Force
//     passes named gates as forward, never silently; a forced lag gate only
//     lets the rollback try: the drain below still has to finish.
//     Then, before anything is held: the split-brain writes recorded while
//     primary are named in the report (they stay in ZooKeeper, and the
//     rebaseline takes them into the journal), and the active fence, if
//     set, is lifted (LiftFence: a walk of the tree, which does not fit in
//     a hold; a write around the proxies meanwhile is still caught by the
//     sentry).
//  2. Fence: TokenKey = "<id>/hold", as forward.
//  3. Hold (holdRequest.To shadow): each proxy stops relaying client bytes
//     to the journal (a request cut off mid-frame was never whole there)
//     and holds new connections.
//  4. Drain: until the replicated outbox is empty (read after a barrier):
//     ZooKeeper has every journal write, and its marker names the last one.
//     Held clients cannot ping, and until the commit the journal's leader
//     expires a silent session (the mirror then ends it in ZooKeeper too):
//     the drain and the commit get at most half the shortest timeout of the
//     sessions the journal adopted from ZooKeeper, past which the rollback
//     is refused with the clients released, their sessions kept.
//  5. Commit: SetPhase(shadow, rollback), guarded by the token — one Raft
//     entry, every node switches at its index; the FSM itself refuses it
//     while the outbox holds anything, so the commit is the proof. A write
//     that was on its way when the proxies held lands after the drain and
//     makes the FSM refuse: drain again, within the hold. A leader change is
//     retried as forward; when time runs out the orchestrator fences and
//     reads the phase. Any failure before the commit releases the proxies
//     to the journal: it is still the source of truth, nothing is lost.
//  6. The leader's reverse mirror sees shadow, ends the ZooKeeper sessions
//     it opened for journal-minted sessions (their ephemerals go, as the FSM's
//     rollback deleted them in the journal) and detaches the adopted ones; the
//     orchestrator waits for that (the mirror's /status extension) so that a
//     client resuming its session on ZooKeeper does not race the keeper. It
//     does not wait through an election (the leader died at the commit): a
//     dead mirror holds nothing, and the sessions it kept in ZooKeeper run
//     out while the clients are held.
//  7. Switch back: each proxy checks the committed phase itself, reads the
//     journal's zxid map, closes its journal connections and relays to
//     ZooKeeper again (dualwrite's SwitchToZooKeeper), rewriting each
//     client's lastZxidSeen and setWatches relativeZxid from journal zxids
//     to ZooKeeper's (dualwrite/rewrite.go): ZooKeeper would refuse a
//     reconnect whose last zxid is ahead of it. Sessions the journal adopted
//     from ZooKeeper resume there (the keeper kept them alive); sessions the
//     journal minted are unknown to ZooKeeper and expire.
//  8. Rebaseline (rebaseline.go): nodes the journal wrote in its own epoch
//     carry its zxids and times, ZooKeeper's copies ZooKeeper's. The
//     rollback's FSM entry lowered every journal-epoch zxid to ZooKeeper's
//     zxid at the cutover, the base, so ZooKeeper's copies win every merge
//     (raftjournal's "Rollback"). The orchestrator imports ZooKeeper's
//     /zookeeper node (its registers moved with the marker's create, which
//     ZooKeeper's digest sees and verify does not), then repairs what it
//     knows changed: the nodes that still carry the base (the journal lists
//     them, GET /rebased) and the paths the sentry recorded as written around
//     the proxies, with their parents — O(what changed), no walk. It claims
//     equality from a comparison of both whole states all the same:
//     ZooKeeper's tree digest against the journal's at a zxid made after the
//     repairs (alignment writes through a proxy that relays to ZooKeeper
//     again). Equal at ZooKeeper's latest zxid, or — under a steady write
//     load through the proxies, when ZooKeeper has moved on — equal at a
//     common zxid at or after the alignment, which the report names, saying
//     that the writes after it are not covered (the proxies mirror them).
//     Digests that differ (something changed that no record names: a node
//     changed in the journal behind everyone's back, a ZooKeeper-side change
//     around the sentry, a lifted fence's ACL versions) or that cannot be
//     compared send it to the full comparison it always had: repair passes
//     (dualwrite's RepairAll: verify's comparison, then imports of what
//     differs) until one finds nothing, or until the digests, compared after
//     a pass, are equal. Only then does it say the journal matches
//     ZooKeeper (by digest, which leaves ACL entries out and says so, or
//     node by node); otherwise the rollback ends committed with an error
//     naming what differs.
//
// A proxy's hold that expires is settled by the committed phase, as
// forward: shadow switches it back (with the map), primary releases its
// clients to the journal. A proxy that relays to the journal while the
// newest applied phase is shadow (it missed the call, or restarted) switches
// back by itself; one that starts after a rollback loads the zxid map so its
// clients' journal zxids are rewritten too — one that had switched (it was
// down for the commit) loads it before it relays anything, and forgets its
// switch record, so that its next start does not wait for the journal. The
// agent reads the phase of the member that applied the most (a lagging
// member may still say primary).
//
// Clients connected straight to journal nodes' client ports (not through a
// proxy) cannot roll back with their sessions: nothing rewrites their last
// zxid, and ZooKeeper refuses their reconnects until they open new
// sessions.
package cutover

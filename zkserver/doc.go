// Package zkserver is a journal node's ZooKeeper-protocol port (`zk2raft
// serve --client-addr`): any ZooKeeper client — zkCli.sh, kazoo, Curator,
// go-zookeeper, the C client — connects to the journal as it would to a
// ZooKeeper 3.8 ensemble, with a connect string of the nodes' client
// addresses. It owns connections, sessions as clients see them, request
// dispatch, watch delivery and the four-letter words; the tree, the session
// table and the zxids stay the journal's replicated state (raftjournal). It
// imports raftjournal, zkwire and znode only.
//
// # Connections
//
// Two goroutines serve a connection. The reader decodes frames (zkwire,
// jute.maxbuffer on requests) into a queue of at most MaxOutstanding
// requests and MaxOutstandingBytes bytes: a client that sends faster than
// it is answered, or never reads its replies, is no longer read from
// (back-pressure), so its memory stays bounded. The processor answers the
// queue in order — one request at a time, except that pipelined writes go
// to the journal together (see "Ordering") — and writes each reply after the
// watch events already waiting. A frame that does not decode closes its own
// connection with a log line naming the peer; nothing else is affected.
// Connections above MaxClientConnsPerIP from one address are closed at
// accept (ZooKeeper's maxClientCnxns).
//
// The secure port (Config.SecureAddr, ZooKeeper's secureClientPort) serves
// the same protocol inside TLS; see tls.go for client certificates and the
// x509 scheme.
//
// # Limits: jute.maxbuffer on requests and replies
//
// Config.MaxBuffer is jute.maxbuffer for requests, as on ZooKeeper: a
// request frame longer than it closes the connection ("Len error"), before
// anything is allocated for it. Replies are another matter. ZooKeeper caps
// nothing it sends: a getChildren of a node with a million children, or a
// getData of a node written under a larger limit, goes out whole, and it is
// the client that refuses it (the Java client throws "Packet len N is out
// of range" when a packet reaches its own jute.maxbuffer, drops the
// connection, reconnects and, when it asks again, fails again). Capping
// replies by default would break clients configured with a larger
// jute.maxbuffer than the server's, which ZooKeeper allows and which is the
// documented fix for large nodes; so by default the journal sends every
// reply, as ZooKeeper does. Config.MaxReplyBuffer (serve --reply-maxbuffer,
// off by default) is for operators whose clients all use one known limit:
// a reply whose length reaches it is not sent, the connection closes with a
// log line naming the session, operation, path and size, and the client
// sees what it would have seen anyway — a dropped connection — without the
// server spending the bytes. There is no error code for it: ZooKeeper has
// none, and an invented one would surprise clients more than the close.
//
// # Ordering (ZooKeeper's guarantees)
//
//   - Writes are linearizable: each is one raftjournal.Write entry, decided
//     by the FSM at apply (PrepRequestProcessor's checks, ACLs included) and
//     committed through Raft. Zxids in replies and stats are the journal's:
//     ZooKeeper's for mirrored state, the new epoch's for native writes.
//   - A session's requests are answered in order, and a read never sees an
//     older state than the session wrote or read before: after a write the
//     processor waits until this node has applied the write's log index
//     (WaitApplied) before answering, and reads run on the local FSM after
//     every earlier request. Reads are local, as in ZooKeeper, so another
//     session's write made through another node may not be visible yet;
//     `sync` (Node.Sync, the read-index barrier) makes the next read see
//     everything committed before it.
//   - A watch event reaches the client before any reply that shows the
//     change: the FSM delivers events into the connection's Watcher under
//     its write lock when it applies the entry, and the processor drains the
//     Watcher before writing each reply. Reads register their watch under
//     the FSM's read lock, atomically with the read.
//   - A session's pipelined writes (several sent without waiting, as
//     Curator's async calls, Kafka's controller or a go-zookeeper Conn
//     shared by goroutines do) are submitted together: the writes queued
//     behind the one at the head of the queue, up to the first request that
//     is not a write, go to the leader in one request
//     (Node.SubmitInOrder), which appends them in that order without
//     waiting for each to commit; the replies go out in order once this
//     node applied the last. A read behind them waits for them, so it sees
//     them. Different sessions' writes share Raft's batches.
//   - Replies are not sent before this node applied the write, even though
//     the leader's result is known earlier: the events the write fired here
//     must reach the client first, and other sessions on this node read
//     soon after. On a follower that waits until the leader's next
//     AppendEntries carries the commit (write_phase_seconds{phase=
//     "local_apply"}; hashicorp/raft sends one at the latest every
//     CommitTimeout when no write flows, so a node serving clients runs
//     with DefaultCommitTimeout, 2 ms, where raftjournal's default is 20 ms:
//     measured, the difference between 35 ms and 5.7 ms per write for a
//     client writing through a follower).
//
// # Sessions
//
// A session is an entry of the journal's session table (CreateSession,
// CloseSession, ExpireSessions), so a client resumes it on any node with its
// id and password. The password is ZooKeeper's, java.util.Random(id ^
// 0xB3415C00).nextBytes(16) (SessionPassword; checked against passwords a
// real 3.8 server handed out), never stored: a ZooKeeper session the
// proxies mirror into the table during shadow resumes on the journal with
// the password ZooKeeper gave its client, which is what the cutover needs.
// A reconnect checks the password, catches this node up with the leader if
// the table lacks the id (the session may be younger than this node's
// state), and asks the leader to touch it; a session the table does not
// have is answered as ZooKeeper answers an expired one (timeout 0, id 0, a
// zero password) and closed — never a silent new session. A client whose
// lastZxidSeen is ahead of this node is refused by closing without an
// answer, as ZooKeeper does, after the node first tried to catch up
// (Node.Sync), so a client never goes back in time. Timeouts are clamped to
// [MinSessionTimeout, MaxSessionTimeout] (2 and 20 ticks by default).
//
// Liveness is the leader's (raftjournal's session tracker). Every node
// collects the sessions its clients were heard from and sends them to the
// leader every half tick in one request (Node.TouchSessions), as ZooKeeper
// followers batch their clients' pings; the answer names the sessions the
// table no longer has, whose connections are closed. A connection silent
// for its session timeout is closed; the leader then expires the session.
//
// A session lives on one node at a time, as on ZooKeeper. The leader keeps
// each session's owner (the node its client is connected to) in memory,
// like ZooKeeper's SessionTracker: a resume claims the session for the node
// that answers it (Node.ClaimSessions) before the client hears back. The
// node it left learns it at its next touch (the answer lists the session as
// moved) and closes its connection there, watches and all; and a write or
// closeSession still arriving on that connection is refused by the leader
// before it reaches the log (Node.SubmitForSession, CodeSessionMoved), and
// the connection closes without an answer, as ZooKeeper's
// FinalRequestProcessor does (ZOOKEEPER-710). A new leader knows no owners:
// the first node to touch or write for a session becomes its owner, as in
// ZooKeeper's checkSession. This matters at the cutover, when clients move
// from the proxies to journal nodes in bulk.
//
// In the shadow phase ZooKeeper is the source of truth and the journal a
// read-only replica: new sessions are local to the node (ZooKeeper's local
// sessions, as a read-only server has), created without a log entry so that
// nothing the journal does in shadow consumes a zxid or adds state ZooKeeper
// lacks. They resume on the node that made them; elsewhere they are told
// expired. Every write is answered NOTREADONLY. The connect reply says
// read-only to clients that asked for it (the readOnly flag), so the Java
// client keeps looking for a read-write server; other clients are accepted
// too, unlike on ZooKeeper's read-only server, so that zkCli and dashboards
// can read the mirrored tree. When the journal leaves shadow, local sessions
// end (their connections close; clients reconnect and get new sessions).
// In primary and finalized the port is read-write.
//
// # ACLs
//
// Identities are the connection's: x509:<subject DN> from a verified client
// certificate on the secure port ({super, DN} too when it is
// Config.X509SuperUser), each addauth (digest
// user:base64(sha1(user:password)); {super, ""} too when it matches
// Config.SuperDigest), and ip:address. Writes carry them in the Write entry
// with CheckACL, and the FSM decides with raftjournal.Permits at apply,
// deterministically on every node; reads are checked here against the
// node's ACL, with getACL's masking of digest ids for callers without
// ADMIN. SASL (Kerberos, DIGEST-MD5) is not served: a sasl request is
// answered as a ZooKeeper without SASL configured answers it, and sasl ACL
// ids match nobody.
//
// # Four-letter words
//
// ruok, srvr, stat, mntr (ZooKeeper's key names), conf, cons, envi, wchs,
// wchc, wchp, isro, dump, crst, srst and hash (the journal's digest history
// in ZooKeeper's format, "zxid-in-hex: signed digest"), behind
// Config.FourLetterWords (ZooKeeper's 4lw.commands.whitelist; srvr alone by
// default); a word not whitelisted gets ZooKeeper's refusal line.
//
// # Differences from ZooKeeper 3.8 (intended)
//
// Each is listed with its reason in differences_test.go, which the
// differential suite applies; in short:
//
//   - getChildren lists children sorted (ZooKeeper: hash-set order).
//   - The ephemerals of a closed or expired session are deleted in path
//     order (ZooKeeper: hash-set order), so their events come in that order.
//   - exists checks READ (as 3.8.4 does; 3.8.0 leaks the stat).
//   - A check outside a multi is answered with the stat (3.8 never answers).
//   - Reconnecting with a lastZxidSeen ahead of this node first waits for
//     this node to catch up with the leader; ZooKeeper refuses at once.
//   - The connection a session left on another node is closed within half
//     a tick of the move (at that node's next touch), even while it is still
//     pinged; ZooKeeper closes it at its next write or its timeout.
//   - Watch events are not filtered by the watched node's ACL (ZooKeeper
//     3.8 drops an event the client may not read); the event names the path
//     only.
//   - Replies are not limited to jute.maxbuffer (neither are ZooKeeper's:
//     clients apply their own limit); --reply-maxbuffer, off by default,
//     closes the connection instead of sending a reply over a limit (see
//     "Limits").
//   - x509 ACL ids are accepted without configuring an authentication
//     provider (ZooKeeper needs zookeeper.authProvider.x509 for them), and
//     the secure port checks client certificates against Config.TLS's CAs
//     only (no CRL or OCSP, which ZooKeeper can be told to check).
//   - Notifications carry zxid −1, as before ZooKeeper 3.9.
//   - reconfig answers RECONFIGDISABLED: membership is `zk2raft journal`'s.
//   - In shadow, clients that did not ask for read-only are served too.
//
// # Metrics
//
// On the node's /metrics: zk2raft_zkserver_requests_total{op,code},
// request_seconds{op} (histograms), connections, outstanding_requests,
// sessions, watches, watch_events_total, connections_refused_total,
// bad_requests_total, auth_failures_total, sessions_created_total,
// sessions_refused_total, session_touch_batches_total,
// four_letter_words_total{word}. `zk2raft journal status` shows each
// member's client address and open connections.
package zkserver

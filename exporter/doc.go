// Package exporter reads a live ZooKeeper ensemble into znode values and
// snapshot files.
//
//   - [Walker] is the export: a parallel, pipelined walk over a few sessions that
//     streams every node, with its data, ACL and persisted stat, into a [Sink]
//     (a znode.SnapshotWriter or SnapshotFile); [ExportFile] runs one into a
//     snapshot file written atomically. `zk2raft export` is a thin shell over it.
//   - [SequentialWalk] is the plain one-request-at-a-time walk: the baseline the
//     walker is measured and checked against, and what `zk2raft dev digest` uses.
//   - [Connect] opens a go-zookeeper session (the classic walk's, and the
//     tools' that walk with SequentialWalk), its connections bounded by
//     zkclient.Guard.
//
// Connect strings, credentials, TLS and the four-letter words are zkclient's;
// the multiRead walk's sessions are zkclient.Client values (wiresession.go
// adapts them to the walk's rules).
//
// The other source, a ZooKeeper server's data directory (its snapshots and
// transaction logs, exact at one zxid and with the raw owners this walk
// cannot see), is the subpackage exporter/datadir.
//
// # What the client API can and cannot tell
//
// A client sees the persisted stat with two changes (see package znode): cversion
// is 2·persisted − numChildren, which the walk undoes exactly, and ephemeralOwner is
// 0 for container and TTL nodes, which cannot be undone from the client side. A
// live walk therefore records such nodes as persistent ([OwnerNote]; the header's
// meta says owner_source=client-api). Whether the ensemble runs with extended types
// is not visible either: [Config.ExtendedTypes] records what the caller says.
//
// # Reading one node
//
// A walk reads nodes one of two ways (Config.ReadMode); both take a node only
// in a state it really had, and both write the same file.
//
// Classic, node by node: a worker reads a node with getData, getACL and, when
// the getData stat shows children, getChildren2, in that order on one session
// (ZooKeeper answers a session's requests in order). The node is taken only
// when the replies agree on czxid (same incarnation), mzxid (data), pzxid
// (children) and aversion (ACL), so data, ACL, child list and stat all describe
// one state the node really had; otherwise it is read again. A leaf needs no
// getChildren2: the getACL stat's pzxid proves no child came or went since the
// getData said there were none. That is about 2.5 requests a node, and on a
// busy ensemble the walk is bound by ZooKeeper's cost per request.
//
// MultiRead, in batches (ZooKeeper 3.6+): up to Config.BatchSize nodes are
// read with one multiRead (opcode 22) holding, node after node, a getData and
// a getChildren, followed on the same session by one getACL per node (getACL
// cannot be in a multiRead), all sent in one write:
//
//	multiRead{ getData(p1) getChildren(p1) getData(p2) getChildren(p2) … }
//	getACL(p1) getACL(p2) …
//
// ZooKeeper answers a session's requests in order and evaluates a multiRead's
// ops in order, so each node's getData, getChildren and getACL were evaluated
// in that order, and the same rule applies: the node is taken when the getData
// and getACL stats agree (czxid, mzxid, pzxid, and also version, cversion and
// aversion), and the child list read between them has as many names as the
// stat says. A multiRead answers per op: a NoNode or NoAuth sub-result is that
// node's outcome (deleted since listed, unreadable), the others are read; a
// node whose reads disagree is read again in the next, smaller batch. That is
// about one request a node. go-zookeeper has no multiRead, so these sessions
// are zkclient clients with the FailPending policy (a read whose connection
// dies fails at once and the walk retries it, as with go-zookeeper), which
// reconnect, resume or renew sessions and re-send credentials as
// go-zookeeper does, and report every reply's zxid.
//
// ReadModeAuto, the default, probes once at Start (one multiRead on a session
// of its own): multiRead when the ensemble answers it and Config.Dialer is nil,
// classic otherwise (ZooKeeper before 3.6 closes the connection or answers
// with an error; a custom dialer, TLS for one, keeps go-zookeeper's proven
// path, though the multiRead client uses the dialer too when forced). A probe
// that gets no session at all (no server reachable, refused credentials, a
// server that is not ZooKeeper) fails Start: the classic walk would fare no
// better, and trying it would take a second Config.ConnectTimeout.
//
// Many workers (Config.Workers) share a few sessions (Config.Sessions), spread
// over the servers in sorted order, so many requests are in flight on each
// connection. A multiRead walk keeps Workers/4 batches in flight; a batch
// leaves as soon as a reader is free, with whatever nodes have been issued, so
// batches grow to BatchSize exactly when the ensemble is the bottleneck.
// Config.RateLimit caps requests per second for production ensembles (a batch
// of k nodes counts k+1).
//
// # Ordering
//
// The Sink receives nodes parents before children, in depth-first order with
// children in byte order: exactly SequentialWalk's order, whatever order the reads
// complete in, so two exports of a quiet tree are the same file and a snapshot can
// be merged against another sorted walk in one pass. The reorder buffer that does
// this (reorder.go) holds at most Config.Window nodes read ahead and not yet
// written, within Config.MaxBufferedBytes; when it is full and a node earlier in
// file order becomes readable, the latest read-ahead node is dropped and read again
// later. Memory is that window plus the child-name lists along one root-to-leaf
// path: O(width), not O(size). Nothing recurses on the call stack.
//
// # Consistency
//
// A live walk is fuzzy; the file says how fuzzy. Every session syncs with the
// leader before it reads, and the walk's start zxid (header StartZxid) is the
// lowest zxid of those sync replies: every node reflects at least every
// transaction up to it. After the last read one more sync gives a zxid no read can
// have gone beyond; the highest reply zxid observed goes into the trailer's max
// zxid (ObserveZxid). Nodes whose czxid, mzxid or pzxid is after the start, or
// whose stat moved between the reads of one attempt, are counted and listed as
// changed ([Change]); a node listed by its parent and gone when read was deleted
// during the walk and is counted and listed, never fatal. Replaying the
// transactions after the start zxid over the file converges on the tree.
//
// Reply zxids are not exposed by go-zookeeper; the walk's go-zookeeper
// connections pass through zkclient.Guard, which reports the reply headers as
// they pass (and buffers the reads). The multiRead client reports them itself.
//
// # Faults
//
//   - Connection loss, no server reachable, a session moving: the read is retried
//     with backoff while the session's client (go-zookeeper, or the multiRead
//     client, which does as it does) reconnects (to another server if need be),
//     for up to Config.RetryTimeout per node. One server of the ensemble dying
//     mid-export costs retries, not the export.
//   - Session expiry: the client opens a new session and re-sends the
//     credentials; a read answered in a session the walk has not synced is
//     discarded, the new session is synced, and the walk resumes
//     (Summary.SessionsRenewed).
//   - NoAuth: the node is listed and its subtree is not read; the walk finishes,
//     then fails with an [*UnreadableError] unless Config.AllowPartial is set, in
//     which case the summary says Partial. ExportFile leaves no file behind a
//     failed export.
//   - ACL masked: to credentials with READ but without ADMIN on a node,
//     ZooKeeper answers getACL with each digest identity masked, digest:user:x
//     instead of digest:user:<base64 sha1> ([IsMaskedACL]). That list is not the
//     node's ACL, so the node is treated as NoAuth is: listed (in
//     Summary.UnreadableList and ACLMaskedList), and the walk fails with an
//     [*UnreadableError] (matching ErrACLMasked too) unless Config.AllowPartial
//     is set. With it, the node is recorded with the masked ACL, which no
//     identity matches, rather than left out, which would lose its subtree; the
//     summary says Partial and the header's meta says allow_partial=true. The
//     digest is unaffected: ZooKeeper's digest does not cover ACLs.
//   - Errors ZooKeeper answers with for other reasons end the walk, naming the path.
//
// # Filters
//
// Config.Root exports a subtree. /zookeeper is left out when the walk starts at the
// root (a node named "zookeeper" anywhere else is ordinary data, and a walk asked to
// start inside /zookeeper reads it). Config.Exclude globs (path.Match, absolute)
// leave out a matching node and its subtree. EphemeralsSkip leaves ephemerals out;
// by default they are recorded with their owner's session id.
package exporter

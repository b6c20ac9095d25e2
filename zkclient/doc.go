// Package zkclient is the house's one ZooKeeper session client, written on
// zkwire: connect strings, credentials, TLS, the four-letter words, and
// [Client], a session that pipelines calls and survives connection loss.
// The export walk (exporter, multiRead mode), verify's re-reads, the
// dual-write reconciler and tap, and the tests of the journal's ZooKeeper
// port use it; go-zookeeper remains for the export's classic walk and as an
// independent client in tests, its connections wrapped by [Guard].
//
// It owns the connection layer and nothing above it: no retries of a
// caller's logic, no tree walks, no metrics. It imports zkwire and znode.
//
// # Session
//
// [Dial] tries the servers in turn from Config.FirstHost (random when
// negative) until one gives a session ([New] does the same in the
// background and returns at once); the server clamps the requested
// timeout, and the negotiated one sets the pace: a ping every third of it,
// and a connection silent for two thirds of it is dead. A client then
// authenticates (Config.Auth, and every AddAuth that succeeded) and sets its
// watches before a call may use the connection, so a read never runs
// without the session's credentials.
//
// On connection loss a goroutine reconnects to the next server with the same
// session id and password and the last zxid seen (a server behind that zxid
// refuses, and the next is tried), authenticates again and sets the watches
// again: persistent ones with addWatch (they belong to a connection), and
// one-shot ones with setWatches relative to the last zxid, so the server
// fires at once those whose node changed meanwhile. If the session expired
// meanwhile, it opens a new one (SessionID changes; ephemerals and one-shot
// watches died with the old one; persistent watches are added again).
// Credentials refused on a reconnect end the client (Err, ErrAuthFailed).
//
// Close ends the session (closeSession); Detach drops the connection and
// leaves the session to live until its timeout, and Config.ResumeSession
// (with the session's password) makes a new client take it over: the
// reverse mirror keeps ZooKeeper sessions alive across its own restarts so.
//
// # Calls
//
// Every call takes the next xid (31 bits, never 0) and its reply is matched
// by xid, so any number of goroutines may call at once, and [Client.Send]
// writes a batch of requests in one write (the export sends a multiRead and
// the getACLs after it together), and [Client.SendMulti] sends a multi
// without waiting for its reply (the reverse mirror keeps several in flight,
// chained by version checks). ZooKeeper answers a session's requests in
// order; a batch keeps its order on one connection, not across a reconnect.
//
// What becomes of calls on connection loss is the caller's choice
// (Config.Retry):
//
//   - [FailPending]: calls whose connection dies, and calls made while the
//     client reconnects, fail at once with an error matching
//     [ErrConnectionLoss]; the caller retries (the export walk, which also
//     re-syncs a renewed session before trusting its reads).
//   - [Resend]: calls wait for a connection; a read or idempotent call
//     (auth, addWatch, setWatches, sync, checkWatches) whose connection died
//     is sent again on the next one. A write (create, delete, setData,
//     setACL, multi, reconfig) or removeWatches whose connection died after
//     it was written is never sent again: ZooKeeper may or may not have
//     applied it, and it fails with an error matching ErrConnectionLoss that
//     says the outcome is unknown. A write that never left (no connection)
//     waits and goes out on the next one.
//
// ZooKeeper's error replies are *zkwire.Error values naming the operation
// and path; [ErrNoNode], [ErrNodeExists] and the others match them with
// errors.Is. Every reply's zxid goes to Config.OnReply and raises LastZxid.
//
// # Typed calls
//
// Reads: Exists, GetData, GetACL, GetChildren (getChildren2), Sync,
// GetEphemerals, GetAllChildrenNumber, WhoAmI; ExistsWatch, GetDataWatch
// and GetChildrenWatch also set a one-shot watch. Writes: Create (create2;
// createContainer for ModeContainer), CreateTTL, Delete, SetData, SetACL,
// Multi (CreateOp, DeleteOp, SetDataOp, CheckOp; results per operation,
// rollbacks marked) and MultiRead (GetDataOp, GetChildrenOp). Watches:
// AddWatch (persistent, recursive or not), RemoveWatches, CheckWatches.
// AddAuth. Config.Chroot applies to these: their paths are relative to it,
// and so are the paths in their results and in events. Send and Do take
// raw zkwire records and send paths as given. A check outside a multi gets
// no reply from ZooKeeper 3.8 (it fails to serialize one), so there is no
// Check call.
//
// # Events
//
// Events delivers watch notifications and connection changes (Type
// zkwire.EventNone: Disconnected, SyncConnected after a reconnect, Expired,
// AuthFailed). An event whose Missed is set says events may have been lost
// before it: a reconnect, a new session, or a consumer so slow that the
// buffer (Config.EventBuffer) overflowed. Events are never dropped
// silently, and a consumer that reads none never stalls the replies.
//
// # Bounds
//
// A reply frame longer than Config.MaxReplyFrame (64 MiB by default) ends
// the connection before anything is allocated for it, and a server whose
// first bytes are not a connect response (an HTTP or TLS port: "HTTP/1.1"
// reads as a 1.2 GB frame) fails Dial at once with an error matching
// [ErrNotZooKeeper] that quotes what it answered. [Guard] gives a
// go-zookeeper connection the same bound (go-zookeeper allocates whatever a
// connect response declares) and reports its reply headers as they pass.
//
// # Connect strings, credentials, TLS, four-letter words
//
// [ParseConnectString] reads "host:port[,host:port...][/chroot]" and
// rejects a malformed host (empty, not a host name, a port outside
// 1..65535) naming it; [ParseHosts] is the same without a chroot. [ParseAuth]
// reads "scheme:credential". [TLSOptions] builds the TLS configuration and
// [Dialer] for a secureClientPort. [FourLetterWord] sends a four-letter word
// on a connection of its own; [ParseDigestLog], [ServerZxid] and
// [ZnodeCount] read the answers the tools use (hash, srvr, mntr).
package zkclient

// Package verify compares two znode trees — normally ZooKeeper (the source) and
// the journal (the target) — node by node and field by field, or by ZooKeeper's
// own tree digest, and reports what differs for people (text), programs (JSON)
// and CI (JUnit). The operator decides the cutover on its word, so it must never
// miss a difference and never report one that is not there.
//
// # Sides
//
// A side is a [Source]: a tree streamed in canonical order. [Open] makes one
// from a URI:
//
//	zk://host:port[,host:port...][/chroot]  a live ensemble, read with exporter.Walker over a
//	                                        few pipelined sessions; the chroot names the
//	                                        subtree compared (paths stay absolute)
//	snap://FILE                             a snapshot file (export or journal FSM snapshot)
//	journal://DATA_DIR                      a journal data directory, read-only, through a
//	                                        JournalOpener the command line supplies (verify
//	                                        does not import raftjournal); NewJournalSource
//	                                        adapts the opened journal's state machine
//	datadir://ZK_DATA_DIR[?log=DIR][&zxid=Z] a ZooKeeper server's data directory, read-only
//	                                        (exporter/datadir): its tree exactly as of the last
//	                                        complete txn, or zxid Z, proven by ZooKeeper's digest
//	                                        there; raw owners ([DataDirSource])
//
// Optional capabilities are separate interfaces: [Rereader] and [Syncer] (live
// sides, for re-checks; a zk:// side re-reads on a zkclient session of its
// own) and [Digester] (sides that know their digest without a walk; a zk://
// side asks the `hash` and `srvr` four-letter words through zkclient). [FuncSource] and [MemorySource] wrap anything else.
//
// # Ordering
//
// Every stream must be in canonical order, znode.ComparePaths: depth-first, a
// parent before its children, siblings in bytewise name order ("/a", "/a/b",
// "/a-b" — not plain string order, where "/a-b" < "/a/b"). The comparison checks
// each stream as it arrives and fails with an [*UnsortedError] naming the side
// and both paths on the first node out of order or repeated: a merge-join of an
// unsorted stream would report differences that do not exist.
//
// # Comparison
//
// Both sides are walked concurrently, each into a bounded channel of node
// batches, and merged: a path on the source only is [KindMissing], on the target
// only [KindExtra], on both a [KindMismatch] per differing [Field]:
//
//	data            the bytes; nil against empty is FieldNilData, kept apart because ZooKeeper keeps them apart
//	acl             the ACL list, entries and order
//	acl-masked      a live side's ACL masked by ZooKeeper (see Masked ACLs): not known to agree
//	czxid mzxid pzxid ctime mtime version aversion
//	cversion        the persisted count of child creates (it names sequential children)
//	ephemeralOwner  raw where the side knows it (container, TTL, session id)
//	numChildren     the child count
//
// Each side's digest (ZooKeeper's algorithm) is computed over the nodes compared,
// and reported.
//
// # Scope
//
// The subtree compared is Config.Path, or by default the deepest subtree both
// sides hold (a chroot, or the path an export was taken at); a Path outside a
// side's subtree is an error. Left out, with their subtrees, on both sides:
//
//   - /zookeeper when the scope is "/" (ZooKeeper's own per-server subtree,
//     not migrated; exports leave it out);
//   - what a snapshot's export recorded as left out (its Filters.Exclude): the
//     file cannot speak for it;
//   - Config.Exclude (path.Match globs, as `zk2raft export --exclude`).
//
// A node below an excluded one is left out even when the excluded node itself is
// missing from that side's stream.
//
// # Allowances
//
// An allowed difference is counted and listed apart and does not make the trees
// different. Two allowances are built in (Config.NoDefaultAllow turns them off);
// both are narrow on purpose:
//
//   - [RuleClientOwner]: a side read through the client API (zk://, or an export
//     whose header says owner_source=client-api) sees ephemeralOwner 0 for
//     container and TTL nodes. An owner difference is allowed only when the
//     other side's raw value is exactly what a client would see as the first
//     side's value; a session id against 0 is still reported.
//   - [RuleEphemeralsSkipped]: a node missing from a side whose export skipped
//     ephemerals, when the other side shows it owned by a session.
//
// Anything else is an [AllowRule]: a path pattern (path.Match per component,
// "**" for any number of components) and what it allows ("missing", "extra",
// field names, "*"), from a file (ReadAllowFile) or a flag (ParseAllowFlag):
//
//	# PATTERN          WHAT[,WHAT...]           # reason
//	/brokers/ids/*     ephemeralOwner           # brokers re-register after cutover
//	"/a path/**"       mtime,mzxid,version,data
//
// # Live sides
//
// A live side (zk://, a running journal) may change while it is read. A
// difference where one side is newer — the two nodes' version vectors (presence,
// czxid, mzxid, pzxid, version, cversion, aversion) differ — is held and re-read
// on the live sides up to Config.Rechecks times, after pauses of
// Config.RecheckInterval doubling up to MaxRecheckInterval, each round after a
// sync of the live sides. One that goes away is reported as converged in flight,
// not as a difference; one that stays is reported with its latest values and the
// number of re-reads. Not held, because re-reading cannot resolve them: equal
// versions with different contents (divergence, whatever the sides), and a live
// node already newer than a static side's (a live node never gets older; the
// static side is simply older, and the report says so). Held differences are
// bounded (MaxPending nodes, MaxPendingBytes of the static side's nodes); past
// the budget they are reported at once and counted in Counts.NotRechecked.
//
// # Masked ACLs
//
// ZooKeeper shows a node's digest identities only to a caller with ADMIN on
// the node; to one with just READ, getACL answers digest:user:x
// (exporter.IsMaskedACL). A live side (zk://) read without ADMIN somewhere
// therefore cannot tell its real ACL there. Such a node is neither an ACL
// mismatch nor equal: the two ACLs are compared masked on both sides
// (exporter.MaskACL); if they differ even so, that is a [FieldACL] difference,
// and if they agree, a [FieldACLMasked] one, which makes the verdict different
// unless an allow rule names acl-masked. A note says on how many nodes and that
// --auth with an identity that has ADMIN (or super) lifts it. A static side
// (an export taken without ADMIN, with --allow-partial) holds the masked ACL
// as its value: it is compared as it is, and a note says how many nodes carry
// one.
//
// # Digests
//
// With Config.DigestOnly the comparison first tries ZooKeeper's digests in
// constant time ([ModeDigest]): a snapshot's trailer, a ZooKeeper server's
// digest log (`hash`: the whole tree at zxids that are multiples of 128) and
// current zxid (`srvr`), a journal's digest. Only a digest of a side's
// *current* state is used: its own current digest, or the newest logged one
// when it is at the side's latest zxid; never an older history entry, since
// equal digests at a zxid both sides have moved past prove nothing about
// either now. Two digests are
// comparable when they cover the same nodes — the same root, exclusions and
// ephemeral policy as the comparison; the /zookeeper node, which exports leave
// out and ZooKeeper counts, is added to the side missing it as
// [PristineSystemDigest] — and, unless both sides are static, are as of the same
// zxid. Node counts, where both are known over the same nodes, must agree
// too. A digest from a stored trailer ([IntegrityChecker]: a snapshot file)
// is used only after the file was read in full, every record's CRC checked,
// unless Config.TrustTrailer, which the report notes. Otherwise both sides are walked
// ([ModeDigestWalk]): the digests are computed on the way, the reason is in
// DigestResult.Reason, and the verdict rests on the node comparison. The digest
// covers paths, data and stats, not ACLs; reports say so.
//
// A comparison that compares no node — a path on neither side, every node
// excluded — is an error matching [ErrNothingCompared], never equality.
// [ParseURI] checks a side's URI without I/O; its errors match
// [ErrInvalidURI].
//
// # Memory
//
// A comparison holds the two channels' batches, the re-check budget, the
// listings (MaxDiffs, MaxSubtreeDiffs per subtree) and one result per top-level
// subtree: O(width), not O(size) — besides what a side holds itself (a
// MemorySource holds its tree; a snapshot reader one record).
//
// # Reports
//
// [Report] is the outcome; [WriteText], [WriteJSON] and [WriteJUnit] render it.
// The text report puts the verdict on its first line, then the sides, the scope,
// counts by kind and field, the first differences grouped by field with both
// values readable (zxids in hex, times with their date, data quoted when it is
// printable UTF-8 and in hex otherwise, with the offset of the first differing
// byte), then allowed and converged differences and notes. JUnit has one test
// case per top-level subtree, the scope's root node being a case of its own.
// Reports carry no time except Elapsed, left out when zero, so they can be
// compared byte for byte (the golden files under testdata/verify).
//
// # JSON report, schema version 1
//
// Digests are signed decimal strings as ZooKeeper prints them; zxids and owners
// in stat objects are hex strings; fields listed here are always present unless
// marked optional. New fields may appear without a version change.
//
//	{
//	  "version": 1,
//	  "verdict": "equal" | "different",
//	  "mode": "full" | "digest" | "digest-walk",
//	  "source", "target": {
//	    "uri", "scheme" ("zk"|"snap"|"journal"|"memory"), "description": string,
//	    "live", "raw_owners": bool,
//	    "nodes": int (nodes in scope; in digest mode the digest's count, -1 unknown),
//	    "digest": string (optional: absent in digest mode)
//	  },
//	  "scope": {
//	    "path": string,
//	    "exclude": [{"pattern", "origin" ("default"|"source"|"target"|"flag"), "reason" (optional)}],
//	    "allow":   [{"rule", "origin", "reason" (optional)}]
//	  },
//	  "compared": int (distinct paths),
//	  "counts": {
//	    "differences", "missing", "extra", "mismatch": int,
//	    "fields": {"data", "nil-vs-empty", "acl", "acl-masked", "czxid", "mzxid", "pzxid", "ctime",
//	               "mtime", "version", "cversion", "aversion", "ephemeralOwner", "numChildren": int},
//	    "allowed": int, "allowed_by": [{"rule", "origin", "count"}],
//	    "converged", "rechecked", "not_rechecked": int
//	  },
//	  "differences": [difference] (the first MaxDiffs, canonical path order),
//	  "differences_truncated": bool,
//	  "allowed": [difference + {"rule", "origin"}],
//	  "converged": [{"path", "what": [string], "rechecks": int}],
//	  "subtrees": [{"path", "nodes", "differences", "allowed", "converged", "first": [difference]}],
//	  "digest": null | {
//	    "method": "constant-time" | "walk", "equal": bool,
//	    "zxid": string (optional), "reason": string (optional),
//	    "source", "target": {"digest", "how", "zxid" (optional), "exact", "nodes", "adjusted" (optional)}
//	  },
//	  "notes": [string],
//	  "elapsed_seconds": number (optional)
//	}
//
//	difference = {
//	  "path", "kind" ("missing"|"extra"|"mismatch"), "field" (optional, for mismatch),
//	  "source", "target": value, "rechecked": int (optional)
//	}
//	value = {
//	  "present": bool, "text": string (as in the text report),
//	  "int":  int                                                  (stat fields, numChildren)
//	  "data": {"nil", "length", "base64", "truncated" (optional)}  (data, nil-vs-empty; 4 KiB at most)
//	  "acl":  [{"perms" ("cdrwa"), "perms_bits", "scheme", "id"}]  (acl, acl-masked)
//	  "stat": {"czxid", "mzxid", "pzxid", "ctime", "mtime", "version", "cversion",
//	           "aversion", "ephemeral_owner", "data_length", "num_children"}  (missing/extra, on the side that has it)
//	}
package verify

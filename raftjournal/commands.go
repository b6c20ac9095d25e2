package raftjournal

import (
	"fmt"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// Phase is the migration phase (DESIGN.md "The migration"). It only moves forward,
// shadow → primary → finalized; primary → shadow is a rollback and needs
// SetPhase.Rollback.
type Phase uint8

// The phases.
const (
	// PhaseShadow: ZooKeeper is the source of truth. The journal takes the bulk
	// import and the mirrored ZooKeeper writes; native writes are refused with
	// CodeNotReadOnly.
	PhaseShadow Phase = 1
	// PhasePrimary: the journal is the source of truth and takes native writes; a
	// reverse mirror keeps ZooKeeper current so that a rollback stays possible.
	PhasePrimary Phase = 2
	// PhaseFinalized: the migration is over; there is no way back.
	PhaseFinalized Phase = 3
)

func (p Phase) String() string {
	switch p {
	case PhaseShadow:
		return "shadow"
	case PhasePrimary:
		return "primary"
	case PhaseFinalized:
		return "finalized"
	}
	return fmt.Sprintf("Phase(%d)", uint8(p))
}

// ParsePhase parses "shadow", "primary" or "finalized".
func ParsePhase(s string) (Phase, error) {
	for _, p := range []Phase{PhaseShadow, PhasePrimary, PhaseFinalized} {
		if strings.EqualFold(s, p.String()) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("raftjournal: unknown phase %q (want shadow, primary or finalized)", s)
}

func (p Phase) valid() bool { return p >= PhaseShadow && p <= PhaseFinalized }

// Command is a log entry's decoded form. Encode turns one into entry bytes;
// FSM.Apply decodes and applies it.
type Command interface {
	// EntryType is the entry's type byte.
	EntryType() EntryType
	appendPayload(b []byte) []byte
}

// Checkpoint is an opaque key/value pair the importer stores to resume: it is
// written atomically with the batch that carries it.
type Checkpoint struct {
	Key   string
	Value []byte
}

// ImportBatch carries nodes verbatim from a snapshot stream (an export or a
// ZooKeeper data directory). Each node is merged by the idempotent rule (see the
// package documentation); in a fresh journal that is a plain insert. Parents should
// come before their children, which keeps every node on the fast path.
type ImportBatch struct {
	Nodes      []*znode.Node
	Checkpoint *Checkpoint // optional; applied atomically with the nodes
	// SizeHint is optional: the number of nodes the whole import brings (a
	// snapshot trailer's NodeCount). A journal much smaller than that sizes its
	// node table for it once instead of growing it step by step.
	SizeHint uint64
}

// SourceOpKind is the kind of a write ZooKeeper committed.
type SourceOpKind uint8

// The source operation kinds.
const (
	SourceCreate       SourceOpKind = 1
	SourceDelete       SourceOpKind = 2
	SourceSetData      SourceOpKind = 3
	SourceSetACL       SourceOpKind = 4
	SourceCloseSession SourceOpKind = 5
)

func (k SourceOpKind) String() string {
	switch k {
	case SourceCreate:
		return "create"
	case SourceDelete:
		return "delete"
	case SourceSetData:
		return "setData"
	case SourceSetACL:
		return "setACL"
	case SourceCloseSession:
		return "closeSession"
	}
	return fmt.Sprintf("SourceOpKind(%d)", uint8(k))
}

// SourceOp is one write as ZooKeeper committed it, with its outcome.
type SourceOp struct {
	Kind SourceOpKind
	Path string
	// Data is the new data (create, setData); nil and empty differ.
	Data []byte
	// ACL is the node's ACL list (create, setACL).
	ACL []znode.ACL
	// Stat is the node's persisted stat right after the op (create, setData,
	// setACL): raw ephemeralOwner and persisted cversion.
	Stat znode.Stat
	// ParentCversion and ParentPzxid are the parent's persisted cversion and pzxid
	// after a create: from the CreateTxn (parentCVersion; pzxid is the txn's
	// zxid), or a stat of the parent read back later, whose cversion holds as of
	// its pzxid (≥ Zxid). ParentPzxid 0 says the cversion is unknown: the
	// create then only raises the parent's pzxid to Zxid.
	ParentCversion int32
	ParentPzxid    int64
	// Session and Paths describe a closeSession: the session and the ephemeral
	// paths ZooKeeper deleted with it.
	Session int64
	Paths   []string
}

// SourceTxn is one ZooKeeper txn mirrored into the journal: a single op, or a
// multi's ops in order, all sharing Zxid. Only committed, successful writes are
// mirrored; failed ones change nothing in ZooKeeper's tree either.
type SourceTxn struct {
	Zxid  int64
	Multi bool
	Ops   []SourceOp
}

// SourceBatch is mirrored ZooKeeper txns in the order ZooKeeper committed
// them, applied one after the other in one log entry: the dual-write proxy's
// delivery, which keeps the digest history exact (a txn's digest is logged
// only once every txn before it was applied) at a fraction of the entries.
type SourceBatch struct {
	Txns []*SourceTxn
}

// OpKind is the kind of a native write.
type OpKind uint8

// The native operation kinds.
const (
	OpCreate  OpKind = 1
	OpDelete  OpKind = 2
	OpSetData OpKind = 3
	OpSetACL  OpKind = 4
	OpCheck   OpKind = 5

	// Read kinds, used only to label errors of the FSM's read methods.
	OpExists      OpKind = 64
	OpGetData     OpKind = 65
	OpGetChildren OpKind = 66
	OpGetACL      OpKind = 67
)

func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "create"
	case OpDelete:
		return "delete"
	case OpSetData:
		return "setData"
	case OpSetACL:
		return "setACL"
	case OpCheck:
		return "check"
	case OpExists:
		return "exists"
	case OpGetData:
		return "getData"
	case OpGetChildren:
		return "getChildren"
	case OpGetACL:
		return "getACL"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// CreateMode is ZooKeeper's create flags value (CreateMode.java).
type CreateMode int32

// The create modes.
const (
	ModePersistent              CreateMode = 0
	ModeEphemeral               CreateMode = 1
	ModePersistentSequential    CreateMode = 2
	ModeEphemeralSequential     CreateMode = 3
	ModeContainer               CreateMode = 4
	ModePersistentTTL           CreateMode = 5
	ModePersistentSequentialTTL CreateMode = 6
)

func (m CreateMode) String() string {
	switch m {
	case ModePersistent:
		return "PERSISTENT"
	case ModeEphemeral:
		return "EPHEMERAL"
	case ModePersistentSequential:
		return "PERSISTENT_SEQUENTIAL"
	case ModeEphemeralSequential:
		return "EPHEMERAL_SEQUENTIAL"
	case ModeContainer:
		return "CONTAINER"
	case ModePersistentTTL:
		return "PERSISTENT_WITH_TTL"
	case ModePersistentSequentialTTL:
		return "PERSISTENT_SEQUENTIAL_WITH_TTL"
	}
	return fmt.Sprintf("CreateMode(%d)", int32(m))
}

func (m CreateMode) valid() bool { return m >= ModePersistent && m <= ModePersistentSequentialTTL }

// IsEphemeral reports whether nodes of this mode belong to a session.
func (m CreateMode) IsEphemeral() bool { return m == ModeEphemeral || m == ModeEphemeralSequential }

// IsSequential reports whether the mode appends the parent's counter to the name.
func (m CreateMode) IsSequential() bool {
	return m == ModePersistentSequential || m == ModeEphemeralSequential || m == ModePersistentSequentialTTL
}

// IsTTL reports whether the mode creates a TTL node.
func (m CreateMode) IsTTL() bool { return m == ModePersistentTTL || m == ModePersistentSequentialTTL }

// Op is one native write. Which fields matter depends on Kind:
// create uses Path, Data, ACL, Mode and TTL (milliseconds, TTL modes only);
// delete, setData, setACL and check use Version (−1 matches any version).
type Op struct {
	Kind    OpKind
	Path    string
	Data    []byte
	ACL     []znode.ACL
	Mode    CreateMode
	TTL     int64
	Version int32
}

// Write is a native write request: one op, or a multi (atomic: all ops or none).
// The leader stamps Time (ms since the Unix epoch) when it builds the entry; the
// FSM never reads a clock. Session is the client's session (0: no session, only
// allowed for non-ephemeral ops). Auth holds the client's identities, used to
// expand the "auth" ACL scheme and, with CheckACL, to check permissions.
//
// CheckACL makes the FSM check each op's permission the way ZooKeeper's
// PrepRequestProcessor does (CREATE on the parent for create, DELETE on the
// parent for delete, WRITE for setData, ADMIN for setACL, READ for check),
// against Auth alone: the entry carries everything the decision needs, so
// every node decides alike. An Auth entry {super, ""} passes every check
// (ZooKeeper's super user; the protocol server adds it when a client
// authenticated with the configured super digest). The protocol server
// (zkserver) sets it for its clients; the embedded API does not (a program
// embedding the journal is trusted), and entries written before the flag
// existed are applied unchecked, as they were.
type Write struct {
	Session  int64
	Time     int64
	Auth     []znode.ID
	Multi    bool
	Ops      []Op
	CheckACL bool
}

// CreateSession opens a session. Its id is derived from the entry's log index.
type CreateSession struct {
	TimeoutMs int32
	Time      int64
}

// CloseSession closes a session at the client's request, deleting its ephemerals.
type CloseSession struct {
	Session int64
	Time    int64
}

// ExpireSessions commits the leader's decision that sessions timed out. Each is
// closed as by CloseSession, in order, each with its own zxid (as ZooKeeper
// logs one closeSession txn per expired session).
type ExpireSessions struct {
	Sessions []int64
	Time     int64
}

// CleanupNodes commits the leader's choice of empty containers and expired TTL
// nodes to delete. The FSM checks each again at Time and deletes only those
// still eligible, each with its own zxid (ZooKeeper's deleteContainer txns).
type CleanupNodes struct {
	Paths []string
	Time  int64
}

// SetPhase changes the migration phase at this entry's index on every node.
type SetPhase struct {
	Phase Phase
	// Rollback allows primary → shadow.
	Rollback bool
	// AdoptTimeoutMs is the session timeout given to the ZooKeeper sessions that
	// own ephemerals when the journal becomes primary (0: 30 s); see the package
	// documentation.
	AdoptTimeoutMs int32
	Time           int64
	// Guard, when set, makes the change conditional: it applies only if the
	// checkpoint Guard.Key holds exactly Guard.Value, and otherwise fails
	// with ErrGuardFailed and changes nothing. The cutover fences its commit
	// with it: a proxy whose hold expired overwrites the checkpoint first, so
	// a late commit cannot switch the journal under a proxy that already let
	// its clients go back to ZooKeeper.
	Guard *Checkpoint
}

// SourceSessions mirrors ZooKeeper's sessions into the journal during the
// shadow phase (the dual-write proxies see every connect exchange): Open
// records a session with its negotiated timeout, Closed forgets one that
// ZooKeeper told a client was expired. The journal keeps them apart from its
// own session table and never expires them while ZooKeeper is the source of
// truth; SetPhase to primary adopts every one of them into the table, so a
// client that reconnects to the journal with its ZooKeeper session id and
// password resumes it. A mirrored closeSession (SourceTxn) forgets its session
// too. Refused (ErrWrongPhase) outside shadow.
type SourceSessions struct {
	Open   []SourceSession
	Closed []int64
}

// SourceSession is one ZooKeeper session as a proxy saw it negotiated.
type SourceSession struct {
	ID        int64
	TimeoutMs int32
}

// SetCheckpoint stores (or, with a nil Value, removes) one checkpoint in any
// phase, without an import batch: the cutover's registry of proxies lives in
// checkpoints under a key prefix. Keys must not be empty.
type SetCheckpoint struct {
	Checkpoint
}

// CompactTombstones forgets the tombstones of deletes at or below UpToZxid. Only
// valid once the bulk import is complete and every mirrored txn at or below
// UpToZxid has been applied: a replay of older input could otherwise resurrect
// deleted nodes.
type CompactTombstones struct {
	UpToZxid int64
}

// DefaultAdoptTimeoutMs is the timeout of adopted ZooKeeper sessions when
// SetPhase.AdoptTimeoutMs is 0.
const DefaultAdoptTimeoutMs = 30_000

// Result is what FSM.Apply returns for an entry (as the raft ApplyFuture's
// response).
type Result struct {
	Index uint64
	// Zxid is the last zxid the entry consumed (0 if none).
	Zxid int64
	// Err is set when the entry was refused or failed: a Code or *OpError for
	// native writes (for a failed multi, the failing op's error), ErrWrongPhase,
	// ErrBadCommand, ErrPhaseTransition, ErrIgnoredEntry. For a failed native
	// write only the zxid was consumed; anything else changed nothing.
	Err error
	// Ops holds a native write's per-op results, in ZooKeeper's pattern for a
	// failed multi: ops before the failure CodeOK, the failing op its code, later
	// ops CodeRuntimeInconsistency.
	Ops []OpResult
	// Session is the id CreateSession assigned.
	Session int64
	// Changed counts the nodes (ImportBatch) or ops (SourceTxn) that changed the
	// state; the rest were already reflected, older than the state, or dead.
	Changed int
	// Deleted lists the paths CloseSession, ExpireSessions and CleanupNodes
	// deleted, in order.
	Deleted []string
	// Purged counts the unresolved mirror records (see "Pending records" in the
	// package documentation) dropped when the journal became primary.
	Purged int
	// Rollback says what a rollback's SetPhase did (in this process only: a
	// result forwarded from another node does not carry it).
	Rollback *RollbackResult
}

// OpResult is one native op's outcome.
type OpResult struct {
	Kind OpKind
	Err  Code
	// Path is the created node's path (with the sequential suffix).
	Path string
	// Stat is the node's stat after the op (create, setData, setACL, check).
	Stat znode.WireStat
}

package raftjournal

import (
	"errors"
	"fmt"

	"github.com/zk2raft/zk2raft/zkwire"
)

// Code is a ZooKeeper result code (KeeperException.Code). Native writes fail with
// the code ZooKeeper would have returned, so the protocol server can answer with it
// verbatim. A Code is an error: errors.Is(err, CodeNoNode) matches any *OpError
// carrying it.
type Code int32

// The codes, with ZooKeeper's values; zkwire owns the list and the names.
const (
	CodeOK                           = Code(zkwire.CodeOK)
	CodeSystemError                  = Code(zkwire.CodeSystemError)
	CodeRuntimeInconsistency         = Code(zkwire.CodeRuntimeInconsistency)
	CodeDataInconsistency            = Code(zkwire.CodeDataInconsistency)
	CodeConnectionLoss               = Code(zkwire.CodeConnectionLoss)
	CodeMarshallingError             = Code(zkwire.CodeMarshallingError)
	CodeUnimplemented                = Code(zkwire.CodeUnimplemented)
	CodeOperationTimeout             = Code(zkwire.CodeOperationTimeout)
	CodeBadArguments                 = Code(zkwire.CodeBadArguments)
	CodeUnknownSession               = Code(zkwire.CodeUnknownSession)
	CodeNewConfigNoQuorum            = Code(zkwire.CodeNewConfigNoQuorum)
	CodeReconfigInProgress           = Code(zkwire.CodeReconfigInProgress)
	CodeAPIError                     = Code(zkwire.CodeAPIError)
	CodeNoNode                       = Code(zkwire.CodeNoNode)
	CodeNoAuth                       = Code(zkwire.CodeNoAuth)
	CodeBadVersion                   = Code(zkwire.CodeBadVersion)
	CodeNoChildrenForEphemerals      = Code(zkwire.CodeNoChildrenForEphemerals)
	CodeNodeExists                   = Code(zkwire.CodeNodeExists)
	CodeNotEmpty                     = Code(zkwire.CodeNotEmpty)
	CodeSessionExpired               = Code(zkwire.CodeSessionExpired)
	CodeInvalidCallback              = Code(zkwire.CodeInvalidCallback)
	CodeInvalidACL                   = Code(zkwire.CodeInvalidACL)
	CodeAuthFailed                   = Code(zkwire.CodeAuthFailed)
	CodeSessionMoved                 = Code(zkwire.CodeSessionMoved)
	CodeNotReadOnly                  = Code(zkwire.CodeNotReadOnly)
	CodeEphemeralOnLocalSession      = Code(zkwire.CodeEphemeralOnLocalSession)
	CodeNoWatcher                    = Code(zkwire.CodeNoWatcher)
	CodeRequestTimeout               = Code(zkwire.CodeRequestTimeout)
	CodeReconfigDisabled             = Code(zkwire.CodeReconfigDisabled)
	CodeSessionClosedRequireSASLAuth = Code(zkwire.CodeSessionClosedRequireSASLAuth)
	CodeQuotaExceeded                = Code(zkwire.CodeQuotaExceeded)
	CodeThrottledOp                  = Code(zkwire.CodeThrottledOp)
)

// String returns ZooKeeper's name for the code (KeeperException.Code, in camel case).
func (c Code) String() string { return zkwire.Code(c).String() }

func (c Code) Error() string { return "raftjournal: " + c.String() }

// OpError is the failure of one native operation: what was attempted, on which
// path, and ZooKeeper's code for the failure.
type OpError struct {
	Op   OpKind
	Path string
	Code Code
}

func (e *OpError) Error() string {
	return fmt.Sprintf("raftjournal: %s %s: %s", e.Op, e.Path, e.Code)
}

// Unwrap makes errors.Is(err, CodeX) work.
func (e *OpError) Unwrap() error { return e.Code }

// CodeOf returns the ZooKeeper code an error carries: CodeOK for nil, the code of
// an *OpError or Code, and CodeSystemError for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var c Code
	if errors.As(err, &c) {
		return c
	}
	return CodeSystemError
}

var (
	// ErrUnknownEntry is returned (wrapped, as a *FatalEntryError) for a log entry
	// whose type this build does not know and that is not flagged ignorable.
	ErrUnknownEntry = errors.New("raftjournal: unknown log entry type")
	// ErrCorruptEntry is returned (wrapped) for a log entry that does not decode.
	ErrCorruptEntry = errors.New("raftjournal: corrupt log entry")
	// ErrUnsupportedVersion is returned (wrapped) for a known entry type encoded in
	// a newer version than this build reads.
	ErrUnsupportedVersion = errors.New("raftjournal: unsupported log entry version")
	// ErrIgnoredEntry is the result error of an entry of an unknown type that was
	// flagged ignorable: it changed nothing.
	ErrIgnoredEntry = errors.New("raftjournal: ignorable log entry skipped")
	// ErrWrongPhase is returned when a command is not allowed in the current
	// migration phase (an import or a mirrored ZooKeeper write after cutover, a
	// container clean-up before it). Nothing changed.
	ErrWrongPhase = errors.New("raftjournal: command not allowed in this migration phase")
	// ErrPhaseTransition is returned for a phase change that is not allowed: going
	// back without the rollback flag, skipping primary, or leaving finalized.
	ErrPhaseTransition = errors.New("raftjournal: phase transition not allowed")
	// ErrGuardFailed is returned for a SetPhase whose guard checkpoint does
	// not hold the expected value.
	ErrGuardFailed = errors.New("raftjournal: phase change guard failed")
	// ErrBadCommand is returned for a command whose fields contradict each other
	// (a mirrored create whose stat does not carry the txn's zxid, for instance).
	ErrBadCommand = errors.New("raftjournal: malformed command")
	// ErrBadSnapshot is returned (wrapped) when an FSM snapshot is intact as a file
	// but does not describe a valid journal state.
	ErrBadSnapshot = errors.New("raftjournal: bad FSM snapshot")
	// ErrWatcherOverflow is a Watcher's Err after its queue overflowed; all its
	// watches were dropped.
	ErrWatcherOverflow = errors.New("raftjournal: watcher queue overflowed")
	// ErrWatcherClosed is a Watcher's Err after Close.
	ErrWatcherClosed = errors.New("raftjournal: watcher closed")
)

// FatalEntryError reports a committed log entry this node cannot apply. Applying
// it differently from the other nodes would fork the state, so FSM.Apply panics
// with it: the node stops and must be upgraded, never skip the entry.
type FatalEntryError struct {
	Index uint64
	Type  EntryType
	Err   error
}

func (e *FatalEntryError) Error() string {
	return fmt.Sprintf("raftjournal: cannot apply log entry %d (type %s): %v", e.Index, e.Type, e.Err)
}

func (e *FatalEntryError) Unwrap() error { return e.Err }

package datadir

import (
	"fmt"

	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// TxnType is a txn's type: ZooKeeper's opcode for the write it logged
// (ZooDefs.OpCode), as in TxnHeader.type and a multi's sub-txns.
type TxnType int32

// The txn types a transaction log holds (SerializeUtils.deserializeTxn).
const (
	TxnCreateSession   TxnType = -10
	TxnCloseSession    TxnType = -11
	TxnError           TxnType = -1
	TxnCreate          TxnType = 1
	TxnDelete          TxnType = 2
	TxnSetData         TxnType = 5
	TxnSetACL          TxnType = 7
	TxnCheck           TxnType = 13 // only inside a multi
	TxnMulti           TxnType = 14
	TxnCreate2         TxnType = 15
	TxnReconfig        TxnType = 16
	TxnCreateContainer TxnType = 19
	TxnDeleteContainer TxnType = 20
	TxnCreateTTL       TxnType = 21
)

func (t TxnType) String() string {
	switch t {
	case TxnCreateSession:
		return "createSession"
	case TxnCloseSession:
		return "closeSession"
	case TxnError:
		return "error"
	case TxnCreate:
		return "create"
	case TxnDelete:
		return "delete"
	case TxnSetData:
		return "setData"
	case TxnSetACL:
		return "setACL"
	case TxnCheck:
		return "check"
	case TxnMulti:
		return "multi"
	case TxnCreate2:
		return "create2"
	case TxnReconfig:
		return "reconfig"
	case TxnCreateContainer:
		return "createContainer"
	case TxnDeleteContainer:
		return "deleteContainer"
	case TxnCreateTTL:
		return "createTTL"
	}
	return fmt.Sprintf("TxnType(%d)", int32(t))
}

// IsCreate reports whether t creates a node.
func (t TxnType) IsCreate() bool {
	return t == TxnCreate || t == TxnCreate2 || t == TxnCreateContainer || t == TxnCreateTTL
}

// Record is a txn's body, or one sub-txn of a multi. Which fields are set
// depends on Type:
//
//	create, create2     Path, Data, ACL, Ephemeral, ParentCversion (CreateTxn)
//	createContainer     Path, Data, ACL, ParentCversion (CreateContainerTxn)
//	createTTL           Path, Data, ACL, ParentCversion, TTL (CreateTTLTxn)
//	delete, deleteContainer  Path (DeleteTxn)
//	setData, reconfig   Path, Data, Version: the new version (SetDataTxn)
//	setACL              Path, ACL, Version: the new aversion (SetACLTxn)
//	check               Path, Version (CheckVersionTxn; multis only)
//	createSession       TimeoutMs (CreateSessionTxn)
//	closeSession        Paths, HasPaths (CloseSessionTxn; older logs have no body)
//	error               Err (ErrorTxn)
//	multi               Ops (MultiTxn), none of them a multi
type Record struct {
	Type           TxnType
	Path           string
	Data           []byte // nil and empty differ
	ACL            []znode.ACL
	Ephemeral      bool
	ParentCversion int32 // −1: a pre-3.3 create, fixed up from the parent
	TTL            int64 // ms
	Version        int32
	TimeoutMs      int32
	Err            int32
	Paths          []string
	HasPaths       bool
	Ops            []Record
}

// Txn is one transaction as a log holds it: TxnHeader, record and the
// optional TxnDigest ZooKeeper 3.6+ appends (the tree digest after the txn,
// as the leader computed it).
type Txn struct {
	Session int64 // TxnHeader.clientId
	Cxid    int32
	Zxid    int64
	Time    int64 // the leader's wall clock, ms since the Unix epoch
	Record
	// HasDigest says a TxnDigest followed the record; error txns have none.
	HasDigest     bool
	DigestVersion int32
	Digest        znode.Digest
	// Pos is where the txn's record starts in its log file.
	Pos Position
}

// Failed reports whether the txn changed nothing in the tree: an error txn,
// or a multi that failed (ZooKeeper logs it with every sub-txn an error).
func (t *Txn) Failed() bool {
	if t.Type == TxnError {
		return true
	}
	if t.Type == TxnMulti {
		for i := range t.Ops {
			if t.Ops[i].Type == TxnError {
				return true
			}
		}
	}
	return false
}

// errUnknownType is what decodeRecord reports for an unknown type; DecodeTxn
// turns it into ErrUnknownTxn.
type errUnknownType struct {
	t     TxnType
	inSub bool
}

func (e *errUnknownType) Error() string {
	if e.inSub {
		return fmt.Sprintf("a multi holds a sub-txn of a type it cannot hold: %s", e.t)
	}
	return fmt.Sprintf("unknown type %d", int32(e.t))
}

func (e *errUnknownType) Unwrap() error { return ErrUnknownTxn }

// minSubTxnSize is the smallest encoded sub-txn, so that a multi's count is
// checked against the bytes left before anything is allocated.
const minSubTxnSize = 8 // int type + buffer length

// DecodeTxn decodes a txn's bytes (TxnHeader, record, optional TxnDigest),
// as a log record or a quorum packet carries them. The error names what is
// wrong but not where: the caller knows the file and offset. A txn of an
// unknown type is an error matching ErrUnknownTxn.
func DecodeTxn(b []byte, maxLen int) (Txn, error) {
	d := zkwire.NewDecoder(b)
	d.MaxLen = maxLen
	var t Txn
	t.Session = d.Int64()
	t.Cxid = d.Int32()
	t.Zxid = d.Int64()
	t.Time = d.Int64()
	t.Type = TxnType(d.Int32())
	if err := d.Err(); err != nil {
		return t, fmt.Errorf("txn header: %w", err)
	}
	if err := decodeRecord(d, &t.Record, false); err != nil {
		if u, ok := err.(*errUnknownType); ok && !u.inSub {
			return t, fmt.Errorf("txn at zxid %#x: %w", t.Zxid, err)
		}
		return t, fmt.Errorf("%s txn at zxid %#x: %w", t.Type, t.Zxid, err)
	}
	if d.Remaining() > 0 {
		// TxnDigest{int version; long treeDigest}, present iff bytes remain.
		t.HasDigest = true
		t.DigestVersion = d.Int32()
		t.Digest = znode.Digest(d.Int64())
	}
	if err := d.Finish(); err != nil {
		return t, fmt.Errorf("%s txn at zxid %#x: digest: %w", t.Type, t.Zxid, err)
	}
	return t, nil
}

// subTxnTypes are the types DataTree.processTxn applies inside a multi
// (create2 as 3.9 does; 3.8 never logs one there).
var subTxnTypes = map[TxnType]bool{
	TxnCreate: true, TxnCreate2: true, TxnCreateTTL: true, TxnCreateContainer: true,
	TxnDelete: true, TxnDeleteContainer: true, TxnSetData: true, TxnCheck: true, TxnError: true,
}

// decodeRecord reads the record of r.Type from d.
func decodeRecord(d *zkwire.Decoder, r *Record, sub bool) error {
	if sub && !subTxnTypes[r.Type] {
		return &errUnknownType{t: r.Type, inSub: true}
	}
	switch r.Type {
	case TxnCreateSession:
		r.TimeoutMs = d.Int32()
	case TxnCloseSession:
		// 3.6+ logs the ephemerals the close deletes; older logs no body.
		if d.Remaining() > 0 {
			r.HasPaths = true
			n := d.VectorLen(4)
			for i := 0; i < n && d.Err() == nil; i++ {
				r.Paths = append(r.Paths, d.Ustring())
			}
		}
	case TxnCreate, TxnCreate2:
		r.Path = d.Ustring()
		r.Data = d.Buffer()
		r.ACL = d.ACLs()
		r.Ephemeral = d.Bool()
		if d.Err() == nil && d.Remaining() == 0 && !sub {
			// CreateTxnV0 (before 3.3) has no parentCVersion; ZooKeeper
			// then takes the parent's plus one.
			r.ParentCversion = -1
		} else {
			r.ParentCversion = d.Int32()
		}
	case TxnCreateContainer:
		r.Path = d.Ustring()
		r.Data = d.Buffer()
		r.ACL = d.ACLs()
		r.ParentCversion = d.Int32()
	case TxnCreateTTL:
		r.Path = d.Ustring()
		r.Data = d.Buffer()
		r.ACL = d.ACLs()
		r.ParentCversion = d.Int32()
		r.TTL = d.Int64()
	case TxnDelete, TxnDeleteContainer:
		r.Path = d.Ustring()
	case TxnSetData, TxnReconfig:
		r.Path = d.Ustring()
		r.Data = d.Buffer()
		r.Version = d.Int32()
	case TxnSetACL:
		r.Path = d.Ustring()
		r.ACL = d.ACLs()
		r.Version = d.Int32()
	case TxnCheck:
		if !sub {
			return &errUnknownType{t: r.Type}
		}
		r.Path = d.Ustring()
		r.Version = d.Int32()
	case TxnError:
		r.Err = d.Int32()
	case TxnMulti:
		n := d.VectorLen(minSubTxnSize)
		if n < 0 {
			d.Fail(zkwire.ErrMalformed, "null multi")
		}
		for i := 0; i < n && d.Err() == nil; i++ {
			sr := Record{Type: TxnType(d.Int32())}
			body := d.BufferAlias()
			if d.Err() != nil {
				break
			}
			sd := zkwire.NewDecoder(body)
			sd.MaxLen = d.MaxLen
			if err := decodeRecord(sd, &sr, true); err != nil {
				return fmt.Errorf("multi op %d: %w", i, err)
			}
			if err := sd.Finish(); err != nil {
				return fmt.Errorf("multi op %d (%s): %w", i, sr.Type, err)
			}
			r.Ops = append(r.Ops, sr)
		}
	default:
		return &errUnknownType{t: r.Type, inSub: sub}
	}
	if err := d.Err(); err != nil {
		return err
	}
	return nil
}

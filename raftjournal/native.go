package raftjournal

import (
	"fmt"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// Native writes follow PrepRequestProcessor's checks in its order, so that a write
// fails with the same code ZooKeeper would give, and DataTree's effects. Each
// Write consumes one journal zxid whether it succeeds or fails, as in ZooKeeper
// (a failed write is logged as an error txn); a multi shares one zxid.

type undoKind uint8

const (
	undoInsert undoKind = iota + 1
	undoRemove
	undoModify
)

// undoRec reverses one step of a multi that fails later.
type undoRec struct {
	kind     undoKind
	path     string
	n        *node
	old      node  // undoModify: the node before
	oldCv    int64 // undoModify: its child set's cvZxid before, if it had one
	acquired aclID // an ACL reference the step took
}

func (f *FSM) applyWrite(w *Write, res *Result) {
	s := f.s
	t := s.t
	if len(w.Ops) == 0 && !w.Multi || len(w.Ops) > 1 && !w.Multi {
		res.Err = fmt.Errorf("%w: a write that is not a multi needs exactly one op, has %d", ErrBadCommand, len(w.Ops))
		return
	}
	res.Ops = make([]OpResult, len(w.Ops))
	if s.phase == PhaseShadow {
		// ZooKeeper is the source of truth: the journal is a read-only replica.
		for i := range w.Ops {
			res.Ops[i] = OpResult{Kind: w.Ops[i].Kind, Err: CodeNotReadOnly}
		}
		res.Err = CodeNotReadOnly
		if len(w.Ops) > 0 {
			res.Err = &OpError{Op: w.Ops[0].Kind, Path: w.Ops[0].Path, Code: CodeNotReadOnly}
		}
		return
	}
	zxid := s.mint()
	res.Zxid = zxid
	eventMark := len(t.events)
	releaseMark := len(t.acls.pending)
	undo := f.undo[:0]
	failed, code := -1, CodeOK
	for i := range w.Ops {
		op := &w.Ops[i]
		if w.Multi && op.Kind == OpSetACL {
			// Not a multi op in ZooKeeper (MultiOperationRecord refuses it).
			failed, code = i, CodeBadArguments
			break
		}
		var r OpResult
		r, code = s.nativeOp(w, op, zxid, &undo)
		if code != CodeOK {
			failed = i
			break
		}
		res.Ops[i] = r
	}
	if failed >= 0 {
		t.rollback(undo)
		t.events = t.events[:eventMark]
		t.acls.pending = t.acls.pending[:releaseMark]
		for i := range res.Ops {
			r := OpResult{Kind: w.Ops[i].Kind}
			switch {
			case i == failed:
				r.Err = code
			case i > failed && w.Multi:
				r.Err = CodeRuntimeInconsistency
			}
			res.Ops[i] = r
		}
		res.Err = &OpError{Op: w.Ops[failed].Kind, Path: w.Ops[failed].Path, Code: code}
	}
	clear(undo)
	f.undo = undo[:0]
	s.logDigest(zxid)
}

// rollback undoes a failed multi's steps, newest first.
func (t *tree) rollback(undo []undoRec) {
	for i := len(undo) - 1; i >= 0; i-- {
		u := &undo[i]
		switch u.kind {
		case undoInsert:
			t.removeVisible(u.path, u.n)
		case undoRemove:
			t.insertVisible(u.path, u.n)
		case undoModify:
			t.pre(u.path, u.n)
			*u.n = u.old // a child set the step allocated is dropped with it
			if u.n.kids != nil {
				u.n.kids.cvZxid = u.oldCv
			}
			t.post(u.path, u.n)
		}
		t.acls.release(u.acquired)
	}
}

// checkSession is ZooKeeper's sessionTracker.checkSession: a write naming a
// session the journal does not know fails with SessionExpired. Session 0 is the
// embedded API's "no session".
func (s *state) checkSession(id int64) Code {
	if id != 0 && s.sessions[id] == nil {
		return CodeSessionExpired
	}
	return CodeOK
}

func checkVersion(current, expected int32) Code {
	if expected != -1 && expected != current {
		return CodeBadVersion
	}
	return CodeOK
}

// parentOfRequest is the parent ZooKeeper looks up for a request path: everything
// before the last slash, the root for "/x". ok is false when there is no slash or
// a NUL (validatePathForCreate / getParentPathAndValidate).
func parentOfRequest(path string) (string, bool) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 || strings.IndexByte(path, 0) >= 0 {
		return "", false
	}
	if i == 0 {
		return "/", true
	}
	return path[:i], true
}

func (s *state) nativeOp(w *Write, op *Op, zxid int64, undo *[]undoRec) (OpResult, Code) {
	switch op.Kind {
	case OpCreate:
		return s.nativeCreate(w, op, zxid, undo)
	case OpDelete:
		return s.nativeDelete(w, op, zxid, undo)
	case OpSetData:
		return s.nativeSetData(w, op, zxid, undo)
	case OpSetACL:
		return s.nativeSetACL(w, op, undo)
	case OpCheck:
		return s.nativeCheck(w, op)
	}
	return OpResult{Kind: op.Kind}, CodeUnimplemented
}

func (s *state) nativeCreate(w *Write, op *Op, zxid int64, undo *[]undoRec) (OpResult, Code) {
	t := s.t
	r := OpResult{Kind: OpCreate}
	// validateCreateRequest
	if !op.Mode.valid() {
		return r, CodeBadArguments
	}
	if op.Mode.IsTTL() {
		if op.TTL <= 0 || op.TTL > znode.MaxTTLMillis {
			return r, CodeBadArguments
		}
	} else if op.TTL > 0 {
		return r, CodeBadArguments
	}
	if op.Mode.IsEphemeral() && w.Session == 0 {
		return r, CodeSessionExpired
	}
	if c := s.checkSession(w.Session); c != CodeOK {
		return r, c
	}
	// validatePathForCreate, fixupACL, the parent
	parentPath, ok := parentOfRequest(op.Path)
	if !ok {
		return r, CodeBadArguments
	}
	acl, c := fixupACL(op.ACL, w.Auth)
	if c != CodeOK {
		return r, c
	}
	parent := t.nodes[parentPath]
	if parent == nil {
		return r, CodeNoNode
	}
	if c := s.permitted(w, parent, znode.PermCreate); c != CodeOK {
		return r, c
	}
	path := op.Path
	if op.Mode.IsSequential() {
		path = znode.SequentialName(path, parent.cversion)
	}
	if validatePath(path) != nil {
		return r, CodeBadArguments
	}
	if t.nodes[path] != nil {
		return r, CodeNodeExists
	}
	if znode.EphemeralTypeOf(parent.owner, true) == znode.Ephemeral {
		return r, CodeNoChildrenForEphemerals
	}
	var owner int64
	switch {
	case op.Mode == ModeContainer:
		owner = znode.ContainerOwner
	case op.Mode.IsTTL():
		owner, _ = znode.TTLOwner(op.TTL)
	case op.Mode.IsEphemeral():
		owner = w.Session
	}

	*undo = append(*undo, undoRec{kind: undoModify, path: parentPath, n: parent, old: *parent, oldCv: parent.cvKey()})
	t.pre(parentPath, parent)
	parent.cversion++
	parent.pzxid = zxid
	t.post(parentPath, parent)
	n := &node{
		data: op.Data, czxid: zxid, mzxid: zxid, pzxid: zxid, ctime: w.Time, mtime: w.Time,
		owner: owner, acl: t.acls.acquire(acl),
	}
	t.insertVisible(path, n)
	parent.kids.cvZxid = zxid
	*undo = append(*undo, undoRec{kind: undoInsert, path: path, n: n, acquired: n.acl})
	r.Path = path
	r.Stat = n.wireStat()
	return r, CodeOK
}

func (s *state) nativeDelete(w *Write, op *Op, zxid int64, undo *[]undoRec) (OpResult, Code) {
	t := s.t
	r := OpResult{Kind: OpDelete}
	if c := s.checkSession(w.Session); c != CodeOK {
		return r, c
	}
	parentPath, ok := parentOfRequest(op.Path)
	if !ok || isSystemNode(op.Path) {
		return r, CodeBadArguments
	}
	parent := t.nodes[parentPath]
	if parent == nil {
		return r, CodeNoNode
	}
	if c := s.permitted(w, parent, znode.PermDelete); c != CodeOK {
		return r, c
	}
	n := t.nodes[op.Path]
	if n == nil {
		return r, CodeNoNode
	}
	if c := checkVersion(n.version, op.Version); c != CodeOK {
		return r, c
	}
	if n.numChildren() > 0 {
		return r, CodeNotEmpty
	}
	t.deleteLeaf(op.Path, n, parent, zxid, undo)
	return r, CodeOK
}

// deleteLeaf removes a childless visible node with DataTree.deleteNode's effect on
// the parent (pzxid raised to zxid; cversion untouched).
func (t *tree) deleteLeaf(path string, n, parent *node, zxid int64, undo *[]undoRec) {
	parentPath := znode.Parent(path)
	if undo != nil {
		*undo = append(*undo, undoRec{kind: undoModify, path: parentPath, n: parent, old: *parent, oldCv: parent.cvKey()})
	}
	t.removeVisible(path, n)
	t.acls.releaseLater(n.acl)
	if undo != nil {
		*undo = append(*undo, undoRec{kind: undoRemove, path: path, n: n})
	}
	if zxid > parent.pzxid {
		t.pre(parentPath, parent)
		k := parent.cvKey()
		parent.pzxid = zxid
		pinCvKey(parent, k)
		t.post(parentPath, parent)
	}
}

func (s *state) nativeSetData(w *Write, op *Op, zxid int64, undo *[]undoRec) (OpResult, Code) {
	t := s.t
	r := OpResult{Kind: OpSetData}
	if c := s.checkSession(w.Session); c != CodeOK {
		return r, c
	}
	if validatePath(op.Path) != nil {
		return r, CodeBadArguments
	}
	n := t.nodes[op.Path]
	if n == nil {
		return r, CodeNoNode
	}
	if c := s.permitted(w, n, znode.PermWrite); c != CodeOK {
		return r, c
	}
	if c := checkVersion(n.version, op.Version); c != CodeOK {
		return r, c
	}
	*undo = append(*undo, undoRec{kind: undoModify, path: op.Path, n: n, old: *n, oldCv: n.cvKey()})
	t.pre(op.Path, n)
	n.data = op.Data
	n.version++
	n.mzxid = zxid
	n.mtime = w.Time
	t.post(op.Path, n)
	t.emit(EventNodeDataChanged, op.Path)
	r.Stat = n.wireStat()
	return r, CodeOK
}

func (s *state) nativeSetACL(w *Write, op *Op, undo *[]undoRec) (OpResult, Code) {
	t := s.t
	r := OpResult{Kind: OpSetACL}
	if c := s.checkSession(w.Session); c != CodeOK {
		return r, c
	}
	if validatePath(op.Path) != nil {
		return r, CodeBadArguments
	}
	acl, c := fixupACL(op.ACL, w.Auth)
	if c != CodeOK {
		return r, c
	}
	n := t.nodes[op.Path]
	if n == nil {
		return r, CodeNoNode
	}
	if c := s.permitted(w, n, znode.PermAdmin); c != CodeOK {
		return r, c
	}
	if c := checkVersion(n.aversion, op.Version); c != CodeOK {
		return r, c
	}
	id := t.acls.acquire(acl)
	*undo = append(*undo, undoRec{kind: undoModify, path: op.Path, n: n, old: *n, oldCv: n.cvKey(), acquired: id})
	t.pre(op.Path, n)
	t.acls.releaseLater(n.acl)
	n.acl = id
	n.aversion++
	t.post(op.Path, n)
	r.Stat = n.wireStat()
	return r, CodeOK
}

func (s *state) nativeCheck(w *Write, op *Op) (OpResult, Code) {
	r := OpResult{Kind: OpCheck}
	if c := s.checkSession(w.Session); c != CodeOK {
		return r, c
	}
	if validatePath(op.Path) != nil {
		return r, CodeBadArguments
	}
	n := s.t.nodes[op.Path]
	if n == nil {
		return r, CodeNoNode
	}
	if c := s.permitted(w, n, znode.PermRead); c != CodeOK {
		return r, c
	}
	if c := checkVersion(n.version, op.Version); c != CodeOK {
		return r, c
	}
	r.Stat = n.wireStat()
	return r, CodeOK
}

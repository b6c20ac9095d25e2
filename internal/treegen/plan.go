package treegen

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// OpType is what an Op does.
type OpType uint8

// The op types.
const (
	OpCreate  OpType = iota + 1 // create a node (any kind)
	OpDelete                    // delete a leaf
	OpSetData                   // setData with the expected version as condition
	OpSetACL                    // setACL with the expected ACL version as condition
)

func (t OpType) String() string {
	switch t {
	case OpCreate:
		return "create"
	case OpDelete:
		return "delete"
	case OpSetData:
		return "set-data"
	case OpSetACL:
		return "set-acl"
	}
	return fmt.Sprintf("OpType(%d)", uint8(t))
}

// Op is one write of a plan.
type Op struct {
	Type OpType
	// Path is the node written. For a sequential create it is the name
	// ZooKeeper will assign (the prefix plus ten digits), which the plan
	// knows because it orders every op under the parent; see SendPath.
	Path string
	// Data for OpCreate and OpSetData; nil and empty are different.
	Data []byte
	// ACL for OpCreate and OpSetACL, as sent: an "auth" entry is resolved
	// by the server to the session's digest identities.
	ACL []znode.ACL
	// Kind of node an OpCreate makes.
	Kind znode.EphemeralType
	// Sequential creates are sent with the sequential flag.
	Sequential bool
	// TTL of a TTL node.
	TTL time.Duration
	// Session is the index of the session that owns an ephemeral.
	Session int
	// Version is the data version (OpSetData) or ACL version (OpSetACL) the
	// node has before the op; it is sent as the condition.
	Version int32
	// Classes are the adversarial input classes the op's node exercises.
	Classes ClassSet
	// After is the index of the op that must complete before this one
	// starts, or -1. Every op has at most one predecessor: its parent's
	// create, or the previous op of an ordered chain (see doc.go).
	After int
}

// SendPath is the path sent to ZooKeeper: Path without the sequential
// suffix for sequential creates.
func (op *Op) SendPath() string {
	if op.Type == OpCreate && op.Sequential {
		return op.Path[:len(op.Path)-10]
	}
	return op.Path
}

// Credential is a digest identity. Every session the generator opens
// authenticates with the plan's credential; the protected subtree is
// readable only with it.
type Credential struct {
	User     string
	Password string
}

// Scheme is the auth scheme, always "digest".
func (c Credential) Scheme() string { return "digest" }

// Auth is the AddAuth payload, "user:password".
func (c Credential) Auth() []byte { return []byte(c.User + ":" + c.Password) }

// ID is the ACL identity ZooKeeper derives from the credential:
// digest user:base64(sha1(user:password)).
func (c Credential) ID() znode.ID {
	return znode.ID{Scheme: "digest", ID: znode.DigestID(string(c.Auth()))}
}

// Plan is the deterministic part of a tree: every write, in an order that
// respects dependencies, with everything ZooKeeper will answer predicted.
// NewPlan is pure: the same Options give the same Plan.
type Plan struct {
	// Options with defaults applied.
	Options Options
	// Ops in plan order: an op's After is always an earlier op.
	Ops []Op
	// Sessions is the number of sessions owning ephemerals.
	Sessions int
	// Credential every generator session authenticates with.
	Credential Credential
}

// NewPlan builds the plan for opts.
func NewPlan(opts Options) (*Plan, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	b := newBuilder(opts)
	switch opts.Profile {
	case ProfileKafka:
		buildKafka(b)
	case ProfileRegistry:
		buildRegistry(b)
	case ProfileConfig:
		buildConfig(b)
	case ProfileAdversarial:
		buildAdversarial(b)
	}
	p := &Plan{Options: opts, Ops: b.ops, Sessions: b.sessions, Credential: b.cred}
	if _, err := p.Model(true); err != nil {
		return nil, fmt.Errorf("treegen: internal plan error: %w", err)
	}
	return p, nil
}

// Fingerprint is a SHA-256 over every op, for comparing plans.
func (p *Plan) Fingerprint() [32]byte {
	h := sha256.New()
	var buf [8]byte
	num := func(v int64) {
		binary.BigEndian.PutUint64(buf[:], uint64(v))
		h.Write(buf[:])
	}
	str := func(s string) {
		num(int64(len(s)))
		h.Write([]byte(s))
	}
	for i := range p.Ops {
		op := &p.Ops[i]
		num(int64(op.Type))
		str(op.Path)
		if op.Data == nil {
			num(-1)
		} else {
			str(string(op.Data))
		}
		num(int64(len(op.ACL)))
		for _, a := range op.ACL {
			num(int64(a.Perms))
			str(a.ID.Scheme)
			str(a.ID.ID)
		}
		num(int64(op.Kind))
		if op.Sequential {
			num(1)
		} else {
			num(0)
		}
		num(int64(op.TTL))
		num(int64(op.Session))
		num(int64(op.Version))
		num(int64(op.Classes))
		num(int64(op.After))
	}
	str(p.Credential.User)
	str(p.Credential.Password)
	num(int64(p.Sessions))
	return [32]byte(h.Sum(nil))
}

// withoutTTL returns a copy of the plan without TTL nodes and everything
// below them, for an ensemble without extended types. Predecessor links
// that pointed at a dropped op are moved to that op's own predecessor.
func (p *Plan) withoutTTL() *Plan {
	drop := make([]bool, len(p.Ops))
	var ttlRoots []string
	under := func(path string) bool {
		for _, r := range ttlRoots {
			if path == r || strings.HasPrefix(path, r+"/") {
				return true
			}
		}
		return false
	}
	for i := range p.Ops {
		op := &p.Ops[i]
		if op.Type == OpCreate && op.Kind == znode.TTL {
			ttlRoots = append(ttlRoots, op.Path)
		}
		drop[i] = under(op.Path)
	}
	newIndex := make([]int, len(p.Ops))
	q := *p
	q.Ops = make([]Op, 0, len(p.Ops))
	for i := range p.Ops {
		if drop[i] {
			newIndex[i] = -2
			continue
		}
		op := p.Ops[i]
		a := op.After
		for a >= 0 && drop[a] {
			a = p.Ops[a].After
		}
		if a >= 0 {
			a = newIndex[a]
		}
		op.After = a
		newIndex[i] = len(q.Ops)
		q.Ops = append(q.Ops, op)
	}
	return &q
}

// builder accumulates ops and tracks, per node, what the plan has done to
// it so far, to place every op after the one it depends on and to predict
// sequential names and versions.
type builder struct {
	opts     Options
	rng      *rand.Rand
	ops      []Op
	nodes    map[string]*pnode
	cred     Credential
	sessions int
	live     int // nodes created and not deleted
}

// pnode is the builder's view of one node.
type pnode struct {
	create   int // index of the create op, -1 for a node that existed before
	tail     int // last op a later op on this node (or, ordered, under it) must follow
	ordered  bool
	kind     znode.EphemeralType
	cversion int32 // persisted: child creates so far
	children int
	version  int32
	aversion int32
	acl      []znode.ACL
	selfOps  int // ops on the node other than its create
}

func newBuilder(opts Options) *builder {
	// PCG seeded from the seed alone: rand/v2's generators are stable
	// across Go releases, unlike math/rand's global source.
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x7265_6567_6565_7274))
	b := &builder{
		opts:  opts,
		rng:   rng,
		nodes: make(map[string]*pnode),
		cred:  Credential{User: "treegen-secret", Password: fmt.Sprintf("pw-%016x", rng.Uint64())},
	}
	root := opts.Root
	if root == "/" {
		b.nodes["/"] = &pnode{create: -1, tail: -1, acl: znode.WorldAnyone()}
	} else {
		// The root itself is part of the model; its ancestors are not.
		b.nodes[znode.Parent(root)] = &pnode{create: -1, tail: -1, acl: znode.WorldAnyone()}
		b.create(root, spec{})
	}
	return b
}

// path joins rel ("a/b", no leading slash) to the root.
func (b *builder) path(rel string) string { return znode.Join(b.opts.Root, rel) }

// spec describes a node to create.
type spec struct {
	data    []byte
	acl     []znode.ACL // nil means world:anyone:cdrwa
	kind    znode.EphemeralType
	seq     bool
	ttl     time.Duration
	session int
	ordered bool // every later op under this node runs in plan order
	classes ClassSet
}

// create adds a create op. For sequential nodes path is the prefix (the
// parent's path, a slash and the name prefix, possibly empty); create
// returns the node's final path.
func (b *builder) create(path string, s spec) string {
	parentPath := znode.Parent(path)
	if s.seq {
		parentPath = path[:strings.LastIndexByte(path, '/')]
		if parentPath == "" {
			parentPath = "/"
		}
	}
	parent := b.mustNode(parentPath)
	switch {
	case parent.kind == znode.Ephemeral:
		panic("treegen: plan puts a child under ephemeral " + parentPath)
	case !grants(parent.acl, znode.PermCreate, b.cred):
		panic("treegen: plan creates under " + parentPath + " whose ACL forbids it")
	case s.seq && !parent.ordered:
		panic("treegen: sequential create under unordered " + parentPath)
	case !parent.ordered && parent.aversion > 0:
		// Unordered children may run before or after the setACL.
		panic("treegen: create under unordered " + parentPath + " after its setACL")
	}
	if s.seq {
		path = znode.SequentialName(path, parent.cversion)
	}
	if err := znode.ValidatePath(path); err != nil {
		panic(err)
	}
	if _, dup := b.nodes[path]; dup {
		panic("treegen: plan creates " + path + " twice")
	}
	if s.acl == nil {
		s.acl = znode.WorldAnyone()
	}
	if s.kind == znode.Ephemeral {
		b.sessions = max(b.sessions, s.session+1)
	}
	after := parent.create
	if parent.ordered {
		after = parent.tail
	}
	idx := b.add(Op{
		Type: OpCreate, Path: path, Data: s.data, ACL: s.acl, Kind: s.kind,
		Sequential: s.seq, TTL: s.ttl, Session: s.session, Classes: s.classes, After: after,
	})
	if parent.ordered {
		parent.tail = idx
	}
	parent.cversion++
	parent.children++
	b.live++
	b.nodes[path] = &pnode{create: idx, tail: idx, ordered: s.ordered, kind: s.kind, acl: s.acl}
	return path
}

// setData adds a conditional setData.
func (b *builder) setData(path string, data []byte) {
	n := b.mustNode(path)
	if !grants(n.acl, znode.PermWrite, b.cred) {
		panic("treegen: plan writes " + path + " whose ACL forbids it")
	}
	n.tail = b.add(Op{Type: OpSetData, Path: path, Data: data, Version: n.version, After: n.tail})
	n.version++
	n.selfOps++
}

// setACL adds a conditional setACL. A node with children must be ordered so
// that the new ACL lands after every child create.
func (b *builder) setACL(path string, acl []znode.ACL, classes ClassSet) {
	n := b.mustNode(path)
	switch {
	case n.cversion > 0 && !n.ordered:
		panic("treegen: setACL on unordered parent " + path)
	case !grants(n.acl, znode.PermAdmin, b.cred):
		panic("treegen: plan sets the ACL of " + path + " whose ACL forbids it")
	}
	n.tail = b.add(Op{Type: OpSetACL, Path: path, ACL: acl, Version: n.aversion, Classes: classes, After: n.tail})
	n.aversion++
	n.acl = acl
	n.selfOps++
}

// delete adds the delete of a leaf that has seen no op but its create.
func (b *builder) delete(path string) {
	n := b.mustNode(path)
	parent := b.mustNode(znode.Parent(path))
	switch {
	case n.children > 0:
		panic("treegen: plan deletes non-leaf " + path)
	case n.selfOps > 0:
		panic("treegen: plan deletes " + path + " after changing it")
	case !grants(parent.acl, znode.PermDelete, b.cred):
		panic("treegen: plan deletes under " + znode.Parent(path) + " whose ACL forbids it")
	}
	after := n.tail
	if parent.ordered {
		after = parent.tail
	}
	idx := b.add(Op{Type: OpDelete, Path: path, After: after})
	if parent.ordered {
		parent.tail = idx
	}
	parent.children--
	b.live--
	delete(b.nodes, path)
}

func (b *builder) add(op Op) int {
	b.ops = append(b.ops, op)
	return len(b.ops) - 1
}

func (b *builder) mustNode(path string) *pnode {
	n, ok := b.nodes[path]
	if !ok {
		panic("treegen: plan refers to missing node " + path)
	}
	return n
}

// count is the number of nodes the plan has so far (created, not deleted),
// which the profiles compare with Options.Nodes.
func (b *builder) count() int { return b.live }

// grants reports whether a generator session (authenticated with cred,
// connecting from 127.0.0.1) holds perm under acl.
func grants(acl []znode.ACL, perm znode.Perm, cred Credential) bool {
	for _, a := range acl {
		if a.Perms&perm == 0 {
			continue
		}
		switch {
		case a.ID.Scheme == "world" && a.ID.ID == "anyone",
			a.ID.Scheme == "ip" && (a.ID.ID == "127.0.0.1" || a.ID.ID == "127.0.0.0/8"),
			a.ID.Scheme == "auth",
			a.ID == cred.ID():
			return true
		}
	}
	return false
}

// anonymousCan reports whether a client without credentials connecting from
// 127.0.0.1 (an exporter) holds perm under a stored ACL.
func anonymousCan(acl []znode.ACL, perm znode.Perm) bool {
	for _, a := range acl {
		if a.Perms&perm != 0 && (a.ID.Scheme == "world" && a.ID.ID == "anyone" ||
			a.ID.Scheme == "ip" && (a.ID.ID == "127.0.0.1" || a.ID.ID == "127.0.0.0/8")) {
			return true
		}
	}
	return false
}

// Random helpers. All randomness flows from b.rng in plan order.

func (b *builder) intn(n int) int { return b.rng.IntN(n) }

// between returns a uniform int in [lo, hi].
func (b *builder) between(lo, hi int) int { return lo + b.rng.IntN(hi-lo+1) }

func (b *builder) chance(p float64) bool { return b.rng.Float64() < p }

func (b *builder) pick(xs []string) string { return xs[b.rng.IntN(len(xs))] }

func (b *builder) bytes(n int) []byte {
	out := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], b.rng.Uint64())
		copy(out[i:], w[:])
	}
	return out
}

// uuid returns a random RFC 4122 version-4 UUID string.
func (b *builder) uuid() string {
	u := b.bytes(16)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// shortID returns a Kafka-style base64url UUID (22 characters).
func (b *builder) shortID() string { return base64.RawURLEncoding.EncodeToString(b.bytes(16)) }

// word returns a random lowercase identifier of about n letters.
func (b *builder) word(n int) string {
	const syll = "bcdfghjklmnprstvz"
	const vow = "aeiou"
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteByte(syll[b.rng.IntN(len(syll))])
		sb.WriteByte(vow[b.rng.IntN(len(vow))])
	}
	return sb.String()
}

package dualwrite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/internal/testlog"
)

// The workloads here are what the Tap is tested with: run through the proxy,
// then the journal must equal ZooKeeper. They take any ZooKeeper address
// (the ensemble itself, or a Tap in front of it), so TestWorkloadsDirect
// validates them against ZooKeeper alone.
//
// Both leave only persistent, container and TTL nodes behind: every ephemeral
// belongs to a session they close themselves (a closeSession request, so its
// deletes pass through a proxy), never to one that expires on the server.
// Nothing they leave can be reaped by ZooKeeper's container manager during a
// test either: containers never lose their last child and TTL nodes live a
// day. The Go workload's TTL creates need the ensemble to run with extended
// types (zktest's ExtendedTypes; otherwise ZooKeeper answers Unimplemented).
// kazoo 2.8 creates neither TTL nor container nodes.

const (
	// workloadAuth is the digest identity ("user:password") of the Go
	// workload's sessions, which owns its protected nodes. Every node it
	// creates stays world-readable, so unauthenticated readers see it all;
	// writing to the protected ones needs this identity.
	workloadAuth = "workload:workload-secret"
	// workloadTTL outlives any test, so ZooKeeper never reaps a TTL node
	// while a check runs.
	workloadTTL = 24 * time.Hour
	// workloadSessions authenticated sessions run workloadLanes goroutines
	// each, every lane in its own subtree, so requests of one session are
	// pipelined and the final tree does not depend on scheduling.
	workloadSessions = 2
	workloadLanes    = 2
	// workloadRandomOps is the length of each lane's seeded random phase.
	workloadRandomOps = 250
	// workloadSessionTimeout is what the workload's sessions ask for.
	workloadSessionTimeout = 30 * time.Second
)

var workloadSeedFlag = flag.Int64("workload.seed", 0, "seed of TestWorkloadsDirect's Go workload (0: from the clock)")

// errWorkload is wrapped by every unexpected outcome of a workload.
var errWorkload = errors.New("dualwrite: workload")

// workloadStats counts what a workload did.
type workloadStats struct {
	Seed int64
	// Writes is the number of write requests that succeeded (a multi counts
	// once): each is one committed transaction.
	Writes int
	// ExpectedErrors is the number of write requests refused with exactly the
	// error the workload provoked (bad version, no node, node exists, not
	// empty, no auth, bad arguments, a failed multi): no transaction.
	ExpectedErrors int
	// Reads is the number of read requests (get, exists, children, sync).
	Reads int
	// Ephemerals is the number of ephemeral nodes created; all of them are
	// gone once runGoWorkload returns.
	Ephemerals int
	// Nodes is the number of znodes under the root, the root included, when
	// runGoWorkload returns.
	Nodes int
	// ByOp counts requests by the workload's name for them ("create-ttl",
	// "set-bad-version", "multi", ...), successes and expected errors alike.
	ByOp map[string]int
}

func (s *workloadStats) add(o *workloadStats) {
	s.Writes += o.Writes
	s.ExpectedErrors += o.ExpectedErrors
	s.Reads += o.Reads
	s.Ephemerals += o.Ephemerals
	if s.ByOp == nil {
		s.ByOp = map[string]int{}
	}
	for k, v := range o.ByOp {
		s.ByOp[k] += v
	}
}

// createKind is a create mode of go-zookeeper.
type createKind uint8

const (
	createPersistent createKind = iota
	createEphemeral
	createSequential
	createEphemeralSequential
	createContainer
	createTTL
	createTTLSequential
)

func (k createKind) String() string {
	switch k {
	case createPersistent:
		return "persistent"
	case createEphemeral:
		return "ephemeral"
	case createSequential:
		return "sequential"
	case createEphemeralSequential:
		return "ephemeral-sequential"
	case createContainer:
		return "container"
	case createTTL:
		return "ttl"
	case createTTLSequential:
		return "ttl-sequential"
	}
	return fmt.Sprintf("createKind(%d)", uint8(k))
}

func (k createKind) ephemeral() bool { return k == createEphemeral || k == createEphemeralSequential }

// canParent says whether the workload gives nodes of this kind children.
// Ephemerals cannot have any; containers are left childless (or keep their
// one child for good) so the container manager never deletes them.
func (k createKind) canParent() bool { return !k.ephemeral() && k != createContainer }

// wlNode is what a lane expects of one znode.
type wlNode struct {
	kind     createKind
	data     []byte // nil and empty are different
	version  int32
	aversion int32
	children int
}

// wlLane runs requests in one subtree over one session and keeps the model
// of that subtree. Lanes never touch each other's subtrees.
type wlLane struct {
	conn  *zk.Conn
	rng   *rand.Rand
	base  string
	nodes map[string]*wlNode
	order []string // the paths of nodes, in a seeded order, for picking
	next  int      // makes fresh names
	ephs  []string
	stats workloadStats
}

func newLane(conn *zk.Conn, base string, seed int64, lane uint64) *wlLane {
	return &wlLane{
		conn:  conn,
		rng:   rand.New(rand.NewPCG(uint64(seed), lane)),
		base:  base,
		nodes: map[string]*wlNode{},
		stats: workloadStats{ByOp: map[string]int{}},
	}
}

func (l *wlLane) ok(op string, err error) error {
	if err != nil {
		return fmt.Errorf("%w: %s in %s: %w", errWorkload, op, l.base, err)
	}
	l.stats.Writes++
	l.stats.ByOp[op]++
	return nil
}

func (l *wlLane) refused(op string, err, want error) error {
	if !errors.Is(err, want) {
		return fmt.Errorf("%w: %s in %s: got %v, want %v", errWorkload, op, l.base, err, want)
	}
	l.stats.ExpectedErrors++
	l.stats.ByOp[op]++
	return nil
}

func (l *wlLane) read(op string) {
	l.stats.Reads++
	l.stats.ByOp[op]++
}

func (l *wlLane) add(path string, n *wlNode) {
	l.nodes[path] = n
	l.order = append(l.order, path)
	if p := l.nodes[parentPath(path)]; p != nil {
		p.children++
	}
	if n.kind.ephemeral() {
		l.ephs = append(l.ephs, path)
		l.stats.Ephemerals++
	}
}

func (l *wlLane) remove(path string) {
	delete(l.nodes, path)
	i := slices.Index(l.order, path)
	l.order = slices.Delete(l.order, i, i+1)
	if p := l.nodes[parentPath(path)]; p != nil {
		p.children--
	}
	if i := slices.Index(l.ephs, path); i >= 0 {
		l.ephs = slices.Delete(l.ephs, i, i+1)
	}
}

func parentPath(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// create issues one create of the given kind and records the node.
func (l *wlLane) create(path string, data []byte, kind createKind, acl []zk.ACL) (string, error) {
	var (
		got string
		err error
	)
	switch kind {
	case createPersistent:
		got, err = l.conn.Create(path, data, zk.FlagPersistent, acl)
	case createEphemeral:
		got, err = l.conn.Create(path, data, zk.FlagEphemeral, acl)
	case createSequential:
		got, err = l.conn.Create(path, data, zk.FlagSequence, acl)
	case createEphemeralSequential:
		got, err = l.conn.Create(path, data, zk.FlagEphemeralSequential, acl)
	case createContainer:
		got, err = l.conn.CreateContainer(path, data, zk.FlagContainer, acl)
	case createTTL:
		got, err = l.conn.CreateTTL(path, data, zk.FlagTTL, acl, workloadTTL)
	case createTTLSequential:
		got, err = l.conn.CreateTTL(path, data, zk.FlagPersistentSequentialWithTTL, acl, workloadTTL)
	}
	if err := l.ok("create-"+kind.String(), err); err != nil {
		return "", err
	}
	l.add(got, &wlNode{kind: kind, data: data})
	return got, nil
}

func (l *wlLane) set(path string, data []byte, version int32) error {
	op := "set"
	if version == -1 {
		op = "set-any-version"
	}
	st, err := l.conn.Set(path, data, version)
	if err := l.ok(op, err); err != nil {
		return err
	}
	n := l.nodes[path]
	n.version++
	n.data = data
	if st.Version != n.version {
		return fmt.Errorf("%w: set %s: version %d, want %d", errWorkload, path, st.Version, n.version)
	}
	return nil
}

func (l *wlLane) setACL(path string, acl []zk.ACL, version int32) error {
	st, err := l.conn.SetACL(path, acl, version)
	if err := l.ok("set-acl", err); err != nil {
		return err
	}
	n := l.nodes[path]
	n.aversion++
	if st.Aversion != n.aversion {
		return fmt.Errorf("%w: set-acl %s: aversion %d, want %d", errWorkload, path, st.Aversion, n.aversion)
	}
	return nil
}

func (l *wlLane) delete(path string, version int32) error {
	if err := l.ok("delete", l.conn.Delete(path, version)); err != nil {
		return err
	}
	l.remove(path)
	return nil
}

// checkData reads a node back and compares it with the model, nil and empty
// data told apart.
func (l *wlLane) checkData(path string) error {
	data, st, err := l.conn.Get(path)
	l.read("get")
	if err != nil {
		return fmt.Errorf("%w: get %s: %w", errWorkload, path, err)
	}
	n := l.nodes[path]
	if !sameData(data, n.data) || st.Version != n.version || st.Aversion != n.aversion || int(st.NumChildren) != n.children {
		return fmt.Errorf("%w: get %s: data %q version %d aversion %d children %d, want %q %d %d %d",
			errWorkload, path, clip(data), st.Version, st.Aversion, st.NumChildren, clip(n.data), n.version, n.aversion, n.children)
	}
	return nil
}

func sameData(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

func (l *wlLane) fresh(prefix string) string {
	l.next++
	return fmt.Sprintf("%s%04d", prefix, l.next)
}

// The ACLs the workload uses. Every one lets the world read, and the digest
// identity of workloadAuth keep every right.
func openACL() []zk.ACL { return zk.WorldACL(zk.PermAll) }

func protectedACL() []zk.ACL {
	user, password, _ := strings.Cut(workloadAuth, ":")
	return append(zk.DigestACL(zk.PermAll, user, password), zk.WorldACL(zk.PermRead)...)
}

// authSchemeACL is stored by ZooKeeper as the digest of the creating session,
// not as sent: a mirror must record what ZooKeeper stored.
func authSchemeACL() []zk.ACL { return append(zk.AuthACL(zk.PermAll), zk.WorldACL(zk.PermRead)...) }

func ipACL() []zk.ACL {
	return append([]zk.ACL{{Perms: zk.PermRead | zk.PermWrite, Scheme: "ip", ID: "127.0.0.1"}}, protectedACL()...)
}

func (l *wlLane) randomACL() []zk.ACL {
	switch r := l.rng.IntN(10); {
	case r < 6:
		return openACL()
	case r < 8:
		return protectedACL()
	case r < 9:
		return authSchemeACL()
	default:
		return ipACL()
	}
}

func (l *wlLane) randomData() []byte {
	switch r := l.rng.IntN(10); {
	case r < 1:
		return nil
	case r < 2:
		return []byte{}
	case r < 6:
		return fmt.Appendf(nil, "value-%d", l.rng.Uint32())
	case r < 9:
		return l.randomBytes(1 + l.rng.IntN(64))
	default:
		return l.randomBytes(1 + l.rng.IntN(16<<10))
	}
}

func (l *wlLane) randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(l.rng.Uint32())
	}
	return b
}

// pick returns a random node of the lane's subtree that satisfies ok, or ""
// after a few misses.
func (l *wlLane) pick(ok func(string, *wlNode) bool) string {
	for range 16 {
		p := l.order[l.rng.IntN(len(l.order))]
		if ok(p, l.nodes[p]) {
			return p
		}
	}
	return ""
}

func anyNode(string, *wlNode) bool { return true }

// fixed runs the part of the workload that does not depend on the seed's
// choices: one of everything, in the lane's subtree. anon is a session
// without the workload's identity.
func (l *wlLane) fixed(anon *zk.Conn) error {
	p := func(parts ...string) string { return l.base + "/" + strings.Join(parts, "/") }
	create := func(path string, data []byte, kind createKind, acl []zk.ACL) func() error {
		return func() error { _, err := l.create(path, data, kind, acl); return err }
	}
	steps := []func() error{
		// Data: every byte value, empty, nil, large, a non-ASCII name.
		create(p("binary"), byteValues(), createPersistent, openACL()),
		create(p("empty"), []byte{}, createPersistent, openACL()),
		create(p("nil"), nil, createPersistent, openACL()),
		create(p("large"), l.randomBytes(512<<10), createPersistent, openACL()),
		create(p("ünïcode-☃"), []byte("snowman ☃"), createPersistent, openACL()),
		// Every create mode.
		create(p("ephemeral"), []byte("e"), createEphemeral, openACL()),
		create(p("ephemeral-nil"), nil, createEphemeral, protectedACL()),
		create(p("seq"), nil, createPersistent, openACL()),
		func() error {
			for i := range 3 {
				if _, err := l.create(p("seq", "n-"), fmt.Appendf(nil, "seq-%d", i), createSequential, openACL()); err != nil {
					return err
				}
			}
			for i := range 2 {
				if _, err := l.create(p("seq", "e-"), fmt.Appendf(nil, "eseq-%d", i), createEphemeralSequential, openACL()); err != nil {
					return err
				}
			}
			return nil
		},
		create(p("container"), []byte("c"), createContainer, openACL()),
		create(p("container", "keep"), []byte("keeps the container"), createPersistent, openACL()),
		create(p("container-empty"), nil, createContainer, openACL()),
		create(p("ttl"), []byte("t"), createTTL, openACL()),
		create(p("ttl-seq-"), []byte("ts"), createTTLSequential, openACL()),
		func() error {
			_, err := l.conn.CreateTTL(p("ttl-zero"), nil, zk.FlagTTL, openACL(), 0)
			return l.refused("create-ttl-zero", err, zk.ErrBadArguments)
		},
		// ACL schemes.
		create(p("acl-digest"), []byte("d"), createPersistent, protectedACL()),
		create(p("acl-auth"), []byte("a"), createPersistent, authSchemeACL()),
		create(p("acl-ip"), []byte("i"), createPersistent, ipACL()),
		// A deep path, one level at a time.
		func() error {
			path := l.base
			for i := range 32 {
				path += fmt.Sprintf("/d%02d", i)
				if _, err := l.create(path, fmt.Appendf(nil, "depth %d", i+1), createPersistent, openACL()); err != nil {
					return err
				}
			}
			return nil
		},
		// Sets with version checks.
		func() error { return l.set(p("binary"), []byte("v1"), 0) },
		func() error {
			_, err := l.conn.Set(p("binary"), []byte("stale"), 0)
			return l.refused("set-bad-version", err, zk.ErrBadVersion)
		},
		func() error { return l.set(p("binary"), byteValues()[128:], -1) },
		func() error { return l.set(p("empty"), nil, 0) },
		func() error { return l.set(p("nil"), []byte{}, 0) },
		func() error {
			_, err := l.conn.Set(p("missing"), nil, -1)
			return l.refused("set-no-node", err, zk.ErrNoNode)
		},
		// ACL changes with version checks.
		func() error { return l.setACL(p("acl-digest"), authSchemeACL(), 0) },
		func() error {
			_, err := l.conn.SetACL(p("acl-digest"), openACL(), 0)
			return l.refused("set-acl-bad-version", err, zk.ErrBadVersion)
		},
		func() error { return l.setACL(p("acl-ip"), openACL(), -1) },
		// A session without the identity is refused.
		func() error {
			_, err := anon.Set(p("acl-digest"), []byte("intruder"), -1)
			return l.refused("set-no-auth", err, zk.ErrNoAuth)
		},
		func() error {
			_, err := anon.Create(p("acl-auth", "child"), nil, zk.FlagPersistent, openACL())
			return l.refused("create-no-auth", err, zk.ErrNoAuth)
		},
		// Creates that must fail.
		func() error {
			_, err := l.conn.Create(p("binary"), nil, zk.FlagPersistent, openACL())
			return l.refused("create-exists", err, zk.ErrNodeExists)
		},
		func() error {
			_, err := l.conn.Create(p("nowhere", "child"), nil, zk.FlagPersistent, openACL())
			return l.refused("create-no-parent", err, zk.ErrNoNode)
		},
		func() error {
			_, err := l.conn.Create(p("ephemeral", "child"), nil, zk.FlagPersistent, openACL())
			return l.refused("create-under-ephemeral", err, zk.ErrNoChildrenForEphemerals)
		},
		func() error {
			_, err := l.conn.CreateContainer(p("ephemeral", "c"), nil, zk.FlagContainer, openACL())
			return l.refused("create-container-under-ephemeral", err, zk.ErrNoChildrenForEphemerals)
		},
		// Deletes with version checks.
		create(p("victim"), []byte("v0"), createPersistent, openACL()),
		func() error { return l.set(p("victim"), []byte("v1"), 0) },
		func() error {
			return l.refused("delete-bad-version", l.conn.Delete(p("victim"), 0), zk.ErrBadVersion)
		},
		func() error { return l.delete(p("victim"), 1) },
		func() error { return l.refused("delete-no-node", l.conn.Delete(p("victim"), -1), zk.ErrNoNode) },
		func() error { return l.refused("delete-not-empty", l.conn.Delete(p("seq"), -1), zk.ErrNotEmpty) },
		// A multi of every kind of op it can hold, ephemeral and sequential creates included.
		create(p("multi-victim"), nil, createPersistent, openACL()),
		func() error {
			binary := l.nodes[p("binary")]
			res, err := l.conn.Multi(
				&zk.CreateRequest{Path: p("multi-new"), Data: []byte("m"), Acl: openACL(), Flags: zk.FlagPersistent},
				&zk.CreateRequest{Path: p("multi-seq-"), Data: nil, Acl: protectedACL(), Flags: zk.FlagSequence},
				&zk.CreateRequest{Path: p("multi-eph"), Data: []byte("me"), Acl: openACL(), Flags: zk.FlagEphemeral},
				&zk.SetDataRequest{Path: p("binary"), Data: []byte("set in a multi"), Version: binary.version},
				&zk.CheckVersionRequest{Path: p("acl-digest"), Version: 0},
				&zk.DeleteRequest{Path: p("multi-victim"), Version: 0},
			)
			if err := l.ok("multi", err); err != nil {
				return err
			}
			if len(res) != 6 || res[0].String != p("multi-new") || !strings.HasPrefix(res[1].String, p("multi-seq-")) {
				return fmt.Errorf("%w: multi: results %+v", errWorkload, res)
			}
			l.add(res[0].String, &wlNode{kind: createPersistent, data: []byte("m")})
			l.add(res[1].String, &wlNode{kind: createSequential})
			l.add(res[2].String, &wlNode{kind: createEphemeral, data: []byte("me")})
			binary.version++
			binary.data = []byte("set in a multi")
			l.remove(p("multi-victim"))
			return nil
		},
		// Failed multis apply nothing.
		func() error {
			_, err := l.conn.Multi(
				&zk.CreateRequest{Path: p("multi-never"), Data: []byte("never"), Acl: openACL(), Flags: zk.FlagPersistent},
				&zk.SetDataRequest{Path: p("binary"), Data: []byte("never"), Version: l.nodes[p("binary")].version},
				&zk.CheckVersionRequest{Path: p("acl-digest"), Version: 7},
			)
			return l.refused("multi-bad-version", err, zk.ErrBadVersion)
		},
		func() error {
			_, err := l.conn.Multi(
				&zk.DeleteRequest{Path: p("nil"), Version: -1},
				&zk.CreateRequest{Path: p("multi-new"), Data: nil, Acl: openACL(), Flags: zk.FlagPersistent},
			)
			return l.refused("multi-node-exists", err, zk.ErrNodeExists)
		},
		func() error {
			ok, _, err := l.conn.Exists(p("multi-never"))
			l.read("exists")
			if err != nil || ok {
				return fmt.Errorf("%w: a failed multi created %s (err %v)", errWorkload, p("multi-never"), err)
			}
			return l.checkData(p("nil"))
		},
		func() error {
			_, err := l.conn.Sync(l.base)
			l.read("sync")
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func byteValues() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// random runs n seeded random requests, each with an outcome known from the
// model: creates of every mode, sets, deletes and ACL changes with right,
// wildcard and stale versions, multis that commit or fail, and reads that
// check the model.
func (l *wlLane) random(ctx context.Context, n int) error {
	for range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch r := l.rng.IntN(100); {
		case r < 35:
			err = l.randomCreate()
		case r < 57:
			err = l.randomSet()
		case r < 72:
			err = l.randomDelete()
		case r < 80:
			err = l.randomSetACL()
		case r < 90:
			err = l.randomMulti()
		default:
			err = l.randomRead()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *wlLane) randomCreate() error {
	switch r := l.rng.IntN(100); {
	case r < 4:
		p := l.pick(anyNode)
		_, err := l.conn.Create(p, nil, zk.FlagPersistent, openACL())
		return l.refused("create-exists", err, zk.ErrNodeExists)
	case r < 7:
		if p := l.pick(func(_ string, n *wlNode) bool { return n.kind.ephemeral() }); p != "" {
			_, err := l.conn.Create(p+"/child", nil, zk.FlagPersistent, openACL())
			return l.refused("create-under-ephemeral", err, zk.ErrNoChildrenForEphemerals)
		}
	}
	parent := l.pick(func(_ string, n *wlNode) bool { return n.kind.canParent() })
	if parent == "" {
		parent = l.base
	}
	var kind createKind
	switch r := l.rng.IntN(100); {
	case r < 45:
		kind = createPersistent
	case r < 60:
		kind = createEphemeral
	case r < 75:
		kind = createSequential
	case r < 85:
		kind = createEphemeralSequential
	case r < 92:
		kind = createContainer
	default:
		kind = createTTL
	}
	name := l.fresh("n")
	if kind == createSequential || kind == createEphemeralSequential {
		name = "s-"
	}
	_, err := l.create(parent+"/"+name, l.randomData(), kind, l.randomACL())
	return err
}

func (l *wlLane) randomSet() error {
	p := l.pick(anyNode)
	n := l.nodes[p]
	switch r := l.rng.IntN(10); {
	case r < 7:
		return l.set(p, l.randomData(), n.version)
	case r < 8:
		return l.set(p, l.randomData(), -1)
	default:
		_, err := l.conn.Set(p, []byte("stale"), n.version+1+l.rng.Int32N(3))
		return l.refused("set-bad-version", err, zk.ErrBadVersion)
	}
}

func (l *wlLane) randomDelete() error {
	p := l.pick(func(p string, n *wlNode) bool { return p != l.base })
	if p == "" {
		return nil
	}
	n := l.nodes[p]
	if n.children > 0 {
		return l.refused("delete-not-empty", l.conn.Delete(p, -1), zk.ErrNotEmpty)
	}
	if parent := l.nodes[parentPath(p)]; parent != nil && parent.kind == createContainer {
		return nil // a container keeps its child
	}
	switch r := l.rng.IntN(10); {
	case r < 6:
		return l.delete(p, n.version)
	case r < 8:
		return l.delete(p, -1)
	default:
		return l.refused("delete-bad-version", l.conn.Delete(p, n.version+1), zk.ErrBadVersion)
	}
}

func (l *wlLane) randomSetACL() error {
	p := l.pick(anyNode)
	n := l.nodes[p]
	if l.rng.IntN(5) == 0 {
		_, err := l.conn.SetACL(p, openACL(), n.aversion+1)
		return l.refused("set-acl-bad-version", err, zk.ErrBadVersion)
	}
	return l.setACL(p, l.randomACL(), n.aversion)
}

// randomMulti commits, or fails on purpose, a multi of a create, a set, a
// check and, when a leaf is available, a delete, all on distinct nodes.
func (l *wlLane) randomMulti() error {
	parent := l.pick(func(_ string, n *wlNode) bool { return n.kind.canParent() })
	if parent == "" {
		parent = l.base
	}
	setP := l.pick(anyNode)
	checkP := l.pick(func(p string, _ *wlNode) bool { return p != setP })
	delP := l.pick(func(p string, n *wlNode) bool {
		return p != l.base && p != setP && p != checkP && p != parent && n.children == 0 &&
			l.nodes[parentPath(p)].kind != createContainer
	})
	if checkP == "" {
		return nil
	}
	fail := l.rng.IntN(4) == 0
	created := parent + "/" + l.fresh("m")
	data, setData := l.randomData(), l.randomData()
	checkVersion := l.nodes[checkP].version
	if fail {
		checkVersion += 1 + l.rng.Int32N(3)
	}
	ops := []any{
		&zk.CreateRequest{Path: created, Data: data, Acl: l.randomACL(), Flags: zk.FlagPersistent},
		&zk.SetDataRequest{Path: setP, Data: setData, Version: l.nodes[setP].version},
		&zk.CheckVersionRequest{Path: checkP, Version: checkVersion},
	}
	if delP != "" {
		ops = append(ops, &zk.DeleteRequest{Path: delP, Version: l.nodes[delP].version})
	}
	res, err := l.conn.Multi(ops...)
	if fail {
		return l.refused("multi-bad-version", err, zk.ErrBadVersion)
	}
	if err := l.ok("multi", err); err != nil {
		return err
	}
	if len(res) != len(ops) || res[0].String != created || res[1].Stat == nil || res[1].Stat.Version != l.nodes[setP].version+1 {
		return fmt.Errorf("%w: multi: results %+v", errWorkload, res)
	}
	l.add(created, &wlNode{kind: createPersistent, data: data})
	l.nodes[setP].version++
	l.nodes[setP].data = setData
	if delP != "" {
		l.remove(delP)
	}
	return nil
}

func (l *wlLane) randomRead() error {
	switch l.rng.IntN(3) {
	case 0:
		ok, _, err := l.conn.Exists(l.base + "/" + l.fresh("absent"))
		l.read("exists")
		if err != nil || ok {
			return fmt.Errorf("%w: exists of an absent node: %v %v", errWorkload, ok, err)
		}
		return nil
	case 1:
		p := l.pick(anyNode)
		children, _, err := l.conn.Children(p)
		l.read("children")
		if err != nil || len(children) != l.nodes[p].children {
			return fmt.Errorf("%w: children %s: %d (err %v), want %d", errWorkload, p, len(children), err, l.nodes[p].children)
		}
		return nil
	default:
		return l.checkData(l.pick(anyNode))
	}
}

// workloadLogger hands go-zookeeper's log lines to a testlog logger, which
// shows them only if the test fails and never calls t.Log late.
type workloadLogger struct{ log *slog.Logger }

func (w workloadLogger) Printf(format string, args ...any) {
	w.log.Info(fmt.Sprintf(format, args...), "component", "go-zookeeper")
}

// dialWorkload opens a session to hosts and waits until it is established.
// auth is a digest "user:password", or "" for none.
func dialWorkload(ctx context.Context, hosts []string, log *slog.Logger, auth string) (*zk.Conn, error) {
	conn, events, err := zk.Connect(hosts, workloadSessionTimeout, zk.WithLogger(workloadLogger{log}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("%w: connect %v: %w", errWorkload, hosts, err)
	}
	for established := false; !established; {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil, fmt.Errorf("%w: connect %v: connection closed", errWorkload, hosts)
			}
			established = ev.State == zk.StateHasSession
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("%w: connect %v: %w", errWorkload, hosts, ctx.Err())
		}
	}
	if auth != "" {
		if err := conn.AddAuth("digest", []byte(auth)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: add auth: %w", errWorkload, err)
		}
	}
	return conn, nil
}

// runGoWorkload runs the Go workload under root against hosts (ZooKeeper
// servers, or a Tap's address): root must be absent or empty, and its parent
// must exist. Given a seed it issues the same requests and leaves the same
// tree every time (paths, data, ACLs, versions; zxids and times aside).
//
// It opens workloadSessions sessions with the digest identity workloadAuth
// and one without. The first runs a fixed part in root/fixed: every create
// mode go-zookeeper has (persistent, ephemeral, sequential, ephemeral
// sequential, container, TTL, sequential TTL), data of every byte value,
// empty, nil and 512 KiB, digest, auth, ip and world ACLs, a 32-level path,
// sets, deletes and ACL changes with right, wildcard and stale versions,
// creates and multis that must fail, and a multi with ephemeral and
// sequential creates. Then every session's workloadLanes lanes run
// workloadRandomOps seeded random requests each in their own subtree
// root/sS-lL, concurrently, so one session carries pipelined requests.
//
// Finally it closes the sessions, waits (on watches) until ZooKeeper has
// deleted every ephemeral they owned, and checks from the session without
// the identity (open until then) that the tree under root is exactly the one
// its model predicts. Any other outcome, including a request failing with an
// error it did not provoke, is an error wrapping errWorkload.
func runGoWorkload(ctx context.Context, t testing.TB, hosts []string, root string, seed int64) (workloadStats, error) {
	t.Helper()
	t.Logf("go workload under %s: seed %d (-workload.seed=%d repeats it)", root, seed, seed)
	log := testlog.New(t).With("workload-root", root)
	stats := workloadStats{Seed: seed, ByOp: map[string]int{}}

	var conns []*zk.Conn
	var mu sync.Mutex // guards conns against the AfterFunc
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	// A cancelled ctx closes the sessions, which fails any request in flight.
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	defer closeAll()
	dial := func(auth string) (*zk.Conn, error) {
		c, err := dialWorkload(ctx, hosts, log, auth)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, c)
		return c, nil
	}

	owners := make([]*zk.Conn, workloadSessions)
	for i := range owners {
		c, err := dial(workloadAuth)
		if err != nil {
			return stats, err
		}
		owners[i] = c
	}
	anon, err := dial("")
	if err != nil {
		return stats, err
	}

	rootData := fmt.Appendf(nil, "go workload, seed %d", seed)
	root0 := newLane(owners[0], root, seed, 1<<32)
	switch _, err := owners[0].Create(root, rootData, zk.FlagPersistent, openACL()); {
	case errors.Is(err, zk.ErrNodeExists):
		children, _, err := owners[0].Children(root)
		if err != nil {
			return stats, fmt.Errorf("%w: root %s: %w", errWorkload, root, err)
		}
		if len(children) > 0 {
			return stats, fmt.Errorf("%w: root %s exists and has %d children", errWorkload, root, len(children))
		}
		if rootData, _, err = owners[0].Get(root); err != nil {
			return stats, fmt.Errorf("%w: root %s: %w", errWorkload, root, err)
		}
	case err != nil:
		return stats, fmt.Errorf("%w: create root %s: %w", errWorkload, root, err)
	default:
		root0.stats.Writes++
		root0.stats.ByOp["create-persistent"]++
	}

	fixed := newLane(owners[0], root+"/fixed", seed, 1<<32+1)
	lanes := []*wlLane{fixed}
	if _, err := fixed.create(fixed.base, []byte("fixed part"), createPersistent, openACL()); err != nil {
		return stats, err
	}
	if err := fixed.fixed(anon); err != nil {
		return stats, err
	}
	for s, c := range owners {
		for i := range workloadLanes {
			l := newLane(c, fmt.Sprintf("%s/s%d-l%d", root, s, i), seed, uint64(s*workloadLanes+i))
			if _, err := l.create(l.base, fmt.Appendf(nil, "lane %d of session %d", i, s), createPersistent, openACL()); err != nil {
				return stats, err
			}
			lanes = append(lanes, l)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, l := range lanes[1:] {
		g.Go(func() error { return l.random(gctx, workloadRandomOps) })
	}
	if err := g.Wait(); err != nil {
		return stats, err
	}

	want := map[string]*wlNode{root: {kind: createPersistent, data: rootData, children: len(lanes)}}
	var ephemerals []string
	for _, l := range append(lanes, root0) {
		stats.add(&l.stats)
		for p, n := range l.nodes {
			if n.kind.ephemeral() {
				continue
			}
			want[p] = n
		}
		ephemerals = append(ephemerals, l.ephs...)
	}
	// The model counts ephemerals as children; after the close they are gone.
	for _, p := range ephemerals {
		if parent := want[parentPath(p)]; parent != nil {
			parent.children--
		}
	}

	if err := closeAndWaitEphemerals(ctx, anon, owners, ephemerals); err != nil {
		return stats, err
	}
	n, err := checkWorkloadTree(anon, root, want)
	stats.Nodes = n
	stats.Reads += n
	log.Info("go workload done", "writes", stats.Writes, "expected-errors", stats.ExpectedErrors, "nodes", stats.Nodes)
	return stats, err
}

// closeAndWaitEphemerals closes the owners' sessions and waits, on exists
// watches set from watcher beforehand, until every ephemeral is deleted.
func closeAndWaitEphemerals(ctx context.Context, watcher *zk.Conn, owners []*zk.Conn, ephemerals []string) error {
	// watcher's server must have applied every create before it is asked.
	if _, err := watcher.Sync("/"); err != nil {
		return fmt.Errorf("%w: sync: %w", errWorkload, err)
	}
	watches := make(map[string]<-chan zk.Event, len(ephemerals))
	for _, p := range ephemerals {
		ok, _, ch, err := watcher.ExistsW(p)
		if err != nil || !ok {
			return fmt.Errorf("%w: ephemeral %s before close: exists %v, err %v", errWorkload, p, ok, err)
		}
		watches[p] = ch
	}
	for _, c := range owners {
		c.Close()
	}
	timeout := time.NewTimer(2 * workloadSessionTimeout)
	defer timeout.Stop()
	for _, p := range slices.Sorted(maps.Keys(watches)) {
		select {
		case ev := <-watches[p]:
			if ev.Type != zk.EventNodeDeleted {
				return fmt.Errorf("%w: ephemeral %s after close: event %v (%v)", errWorkload, p, ev.Type, ev.Err)
			}
		case <-timeout.C:
			return fmt.Errorf("%w: ephemeral %s still there %v after its session closed", errWorkload, p, 2*workloadSessionTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// checkWorkloadTree walks root and compares every node with want: the same
// paths, data (nil apart from empty), versions and child counts, and no
// ephemeral owner. It returns the number of nodes found.
func checkWorkloadTree(conn *zk.Conn, root string, want map[string]*wlNode) (int, error) {
	if _, err := conn.Sync(root); err != nil {
		return 0, fmt.Errorf("%w: sync %s: %w", errWorkload, root, err)
	}
	var errs []error
	seen := 0
	stack := []string{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		data, st, err := conn.Get(p)
		if err != nil {
			return seen, fmt.Errorf("%w: get %s: %w", errWorkload, p, err)
		}
		children, _, err := conn.Children(p)
		if err != nil {
			return seen, fmt.Errorf("%w: children %s: %w", errWorkload, p, err)
		}
		seen++
		for _, c := range children {
			stack = append(stack, strings.TrimSuffix(p, "/")+"/"+c)
		}
		n := want[p]
		switch {
		case n == nil:
			errs = append(errs, fmt.Errorf("%w: unexpected node %s (ephemeral owner %#x)", errWorkload, p, st.EphemeralOwner))
		case st.EphemeralOwner != 0:
			errs = append(errs, fmt.Errorf("%w: %s has ephemeral owner %#x after every session closed", errWorkload, p, st.EphemeralOwner))
		case !sameData(data, n.data) || st.Version != n.version || st.Aversion != n.aversion || int(st.NumChildren) != n.children:
			errs = append(errs, fmt.Errorf("%w: %s: data %q version %d aversion %d children %d, want %q %d %d %d",
				errWorkload, p, clip(data), st.Version, st.Aversion, st.NumChildren, clip(n.data), n.version, n.aversion, n.children))
		}
	}
	if seen != len(want) {
		errs = append(errs, fmt.Errorf("%w: %d nodes under %s, want %d", errWorkload, seen, root, len(want)))
	}
	return seen, errors.Join(errs...)
}

// kazooPython is Debian's interpreter: a python3 earlier on PATH (pyenv,
// virtualenv) does not see Debian's python3-kazoo.
const kazooPython = "/usr/bin/python3"

// kazooSummary is the JSON line testdata/kazoo_workload.py ends with.
type kazooSummary struct {
	Kazoo            string         `json:"kazoo"`
	Root             string         `json:"root"`
	OK               int            `json:"ok"`
	ExpectedFailures int            `json:"expected_failures"`
	Ephemerals       int            `json:"ephemerals"`
	Nodes            int            `json:"nodes"`
	Container        bool           `json:"container"`
	TTL              bool           `json:"ttl"`
	ByOp             map[string]int `json:"by_op"`
}

// errKazooMissing is returned when Debian's python3-kazoo is not installed.
var errKazooMissing = errors.New("dualwrite: the kazoo workload needs Debian's python3-kazoo for " + kazooPython + ": run `make deps`")

// runKazooWorkload runs testdata/kazoo_workload.py against hostPort (a
// connect string "host:port[,host:port]": ZooKeeper, or a Tap) under root,
// which must be absent or empty. The script checks its own outcomes, closes
// its session and checks that its ephemerals are gone; any surprise is an
// error quoting its stderr. A machine without kazoo gets errKazooMissing,
// which names `make deps`: the test fails, it never skips.
func runKazooWorkload(ctx context.Context, t testing.TB, hostPort, root string) error {
	t.Helper()
	_, err := runKazooScript(ctx, t, hostPort, root)
	return err
}

func runKazooScript(ctx context.Context, t testing.TB, hostPort, root string) (kazooSummary, error) {
	t.Helper()
	var sum kazooSummary
	if err := kazooInstalled(ctx); err != nil {
		return sum, err
	}
	script, err := filepath.Abs(filepath.Join("testdata", "kazoo_workload.py"))
	if err != nil {
		return sum, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kazooPython, script, "--hosts", hostPort, "--root", root)
	cmd.Env = kazooEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return sum, fmt.Errorf("%w: kazoo workload under %s: %w\n----- stderr -----\n%s", errWorkload, root, err, strings.TrimSpace(stderr.String()))
	}
	var last string
	for sc := bufio.NewScanner(&stdout); sc.Scan(); {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			last = line
		}
	}
	if err := json.Unmarshal([]byte(last), &sum); err != nil {
		return sum, fmt.Errorf("%w: kazoo workload summary %q: %w", errWorkload, last, err)
	}
	t.Logf("kazoo %s workload under %s in %v: %d ok, %d failed as expected, %d nodes left",
		sum.Kazoo, root, time.Since(start).Round(time.Millisecond), sum.OK, sum.ExpectedFailures, sum.Nodes)
	return sum, nil
}

// kazooInstalled fails with errKazooMissing unless Debian's python3 imports kazoo.
func kazooInstalled(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, kazooPython, "-c", "import kazoo")
	cmd.Env = kazooEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w (%v: %s)", errKazooMissing, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// kazooEnv is the environment without the variables that would point
// Debian's python at another installation's modules, and without bytecode
// written into testdata.
func kazooEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PYTHONPATH=") || strings.HasPrefix(kv, "PYTHONHOME=") ||
			strings.HasPrefix(kv, "PYTHONSTARTUP=") || strings.HasPrefix(kv, "VIRTUAL_ENV=")
	})
	return append(env, "PYTHONDONTWRITEBYTECODE=1")
}

// workloadSeed is -workload.seed, or a seed from the clock.
func workloadSeed() int64 {
	if *workloadSeedFlag != 0 {
		return *workloadSeedFlag
	}
	return time.Now().UnixNano()
}

// treeEntry is what two runs of the Go workload with one seed must agree on
// for a node.
type treeEntry struct {
	Data                        string
	Nil                         bool
	Version, Cversion, Aversion int32
	NumChildren                 int32
	ACL                         string
}

// readTree reads the subtree at root, keyed by path relative to root.
func readTree(t testing.TB, conn *zk.Conn, root string) map[string]treeEntry {
	t.Helper()
	if _, err := conn.Sync(root); err != nil {
		t.Fatal(err)
	}
	out := map[string]treeEntry{}
	stack := []string{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		data, st, err := conn.Get(p)
		if err != nil {
			t.Fatalf("get %s: %v", p, err)
		}
		acl, _, err := conn.GetACL(p)
		if err != nil {
			t.Fatalf("get acl %s: %v", p, err)
		}
		children, _, err := conn.Children(p)
		if err != nil {
			t.Fatalf("children %s: %v", p, err)
		}
		for _, c := range children {
			stack = append(stack, p+"/"+c)
		}
		out[strings.TrimPrefix(p, root)] = treeEntry{
			Data: string(data), Nil: data == nil,
			Version: st.Version, Cversion: st.Cversion, Aversion: st.Aversion, NumChildren: st.NumChildren,
			ACL: fmt.Sprint(acl),
		}
	}
	return out
}

func TestWorkloadsDirect(t *testing.T) {
	ens := testEnsemble(t)

	t.Run("go", func(t *testing.T) {
		t.Parallel()
		seed := workloadSeed()
		roots := []string{freshRoot(t), freshRoot(t)}
		// Two runs with one seed, concurrently, must leave equal trees.
		stats := make([]workloadStats, len(roots))
		g, ctx := errgroup.WithContext(t.Context())
		for i, root := range roots {
			g.Go(func() error {
				var err error
				stats[i], err = runGoWorkload(ctx, t, ens.Hosts(), root, seed)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		s := stats[0]
		t.Logf("go workload: %d writes, %d expected errors, %d reads, %d ephemerals, %d nodes left",
			s.Writes, s.ExpectedErrors, s.Reads, s.Ephemerals, s.Nodes)
		for _, op := range []string{
			"create-persistent", "create-ephemeral", "create-sequential", "create-ephemeral-sequential",
			"create-container", "create-ttl", "create-ttl-sequential", "create-ttl-zero",
			"set", "set-any-version", "set-bad-version", "set-no-node", "set-no-auth",
			"set-acl", "set-acl-bad-version", "create-no-auth", "create-exists", "create-no-parent",
			"create-under-ephemeral", "delete", "delete-bad-version", "delete-no-node", "delete-not-empty",
			"multi", "multi-bad-version", "multi-node-exists", "get", "exists", "children", "sync",
		} {
			if s.ByOp[op] == 0 {
				t.Errorf("the workload never ran %s", op)
			}
		}
		if s.Ephemerals == 0 || s.Nodes < 100 {
			t.Errorf("%d ephemerals, %d nodes: too small a workload", s.Ephemerals, s.Nodes)
		}
		if d := stats[1]; d.Writes != s.Writes || d.ExpectedErrors != s.ExpectedErrors || d.Nodes != s.Nodes {
			t.Errorf("same seed, different counts: %+v and %+v", s, d)
		}

		conn, err := dialWorkload(t.Context(), ens.Hosts(), testlog.New(t), "")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		a, b := readTree(t, conn, roots[0]), readTree(t, conn, roots[1])
		delete(a, "") // the roots' data name nothing that differs, but keep them out anyway
		delete(b, "")
		for _, p := range slices.Sorted(maps.Keys(a)) {
			if a[p] != b[p] {
				t.Errorf("same seed, %s differs:\n%s: %+v\n%s: %+v", p, roots[0], a[p], roots[1], b[p])
			}
		}
		for p := range b {
			if _, ok := a[p]; !ok {
				t.Errorf("same seed, %s%s only in the second run", roots[1], p)
			}
		}
		// ZooKeeper keeps nil data apart from empty, and so must a mirror.
		if e := a["/fixed/empty"]; !e.Nil {
			t.Errorf("/fixed/empty: %+v, want nil data", e)
		}
		if e := a["/fixed/nil"]; e.Nil || e.Data != "" {
			t.Errorf("/fixed/nil: %+v, want empty data", e)
		}
	})

	t.Run("kazoo", func(t *testing.T) {
		t.Parallel()
		root := freshRoot(t)
		sum, err := runKazooScript(t.Context(), t, ens.ConnectString(), root)
		if err != nil {
			t.Fatal(err)
		}
		if sum.OK == 0 || sum.ExpectedFailures == 0 || sum.Ephemerals == 0 {
			t.Errorf("summary %+v: too small a workload", sum)
		}
		// Check from a Go session what the script checked from Python.
		conn, err := dialWorkload(t.Context(), ens.Hosts(), testlog.New(t), "")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		tree := readTree(t, conn, root)
		if len(tree) != sum.Nodes {
			t.Errorf("%d nodes under %s, the script left %d", len(tree), root, sum.Nodes)
		}
		for _, p := range []string{"/persistent", "/create2", "/large", "/acl", "/acl-auth", "/txn-new", "/d00/d01/d02"} {
			if _, ok := tree[p]; !ok {
				t.Errorf("%s%s missing", root, p)
			}
		}
		for _, p := range []string{"/ephemeral", "/ephemeral-create2", "/txn-never", "/txn-victim", "/subtree"} {
			if _, ok := tree[p]; ok {
				t.Errorf("%s%s still there", root, p)
			}
		}
		if e := tree["/create2"]; !e.Nil {
			t.Errorf("/create2 was set to None: %+v, want nil data", e)
		}
		if e := tree["/eseq"]; e.NumChildren != 0 || e.Cversion != 4 {
			t.Errorf("/eseq: %+v, want its two ephemeral sequentials created and deleted", e)
		}
	})
}

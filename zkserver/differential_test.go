package zkserver_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// The differential suite (zetcd's xchk idea): each script runs against the
// real ZooKeeper 3.8 ensemble and against the three-node journal in primary,
// and the two transcripts — replies, error codes, stats with zxids renamed
// by order of appearance and session ids by session, watch events in the
// order they arrived — must be equal. What ZooKeeper does that the journal
// deliberately does not is listed in intendedDifferences (differences_test.go)
// with its reason; scripts avoid nothing else.

// side is one server under test: where its clients connect, and the
// transcript a script wrote.
type side struct {
	name  string
	addrs []string
	lines []string
	zxids map[int64]string
	sess  map[int64]string
	s     []*rawSession
	t     *testing.T
	base  string
}

func newSide(t *testing.T, name string, addrs []string, base string) *side {
	return &side{t: t, name: name, addrs: addrs, zxids: map[int64]string{0: "0"}, sess: map[int64]string{0: "0"}, base: base}
}

func (d *side) zx(z int64) string {
	if s, ok := d.zxids[z]; ok {
		return s
	}
	s := fmt.Sprintf("z%d", len(d.zxids))
	d.zxids[z] = s
	return s
}

func (d *side) sid(id int64) string {
	if s, ok := d.sess[id]; ok {
		return s
	}
	s := fmt.Sprintf("s%d", len(d.sess))
	d.sess[id] = s
	return s
}

func (d *side) stat(st znode.WireStat) string {
	return fmt.Sprintf("{c=%s m=%s p=%s v=%d cv=%d av=%d owner=%s len=%d kids=%d}", d.zx(st.Czxid), d.zx(st.Mzxid), d.zx(st.Pzxid),
		st.Version, st.Cversion, st.Aversion, d.sid(st.EphemeralOwner), st.DataLength, st.NumChildren)
}

func (d *side) body(r zkwire.Response) string {
	switch b := r.(type) {
	case nil:
		return ""
	case *zkwire.CreateResponse:
		return "path=" + b.Path
	case *zkwire.Create2Response:
		return "path=" + b.Path + " " + d.stat(b.Stat)
	case *zkwire.ExistsResponse:
		return d.stat(b.Stat)
	case *zkwire.GetDataResponse:
		return fmt.Sprintf("data=%q nil=%t %s", b.Data, b.Data == nil, d.stat(b.Stat))
	case *zkwire.SetDataResponse:
		return d.stat(b.Stat)
	case *zkwire.SetACLResponse:
		return d.stat(b.Stat)
	case *zkwire.GetACLResponse:
		return fmt.Sprintf("acl=%v %s", b.ACL, d.stat(b.Stat))
	case *zkwire.GetChildrenResponse:
		// ZooKeeper lists children in hash-set order, the journal sorted.
		return fmt.Sprintf("children=%v", sorted(b.Children))
	case *zkwire.GetChildren2Response:
		return fmt.Sprintf("children=%v %s", sorted(b.Children), d.stat(b.Stat))
	case *zkwire.SyncResponse:
		return "path=" + b.Path
	case *zkwire.GetEphemeralsResponse:
		return fmt.Sprintf("ephemerals=%v", sorted(b.Ephemerals))
	case *zkwire.GetAllChildrenNumberResponse:
		return fmt.Sprintf("total=%d", b.TotalNumber)
	case *zkwire.ErrorResponse:
		return fmt.Sprintf("err=%d", b.Err)
	case *zkwire.WhoAmIResponse:
		var ids []string
		for _, c := range b.ClientInfo {
			ids = append(ids, c.AuthScheme+":"+c.User)
		}
		return fmt.Sprintf("ids=%v", sorted(ids))
	case *zkwire.SASLResponse:
		return fmt.Sprintf("token=%q", b.Token)
	case *zkwire.MultiResponse:
		var parts []string
		for _, res := range b.Results {
			if res.Op == zkwire.OpError {
				parts = append(parts, fmt.Sprintf("error(%v)", res.Err))
				continue
			}
			parts = append(parts, fmt.Sprintf("%v(%s)", res.Op, d.body(res.Response)))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("%T", r)
}

func sorted(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}

func (d *side) events(evs []zkwire.WatcherEvent) string {
	var parts []string
	for _, e := range evs {
		parts = append(parts, fmt.Sprintf("%v %s", e.Type, e.Path))
	}
	return strings.Join(parts, ", ")
}

// open connects session i (sessions are numbered in the order opened).
func (d *side) open(o connectOpts) int {
	d.t.Helper()
	s := mustDialRaw(d.t, d.addrs[len(d.s)%len(d.addrs)], o)
	d.s = append(d.s, s)
	d.sid(s.id)
	d.log("open s=%s timeout=%d ro=%t", d.sid(s.id), s.timeout, s.readOnly)
	return len(d.s) - 1
}

func (d *side) log(format string, args ...any) {
	d.lines = append(d.lines, fmt.Sprintf(format, args...))
}

// do sends a request on session i and records its reply.
func (d *side) do(i int, op zkwire.OpCode, req zkwire.Request) reply {
	d.t.Helper()
	r := d.s[i].call(op, req)
	line := fmt.Sprintf("#%d %v", i, op)
	if len(r.Events) > 0 {
		line += " events[" + d.events(r.Events) + "]"
	}
	switch {
	case r.Closed:
		line += " -> closed"
	case op.IsWrite() || op == zkwire.OpCheck || op == zkwire.OpCloseSession:
		line += fmt.Sprintf(" -> %v zxid=%s %s", r.Err, d.zx(r.Zxid), d.body(r.Body))
	default:
		line += fmt.Sprintf(" -> %v %s", r.Err, d.body(r.Body))
	}
	d.lines = append(d.lines, line)
	return r
}

// waitUnordered records n events that arrive on session i, sorted by path:
// for events whose order ZooKeeper takes from a hash set (see
// intendedDifferences).
func (d *side) waitUnordered(i, n int) {
	d.t.Helper()
	evs := d.s[i].events(n, 60*time.Second)
	d.log("#%d events{%s}", i, d.events(sortEvents(evs)))
}

// wait records n events that arrive on session i.
func (d *side) wait(i, n int) {
	d.t.Helper()
	evs := d.s[i].events(n, 30*time.Second)
	d.log("#%d events[%s]", i, d.events(evs))
}

func (d *side) p(rel string) string {
	if rel == "" {
		return d.base
	}
	return d.base + "/" + rel
}

// differential runs script on both sides and compares the transcripts.
func differential(t *testing.T, script func(d *side)) {
	t.Helper()
	base := fmt.Sprintf("/diff-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	zk := newSide(t, "zookeeper", ensemble.Hosts(), base)
	jn := newSide(t, "journal", shared.addrs(), base)
	for _, d := range []*side{zk, jn} {
		script(d)
		for _, s := range d.s {
			s.close()
		}
	}
	zl, jl := applyIntended(t, zk.lines, jn.lines)
	if slices.Equal(zl, jl) {
		return
	}
	var b strings.Builder
	for i := range max(len(zl), len(jl)) {
		var a, c string
		if i < len(zl) {
			a = zl[i]
		}
		if i < len(jl) {
			c = jl[i]
		}
		mark := "  "
		if a != c {
			mark = "!="
		}
		fmt.Fprintf(&b, "%s zookeeper: %s\n   journal:   %s\n", mark, a, c)
	}
	t.Fatalf("transcripts differ:\n%s", b.String())
}

func digestOf(userPassword string) string { return znode.DigestID(userPassword) }

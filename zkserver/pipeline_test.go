package zkserver_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/zkwire"
)

// TestPipelinedSession: a client that sends many requests without waiting
// gets its replies in order, its writes are applied in the order it sent
// them (sequential names grow with it; each conditional setData finds the
// version the one before it made), and a read sent behind writes sees all
// of them — on the journal (whose node submits the queued writes together)
// exactly as on ZooKeeper.
func TestPipelinedSession(t *testing.T) {
	base := uniquePath(t)
	run := func(addr string) []string {
		s := mustDialRaw(t, addr, connectOpts{})
		var ops []zkwire.OpCode
		var reqs []zkwire.Request
		add := func(op zkwire.OpCode, r zkwire.Request) { ops, reqs = append(ops, op), append(reqs, r) }
		add(zkwire.OpCreate, create(base, nil, zkwire.ModePersistent))
		for range 30 {
			add(zkwire.OpCreate, create(base+"/s-", nil, zkwire.ModePersistentSequential))
		}
		add(zkwire.OpGetChildren, &zkwire.GetChildrenRequest{Path: base})
		for v := range 10 {
			add(zkwire.OpSetData, &zkwire.SetDataRequest{Path: base + "/s-0000000003", Data: []byte(fmt.Sprint(v)), Version: int32(v)})
		}
		add(zkwire.OpCreate, create(base+"/s-0000000003", nil, zkwire.ModePersistent)) // exists
		add(zkwire.OpSetData, &zkwire.SetDataRequest{Path: base + "/s-0000000003", Data: []byte("x"), Version: 3})
		add(zkwire.OpGetData, &zkwire.GetDataRequest{Path: base + "/s-0000000003"})
		add(zkwire.OpDelete, &zkwire.DeleteRequest{Path: base + "/s-0000000029", Version: -1})
		add(zkwire.OpExists, &zkwire.ExistsRequest{Path: base + "/s-0000000029"})
		var out []string
		var lastZxid int64
		for i, r := range s.pipeline(ops, reqs) {
			if r.Closed {
				t.Fatalf("%s: connection closed at pipelined request %d", addr, i)
			}
			if isWriteOp(ops[i]) && r.Err == zkwire.CodeOK {
				if r.Zxid <= lastZxid {
					t.Errorf("%s: write %d has zxid %#x after %#x", addr, i, r.Zxid, lastZxid)
				}
				lastZxid = r.Zxid
			}
			line := fmt.Sprintf("%d %v -> %v", i, ops[i], r.Err)
			switch b := r.Body.(type) {
			case *zkwire.CreateResponse:
				line += " " + strings.TrimPrefix(b.Path, base)
			case *zkwire.GetChildrenResponse:
				kids := slices.Clone(b.Children)
				slices.Sort(kids)
				line += fmt.Sprintf(" %d children, first %s last %s", len(kids), kids[0], kids[len(kids)-1])
			case *zkwire.SetDataResponse:
				line += fmt.Sprintf(" version %d", b.Stat.Version)
			case *zkwire.GetDataResponse:
				line += fmt.Sprintf(" %q version %d", b.Data, b.Stat.Version)
			}
			out = append(out, line)
		}
		return out
	}
	zk := run(ensemble.Hosts()[1])
	base += "-j"
	jn := run(shared.addrs()[1])
	if !slices.Equal(zk, jn) {
		t.Errorf("pipelined session transcripts differ\n%s", sideBySide(zk, jn))
	}
}

func isWriteOp(op zkwire.OpCode) bool {
	switch op {
	case zkwire.OpCreate, zkwire.OpCreate2, zkwire.OpDelete, zkwire.OpSetData, zkwire.OpSetACL, zkwire.OpMulti:
		return true
	}
	return false
}

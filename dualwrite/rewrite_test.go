package dualwrite

import (
	"testing"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkwire"
)

// TestRewriteZxids: after a rollback the tap rewrites a connect request's
// lastZxidSeen and a setWatches/setWatches2 relativeZxid from a journal zxid
// to ZooKeeper's (rounded down through the map), in place, leaving every
// other byte and every ZooKeeper zxid alone; without a map nothing changes.
func TestRewriteZxids(t *testing.T) {
	const from = 0x500000000
	periods := []raftjournal.ZxidPeriod{{From: from, To: from + 100, Points: []raftjournal.ZxidPoint{
		{Journal: from, ZooKeeper: 0x100000040}, {Journal: from + 50, ZooKeeper: 0x100000080}, {Journal: from + 100, ZooKeeper: 0x1000000c0}}}}
	tap := &Tap{}
	connect := func(z int64) []byte {
		return zkwire.AppendRecord(nil, &zkwire.ConnectRequest{LastZxidSeen: z, TimeOut: 10000, SessionID: 0x1234, Passwd: make([]byte, 16), HasReadOnly: true})
	}
	setWatches := func(op zkwire.OpCode, z int64) []byte {
		var r zkwire.Request = &zkwire.SetWatchesRequest{RelativeZxid: z, DataWatches: []string{"/a"}}
		if op == zkwire.OpSetWatches2 {
			r = &zkwire.SetWatches2Request{RelativeZxid: z, PersistentWatches: []string{"/p"}}
		}
		b, err := zkwire.AppendRequest(zkwire.AppendRecord(nil, &zkwire.RequestHeader{Xid: -8, Op: op}), op, r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		name     string
		z, want  int64
		withMap  bool
		rewrites bool
	}{
		{"journal zxid before the first ack", from + 10, 0x100000040, true, true},
		{"journal zxid at an ack", from + 50, 0x100000080, true, true},
		{"journal zxid at the period's end", from + 100, 0x1000000c0, true, true},
		{"ZooKeeper's own zxid", 0x100000090, 0x100000090, true, false},
		{"beyond the map", from + 101, from + 101, true, false},
		{"no map", from + 10, from + 10, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tap.SetZxidMap(nil)
			if c.withMap {
				tap.SetZxidMap(periods)
			}
			before := tap.sw.rewritten.Load()
			got, want := connect(c.z), connect(c.want)
			tap.rewriteConnect(got)
			if string(got) != string(want) {
				t.Errorf("connect: % x, want % x", got, want)
			}
			for _, op := range []zkwire.OpCode{zkwire.OpSetWatches, zkwire.OpSetWatches2} {
				got, want := setWatches(op, c.z), setWatches(op, c.want)
				tap.rewriteRequest(op, got)
				if string(got) != string(want) {
					t.Errorf("%s: % x, want % x", op, got, want)
				}
			}
			other := setWatches(zkwire.OpSetWatches, c.z)
			other[7] = byte(zkwire.OpGetData) // another op with the same bytes: untouched
			cp := string(other)
			tap.rewriteRequest(zkwire.OpGetData, other)
			if string(other) != cp {
				t.Error("a getData request was rewritten")
			}
			n := tap.sw.rewritten.Load() - before
			if (n > 0) != c.rewrites || (c.rewrites && n != 3) {
				t.Errorf("%d rewrites counted", n)
			}
		})
	}
}

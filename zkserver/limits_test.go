package zkserver_test

import (
	"bytes"
	"testing"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkserver"
	"github.com/zk2raft/zk2raft/zkwire"
)

// TestReplyMaxBuffer: with a reply limit, a reply that reaches it is not
// sent — the connection closes, as for a Java client with that
// jute.maxbuffer — while smaller replies and other connections carry on.
func TestReplyMaxBuffer(t *testing.T) {
	const limit = 4096
	j, err := startJournal(1, raftjournal.PhasePrimary, func(_ int, c *zkserver.Config) { c.MaxReplyBuffer = limit })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.close)
	addr := j.addrs()[0]
	w := mustDialRaw(t, addr, connectOpts{})
	for _, n := range []struct {
		path string
		size int
	}{{"/small", limit / 2}, {"/large", limit}} {
		if r := w.call(zkwire.OpCreate, create(n.path, bytes.Repeat([]byte("x"), n.size), zkwire.ModePersistent)); r.Err != zkwire.CodeOK {
			t.Fatalf("create %s: %v", n.path, r.Err)
		}
	}
	reader := mustDialRaw(t, addr, connectOpts{})
	if r := reader.call(zkwire.OpGetData, &zkwire.GetDataRequest{Path: "/small"}); r.Err != zkwire.CodeOK || r.Closed {
		t.Fatalf("getData of a reply under the limit: %+v", r)
	}
	if r := reader.call(zkwire.OpGetData, &zkwire.GetDataRequest{Path: "/large"}); !r.Closed {
		t.Fatalf("getData of a reply over the limit was answered: %v", r.Err)
	}
	if r := w.call(zkwire.OpExists, &zkwire.ExistsRequest{Path: "/large"}); r.Err != zkwire.CodeOK {
		t.Fatalf("another connection after the close: %v", r.Err)
	}
}

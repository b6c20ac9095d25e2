package dualwrite

import (
	"testing"

	"github.com/zk2raft/zk2raft/raftjournal"
)

func TestEntryZxid(t *testing.T) {
	for _, z := range []int64{1, 0x7f, 0x100000001, 0x7fffffff_ffffffff} {
		e := raftjournal.Encode(&raftjournal.SourceTxn{Zxid: z, Ops: []raftjournal.SourceOp{{Kind: raftjournal.SourceDelete, Path: "/a"}}})
		if got := entryZxid(e); got != z {
			t.Errorf("entryZxid of a txn at %#x = %#x", z, got)
		}
	}
	if got := entryZxid([]byte{2, 1}); got != 0 {
		t.Errorf("entryZxid of a headless entry = %#x", got)
	}
}

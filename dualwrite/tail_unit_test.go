package dualwrite

import (
	"testing"

	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// TestTailSourceTxn checks what the tail mirrors for each kind of txn, from
// the changes a replay reports: nothing for what changed nothing.
func TestTailSourceTxn(t *testing.T) {
	node := &znode.Node{Path: "/a", Data: []byte("x"), ACL: znode.WorldAnyone(), Stat: znode.Stat{Czxid: 5, Mzxid: 5, Pzxid: 5}}
	tests := []struct {
		name  string
		tx    datadir.Txn
		res   datadir.Result
		kinds []raftjournal.SourceOpKind // nil: no mirror
		multi bool
	}{
		{"create", datadir.Txn{Zxid: 5, Record: datadir.Record{Type: datadir.TxnCreate}},
			datadir.Result{Changes: []datadir.Change{{Kind: datadir.ChangeCreate, Path: "/a", Node: node, ParentCversion: 3, ParentPzxid: 5}}},
			[]raftjournal.SourceOpKind{raftjournal.SourceCreate}, false},
		{"multi", datadir.Txn{Zxid: 5, Record: datadir.Record{Type: datadir.TxnMulti, Ops: []datadir.Record{{Type: datadir.TxnCreate}, {Type: datadir.TxnSetData}}}},
			datadir.Result{Changes: []datadir.Change{{Kind: datadir.ChangeCreate, Path: "/a", Node: node}, {Kind: datadir.ChangeSetData, Path: "/a", Node: node}}},
			[]raftjournal.SourceOpKind{raftjournal.SourceCreate, raftjournal.SourceSetData}, true},
		{"failed multi", datadir.Txn{Zxid: 5, Record: datadir.Record{Type: datadir.TxnMulti, Ops: []datadir.Record{{Type: datadir.TxnError}}}},
			datadir.Result{}, nil, false},
		{"error", datadir.Txn{Zxid: 5, Record: datadir.Record{Type: datadir.TxnError, Err: -110}}, datadir.Result{}, nil, false},
		{"createSession", datadir.Txn{Zxid: 5, Record: datadir.Record{Type: datadir.TxnCreateSession}},
			datadir.Result{Changes: []datadir.Change{{Kind: datadir.ChangeCreateSession, Session: 7}}}, nil, false},
		{"closeSession without ephemerals", datadir.Txn{Zxid: 5, Record: datadir.Record{Type: datadir.TxnCloseSession}},
			datadir.Result{Changes: []datadir.Change{{Kind: datadir.ChangeCloseSession, Session: 7}}}, nil, false},
		{"closeSession", datadir.Txn{Zxid: 5, Record: datadir.Record{Type: datadir.TxnCloseSession}},
			datadir.Result{Changes: []datadir.Change{{Kind: datadir.ChangeCloseSession, Session: 7, Deleted: []string{"/e1", "/e2"}}}},
			[]raftjournal.SourceOpKind{raftjournal.SourceCloseSession}, false},
		{"deleteContainer", datadir.Txn{Zxid: 5, Record: datadir.Record{Type: datadir.TxnDeleteContainer}},
			datadir.Result{Changes: []datadir.Change{{Kind: datadir.ChangeDelete, Path: "/c"}}},
			[]raftjournal.SourceOpKind{raftjournal.SourceDelete}, false},
		{"reconfig", datadir.Txn{Zxid: 5, Record: datadir.Record{Type: datadir.TxnReconfig}},
			datadir.Result{Changes: []datadir.Change{{Kind: datadir.ChangeSetData, Path: "/zookeeper/config", Node: node}}}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stx := sourceTxn(&tt.tx, tt.res)
			if tt.kinds == nil {
				if stx != nil {
					t.Fatalf("mirrored %+v, want nothing", stx)
				}
				return
			}
			if stx == nil || stx.Zxid != tt.tx.Zxid || stx.Multi != tt.multi || len(stx.Ops) != len(tt.kinds) {
				t.Fatalf("mirror %+v, want %v ops (multi %v)", stx, tt.kinds, tt.multi)
			}
			for i, k := range tt.kinds {
				if stx.Ops[i].Kind != k {
					t.Errorf("op %d: %v, want %v", i, stx.Ops[i].Kind, k)
				}
			}
			// What the journal would be sent must encode and decode.
			if _, err := raftjournal.Decode(raftjournal.Encode(stx)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

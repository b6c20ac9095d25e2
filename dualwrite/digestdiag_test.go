//go:build linux

package dualwrite

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// zkTxn is one txn of a ZooKeeper transaction log, as far as the digest
// diagnostics need it.
type zkTxn struct {
	Zxid, Session int64
	Type          int32
	Digest        znode.Digest // the TxnDigest the leader computed; valid when HasDigest
	HasDigest     bool
	BodyLen       int
}

// readZKTxnLogs reads every txn of the logs in dataDir/version-2 (the file
// header, then crc, length, txn bytes and 0x42 per txn until a zero length).
func readZKTxnLogs(dataDir string) (map[int64]zkTxn, error) {
	files, err := filepath.Glob(filepath.Join(dataDir, "version-2", "log.*"))
	if err != nil {
		return nil, err
	}
	out := map[int64]zkTxn{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if len(b) < 16 || string(b[:4]) != "ZKLG" {
			continue
		}
		for off := 16; off+12 <= len(b); {
			n := int(int32(binary.BigEndian.Uint32(b[off+8:])))
			if n <= 0 || off+12+n+1 > len(b) {
				break
			}
			txn := b[off+12 : off+12+n]
			off += 12 + n + 1
			if len(txn) < 32 {
				continue
			}
			tx := zkTxn{
				Session: int64(binary.BigEndian.Uint64(txn[0:])),
				Zxid:    int64(binary.BigEndian.Uint64(txn[12:])),
				Type:    int32(binary.BigEndian.Uint32(txn[28:])),
				BodyLen: len(txn) - 32,
			}
			if len(txn) >= 44 && binary.BigEndian.Uint32(txn[len(txn)-12:]) == 2 {
				tx.Digest, tx.HasDigest = znode.Digest(binary.BigEndian.Uint64(txn[len(txn)-8:])), true
			}
			out[tx.Zxid] = tx
		}
	}
	return out, nil
}

// dumpDigestDiagnostics logs what tells why the journal's digest at zxid
// differs from ZooKeeper's: every server's hash entry and txn-log digest at
// zxid, the journal's history around it, and the journal nodes' warnings of
// source input arriving after a later zxid's digest was logged.
func dumpDigestDiagnostics(t *testing.T, ctx context.Context, ens *zktest.Ensemble, jc *journalCluster, zxid int64, jd *raftjournal.AdminDigests) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "digest diagnostics at %#x:\n", zxid)
	for _, s := range ens.Servers() {
		if out, err := zkclient.FourLetterWord(ctx, s.ClientAddr, "hash"); err != nil {
			fmt.Fprintf(&b, "  zk%d hash: %v\n", s.ID, err)
		} else if dl, err := zkclient.ParseDigestLog(out); err != nil {
			fmt.Fprintf(&b, "  zk%d hash: %v\n", s.ID, err)
		} else {
			found := false
			for _, e := range dl {
				if e.Zxid == zxid {
					fmt.Fprintf(&b, "  zk%d hash at %#x: %s\n", s.ID, zxid, e.Digest)
					found = true
				}
			}
			if !found {
				fmt.Fprintf(&b, "  zk%d hash: nothing at %#x (%d entries)\n", s.ID, zxid, len(dl))
			}
		}
		if out, err := zkclient.FourLetterWord(ctx, s.ClientAddr, "mntr"); err == nil {
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "digest_mismatches") || strings.Contains(line, "server_state") || strings.Contains(line, "last_proposal_size") {
					fmt.Fprintf(&b, "  zk%d mntr %s\n", s.ID, strings.TrimSpace(line))
				}
			}
		}
		if src, err := verify.Open(ctx, "zk://"+s.ClientAddr, verify.OpenOptions{}); err != nil {
			fmt.Fprintf(&b, "  zk%d walk: %v\n", s.ID, err)
		} else {
			var d znode.Digest
			nodes := 0
			err := src.Walk(ctx, verify.Scope{Root: "/"}, func(n *znode.Node) error { d.Add(n.Digest()); nodes++; return nil })
			src.Close()
			fmt.Fprintf(&b, "  zk%d tree now (walked, %d nodes): digest %s err %v\n", s.ID, nodes, d, err)
		}
		txns, err := readZKTxnLogs(s.DataDir)
		if err != nil {
			fmt.Fprintf(&b, "  zk%d txn log: %v\n", s.ID, err)
			continue
		}
		if tx, ok := txns[zxid]; ok {
			fmt.Fprintf(&b, "  zk%d txn log at %#x: type %d session %#x digest %s (has %v)\n", s.ID, zxid, tx.Type, tx.Session, tx.Digest, tx.HasDigest)
		} else {
			fmt.Fprintf(&b, "  zk%d txn log: no txn %#x (%d txns)\n", s.ID, zxid, len(txns))
		}
		// The txns just before zxid: session txns and anything not a setData
		// of the aligning loop.
		for z := zxid - 1; z >= zxid-400 && z > 0; z-- {
			tx, ok := txns[z]
			if !ok {
				continue
			}
			if tx.Type != 5 {
				fmt.Fprintf(&b, "    zk%d txn %#x type %d session %#x body %d digest %s\n", s.ID, z, tx.Type, tx.Session, tx.BodyLen, tx.Digest)
			}
		}
	}
	for _, e := range jd.History {
		if e.Zxid >= zxid-3*128 && e.Zxid <= zxid+3*128 {
			fmt.Fprintf(&b, "  journal history %#x: %s\n", e.Zxid, e.Digest)
		}
	}
	fmt.Fprintf(&b, "  journal digest now %s (applied index %d)\n", jd.Digest, jd.AppliedIndex)
	for _, s := range jc.specs {
		raw, _ := os.ReadFile(filepath.Join(jc.base, s.ID, s.ID+".log"))
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.Contains(line, "are dropped from the history") {
				fmt.Fprintf(&b, "  %s: %s\n", s.ID, line)
			}
		}
	}
	t.Log(b.String())
}

// lateWarnings counts the journal nodes' late-source-input warnings, and
// returns the last few of node i.
func lateWarnings(jc *journalCluster, i int) (int, []string) {
	n := 0
	var last []string
	for k, s := range jc.specs {
		raw, _ := os.ReadFile(filepath.Join(jc.base, s.ID, s.ID+".log"))
		n += strings.Count(string(raw), "are dropped from the history")
		if k != i {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.Contains(line, "are dropped from the history") {
				last = append(last, line)
			}
		}
	}
	if len(last) > 5 {
		last = last[len(last)-5:]
	}
	return n, last
}

// zkHashesAt returns every running server's logged digest at zxid (servers
// without one are left out).
func zkHashesAt(ctx context.Context, ens *zktest.Ensemble, zxid int64) map[int]znode.Digest {
	out := map[int]znode.Digest{}
	for _, s := range ens.Servers() {
		raw, err := zkclient.FourLetterWord(ctx, s.ClientAddr, "hash")
		if err != nil {
			continue
		}
		dl, err := zkclient.ParseDigestLog(raw)
		if err != nil {
			continue
		}
		for _, e := range dl {
			if e.Zxid == zxid {
				out[s.ID] = e.Digest
			}
		}
	}
	return out
}

// maxServerZxid is the largest zxid a running server has processed.
func maxServerZxid(ctx context.Context, ens *zktest.Ensemble) int64 {
	var z int64
	for _, s := range ens.Servers() {
		if v, err := zkclient.ServerZxid(ctx, s.ClientAddr); err == nil {
			z = max(z, v)
		}
	}
	return z
}

// sessionClosesBetween lists the closeSession txns (type -11) in the servers'
// txn logs with from < zxid < to: a client's close that committed after its
// connection's earlier writes were all delivered (sent late by the client).
func sessionClosesBetween(ens *zktest.Ensemble, from, to int64) []string {
	seen := map[int64]bool{}
	var out []string
	for _, s := range ens.Servers() {
		txns, err := readZKTxnLogs(s.DataDir)
		if err != nil {
			continue
		}
		for z, tx := range txns {
			if tx.Type == -11 && z > from && z < to && !seen[z] {
				seen[z] = true
				out = append(out, fmt.Sprintf("%#x (session %#x, body %d bytes)", z, tx.Session, tx.BodyLen))
			}
		}
	}
	return out
}

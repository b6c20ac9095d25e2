package dualwrite

import (
	"encoding/binary"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkwire"
)

// The zxid rewrite of a rollback. While the journal was primary its clients
// saw journal zxids, minted in an epoch above ZooKeeper's; ZooKeeper refuses
// (closes without a reply) a connect whose lastZxidSeen is ahead of it, and
// the client then retries for ever. Relaying to ZooKeeper again, the tap
// rewrites, in place and without re-encoding, the two fields that carry a
// client's last zxid to the server:
//
//   - ConnectRequest.lastZxidSeen (bytes 4–11 of the connect frame);
//   - the relativeZxid of setWatches and setWatches2 (the first 8 bytes of
//     the body), with which the server decides which re-registered watches
//     fire at once.
//
// A journal zxid becomes the ZooKeeper zxid at which ZooKeeper held the
// state the journal held at it (raftjournal.TranslateZxid over the map the
// reverse mirror's acks built), rounded down: never ahead of ZooKeeper, and a
// watch fires for every change the client missed (perhaps also for one it
// had seen). A zxid no primary period minted — ZooKeeper's own — passes
// unchanged. The map comes from the journal (SetZxidMap, SwitchToZooKeeper);
// without one nothing is rewritten.

// SetZxidMap installs the journal → ZooKeeper zxid map the rewrite uses.
func (t *Tap) SetZxidMap(periods []raftjournal.ZxidPeriod) {
	if len(periods) == 0 {
		t.sw.zmap.Store(nil)
		return
	}
	p := append([]raftjournal.ZxidPeriod(nil), periods...)
	t.sw.zmap.Store(&p)
}

// rewriteZxid translates z if a primary period minted it.
func (t *Tap) rewriteZxid(z int64) (int64, bool) {
	m := t.sw.zmap.Load()
	if m == nil || z <= 0 {
		return z, false
	}
	to, ok := raftjournal.TranslateZxid(*m, z)
	if ok && to != z {
		t.sw.rewritten.Add(1)
		return to, true
	}
	return z, false
}

// rewriteConnect rewrites a connect frame's lastZxidSeen in place.
func (t *Tap) rewriteConnect(connect []byte) {
	if len(connect) < 12 {
		return
	}
	if z, ok := t.rewriteZxid(int64(binary.BigEndian.Uint64(connect[4:12]))); ok {
		binary.BigEndian.PutUint64(connect[4:12], uint64(z))
	}
}

// rewriteRequest rewrites a setWatches or setWatches2 request's
// relativeZxid in place (payload: header and body).
func (t *Tap) rewriteRequest(op zkwire.OpCode, payload []byte) {
	if (op != zkwire.OpSetWatches && op != zkwire.OpSetWatches2) || len(payload) < 16 {
		return
	}
	if z, ok := t.rewriteZxid(int64(binary.BigEndian.Uint64(payload[8:16]))); ok {
		binary.BigEndian.PutUint64(payload[8:16], uint64(z))
	}
}

package exporter

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

// replyStream builds what a server sends: a connect response, then replies with
// the given xids and zxids, each with a body of bodyLen bytes.
func replyStream(connectLen int, xids []int32, zxids []int64, bodyLen []int) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(connectLen))
	b = append(b, make([]byte, connectLen)...)
	for i := range xids {
		b = binary.BigEndian.AppendUint32(b, uint32(16+bodyLen[i]))
		b = binary.BigEndian.AppendUint32(b, uint32(xids[i]))
		b = binary.BigEndian.AppendUint64(b, uint64(zxids[i]))
		b = binary.BigEndian.AppendUint32(b, 0)
		b = append(b, bytes.Repeat([]byte{0xAB}, bodyLen[i])...)
	}
	return b
}

// scanChunks feeds stream to a tracked connection's parser in random pieces.
func scanChunks(stream []byte, rng *rand.Rand) *replyTracker {
	tr := &replyTracker{max: &atomicMax{}}
	c := &trackedConn{tr: tr, want: 4}
	for len(stream) > 0 {
		n := min(len(stream), 1+rng.IntN(40))
		c.scan(stream[:n])
		stream = stream[n:]
	}
	return tr
}

func TestTrackedConnFindsReplyZxids(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := rng.IntN(30)
		xids := make([]int32, n)
		zxids := make([]int64, n)
		bodies := make([]int, n)
		var wantLast, wantMax int64
		for i := range n {
			switch rng.IntN(5) {
			case 0:
				xids[i] = -2 // ping
			case 1:
				xids[i] = -1 // watch event
			default:
				xids[i] = int32(rng.IntN(1000))
			}
			zxids[i] = rng.Int64N(1 << 40)
			bodies[i] = rng.IntN(100)
			if xids[i] >= 0 && zxids[i] > 0 {
				wantLast = zxids[i]
				wantMax = max(wantMax, zxids[i])
			}
		}
		tr := scanChunks(replyStream(36, xids, zxids, bodies), rng)
		if got := tr.last.Load(); got != wantLast {
			t.Fatalf("round %d: last zxid %#x, want %#x", round, got, wantLast)
		}
		if got := tr.max.load(); got != wantMax {
			t.Fatalf("round %d: max zxid %#x, want %#x", round, got, wantMax)
		}
	}
}

func FuzzTrackedConnScan(f *testing.F) {
	f.Add(replyStream(36, []int32{1, -2, 3}, []int64{5, 6, 7}, []int{0, 3, 10}), uint64(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 3, 1, 2, 3}, uint64(2))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0}, uint64(3))
	f.Fuzz(func(t *testing.T, stream []byte, seed uint64) {
		a := scanChunks(stream, rand.New(rand.NewPCG(seed, 1)))
		b := scanChunks(slices.Clone(stream), rand.New(rand.NewPCG(seed+1, 1)))
		// However the stream is cut, the parser sees the same frames.
		if a.last.Load() != b.last.Load() || a.max.load() != b.max.load() {
			t.Fatalf("chunking changed the result: %d/%d vs %d/%d", a.last.Load(), a.max.load(), b.last.Load(), b.max.load())
		}
	})
}

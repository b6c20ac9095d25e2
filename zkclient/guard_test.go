package zkclient

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
)

// replyStream builds what a server sends: a connect response, then replies
// with the given xids and zxids, each with a body of bodyLen bytes.
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

type seenReply struct {
	xid  int32
	zxid int64
}

// scanChunks feeds stream to a guard's parser in random pieces and returns
// the reply headers it reported and the error it stopped at.
func scanChunks(stream []byte, max int, rng *rand.Rand) ([]seenReply, error) {
	var seen []seenReply
	c := &guardedConn{opts: GuardOptions{MaxFrame: max, OnReply: func(xid int32, zxid int64) {
		seen = append(seen, seenReply{xid, zxid})
	}}, want: 4}
	for len(stream) > 0 {
		n := min(len(stream), 1+rng.IntN(40))
		if err := c.scan(stream[:n]); err != nil {
			return seen, err
		}
		stream = stream[n:]
	}
	return seen, nil
}

func TestGuardFindsReplyHeaders(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := rng.IntN(30)
		xids := make([]int32, n)
		zxids := make([]int64, n)
		bodies := make([]int, n)
		var want []seenReply
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
			want = append(want, seenReply{xids[i], zxids[i]})
		}
		got, err := scanChunks(replyStream(36, xids, zxids, bodies), DefaultMaxReplyFrame, rng)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("round %d: %v %v, want %v", round, got, err, want)
		}
	}
}

func TestGuardBoundsFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name   string
		stream []byte
		max    int
		bad    bool
	}{
		{"http as the connect response", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), DefaultMaxReplyFrame, true},
		{"tls alert", []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46}, DefaultMaxReplyFrame, true},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xfe}, DefaultMaxReplyFrame, true},
		{"reply over the limit", replyStream(36, []int32{1}, []int64{5}, []int{100}), 64, true},
		{"reply at the limit", replyStream(36, []int32{1}, []int64{5}, []int{48}), 64, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scanChunks(tc.stream, tc.max, rng)
			if (err != nil) != tc.bad {
				t.Errorf("err = %v, want an error: %v", err, tc.bad)
			}
		})
	}
}

// TestGuardConn reads through a guarded pipe: the bytes before a bad length
// come through, the read that would hand it over fails with
// ErrNotZooKeeper, quoting what came, and so does every later read.
func TestGuardConn(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	var violation error
	g := Guard(client, GuardOptions{OnViolation: func(err error) { violation = err }})
	go func() {
		server.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		server.Close()
	}()
	buf := make([]byte, 4)
	_, err := g.Read(buf)
	if !errors.Is(err, ErrNotZooKeeper) || !strings.Contains(err.Error(), `"HTTP/1.1`) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("read: %v, want one line matching ErrNotZooKeeper quoting the answer", err)
	}
	if _, err2 := g.Read(buf); err2 != err || violation != err {
		t.Errorf("later read %v, violation %v", err2, violation)
	}
}

func FuzzGuardScan(f *testing.F) {
	f.Add(replyStream(36, []int32{1, -2, 3}, []int64{5, 6, 7}, []int{0, 3, 10}), uint64(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 3, 1, 2, 3}, uint64(2))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0}, uint64(3))
	f.Add([]byte("HTTP/1.1 200 OK\r\n"), uint64(4))
	f.Fuzz(func(t *testing.T, stream []byte, seed uint64) {
		a, aerr := scanChunks(stream, 1<<16, rand.New(rand.NewPCG(seed, 1)))
		b, berr := scanChunks(slices.Clone(stream), 1<<16, rand.New(rand.NewPCG(seed+1, 1)))
		// However the stream is cut, the parser sees the same frames and
		// stops at the same one.
		if !slices.Equal(a, b) || (aerr == nil) != (berr == nil) {
			t.Fatalf("chunking changed the result: %v %v vs %v %v", a, aerr, b, berr)
		}
	})
}

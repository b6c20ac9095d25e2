package zkserver_test

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
)

// Bad input closes only the connection that sent it; the server and its
// other clients go on.
func TestBadInput(t *testing.T) {
	addr := shared.addrs()[0]
	connect := zkwire.AppendRecordFrame(nil, &zkwire.ConnectRequest{TimeOut: 10000, Passwd: make([]byte, 16)})
	frame := func(payload []byte) []byte { return zkwire.AppendFrame(nil, payload) }
	huge := make([]byte, 4)
	binary.BigEndian.PutUint32(huge, 64<<20)
	tests := []struct {
		name string
		send [][]byte
	}{
		{"garbage", [][]byte{[]byte("\x00\x00\x00\x05hello world, not zookeeper")}},
		{"negative length", [][]byte{{0x80, 0, 0, 0}}},
		{"oversize connect frame", [][]byte{huge}},
		{"truncated connect", [][]byte{connect[:20]}},
		{"huge password length", [][]byte{frame(append(zkwire.AppendRecord(nil, &zkwire.ConnectRequest{TimeOut: 10000}), 0x7f, 0xff, 0xff, 0xff))}},
		{"oversize request", [][]byte{connect, huge}},
		{"malformed request body", [][]byte{connect, frame([]byte{0, 0, 0, 1, 0, 0, 0, 4, 0xff, 0xff})}},
		{"truncated request header", [][]byte{connect, frame([]byte{0, 0, 1})}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, b := range tc.send {
				if _, err := c.Write(b); err != nil {
					break
				}
			}
			if tc.name == "truncated connect" || tc.name == "truncated request header" {
				_ = c.(*net.TCPConn).CloseWrite()
			}
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			// The server closes: whatever it answered first, the read ends in EOF.
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatalf("the server did not close the connection: %v", err)
			}
		})
	}
	// A connect asking a huge timeout gets the maximum.
	s, resp, err := dialRaw(t, addr, connectOpts{timeout: 1 << 30})
	if err != nil || resp.TimeOut != 60000 {
		t.Fatalf("huge timeout: %v, negotiated %d", err, resp.TimeOut)
	}
	if r := s.call(zkwire.OpExists, &zkwire.ExistsRequest{Path: "/"}); r.Err != zkwire.CodeOK {
		t.Fatalf("a good client after the bad ones: %v", r.Err)
	}
}

// TestIdleConnectionsAndSlowReader: 2,000 idle connections and a client that
// sends and never reads do not stop others being served; the slow reader's
// requests stay bounded by the outstanding cap.
func TestIdleConnectionsAndSlowReader(t *testing.T) {
	addr := shared.addrs()[1]
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range 2000 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("after %d idle connections: %v", len(idle), err)
		}
		idle = append(idle, c)
	}
	// The slow reader: a session that pipelines getData of a 100 KB node and
	// reads nothing.
	w := mustDialRaw(t, addr, connectOpts{})
	p := testPath(t)
	if r := w.call(zkwire.OpCreate, create(p, make([]byte, 100<<10), zkwire.ModePersistent)); r.Err != zkwire.CodeOK {
		t.Fatal(r.Err)
	}
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_ = slow.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := slow.Write(zkwire.AppendRecordFrame(nil, &zkwire.ConnectRequest{TimeOut: 30000, Passwd: make([]byte, 16)})); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int32(1); i <= 20000; i++ {
			f, _ := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: i, Op: zkwire.OpGetData}, &zkwire.GetDataRequest{Path: p})
			_ = slow.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := slow.Write(f); err != nil {
				return // back-pressure: the server stopped reading
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the slow reader's writes neither finished nor blocked")
	}
	// Others are still served, through the same node.
	c, _ := connect(t, []string{addr})
	if _, _, err := c.Get(p); err != nil {
		t.Fatal(err)
	}
}

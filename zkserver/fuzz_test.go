package zkserver_test

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
)

// FuzzServerInput feeds arbitrary bytes after a valid connect to a journal
// node's client port: whatever arrives, the server answers or closes the
// connection, never hangs or crashes, and serves the next client. Seeds are
// under testdata/fuzz/FuzzServerInput.
func FuzzServerInput(f *testing.F) {
	get, _ := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: 1, Op: zkwire.OpGetData}, &zkwire.GetDataRequest{Path: "/"})
	multi, _ := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: 2, Op: zkwire.OpMulti}, &zkwire.MultiRequest{Ops: []zkwire.MultiOp{
		{Op: zkwire.OpCheck, Request: &zkwire.CheckVersionRequest{Path: "/", Version: -1}}}})
	f.Add(get)
	f.Add(multi)
	f.Add([]byte{0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 99})
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3})
	addr := shared.addrs()[2]
	connect := zkwire.AppendRecordFrame(nil, &zkwire.ConnectRequest{TimeOut: 4000, Passwd: make([]byte, 16)})
	f.Fuzz(func(t *testing.T, input []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(connect); err != nil {
			t.Fatal(err)
		}
		fr := zkwire.NewFrameReader(bufio.NewReader(c), zkwire.DefaultMaxReplyFrame)
		if _, err := fr.Next(); err != nil {
			t.Fatalf("no connect response: %v", err)
		}
		_, _ = c.Write(input)
		_ = c.(*net.TCPConn).CloseWrite()
		// Replies, then the close (the server sees EOF or bad input).
		for {
			if _, err := fr.Next(); err != nil {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					break
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("the server neither answered nor closed")
				}
				break
			}
		}
		// The server still serves.
		s := mustDialRaw(t, addr, connectOpts{})
		if r := s.call(zkwire.OpPing, nil); r.Err != zkwire.CodeOK {
			t.Fatalf("ping after fuzz input: %v", r.Err)
		}
		s.close()
	})
}

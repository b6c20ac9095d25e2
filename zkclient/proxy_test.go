package zkclient

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/zk2raft/zk2raft/zkwire"
)

// faultProxy relays TCP connections to one server and injects faults: it can
// be taken down (every connection closed, new ones refused) and brought
// back, and it can cut a connection at the next reply to a request (xid > 0)
// instead of passing it on, so that the request was executed and its client
// never hears of it.
type faultProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu       sync.Mutex
	down     bool
	cutReply bool
	cuts     int
	conns    []net.Conn
}

func newFaultProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) accept() {
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			cc.Close()
			continue
		}
		sc, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			cc.Close()
			continue
		}
		p.conns = append(p.conns, cc, sc)
		p.mu.Unlock()
		p.wg.Go(func() {
			_, _ = io.Copy(sc, cc)
			sc.Close()
			cc.Close()
		})
		p.wg.Go(func() {
			p.relayReplies(cc, sc)
			sc.Close()
			cc.Close()
		})
	}
}

// relayReplies copies server frames to the client, frame by frame, cutting
// both connections at the first reply to a request while cutReply is set.
func (p *faultProxy) relayReplies(cc, sc net.Conn) {
	fr := zkwire.NewFrameReader(bufio.NewReader(sc), zkwire.MaxFrame)
	first := true
	for {
		payload, err := fr.Next()
		if err != nil {
			return
		}
		if !first && len(payload) >= 4 {
			xid := int32(binary.BigEndian.Uint32(payload))
			p.mu.Lock()
			cut := p.cutReply && xid > 0
			if cut {
				p.cutReply = false
				p.cuts++
			}
			p.mu.Unlock()
			if cut {
				return
			}
		}
		first = false
		if err := zkwire.WriteFrame(cc, payload); err != nil {
			return
		}
	}
}

func (p *faultProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// cutNextReply makes the proxy drop the next reply to a request and close
// that connection.
func (p *faultProxy) cutNextReply() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutReply = true
}

func (p *faultProxy) cutCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func newListener() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// deadAddr is a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := newListener()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

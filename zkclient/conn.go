package zkclient

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
)

// conn is one TCP connection of the session.
type conn struct {
	nc      net.Conn
	fr      *zkwire.FrameReader // readLoop's
	addr    string
	timeout time.Duration // negotiated session timeout

	wmu sync.Mutex // one batch of frames at a time

	mu     sync.Mutex
	calls  map[int32]*Call
	err    error
	dead   chan struct{}
	onDead func() // called once as the connection fails, before its calls are
}

// errNotSent fails a call that was never written on a connection (one
// written is failed with a *deadConnError).
var (
	errNotSent = errors.New("zkclient: not connected")
)

// send registers the calls and writes their frames in one write. A dead
// connection fails them with errNotSent.
func (cn *conn) send(calls []*Call, frame []byte) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		for _, cl := range calls {
			cl.finish(0, 0, nil, errNotSent)
		}
		return
	}
	for _, cl := range calls {
		cl.cn = cn
		cn.calls[cl.xid] = cl
	}
	cn.mu.Unlock()
	if err := cn.write(frame); err != nil {
		cn.fail(fmt.Errorf("%s: %w", cn.addr, err))
	}
}

func (cn *conn) write(frame []byte) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	_ = cn.nc.SetWriteDeadline(time.Now().Add(cn.timeout))
	_, err := cn.nc.Write(frame)
	return err
}

func (cn *conn) take(xid int32) *Call {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cl := cn.calls[xid]
	delete(cn.calls, xid)
	return cl
}

// fail closes the connection once and fails its pending calls.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err = err
	calls := cn.calls
	cn.calls = nil
	cn.mu.Unlock()
	_ = cn.nc.Close()
	close(cn.dead)
	if cn.onDead != nil {
		cn.onDead()
	}
	for _, cl := range calls {
		cl.finish(0, 0, nil, &deadConnError{err})
	}
}

func (cn *conn) cause() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// pingLoop pings every third of the session timeout, which keeps the session
// alive and the read deadline (two thirds) from passing on an idle
// connection.
func (cn *conn) pingLoop() {
	ping, _ := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: zkwire.XidPing, Op: zkwire.OpPing}, nil)
	t := time.NewTicker(cn.timeout / 3)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := cn.write(ping); err != nil {
				cn.fail(fmt.Errorf("%s: ping: %w", cn.addr, err))
				return
			}
		case <-cn.dead:
			return
		}
	}
}

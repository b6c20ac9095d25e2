package zkclient

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// ErrNotZooKeeper is matched by the error for a server whose bytes are not
// ZooKeeper's protocol: a frame length out of range (an HTTP or TLS port
// answers "HTTP/1.1 …" or an alert, which read as lengths of hundreds of
// megabytes), or a connect response that does not decode.
var ErrNotZooKeeper = errors.New("zkclient: not a ZooKeeper server")

// notZooKeeper says what addr answered, quoting its first bytes.
func notZooKeeper(addr string, head []byte, err error) error {
	return fmt.Errorf("%w: %s answered %s: %w", ErrNotZooKeeper, addr, quoteHead(head), err)
}

func quoteHead(b []byte) string {
	const max = 24
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}

// headKeeper records the first bytes read from a connection, for errors.
type headKeeper struct {
	head []byte
}

const headLen = 32

func (h *headKeeper) keep(p []byte) {
	if n := headLen - len(h.head); n > 0 {
		h.head = append(h.head, p[:min(n, len(p))]...)
	}
}

// GuardOptions configure Guard.
type GuardOptions struct {
	// MaxFrame bounds a server frame's length, in bytes; 0 means
	// DefaultMaxReplyFrame.
	MaxFrame int
	// OnReply, if set, is called with the xid and zxid of every reply header
	// as it passes (pings, notifications and auth replies included), before
	// the client reading the connection sees it.
	OnReply func(xid int32, zxid int64)
	// OnViolation, if set, is called once with the error when the server's
	// stream is found not to be ZooKeeper's (it matches ErrNotZooKeeper).
	OnViolation func(error)
}

// Guard wraps the connection of a ZooKeeper client this package did not
// write (go-zookeeper) to one server. It buffers reads and follows the
// server's frames as they pass:
//
//	first frame:  int32 length | ConnectResponse (no reply header)
//	every other:  int32 length | int32 xid | int64 zxid | int32 err | body
//
// A length outside [0, MaxFrame] fails the read that would hand it over
// (and every later one) with an error matching ErrNotZooKeeper: go-zookeeper
// allocates a buffer of whatever length a server's connect response
// declares, its max buffer size notwithstanding, so an HTTP port answering
// "HTTP/1.1" would cost it 1.2 GB.
func Guard(nc net.Conn, opts GuardOptions) net.Conn {
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = DefaultMaxReplyFrame
	}
	g := &guardedConn{Conn: nc, rec: &recordingReader{r: nc}, opts: opts, want: 4}
	g.r = bufio.NewReaderSize(g.rec, readBuffer)
	return g
}

// GuardDialer wraps every connection d opens with Guard; a nil d dials plain
// TCP.
func GuardDialer(d Dialer, opts GuardOptions) Dialer {
	if d == nil {
		d = net.DialTimeout
	}
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		nc, err := d(network, addr, timeout)
		if err != nil {
			return nil, err
		}
		return Guard(nc, opts), nil
	}
}

// readBuffer is the read buffer of a connection (go-zookeeper reads each
// reply with two unbuffered reads, the length and then the body).
const readBuffer = 64 << 10

type guardedConn struct {
	net.Conn
	r    *bufio.Reader
	rec  *recordingReader // the first bytes, for errors
	opts GuardOptions

	connected bool     // the connect response has gone by
	hdr       [20]byte // length and reply header of the current frame
	have      int      // bytes of hdr collected
	want      int      // bytes of hdr to collect for the current frame
	skip      int      // bytes of the current frame left to pass by
	err       error    // the stream is not ZooKeeper's
}

func (c *guardedConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	if serr := c.scan(p[:n]); serr != nil {
		c.err = notZooKeeper(c.RemoteAddr().String(), c.rec.head, serr)
		if c.opts.OnViolation != nil {
			c.opts.OnViolation(c.err)
		}
		return 0, c.err
	}
	return n, err
}

func (c *guardedConn) scan(b []byte) error {
	for len(b) > 0 {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		k := copy(c.hdr[c.have:c.want], b)
		c.have += k
		b = b[k:]
		if c.have < c.want {
			return nil
		}
		length := int64(int32(binary.BigEndian.Uint32(c.hdr[:4])))
		switch {
		case c.want == 4 && (length < 0 || length > int64(c.opts.MaxFrame)):
			return fmt.Errorf("a frame of %d bytes (limit %d)", length, c.opts.MaxFrame)
		case c.want == 4 && (!c.connected || length < 16):
			// The connect response, or a frame too short to hold a reply header.
			c.connected = true
			c.skip = int(length)
		case c.want == 4:
			c.want = 20
			continue
		default:
			if c.opts.OnReply != nil {
				c.opts.OnReply(int32(binary.BigEndian.Uint32(c.hdr[4:])), int64(binary.BigEndian.Uint64(c.hdr[8:])))
			}
			c.skip = int(length) - 16
		}
		c.have, c.want = 0, 4
	}
	return nil
}

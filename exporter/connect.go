package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/zkclient"
)

// ErrUnreachable is returned when no server of the ensemble gave a session
// in time (it is zkclient's, so either walk's error matches it).
var ErrUnreachable = zkclient.ErrUnreachable

// ConnectOptions tune [Connect].
type ConnectOptions struct {
	SessionTimeout time.Duration   // default 10s
	Auth           []zkclient.Auth // credentials added right after the session is made
	Logger         *slog.Logger    // go-zookeeper's own log lines, at debug level; nil discards
	// MaxBufferSize bounds a reply, in bytes, the connect response included;
	// 0 means zkclient.DefaultMaxReplyFrame.
	MaxBufferSize int
	// Dialer opens the connection to one server (TLS, for instance; see
	// zkclient.TLSOptions.Dialer); nil means plain TCP.
	Dialer zkclient.Dialer
	// FirstHost, when positive, makes the session try the servers in sorted order
	// starting at index FirstHost mod len(hosts), instead of go-zookeeper's random
	// order, and leaves host names unresolved so a TLS dialer can verify them. The
	// walker spreads its sessions over the ensemble this way.
	FirstHost int
	// OnReply, if set, sees the xid and zxid of every reply header as it
	// passes (zkclient.GuardOptions.OnReply): go-zookeeper does not expose them.
	OnReply func(xid int32, zxid int64)
}

// Connect opens a go-zookeeper session with the ensemble and waits until it is
// established or ctx ends. The returned connection reconnects by itself; the
// caller closes it. Its connections pass through zkclient.Guard, so a server
// answering with something that is not ZooKeeper's protocol (an HTTP port)
// fails Connect at once instead of making go-zookeeper allocate the length
// its first bytes declare.
func Connect(ctx context.Context, hosts []string, opts ConnectOptions) (*zk.Conn, error) {
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	if opts.MaxBufferSize <= 0 {
		opts.MaxBufferSize = zkclient.DefaultMaxReplyFrame
	}
	connected := make(chan struct{})
	authFailed := make(chan struct{})
	notZK := make(chan error, 1)
	var once, authOnce sync.Once
	guarded := zkclient.GuardDialer(opts.Dialer, zkclient.GuardOptions{
		MaxFrame: opts.MaxBufferSize,
		OnReply:  opts.OnReply,
		OnViolation: func(err error) {
			select {
			case notZK <- err:
			default:
			}
		},
	})
	zopts := []func(*zk.Conn){
		zk.WithLogger(zkLogger{opts.Logger}),
		zk.WithEventCallback(func(ev zk.Event) {
			switch ev.State {
			case zk.StateHasSession:
				once.Do(func() { close(connected) })
			case zk.StateAuthFailed:
				authOnce.Do(func() { close(authFailed) })
			}
		}),
		zk.WithMaxBufferSize(opts.MaxBufferSize),
		zk.WithDialer(zk.Dialer(guarded)),
	}
	if opts.FirstHost > 0 || opts.Dialer != nil {
		zopts = append(zopts, zk.WithHostProvider(&spreadHosts{first: opts.FirstHost}))
	}
	// go-zookeeper's option type is unexported; one combined option carries them all.
	conn, _, err := zk.Connect(hosts, opts.SessionTimeout, func(c *zk.Conn) {
		for _, o := range zopts {
			o(c)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, strings.Join(hosts, ","), err)
	}
	select {
	case <-connected:
	case <-authFailed:
		conn.Close()
		return nil, fmt.Errorf("%w: %s", zkclient.ErrAuthFailed, strings.Join(hosts, ","))
	case err := <-notZK:
		conn.Close()
		return nil, err
	case <-ctx.Done():
		conn.Close()
		return nil, fmt.Errorf("%w: %s: no session within the deadline (%v)", ErrUnreachable, strings.Join(hosts, ","), ctx.Err())
	}
	for _, a := range opts.Auth {
		if err := conn.AddAuth(a.Scheme, a.Cred); err != nil {
			conn.Close()
			return nil, fmt.Errorf("exporter: %s: add %s credentials: %w", strings.Join(hosts, ","), a.Scheme, err)
		}
	}
	return conn, nil
}

// zkLogger sends go-zookeeper's printf-style lines to slog at debug level.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	if z.l != nil {
		z.l.Debug("zookeeper client", "msg", fmt.Sprintf(format, args...))
	}
}

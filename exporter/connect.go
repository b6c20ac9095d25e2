package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// ErrUnreachable is returned when no server of the ensemble gave a session in time.
var ErrUnreachable = errors.New("exporter: ensemble unreachable")

// ConnectOptions tune [Connect].
type ConnectOptions struct {
	SessionTimeout time.Duration // default 10s
	Auth           []Auth        // credentials added right after the session is made
	Logger         *slog.Logger  // go-zookeeper's own log lines, at debug level; nil discards
	MaxBufferSize  int           // largest reply accepted, bytes; 0 = go-zookeeper's default (unbounded)
	// Dialer opens the connection to one server (TLS, for instance; see
	// TLSOptions.Dialer); nil means plain TCP.
	Dialer zk.Dialer
	// FirstHost, when positive, makes the session try the servers in sorted order
	// starting at index FirstHost mod len(hosts), instead of go-zookeeper's random
	// order, and leaves host names unresolved so a TLS dialer can verify them. The
	// walker spreads its sessions over the ensemble this way.
	FirstHost int
}

// Auth is one scheme:credential pair, as given to --auth.
type Auth struct {
	Scheme string
	Cred   []byte
}

// ParseAuth parses "scheme:credential", e.g. "digest:user:password".
func ParseAuth(s string) (Auth, error) {
	scheme, cred, ok := strings.Cut(s, ":")
	if !ok || scheme == "" {
		return Auth{}, fmt.Errorf("exporter: auth %q: want SCHEME:CREDENTIAL", s)
	}
	return Auth{Scheme: scheme, Cred: []byte(cred)}, nil
}

// ParseHosts splits "host:port,host:port" into a server list.
func ParseHosts(s string) ([]string, error) {
	var hosts []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("exporter: no ZooKeeper hosts in %q", s)
	}
	return hosts, nil
}

// Connect opens a session with the ensemble and waits until it is established or ctx
// ends. The returned connection reconnects by itself (go-zookeeper); the caller
// closes it.
func Connect(ctx context.Context, hosts []string, opts ConnectOptions) (*zk.Conn, error) {
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	connected := make(chan struct{})
	authFailed := make(chan struct{})
	var once, authOnce sync.Once
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
	}
	if opts.MaxBufferSize > 0 {
		zopts = append(zopts, zk.WithMaxBufferSize(opts.MaxBufferSize))
	}
	if opts.Dialer != nil {
		zopts = append(zopts, zk.WithDialer(opts.Dialer))
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
		return nil, fmt.Errorf("exporter: %s: authentication failed", strings.Join(hosts, ","))
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

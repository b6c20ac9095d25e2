package zkclient

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
)

// Errors of a Client. ZooKeeper's own answers are *zkwire.Error values; the
// Err… variables after these match them by code with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Client.
	ErrClosed = errors.New("zkclient: client closed")
	// ErrConnectionLoss is matched by the error of a call whose connection
	// died before its reply, or that was made while the client had no
	// connection under the FailPending policy. For a write its message says
	// that the outcome is unknown: ZooKeeper may have applied it.
	ErrConnectionLoss = errors.New("zkclient: connection lost")
	// ErrAuthFailed is returned when ZooKeeper refuses a credential
	// (AuthFailed). A client whose configured credentials are refused on a
	// reconnect gives up with it.
	ErrAuthFailed = errors.New("zkclient: authentication failed")
	// ErrUnreachable is matched by Dial's error when no server gave a
	// session before its context ended.
	ErrUnreachable = errors.New("zkclient: ensemble unreachable")
	// ErrInvalidConfig is matched by Config.Validate's errors.
	ErrInvalidConfig = errors.New("zkclient: invalid config")
)

// ZooKeeper's error replies, for errors.Is (zkwire.Error matches by code
// whatever operation and path it names).
var (
	ErrNoNode                  = zkwire.CodeNoNode.Err()
	ErrNodeExists              = zkwire.CodeNodeExists.Err()
	ErrNoAuth                  = zkwire.CodeNoAuth.Err()
	ErrBadVersion              = zkwire.CodeBadVersion.Err()
	ErrNotEmpty                = zkwire.CodeNotEmpty.Err()
	ErrNoChildrenForEphemerals = zkwire.CodeNoChildrenForEphemerals.Err()
	ErrInvalidACL              = zkwire.CodeInvalidACL.Err()
	ErrBadArguments            = zkwire.CodeBadArguments.Err()
	ErrUnimplemented           = zkwire.CodeUnimplemented.Err()
	ErrNoWatcher               = zkwire.CodeNoWatcher.Err()
	ErrSessionMoved            = zkwire.CodeSessionMoved.Err()
	ErrSessionExpired          = zkwire.CodeSessionExpired.Err()
)

// RetryPolicy says what becomes of calls when the connection is lost.
type RetryPolicy uint8

const (
	// FailPending fails a call whose connection dies before its reply, and a
	// call made while the client is reconnecting, with ErrConnectionLoss at
	// once: the caller retries as it sees fit (the export walk does, with
	// backoff and a bound, and notices a renewed session).
	FailPending RetryPolicy = iota
	// Resend makes calls wait for a connection, and sends a read or an
	// idempotent call (auth, addWatch, setWatches, sync, checkWatches) whose
	// connection died again on the next one, so that it returns only with a
	// reply, a ZooKeeper error, ctx's error or the client's end. A write
	// (create, delete, setData, setACL, multi, reconfig) or a removeWatches
	// whose connection died after it was sent is never sent again: it fails
	// with ErrConnectionLoss, its outcome unknown. The reconciler and the
	// reverse mirror use this policy.
	Resend
)

func (p RetryPolicy) String() string {
	switch p {
	case FailPending:
		return "fail-pending"
	case Resend:
		return "resend"
	}
	return fmt.Sprintf("RetryPolicy(%d)", uint8(p))
}

// Dialer opens a connection to one server within timeout (TLS, for instance:
// TLSOptions.Dialer). It has the shape of go-zookeeper's zk.Dialer, so one
// converts to the other.
type Dialer func(network, addr string, timeout time.Duration) (net.Conn, error)

// Defaults of Config.
const (
	DefaultSessionTimeout = 10 * time.Second
	DefaultDialTimeout    = 5 * time.Second
	DefaultEventBuffer    = 1 << 16
	// DefaultMaxReplyFrame bounds a reply: servers do not limit what they
	// send (a getChildren of a wide node runs to megabytes), and a bound is
	// what keeps a server that is not one (an HTTP port) from making a
	// client allocate gigabytes.
	DefaultMaxReplyFrame = zkwire.DefaultMaxReplyFrame
)

// Config configures a Client.
type Config struct {
	// Hosts are the ensemble's servers, "host:port" each (ParseHosts,
	// ParseConnectString).
	Hosts []string
	// Chroot, when set, is the path the typed calls' paths are relative to
	// (a connect string's "/chroot"): "/" is the chroot node, paths in
	// replies and events have it removed. Raw calls (Send, Do) are not
	// rewritten.
	Chroot string
	// FirstHost is the index in Hosts of the server tried first; a negative
	// one picks one at random. After a connection is lost the servers are
	// tried in turn from the next one.
	FirstHost int
	// Retry is what becomes of calls when the connection is lost.
	Retry RetryPolicy
	// Auth are added right after a session is made, and again on every new
	// connection (with AddAuth's).
	Auth []Auth
	// ResumeSession and ResumePassword, when set, make the first handshake
	// resume that session instead of asking for a new one (the reverse
	// mirror keeps ZooKeeper sessions alive across its own restarts this
	// way). A session the server reports expired is replaced by a new one,
	// as on any reconnect: compare SessionID after Dial.
	ResumeSession  int64
	ResumePassword []byte
	// SessionTimeout is the timeout asked for; the server clamps it to its
	// [minSessionTimeout, maxSessionTimeout]. Default DefaultSessionTimeout.
	SessionTimeout time.Duration
	// DialTimeout bounds connecting to one server and its handshake.
	// Default DefaultDialTimeout.
	DialTimeout time.Duration
	// Dialer opens connections; nil means plain TCP.
	Dialer Dialer
	// MaxReplyFrame bounds a reply, in bytes. Default DefaultMaxReplyFrame.
	MaxReplyFrame int
	// EventBuffer is how many events wait for a slow consumer (or none)
	// before the next ones are dropped, and the first event delivered after
	// that is marked Missed. Default DefaultEventBuffer.
	EventBuffer int
	// OnReply, if set, is called with the zxid of every reply that carries
	// one (> 0), in the order the replies arrive, before the call it answers
	// returns; the export walk bounds its zxid range with it.
	OnReply func(zxid int64)
	// Logger receives the client's log lines; nil discards them.
	Logger *slog.Logger
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if len(c.Hosts) == 0 {
		return fmt.Errorf("%w: no hosts", ErrInvalidConfig)
	}
	if c.SessionTimeout < 0 || c.DialTimeout < 0 || c.MaxReplyFrame < 0 || c.EventBuffer < 0 {
		return fmt.Errorf("%w: negative timeout or size", ErrInvalidConfig)
	}
	if c.Retry > Resend {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, c.Retry)
	}
	if c.Chroot != "" && c.Chroot != "/" {
		if _, err := ParseConnectString("h" + c.Chroot); err != nil {
			return fmt.Errorf("%w: chroot: %w", ErrInvalidConfig, err)
		}
	}
	for _, a := range c.Auth {
		if a.Scheme == "" {
			return fmt.Errorf("%w: auth without a scheme", ErrInvalidConfig)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Chroot == "/" {
		c.Chroot = ""
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxReplyFrame == 0 {
		c.MaxReplyFrame = DefaultMaxReplyFrame
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

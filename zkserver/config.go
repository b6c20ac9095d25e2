package zkserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zk2raft/zk2raft/zkwire"
)

// ErrInvalidConfig is returned (wrapped) by Config.Validate and New.
var ErrInvalidConfig = errors.New("zkserver: invalid configuration")

// Config configures a Server. Start from DefaultConfig.
type Config struct {
	// Addr is the client port's TCP address, host:port (port 0 picks one).
	// Empty: no plain port (SecureAddr must be set).
	Addr string
	// SecureAddr is ZooKeeper's secureClientPort: the same protocol over
	// TLS, configured by TLS. Empty: no secure port.
	SecureAddr string
	// TLS is the secure port's TLS configuration: its certificate and,
	// through ClientAuth and ClientCAs, whether clients present certificates
	// (ZooKeeper's ssl.clientAuth need, want, none). A client certificate
	// that verifies authenticates the connection as x509:<subject DN>, the
	// DN as Java's X500Principal.getName() prints it (ZooKeeper's
	// X509AuthenticationProvider).
	TLS *tls.Config
	// X509SuperUser is zookeeper.X509AuthenticationProvider.superUser: a
	// client whose certificate's subject DN equals it may do anything.
	X509SuperUser string
	// TickTime is ZooKeeper's tickTime: the session timeout defaults derive
	// from it, and sessions are touched on the leader every half tick.
	TickTime time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound the timeouts clients
	// negotiate (0: 2 and 20 ticks, ZooKeeper's defaults).
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// SuperDigest is DigestAuthenticationProvider.superDigest, "user:base64
	// SHA-1 of user:password" (what `zk2raft` ... or ZooKeeper's
	// DigestAuthenticationProvider main prints). A client that authenticates
	// with that user and password may do anything. Empty: no super user.
	SuperDigest string
	// FourLetterWords is 4lw.commands.whitelist: the four-letter words
	// answered ("*" for all). ZooKeeper's default is srvr alone.
	FourLetterWords []string
	// MaxBuffer is jute.maxbuffer: the largest request frame accepted (a
	// larger one closes the connection, as ZooKeeper's "Len error" does).
	// Replies are not limited, as in ZooKeeper: clients apply their own
	// limit. 0: 0xfffff.
	MaxBuffer int
	// MaxReplyBuffer caps the replies sent (0: no cap, as in ZooKeeper). A
	// reply larger than it is not sent: the connection is closed with a log
	// line naming the request, which is what a client whose jute.maxbuffer
	// is MaxReplyBuffer experiences when sent the reply (see "Limits" in
	// doc.go).
	MaxReplyBuffer int
	// MaxClientConnsPerIP is maxClientCnxns (0: unlimited). ZooKeeper's
	// default is 60.
	MaxClientConnsPerIP int
	// MaxOutstanding caps the requests a connection has read and not yet
	// answered; beyond it the server stops reading that connection
	// (back-pressure). MaxOutstandingBytes caps their bytes the same way.
	MaxOutstanding      int
	MaxOutstandingBytes int64
	// ExtendedTypes allows TTL nodes (zookeeper.extendedTypesEnabled);
	// without it createTTL is answered UNIMPLEMENTED, as ZooKeeper does.
	ExtendedTypes bool
	// WatchQueue is how many watch events a connection may have waiting; a
	// connection whose queue overflows is closed (its client reconnects and
	// re-registers its watches).
	WatchQueue int
	// Logger receives the server's log lines; nil drops them.
	Logger *slog.Logger
	// Registerer receives the server's metrics (the node's registry, so they
	// appear on its /metrics); nil registers nothing.
	Registerer prometheus.Registerer
}

// DefaultCommitTimeout is the Raft CommitTimeout a node serving clients
// should run with (raftjournal.NodeConfig.CommitTimeout; `zk2raft serve`
// uses it with a client port). A follower answers its clients' writes once
// it has applied them, and hashicorp/raft tells followers of a commit with
// the next AppendEntries, which comes at the latest a CommitTimeout later
// when no write follows. Measured with one session writing through a
// follower, one write at a time: 20 ms (raftjournal's default) gave 29
// writes/s at 35 ms p50, 5 ms 75/s at 12 ms, 2 ms 134/s at 5.7 ms, against
// ZooKeeper's 123–212/s at 2.4–5.5 ms in the same run. The price is idle
// AppendEntries: three idle nodes used 22–27% of a core at 2 ms against 5%
// at 20 ms (BENCHMARKS.md).
const DefaultCommitTimeout = 2 * time.Millisecond

// Defaults of DefaultConfig.
const (
	DefaultTickTime            = 2 * time.Second
	DefaultMaxClientConnsPerIP = 60
	DefaultMaxOutstanding      = 1000
	DefaultMaxOutstandingBytes = 16 << 20
	DefaultWatchQueue          = 10000
)

// DefaultConfig returns ZooKeeper's defaults, with the address empty.
func DefaultConfig() Config {
	return Config{
		TickTime:            DefaultTickTime,
		FourLetterWords:     []string{"srvr"},
		MaxBuffer:           zkwire.DefaultMaxBuffer,
		MaxClientConnsPerIP: DefaultMaxClientConnsPerIP,
		MaxOutstanding:      DefaultMaxOutstanding,
		MaxOutstandingBytes: DefaultMaxOutstandingBytes,
		ExtendedTypes:       true,
		WatchQueue:          DefaultWatchQueue,
	}
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Addr == "" && c.SecureAddr == "":
		return bad("neither Addr nor SecureAddr is set")
	case c.SecureAddr != "" && (c.TLS == nil || (len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil)):
		return bad("SecureAddr %q needs a TLS configuration with a certificate", c.SecureAddr)
	case c.TLS != nil && c.SecureAddr == "":
		return bad("a TLS configuration without SecureAddr")
	case c.X509SuperUser != "" && c.SecureAddr == "":
		return bad("X509SuperUser without SecureAddr")
	case c.TickTime <= 0:
		return bad("TickTime %v is not positive", c.TickTime)
	case c.MinSessionTimeout < 0 || c.MaxSessionTimeout < 0:
		return bad("session timeouts must not be negative")
	case c.minTimeout() > c.maxTimeout():
		return bad("MinSessionTimeout %v exceeds MaxSessionTimeout %v", c.minTimeout(), c.maxTimeout())
	case c.MaxBuffer < 0 || c.MaxBuffer > zkwire.MaxFrame:
		return bad("MaxBuffer %d out of range", c.MaxBuffer)
	case c.MaxReplyBuffer < 0:
		return bad("MaxReplyBuffer %d is negative", c.MaxReplyBuffer)
	case c.MaxClientConnsPerIP < 0:
		return bad("MaxClientConnsPerIP %d is negative", c.MaxClientConnsPerIP)
	case c.MaxOutstanding < 1 || c.MaxOutstandingBytes < 1:
		return bad("MaxOutstanding and MaxOutstandingBytes must be positive")
	case c.WatchQueue < 1:
		return bad("WatchQueue must be positive")
	}
	for name, addr := range map[string]string{"Addr": c.Addr, "SecureAddr": c.SecureAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad("%s %q: %v", name, addr, err)
		}
	}
	if c.SuperDigest != "" {
		if user, digest, ok := strings.Cut(c.SuperDigest, ":"); !ok || user == "" || digest == "" || strings.Contains(digest, ":") {
			return bad("SuperDigest must be user:base64(sha1(user:password)), got %q", c.SuperDigest)
		}
	}
	for _, w := range c.FourLetterWords {
		if w != "*" && !knownWord(w) {
			return bad("four-letter word %q is not one ZooKeeper 3.8 knows", w)
		}
	}
	return nil
}

func (c Config) minTimeout() time.Duration {
	if c.MinSessionTimeout > 0 {
		return c.MinSessionTimeout
	}
	return 2 * c.TickTime
}

func (c Config) maxTimeout() time.Duration {
	if c.MaxSessionTimeout > 0 {
		return c.MaxSessionTimeout
	}
	return 20 * c.TickTime
}

func (c Config) maxBuffer() int {
	if c.MaxBuffer == 0 {
		return zkwire.DefaultMaxBuffer
	}
	return c.MaxBuffer
}

// negotiate clamps a requested session timeout (ms) into [min, max], as
// ZooKeeperServer.processConnectRequest does.
func (c Config) negotiate(requestedMs int32) int32 {
	lo, hi := int32(c.minTimeout().Milliseconds()), int32(c.maxTimeout().Milliseconds())
	return min(max(requestedMs, lo), hi)
}

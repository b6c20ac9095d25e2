package zkclient

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// DefaultPort is the client port a host without one gets, as in ZooKeeper's
// own connect strings.
const DefaultPort = 2181

// ErrInvalidConnectString is returned (wrapped, naming the bad part) by
// ParseConnectString and ParseHosts.
var ErrInvalidConnectString = errors.New("zkclient: invalid connect string")

// ConnectString is a parsed ZooKeeper connect string,
// "host:port[,host:port...][/chroot]".
type ConnectString struct {
	// Hosts are the servers, "host:port" each, in the order given.
	Hosts []string
	// Chroot is the path every request is relative to, "" for none.
	Chroot string
}

// String renders the connect string back.
func (cs ConnectString) String() string { return strings.Join(cs.Hosts, ",") + cs.Chroot }

// ParseConnectString parses "host:port[,host:port...][/chroot]". Each host
// is a DNS name, an IPv4 address or a bracketed IPv6 address; a missing port
// is DefaultPort; the chroot must be a valid absolute path ("/" alone means
// none). Malformed hosts (empty, characters no host name has, a port outside
// 1..65535) are errors naming the host.
func ParseConnectString(s string) (ConnectString, error) {
	hostPart, chroot := s, ""
	if i := strings.IndexByte(s, '/'); i >= 0 {
		hostPart, chroot = s[:i], s[i:]
		if chroot == "/" {
			chroot = ""
		} else if err := znode.ValidatePath(chroot); err != nil {
			return ConnectString{}, fmt.Errorf("%w %q: chroot: %w", ErrInvalidConnectString, s, err)
		}
	}
	hosts, err := parseHostList(s, hostPart)
	if err != nil {
		return ConnectString{}, err
	}
	return ConnectString{Hosts: hosts, Chroot: chroot}, nil
}

// ParseHosts parses "host:port[,host:port...]", a connect string without a
// chroot (a flag that names its subtree separately refuses one).
func ParseHosts(s string) ([]string, error) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return nil, fmt.Errorf("%w %q: a chroot (%s) is not taken here", ErrInvalidConnectString, s, s[i:])
	}
	return parseHostList(s, s)
}

func parseHostList(whole, s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w %q: no hosts", ErrInvalidConnectString, whole)
	}
	var hosts []string
	for _, h := range strings.Split(s, ",") {
		h = strings.TrimSpace(h)
		norm, err := checkHost(h)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidConnectString, whole, err)
		}
		hosts = append(hosts, norm)
	}
	return hosts, nil
}

// checkHost validates one "host[:port]" and returns it with its port.
func checkHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("empty host")
	}
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", fmt.Errorf("host %q: unclosed [", h)
		}
		host = h[1:end]
		switch rest := h[end+1:]; {
		case rest == "":
		case strings.HasPrefix(rest, ":"):
			port = rest[1:]
		default:
			return "", fmt.Errorf("host %q: junk after ]", h)
		}
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return "", fmt.Errorf("host %q: %q is not an IPv6 address", h, host)
		}
	} else {
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			host, port = h[:i], h[i+1:]
		}
		if err := checkHostName(host); err != nil {
			return "", fmt.Errorf("host %q: %w", h, err)
		}
	}
	if port == "" {
		if strings.HasSuffix(h, ":") {
			return "", fmt.Errorf("host %q: empty port", h)
		}
		port = strconv.Itoa(DefaultPort)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' {
		return "", fmt.Errorf("host %q: port %q is not a number in 1..65535", h, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// checkHostName accepts DNS names (letters, digits, hyphens, underscores,
// dots between labels of at most 63 bytes) and IPv4 addresses.
func checkHostName(s string) error {
	switch {
	case s == "":
		return errors.New("empty host name")
	case len(s) > 253:
		return errors.New("host name longer than 253 bytes")
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is not a host name (empty or over-long label)", s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
				c == '-' && i > 0 && i < len(label)-1
			if !ok {
				return fmt.Errorf("%q is not a host name (byte %q)", s, c)
			}
		}
	}
	return nil
}

// Auth is one credential added to a session (addauth scheme cred), e.g.
// {"digest", "user:password"}.
type Auth struct {
	Scheme string
	Cred   []byte
}

// ParseAuth parses "scheme:credential", e.g. "digest:user:password", as
// given to --auth.
func ParseAuth(s string) (Auth, error) {
	scheme, cred, ok := strings.Cut(s, ":")
	if !ok || scheme == "" {
		return Auth{}, fmt.Errorf("zkclient: auth %q: want SCHEME:CREDENTIAL", s)
	}
	return Auth{Scheme: scheme, Cred: []byte(cred)}, nil
}

// ParseAuths parses each of ss with ParseAuth.
func ParseAuths(ss []string) ([]Auth, error) {
	var out []Auth
	for _, s := range ss {
		a, err := ParseAuth(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

package raftjournal

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Security: the admin, Raft and RPC ports belong to the cluster.
//
// Every process that talks to a journal's ports (the nodes themselves, the
// dual-write proxy, the command line) holds the cluster secret, a token read
// from a file (LoadSecretFile). It is presented:
//
//   - on the Raft port (raft's transport and the journal RPC share it,
//     transport.go), in a challenge–response exchanged before the connection is
//     routed and before anything else is read from it: the listener sends a
//     random nonce, the dialler answers with its own nonce and an HMAC-SHA256 of
//     both under the secret, and the listener proves it holds the secret too
//     (handshake.go). The secret itself never crosses the wire there. A peer
//     that fails is disconnected having cost a fixed 65-byte read;
//   - on the admin port as "Authorization: Bearer SECRET" (the form Prometheus'
//     authorization.credentials_file and curl -H use). It does cross the wire:
//     across networks you do not trust, turn on TLS.
//
// Mutual TLS (ClusterTLS) is an option for all three ports, on top of the
// secret: every connection then needs a certificate signed by the cluster's
// CA, in both directions, and the traffic is encrypted.
//
// A node refuses to start without a secret unless Insecure says so (tests on
// loopback, a laptop demo): a journal whose ports answer anyone who can reach
// them can be re-membered, rewritten and read by a stranger.
//
// Admin endpoints, with the secret required unless a flag opens them:
//
//	GET /status      full status; with OpenStatus, a caller without the
//	                 secret gets the minimal status (id, role, leader, term,
//	                 indexes, phase): enough for a health check
//	GET /metrics     Prometheus; open to anyone with OpenMetrics
//	GET /checkpoint, POST /join, /remove, /transfer-leadership    secret
//	GET /digests     secret (a digest says nothing about data)
//	GET /node, /tree secret, and ZooKeeper's READ permission on every node
//	                 returned, for the ZooKeeper credentials the request
//	                 carries (admin_acl.go)

var (
	// ErrUnauthenticated is returned (wrapped) when a port refuses a caller
	// that does not hold the cluster secret, or a caller refuses a port that
	// does not prove it holds it.
	ErrUnauthenticated = errors.New("raftjournal: not authenticated")
	// ErrNoSecret is returned by NodeConfig.Validate for a node with neither a
	// cluster secret nor Insecure.
	ErrNoSecret = errors.New("raftjournal: no cluster secret")
)

// MinSecretBytes is the shortest cluster secret accepted.
const MinSecretBytes = 16

// Credentials are what a process presents to a journal cluster's ports: the
// cluster secret and, with mutual TLS, its certificate. The zero value has
// neither, which only a node running Insecure accepts.
type Credentials struct {
	// Secret is the cluster secret (LoadSecretFile).
	Secret []byte
	// TLS, when not nil, is the cluster's mutual TLS; every port of every node
	// then speaks TLS.
	TLS *ClusterTLS
}

// ParseSecret checks a cluster secret read from somewhere (a file's content,
// an environment variable): surrounding white space is dropped, and what is
// left must be at least MinSecretBytes of printable ASCII (it travels in an
// HTTP header).
func ParseSecret(raw []byte) ([]byte, error) {
	s := bytes.TrimSpace(raw)
	if len(s) < MinSecretBytes {
		return nil, fmt.Errorf("%w: the secret is %d bytes, want at least %d (e.g. head -c 32 /dev/urandom | base64)", ErrNoSecret, len(s), MinSecretBytes)
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return nil, fmt.Errorf("%w: the secret must be printable ASCII without spaces (e.g. head -c 32 /dev/urandom | base64)", ErrNoSecret)
		}
	}
	return s, nil
}

// LoadSecretFile reads a cluster secret from a file (see ParseSecret). A file
// that others may read is refused: the secret is the key to the cluster.
func LoadSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: cluster secret: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("raftjournal: cluster secret %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: cluster secret: %w", err)
	}
	s, err := ParseSecret(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return s, nil
}

// secretEqual compares a presented secret with the cluster's in constant time.
func secretEqual(got, want []byte) bool {
	return len(want) > 0 && subtle.ConstantTimeCompare(got, want) == 1
}

// TLSFiles names the PEM files of a cluster's mutual TLS: this process's
// certificate and key, and the CA that signs every member's and client's
// certificate.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// ClusterTLS is a loaded mutual-TLS configuration for the journal's ports.
type ClusterTLS struct {
	cert tls.Certificate
	pool *x509.CertPool
	tlsOnce
}

// LoadTLS loads the files of a cluster's mutual TLS.
func LoadTLS(f TLSFiles) (*ClusterTLS, error) {
	if f.CertFile == "" || f.KeyFile == "" || f.CAFile == "" {
		return nil, fmt.Errorf("raftjournal: mutual TLS needs a certificate, its key and the cluster's CA")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: TLS certificate %s: %w", f.CertFile, err)
	}
	ca, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("raftjournal: TLS CA %s holds no PEM certificate", f.CAFile)
	}
	return &ClusterTLS{cert: cert, pool: pool}, nil
}

// ServerConfig is the configuration of a port that requires a client
// certificate signed by the cluster's CA.
func (c *ClusterTLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.pool,
	}
}

// ClientConfig is the configuration for dialling addr (host:port): the server's
// certificate must be signed by the cluster's CA and name the host.
func (c *ClusterTLS) ClientConfig(addr string) *tls.Config {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.cert},
		RootCAs:      c.pool,
		ServerName:   strings.Trim(host, "[]"),
	}
}

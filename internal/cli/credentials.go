package cli

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
)

// Where secrets come from. Neither the cluster secret nor ZooKeeper
// credentials should be typed on the command line, which every user of the
// machine can read in ps: files (mode 600) or the environment (readable only by
// the process's user) are preferred.
const (
	envClusterSecretFile = "ZK2RAFT_CLUSTER_SECRET_FILE"
	envClusterSecret     = "ZK2RAFT_CLUSTER_SECRET"
	envZKAuthFile        = "ZK2RAFT_ZK_AUTH_FILE"
	envZKAuth            = "ZK2RAFT_ZK_AUTH"
)

// clusterOptions are the flags of every verb that talks to a journal's admin
// or Raft port: the cluster secret and the cluster's mutual TLS.
type clusterOptions struct {
	secretFile string
	tls        raftjournal.TLSFiles
}

func (o *clusterOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.secretFile, "cluster-secret-file", "", "file holding the cluster secret every node, proxy and zk2raft command of the cluster shares (default $"+envClusterSecretFile+", or the secret itself in $"+envClusterSecret+"); make one with 'zk2raft journal new-secret'")
	f.StringVar(&o.tls.CertFile, "cluster-tls-cert", "", "mutual TLS on the journal's admin and Raft ports: this process's certificate (PEM)")
	f.StringVar(&o.tls.KeyFile, "cluster-tls-key", "", "mutual TLS: the certificate's key (PEM)")
	f.StringVar(&o.tls.CAFile, "cluster-tls-ca", "", "mutual TLS: the CA that signs every member's and client's certificate (PEM)")
}

// secret loads the cluster secret: --cluster-secret-file, then
// $ZK2RAFT_CLUSTER_SECRET_FILE, then $ZK2RAFT_CLUSTER_SECRET. nil when none is
// given.
func (o *clusterOptions) secret() ([]byte, error) {
	file, from := o.secretFile, "--cluster-secret-file"
	if file == "" {
		file, from = os.Getenv(envClusterSecretFile), "$"+envClusterSecretFile
	}
	if file != "" {
		s, err := raftjournal.LoadSecretFile(file)
		if err != nil {
			return nil, usageErrorf("%s: %v", from, err)
		}
		return s, nil
	}
	if v := os.Getenv(envClusterSecret); v != "" {
		s, err := raftjournal.ParseSecret([]byte(v))
		if err != nil {
			return nil, usageErrorf("$%s: %v", envClusterSecret, err)
		}
		return s, nil
	}
	return nil, nil
}

// credentials loads the secret and the TLS files.
func (o *clusterOptions) credentials() (raftjournal.Credentials, error) {
	var c raftjournal.Credentials
	var err error
	if c.Secret, err = o.secret(); err != nil {
		return c, err
	}
	if o.tls != (raftjournal.TLSFiles{}) {
		if c.TLS, err = raftjournal.LoadTLS(o.tls); err != nil {
			return c, usageErrorf("--cluster-tls-*: %v", err)
		}
	}
	return c, nil
}

// clientCredentials are credentials for a long-running client of the
// journal that also serves an admin port (proxy, tail): a cluster secret is
// required unless insecure, and the two exclude each other.
func (o *clusterOptions) clientCredentials(insecure bool) (raftjournal.Credentials, error) {
	c, err := o.credentials()
	switch {
	case err != nil:
		return c, err
	case insecure && c.Secret != nil:
		return c, usageErrorf("--insecure and a cluster secret exclude each other")
	case !insecure && c.Secret == nil:
		return c, usageErrorf("no cluster secret: give --cluster-secret-file FILE (or $%s), the journal's; --insecure only for a journal that runs without one", envClusterSecretFile)
	}
	return c, nil
}

// admin returns a client of the admin endpoint at addr with the credentials.
func (o *clusterOptions) admin(addr string) (*raftjournal.AdminClient, error) {
	c, err := o.credentials()
	if err != nil {
		return nil, err
	}
	return raftjournal.NewAdminClient(addr, c), nil
}

// explain adds what to do to an authentication failure.
func (o *clusterOptions) explain(err error) error {
	if err == nil || !errors.Is(err, raftjournal.ErrUnauthenticated) {
		return err
	}
	if s, _ := o.secret(); s == nil {
		return fmt.Errorf("%w (no cluster secret was given: --cluster-secret-file FILE or $%s)", err, envClusterSecretFile)
	}
	return err
}

// zkAuthOptions are the ZooKeeper credentials of a verb: --auth (visible in
// ps), --auth-file, or the environment.
type zkAuthOptions struct {
	auth []string
	file string
}

func (o *zkAuthOptions) addFlags(cmd *cobra.Command, what string) {
	f := cmd.Flags()
	f.StringArrayVar(&o.auth, "auth", nil, what+": SCHEME:CRED, e.g. digest:user:password (repeatable; visible in ps: prefer --auth-file or $"+envZKAuth+")")
	f.StringVar(&o.file, "auth-file", "", what+": a file of SCHEME:CRED lines (# comments), mode 600 (default $"+envZKAuthFile+")")
}

// list returns the credentials, SCHEME:CRED each: --auth, then the lines of
// --auth-file (or $ZK2RAFT_ZK_AUTH_FILE), then the lines of $ZK2RAFT_ZK_AUTH.
func (o *zkAuthOptions) list() ([]string, error) {
	out := append([]string(nil), o.auth...)
	file, from := o.file, "--auth-file"
	if file == "" {
		file, from = os.Getenv(envZKAuthFile), "$"+envZKAuthFile
	}
	if file != "" {
		fi, err := os.Stat(file)
		if err != nil {
			return nil, usageErrorf("%s: %v", from, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, usageErrorf("%s: %s is readable by others (mode %v): chmod 600 it", from, file, fi.Mode().Perm())
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usageErrorf("%s: %v", from, err)
		}
		lines, err := authLines(b, from+" "+file)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	if v := os.Getenv(envZKAuth); v != "" {
		lines, err := authLines([]byte(v), "$"+envZKAuth)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	return out, nil
}

// authLines reads SCHEME:CRED lines; blank lines and # comments are skipped.
func authLines(b []byte, from string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if scheme, _, ok := strings.Cut(l, ":"); !ok || scheme == "" {
			return nil, usageErrorf("%s: line %d: want SCHEME:CRED", from, n)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, usageErrorf("%s: %v", from, err)
	}
	return out, nil
}

// parsed returns the credentials as zkclient takes them.
func (o *zkAuthOptions) parsed() ([]zkclient.Auth, error) {
	list, err := o.list()
	if err != nil {
		return nil, err
	}
	var out []zkclient.Auth
	for _, a := range list {
		au, err := zkclient.ParseAuth(a)
		if err != nil {
			return nil, usageErrorf("--auth: %v", err)
		}
		out = append(out, au)
	}
	return out, nil
}

// newSecret returns a fresh cluster secret: 32 random bytes, base64.
func newSecret() ([]byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return []byte(base64.RawURLEncoding.EncodeToString(b[:])), nil
}

package exporter

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/zkclient"
)

// testPKI writes a CA and a server certificate for 127.0.0.1 and localhost into
// dir: ca.pem, and server.pem holding the server's key and certificate, as
// ZooKeeper's PEM key store wants them.
func testPKI(t *testing.T, dir string) (caFile, serverFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "zk2raft test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, serverFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	srvPEM := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})...)
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(serverFile, srvPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, serverFile
}

// TestTLSExport exports over ZooKeeper's secureClientPort, verifying the
// server's certificate against a test CA, and checks that a client which does not
// trust the CA cannot connect.
func TestTLSExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, serverFile := testPKI(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	securePort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	install, err := zktest.Find()
	if err != nil {
		t.Fatal(err)
	}
	// Debian's zookeeper.jar manifest leaves out netty-codec and netty-resolver,
	// which the Netty connection factory (the only one that speaks TLS) needs.
	for _, jar := range []string{"netty-codec.jar", "netty-resolver.jar"} {
		if p := filepath.Join("/usr/share/java", jar); fileExists(p) {
			install.Classpath = append(install.Classpath, p)
		}
	}
	e := zktest.New(t, zktest.Options{
		Install: &install,
		Config:  map[string]string{"secureClientPort": strconv.Itoa(securePort)},
		SystemProperties: map[string]string{
			"zookeeper.serverCnxnFactory":               "org.apache.zookeeper.server.NettyServerCnxnFactory",
			"zookeeper.ssl.keyStore.location":           serverFile,
			"zookeeper.ssl.keyStore.type":               "PEM",
			"zookeeper.ssl.trustStore.location":         caFile,
			"zookeeper.ssl.trustStore.type":             "PEM",
			"zookeeper.ssl.clientAuth":                  "none",
			"zookeeper.ssl.hostnameVerification":        "false",
			"zookeeper.ssl.quorum.hostnameVerification": "false",
		},
	})
	root := "/tls"
	c := dialZK(t, e.Hosts())
	mustCreate(t, c, root, []byte("over tls"), 0, nil)
	for _, name := range []string{"a", "b", "c"} {
		mustCreate(t, c, root+"/"+name, []byte(name), 0, nil)
	}
	secure := []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(securePort))}

	dialer, err := zkclient.TLSOptions{CAFile: caFile}.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(secure)
	cfg.Root, cfg.Dialer = root, dialer
	got, sum, err := collect(t, t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	diffNodes(t, got, sequential(t, c, root))
	if sum.Nodes != 4 {
		t.Errorf("exported %d nodes", sum.Nodes)
	}

	untrusting, err := zkclient.TLSOptions{}.Dialer() // system roots: the test CA is not among them
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dialer, cfg.ConnectTimeout = untrusting, 3*time.Second
	_, _, err = collect(t, t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("err = %v, want the ensemble unreachable for a client that does not trust it", err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

package zkserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkserver"
	"github.com/zk2raft/zk2raft/zkwire"
)

// The secure client port: TLS, client certificates and the x509 scheme,
// with go-zookeeper, kazoo (use_ssl) and the Java client (zkCli.sh over
// Netty with PEM key and trust stores, hostname verification on).

// testPKI is a CA, a server certificate for 127.0.0.1 and client
// certificates, as PEM files (keys in PKCS#8, which Java's PEM stores read).
type testPKI struct {
	dir    string
	caPEM  string // file
	pool   *x509.CertPool
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	server tls.Certificate
}

type testClientCert struct {
	cert, key, both string // files: certificate, key, key+certificate
	tls             tls.Certificate
}

var oidOU, oidCN, oidO, oidC, oidEmail, oidSerial, oidUID, oidDC = asn1.ObjectIdentifier{2, 5, 4, 11}, asn1.ObjectIdentifier{2, 5, 4, 3},
	asn1.ObjectIdentifier{2, 5, 4, 10}, asn1.ObjectIdentifier{2, 5, 4, 6}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1},
	asn1.ObjectIdentifier{2, 5, 4, 5}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	caKey, caCert := p.issue(t, nil, nil, pkix.Name{CommonName: "zk2raft test CA"}, true, nil)
	p.pool.AddCert(caCert)
	p.caPEM = p.write(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}))
	srvKey, srvCert := p.issue(t, caKey, caCert, pkix.Name{CommonName: "127.0.0.1"}, false, nil)
	p.server = tls.Certificate{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey, Leaf: srvCert}
	p.caKey, p.caCert = caKey, caCert
	return p
}

// issue makes a key and a certificate signed by parent (self-signed when
// parent is nil). rawSubject, when set, is the subject's DER.
func (p *testPKI) issue(t testing.TB, parentKey *ecdsa.PrivateKey, parent *x509.Certificate, subject pkix.Name, ca bool, rawSubject []byte) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject, RawSubject: rawSubject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage, tmpl.IPAddresses = nil, nil
	}
	signer, issuer := key, tmpl
	if parent != nil {
		signer, issuer = parentKey, parent
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func (p *testPKI) write(t testing.TB, name string, data []byte) string {
	t.Helper()
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// client issues a client certificate whose subject is the RDN sequence
// (first element first in DER, so printed last).
func (p *testPKI) client(t testing.TB, name string, subject pkix.RDNSequence) testClientCert {
	t.Helper()
	raw, err := asn1.Marshal(subject)
	if err != nil {
		t.Fatal(err)
	}
	key, cert := p.issue(t, p.caKey, p.caCert, pkix.Name{}, false, raw)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	return testClientCert{
		cert: p.write(t, name+".crt", certPEM), key: p.write(t, name+".key", keyPEM),
		both: p.write(t, name+".pem", append(append([]byte(nil), keyPEM...), certPEM...)),
		tls:  tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert},
	}
}

func (p *testPKI) clientTLS(c *testClientCert) *tls.Config {
	cfg := &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1"}
	if c != nil {
		cfg.Certificates = []tls.Certificate{c.tls}
	}
	return cfg
}

func rdn(pairs ...any) pkix.RelativeDistinguishedNameSET {
	var set pkix.RelativeDistinguishedNameSET
	for i := 0; i < len(pairs); i += 2 {
		set = append(set, pkix.AttributeTypeAndValue{Type: pairs[i].(asn1.ObjectIdentifier), Value: pairs[i+1]})
	}
	return set
}

// tlsJournal is a one-node journal serving a plain and a secure client port
// that wants client certificates (ssl.clientAuth=want).
func tlsJournal(t testing.TB, p *testPKI, superUser string) *journal {
	t.Helper()
	j, err := startJournal(1, raftjournal.PhasePrimary, func(_ int, c *zkserver.Config) {
		c.SecureAddr = "127.0.0.1:0"
		c.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.VerifyClientCertIfGiven}
		c.X509SuperUser = superUser
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.close)
	return j
}

func tlsDialer(cfg *tls.Config) zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
		return d.Dial(network, address)
	}
}

// The subjects the tests use: an ordinary one, one with every character
// RFC 2253 escapes and attribute types Java prints by OID, and the super
// user's.
func testSubjects() map[string]pkix.RDNSequence {
	return map[string]pkix.RDNSequence{
		"app": {rdn(oidC, "CH"), rdn(oidO, "Example, Inc."), rdn(oidOU, "payments"), rdn(oidOU, "eu"), rdn(oidCN, "app")},
		"odd": {
			rdn(oidDC, "org"), rdn(oidDC, "example"), rdn(oidO, `a+b=c;d"e\f<g>`), rdn(oidOU, "#hash"), rdn(oidOU, " spaced "),
			rdn(oidSerial, "1234"), rdn(oidEmail, "ops@example.org"), rdn(oidCN, "odd", oidUID, "u1"), rdn(oidCN, "Zürich ümlaut"),
		},
		"root": {rdn(oidO, "Example"), rdn(oidCN, "zk-admin")},
	}
}

// TestX500NameMatchesJava compiles a small Java program with Debian's JDK
// that prints X500Principal.getName() for each test certificate (what
// ZooKeeper's X509AuthenticationProvider uses as the id) and checks the
// journal's name for it: the x509 ids of ACLs written on ZooKeeper must match
// on the journal.
func TestX500NameMatchesJava(t *testing.T) {
	javac, java := "/usr/bin/javac", "/usr/bin/java"
	if _, err := exec.LookPath(javac); err != nil {
		t.Fatal("Debian's JDK (default-jdk-headless) is required: run `make deps`")
	}
	p := newTestPKI(t)
	subjects := testSubjects()
	var files, names []string
	for name, subj := range subjects {
		c := p.client(t, name, subj)
		files = append(files, c.cert)
		names = append(names, name)
	}
	src := `import java.io.FileInputStream;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
public class DN {
  public static void main(String[] args) throws Exception {
    CertificateFactory cf = CertificateFactory.getInstance("X.509");
    for (String f : args) {
      try (FileInputStream in = new FileInputStream(f)) {
        X509Certificate c = (X509Certificate) cf.generateCertificate(in);
        System.out.println(c.getSubjectX500Principal().getName());
      }
    }
  }
}
`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "DN.java"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	runClient(t, 2*time.Minute, javac, "-d", dir, filepath.Join(dir, "DN.java"))
	out := runClient(t, 2*time.Minute, java, append([]string{"-XX:TieredStopAtLevel=1", "-cp", dir, "DN"}, files...)...)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(files) {
		t.Fatalf("java printed %d names for %d certificates:\n%s", len(lines), len(files), out)
	}
	for i, name := range names {
		raw, err := os.ReadFile(files[i])
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(raw)
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		got, err := zkserver.JavaX500Name(cert.RawSubject)
		if err != nil || got != lines[i] {
			t.Errorf("%s: journal %q (%v), java %q", name, got, err, lines[i])
		}
	}
}

// TestSecureClientPort: clients over TLS with and without certificates, the
// x509 scheme in ACLs and whoAmI, the super user, and the plain port beside.
func TestSecureClientPort(t *testing.T) {
	p := newTestPKI(t)
	subjects := testSubjects()
	app, odd, root := p.client(t, "app", subjects["app"]), p.client(t, "odd", subjects["odd"]), p.client(t, "root", subjects["root"])
	appDN, _ := zkserver.JavaX500Name(app.tls.Leaf.RawSubject)
	rootDN, _ := zkserver.JavaX500Name(root.tls.Leaf.RawSubject)
	j := tlsJournal(t, p, rootDN)
	secure := j.servers[0].SecureAddr()

	c, _, err := zk.Connect([]string{secure}, 10*time.Second, zk.WithDialer(tlsDialer(p.clientTLS(&app))), zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	path := testPath(t)
	acl := []zk.ACL{{Perms: zk.PermAll, Scheme: "x509", ID: appDN}}
	if _, err := c.Create(path, []byte("secret"), 0, acl); err != nil {
		t.Fatalf("create with an x509 ACL over TLS: %v", err)
	}
	if data, _, err := c.Get(path); err != nil || string(data) != "secret" {
		t.Fatalf("the certificate's owner reads: %q %v", data, err)
	}
	got, _, err := c.GetACL(path)
	if err != nil || len(got) != 1 || got[0].Scheme != "x509" || got[0].ID != appDN {
		t.Fatalf("getACL: %+v %v", got, err)
	}

	// whoAmI names the certificate's DN first, the address last.
	raw := mustDialRawTLS(t, secure, p.clientTLS(&app))
	r := raw.call(zkwire.OpWhoAmI, nil)
	infos := r.Body.(*zkwire.WhoAmIResponse).ClientInfo
	if len(infos) != 2 || infos[0].AuthScheme != "x509" || infos[0].User != appDN || infos[1].AuthScheme != "ip" {
		t.Fatalf("whoAmI over TLS with a certificate: %+v", infos)
	}

	// Another certificate, no certificate, and the plain port: denied.
	for name, cfg := range map[string]*tls.Config{"another certificate": p.clientTLS(&odd), "no certificate": p.clientTLS(nil)} {
		s := mustDialRawTLS(t, secure, cfg)
		if r := s.call(zkwire.OpGetData, &zkwire.GetDataRequest{Path: path}); r.Err != zkwire.CodeNoAuth {
			t.Errorf("%s: getData answered %v, want NoAuth", name, r.Err)
		}
	}
	plain := mustDialRaw(t, j.addrs()[0], connectOpts{})
	if r := plain.call(zkwire.OpGetData, &zkwire.GetDataRequest{Path: path}); r.Err != zkwire.CodeNoAuth {
		t.Errorf("plain port: getData answered %v, want NoAuth", r.Err)
	}
	// The super user's certificate may do anything.
	su := mustDialRawTLS(t, secure, p.clientTLS(&root))
	if r := su.call(zkwire.OpSetData, &zkwire.SetDataRequest{Path: path, Data: []byte("by root"), Version: -1}); r.Err != zkwire.CodeOK {
		t.Errorf("super user's setData: %v", r.Err)
	}
	// A certificate from another CA fails the handshake and closes only its
	// own connection.
	other := newTestPKI(t)
	stranger := other.client(t, "stranger", subjects["app"])
	cfg := p.clientTLS(&stranger)
	if s, _, err := dialRawTLS(t, secure, cfg); err == nil {
		s.close()
		t.Errorf("a certificate from an unknown CA was accepted")
	}
	if _, _, err := c.Get(path); err != nil {
		t.Errorf("the first client after a failed handshake: %v", err)
	}

	// kazoo with use_ssl and a client certificate.
	kazoo := `import sys
from kazoo.client import KazooClient
c = KazooClient(hosts=sys.argv[1], use_ssl=True, ca=sys.argv[2], certfile=sys.argv[3], keyfile=sys.argv[4], verify_certs=True)
c.start(timeout=30)
data, _ = c.get(sys.argv[5])
print("kazoo read " + data.decode())
c.stop()
`
	script := filepath.Join(t.TempDir(), "kazoo_tls.py")
	if err := os.WriteFile(script, []byte(kazoo), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runClient(t, 2*time.Minute, "/usr/bin/python3", script, secure, p.caPEM, app.cert, app.key, path)
	if !strings.Contains(out, "kazoo read by root\n") {
		t.Errorf("kazoo over TLS: %s", out)
	}

	// The Java client over Netty with PEM key and trust stores.
	zkCliTLS(t, secure, p.caPEM, app.both, path, appDN)
}

// zkCliTLS runs the Java client's shell (ZooKeeperMain, what zkCli.sh runs)
// against the secure port over Netty, presenting the certificate in
// keyStore: whoami shows its DN, and it reads the node its x509 ACL
// protects. Debian's zookeeper.jar names Netty's buffer, common, handler
// and transport jars in its manifest but not netty-resolver and
// netty-codec, which ClientCnxnSocketNetty needs, so zkCli.sh as packaged
// cannot use TLS (NoClassDefFoundError: io/netty/resolver/...): the jars
// are added here.
func zkCliTLS(t *testing.T, server, trustStore, keyStore, path, dn string) {
	t.Helper()
	const java = "/usr/bin/java"
	cp := strings.Join([]string{"/usr/share/java/zookeeper.jar", "/usr/share/java/netty-resolver.jar",
		"/usr/share/java/netty-codec.jar", "/usr/share/java/slf4j-nop.jar"}, ":")
	for _, jar := range strings.Split(cp, ":") {
		if _, err := os.Stat(jar); err != nil {
			t.Fatalf("%s is required (Debian's zookeeper, libnetty-java, libslf4j-java): run `make deps`", jar)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, "-Xmx64m", "-XX:TieredStopAtLevel=1",
		"-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
		"-Dzookeeper.client.secure=true",
		"-Dzookeeper.ssl.keyStore.location="+keyStore, "-Dzookeeper.ssl.keyStore.type=PEM",
		"-Dzookeeper.ssl.trustStore.location="+trustStore, "-Dzookeeper.ssl.trustStore.type=PEM",
		"-cp", cp, "org.apache.zookeeper.ZooKeeperMain", "-server", server)
	cmd.Stdin = strings.NewReader("whoami\nget " + path + "\nquit\n")
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("the Java client over TLS: %v\n%s", err, tail(out, 6000))
	}
	for _, want := range []string{"x509: " + dn, "by root"} {
		if !strings.Contains(out, want) {
			t.Errorf("the Java client over TLS: output lacks %q:\n%s", want, tail(out, 6000))
		}
	}
	if strings.Contains(out, "KeeperErrorCode") {
		t.Errorf("the Java client over TLS reported an error:\n%s", tail(out, 6000))
	}
}

func dialRawTLS(t testing.TB, addr string, cfg *tls.Config) (*rawSession, zkwire.ConnectResponse, error) {
	t.Helper()
	// A refused client certificate surfaces (TLS 1.3) when the connect
	// response is read: the dial then fails.
	return dialRawWith(t, connectOpts{}, func() (net.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
		return d.Dial("tcp", addr)
	})
}

func mustDialRawTLS(t testing.TB, addr string, cfg *tls.Config) *rawSession {
	t.Helper()
	s, _, err := dialRawTLS(t, addr, cfg)
	if err != nil {
		t.Fatalf("connect over TLS to %s: %v", addr, err)
	}
	return s
}

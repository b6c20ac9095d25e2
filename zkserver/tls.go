package zkserver

import (
	"context"
	"crypto/tls"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/zk2raft/zk2raft/znode"
)

// The secure client port (ZooKeeper's secureClientPort) speaks the same
// protocol inside TLS. A client certificate that verifies against the
// configured CAs authenticates the connection as x509:<subject DN>, and as
// super when the DN is Config.X509SuperUser, before the session starts, as
// ZooKeeper's X509AuthenticationProvider does on the TLS handshake. The DN
// is the string Java's X500Principal.getName() returns (RFC 2253, which is
// what ZooKeeper compares ACL ids with), so that x509 ACLs written on
// ZooKeeper keep matching on the journal.

// tlsHandshake completes a secure connection's handshake within the
// largest session timeout and records the client certificate's identity.
// It reports whether the connection goes on.
func (c *conn) tlsHandshake(tc *tls.Conn) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.maxTimeout())
	defer cancel()
	c.s.stats.tlsHandshakes.Add(1)
	err := tc.HandshakeContext(ctx)
	c.s.stats.tlsHandshakes.Add(-1)
	if err != nil {
		c.s.m.badRequests.Inc()
		c.s.logger.Warn("closing client connection: TLS handshake failed", "remote", c.nc.RemoteAddr().String(), "error", err)
		return false
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return true // no client certificate (ssl.clientAuth want or none)
	}
	dn, err := javaX500Name(st.PeerCertificates[0].RawSubject)
	if err != nil {
		c.s.m.authFailures.Inc()
		c.s.stats.authFailed.Add(1)
		c.s.logger.Warn("closing client connection: client certificate subject does not decode",
			"remote", c.nc.RemoteAddr().String(), "error", err)
		return false
	}
	if c.s.cfg.X509SuperUser != "" && dn == c.s.cfg.X509SuperUser {
		c.certIDs = append(c.certIDs, znode.ID{Scheme: "super", ID: dn})
	}
	c.certIDs = append(c.certIDs, znode.ID{Scheme: "x509", ID: dn})
	return true
}

// rdnSET is one relative distinguished name (a DER SET; encoding/asn1
// takes a slice type whose name ends in SET for one).
type rdnSET []attributeTypeAndValue

type attributeTypeAndValue struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// rfc2253Keywords are the attribute types Java's X500Principal.getName()
// prints by name (AVAKeyword's RFC 2253 set); it prints the others as their
// OID with the value as #hex of its DER encoding.
var rfc2253Keywords = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.9":                    "STREET",
	"0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1":  "UID",
}

// javaX500Name formats a DER-encoded X.509 name as Java's
// X500Principal.getName() (RFC 2253) does: the RDNs from last to first,
// separated by commas, the values of a multi-valued RDN joined by "+",
// known attribute types by keyword with their string values escaped, other
// types by OID with #hex values.
func javaX500Name(der []byte) (string, error) {
	var rdns []rdnSET
	rest, err := asn1.Unmarshal(der, &rdns)
	if err != nil {
		return "", fmt.Errorf("zkserver: x509 subject: %w", err)
	}
	if len(rest) > 0 {
		return "", errors.New("zkserver: x509 subject: trailing bytes")
	}
	parts := make([]string, 0, len(rdns))
	for i := len(rdns) - 1; i >= 0; i-- {
		avas := make([]string, 0, len(rdns[i]))
		for _, ava := range rdns[i] {
			avas = append(avas, formatAVA(ava))
		}
		parts = append(parts, strings.Join(avas, "+"))
	}
	return strings.Join(parts, ","), nil
}

func formatAVA(ava attributeTypeAndValue) string {
	oid := ava.Type.String()
	keyword, known := rfc2253Keywords[oid]
	value, isString := derString(ava.Value)
	if !known || !isString {
		if !known {
			keyword = oid
		}
		return keyword + "=#" + hex.EncodeToString(ava.Value.FullBytes)
	}
	return keyword + "=" + escapeRFC2253(value)
}

// derString returns the text of the DER string types Java prints as
// strings (DerValue.isDerString, non-canonical).
func derString(v asn1.RawValue) (string, bool) {
	if v.Class != asn1.ClassUniversal {
		return "", false
	}
	switch v.Tag {
	case asn1.TagPrintableString, asn1.TagUTF8String, asn1.TagIA5String, asn1.TagT61String:
		return string(v.Bytes), true
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = uint16(v.Bytes[2*i])<<8 | uint16(v.Bytes[2*i+1])
		}
		return string(utf16.Decode(u)), true
	}
	return "", false
}

// escapeRFC2253 escapes a value as Java's AVA.toRFC2253String does: a
// backslash before each of ,=+<>#;"\, NUL as \00, and a backslash before
// leading and trailing spaces (and carriage returns).
func escapeRFC2253(v string) string {
	var b strings.Builder
	type piece struct {
		s     string
		space bool
	}
	var out []piece
	for _, r := range v {
		switch {
		case strings.ContainsRune(`,=+<>#;"\`, r):
			out = append(out, piece{s: `\` + string(r)})
		case r == 0:
			out = append(out, piece{s: `\00`})
		default:
			out = append(out, piece{s: string(r), space: r == ' ' || r == '\r'})
		}
	}
	lead := 0
	for lead < len(out) && out[lead].space {
		lead++
	}
	trail := len(out) - 1
	for trail >= 0 && out[trail].space {
		trail--
	}
	for i, p := range out {
		if i < lead || i > trail {
			b.WriteByte('\\')
		}
		b.WriteString(p.s)
	}
	return b.String()
}

package raftjournal

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// Tree reads over the admin port (GET /node, /tree) honour ZooKeeper's ACLs: on
// top of the cluster secret, every node returned needs READ for the identities
// the request carries, checked as ZooKeeper's checkACL does (an empty ACL lets
// anyone in; super passes everything). The identities:
//
//   - ip:ADDRESS, the caller's address, as ZooKeeper gives every connection;
//   - x509:SUBJECT, the subject of the caller's TLS client certificate;
//   - digest:USER:BASE64(SHA1(USER:PASSWORD)) for each ZKAuthHeader
//     "digest:USER:PASSWORD" (the form --auth takes); the one equal to
//     NodeConfig.SuperDigest is super.
//
// The secret says the caller belongs to the cluster; the ACL says which data a
// tool may see, so a verifier or reconciler holding ZooKeeper credentials sees
// in the journal what it sees in ZooKeeper.

// ZKAuthHeader carries one ZooKeeper credential, SCHEME:CRED, on an admin
// request (repeatable). Only the digest scheme is understood.
const ZKAuthHeader = "X-Zk2raft-Auth"

// digestID is the digest identity of a "user:password" credential.
func digestID(cred string) (znode.ID, error) {
	user, _, ok := strings.Cut(cred, ":")
	if !ok || user == "" {
		return znode.ID{}, fmt.Errorf("%w: digest credential %q: want user:password", ErrBadCommand, redact(cred))
	}
	return znode.ID{Scheme: "digest", ID: znode.DigestID(cred)}, nil
}

// redact keeps a credential's user and hides its password in messages.
func redact(cred string) string {
	if user, _, ok := strings.Cut(cred, ":"); ok {
		return user + ":…"
	}
	return "…"
}

func validSuperDigest(s string) bool {
	user, hash, ok := strings.Cut(s, ":")
	if !ok || user == "" || hash == "" {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(hash)
	return err == nil && len(b) == sha1.Size
}

// reader is who a tree read over the admin port is made by.
type reader struct {
	ids   []znode.ID
	super bool
}

// readerOf collects a request's identities.
func (n *Node) readerOf(r *http.Request) (reader, error) {
	var rd reader
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		rd.ids = append(rd.ids, znode.ID{Scheme: "ip", ID: host})
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		rd.ids = append(rd.ids, znode.ID{Scheme: "x509", ID: r.TLS.PeerCertificates[0].Subject.String()})
	}
	for _, h := range r.Header.Values(ZKAuthHeader) {
		scheme, cred, _ := strings.Cut(h, ":")
		if scheme != "digest" {
			return rd, fmt.Errorf("%w: %s: scheme %q: only digest credentials are understood", ErrBadCommand, ZKAuthHeader, scheme)
		}
		id, err := digestID(cred)
		if err != nil {
			return rd, err
		}
		rd.ids = append(rd.ids, id)
		if n.cfg.SuperDigest != "" && id.ID == n.cfg.SuperDigest {
			rd.super = true
		}
	}
	return rd, nil
}

// may reports whether the reader has perm on a node with acl
// (ZooKeeperServer.checkACL, as the FSM and the client port decide it).
func (rd reader) may(acl []znode.ACL, perm znode.Perm) bool {
	return rd.super || Permits(acl, perm, rd.ids)
}

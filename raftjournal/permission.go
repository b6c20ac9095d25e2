package raftjournal

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// Permits is ZooKeeperServer.checkACL: whether identities ids may do perm on
// a node whose ACL list is acl. An empty list permits everything; an id
// {super, ""} permits everything; otherwise some entry granting perm must be
// world:anyone or match one of ids by its scheme's provider (digest, x509 and
// sasl: equal ids; ip: the address inside the entry's address/bits).
//
// The FSM uses it for writes that carry Write.CheckACL, the protocol server
// for reads; both decide from the ids alone, never from a connection.
func Permits(acl []znode.ACL, perm znode.Perm, ids []znode.ID) bool {
	if len(acl) == 0 {
		return true
	}
	for _, id := range ids {
		if id.Scheme == "super" {
			return true
		}
	}
	for _, a := range acl {
		if a.Perms&perm == 0 {
			continue
		}
		if a.ID.Scheme == "world" && a.ID.ID == "anyone" {
			return true
		}
		for _, id := range ids {
			if id.Scheme == a.ID.Scheme && idMatches(id.Scheme, id.ID, a.ID.ID) {
				return true
			}
		}
	}
	return false
}

func idMatches(scheme, id, expr string) bool {
	switch scheme {
	case "digest", "x509", "sasl":
		return id == expr
	case "ip":
		return ipMatches(id, expr)
	}
	return false
}

// ipMatches is IPAuthenticationProvider.matches: expr is an address or
// address/bits; the client's address must be of the same family and agree on
// the first bits.
func ipMatches(id, expr string) bool {
	addr, err := netip.ParseAddr(id)
	if err != nil {
		return false
	}
	a, bitsStr, hasBits := strings.Cut(expr, "/")
	pa, err := netip.ParseAddr(a)
	if err != nil {
		return false
	}
	addr, pa = addr.Unmap(), pa.Unmap()
	if addr.Is4() != pa.Is4() {
		return false
	}
	bits := pa.BitLen()
	if hasBits {
		b, err := strconv.Atoi(bitsStr)
		if err != nil || b < 0 {
			return false
		}
		bits = min(b, pa.BitLen())
	}
	p, err := pa.Prefix(bits)
	if err != nil {
		return false
	}
	return p.Contains(addr)
}

// permitted checks a native op's permission when the write asks for it.
func (s *state) permitted(w *Write, n *node, perm znode.Perm) Code {
	if !w.CheckACL || Permits(s.t.acls.get(n.acl), perm, w.Auth) {
		return CodeOK
	}
	return CodeNoAuth
}

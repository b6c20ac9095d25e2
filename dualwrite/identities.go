package dualwrite

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// identities is what a relayed connection authenticated as, as far as the
// tap can tell: ZooKeeper expands an "auth" ACL entry into the connection's
// authenticated identities, in the order its identity set iterates them
// (raftjournal.AuthOrder), which depends on the order they were added.
type identities struct {
	// added lists the identities in the order ZooKeeper added them: the ip
	// identity of the connection (the tap's own address, as ZooKeeper sees
	// it) first, then one per successful addauth.
	added []znode.ID
	// unknown says the connection has an identity the tap cannot name: a
	// SASL exchange succeeded, or an addauth of a scheme other than digest
	// and ip (a custom provider's).
	unknown bool
}

// newIdentities starts a connection's identities with its ip identity:
// local is the tap's end of the connection to ZooKeeper.
func newIdentities(local net.Addr) identities {
	if a, ok := local.(*net.TCPAddr); ok {
		return identities{added: []znode.ID{{Scheme: "ip", ID: javaHostAddress(a.IP, a.Zone)}}}
	}
	return identities{}
}

// add records a successful addauth. The slice is only ever appended to, so
// a copy of the identities taken earlier stays valid.
func (ids identities) add(ap *zkwire.AuthPacket) identities {
	switch ap.Scheme {
	case "digest":
		ids.added = append(ids.added, digestID(ap.Auth))
	case "ip":
		// IPAuthenticationProvider adds the connection's address, which the
		// set holds already.
	default:
		ids.unknown = true
	}
	return ids
}

// aclReadBack marks a queued create or setACL whose ACL the tap could not
// predict: the delivery reads it back from ZooKeeper (readback.go). It is the
// list's last entry, after the best prediction; a stored ACL never holds an
// "auth" entry (fixupACL expands them all), so it cannot be mistaken.
var aclReadBack = znode.ACL{ID: znode.ID{Scheme: "auth", ID: "zk2raft:read-back"}}

// fixACL predicts the ACL ZooKeeper stored for a create or setACL relayed on
// a connection with the given identities (raftjournal.FixupACL). When the
// request has "auth" entries and the prediction is not certain, the result is
// the best prediction followed by aclReadBack:
//
//   - the connection has an identity the tap cannot name (SASL, a custom
//     scheme);
//   - the digest credentials of one of its addauths may be the super user's:
//     ZooKeeper then adds {super, ""} to the set just before that digest
//     identity. super is never expanded, but one more entry can change when
//     the map resizes and so the order; the prediction is certain only when
//     every such possibility gives the same order.
func fixACL(acl []znode.ACL, ids identities) ([]znode.ACL, error) {
	hasAuth := slices.ContainsFunc(acl, func(a znode.ACL) bool { return a.ID.Scheme == "auth" })
	out, code := raftjournal.FixupACL(acl, ids.added)
	if !hasAuth {
		if code != raftjournal.CodeOK {
			return nil, fmt.Errorf("ACL %v does not fix up (%v) although ZooKeeper accepted it", acl, zkwire.Code(code))
		}
		return out, nil
	}
	certain := !ids.unknown && code == raftjournal.CodeOK
	if certain {
		seen := map[znode.ID]bool{}
		for k, id := range ids.added {
			if id.Scheme != "digest" || seen[id] {
				continue
			}
			seen[id] = true
			variant := slices.Insert(slices.Clone(ids.added), k, znode.ID{Scheme: "super"})
			if alt, c := raftjournal.FixupACL(acl, variant); c != raftjournal.CodeOK || !slices.Equal(alt, out) {
				certain = false
				break
			}
		}
	}
	if certain {
		return out, nil
	}
	if code != raftjournal.CodeOK {
		out = nil // ZooKeeper expanded "auth" into identities the tap cannot name
	}
	return append(out, aclReadBack), nil
}

// digestID is the digest identity of "user:password" (addauth digest).
func digestID(auth []byte) znode.ID {
	return znode.ID{Scheme: "digest", ID: znode.DigestID(string(auth))}
}

// javaHostAddress formats an address as java.net.InetAddress.getHostAddress
// does, which is the ip identity ZooKeeper gives a connection: dotted quad
// for IPv4 (IPv4-mapped IPv6 included), eight groups of unpadded hex without
// "::" compression for IPv6, and "%zone" for a scoped one.
func javaHostAddress(ip net.IP, zone string) string {
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	if len(ip) != net.IPv6len {
		return ip.String()
	}
	var b strings.Builder
	for i := range 8 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.FormatUint(uint64(ip[2*i])<<8|uint64(ip[2*i+1]), 16))
	}
	if zone != "" {
		b.WriteString("%" + zone)
	}
	return b.String()
}

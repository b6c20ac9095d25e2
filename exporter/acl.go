package exporter

import (
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// Masked ACLs. getACL needs READ or ADMIN on the node; a caller without ADMIN
// gets every digest identity masked: ZooKeeper (server/FinalRequestProcessor,
// case getACL, since ZOOKEEPER-1392) replaces everything from the id's first
// ':' with ":x", so digest:user:<base64 sha1> reads back as digest:user:x. The
// other schemes come back as stored. A real digest id is "user:" and the
// 28-character base64 of a SHA-1, so one ending in ":x" is never real. Such a
// list is not the node's ACL: a walk that gets one lists the node
// (UnreadableError, Summary.ACLMasked) instead of passing it off as the ACL.

// maskedDigestSuffix is what ZooKeeper leaves of a digest id's hash.
const maskedDigestSuffix = ":x"

// IsMaskedACL reports whether acl holds a digest identity as ZooKeeper shows
// it to a caller without ADMIN on the node (digest:user:x): the list is not
// the node's real ACL.
func IsMaskedACL(acl []znode.ACL) bool {
	for _, a := range acl {
		if isMaskedDigest(a.ID) {
			return true
		}
	}
	return false
}

func isMaskedDigest(id znode.ID) bool {
	return id.Scheme == "digest" && strings.IndexByte(id.ID, ':') == len(id.ID)-len(maskedDigestSuffix) &&
		strings.HasSuffix(id.ID, maskedDigestSuffix)
}

// MaskACL returns acl as ZooKeeper shows it to a caller without ADMIN on the
// node: each digest id cut at its first ':' and ended with ":x". Masking a
// masked list changes nothing. Two lists that differ once masked differ in
// truth; two that agree once masked may still differ in the hashes masking
// hides. acl is not modified.
func MaskACL(acl []znode.ACL) []znode.ACL {
	if acl == nil {
		return nil
	}
	out := make([]znode.ACL, len(acl))
	for i, a := range acl {
		if a.ID.Scheme == "digest" {
			if j := strings.IndexByte(a.ID.ID, ':'); j >= 0 {
				a.ID.ID = a.ID.ID[:j] + maskedDigestSuffix
			}
		}
		out[i] = a
	}
	return out
}

package raftjournal

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// aclID names an interned ACL list; 0 means "no ACL known" (a pending record
// that has seen no create, import or setACL yet).
type aclID uint32

// aclCache interns ACL lists as ZooKeeper's ReferenceCountedACLCache does: nodes
// hold a 4-byte id, and the thousands of nodes sharing world:anyone share one
// list. Lists are immutable once interned.
//
// Releases are deferred (releaseLater) until the entry that made them commits, so
// that rolling back a failed multi can re-acquire an id that would otherwise have
// been freed and reused in between. Freed ids are recycled only by acquire.
type aclCache struct {
	lists   []aclEntry // index is the id; entry 0 is unused
	byKey   map[string]aclID
	free    []aclID
	pending []aclID // releases waiting for commit
}

type aclEntry struct {
	acl  []znode.ACL
	key  string
	refs int64
}

func newACLCache() *aclCache {
	return &aclCache{lists: make([]aclEntry, 1), byKey: make(map[string]aclID)}
}

// acquireKey returns the id of the list whose canonical encoding is key, taking a
// reference. The list is decoded only the first time it is seen.
func (c *aclCache) acquireKey(key []byte) aclID {
	if id, ok := c.byKey[string(key)]; ok {
		c.lists[id].refs++
		return id
	}
	k := string(key)
	return c.insert(k, decodeACLKey(k))
}

// acquire interns acl and takes a reference.
func (c *aclCache) acquire(acl []znode.ACL) aclID {
	key := appendACL(nil, acl)
	if id, ok := c.byKey[string(key)]; ok {
		c.lists[id].refs++
		return id
	}
	cp := make([]znode.ACL, len(acl))
	copy(cp, acl)
	return c.insert(string(key), cp)
}

func (c *aclCache) insert(key string, acl []znode.ACL) aclID {
	var id aclID
	if n := len(c.free); n > 0 {
		id = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		id = aclID(len(c.lists))
		c.lists = append(c.lists, aclEntry{})
	}
	c.lists[id] = aclEntry{acl: acl, key: key, refs: 1}
	c.byKey[key] = id
	return id
}

// ref takes another reference on a live id.
func (c *aclCache) ref(id aclID) {
	if id != 0 {
		c.lists[id].refs++
	}
}

// release drops a reference now.
func (c *aclCache) release(id aclID) {
	if id == 0 {
		return
	}
	e := &c.lists[id]
	if e.refs--; e.refs == 0 {
		delete(c.byKey, e.key)
		*e = aclEntry{}
		c.free = append(c.free, id)
	}
}

// releaseLater drops a reference when the current entry commits.
func (c *aclCache) releaseLater(id aclID) {
	if id != 0 {
		c.pending = append(c.pending, id)
	}
}

func (c *aclCache) commit() {
	for _, id := range c.pending {
		c.release(id)
	}
	c.pending = c.pending[:0]
}

// get returns the list for id; callers must not modify it.
func (c *aclCache) get(id aclID) []znode.ACL {
	if id == 0 {
		return nil
	}
	return c.lists[id].acl
}

// FixupACL is fixupACL for the dual-write proxy, which must predict the ACL
// ZooKeeper stores for a create or setACL it relays. auth is the connection's
// identities in the order they were added (see AuthOrder).
func FixupACL(acl []znode.ACL, auth []znode.ID) ([]znode.ACL, Code) { return fixupACL(acl, auth) }

// fixupACL checks and expands a native create's or setACL's ACL list the way
// PrepRequestProcessor.fixupACL (ZooKeeper 3.8) does:
//
//   - Exact duplicates in the request are dropped first (removeDuplicates),
//     keeping the first; an empty list is InvalidACL.
//   - world:anyone is kept; any other world id is InvalidACL.
//   - An "auth" entry becomes one entry with its perms per authenticated
//     identity of the connection, in the order the connection's identity set
//     iterates them (AuthOrder of auth, given in the order the identities were
//     added), skipping those whose scheme does not authenticate (ip, and
//     super, which has no provider). None: InvalidACL. Expansion happens after
//     the de-duplication, so its entries may repeat each other or an explicit
//     entry, and ZooKeeper stores them so.
//   - Any other id must be valid for its scheme's provider.
//
// Perms are not checked: ZooKeeper stores any int32.
func fixupACL(acl []znode.ACL, auth []znode.ID) ([]znode.ACL, Code) {
	uniq := make([]znode.ACL, 0, len(acl))
	for _, a := range acl {
		if !slices.Contains(uniq, a) {
			uniq = append(uniq, a)
		}
	}
	if len(uniq) == 0 {
		return nil, CodeInvalidACL
	}
	out := make([]znode.ACL, 0, len(uniq))
	var ordered []znode.ID
	for _, a := range uniq {
		switch {
		case a.ID.Scheme == "world" && a.ID.ID == "anyone":
		case a.ID.Scheme == "auth":
			if ordered == nil {
				ordered = AuthOrder(auth)
			}
			added := false
			for _, id := range ordered {
				if authenticates(id.Scheme) {
					out = append(out, znode.ACL{Perms: a.Perms, ID: id})
					added = true
				}
			}
			if !added {
				return nil, CodeInvalidACL
			}
			continue
		case !validACLID(a.ID):
			return nil, CodeInvalidACL
		}
		out = append(out, a)
	}
	return out, CodeOK
}

// authenticates reports whether identities of a scheme may stand for "auth"
// (AuthenticationProvider.isAuthenticated: digest, x509 and sasl do; ip does
// not, and super has no provider, so fixupACL skips it).
func authenticates(scheme string) bool {
	switch scheme {
	case "digest", "x509", "sasl":
		return true
	}
	return false
}

// validACLID applies each scheme provider's isValid.
func validACLID(id znode.ID) bool {
	switch id.Scheme {
	case "world":
		return id.ID == "anyone"
	case "digest":
		// user:base64(sha1(user:password)); DigestAuthenticationProvider.isValid
		// splits on ':' and wants exactly two parts (Java's split drops
		// trailing empty parts: "a:b:" has two, "a:" one).
		parts := strings.Split(id.ID, ":")
		for len(parts) > 0 && parts[len(parts)-1] == "" {
			parts = parts[:len(parts)-1]
		}
		return len(parts) == 2
	case "ip":
		return validIPACL(id.ID)
	case "x509", "sasl":
		return id.ID != ""
	}
	return false
}

// validIPACL accepts an address or address/bits, as IPAuthenticationProvider does.
func validIPACL(s string) bool {
	addr, bits, hasBits := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	if !hasBits {
		return true
	}
	p, err := netip.ParsePrefix(a.String() + "/" + bits)
	return err == nil && p.Bits() >= 0
}

package datadir

import (
	"fmt"
	"slices"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// aclCache is ZooKeeper's ReferenceCountedACLCache, kept the way the server
// keeps it, indices included: a node refers to its ACL list by an index into
// this cache, and a fuzzy snapshot can hold a node whose index the cache it
// serialized first does not have yet (the list was added while the snapshot
// was being written). ZooKeeper's own restart resolves such a node because
// replaying the txn that created the list assigns it the same index again:
// indices are handed out one after another from the largest one loaded.
// Replaying the same way resolves it here too.
//
//   - load: the snapshot's entries (later duplicates of a list win the
//     list → index map, as in a Java HashMap), each node adding a reference
//     to its index (an index not in the cache is ignored), then the entries
//     no node references dropped (purgeUnused);
//   - convert (create, setACL): the list's index if the cache has it, else
//     the next index; either way one more reference;
//   - release (delete, setACL's old list): one reference less, the entry
//     dropped at zero.
//
// Index −1 is world:anyone with every permission (OPEN_ACL_UNSAFE), never in
// the cache.
type aclCache struct {
	lists map[int64][]znode.ACL // longKeyMap
	index map[string]int64      // aclKeyMap, by aclKey
	refs  map[int64]int64       // referenceCounter
	next  int64                 // aclIndex: the last index handed out
}

// openACL is the index of world:anyone with every permission.
const openACL int64 = -1

func newACLCache() aclCache {
	// A new DataTree has already handed out index 1 (/zookeeper/config's
	// read-only ACL) when it loads a snapshot, and clearing the cache for the
	// snapshot does not reset the counter.
	return aclCache{lists: make(map[int64][]znode.ACL), index: make(map[string]int64), refs: make(map[int64]int64), next: 1}
}

func aclKey(acl []znode.ACL) string {
	var b strings.Builder
	for _, e := range acl {
		fmt.Fprintf(&b, "%d\x00%s\x00%s\x00", e.Perms, e.ID.Scheme, e.ID.ID)
	}
	return b.String()
}

// load adds a snapshot's entry.
func (c *aclCache) load(idx int64, acl []znode.ACL) {
	c.next = max(c.next, idx)
	c.lists[idx] = acl
	c.index[aclKey(acl)] = idx
	c.refs[idx] = 0
}

// addUsage counts one more reference to idx, if the cache has it.
func (c *aclCache) addUsage(idx int64) {
	if idx == openACL {
		return
	}
	if _, ok := c.lists[idx]; ok {
		c.refs[idx]++
	}
}

// purgeUnused drops the entries no node references (after a snapshot loads).
func (c *aclCache) purgeUnused() {
	for idx, n := range c.refs {
		if n <= 0 {
			c.drop(idx)
		}
	}
}

func (c *aclCache) drop(idx int64) {
	delete(c.index, aclKey(c.lists[idx]))
	delete(c.lists, idx)
	delete(c.refs, idx)
}

// convert is convertAcls: the list's index, added if new, with one more
// reference.
func (c *aclCache) convert(acl []znode.ACL) int64 {
	k := aclKey(acl)
	idx, ok := c.index[k]
	if !ok {
		c.next++
		idx = c.next
		c.lists[idx] = slices.Clone(acl)
		c.index[k] = idx
	}
	c.addUsage(idx)
	return idx
}

// release is removeUsage.
func (c *aclCache) release(idx int64) {
	if idx == openACL {
		return
	}
	if _, ok := c.lists[idx]; !ok {
		return
	}
	if c.refs[idx]--; c.refs[idx] <= 0 {
		c.drop(idx)
	}
}

// get returns the list at idx; false when the cache does not have it.
func (c *aclCache) get(idx int64) ([]znode.ACL, bool) {
	if idx == openACL {
		return openACLList, true
	}
	l, ok := c.lists[idx]
	return l, ok
}

var openACLList = znode.WorldAnyone()

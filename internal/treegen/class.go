package treegen

import (
	"fmt"
	"strings"
)

// Class is one of the "inputs that break tree copiers", numbered as in
// shared/reference/prior-art.md. Classes 1–10 are shapes of a tree and the
// adversarial profile builds every one of them; 11–17 are conditions of a
// live walk (concurrent changes, session expiry, connection loss, stale
// reads, throttling, jute.maxbuffer mismatch) that a tree cannot hold, so
// they belong to fault-injection tests, not to the generator.
type Class uint8

// The tree-shaped input classes.
const (
	ClassBinaryData    Class = 1  // binary data; nil data vs empty data
	ClassLargeData     Class = 2  // data near jute.maxbuffer
	ClassManyChildren  Class = 3  // one node with 100k+ children
	ClassDeepPath      Class = 4  // a path hundreds of levels deep
	ClassUnicodeNames  Class = 5  // CJK, Arabic, combining marks, edge code points
	ClassZookeeperName Class = 6  // a child named "zookeeper" below the root
	ClassSequential    Class = 7  // sequential children with gaps after deletes
	ClassEphemeral     Class = 8  // ephemerals held by live sessions
	ClassContainerTTL  Class = 9  // container and TTL nodes
	ClassACL           Class = 10 // digest, ip, world, auth ACLs; unreadable subtree
)

// TreeClasses lists the classes a generated tree can contain, in order.
func TreeClasses() []Class {
	return []Class{
		ClassBinaryData, ClassLargeData, ClassManyChildren, ClassDeepPath, ClassUnicodeNames,
		ClassZookeeperName, ClassSequential, ClassEphemeral, ClassContainerTTL, ClassACL,
	}
}

func (c Class) String() string {
	switch c {
	case ClassBinaryData:
		return "binary-data"
	case ClassLargeData:
		return "large-data"
	case ClassManyChildren:
		return "many-children"
	case ClassDeepPath:
		return "deep-path"
	case ClassUnicodeNames:
		return "unicode-names"
	case ClassZookeeperName:
		return "zookeeper-name"
	case ClassSequential:
		return "sequential"
	case ClassEphemeral:
		return "ephemeral"
	case ClassContainerTTL:
		return "container-ttl"
	case ClassACL:
		return "acl"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// ClassSet is a set of classes (bit c set for class c).
type ClassSet uint32

// Classes builds a set.
func Classes(cs ...Class) ClassSet {
	var s ClassSet
	for _, c := range cs {
		s |= 1 << c
	}
	return s
}

// Has reports whether c is in the set.
func (s ClassSet) Has(c Class) bool { return s&(1<<c) != 0 }

func (s ClassSet) String() string {
	var names []string
	for c := Class(1); c < 32; c++ {
		if s.Has(c) {
			names = append(names, c.String())
		}
	}
	return strings.Join(names, ",")
}

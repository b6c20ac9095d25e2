package exporter

import (
	"fmt"
	"path"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// EphemeralPolicy says what an export does with ephemeral nodes.
type EphemeralPolicy uint8

// The ephemeral policies.
const (
	// EphemeralsInclude records ephemerals with their owner's session id, which
	// the target does not have; the importer decides what becomes of them.
	EphemeralsInclude EphemeralPolicy = iota
	// EphemeralsSkip leaves ephemerals out (they are counted).
	EphemeralsSkip
)

func (p EphemeralPolicy) String() string {
	switch p {
	case EphemeralsInclude:
		return "include"
	case EphemeralsSkip:
		return "skip"
	}
	return fmt.Sprintf("EphemeralPolicy(%d)", uint8(p))
}

// ParseEphemeralPolicy parses "include" or "skip".
func ParseEphemeralPolicy(s string) (EphemeralPolicy, error) {
	switch s {
	case "include":
		return EphemeralsInclude, nil
	case "skip":
		return EphemeralsSkip, nil
	}
	return 0, fmt.Errorf("exporter: ephemerals %q: want include or skip", s)
}

// ValidateExclude checks an exclusion pattern: an absolute path glob in the
// syntax of path.Match, where * and ? do not cross a slash. A node matching any
// pattern is left out with its whole subtree.
func ValidateExclude(pattern string) error {
	if !strings.HasPrefix(pattern, "/") {
		return fmt.Errorf("exporter: exclude %q: pattern must start with /", pattern)
	}
	if _, err := path.Match(pattern, "/"); err != nil {
		return fmt.Errorf("exporter: exclude %q: %w", pattern, err)
	}
	return nil
}

// excluder decides which children a walk leaves out.
type excluder struct {
	root     string
	patterns []string
}

// excluded reports whether the node at p (a child found during the walk) is left
// out with its subtree. ZooKeeper's own /zookeeper is left out when the walk
// starts at the root; a node named "zookeeper" anywhere else is ordinary data,
// and a walk asked to start inside /zookeeper reads it.
func (e *excluder) excluded(p string) bool {
	if e.root == "/" && p == "/zookeeper" {
		return true
	}
	for _, pat := range e.patterns {
		if ok, _ := path.Match(pat, p); ok {
			return true
		}
	}
	return false
}

// mayExclude reports whether any child of parent could be excluded, which spares
// building every child's path when nothing is.
func (e *excluder) mayExclude(parent string) bool {
	return len(e.patterns) > 0 || (e.root == "/" && parent == "/")
}

// filters describes the exclusions for the snapshot header.
func (e *excluder) filters(policy EphemeralPolicy) znode.SnapshotFilters {
	var excl []string
	if e.root == "/" {
		excl = append(excl, "/zookeeper")
	}
	excl = append(excl, e.patterns...)
	if excl == nil {
		excl = []string{}
	}
	return znode.SnapshotFilters{Path: e.root, Exclude: excl, Ephemerals: policy.String()}
}

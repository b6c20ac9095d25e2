package znode

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidPath is returned (wrapped, with the path and the reason) for a path the
// ZooKeeper server would reject.
var ErrInvalidPath = errors.New("znode: invalid path")

// ValidatePath checks path with the ZooKeeper server's rules (PathUtils.validatePath).
// ZooKeeper works on UTF-16 code units, so every character outside the Basic
// Multilingual Plane (every emoji, for instance) is rejected, as its surrogate halves
// fall in the forbidden U+D800–U+F8FF range. Strings that are not valid UTF-8 are
// rejected too: the server would decode them to U+FFFD and store another name.
func ValidatePath(path string) error {
	if err := validatePath(path); err != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidPath, path, err)
	}
	return nil
}

// ValidateSequentialPrefix checks the path given to a sequential create, which may
// end in "/" because the server appends the counter before validating.
func ValidateSequentialPrefix(path string) error { return ValidatePath(path + "1") }

func validatePath(path string) string {
	switch {
	case path == "":
		return "path length must be > 0"
	case path[0] != '/':
		return "path must start with / character"
	case path == "/":
		return ""
	case path[len(path)-1] == '/':
		return "path must not end with / character"
	case !utf8.ValidString(path):
		return "path is not valid UTF-8"
	}
	// No allocation on the way to "valid": export, import and the journal
	// validate every path they read.
	start := 1 // first byte of the current component
	for i := 1; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' {
			switch path[start:i] {
			case "":
				return fmt.Sprintf("empty node name specified @%d", start)
			case ".", "..":
				return fmt.Sprintf("relative paths not allowed @%d", start)
			}
			start = i + 1
		}
	}
	for i, r := range path {
		if r == 0 {
			return fmt.Sprintf("null character not allowed @%d", i)
		}
		if forbiddenRune(r) {
			return fmt.Sprintf("invalid character @%d", i)
		}
	}
	return ""
}

func forbiddenRune(r rune) bool {
	return (r > 0 && r <= 0x1f) ||
		(r >= 0x7f && r <= 0x9f) ||
		(r >= 0xd800 && r <= 0xf8ff) ||
		(r >= 0xfff0 && r <= 0xffff) ||
		r > 0xffff
}

// Parent returns the parent of an absolute path; the root's parent is "".
func Parent(path string) string {
	if path == "/" || path == "" {
		return ""
	}
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

// Base returns the last component of a path ("" for the root).
func Base(path string) string {
	if path == "/" {
		return ""
	}
	return path[strings.LastIndexByte(path, '/')+1:]
}

// Join appends a child name to a parent path.
func Join(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// SequentialName is the name ZooKeeper gives a sequential child created under a
// parent whose persisted cversion is cversion: the prefix plus the counter as a
// signed, zero-padded 10-digit decimal (Java's "%010d", which Go's matches, also
// for the negative values after 2^31 creates).
func SequentialName(prefix string, cversion int32) string {
	return fmt.Sprintf("%s%010d", prefix, cversion)
}

// IsSystemPath reports whether path is ZooKeeper's own /zookeeper subtree (only at
// the root: a child named "zookeeper" elsewhere is ordinary data).
func IsSystemPath(path string) bool {
	return path == "/zookeeper" || strings.HasPrefix(path, "/zookeeper/")
}

// ComparePaths orders paths as a depth-first, pre-order walk that visits children
// in bytewise name order: a parent before its children, and a whole subtree
// before its next sibling ("/a", "/a/b", "/a-b"). It returns −1, 0 or +1. This is
// the canonical order of export files and of every sorted node stream that verify
// merges; plain string order differs ("/a-b" < "/a/b" because '-' < '/').
func ComparePaths(a, b string) int {
	// Bytewise order with '/' ranked below every other byte is exactly this order:
	// at the first difference, a path whose component ends there sorts first.
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		switch {
		case ca == '/':
			return -1
		case cb == '/':
			return 1
		case ca < cb:
			return -1
		default:
			return 1
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

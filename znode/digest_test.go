package znode

import (
	"hash/crc32"
	"testing"
	"testing/quick"
)

// The empty-tree vector from ZooKeeper: a fresh server's root and /zookeeper with
// zero stats and empty data (zookeeper-internals.md §3.4).
func TestEmptyTreeDigest(t *testing.T) {
	root := NodeDigest("/", []byte{}, Stat{})
	zk := NodeDigest("/zookeeper", []byte{}, Stat{})
	if root != 68323592 {
		t.Errorf("root digest = %d, want 68323592", root)
	}
	if zk != 1303661912 {
		t.Errorf("/zookeeper digest = %d, want 1303661912", zk)
	}
	var d Digest
	d.Add(root)
	d.Add(zk)
	d.Add(NodeDigest("/zookeeper/quota", nil, Stat{Czxid: 5}))
	if d != EmptyTreeDigest {
		t.Errorf("tree digest = %v, want %v", d, EmptyTreeDigest)
	}
}

func TestNodeDigest(t *testing.T) {
	st := Stat{Czxid: 1, Mzxid: 2, Ctime: 3, Mtime: 4, Version: 5, Cversion: 6, Aversion: 7, EphemeralOwner: 8, Pzxid: 9}
	tests := []struct {
		name string
		path string
		data []byte
		st   Stat
		want uint32
	}{
		{"system child excluded", "/zookeeper/config", []byte("x"), st, 0},
		{"system root included", "/zookeeper", nil, Stat{}, 1303661912},
		// Computed independently: the field order puts pzxid third.
		{"field order", "/a", []byte("d"), st, naiveDigest("/a", []byte("d"), st)},
		{"nil and empty data hash alike", "/a", nil, st, naiveDigest("/a", []byte{}, st)},
		{"root keyed empty", "/", nil, st, naiveDigest("", nil, st)},
		{"zookeeper below root counts", "/x/zookeeper/y", nil, st, naiveDigest("/x/zookeeper/y", nil, st)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NodeDigest(tc.path, tc.data, tc.st); got != tc.want {
				t.Errorf("NodeDigest(%q) = %d, want %d", tc.path, got, tc.want)
			}
		})
	}
}

// naiveDigest is a second, deliberately plain implementation of DigestCalculator.
func naiveDigest(path string, data []byte, s Stat) uint32 {
	var b []byte
	put64 := func(v int64) {
		for i := 7; i >= 0; i-- {
			b = append(b, byte(uint64(v)>>(8*i)))
		}
	}
	put32 := func(v int32) {
		for i := 3; i >= 0; i-- {
			b = append(b, byte(uint32(v)>>(8*i)))
		}
	}
	put64(s.Czxid)
	put64(s.Mzxid)
	put64(s.Pzxid)
	put64(s.Ctime)
	put64(s.Mtime)
	put32(s.Version)
	put32(s.Cversion)
	put32(s.Aversion)
	put64(s.EphemeralOwner)
	all := append(append([]byte(path), data...), b...)
	return crc32.ChecksumIEEE(all)
}

func TestNodeDigestMatchesNaive(t *testing.T) {
	f := func(name string, data []byte, s Stat) bool {
		p := "/" + name
		if len(name) >= 10 && name[:10] == "zookeeper/" {
			return true
		}
		key := p
		if key == "/" {
			key = ""
		}
		return NodeDigest(p, data, s) == naiveDigest(key, data, s)
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDigestAddRemoveWraps(t *testing.T) {
	var d Digest = 1<<64 - 1
	d.Add(2)
	if d != 1 {
		t.Fatalf("wrapping add: got %d", uint64(d))
	}
	d.Remove(3)
	if d != 1<<64-2 {
		t.Fatalf("wrapping remove: got %d", uint64(d))
	}
	if d.String() != "-2" {
		t.Fatalf("String() = %q, want signed decimal -2", d.String())
	}
	for _, s := range []string{"-2", "18446744073709551614"} {
		p, err := ParseDigest(s)
		if err != nil || p != d {
			t.Errorf("ParseDigest(%q) = %v, %v; want %v", s, p, err, d)
		}
	}
}

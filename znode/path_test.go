package znode

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/", true},
		{"/a", true},
		{"/a/b/c", true},
		{"/zookeeper", true},
		{"/a/zookeeper", true},
		{"/a/...", true},
		{"/a/.b", true},
		{"/a/b.", true},
		{"/配置/مفتاح/e\u0301", true}, // CJK, Arabic, a combining mark
		{"/\u00a0", true},           // just past the C1 range
		{"/\uf900", true},           // just past the private-use range
		{"/\uffef", true},
		{"", false},
		{"a", false},
		{"/a/", false},
		{"//a", false},
		{"/a//b", false},
		{"/a/.", false},
		{"/./a", false},
		{"/a/..", false},
		{"/../a", false},
		{"/a\x00b", false},
		{"/a\x01", false},
		{"/a\x1f", false},
		{"/a\x7f", false},
		{"/a\u009f", false},
		{"/a\ue000", false}, // private use
		{"/a\ufff0", false},
		{"/a\uffff", false},
		{"/😀", false}, // outside the BMP: a surrogate pair in Java
		{"/a\xff", false},
	}
	for _, tc := range tests {
		err := ValidatePath(tc.path)
		if tc.ok && err != nil {
			t.Errorf("ValidatePath(%q) = %v, want nil", tc.path, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidPath) {
			t.Errorf("ValidatePath(%q) = %v, want ErrInvalidPath", tc.path, err)
		}
	}
	if err := ValidateSequentialPrefix("/a/"); err != nil {
		t.Errorf("sequential prefix ending in /: %v", err)
	}
}

func TestPathHelpers(t *testing.T) {
	tests := []struct{ path, parent, base string }{
		{"/", "", ""},
		{"/a", "/", "a"},
		{"/a/b", "/a", "b"},
	}
	for _, tc := range tests {
		if got := Parent(tc.path); got != tc.parent {
			t.Errorf("Parent(%q) = %q, want %q", tc.path, got, tc.parent)
		}
		if got := Base(tc.path); got != tc.base {
			t.Errorf("Base(%q) = %q, want %q", tc.path, got, tc.base)
		}
		if tc.parent != "" && Join(tc.parent, tc.base) != tc.path {
			t.Errorf("Join(%q, %q) = %q", tc.parent, tc.base, Join(tc.parent, tc.base))
		}
	}
	if !IsSystemPath("/zookeeper/quota") || !IsSystemPath("/zookeeper") || IsSystemPath("/a/zookeeper") || IsSystemPath("/zookeeperx") {
		t.Error("IsSystemPath misclassifies")
	}
}

func TestSequentialName(t *testing.T) {
	tests := []struct {
		cversion int32
		want     string
	}{
		{0, "/q/n-0000000000"},
		{5, "/q/n-0000000005"},
		{2147483647, "/q/n-2147483647"},
		{-2147483648, "/q/n--2147483648"},
		{-1, "/q/n--000000001"}, // Java's %010d of a negative number
	}
	for _, tc := range tests {
		if got := SequentialName("/q/n-", tc.cversion); got != tc.want {
			t.Errorf("SequentialName(%d) = %q, want %q", tc.cversion, got, tc.want)
		}
	}
}

func TestComparePaths(t *testing.T) {
	sorted := []string{"/", "/a", "/a/b", "/a/b/c", "/a/c", "/a-b", "/a0", "/b", "/b/a", "/zookeeper", "/zookeeper/quota", "/é"}
	for i := range sorted {
		for j := range sorted {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := ComparePaths(sorted[i], sorted[j]); got != want {
				t.Errorf("ComparePaths(%q, %q) = %d, want %d", sorted[i], sorted[j], got, want)
			}
		}
	}
}

// TestComparePathsMatchesComponents checks the byte loop against a plain
// component-by-component comparison on random paths.
func TestComparePathsMatchesComponents(t *testing.T) {
	alphabet := []string{"a", "b", "-", ".", " ", "é", "a/b", "/"}
	rnd := rand.New(rand.NewPCG(1, 2))
	gen := func() string {
		p := ""
		for range 1 + rnd.IntN(3) {
			name := ""
			for range 1 + rnd.IntN(3) {
				name += alphabet[rnd.IntN(len(alphabet)-2)]
			}
			p += "/" + name
		}
		return p
	}
	byComponents := func(a, b string) int {
		return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
	}
	for range 20000 {
		a, b := gen(), gen()
		if got, want := ComparePaths(a, b), byComponents(a, b); got != want {
			t.Fatalf("ComparePaths(%q, %q) = %d, component order says %d", a, b, got, want)
		}
	}
}

func TestValidatePathDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if ValidatePath("/brokers/topics/配置/partitions/12/state") != nil {
			t.Fatal("valid path rejected")
		}
	})
	if allocs != 0 {
		t.Errorf("ValidatePath allocates %v times per valid path", allocs)
	}
}

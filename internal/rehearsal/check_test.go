package rehearsal

import (
	"testing"
	"time"
)

// TestCheckLog: the holder log of a recipe is judged in the order the
// contenders wrote it: two holders at once, or a release by someone else,
// is a problem; acquisitions are counted on each side of the switch.
func TestCheckLog(t *testing.T) {
	sw := time.Unix(100, 0)
	for _, tc := range []struct {
		name          string
		log           [][3]any
		before, after int
		problems      int
	}{
		{"one at a time", [][3]any{{99.0, "a", "acq"}, {99.5, "a", "rel"}, {100.5, "b", "acq"}, {101.0, "b", "rel"}}, 1, 1, 0},
		{"two holders", [][3]any{{99.0, "a", "acq"}, {99.5, "b", "acq"}, {99.6, "b", "rel"}}, 2, 0, 1},
		{"release by another", [][3]any{{99.0, "a", "acq"}, {100.5, "b", "rel"}}, 1, 0, 1},
		{"other events ignored", [][3]any{{99.0, "a", "elected"}, {99.1, "a", "acq"}}, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, a, p := checkLog(tc.log, "acq", "rel", sw)
			if b != tc.before || a != tc.after || len(p) != tc.problems {
				t.Fatalf("before %d after %d problems %v; want %d, %d, %d problems", b, a, p, tc.before, tc.after, tc.problems)
			}
		})
	}
}

func TestWriteID(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   int64
		ok   bool
	}{
		{"k00000042-0000000017", 42, true},
		{"k1-", 1, true},
		{"x00000042-0000000017", 0, false},
		{"k00000042", 0, false},
		{"kabc-1", 0, false},
	} {
		id, ok := writeID(tc.name)
		if id != tc.id || ok != tc.ok {
			t.Errorf("writeID(%q) = %d, %v; want %d, %v", tc.name, id, ok, tc.id, tc.ok)
		}
	}
}

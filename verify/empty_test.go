package verify

import (
	"errors"
	"strings"
	"testing"
)

// TestNothingComparedIsNotEqual (issue 11 item 4): a comparison that
// compares no node is not equality. A path that exists on neither side (a
// --path typo, a chroot typo) is an error saying so, and so is a scope whose
// every node is excluded (--exclude '/*'); each used to report EQUAL over 0
// nodes. Both sides are real: the live ensemble and an export of it.
func TestNothingComparedIsNotEqual(t *testing.T) {
	t.Parallel()
	root := "/empty-cmp"
	seed(t, "kafka", root, 200)
	snap := export(t, ensemble.Hosts(), root, nil)
	cases := []struct {
		name    string
		chroot  string // the zk:// side's chroot
		path    string
		exclude []string
		digest  bool
		want    string
	}{
		{"path typo", root, root + "/typo", nil, false, "exists on neither side"},
		{"path typo, digest-only", root, root + "/typo", nil, true, "exists on neither side"},
		{"chroot typo", root + "x", "", nil, false, "exists on neither side"},
		{"everything excluded", root, "", []string{root}, false, "every node"},
		{"everything excluded, digest-only", root, "", []string{root}, true, "every node"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := zkSource(t, ensemble.Hosts(), tc.chroot, nil)
			tgt := snapSource(t, snap)
			defer tgt.Close()
			cfg := DefaultConfig()
			cfg.Path, cfg.Exclude, cfg.DigestOnly = tc.path, tc.exclude, tc.digest
			if tc.chroot != root {
				// The snapshot holds root; a zk side rooted elsewhere has
				// nothing in common with it, so compare it with itself.
				tgt2 := zkSource(t, ensemble.Hosts(), tc.chroot, nil)
				r, err := Compare(t.Context(), src, tgt2, cfg)
				checkNothing(t, r, err, tc.want)
				return
			}
			r, err := Compare(t.Context(), src, tgt, cfg)
			checkNothing(t, r, err, tc.want)
		})
	}
}

func checkNothing(t *testing.T, r *Report, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error: verdict %v over %d nodes compared", r.Verdict, r.Compared)
	}
	if !errors.Is(err, ErrNothingCompared) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q: want one matching ErrNothingCompared that says %q", err, want)
	}
}

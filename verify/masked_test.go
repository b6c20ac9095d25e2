package verify

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// maskedFixture is the ACL of TestMaskedACL*: everything for a digest
// identity, READ for the world. Without the identity's ADMIN, ZooKeeper shows
// it masked.
func maskedFixture() (realACL, maskedACL []znode.ACL) {
	realACL = exporter.ACLFromZK(append(zk.DigestACL(zk.PermAll, "workload", "workload-secret"), zk.WorldACL(zk.PermRead)...))
	return realACL, exporter.MaskACL(realACL)
}

// maskedTree is a root and one node /n with the given ACL.
func maskedTree(acl []znode.ACL) []*znode.Node {
	st := znode.Stat{Czxid: 2, Mzxid: 2, Pzxid: 2, Ctime: 1000, Mtime: 1000}
	return []*znode.Node{
		{Path: "/", Data: []byte{}, ACL: znode.WorldAnyone(), Stat: znode.Stat{Pzxid: 2, Cversion: 1}, NumChildren: 1},
		{Path: "/n", Data: []byte("x"), ACL: acl, Stat: st},
	}
}

func maskedSide(uri string, live bool, acl []znode.ACL) Source {
	return MemorySource(Info{URI: uri, Live: live, RawOwners: true, ExtendedTypes: true}, maskedTree(acl), nil)
}

// TestMaskedACL: a live side's masked ACL is neither an ACL mismatch nor
// equal; a static side's is compared as the value it holds.
func TestMaskedACL(t *testing.T) {
	realACL, maskedACL := maskedFixture()
	otherUser := exporter.ACLFromZK(append(zk.DigestACL(zk.PermAll, "other", "other-secret"), zk.WorldACL(zk.PermRead)...))
	morePerms := []znode.ACL{realACL[0], {Perms: znode.PermAll, ID: realACL[1].ID}}
	allowMasked := []AllowRule{{Pattern: "/**", What: []Allowed{{Kind: KindMismatch, Field: FieldACLMasked}}, Origin: "flag"}}
	const liveNote, staticNote = "cannot read the real ACL of 1 node on the ", "holds 1 node whose ACL has a masked digest identity"
	for _, tc := range []struct {
		name             string
		srcLive, tgtLive bool
		src, tgt         []znode.ACL
		allow            []AllowRule
		field            Field // FieldNone: equal
		allowed          int64
		notes            []string
	}{
		{name: "live masked vs the real ACL", srcLive: true, src: maskedACL, tgt: realACL,
			field: FieldACLMasked, notes: []string{liveNote + "source (zk://src)"}},
		{name: "live masked target", tgtLive: true, src: realACL, tgt: maskedACL,
			field: FieldACLMasked, notes: []string{liveNote + "target (zk://tgt)"}},
		{name: "both live masked", srcLive: true, tgtLive: true, src: maskedACL, tgt: maskedACL,
			field: FieldACLMasked, notes: []string{liveNote + "source", liveNote + "target"}},
		{name: "live masked vs different perms", srcLive: true, src: maskedACL, tgt: morePerms,
			field: FieldACL, notes: []string{liveNote + "source"}},
		{name: "live masked vs another identity", srcLive: true, src: maskedACL, tgt: otherUser,
			field: FieldACL, notes: []string{liveNote + "source"}},
		{name: "live masked, allowed", srcLive: true, src: maskedACL, tgt: realACL, allow: allowMasked,
			allowed: 1, notes: []string{liveNote + "source"}},
		{name: "static masked vs the real ACL", src: maskedACL, tgt: realACL,
			field: FieldACL, notes: []string{"the source " + staticNote}},
		{name: "static masked on both sides", src: maskedACL, tgt: maskedACL,
			notes: []string{"the source " + staticNote, "the target " + staticNote}},
		{name: "live real ACL", srcLive: true, src: realACL, tgt: realACL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Allow = tc.allow
			r, err := Compare(t.Context(), maskedSide("zk://src", tc.srcLive, tc.src), maskedSide("zk://tgt", tc.tgtLive, tc.tgt), cfg)
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			if err := WriteText(&text, r); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.field == FieldNone:
				if !r.Equal() || r.Counts.Allowed != tc.allowed {
					t.Fatalf("want equal with %d allowed:\n%s", tc.allowed, text.String())
				}
			case !r.Equal() && r.Counts.Differences == 1:
				if d := r.Differences[0]; d.Path != "/n" || d.Kind != KindMismatch || d.Field != tc.field {
					t.Errorf("difference %v, want %v at /n", d, tc.field)
				}
			default:
				t.Fatalf("want one %v difference:\n%s", tc.field, text.String())
			}
			notes := strings.Join(r.Notes, "\n")
			for _, want := range tc.notes {
				if !strings.Contains(notes, want) {
					t.Errorf("notes %q do not say %q", r.Notes, want)
				}
			}
			if masks := strings.Count(notes, "masked"); masks != len(tc.notes) {
				t.Errorf("%d notes about masked ACLs, want %d: %q", masks, len(tc.notes), r.Notes)
			}
		})
	}
}

// rereadSource is a live MemorySource whose re-reads return now.
type rereadSource struct {
	Source
	now *znode.Node
}

func (s rereadSource) Reread(context.Context, string) (*znode.Node, error) { return s.now, nil }

// TestMaskedACLRecheck: a node held for re-checking (the live side was behind)
// and re-read with its ACL masked is still not equal.
func TestMaskedACLRecheck(t *testing.T) {
	realACL, maskedACL := maskedFixture()
	target := maskedTree(realACL)
	behind := maskedTree(maskedACL)
	behind[1].Stat.Mzxid, behind[1].Stat.Version = 1, 0 // a write the live side has not seen yet
	target[1].Stat.Mzxid, target[1].Stat.Version = 3, 1
	now := target[1].Clone()
	now.ACL = maskedACL
	src := rereadSource{Source: MemorySource(Info{URI: "zk://src", Live: true, RawOwners: true}, behind, nil), now: now}
	r, err := Compare(t.Context(), src, MemorySource(Info{URI: "snap://tgt", RawOwners: true}, target, nil), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.Rechecked != 1 || r.Counts.Differences != 1 || r.Differences[0].Field != FieldACLMasked || r.Differences[0].Rechecked == 0 {
		t.Fatalf("rechecked %d, differences %v", r.Counts.Rechecked, r.Differences)
	}
}

// TestMaskedACLLive runs the comparison against the real ensemble: a node
// whose ACL grants world READ and ADMIN only to a digest identity.
func TestMaskedACLLive(t *testing.T) {
	auth := []zkclient.Auth{{Scheme: "digest", Cred: []byte("workload:workload-secret")}}
	conn, err := exporter.Connect(t.Context(), ensemble.Hosts(), exporter.ConnectOptions{Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	root := fmt.Sprintf("/masked-acl-%d", time.Now().UnixNano()) // new on every run, so -count works
	node := root + "/workload"
	acl := append(zk.DigestACL(zk.PermAll, "workload", "workload-secret"), zk.WorldACL(zk.PermRead)...)
	if _, err := conn.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(node, []byte("config"), 0, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(node+"/child", []byte("open"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	hosts := ensemble.Hosts()
	exact := export(t, hosts, root, auth)
	realACL, maskedACL := maskedFixture()

	requireMasked := func(t *testing.T, r *Report, sides ...string) {
		t.Helper()
		var text bytes.Buffer
		if err := WriteText(&text, r); err != nil {
			t.Fatal(err)
		}
		if r.Equal() || r.Counts.Differences != 1 || r.Counts.Fields[FieldACLMasked] != 1 || r.Counts.Fields[FieldACL] != 0 {
			t.Fatalf("want one acl-masked difference:\n%s", text.String())
		}
		if d := r.Differences[0]; d.Path != node || !znode.EqualACLs(d.Source.ACL, maskedACL) && !znode.EqualACLs(d.Target.ACL, maskedACL) {
			t.Errorf("difference %v", d)
		}
		for _, side := range sides {
			if !strings.Contains(text.String(), "cannot read the real ACL of 1 node on the "+side) || !strings.Contains(text.String(), "pass --auth") {
				t.Errorf("report does not explain the %s's masked ACL:\n%s", side, text.String())
			}
		}
		if !strings.Contains(text.String(), "ACL masked (no ADMIN): 1") {
			t.Errorf("report does not name the difference:\n%s", text.String())
		}
	}

	t.Run("without ADMIN against an exact export", func(t *testing.T) {
		requireMasked(t, mustCompare(t, zkSource(t, hosts, root, nil), snapSource(t, exact), testConfig()), "source")
	})
	t.Run("without ADMIN on both sides", func(t *testing.T) {
		requireMasked(t, mustCompare(t, zkSource(t, hosts, root, nil), zkSource(t, hosts, root, nil), testConfig()), "source", "target")
	})
	t.Run("with ADMIN", func(t *testing.T) {
		requireEqual(t, mustCompare(t, zkSource(t, hosts, root, auth), snapSource(t, exact), testConfig()))
	})
	t.Run("allowed", func(t *testing.T) {
		cfg := testConfig()
		rule, err := ParseAllowFlag(node + "=acl-masked")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Allow = []AllowRule{rule}
		r := mustCompare(t, zkSource(t, hosts, root, nil), snapSource(t, exact), cfg)
		if !r.Equal() || r.Counts.Allowed != 1 || len(r.Notes) == 0 {
			t.Errorf("verdict %v, %d allowed, notes %q", r.Verdict, r.Counts.Allowed, r.Notes)
		}
	})
	t.Run("partial export without ADMIN", func(t *testing.T) {
		cfg := exporter.DefaultConfig(hosts)
		cfg.Root, cfg.AllowPartial = root, true
		w, err := exporter.NewWalker(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		partial := filepath.Join(t.TempDir(), "partial.snap")
		if _, err := exporter.ExportFile(t.Context(), w, exporter.FileOptions{Path: partial}); err != nil {
			t.Fatal(err)
		}
		// The file holds the masked ACL: against the real one, an ACL mismatch.
		r := mustCompare(t, zkSource(t, hosts, root, auth), snapSource(t, partial), testConfig())
		if r.Equal() || r.Counts.Differences != 1 || r.Counts.Fields[FieldACL] != 1 ||
			!znode.EqualACLs(r.Differences[0].Source.ACL, realACL) || !znode.EqualACLs(r.Differences[0].Target.ACL, maskedACL) {
			t.Fatalf("differences %v", r.Differences)
		}
		if notes := strings.Join(r.Notes, "\n"); !strings.Contains(notes, "the target holds 1 node whose ACL has a masked digest identity") {
			t.Errorf("notes %q", r.Notes)
		}
	})
}

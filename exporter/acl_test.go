package exporter

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

func TestIsMaskedACL(t *testing.T) {
	realID := zk.DigestACL(zk.PermAll, "workload", "workload-secret")[0].ID
	world := znode.ACL{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}}
	digest := func(id string) znode.ACL {
		return znode.ACL{Perms: znode.PermAll, ID: znode.ID{Scheme: "digest", ID: id}}
	}
	for _, tc := range []struct {
		name   string
		acl    []znode.ACL
		masked bool
	}{
		{"nil", nil, false},
		{"world", []znode.ACL{world}, false},
		{"real digest", []znode.ACL{digest(realID), world}, false},
		{"masked digest", []znode.ACL{digest("workload:x"), world}, true},
		{"masked digest after world", []znode.ACL{world, digest("workload:x")}, true},
		{"masked digest, empty user", []znode.ACL{digest(":x")}, true},
		{"digest without a colon", []znode.ACL{digest("workload")}, false},
		{"hash ending in x", []znode.ACL{digest("u:abcx")}, false},
		{"two colons", []znode.ACL{digest("a:b:x")}, false},
		{"another scheme", []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "10.0.0.1:x"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsMaskedACL(tc.acl); got != tc.masked {
				t.Errorf("IsMaskedACL(%v) = %v, want %v", tc.acl, got, tc.masked)
			}
		})
	}

	// MaskACL is what ZooKeeper shows a caller without ADMIN.
	acl := []znode.ACL{digest(realID), world, digest("workload")}
	got := MaskACL(acl)
	want := []znode.ACL{digest("workload:x"), world, digest("workload")}
	if !znode.EqualACLs(got, want) {
		t.Errorf("MaskACL = %v, want %v", got, want)
	}
	if acl[0].ID.ID != realID {
		t.Errorf("MaskACL modified its argument: %v", acl)
	}
	if again := MaskACL(got); !znode.EqualACLs(again, got) {
		t.Errorf("masking twice: %v", again)
	}
	if !IsMaskedACL(got) || MaskACL(nil) != nil {
		t.Errorf("IsMaskedACL(MaskACL) false, or MaskACL(nil) not nil")
	}
}

func TestUnreadableErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       UnreadableError
		want      string
		aclMasked bool
	}{
		{"noauth", UnreadableError{Count: 2, Paths: []string{"/a", "/b"}},
			"exporter: nodes unreadable with the given credentials: 2 node(s) answered NoAuth, their subtrees were not read: /a, /b", false},
		{"noauth, more than listed", UnreadableError{Count: 7, Paths: []string{"/1", "/2", "/3", "/4", "/5", "/6"}},
			"exporter: nodes unreadable with the given credentials: 7 node(s) answered NoAuth, their subtrees were not read: /1, /2, /3, /4, /5 and 2 more", false},
		{"one masked", UnreadableError{Count: 1, Paths: []string{"/app/x"}, ACLMasked: 1, ACLMaskedPaths: []string{"/app/x"}},
			"exporter: nodes unreadable with the given credentials: /app/x: ACL masked: the credentials lack ADMIN on the node; add --auth with an identity that has it, or super", true},
		{"masked and noauth", UnreadableError{Count: 3, Paths: []string{"/a", "/b", "/c"}, ACLMasked: 2, ACLMaskedPaths: []string{"/a", "/c"}},
			"exporter: nodes unreadable with the given credentials: 1 node(s) answered NoAuth, their subtrees were not read: /b; " +
				"2 node(s) with their ACL masked (/a, /c): the credentials lack ADMIN on them; add --auth with an identity that has it, or super", true},
		{"masked, capped list", UnreadableError{Count: 3, Paths: []string{"/a"}, ACLMasked: 3, ACLMaskedPaths: []string{"/a"}},
			"exporter: nodes unreadable with the given credentials: 3 node(s) with their ACL masked (/a and 2 more): the credentials lack ADMIN on them; add --auth with an identity that has it, or super", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := error(&tc.err)
			if got := err.Error(); got != tc.want {
				t.Errorf("message\n got  %q\n want %q", got, tc.want)
			}
			if !errors.Is(err, ErrUnreadable) || errors.Is(err, ErrACLMasked) != tc.aclMasked {
				t.Errorf("errors.Is: unreadable %v, acl masked %v", errors.Is(err, ErrUnreadable), errors.Is(err, ErrACLMasked))
			}
		})
	}
}

// TestMaskedACL exports a node whose ACL grants world READ and ADMIN only to a
// digest identity. ZooKeeper answers getACL without that identity with the
// digest masked (digest:workload:x): the export fails naming the node, with
// AllowPartial it succeeds listing the node and saying partial, and with the
// identity it records the exact ACL.
func TestMaskedACL(t *testing.T) {
	t.Parallel()
	root := rootFor(t)
	c := dialZK(t, ensemble.Hosts(), "workload:workload-secret")
	acl := append(zk.DigestACL(zk.PermAll, "workload", "workload-secret"), zk.WorldACL(zk.PermRead)...)
	node := root + "/masked"
	mustCreate(t, c, root, nil, 0, nil)
	mustCreate(t, c, node, []byte("data"), 0, acl)
	mustCreate(t, c, node+"/child", []byte("open"), 0, nil)
	mustCreate(t, c, root+"/open", nil, 0, nil)
	realACL := ACLFromZK(acl)
	maskedACL := MaskACL(realACL)

	// The client API shows the masked list to a caller without ADMIN, and
	// SequentialWalk passes it on as it is.
	anon := dialZK(t, ensemble.Hosts())
	shown := sequential(t, anon, node)
	if len(shown) != 2 || !znode.EqualACLs(shown[0].ACL, maskedACL) || !IsMaskedACL(shown[0].ACL) {
		t.Fatalf("getACL without ADMIN shows %v, want %v", shown[0].ACL, maskedACL)
	}

	export := func(t *testing.T, auth string, allowPartial bool) (string, *Summary, error) {
		cfg := DefaultConfig(ensemble.Hosts())
		cfg.Root, cfg.AllowPartial = root, allowPartial
		if auth != "" {
			cfg.Auth = []zkclient.Auth{{Scheme: "digest", Cred: []byte(auth)}}
		}
		w, err := NewWalker(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		path := filepath.Join(t.TempDir(), "x.snap")
		sum, err := ExportFile(t.Context(), w, FileOptions{Path: path})
		return path, sum, err
	}

	t.Run("without ADMIN fails", func(t *testing.T) {
		path, sum, err := export(t, "", false)
		var ue *UnreadableError
		if !errors.As(err, &ue) || !errors.Is(err, ErrUnreadable) || !errors.Is(err, ErrACLMasked) {
			t.Fatalf("err = %v, want an UnreadableError matching ErrACLMasked", err)
		}
		if ue.Count != 1 || ue.ACLMasked != 1 || !slices.Equal(ue.ACLMaskedPaths, []string{node}) {
			t.Errorf("error lists %+v, want %s masked", ue, node)
		}
		msg := err.Error()
		for _, want := range []string{node, "ACL masked", "ADMIN", "--auth"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q does not say %q", msg, want)
			}
		}
		if strings.Contains(msg, "\n") || strings.Contains(msg, "NoAuth") {
			t.Errorf("message %q: want one line about the masked ACL only", msg)
		}
		if sum == nil || sum.ACLMasked != 1 || sum.Unreadable != 1 {
			t.Errorf("summary %+v", sum)
		}
		if _, statErr := os.Stat(path); statErr == nil {
			t.Errorf("a failed export left %s", path)
		}
	})

	t.Run("without ADMIN, partial allowed", func(t *testing.T) {
		path, sum, err := export(t, "", true)
		if err != nil {
			t.Fatal(err)
		}
		if !sum.Partial || sum.ACLMasked != 1 || !slices.Equal(sum.ACLMaskedList, []string{node}) ||
			sum.Unreadable != 1 || !slices.Equal(sum.UnreadableList, []string{node}) || sum.Nodes != 4 {
			t.Errorf("summary %+v, want 4 nodes, %s listed as masked, partial", sum, node)
		}
		got, hdr, _ := readSnapshot(t, path)
		if hdr.Meta["allow_partial"] != "true" {
			t.Errorf("header meta %v", hdr.Meta)
		}
		var paths []string
		for _, n := range got {
			paths = append(paths, n.Path)
			if n.Path == node && !znode.EqualACLs(n.ACL, maskedACL) {
				t.Errorf("%s recorded with %v, want the masked %v", node, n.ACL, maskedACL)
			}
		}
		if want := []string{root, node, node + "/child", root + "/open"}; !slices.Equal(paths, want) {
			t.Errorf("exported %v, want %v (the subtree kept)", paths, want)
		}
	})

	t.Run("with ADMIN exact", func(t *testing.T) {
		path, sum, err := export(t, "workload:workload-secret", false)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Partial || sum.ACLMasked != 0 || sum.Unreadable != 0 || len(sum.ACLMaskedList) != 0 {
			t.Errorf("summary %+v", sum)
		}
		got, _, _ := readSnapshot(t, path)
		for _, n := range got {
			if n.Path == node && !znode.EqualACLs(n.ACL, realACL) {
				t.Errorf("%s recorded with %v, want %v", node, n.ACL, realACL)
			}
		}
	})
}

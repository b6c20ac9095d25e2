package importer

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// TestPreflightMaskedACL checks that nodes the credentials could not read
// (NoAuth) and nodes whose ACL ZooKeeper masked are blockers of their own
// kinds, each accepted only by its own name.
func TestPreflightMaskedACL(t *testing.T) {
	noAuth := []string{"/a/locked"}
	masked := []string{"/a/masked", "/b/masked"}
	tests := []struct {
		name         string
		noAuth       int64
		masked       int64
		accept       []string
		wantBlockers []string // kinds still blocking
		wantAccepted []string // kinds accepted (reported as warnings)
	}{
		{name: "none"},
		{name: "noauth", noAuth: 1, wantBlockers: []string{KindUnreadable}},
		{name: "masked", masked: 2, wantBlockers: []string{KindACLMasked}},
		{name: "both", noAuth: 1, masked: 2, wantBlockers: []string{KindUnreadable, KindACLMasked}},
		{name: "unreadable accepted leaves masked blocking", noAuth: 1, masked: 2, accept: []string{KindUnreadable},
			wantBlockers: []string{KindACLMasked}, wantAccepted: []string{KindUnreadable}},
		{name: "masked accepted leaves unreadable blocking", noAuth: 1, masked: 2, accept: []string{KindACLMasked},
			wantBlockers: []string{KindUnreadable}, wantAccepted: []string{KindACLMasked}},
		{name: "both accepted", noAuth: 1, masked: 2, accept: []string{KindUnreadable, KindACLMasked},
			wantAccepted: []string{KindUnreadable, KindACLMasked}},
		{name: "unreadable accepted, masked only", masked: 2, accept: []string{KindUnreadable},
			wantBlockers: []string{KindACLMasked}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPreflight(PreflightConfig{Accept: tc.accept})
			p.AddUnreadable(tc.noAuth, noAuth[:tc.noAuth])
			p.AddACLMasked(tc.masked, masked[:tc.masked])
			r := p.Report()
			var blockers, accepted []string
			for _, f := range r.Findings {
				if f.Kind != KindUnreadable && f.Kind != KindACLMasked {
					continue
				}
				switch {
				case f.Severity == Blocker:
					blockers = append(blockers, f.Kind)
				case f.Accepted && f.Severity == Warning:
					accepted = append(accepted, f.Kind)
				default:
					t.Errorf("%s: severity %v, accepted %v", f.Kind, f.Severity, f.Accepted)
				}
				want := tc.noAuth
				wantPaths := noAuth[:tc.noAuth]
				if f.Kind == KindACLMasked {
					want, wantPaths = tc.masked, masked[:tc.masked]
				}
				if f.Count != want || !slices.Equal(f.Paths, wantPaths) {
					t.Errorf("%s: count %d paths %v, want %d %v", f.Kind, f.Count, f.Paths, want, wantPaths)
				}
			}
			slices.Sort(blockers)
			slices.Sort(accepted)
			wantBlockers, wantAccepted := slices.Sorted(slices.Values(tc.wantBlockers)), slices.Sorted(slices.Values(tc.wantAccepted))
			if !slices.Equal(blockers, wantBlockers) || !slices.Equal(accepted, wantAccepted) {
				t.Errorf("blockers %v, accepted %v; want %v, %v", blockers, accepted, wantBlockers, wantAccepted)
			}
			if r.OK() != (len(tc.wantBlockers) == 0) || r.Blockers != len(tc.wantBlockers) {
				t.Errorf("report: %d blocker(s), OK %v; want %d", r.Blockers, r.OK(), len(tc.wantBlockers))
			}
		})
	}
}

// TestPreflightMaskedACLText checks what the report tells the operator about
// each kind: a NoAuth subtree is missing from the export, a masked ACL is in
// it and would lock clients out.
func TestPreflightMaskedACLText(t *testing.T) {
	p := NewPreflight(PreflightConfig{})
	p.AddUnreadable(1, []string{"/a/locked"})
	p.AddACLMasked(1, []string{"/a/masked"})
	var b bytes.Buffer
	if err := p.Report().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"BLOCKER  unreadable: 1 node(s) could not be read with the given credentials (NoAuth); their subtrees are not in the export",
		"BLOCKER  acl-masked: 1 node(s) came back with their ACL masked (digest:USER:x): the credentials lack ADMIN on them",
		"--accept acl-masked", "--accept unreadable", "only super",
		"paths: /a/locked", "paths: /a/masked",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !slices.Contains(AcceptableKinds(), KindACLMasked) {
		t.Errorf("AcceptableKinds() = %v: --accept cannot name %s", AcceptableKinds(), KindACLMasked)
	}
}

// TestPreflightRoute checks that the pre-flight says what each route keeps,
// and that the container/TTL warning is gone for the data-directory route.
func TestPreflightRoute(t *testing.T) {
	containerNode := func(p *Preflight, raw bool) {
		owner := int64(0) // what a client sees
		if raw {
			owner = znode.ContainerOwner
		}
		p.WriteNode(&znode.Node{Path: "/locks", Stat: znode.Stat{Czxid: 1, EphemeralOwner: owner}, ACL: znode.WorldAnyone()})
		p.WriteNode(&znode.Node{Path: "/locks/_c_1234-lock-0000000001", Stat: znode.Stat{Czxid: 2}, ACL: znode.WorldAnyone()})
	}
	tests := []struct {
		name      string
		raw       bool
		wantRoute string
		wantCT    Severity
		ctSummary string
	}{
		{"client API", false, "client API", Warning, "cannot be told from persistent ones"},
		{"data directory", true, "data directory", Info, "1 container and 0 TTL node(s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPreflight(PreflightConfig{RawOwners: tc.raw, ExtendedTypes: true})
			containerNode(p, tc.raw)
			r := p.Report()
			var route, ct *Finding
			for i := range r.Findings {
				switch r.Findings[i].Kind {
				case KindSourceRoute:
					route = &r.Findings[i]
				case KindContainerTTL:
					ct = &r.Findings[i]
				}
			}
			if route == nil || !strings.Contains(route.Summary, tc.wantRoute) || route.Severity != Info {
				t.Fatalf("route finding %+v", route)
			}
			if ct == nil || ct.Severity != tc.wantCT || !strings.Contains(ct.Summary, tc.ctSummary) {
				t.Fatalf("container/TTL finding %+v, want %v %q", ct, tc.wantCT, tc.ctSummary)
			}
			if tc.raw && r.Warnings != 0 {
				t.Errorf("data-directory route: %d warnings: %+v", r.Warnings, r.Findings)
			}
		})
	}
}

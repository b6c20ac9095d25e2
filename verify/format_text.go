package verify

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"
)

// Format is a report format.
type Format uint8

// The report formats.
const (
	FormatText  Format = iota + 1 // for people: verdict first
	FormatJSON                    // for programs: the schema in the package documentation
	FormatJUnit                   // for CI: one test case per top-level subtree
)

func (f Format) String() string {
	switch f {
	case FormatText:
		return "text"
	case FormatJSON:
		return "json"
	case FormatJUnit:
		return "junit"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// ParseFormat parses "text", "json" or "junit".
func ParseFormat(s string) (Format, error) {
	for _, f := range []Format{FormatText, FormatJSON, FormatJUnit} {
		if s == f.String() {
			return f, nil
		}
	}
	return 0, fmt.Errorf("verify: format %q: want text, json or junit", s)
}

// WriteReport writes r to w in the given format.
func WriteReport(w io.Writer, r *Report, f Format) error {
	switch f {
	case FormatText:
		return WriteText(w, r)
	case FormatJSON:
		return WriteJSON(w, r)
	case FormatJUnit:
		return WriteJUnit(w, r)
	}
	return fmt.Errorf("verify: unknown format %v", f)
}

// WriteText writes the report for people: the verdict on the first line, then
// the sides, the scope, counts by kind and field, the first differences
// grouped by field with both values, allowed and converged differences, notes.
func WriteText(w io.Writer, r *Report) error {
	b := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }

	p("%s\n", verdictLine(r))
	side := func(label string, s SideReport) {
		p("%-8s%s\n", label, s.URI)
		p("        %s", s.Description)
		if r.Mode != ModeDigest {
			p("; %d nodes compared, digest %v", s.Nodes, s.Digest)
		}
		p("\n")
	}
	side("source", r.Source)
	side("target", r.Target)
	p("%-8s%s", "scope", r.Scope.Path)
	if len(r.Scope.Exclude) > 0 {
		p(", excluding:")
		p("\n")
		for _, e := range r.Scope.Exclude {
			p("          %s (%s", e.Pattern, e.Origin)
			if e.Reason != "" {
				p(": %s", e.Reason)
			}
			p(")\n")
		}
	} else {
		p("\n")
	}
	if len(r.Scope.Allow) > 0 {
		p("allowed differences in force:\n")
		for _, a := range r.Scope.Allow {
			p("          %s (%s", a.Rule, a.Origin)
			if a.Reason != "" {
				p(": %s", a.Reason)
			}
			p(")\n")
		}
	}

	if d := r.Digest; d != nil {
		p("\ndigest (%s):\n", d.Method)
		if d.Reason != "" {
			p("  walked because %s\n", d.Reason)
		}
		ds := func(label string, s DigestSide) {
			p("  %-7s %v", label, s.Digest)
			var extra []string
			if s.How != "" {
				extra = append(extra, s.How)
			}
			if s.Zxid != 0 {
				z := "zxid " + FormatZxid(s.Zxid)
				if !s.Exact {
					z += " (fuzzy)"
				}
				extra = append(extra, z)
			}
			if s.Nodes >= 0 {
				extra = append(extra, fmt.Sprintf("%d nodes", s.Nodes))
			}
			if s.Adjusted {
				extra = append(extra, "with the pristine /zookeeper node added")
			}
			if len(extra) > 0 {
				p(" (%s)", strings.Join(extra, ", "))
			}
			p("\n")
		}
		ds("source", d.Source)
		ds("target", d.Target)
		if d.Equal {
			p("  digests match")
		} else {
			p("  digests DIFFER")
		}
		if d.Zxid != 0 {
			p(" at zxid %s", FormatZxid(d.Zxid))
		}
		p("\n")
	}

	if r.Mode != ModeDigest {
		c := &r.Counts
		p("\ndifferences by kind and field:\n")
		for _, k := range Kinds() {
			p("  %-24s %d\n", k.Describe(), c.ByKind(k))
			if k == KindMismatch {
				for _, f := range Fields() {
					if n := c.Fields[f]; n > 0 {
						p("    %-22s %d\n", f.Describe(), n)
					}
				}
			}
		}
		p("  %-24s %d\n", "allowed (benign)", c.Allowed)
		p("  %-24s %d\n", "converged in flight", c.Converged)
	}

	if len(r.Differences) > 0 {
		p("\n")
		if int64(len(r.Differences)) < r.Counts.Differences {
			p("first %d of %d differences, by field:\n", len(r.Differences), r.Counts.Differences)
		} else {
			p("differences, by field:\n")
		}
		for _, g := range groupDiffs(r.Differences) {
			p("  %s: %d\n", g.title, len(g.diffs))
			for _, d := range g.diffs {
				p("    %s", d.Path)
				if d.Rechecked > 0 {
					p("  (still different after %d re-reads)", d.Rechecked)
				}
				p("\n")
				p("      source: %s\n", d.SourceText())
				p("      target: %s\n", d.TargetText())
			}
		}
	}

	if r.Counts.Allowed > 0 {
		p("\nallowed differences: %d\n", r.Counts.Allowed)
		for _, rc := range r.Counts.AllowedBy {
			p("  %s (%s): %d\n", rc.Rule, rc.Origin, rc.Count)
		}
		for _, a := range r.Allowed {
			label := a.Kind.String()
			if a.Kind == KindMismatch {
				label = a.Field.String()
			}
			p("    %s %s: source %s, target %s\n", a.Path, label, a.SourceText(), a.TargetText())
		}
		if int64(len(r.Allowed)) < r.Counts.Allowed {
			p("    … %d more\n", r.Counts.Allowed-int64(len(r.Allowed)))
		}
	}

	if r.Counts.Converged > 0 {
		p("\nconverged in flight: %d (writes that landed while the trees were read; not divergence)\n", r.Counts.Converged)
		for _, cd := range r.Converged {
			var what []string
			for _, a := range cd.What {
				what = append(what, a.String())
			}
			p("    %s %s: agreed after %d re-read(s)\n", cd.Path, strings.Join(what, ","), cd.Rechecks)
		}
		if int64(len(r.Converged)) < r.Counts.Converged {
			p("    … %d more\n", r.Counts.Converged-int64(len(r.Converged)))
		}
	}

	if len(r.Notes) > 0 {
		p("\nnotes:\n")
		for _, n := range r.Notes {
			p("  - %s\n", n)
		}
	}
	if r.Elapsed > 0 && r.Mode != ModeDigest {
		p("\ncompared %d nodes in %v (%.0f nodes/s)\n", r.Compared, r.Elapsed.Round(time.Millisecond), float64(r.Compared)/r.Elapsed.Seconds())
	} else if r.Elapsed > 0 {
		p("\ntook %v\n", r.Elapsed.Round(time.Microsecond))
	}
	return b.Flush()
}

func verdictLine(r *Report) string {
	switch r.Mode {
	case ModeDigest:
		d := r.Digest
		if r.Equal() {
			return fmt.Sprintf("EQUAL by digest: %v on both sides (constant time)", d.Source.Digest)
		}
		return fmt.Sprintf("DIFFERENT by digest: source %v, target %v (constant time); run without --digest-only to find the nodes", d.Source.Digest, d.Target.Digest)
	}
	c := &r.Counts
	var extra []string
	if c.Allowed > 0 {
		extra = append(extra, fmt.Sprintf("%d allowed", c.Allowed))
	}
	if c.Converged > 0 {
		extra = append(extra, fmt.Sprintf("%d converged in flight", c.Converged))
	}
	tail := ""
	if len(extra) > 0 {
		tail = " (" + strings.Join(extra, ", ") + ")"
	}
	if r.Equal() {
		return fmt.Sprintf("EQUAL: no differences in %d nodes compared%s", r.Compared, tail)
	}
	var kinds []string
	for _, k := range Kinds() {
		if n := c.ByKind(k); n > 0 {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k.Describe()))
		}
	}
	return fmt.Sprintf("DIFFERENT: %d differences (%s) in %d nodes compared%s", c.Differences, strings.Join(kinds, ", "), r.Compared, tail)
}

type diffGroup struct {
	title string
	diffs []Difference
}

// groupDiffs groups differences by kind, and mismatches by field, in report
// order, keeping path order within a group.
func groupDiffs(ds []Difference) []diffGroup {
	var groups []diffGroup
	for _, k := range []Kind{KindMissing, KindExtra} {
		var g diffGroup
		for _, d := range ds {
			if d.Kind == k {
				g.diffs = append(g.diffs, d)
			}
		}
		if len(g.diffs) > 0 {
			g.title = k.Describe()
			groups = append(groups, g)
		}
	}
	for _, f := range Fields() {
		var g diffGroup
		for _, d := range ds {
			if d.Kind == KindMismatch && d.Field == f {
				g.diffs = append(g.diffs, d)
			}
		}
		if len(g.diffs) > 0 {
			g.title = f.Describe()
			groups = append(groups, g)
		}
	}
	return groups
}

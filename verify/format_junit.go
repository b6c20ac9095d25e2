package verify

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JUnit XML, as CI systems (Jenkins, GitLab, GitHub test reporters) read it: one
// <testsuite> for the comparison, one <testcase> per top-level subtree of the
// scope (the scope's root node is a case of its own), failed when the subtree
// has differences. The digest, when compared, is a case named "digest". No
// times are written, so the output is deterministic.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name       string          `xml:"name,attr"`
		Tests      int             `xml:"tests,attr"`
		Failures   int             `xml:"failures,attr"`
		Errors     int             `xml:"errors,attr"`
		Skipped    int             `xml:"skipped,attr"`
		Properties []junitProperty `xml:"properties>property"`
		Cases      []junitCase     `xml:"testcase"`
		SystemOut  *junitText      `xml:"system-out"`
	}
	junitProperty struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Failure   *junitFailure `xml:"failure"`
		SystemOut *junitText    `xml:"system-out"`
	}
	junitFailure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",cdata"`
	}
	// junitText keeps newlines and quotes readable (CDATA).
	junitText struct {
		Text string `xml:",cdata"`
	}
)

const junitClass = "zk2raft.verify"

// WriteJUnit writes the report as JUnit XML.
func WriteJUnit(w io.Writer, r *Report) error {
	s := junitSuite{
		Name: fmt.Sprintf("verify %s against %s", r.Target.URI, r.Source.URI),
		Properties: []junitProperty{
			{"source", r.Source.URI},
			{"target", r.Target.URI},
			{"scope", r.Scope.Path},
			{"mode", r.Mode.String()},
			{"verdict", r.Verdict.String()},
			{"compared", fmt.Sprint(r.Compared)},
			{"differences", fmt.Sprint(r.Counts.Differences)},
			{"allowed", fmt.Sprint(r.Counts.Allowed)},
			{"converged", fmt.Sprint(r.Counts.Converged)},
		},
	}
	if d := r.Digest; d != nil {
		c := junitCase{Name: "digest", Classname: junitClass}
		out := fmt.Sprintf("%s: source %v (%s), target %v (%s)", d.Method, d.Source.Digest, d.Source.How, d.Target.Digest, d.Target.How)
		if d.Reason != "" {
			out += "\nwalked because " + d.Reason
		}
		c.SystemOut = &junitText{out}
		// After a walk the nodes decide; the digest case fails only when the
		// digests were the comparison.
		if !d.Equal && r.Mode == ModeDigest {
			c.Failure = &junitFailure{Type: "digest", Message: fmt.Sprintf("digest %v differs from %v", d.Target.Digest, d.Source.Digest),
				Text: out}
		}
		s.Cases = append(s.Cases, c)
	}
	for _, st := range r.Subtrees {
		c := junitCase{Name: st.Path, Classname: junitClass}
		out := plural(st.Nodes, "node") + " compared"
		if st.Allowed > 0 {
			out += ", " + plural(st.Allowed, "allowed difference")
		}
		if st.Converged > 0 {
			out += fmt.Sprintf(", %d converged in flight", st.Converged)
		}
		c.SystemOut = &junitText{out}
		if st.Differences > 0 {
			var b strings.Builder
			for _, d := range st.First {
				fmt.Fprintf(&b, "%s\n", d.String())
			}
			if int64(len(st.First)) < st.Differences {
				fmt.Fprintf(&b, "… %d more\n", st.Differences-int64(len(st.First)))
			}
			c.Failure = &junitFailure{Type: "different",
				Message: fmt.Sprintf("%s in %s", plural(st.Differences, "difference"), plural(st.Nodes, "node")), Text: b.String()}
		}
		s.Cases = append(s.Cases, c)
	}
	if len(s.Cases) == 0 {
		// An empty scope on both sides: say so rather than write no test.
		s.Cases = append(s.Cases, junitCase{Name: r.Scope.Path, Classname: junitClass, SystemOut: &junitText{"no nodes on either side"}})
	}
	for _, c := range s.Cases {
		s.Tests++
		if c.Failure != nil {
			s.Failures++
		}
	}
	if len(r.Notes) > 0 {
		s.SystemOut = &junitText{strings.Join(r.Notes, "\n")}
	}
	doc := junitSuites{Name: "zk2raft verify", Tests: s.Tests, Failures: s.Failures, Suites: []junitSuite{s}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// plural renders a count with its noun, adding an s unless the count is 1.
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

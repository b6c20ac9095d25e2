package verify

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// The built-in allowances. They are semantic, not path globs, and are on
// unless Config.NoDefaultAllow is set.
const (
	// RuleClientOwner allows an ephemeralOwner difference where one side reads
	// through the client API (zk://, or an export that did) and the other has
	// the raw value of a container or TTL node: clients see 0 for those
	// (zookeeper-internals §5), so the client side cannot tell them from
	// persistent nodes. Allowed only when the raw value, as a client would see
	// it, equals the client side's value; a session id against 0, or two
	// different session ids, is still a difference.
	RuleClientOwner = "client-api-owner"
	// RuleEphemeralsSkipped allows a node that is missing from a side whose
	// export skipped ephemerals, when the other side shows it as an ephemeral
	// (a session-owned node, not a container or TTL node).
	RuleEphemeralsSkipped = "ephemerals-skipped"
)

// AllowRule allows differences of some kinds at the paths its pattern matches.
// Allowed differences are counted and listed apart and do not make the trees
// different.
type AllowRule struct {
	// Pattern is an absolute path glob: each component matches as in
	// path.Match, and a "**" component matches any number of components, none
	// included ("/locks/**" matches /locks and everything below it).
	Pattern string
	// What lists the differences allowed: a Field, or FieldNone with Kind
	// KindMissing or KindExtra.
	What []Allowed
	// Reason says why the difference is benign, for reports.
	Reason string
	// Origin says where the rule came from: "flag" or FILE:LINE.
	Origin string
}

// Allowed is one kind of difference a rule allows.
type Allowed struct {
	Kind  Kind
	Field Field // for KindMismatch
}

func (a Allowed) String() string {
	if a.Kind == KindMismatch {
		return a.Field.String()
	}
	return a.Kind.String()
}

// ParseAllowed parses what a rule allows: "missing", "extra", a field name
// (data, nil-vs-empty, acl, acl-masked, czxid, …, ephemeralOwner, numChildren),
// or "*" for all of them; comma-separated.
func ParseAllowed(s string) ([]Allowed, error) {
	var out []Allowed
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		switch w {
		case "":
			continue
		case "*":
			out = append(out, Allowed{Kind: KindMissing}, Allowed{Kind: KindExtra})
			for _, f := range Fields() {
				out = append(out, Allowed{Kind: KindMismatch, Field: f})
			}
		case "missing":
			out = append(out, Allowed{Kind: KindMissing})
		case "extra":
			out = append(out, Allowed{Kind: KindExtra})
		default:
			f, err := ParseField(w)
			if err != nil {
				return nil, fmt.Errorf("verify: allow %q: want missing, extra, *, or a field (%s)", w, fieldList())
			}
			out = append(out, Allowed{Kind: KindMismatch, Field: f})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("verify: allow rule without differences to allow")
	}
	return out, nil
}

func fieldList() string {
	var names []string
	for _, f := range Fields() {
		names = append(names, f.String())
	}
	return strings.Join(names, ", ")
}

// ValidatePattern checks an allow-list pattern.
func ValidatePattern(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("verify: pattern %q must start with /", p)
	}
	for _, c := range strings.Split(p[1:], "/") {
		if c == "**" {
			continue
		}
		if _, err := path.Match(c, ""); err != nil {
			return fmt.Errorf("verify: pattern %q: %w", p, err)
		}
	}
	return nil
}

// ParseAllowFlag parses a rule given on the command line as PATTERN=WHAT[,WHAT…];
// the last "=" separates them, since node names may contain "=".
func ParseAllowFlag(s string) (AllowRule, error) {
	i := strings.LastIndexByte(s, '=')
	if i < 0 {
		return AllowRule{}, fmt.Errorf("verify: allow rule %q: want PATTERN=WHAT[,WHAT...]", s)
	}
	r := AllowRule{Pattern: s[:i], Origin: "flag"}
	if err := ValidatePattern(r.Pattern); err != nil {
		return AllowRule{}, err
	}
	what, err := ParseAllowed(s[i+1:])
	if err != nil {
		return AllowRule{}, err
	}
	r.What = what
	return r, nil
}

// ReadAllowFile reads an allow-list file: one rule a line,
//
//	PATTERN  WHAT[,WHAT...]  [# reason]
//
// separated by spaces or tabs; blank lines and lines starting with # are
// ignored. A pattern containing spaces can be quoted with double quotes.
func ReadAllowFile(name string) ([]AllowRule, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("verify: allow-list: %w", err)
	}
	defer f.Close()
	return ParseAllowList(f, name)
}

// ParseAllowList parses allow-list rules (see ReadAllowFile); name is used in
// errors and origins.
func ParseAllowList(r io.Reader, name string) ([]AllowRule, error) {
	var rules []AllowRule
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, line)
		var reason string
		var pattern, rest string
		if strings.HasPrefix(text, `"`) {
			end := strings.IndexByte(text[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("verify: %s: unterminated quote", where)
			}
			pattern, rest = text[1:end+1], text[end+2:]
		} else if i := strings.IndexAny(text, " \t"); i >= 0 {
			pattern, rest = text[:i], text[i:]
		} else {
			pattern = text
		}
		rest, reason, _ = strings.Cut(rest, "#")
		rest = strings.TrimSpace(rest)
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return nil, fmt.Errorf("verify: %s: want PATTERN WHAT[,WHAT...] [# reason]", where)
		}
		if err := ValidatePattern(pattern); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		what, err := ParseAllowed(rest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		rules = append(rules, AllowRule{Pattern: pattern, What: what, Reason: strings.TrimSpace(reason), Origin: where})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("verify: allow-list %s: %w", name, err)
	}
	return rules, nil
}

// allows reports whether the rule allows d.
func (r *AllowRule) allows(d *Difference) bool {
	hit := false
	for _, a := range r.What {
		if a.Kind == d.Kind && (a.Kind != KindMismatch || a.Field == d.Field) {
			hit = true
			break
		}
	}
	return hit && matchPattern(r.Pattern, d.Path)
}

// matchPattern matches an absolute path against a pattern whose components
// are path.Match globs or "**".
func matchPattern(pattern, p string) bool {
	pc := splitPath(pattern)
	xc := splitPath(p)
	return matchComponents(pc, xc)
}

func splitPath(p string) []string {
	if p == "/" || p == "" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

func matchComponents(pat, p []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(p); i++ {
				if matchComponents(rest, p[i:]) {
					return true
				}
			}
			return false
		}
		if len(p) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], p[0]); !ok {
			return false
		}
		pat, p = pat[1:], p[1:]
	}
	return len(p) == 0
}

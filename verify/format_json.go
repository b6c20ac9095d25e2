package verify

import (
	"encoding/base64"
	"encoding/json"
	"io"
)

// maxJSONData bounds the data bytes carried (base64) in one JSON value.
const maxJSONData = 4096

// The JSON report, schema version 1 (drawn in the package documentation).
// These types are the schema: change them only compatibly.
type (
	jsonReport struct {
		Version              int             `json:"version"`
		Verdict              Verdict         `json:"verdict"`
		Mode                 Mode            `json:"mode"`
		Source               jsonSide        `json:"source"`
		Target               jsonSide        `json:"target"`
		Scope                jsonScope       `json:"scope"`
		Compared             int64           `json:"compared"`
		Counts               jsonCounts      `json:"counts"`
		Differences          []jsonDiff      `json:"differences"`
		DifferencesTruncated bool            `json:"differences_truncated"`
		Allowed              []jsonAllowed   `json:"allowed"`
		Converged            []jsonConverged `json:"converged"`
		Subtrees             []jsonSubtree   `json:"subtrees"`
		Digest               *jsonDigest     `json:"digest"`
		Notes                []string        `json:"notes"`
		ElapsedSeconds       *float64        `json:"elapsed_seconds,omitempty"`
	}
	jsonSide struct {
		URI         string `json:"uri"`
		Scheme      string `json:"scheme"`
		Description string `json:"description"`
		Live        bool   `json:"live"`
		RawOwners   bool   `json:"raw_owners"`
		Nodes       int64  `json:"nodes"`
		Digest      string `json:"digest,omitempty"`
	}
	jsonScope struct {
		Path    string          `json:"path"`
		Exclude []jsonExclusion `json:"exclude"`
		Allow   []jsonRule      `json:"allow"`
	}
	jsonExclusion struct {
		Pattern string `json:"pattern"`
		Origin  string `json:"origin"`
		Reason  string `json:"reason,omitempty"`
	}
	jsonRule struct {
		Rule   string `json:"rule"`
		Origin string `json:"origin"`
		Reason string `json:"reason,omitempty"`
		Count  *int64 `json:"count,omitempty"`
	}
	jsonCounts struct {
		Differences  int64         `json:"differences"`
		Missing      int64         `json:"missing"`
		Extra        int64         `json:"extra"`
		Mismatch     int64         `json:"mismatch"`
		Fields       orderedCounts `json:"fields"`
		Allowed      int64         `json:"allowed"`
		AllowedBy    []jsonRule    `json:"allowed_by"`
		Converged    int64         `json:"converged"`
		Rechecked    int64         `json:"rechecked"`
		NotRechecked int64         `json:"not_rechecked"`
	}
	jsonDiff struct {
		Path      string    `json:"path"`
		Kind      Kind      `json:"kind"`
		Field     string    `json:"field,omitempty"`
		Source    jsonValue `json:"source"`
		Target    jsonValue `json:"target"`
		Rechecked int       `json:"rechecked,omitempty"`
	}
	jsonValue struct {
		Present bool      `json:"present"`
		Text    string    `json:"text"`
		Int     *int64    `json:"int,omitempty"`
		Data    *jsonData `json:"data,omitempty"`
		ACL     []jsonACL `json:"acl,omitempty"`
		Stat    *jsonStat `json:"stat,omitempty"`
	}
	jsonData struct {
		Nil       bool   `json:"nil"`
		Length    int    `json:"length"`
		Base64    string `json:"base64"`
		Truncated bool   `json:"truncated,omitempty"`
	}
	jsonACL struct {
		Perms     string `json:"perms"`
		PermsBits int32  `json:"perms_bits"`
		Scheme    string `json:"scheme"`
		ID        string `json:"id"`
	}
	jsonStat struct {
		Czxid          string `json:"czxid"`
		Mzxid          string `json:"mzxid"`
		Pzxid          string `json:"pzxid"`
		Ctime          int64  `json:"ctime"`
		Mtime          int64  `json:"mtime"`
		Version        int32  `json:"version"`
		Cversion       int32  `json:"cversion"`
		Aversion       int32  `json:"aversion"`
		EphemeralOwner string `json:"ephemeral_owner"`
		DataLength     int    `json:"data_length"`
		NumChildren    int32  `json:"num_children"`
	}
	jsonAllowed struct {
		jsonDiff
		Rule   string `json:"rule"`
		Origin string `json:"origin"`
	}
	jsonConverged struct {
		Path     string   `json:"path"`
		What     []string `json:"what"`
		Rechecks int      `json:"rechecks"`
	}
	jsonSubtree struct {
		Path        string     `json:"path"`
		Nodes       int64      `json:"nodes"`
		Differences int64      `json:"differences"`
		Allowed     int64      `json:"allowed"`
		Converged   int64      `json:"converged"`
		First       []jsonDiff `json:"first"`
	}
	jsonDigest struct {
		Method string         `json:"method"`
		Equal  bool           `json:"equal"`
		Zxid   string         `json:"zxid,omitempty"`
		Reason string         `json:"reason,omitempty"`
		Source jsonDigestSide `json:"source"`
		Target jsonDigestSide `json:"target"`
	}
	jsonDigestSide struct {
		Digest   string `json:"digest"`
		How      string `json:"how"`
		Zxid     string `json:"zxid,omitempty"`
		Exact    bool   `json:"exact"`
		Nodes    int64  `json:"nodes"`
		Adjusted bool   `json:"adjusted,omitempty"`
	}
)

// orderedCounts renders the per-field counts as an object with every field,
// in report order.
type orderedCounts [fieldCount]int64

func (o orderedCounts) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range Fields() {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f.String())
		b = append(b, k...)
		b = append(b, ':')
		v, _ := json.Marshal(o[f])
		b = append(b, v...)
	}
	return append(b, '}'), nil
}

// WriteJSON writes the report as one indented JSON document (schema version
// ReportVersion, see the package documentation).
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(toJSON(r))
}

func toJSON(r *Report) *jsonReport {
	j := &jsonReport{
		Version:              ReportVersion,
		Verdict:              r.Verdict,
		Mode:                 r.Mode,
		Source:               jsonSideOf(r.Source, r.Mode),
		Target:               jsonSideOf(r.Target, r.Mode),
		Scope:                jsonScope{Path: r.Scope.Path, Exclude: []jsonExclusion{}, Allow: []jsonRule{}},
		Compared:             r.Compared,
		Differences:          []jsonDiff{},
		DifferencesTruncated: int64(len(r.Differences)) < r.Counts.Differences,
		Allowed:              []jsonAllowed{},
		Converged:            []jsonConverged{},
		Subtrees:             []jsonSubtree{},
		Notes:                append([]string{}, r.Notes...),
	}
	for _, e := range r.Scope.Exclude {
		j.Scope.Exclude = append(j.Scope.Exclude, jsonExclusion(e))
	}
	for _, a := range r.Scope.Allow {
		j.Scope.Allow = append(j.Scope.Allow, jsonRule{Rule: a.Rule, Origin: a.Origin, Reason: a.Reason})
	}
	c := &r.Counts
	j.Counts = jsonCounts{
		Differences: c.Differences, Missing: c.Missing, Extra: c.Extra, Mismatch: c.Mismatch,
		Fields: c.Fields, Allowed: c.Allowed, AllowedBy: []jsonRule{}, Converged: c.Converged,
		Rechecked: c.Rechecked, NotRechecked: c.NotRechecked,
	}
	for _, rc := range c.AllowedBy {
		n := rc.Count
		j.Counts.AllowedBy = append(j.Counts.AllowedBy, jsonRule{Rule: rc.Rule, Origin: rc.Origin, Count: &n})
	}
	for _, d := range r.Differences {
		j.Differences = append(j.Differences, jsonDiffOf(d))
	}
	for _, a := range r.Allowed {
		j.Allowed = append(j.Allowed, jsonAllowed{jsonDiff: jsonDiffOf(a.Difference), Rule: a.Rule, Origin: a.Origin})
	}
	for _, cd := range r.Converged {
		jc := jsonConverged{Path: cd.Path, What: []string{}, Rechecks: cd.Rechecks}
		for _, a := range cd.What {
			jc.What = append(jc.What, a.String())
		}
		j.Converged = append(j.Converged, jc)
	}
	for _, s := range r.Subtrees {
		js := jsonSubtree{Path: s.Path, Nodes: s.Nodes, Differences: s.Differences, Allowed: s.Allowed,
			Converged: s.Converged, First: []jsonDiff{}}
		for _, d := range s.First {
			js.First = append(js.First, jsonDiffOf(d))
		}
		j.Subtrees = append(j.Subtrees, js)
	}
	if d := r.Digest; d != nil {
		jd := &jsonDigest{Method: d.Method, Equal: d.Equal, Reason: d.Reason,
			Source: jsonDigestSideOf(d.Source), Target: jsonDigestSideOf(d.Target)}
		if d.Zxid != 0 {
			jd.Zxid = FormatZxid(d.Zxid)
		}
		j.Digest = jd
	}
	if r.Elapsed > 0 {
		s := r.Elapsed.Seconds()
		j.ElapsedSeconds = &s
	}
	return j
}

func jsonSideOf(s SideReport, m Mode) jsonSide {
	js := jsonSide{URI: s.URI, Scheme: s.Scheme, Description: s.Description, Live: s.Live, RawOwners: s.RawOwners, Nodes: s.Nodes}
	if m != ModeDigest {
		js.Digest = s.Digest.String()
	}
	return js
}

func jsonDigestSideOf(s DigestSide) jsonDigestSide {
	j := jsonDigestSide{Digest: s.Digest.String(), How: s.How, Exact: s.Exact, Nodes: s.Nodes, Adjusted: s.Adjusted}
	if s.Zxid != 0 {
		j.Zxid = FormatZxid(s.Zxid)
	}
	return j
}

func jsonDiffOf(d Difference) jsonDiff {
	j := jsonDiff{Path: d.Path, Kind: d.Kind, Rechecked: d.Rechecked}
	if d.Kind == KindMismatch {
		j.Field = d.Field.String()
	}
	j.Source = jsonValueOf(d.Field, d.Source, d.SourceText())
	j.Target = jsonValueOf(d.Field, d.Target, d.TargetText())
	return j
}

func jsonValueOf(f Field, v Value, text string) jsonValue {
	j := jsonValue{Present: v.Present, Text: text}
	if !v.Present {
		return j
	}
	switch f {
	case FieldNone:
		st := &v.Stat
		j.Stat = &jsonStat{
			Czxid: FormatZxid(st.Czxid), Mzxid: FormatZxid(st.Mzxid), Pzxid: FormatZxid(st.Pzxid),
			Ctime: st.Ctime, Mtime: st.Mtime, Version: st.Version, Cversion: st.Cversion, Aversion: st.Aversion,
			EphemeralOwner: FormatZxid(st.EphemeralOwner), DataLength: v.DataLength, NumChildren: v.NumChildren,
		}
	case FieldData, FieldNilData:
		shown := v.Data
		jd := &jsonData{Nil: v.Data == nil, Length: len(v.Data)}
		if len(shown) > maxJSONData {
			shown, jd.Truncated = shown[:maxJSONData], true
		}
		jd.Base64 = base64.StdEncoding.EncodeToString(shown)
		j.Data = jd
	case FieldACL, FieldACLMasked:
		j.ACL = []jsonACL{}
		for _, a := range v.ACL {
			j.ACL = append(j.ACL, jsonACL{Perms: a.Perms.String(), PermsBits: int32(a.Perms), Scheme: a.ID.Scheme, ID: a.ID.ID})
		}
	default:
		n := v.Int
		j.Int = &n
	}
	return j
}

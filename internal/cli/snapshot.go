package cli

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/znode"
)

// newSnapshotCommand groups the verbs that read snapshot files.
func newSnapshotCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Read snapshot files: inspect, cat",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSnapshotInspectCommand(g), newSnapshotCatCommand(g))
	return cmd
}

// oneFile is cobra.ExactArgs(1) with the usage exit code.
func oneFile(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageErrorf("%s takes one snapshot file, got %d arguments", cmd.CommandPath(), len(args))
	}
	return nil
}

// snapshotStats is what inspect reports besides the header and trailer.
type snapshotStats struct {
	Nodes       uint64            `json:"nodes"`
	Records     uint64            `json:"records"` // of every type, nodes included
	AppRecords  map[string]uint64 `json:"application_records,omitempty"`
	ByKind      map[string]uint64 `json:"by_kind"`
	NilData     uint64            `json:"nil_data"`
	EmptyData   uint64            `json:"empty_data"`
	DataBytes   int64             `json:"data_bytes"`
	Histogram   []sizeBucket      `json:"data_size_histogram"`
	ACLSchemes  map[string]uint64 `json:"acl_schemes"`
	MaxDepth    int               `json:"max_depth"`
	MaxChildren int32             `json:"max_children"`
	WidestNode  string            `json:"widest_node,omitempty"`
	LargestData int               `json:"largest_data"`
	LargestNode string            `json:"largest_node,omitempty"`
	MinZxid     int64             `json:"min_czxid"`
	MaxZxid     int64             `json:"max_zxid_in_nodes"`
}

// sizeBucket counts nodes whose data length is in [Min, Max]; nil data is
// counted apart.
type sizeBucket struct {
	Label string `json:"label"`
	Min   int    `json:"min"`
	Max   int    `json:"max"`
	Count uint64 `json:"count"`
}

func newSizeHistogram() []sizeBucket {
	bounds := []struct {
		label    string
		min, max int
	}{
		{"0 B", 0, 0}, {"1 B–64 B", 1, 64}, {"65 B–1 KiB", 65, 1 << 10}, {"1–16 KiB", 1<<10 + 1, 16 << 10},
		{"16–256 KiB", 16<<10 + 1, 256 << 10}, {"256 KiB–1 MiB", 256<<10 + 1, 1 << 20}, {"> 1 MiB", 1<<20 + 1, 1<<31 - 1},
	}
	h := make([]sizeBucket, len(bounds))
	for i, b := range bounds {
		h[i] = sizeBucket{Label: b.label, Min: b.min, Max: b.max}
	}
	return h
}

func (s *snapshotStats) add(n *znode.Node, extendedTypes bool) {
	s.Nodes++
	s.ByKind[znode.EphemeralTypeOf(n.Stat.EphemeralOwner, extendedTypes).String()]++
	switch {
	case n.Data == nil:
		s.NilData++
	case len(n.Data) == 0:
		s.EmptyData++
	}
	if n.Data != nil {
		for i := range s.Histogram {
			if b := &s.Histogram[i]; len(n.Data) >= b.Min && len(n.Data) <= b.Max {
				b.Count++
				break
			}
		}
	}
	s.DataBytes += int64(len(n.Data))
	for _, a := range n.ACL {
		s.ACLSchemes[a.ID.Scheme]++
	}
	if d := strings.Count(n.Path, "/"); n.Path != "/" && d > s.MaxDepth {
		s.MaxDepth = d
	}
	if n.NumChildren > s.MaxChildren {
		s.MaxChildren, s.WidestNode = n.NumChildren, n.Path
	}
	if len(n.Data) > s.LargestData || s.LargestNode == "" {
		s.LargestData, s.LargestNode = len(n.Data), n.Path
	}
	if s.MinZxid == 0 || (n.Stat.Czxid > 0 && n.Stat.Czxid < s.MinZxid) {
		s.MinZxid = n.Stat.Czxid
	}
	s.MaxZxid = max(s.MaxZxid, n.Stat.Czxid, n.Stat.Mzxid, n.Stat.Pzxid)
}

type inspectReport struct {
	File       string               `json:"file"`
	Compressed bool                 `json:"compressed"`
	Header     znode.SnapshotHeader `json:"header"`
	Trailer    *trailerJSON         `json:"trailer,omitempty"`
	Stats      *snapshotStats       `json:"stats"`
	Verified   bool                 `json:"verified"`
	Error      string               `json:"error,omitempty"`
}

type trailerJSON struct {
	NodeCount   uint64 `json:"node_count"`
	RecordCount uint64 `json:"record_count"`
	Digest      string `json:"digest"`
	MaxZxid     int64  `json:"max_zxid"`
	MaxZxidHex  string `json:"max_zxid_hex"`
	BodyLength  int64  `json:"body_length"`
}

func newSnapshotInspectCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a snapshot's header, counts, size histogram and digest, and check its integrity",
		Long: `Reads the whole snapshot, checking every record's CRC, the counts and the digest
against the trailer, and prints the header (source, zxids, filters), counts of nodes
by kind, a histogram of data sizes, ACL schemes, the digest and the verdict. A
damaged or truncated file is an error naming the offset (exit 1), after what could
be read is printed.`,
		Args: oneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := inspectSnapshot(args[0])
			if rep != nil {
				if perr := printInspect(g.stdout, rep, asJSON); perr != nil && err == nil {
					err = perr
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// inspectSnapshot reads and verifies the file. The report is returned whenever
// the header could be read, with the error of the damage found, if any.
func inspectSnapshot(path string) (*inspectReport, error) {
	r, err := znode.OpenSnapshotFile(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	hdr := r.Header()
	rep := &inspectReport{File: path, Compressed: r.Compressed(), Header: hdr, Stats: &snapshotStats{
		AppRecords: map[string]uint64{}, ByKind: map[string]uint64{}, ACLSchemes: map[string]uint64{}, Histogram: newSizeHistogram(),
	}}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			rep.Error = err.Error()
			return rep, err
		}
		rep.Stats.Records++
		if rec.Node != nil {
			rep.Stats.add(rec.Node, hdr.ExtendedTypes)
		} else {
			rep.Stats.AppRecords[rec.Type.String()]++
		}
	}
	tr := r.Trailer()
	rep.Trailer = &trailerJSON{NodeCount: tr.NodeCount, RecordCount: tr.RecordCount, Digest: tr.Digest.String(),
		MaxZxid: tr.MaxZxid, MaxZxidHex: fmt.Sprintf("%#x", tr.MaxZxid), BodyLength: tr.BodyLength}
	rep.Verified = true
	return rep, nil
}

func printInspect(w io.Writer, rep *inspectReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	h := rep.Header
	var b strings.Builder
	fmt.Fprintf(&b, "file           %s\n", rep.File)
	fmt.Fprintf(&b, "kind           %s (format %d, compressed %v)\n", h.Kind, znode.SnapshotFormatVersion, rep.Compressed)
	fmt.Fprintf(&b, "source         %s\n", h.Source)
	fmt.Fprintf(&b, "created        %s by zk2raft %s\n", h.CreatedAt.Format(time.RFC3339), h.ToolVersion)
	fmt.Fprintf(&b, "start zxid     %#x\n", h.StartZxid)
	if rep.Trailer != nil {
		fmt.Fprintf(&b, "max zxid       %#x\n", rep.Trailer.MaxZxid)
	}
	fmt.Fprintf(&b, "filters        path %s, exclude %v, ephemerals %s\n", h.Filters.Path, h.Filters.Exclude, h.Filters.Ephemerals)
	fmt.Fprintf(&b, "extended types %v\n", h.ExtendedTypes)
	if len(h.Meta) > 0 {
		keys := make([]string, 0, len(h.Meta))
		for k := range h.Meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "meta           %s=%s\n", k, h.Meta[k])
		}
	}
	st := rep.Stats
	fmt.Fprintf(&b, "nodes          %d (%s)\n", st.Nodes, countsLine(st.ByKind))
	if len(st.AppRecords) > 0 {
		fmt.Fprintf(&b, "other records  %s\n", countsLine(st.AppRecords))
	}
	fmt.Fprintf(&b, "data           %s in total; %d nil, %d empty; largest %d B at %s\n", humanBytes(st.DataBytes), st.NilData, st.EmptyData, st.LargestData, st.LargestNode)
	b.WriteString("data sizes\n")
	var most uint64
	for _, bk := range st.Histogram {
		most = max(most, bk.Count)
	}
	for _, bk := range st.Histogram {
		bar := ""
		if most > 0 {
			bar = strings.Repeat("#", int((bk.Count*40+most-1)/most))
		}
		fmt.Fprintf(&b, "  %-14s %9d %s\n", bk.Label, bk.Count, bar)
	}
	fmt.Fprintf(&b, "acl schemes    %s\n", countsLine(st.ACLSchemes))
	fmt.Fprintf(&b, "tree           depth %d; widest %s with %d children\n", st.MaxDepth, st.WidestNode, st.MaxChildren)
	if rep.Trailer != nil {
		fmt.Fprintf(&b, "digest         %s\n", rep.Trailer.Digest)
	}
	if rep.Verified {
		fmt.Fprintf(&b, "integrity      ok: %d records, every CRC, the counts and the digest match the trailer\n", st.Records)
	} else {
		fmt.Fprintf(&b, "integrity      FAILED after %d records: %s\n", st.Records, rep.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func countsLine(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// nodeJSON is one line of `snapshot cat --json`.
type nodeJSON struct {
	Path        string    `json:"path"`
	Data        *string   `json:"data"` // base64; null for nil data
	DataLength  int       `json:"data_length"`
	ACL         []aclJSON `json:"acl"`
	Stat        statJSON  `json:"stat"`
	NumChildren int32     `json:"num_children"`
	Kind        string    `json:"kind"`
}

type aclJSON struct {
	Perms  string `json:"perms"`
	Scheme string `json:"scheme"`
	ID     string `json:"id"`
}

// statJSON is the persisted stat; cversion is the persisted count of child
// creations, not the client-visible value.
type statJSON struct {
	Czxid          int64 `json:"czxid"`
	Mzxid          int64 `json:"mzxid"`
	Pzxid          int64 `json:"pzxid"`
	Ctime          int64 `json:"ctime"`
	Mtime          int64 `json:"mtime"`
	Version        int32 `json:"version"`
	Cversion       int32 `json:"cversion"`
	Aversion       int32 `json:"aversion"`
	EphemeralOwner int64 `json:"ephemeral_owner"`
}

func toNodeJSON(n *znode.Node, extendedTypes bool) nodeJSON {
	out := nodeJSON{
		Path: n.Path, DataLength: len(n.Data), NumChildren: n.NumChildren,
		Kind: znode.EphemeralTypeOf(n.Stat.EphemeralOwner, extendedTypes).String(),
		Stat: statJSON{
			Czxid: n.Stat.Czxid, Mzxid: n.Stat.Mzxid, Pzxid: n.Stat.Pzxid, Ctime: n.Stat.Ctime, Mtime: n.Stat.Mtime,
			Version: n.Stat.Version, Cversion: n.Stat.Cversion, Aversion: n.Stat.Aversion, EphemeralOwner: n.Stat.EphemeralOwner,
		},
	}
	if n.Data != nil {
		s := base64.StdEncoding.EncodeToString(n.Data)
		out.Data = &s
	}
	if n.ACL != nil {
		out.ACL = make([]aclJSON, len(n.ACL))
		for i, a := range n.ACL {
			out.ACL[i] = aclJSON{Perms: a.Perms.String(), Scheme: a.ID.Scheme, ID: a.ID.ID}
		}
	}
	return out
}

func newSnapshotCatCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cat FILE",
		Short: "Print every node of a snapshot, one per line",
		Long: `Prints every node of a snapshot in file order, one per line:

  path  kind  data  acl  czxid= mzxid= pzxid= ctime= mtime= version= cversion= aversion= owner= children=

with data as a quoted string (nil for no data) and cversion the persisted count of
child creations. With --json, each line is a JSON object with the data in base64
(null for nil data), the ACL and the full persisted stat. The file is verified as it
is read; damage is an error naming the offset (exit 1) after the nodes before it.`,
		Args: oneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := znode.OpenSnapshotFile(args[0])
			if err != nil {
				return err
			}
			defer r.Close()
			ext := r.Header().ExtendedTypes
			out := bufio.NewWriterSize(g.stdout, 64<<10)
			enc := json.NewEncoder(out)
			for {
				n, err := r.NextNode()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					if ferr := out.Flush(); ferr != nil {
						return ferr
					}
					return err
				}
				if asJSON {
					if err := enc.Encode(toNodeJSON(n, ext)); err != nil {
						return err
					}
					continue
				}
				writeNodeLine(out, n, ext)
			}
			return out.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON lines, data in base64")
	return cmd
}

// writeNodeLine prints a node as one tab-separated line.
func writeNodeLine(w *bufio.Writer, n *znode.Node, extendedTypes bool) {
	data := "nil"
	if n.Data != nil {
		data = strconv.Quote(string(n.Data))
	}
	acl := make([]string, len(n.ACL))
	for i, a := range n.ACL {
		acl[i] = a.String()
	}
	st := &n.Stat
	fmt.Fprintf(w, "%s\t%s\t%s\t[%s]\tczxid=%#x mzxid=%#x pzxid=%#x ctime=%d mtime=%d version=%d cversion=%d aversion=%d owner=%#x children=%d\n",
		printable(n.Path), znode.EphemeralTypeOf(st.EphemeralOwner, extendedTypes), data, strings.Join(acl, ","),
		st.Czxid, st.Mzxid, st.Pzxid, st.Ctime, st.Mtime, st.Version, st.Cversion, st.Aversion, st.EphemeralOwner, n.NumChildren)
}

// printable returns s as is when every rune prints, and Go-quoted otherwise, so
// that a line never carries control or direction-changing characters raw.
func printable(s string) string {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

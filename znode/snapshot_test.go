package znode

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func testSnapshotHeader() SnapshotHeader {
	return SnapshotHeader{
		Source:      "zk://127.0.0.1:2181/",
		StartZxid:   0x1_0000_002a,
		CreatedAt:   time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
		ToolVersion: "v0.0.0-test",
		Filters: SnapshotFilters{
			Path:       "/",
			Exclude:    []string{"/zookeeper", "/tmp"},
			Ephemerals: "skip",
		},
		Kind:          SnapshotKindExport,
		ExtendedTypes: true,
		Meta:          map[string]string{"ensemble": "a,b,c"},
	}
}

// testSnapshotNodes covers the values that must survive a round trip exactly: nil
// against empty data and ACL lists, binary data, unicode paths and every stat field
// with raw owners and extreme values. big adds a node with 1 MiB of data.
func testSnapshotNodes(tb testing.TB, big bool) []*Node {
	tb.Helper()
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	ttl, err := TTLOwner(5000)
	if err != nil {
		tb.Fatal(err)
	}
	nodes := []*Node{
		{Path: "/", ACL: WorldAnyone(), NumChildren: 3},
		{Path: "/zookeeper", Data: []byte{}, ACL: nil, NumChildren: 1},
		{Path: "/zookeeper/quota", Data: []byte{}, ACL: WorldAnyone()},
		{
			Path: "/app", Data: binary, ACL: []ACL{},
			Stat:        Stat{Czxid: 1, Mzxid: 2, Ctime: 3, Mtime: 4, Version: 5, Cversion: 6, Aversion: 7, EphemeralOwner: 0, Pzxid: 9},
			NumChildren: 4,
		},
		{
			Path: "/app/ünï/日本語", Data: []byte("hello"),
			ACL:  []ACL{{Perms: PermRead | PermWrite, ID: ID{Scheme: "digest", ID: "user:Hash+/=="}}, {Perms: PermAll | 0x40, ID: ID{Scheme: "ip", ID: "10.0.0.0/8"}}},
			Stat: Stat{Czxid: 0x1_0000_0001, Mzxid: 0x1_0000_0003, Ctime: -1, Mtime: 1715000000000, Version: -1, Cversion: math.MaxInt32, Aversion: math.MinInt32, EphemeralOwner: 0x1000_0abc_0000_0001, Pzxid: 0x1_0000_0002},
		},
		{Path: "/app/container", Data: nil, ACL: WorldAnyone(), Stat: Stat{Czxid: 10, Mzxid: 10, Pzxid: 12, EphemeralOwner: ContainerOwner}},
		{Path: "/app/ttl", Data: []byte{0}, ACL: WorldAnyone(), Stat: Stat{Czxid: 11, Mzxid: 11, Pzxid: 11, EphemeralOwner: ttl}},
		{
			Path: "/app/extremes", Data: []byte("x"), ACL: []ACL{{Perms: -1, ID: ID{}}},
			Stat:        Stat{Czxid: math.MinInt64, Mzxid: math.MaxInt64 - 1, Ctime: math.MinInt64, Mtime: math.MaxInt64, Version: math.MinInt32, Cversion: -7, Aversion: math.MaxInt32, EphemeralOwner: -1, Pzxid: math.MinInt64},
			NumChildren: -1,
		},
	}
	if big {
		data := make([]byte, 1<<20)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		nodes = append(nodes, &Node{Path: "/big", Data: data, ACL: WorldAnyone(), Stat: Stat{Czxid: 20, Mzxid: 21, Pzxid: 20}})
	}
	return nodes
}

// testSnapshotRecords interleaves application records with the nodes.
func testSnapshotRecords(tb testing.TB, big bool) []Record {
	tb.Helper()
	var recs []Record
	for i, n := range testSnapshotNodes(tb, big) {
		recs = append(recs, Record{Type: RecordNode, Node: n})
		switch i {
		case 0:
			recs = append(recs, Record{Type: FirstApplicationRecord, Payload: []byte("session 0x1000 timeout 30000")})
		case 1:
			recs = append(recs, Record{Type: 200, Payload: nil}) // read back as empty
		case 3:
			recs = append(recs, Record{Type: LastApplicationRecord, Payload: []byte{}})
		case 4:
			recs = append(recs, Record{Type: 100, Payload: bytes.Repeat([]byte{0xFF}, 300)})
		}
	}
	return recs
}

func writeTestSnapshot(tb testing.TB, recs []Record, opts SnapshotWriterOptions) ([]byte, SnapshotTrailer) {
	tb.Helper()
	var buf bytes.Buffer
	w, err := NewSnapshotWriter(&buf, testSnapshotHeader(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	for _, rec := range recs {
		if rec.Node != nil {
			err = w.WriteNode(rec.Node)
		} else {
			err = w.WriteRecord(rec.Type, rec.Payload)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	tr, err := w.Close()
	if err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), tr
}

// readTestSnapshot reads every record, copying payloads, until the first error.
func readTestSnapshot(data []byte) (SnapshotHeader, []Record, SnapshotTrailer, error) {
	r, err := NewSnapshotReader(bytes.NewReader(data))
	if err != nil {
		return SnapshotHeader{}, nil, SnapshotTrailer{}, err
	}
	defer r.Close()
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r.Header(), recs, r.Trailer(), nil
		}
		if err != nil {
			return r.Header(), recs, SnapshotTrailer{}, err
		}
		if rec.Payload != nil {
			rec.Payload = bytes.Clone(rec.Payload)
		}
		recs = append(recs, rec)
	}
}

// sameNode is Node.Equal plus telling a nil ACL list from an empty one.
func sameNode(a, b *Node) bool {
	return a.Equal(b) && (a.ACL == nil) == (b.ACL == nil)
}

// checkSameRecords compares records read with those written. An application
// payload read back is never nil, even when it was written as nil.
func checkSameRecords(tb testing.TB, got, want []Record) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("read %d records, wrote %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		switch {
		case g.Type != w.Type:
			tb.Errorf("record %d: type %v, want %v", i, g.Type, w.Type)
		case w.Node != nil && (g.Node == nil || !sameNode(g.Node, w.Node)):
			tb.Errorf("record %d: node\n got %+v\nwant %+v", i, g.Node, w.Node)
		case w.Node == nil && (g.Node != nil || !bytes.Equal(g.Payload, w.Payload) || g.Payload == nil):
			tb.Errorf("record %d: payload %q, want %q", i, g.Payload, w.Payload)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts SnapshotWriterOptions
	}{
		{"uncompressed", SnapshotWriterOptions{}},
		{"zstd default", SnapshotWriterOptions{Compress: true}},
		{"zstd fastest", SnapshotWriterOptions{Compress: true, CompressionLevel: 1}},
		{"zstd best", SnapshotWriterOptions{Compress: true, CompressionLevel: 19}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := testSnapshotRecords(t, true)
			data, wrote := writeTestSnapshot(t, want, tc.opts)
			h, got, tr, err := readTestSnapshot(data)
			if err != nil {
				t.Fatal(err)
			}
			checkSameRecords(t, got, want)

			wantHeader := testSnapshotHeader()
			if !h.CreatedAt.Equal(wantHeader.CreatedAt) || h.CreatedAt.Location() != time.UTC {
				t.Errorf("created_at %v, want %v in UTC", h.CreatedAt, wantHeader.CreatedAt)
			}
			h.CreatedAt, wantHeader.CreatedAt = time.Time{}, time.Time{}
			if !reflect.DeepEqual(h, wantHeader) {
				t.Errorf("header\n got %+v\nwant %+v", h, wantHeader)
			}

			var digest Digest
			var nodes uint64
			maxZxid := int64(0)
			for _, rec := range want {
				if rec.Node != nil {
					nodes++
					digest.Add(NodeDigest(rec.Node.Path, rec.Node.Data, rec.Node.Stat))
					maxZxid = max(maxZxid, rec.Node.Stat.Czxid, rec.Node.Stat.Mzxid, rec.Node.Stat.Pzxid)
				}
			}
			wantTrailer := SnapshotTrailer{
				NodeCount:   nodes,
				RecordCount: uint64(len(want)),
				Digest:      digest,
				MaxZxid:     maxZxid,
				BodyLength:  wrote.BodyLength, // checked by TestSnapshotBodyLength
			}
			if wrote != wantTrailer {
				t.Errorf("writer trailer %+v, want %+v", wrote, wantTrailer)
			}
			if tr != wrote {
				t.Errorf("reader trailer %+v, writer's %+v", tr, wrote)
			}
			if compressed := data[11]&1 != 0; compressed != tc.opts.Compress {
				t.Errorf("compressed flag %v, want %v", compressed, tc.opts.Compress)
			}
		})
	}
}

// TestSnapshotBodyLength checks the footer's body length against the file layout.
func TestSnapshotBodyLength(t *testing.T) {
	for _, compress := range []bool{false, true} {
		data, tr := writeTestSnapshot(t, testSnapshotRecords(t, true), SnapshotWriterOptions{Compress: compress})
		headerLen := int64(snapshotHeaderPrefixSize + snapshotBE.Uint32(data[12:]) + 4)
		if got := headerLen + tr.BodyLength + snapshotFooterSize; got != int64(len(data)) {
			t.Errorf("compress=%v: header %d + body %d + footer %d = %d, file is %d bytes", compress, headerLen, tr.BodyLength, snapshotFooterSize, got, len(data))
		}
		if compress && tr.BodyLength > 1<<20 {
			// The 1 MiB node is random, but the rest should compress.
			t.Logf("compressed body %d bytes", tr.BodyLength)
		}
	}
}

func TestSnapshotNextNodeSkipsApplicationRecords(t *testing.T) {
	recs := testSnapshotRecords(t, false)
	data, _ := writeTestSnapshot(t, recs, SnapshotWriterOptions{Compress: true})
	r, err := NewSnapshotReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []*Node
	for {
		n, err := r.NextNode()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	want := testSnapshotNodes(t, false)
	if len(got) != len(want) {
		t.Fatalf("got %d nodes, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameNode(got[i], want[i]) {
			t.Errorf("node %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next after EOF: %v, want io.EOF", err)
	}
	if r.Trailer().NodeCount != uint64(len(want)) {
		t.Errorf("trailer %+v", r.Trailer())
	}
}

func TestSnapshotEmptyPayloadFirst(t *testing.T) {
	data, _ := writeTestSnapshot(t, []Record{{Type: 64}}, SnapshotWriterOptions{})
	_, recs, _, err := readTestSnapshot(data)
	if err != nil || len(recs) != 1 || recs[0].Payload == nil || len(recs[0].Payload) != 0 {
		t.Fatalf("records %+v, err %v; want one empty, non-nil payload", recs, err)
	}
}

func TestSnapshotEmpty(t *testing.T) {
	for _, compress := range []bool{false, true} {
		data, tr := writeTestSnapshot(t, nil, SnapshotWriterOptions{Compress: compress})
		_, recs, got, err := readTestSnapshot(data)
		if err != nil || len(recs) != 0 || got != tr || tr.NodeCount != 0 || tr.Digest != 0 {
			t.Errorf("compress=%v: %d records, trailer %+v (wrote %+v), err %v", compress, len(recs), got, tr, err)
		}
	}
}

// TestSnapshotTruncated cuts a file at every length: each must fail, never end in
// io.EOF as a smaller tree.
func TestSnapshotTruncated(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			data, _ := writeTestSnapshot(t, testSnapshotRecords(t, false), SnapshotWriterOptions{Compress: compress})
			for k := range len(data) {
				_, _, _, err := readTestSnapshot(data[:k])
				if !errors.Is(err, ErrCorruptSnapshot) {
					t.Fatalf("cut at %d of %d: err %v, want ErrCorruptSnapshot", k, len(data), err)
				}
				if !compress && !errors.Is(err, ErrTruncatedSnapshot) {
					t.Errorf("cut at %d of %d: err %v, want ErrTruncatedSnapshot", k, len(data), err)
				}
			}
		})
	}
}

// TestSnapshotBitFlips damages every byte in turn. An uncompressed file is covered by
// CRCs end to end, so every flip must fail; a compressed one may survive a flip of
// a bit zstd ignores, but must then read back the same tree.
func TestSnapshotBitFlips(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			want := testSnapshotRecords(t, false)
			data, wantTrailer := writeTestSnapshot(t, want, SnapshotWriterOptions{Compress: compress})
			damaged := make([]byte, len(data))
			survived := 0
			for i := range data {
				for _, mask := range []byte{0x01, 0x80, 0xFF} {
					copy(damaged, data)
					damaged[i] ^= mask
					_, got, tr, err := readTestSnapshot(damaged)
					if err == nil {
						if !compress {
							t.Fatalf("flip %#02x at %d: no error", mask, i)
						}
						survived++
						checkSameRecords(t, got, want)
						if tr != wantTrailer {
							t.Fatalf("flip %#02x at %d: trailer %+v, want %+v", mask, i, tr, wantTrailer)
						}
						continue
					}
					if !errors.Is(err, ErrCorruptSnapshot) {
						t.Fatalf("flip %#02x at %d: err %v, want ErrCorruptSnapshot", mask, i, err)
					}
				}
			}
			if survived > 0 {
				t.Logf("%d flips of %d in the compressed file decoded to the same tree", survived, 3*len(data))
			}
		})
	}
}

// Raw building blocks for hand-made files.

func rawSnapshotHeader(version, flags uint16, js string) []byte {
	b := []byte(snapshotMagic)
	b = snapshotBE.AppendUint16(b, version)
	b = snapshotBE.AppendUint16(b, flags)
	b = snapshotBE.AppendUint32(b, uint32(len(js)))
	b = append(b, js...)
	return snapshotBE.AppendUint32(b, crc32.Checksum(b, snapshotCRCTable))
}

func rawSnapshotRecord(t RecordType, payload []byte) []byte {
	b := snapshotBE.AppendUint32(nil, uint32(len(payload)))
	b = append(b, byte(t))
	b = append(b, payload...)
	return snapshotBE.AppendUint32(b, crc32.Checksum(b[4:], snapshotCRCTable))
}

func rawSnapshotFooter(tr SnapshotTrailer) []byte {
	b := tr.appendTo(nil)
	b = snapshotBE.AppendUint32(b, crc32.Checksum(b, snapshotCRCTable))
	return append(b, snapshotEndMagic...)
}

// rawSnapshot is an uncompressed file made of the given pieces; edit, if set,
// changes the trailers before they are written.
type rawSnapshot struct {
	header  []byte
	records [][]byte
	nodes   []*Node
	between []byte // after the end record
	after   []byte // after the footer
	edit    func(end, footer *SnapshotTrailer)
	noEnd   bool
}

func (s rawSnapshot) bytes() []byte {
	var tr SnapshotTrailer
	body := []byte{}
	for _, n := range s.nodes {
		body = append(body, rawSnapshotRecord(RecordNode, appendNodePayload(nil, n))...)
		tr.NodeCount++
		tr.RecordCount++
		tr.Digest.Add(n.Digest())
		tr.MaxZxid = max(tr.MaxZxid, n.Stat.Czxid, n.Stat.Mzxid, n.Stat.Pzxid)
	}
	for _, r := range s.records {
		body = append(body, r...)
		tr.RecordCount++
	}
	end, footer := tr, tr
	if s.edit != nil {
		s.edit(&end, &footer)
	}
	if !s.noEnd {
		body = append(body, rawSnapshotRecord(RecordEnd, end.appendTo(nil))...)
	}
	body = append(body, s.between...)
	if footer.BodyLength == 0 {
		footer.BodyLength = int64(len(body))
	}
	header := s.header
	if header == nil {
		header = rawSnapshotHeader(1, 0, `{"kind":"export"}`)
	}
	out := append(append(append([]byte{}, header...), body...), rawSnapshotFooter(footer)...)
	return append(out, s.after...)
}

func TestSnapshotReaderRejects(t *testing.T) {
	node := &Node{Path: "/a", Data: []byte("x"), ACL: WorldAnyone(), Stat: Stat{Czxid: 5, Mzxid: 6, Pzxid: 5}}
	nodes := []*Node{node}
	validHeader := rawSnapshotHeader(1, 0, `{"kind":"export"}`)
	badPath := appendNodePayload(nil, &Node{Path: "/a/", ACL: WorldAnyone()})
	for _, tc := range []struct {
		name      string
		data      []byte
		want      error  // nil: must succeed
		truncated bool   // must also match ErrTruncatedSnapshot
		msg       string // part of the message
	}{
		{name: "valid", data: rawSnapshot{nodes: nodes}.bytes()},
		{name: "unknown JSON fields are ignored", data: rawSnapshot{nodes: nodes,
			header: rawSnapshotHeader(1, 0, `{"kind":"export","future_field":{"x":[1,2]},"source":"s"}`)}.bytes()},
		{name: "empty file", data: nil, want: ErrCorruptSnapshot, truncated: true, msg: "at offset 0: file ends in the header magic"},
		{name: "bad magic", data: append([]byte("ZK2RSNAQ"), validHeader[8:]...), want: ErrCorruptSnapshot, msg: "at offset 0: not a zk2raft snapshot"},
		{name: "header CRC", data: func() []byte {
			b := rawSnapshot{nodes: nodes}.bytes()
			b[17] ^= 1
			return b
		}(), want: ErrCorruptSnapshot, msg: "header CRC mismatch"},
		{name: "header JSON too long", data: append(append([]byte(snapshotMagic), 0, 1, 0, 0), snapshotBE.AppendUint32(nil, MaxSnapshotHeaderJSON+1)...),
			want: ErrCorruptSnapshot, msg: "at offset 12: header JSON length 1048577 exceeds the 1048576-byte limit"},
		{name: "header JSON length past the end", data: append(append([]byte(snapshotMagic), 0, 1, 0, 0), snapshotBE.AppendUint32(nil, MaxSnapshotHeaderJSON)...),
			want: ErrCorruptSnapshot, truncated: true, msg: "file ends in the header JSON"},
		{name: "header not JSON", data: rawSnapshot{header: rawSnapshotHeader(1, 0, `{"kind":`)}.bytes(), want: ErrCorruptSnapshot, msg: "header JSON"},
		{name: "header JSON trailing data", data: rawSnapshot{header: rawSnapshotHeader(1, 0, `{} {}`)}.bytes(), want: ErrCorruptSnapshot, msg: "header JSON"},
		{name: "newer version", data: rawSnapshot{header: rawSnapshotHeader(2, 0, `{}`)}.bytes(), want: ErrUnsupportedSnapshot, msg: "format version 2"},
		{name: "unknown flag", data: rawSnapshot{header: rawSnapshotHeader(1, 2, `{}`)}.bytes(), want: ErrUnsupportedSnapshot, msg: "unknown flags 0x0002"},
		{name: "reserved record type", data: rawSnapshot{nodes: nodes, records: [][]byte{rawSnapshotRecord(2, nil)}}.bytes(),
			want: ErrCorruptSnapshot, msg: "unknown record type 2"},
		{name: "record type 0", data: rawSnapshot{records: [][]byte{rawSnapshotRecord(0, []byte("x"))}}.bytes(),
			want: ErrCorruptSnapshot, msg: fmt.Sprintf("at offset %d: unknown record type 0", len(validHeader))},
		{name: "record too long", data: rawSnapshot{records: [][]byte{append(snapshotBE.AppendUint32(nil, MaxSnapshotRecordPayload+1), 64)}}.bytes(),
			want: ErrCorruptSnapshot, msg: fmt.Sprintf("at offset %d: record length 67108865 exceeds", len(validHeader))},
		{name: "record CRC", data: func() []byte {
			rec := rawSnapshotRecord(64, []byte("payload"))
			rec[7] ^= 1
			return rawSnapshot{nodes: nodes, records: [][]byte{rec}}.bytes()
		}(), want: ErrCorruptSnapshot, msg: "record CRC mismatch"},
		{name: "invalid path", data: rawSnapshot{records: [][]byte{rawSnapshotRecord(RecordNode, badPath)}}.bytes(),
			want: ErrInvalidPath, msg: "node record: znode: invalid path"},
		{name: "node payload trailing bytes", data: rawSnapshot{records: [][]byte{rawSnapshotRecord(RecordNode, append(appendNodePayload(nil, node), 0))}}.bytes(),
			want: ErrCorruptSnapshot, msg: "1 unexpected bytes after the child count"},
		{name: "node payload short", data: rawSnapshot{records: [][]byte{rawSnapshotRecord(RecordNode, appendNodePayload(nil, node)[:20])}}.bytes(),
			want: ErrCorruptSnapshot, msg: "node record: ACL count 1 does not fit"},
		{name: "node data length -2", data: rawSnapshot{records: [][]byte{rawSnapshotRecord(RecordNode, []byte{0, 0, 0, 1, '/', 0xFF, 0xFF, 0xFF, 0xFE})}}.bytes(),
			want: ErrCorruptSnapshot, msg: "data length -2"},
		{name: "huge ACL count", data: rawSnapshot{records: [][]byte{rawSnapshotRecord(RecordNode, []byte{0, 0, 0, 1, '/', 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF})}}.bytes(),
			want: ErrCorruptSnapshot, msg: "ACL count 2147483647 does not fit"},
		{name: "no end record", data: rawSnapshot{nodes: nodes, noEnd: true}.bytes(), want: ErrCorruptSnapshot, truncated: true,
			msg: "file ends before the end record"},
		{name: "end record node count", data: rawSnapshot{nodes: nodes, edit: func(end, _ *SnapshotTrailer) { end.NodeCount++ }}.bytes(),
			want: ErrCorruptSnapshot, msg: "end record counts 2 nodes, body has 1"},
		{name: "end record record count", data: rawSnapshot{nodes: nodes, edit: func(end, _ *SnapshotTrailer) { end.RecordCount = 0 }}.bytes(),
			want: ErrCorruptSnapshot, msg: "end record counts 0 records, body has 1"},
		{name: "end record digest", data: rawSnapshot{nodes: nodes, edit: func(end, _ *SnapshotTrailer) { end.Digest++ }}.bytes(),
			want: ErrCorruptSnapshot, msg: "end record digest"},
		{name: "end record max zxid below a node's", data: rawSnapshot{nodes: nodes, edit: func(end, _ *SnapshotTrailer) { end.MaxZxid = 5 }}.bytes(),
			want: ErrCorruptSnapshot, msg: "end record max zxid 0x5, a node has 0x6"},
		{name: "end record max zxid above nodes is fine", data: rawSnapshot{nodes: nodes, edit: func(end, footer *SnapshotTrailer) {
			end.MaxZxid, footer.MaxZxid = 100, 100
		}}.bytes()},
		{name: "end record body length", data: rawSnapshot{nodes: nodes, edit: func(end, _ *SnapshotTrailer) { end.BodyLength = 10 }}.bytes(),
			want: ErrCorruptSnapshot, msg: "end record body length 10, want 0"},
		{name: "end record short", data: rawSnapshot{noEnd: true, records: [][]byte{rawSnapshotRecord(RecordEnd, make([]byte, 39))}}.bytes(),
			want: ErrCorruptSnapshot, msg: "end record of 39 bytes, want 40"},
		{name: "footer differs from end record", data: rawSnapshot{nodes: nodes, edit: func(_, footer *SnapshotTrailer) { footer.Digest++ }}.bytes(),
			want: ErrCorruptSnapshot, msg: "does not match end record"},
		{name: "footer body length", data: rawSnapshot{nodes: nodes, edit: func(_, footer *SnapshotTrailer) { footer.BodyLength = 1 }}.bytes(),
			want: ErrCorruptSnapshot, msg: "footer body length 1, body is"},
		{name: "footer CRC", data: func() []byte {
			b := rawSnapshot{nodes: nodes}.bytes()
			b[len(b)-20] ^= 1
			return b
		}(), want: ErrCorruptSnapshot, msg: "footer CRC mismatch"},
		{name: "bytes between end record and footer", data: rawSnapshot{nodes: nodes, between: []byte{0}}.bytes(),
			want: ErrCorruptSnapshot, msg: "data after the end record"},
		{name: "byte after footer", data: rawSnapshot{nodes: nodes, after: []byte{0}}.bytes(),
			want: ErrCorruptSnapshot, msg: "data after the end record (or after the footer)"},
		{name: "footer cut", data: func() []byte { b := rawSnapshot{nodes: nodes}.bytes(); return append(b[:len(b)-snapshotFooterSize], 0) }(),
			want: ErrCorruptSnapshot, truncated: true, msg: "file ends inside a record"},
		{name: "a whole snapshot after the footer", data: append(rawSnapshot{nodes: nodes}.bytes(), rawSnapshot{nodes: nodes}.bytes()...),
			want: ErrCorruptSnapshot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := readTestSnapshot(tc.data)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.truncated != errors.Is(err, ErrTruncatedSnapshot) {
				t.Errorf("err %v: truncated %v, want %v", err, !tc.truncated, tc.truncated)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestSnapshotErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts SnapshotWriterOptions
		want string
	}{
		{"uncompressed", SnapshotWriterOptions{}, "znode: snapshot corrupt at offset %d: record CRC mismatch"},
		{"compressed", SnapshotWriterOptions{Compress: true}, "znode: snapshot corrupt at body offset 0 (uncompressed): record CRC mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Write a record with a wrong CRC, before compression.
			var buf bytes.Buffer
			w, err := NewSnapshotWriter(&buf, testSnapshotHeader(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			w.scratch = append(w.beginRecord(), "abc"...)
			w.scratch[4] = 64
			w.scratch = snapshotBE.AppendUint32(w.scratch, 0xdeadbeef)
			snapshotBE.PutUint32(w.scratch, 3)
			if _, err := w.body.Write(w.scratch); err != nil {
				t.Fatal(err)
			}
			w.trailer.RecordCount++
			if _, err := w.Close(); err != nil {
				t.Fatal(err)
			}
			_, _, _, err = readTestSnapshot(buf.Bytes())
			want := tc.want
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, snapshotHeaderPrefixSize+int(snapshotBE.Uint32(buf.Bytes()[12:]))+4)
			}
			if err == nil || err.Error() != want {
				t.Errorf("err %v\nwant %s", err, want)
			}
			var se *SnapshotError
			if !errors.As(err, &se) || se.Compressed != tc.opts.Compress {
				t.Errorf("err %#v: want a *SnapshotError with Compressed %v", err, tc.opts.Compress)
			}
		})
	}
}

func TestSnapshotWriterValidates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(*SnapshotWriter) error
		want  string
	}{
		{"invalid path", func(w *SnapshotWriter) error { return w.WriteNode(&Node{Path: "/a//b"}) }, "znode: invalid path"},
		{"empty path", func(w *SnapshotWriter) error { return w.WriteNode(&Node{Path: ""}) }, "znode: invalid path"},
		{"node record type", func(w *SnapshotWriter) error { return w.WriteRecord(RecordNode, nil) }, "not an application type"},
		{"end record type", func(w *SnapshotWriter) error { return w.WriteRecord(RecordEnd, nil) }, "not an application type"},
		{"reserved record type", func(w *SnapshotWriter) error { return w.WriteRecord(63, nil) }, "not an application type"},
		{"record too large", func(w *SnapshotWriter) error { return w.WriteRecord(64, make([]byte, MaxSnapshotRecordPayload+1)) }, "limit"},
		{"node too large", func(w *SnapshotWriter) error {
			return w.WriteNode(&Node{Path: "/big", Data: make([]byte, MaxSnapshotRecordPayload)})
		}, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewSnapshotWriter(&buf, testSnapshotHeader(), SnapshotWriterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.write(w); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
			// A rejected write leaves the writer usable and writes nothing.
			node := &Node{Path: "/ok", Data: []byte("v")}
			if err := w.WriteNode(node); err != nil {
				t.Fatal(err)
			}
			tr, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			_, recs, _, err := readTestSnapshot(buf.Bytes())
			if err != nil || len(recs) != 1 || tr.RecordCount != 1 {
				t.Fatalf("after a rejected write: %d records, trailer %+v, err %v", len(recs), tr, err)
			}
			if err := w.WriteNode(node); !errors.Is(err, ErrSnapshotWriterClosed) {
				t.Errorf("write after Close: %v, want ErrSnapshotWriterClosed", err)
			}
			if tr2, err := w.Close(); err != nil || tr2 != tr {
				t.Errorf("second Close: %+v, %v; want %+v, nil", tr2, err, tr)
			}
		})
	}
}

func TestNewSnapshotWriterRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    func(*SnapshotHeader)
		opts SnapshotWriterOptions
		want string
	}{
		{"no kind", func(h *SnapshotHeader) { h.Kind = "" }, SnapshotWriterOptions{}, "snapshot kind"},
		{"unknown kind", func(h *SnapshotHeader) { h.Kind = "backup" }, SnapshotWriterOptions{}, "snapshot kind"},
		{"level", func(*SnapshotHeader) {}, SnapshotWriterOptions{Compress: true, CompressionLevel: 23}, "zstd level"},
		{"header too large", func(h *SnapshotHeader) { h.Meta = map[string]string{"x": strings.Repeat("a", MaxSnapshotHeaderJSON)} },
			SnapshotWriterOptions{}, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testSnapshotHeader()
			tc.h(&h)
			_, err := NewSnapshotWriter(io.Discard, h, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestSnapshotWriterStickyError(t *testing.T) {
	broken := errors.New("disk full")
	w, err := NewSnapshotWriter(failingWriter{broken}, testSnapshotHeader(), SnapshotWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The bufio buffer absorbs writes until it fills.
	var werr error
	for i := 0; werr == nil && i < 10000; i++ {
		werr = w.WriteNode(&Node{Path: "/n", Data: make([]byte, 1000)})
	}
	if !errors.Is(werr, broken) {
		t.Fatalf("write error %v, want %v", werr, broken)
	}
	if err := w.WriteRecord(64, nil); !errors.Is(err, broken) {
		t.Errorf("write after failure: %v", err)
	}
	if _, err := w.Close(); !errors.Is(err, broken) {
		t.Errorf("Close after failure: %v", err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestSnapshotWriterCreatedAt(t *testing.T) {
	h := testSnapshotHeader()
	h.CreatedAt = time.Time{}
	var buf bytes.Buffer
	before := time.Now()
	w, err := NewSnapshotWriter(&buf, h, SnapshotWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _, _, err := readTestSnapshot(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt.Before(before.Add(-time.Second)) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("created_at %v, want about %v in UTC", got.CreatedAt, before.UTC())
	}
}

func TestSnapshotFile(t *testing.T) {
	nodes := testSnapshotNodes(t, false)
	write := func(t *testing.T, f *SnapshotFile) {
		t.Helper()
		for _, n := range nodes {
			if err := f.WriteNode(n); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.WriteRecord(64, []byte("meta")); err != nil {
			t.Fatal(err)
		}
		f.ObserveZxid(math.MaxInt64)
	}
	entries := func(t *testing.T, dir string) []string {
		t.Helper()
		des, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		return names
	}

	t.Run("commit", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "export.snap")
		if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := CreateSnapshotFile(path, testSnapshotHeader(), SnapshotWriterOptions{Compress: true})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Abort()
		write(t, f)
		if got, _ := os.ReadFile(path); string(got) != "old" {
			t.Fatalf("final name changed before Commit: %q", got)
		}
		tr, err := f.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if tr.MaxZxid != math.MaxInt64 || tr.NodeCount != uint64(len(nodes)) || tr.RecordCount != uint64(len(nodes)+1) {
			t.Errorf("trailer %+v", tr)
		}
		if got := entries(t, dir); !reflect.DeepEqual(got, []string{"export.snap"}) {
			t.Errorf("directory holds %q, want just export.snap", got)
		}
		r, err := OpenSnapshotFile(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var n int
		for {
			_, err := r.NextNode()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != len(nodes) || r.Trailer() != tr {
			t.Errorf("read %d nodes, trailer %+v; want %d, %+v", n, r.Trailer(), len(nodes), tr)
		}
		if err := f.Abort(); err != nil {
			t.Errorf("Abort after Commit: %v", err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("Abort after Commit removed the file: %v", err)
		}
		if _, err := f.Commit(); !errors.Is(err, ErrSnapshotWriterClosed) {
			t.Errorf("second Commit: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})

	t.Run("abort", func(t *testing.T) {
		for _, compress := range []bool{false, true} {
			dir := t.TempDir()
			path := filepath.Join(dir, "export.snap")
			f, err := CreateSnapshotFile(path, testSnapshotHeader(), SnapshotWriterOptions{Compress: compress})
			if err != nil {
				t.Fatal(err)
			}
			write(t, f)
			for range 2 {
				if err := f.Abort(); err != nil {
					t.Fatal(err)
				}
			}
			if got := entries(t, dir); len(got) != 0 {
				t.Errorf("directory holds %q after Abort", got)
			}
			if err := f.WriteNode(nodes[0]); !errors.Is(err, ErrSnapshotWriterClosed) {
				t.Errorf("write after Abort: %v", err)
			}
			if _, err := f.Commit(); !errors.Is(err, ErrSnapshotWriterClosed) {
				t.Errorf("Commit after Abort: %v", err)
			}
		}
	})

	t.Run("missing directory", func(t *testing.T) {
		_, err := CreateSnapshotFile(filepath.Join(t.TempDir(), "no", "such.snap"), testSnapshotHeader(), SnapshotWriterOptions{})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err %v, want ErrNotExist", err)
		}
	})

	t.Run("directory name", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := CreateSnapshotFile(dir+string(filepath.Separator), testSnapshotHeader(), SnapshotWriterOptions{}); err == nil {
			t.Fatal("no error")
		}
		if got := entries(t, dir); len(got) != 0 {
			t.Errorf("directory holds %q", got)
		}
	})

	t.Run("bad header leaves nothing", func(t *testing.T) {
		dir := t.TempDir()
		h := testSnapshotHeader()
		h.Kind = ""
		if _, err := CreateSnapshotFile(filepath.Join(dir, "x.snap"), h, SnapshotWriterOptions{}); err == nil {
			t.Fatal("no error")
		}
		if got := entries(t, dir); len(got) != 0 {
			t.Errorf("directory holds %q", got)
		}
	})
}

func TestReadSnapshotTrailer(t *testing.T) {
	dir := t.TempDir()
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("s-%v.snap", compress))
			f, err := CreateSnapshotFile(path, testSnapshotHeader(), SnapshotWriterOptions{Compress: compress})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range testSnapshotNodes(t, true) {
				if err := f.WriteNode(n); err != nil {
					t.Fatal(err)
				}
			}
			want, err := f.Commit()
			if err != nil {
				t.Fatal(err)
			}
			h, tr, err := ReadSnapshotTrailer(path)
			if err != nil {
				t.Fatal(err)
			}
			if tr != want {
				t.Errorf("trailer %+v, want %+v", tr, want)
			}
			if h.Source != testSnapshotHeader().Source || h.Kind != SnapshotKindExport {
				t.Errorf("header %+v", h)
			}

			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, dc := range []struct {
				name string
				data []byte
				msg  string
			}{
				{"truncated in the footer", data[:len(data)-1], "no end magic"},
				{"truncated in the body", append(bytes.Clone(data[:len(data)/2]), data[len(data)-snapshotFooterSize:]...), "footer body length"},
				{"byte appended", append(bytes.Clone(data), 0), "no end magic"},
				{"footer flipped", func() []byte { b := bytes.Clone(data); b[len(b)-snapshotFooterSize] ^= 1; return b }(), "footer CRC mismatch"},
				{"header flipped", func() []byte { b := bytes.Clone(data); b[20] ^= 1; return b }(), "header CRC mismatch"},
				{"header only", data[:40], "ends"},
			} {
				p := filepath.Join(dir, "damaged.snap")
				if err := os.WriteFile(p, dc.data, 0o600); err != nil {
					t.Fatal(err)
				}
				_, _, err := ReadSnapshotTrailer(p)
				if !errors.Is(err, ErrCorruptSnapshot) || !strings.Contains(err.Error(), dc.msg) || !strings.Contains(err.Error(), p) {
					t.Errorf("%s: err %v, want ErrCorruptSnapshot naming %s and containing %q", dc.name, err, p, dc.msg)
				}
			}
		})
	}
	if _, _, err := ReadSnapshotTrailer(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestSnapshotReaderBoundedAllocation checks that a record length near the limit on a
// short file does not allocate the whole payload.
func TestSnapshotReaderBoundedAllocation(t *testing.T) {
	data := append(rawSnapshotHeader(1, 0, `{}`), snapshotBE.AppendUint32(nil, MaxSnapshotRecordPayload)...)
	data = append(data, 64)
	data = append(data, make([]byte, 1000+snapshotFooterSize)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, _, err := readTestSnapshot(data)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncatedSnapshot) {
		t.Fatalf("err %v, want ErrTruncatedSnapshot", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("allocated %d bytes for a %d-byte file", alloc, len(data))
	}
}

func TestSnapshotWriterAllocations(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled() {
		t.Skip("allocation counts differ under coverage and the race detector")
	}
	w, err := NewSnapshotWriter(io.Discard, testSnapshotHeader(), SnapshotWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node := &Node{Path: "/some/fairly/long/path/node-0000000001", Data: make([]byte, 100), ACL: WorldAnyone(), Stat: Stat{Czxid: 1}}
	// WriteNode itself must not allocate; ValidatePath and NodeDigest may.
	budget := testing.AllocsPerRun(100, func() { _, _ = ValidatePath(node.Path), node.Digest() })
	if allocs := testing.AllocsPerRun(1000, func() {
		if err := w.WriteNode(node); err != nil {
			t.Fatal(err)
		}
	}); allocs > budget {
		t.Errorf("WriteNode: %v allocations per node, ValidatePath and NodeDigest make %v", allocs, budget)
	}
}

// raceEnabled reports whether the race detector is on, judged by the extra
// allocation it makes in a function that allocates nothing otherwise.
func raceEnabled() bool {
	var x int
	return testing.AllocsPerRun(10, func() { x++ }) > 0
}

func TestRecordTypeString(t *testing.T) {
	for _, tc := range []struct {
		t    RecordType
		want string
	}{{RecordNode, "node"}, {RecordEnd, "end"}, {64, "application(64)"}, {254, "application(254)"}, {2, "reserved(2)"}, {0, "reserved(0)"}} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("%d: %q, want %q", uint8(tc.t), got, tc.want)
		}
	}
}

// benchmarkNodes makes n nodes with 100 bytes of data each.
func benchmarkNodes(n int) []*Node {
	nodes := make([]*Node, n)
	data := bytes.Repeat([]byte("0123456789"), 10)
	for i := range nodes {
		nodes[i] = &Node{
			Path: fmt.Sprintf("/services/app-%03d/instances/node-%010d", i%100, i),
			Data: data,
			ACL:  WorldAnyone(),
			Stat: Stat{Czxid: int64(i), Mzxid: int64(i), Pzxid: int64(i), Ctime: 1715000000000, Mtime: 1715000000000},
		}
	}
	return nodes
}

const benchmarkNodeCount = 100_000

func BenchmarkSnapshotWrite(b *testing.B) {
	nodes := benchmarkNodes(benchmarkNodeCount)
	plain, _ := writeTestSnapshot(b, recordsOf(nodes), SnapshotWriterOptions{})
	for _, compress := range []bool{false, true} {
		b.Run(fmt.Sprintf("zstd=%v", compress), func(b *testing.B) {
			b.SetBytes(int64(len(plain))) // uncompressed size, so that MB/s compare
			b.ReportAllocs()
			for b.Loop() {
				w, err := NewSnapshotWriter(io.Discard, testSnapshotHeader(), SnapshotWriterOptions{Compress: compress})
				if err != nil {
					b.Fatal(err)
				}
				for _, n := range nodes {
					if err := w.WriteNode(n); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*benchmarkNodeCount/b.Elapsed().Seconds(), "nodes/s")
		})
	}
}

func BenchmarkSnapshotRead(b *testing.B) {
	nodes := benchmarkNodes(benchmarkNodeCount)
	plain, _ := writeTestSnapshot(b, recordsOf(nodes), SnapshotWriterOptions{})
	for _, compress := range []bool{false, true} {
		b.Run(fmt.Sprintf("zstd=%v", compress), func(b *testing.B) {
			data, _ := writeTestSnapshot(b, recordsOf(nodes), SnapshotWriterOptions{Compress: compress})
			b.SetBytes(int64(len(plain))) // uncompressed size, so that MB/s compare
			b.ReportMetric(float64(len(data)), "file-bytes")
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewSnapshotReader(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					_, err := r.NextNode()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != benchmarkNodeCount {
					b.Fatalf("read %d nodes", n)
				}
				r.Close()
			}
			b.ReportMetric(float64(b.N)*benchmarkNodeCount/b.Elapsed().Seconds(), "nodes/s")
		})
	}
}

func recordsOf(nodes []*Node) []Record {
	recs := make([]Record, len(nodes))
	for i, n := range nodes {
		recs[i] = Record{Type: RecordNode, Node: n}
	}
	return recs
}

// TestSnapshotReaderShortReads reads through sources that return little at a time.
func TestSnapshotReaderShortReads(t *testing.T) {
	want := testSnapshotRecords(t, true)
	for _, compress := range []bool{false, true} {
		data, wrote := writeTestSnapshot(t, want, SnapshotWriterOptions{Compress: compress})
		for _, tc := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{
			{"one byte", iotest.OneByteReader},
			{"half", iotest.HalfReader},
			{"data with EOF", iotest.DataErrReader},
		} {
			t.Run(fmt.Sprintf("%s compress=%v", tc.name, compress), func(t *testing.T) {
				r, err := NewSnapshotReader(tc.wrap(bytes.NewReader(data)))
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				var got []Record
				for {
					rec, err := r.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					if rec.Payload != nil {
						rec.Payload = bytes.Clone(rec.Payload)
					}
					got = append(got, rec)
				}
				checkSameRecords(t, got, want)
				if r.Trailer() != wrote {
					t.Errorf("trailer %+v, want %+v", r.Trailer(), wrote)
				}
			})
		}
	}
}

// TestSnapshotReaderSourceError checks that a failing source is reported as itself,
// with an offset, and not as corruption.
func TestSnapshotReaderSourceError(t *testing.T) {
	broken := errors.New("input/output error")
	for _, compress := range []bool{false, true} {
		data, _ := writeTestSnapshot(t, testSnapshotRecords(t, false), SnapshotWriterOptions{Compress: compress})
		for _, cut := range []int{0, 10, 300, len(data) / 2, len(data) - 1} {
			r, err := NewSnapshotReader(io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(broken)))
			if err == nil {
				for err == nil {
					_, err = r.Next()
				}
				r.Close()
			}
			if !errors.Is(err, broken) || errors.Is(err, ErrCorruptSnapshot) || !strings.Contains(err.Error(), "offset") {
				t.Errorf("compress=%v cut %d: err %v, want the source's error with an offset", compress, cut, err)
			}
		}
	}
}

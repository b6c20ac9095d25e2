package dualwrite

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// queueFuzzSeeds are the seed inputs under testdata/fuzz, by target and
// name. TestQueueFuzzSeeds checks the files match them; with
// ZK2RAFT_REWRITE=1 it writes them.
func queueFuzzSeeds() map[string]map[string][]byte {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano()
	rec := encodeQueueRecord(1, at, []byte("a mirrored write"))
	two := append(encodeQueueRecord(7, at, nil), encodeQueueRecord(8, at, []byte("second"))...)
	badCRC := bytes.Clone(rec)
	badCRC[len(badCRC)-1] ^= 1
	since := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	bootID := "706428bf-64a0-4a14-8940-7f328cad47c1"
	lostState := queueFileState{next: 42, acked: 40, bootID: bootID,
		lost: &LostInfo{FirstZxid: 0x100000001, LastZxid: 0x2000000ff, Count: 1234, Since: since}}
	unknownState := queueFileState{next: 1 << 40, acked: 1<<40 - 1, strict: true,
		lost: &LostInfo{Since: since}}
	badState := encodeQueueState(queueFileState{next: 5, acked: 9})
	return map[string]map[string][]byte{
		"FuzzQueueRecord": {
			"one":            rec,
			"two":            two,
			"empty-data":     encodeQueueRecord(7, 0, nil),
			"cut-short":      rec[:len(rec)-3],
			"half-a-header":  rec[:10],
			"bad-crc":        badCRC,
			"zeros":          make([]byte, 64),
			"length-too-big": append([]byte{0xff, 0xff, 0xff, 0xff}, rec[4:]...),
		},
		"FuzzQueueState": {
			"new":            encodeQueueState(queueFileState{next: 1}),
			"clean":          encodeQueueState(queueFileState{next: 10, acked: 3, clean: true, bootID: bootID}),
			"lost":           encodeQueueState(lostState),
			"unknown-loss":   encodeQueueState(unknownState),
			"acked-past-end": badState,
			"cut-short":      encodeQueueState(lostState)[:40],
		},
	}
}

func TestQueueFuzzSeeds(t *testing.T) {
	rewrite := os.Getenv("ZK2RAFT_REWRITE") == "1"
	for target, seeds := range queueFuzzSeeds() {
		for name, v := range seeds {
			path := filepath.Join("testdata", "fuzz", target, name)
			want := []byte("go test fuzz v1\n[]byte(" + quoteFuzzBytes(v) + ")\n")
			if rewrite {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is not the seed the encoders make now (ZK2RAFT_REWRITE=1 rewrites it): %v", path, err)
			}
		}
	}
}

// quoteFuzzBytes quotes b as the fuzz corpus format does (a Go string
// literal with \x escapes).
func quoteFuzzBytes(b []byte) string {
	var out []byte
	out = append(out, '"')
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c >= 0x20 && c < 0x7f:
			out = append(out, c)
		default:
			const hex = "0123456789abcdef"
			out = append(out, '\\', 'x', hex[c>>4], hex[c&0xf])
		}
	}
	return string(append(out, '"'))
}

// FuzzQueueRecord checks the record decoder on arbitrary bytes: it never
// panics, never reads past what it reports, and whatever decodes re-encodes
// to the same bytes.
func FuzzQueueRecord(f *testing.F) {
	for _, v := range queueFuzzSeeds()["FuzzQueueRecord"] {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, data, n, err := decodeQueueRecord(b)
		if err != nil {
			return
		}
		if n < queueRecordHeaderLen || n > len(b) || len(data) != n-queueRecordHeaderLen || int(h.dataLen) != len(data) {
			t.Fatalf("decoded %d bytes with %d of data from %d", n, len(data), len(b))
		}
		if again := encodeQueueRecord(h.seq, h.at, data); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b[:n])
		}
	})
}

// FuzzQueueState checks the state file's decoder.
func FuzzQueueState(f *testing.F) {
	for _, v := range queueFuzzSeeds()["FuzzQueueState"] {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		st, err := decodeQueueState(v)
		if err != nil {
			return
		}
		if st.next == 0 || st.acked >= st.next || len(st.bootID) > queueMaxBootIDLen {
			t.Fatalf("accepted %+v", st)
		}
		if l := st.lost; l != nil && (l.Count < 0 || l.FirstZxid > l.LastZxid || l.Count == 0 && (l.FirstZxid != 0 || l.LastZxid != 0)) {
			t.Fatalf("accepted lost %+v", *l)
		}
		if again := encodeQueueState(st); !bytes.Equal(again, v) {
			t.Fatalf("re-encoded %x, decoded from %x", again, v)
		}
	})
}

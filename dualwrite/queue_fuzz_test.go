package dualwrite

import (
	"bytes"
	"testing"
	"time"
)

// FuzzQueueRecord checks the record decoders on arbitrary values: they never
// panic, the header check is implied by the full one, and whatever decodes
// re-encodes to the same bytes.
func FuzzQueueRecord(f *testing.F) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano()
	f.Add(uint64(1), encodeQueueRecord(1, at, []byte("a mirrored write")))
	f.Add(uint64(7), encodeQueueRecord(7, 0, nil))
	f.Add(uint64(7), encodeQueueRecord(8, at, []byte("under another seq")))
	f.Fuzz(func(t *testing.T, seq uint64, v []byte) {
		h, herr := decodeQueueRecordHeader(v)
		data, gotAt, err := decodeQueueRecord(seq, v)
		if herr == nil && len(v) != queueRecordHeaderLen+int(h.dataLen) {
			t.Fatalf("header accepted: %d bytes of data in a %d-byte value", h.dataLen, len(v))
		}
		if err != nil {
			return
		}
		if herr != nil {
			t.Fatalf("record accepted, header refused: %v", herr)
		}
		if again := encodeQueueRecord(seq, gotAt, data); !bytes.Equal(again, v) {
			t.Fatalf("re-encoded %x, decoded from %x", again, v)
		}
	})
}

// FuzzQueueState checks the state value's decoder.
func FuzzQueueState(f *testing.F) {
	f.Add(encodeQueueState(1, 0))
	f.Add(encodeQueueState(1<<40, 1<<40-1))
	f.Add(encodeQueueState(5, 9)[:20])
	f.Fuzz(func(t *testing.T, v []byte) {
		next, acked, err := decodeQueueState(v)
		if err != nil {
			return
		}
		if next == 0 || acked >= next {
			t.Fatalf("accepted next %d, acked %d", next, acked)
		}
		if again := encodeQueueState(next, acked); !bytes.Equal(again, v) {
			t.Fatalf("re-encoded %x, decoded from %x", again, v)
		}
	})
}

// FuzzQueueLost checks the lost value's decoder.
func FuzzQueueLost(f *testing.F) {
	since := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	f.Add(encodeQueueLost(LostInfo{FirstZxid: 0x100000001, LastZxid: 0x100000001, Count: 1, Since: since}))
	f.Add(encodeQueueLost(LostInfo{FirstZxid: 0x100000001, LastZxid: 0x2000000ff, Count: 1234, Since: since}))
	f.Add(encodeQueueLost(LostInfo{FirstZxid: 5, LastZxid: 4, Count: 0, Since: since}))
	f.Fuzz(func(t *testing.T, v []byte) {
		l, err := decodeQueueLost(v)
		if err != nil {
			return
		}
		if l.Count < 1 || l.FirstZxid > l.LastZxid {
			t.Fatalf("accepted %+v", l)
		}
		if again := encodeQueueLost(l); !bytes.Equal(again, v) {
			t.Fatalf("re-encoded %x, decoded from %x", again, v)
		}
	})
}

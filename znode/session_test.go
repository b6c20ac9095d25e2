package znode

import (
	"testing"
)

func TestSessionPayload(t *testing.T) {
	tests := []struct {
		name string
		s    Session
	}{
		{"zero", Session{}},
		{"zookeeper session", Session{ID: 0x100000f392f0000, TimeoutMs: 10_000}},
		{"negative id", Session{ID: -2, TimeoutMs: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := AppendSessionPayload(nil, tt.s)
			got, err := DecodeSessionPayload(p)
			if err != nil || got != tt.s {
				t.Fatalf("round trip of %+v: %+v, %v", tt.s, got, err)
			}
			if _, err := DecodeSessionPayload(p[:11]); err == nil {
				t.Error("11 bytes decoded")
			}
			if _, err := DecodeSessionPayload(append(p, 0)); err == nil {
				t.Error("13 bytes decoded")
			}
		})
	}
}

// FuzzSessionPayload: a payload decodes iff it is 12 bytes, and re-encodes
// to itself.
func FuzzSessionPayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		s, err := DecodeSessionPayload(p)
		if (err == nil) != (len(p) == 12) {
			t.Fatalf("%d bytes: %v", len(p), err)
		}
		if err == nil && string(AppendSessionPayload(nil, s)) != string(p) {
			t.Fatalf("%x re-encodes as %x", p, AppendSessionPayload(nil, s))
		}
	})
}

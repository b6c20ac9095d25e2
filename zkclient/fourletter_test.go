package zkclient

import (
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

func TestParseDigestLog(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []ZxidDigest
		wantErr bool
	}{
		{"verified 3.8.0 line", "80: 239334913170\n", []ZxidDigest{{0x80, 239334913170}}, false},
		{"several and negative", "100000080: -5\n100000100: 7\n", []ZxidDigest{{0x100000080, znode.Digest(1<<64 - 5)}, {0x100000100, 7}}, false},
		{"empty", "", nil, false},
		{"blank lines", "\n80: 1\n\n", []ZxidDigest{{0x80, 1}}, false},
		{"no colon", "80 1\n", nil, true},
		{"bad zxid", "zz: 1\n", nil, true},
		{"bad digest", "80: x\n", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDigestLog(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func FuzzParseDigestLog(f *testing.F) {
	f.Add("80: 239334913170\n")
	f.Add("100000080: -5\n100000100: 7\n")
	f.Add("ffffffffffffffff: 18446744073709551615\n")
	f.Fuzz(func(t *testing.T, s string) {
		entries, err := ParseDigestLog(s)
		if err != nil && entries != nil {
			t.Fatalf("entries returned with an error: %v", err)
		}
	})
}

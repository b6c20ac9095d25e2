package znode

import "testing"

func TestWireStatRoundTrip(t *testing.T) {
	ttl, err := TTLOwner(3_600_000)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(ttl) != 0xff0000000036ee80 {
		t.Fatalf("TTLOwner(1h) = %#x, want 0xff0000000036ee80", uint64(ttl))
	}
	tests := []struct {
		name        string
		st          Stat
		numChildren int32
		wantCv      int32
		wantOwner   int64
		kind        EphemeralType
	}{
		// 6 creates, 1 delete, 5 children: clients see 7 (zookeeper-internals.md §5).
		{"creates and deletes", Stat{Cversion: 6}, 5, 7, 0, Persistent},
		// A fresh root: persisted 0 and child "zookeeper" not counted.
		{"fresh root", Stat{}, 1, -1, 0, Persistent},
		{"ephemeral", Stat{EphemeralOwner: 0x0100_0000_0000_0042}, 0, 0, 0x0100_0000_0000_0042, Ephemeral},
		{"container", Stat{EphemeralOwner: ContainerOwner, Cversion: 1}, 1, 1, 0, Container},
		{"ttl", Stat{EphemeralOwner: ttl}, 0, 0, 0, TTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := tc.st.Wire(3, tc.numChildren)
			if ws.Cversion != tc.wantCv || ws.EphemeralOwner != tc.wantOwner || ws.DataLength != 3 || ws.NumChildren != tc.numChildren {
				t.Errorf("Wire() = %+v, want cversion %d owner %#x", ws, tc.wantCv, tc.wantOwner)
			}
			if back := FromWire(ws, tc.st.EphemeralOwner); back != tc.st {
				t.Errorf("FromWire(Wire()) = %+v, want %+v", back, tc.st)
			}
			if k := EphemeralTypeOf(tc.st.EphemeralOwner, true); k != tc.kind {
				t.Errorf("EphemeralTypeOf = %v, want %v", k, tc.kind)
			}
		})
	}
	if EphemeralTypeOf(ttl, false) != Ephemeral {
		t.Error("without extended types a 0xFF top byte is a session id")
	}
	if TTLMillis(ttl) != 3_600_000 {
		t.Error("TTLMillis")
	}
	if _, err := TTLOwner(MaxTTLMillis + 1); err == nil {
		t.Error("TTLOwner accepted an overflowing ttl")
	}
}

func TestNodeEqualNilVsEmpty(t *testing.T) {
	a := &Node{Path: "/a", Data: nil, ACL: WorldAnyone()}
	b := a.Clone()
	b.Data = []byte{}
	if a.Equal(b) {
		t.Fatal("nil and empty data compare equal")
	}
	c := b.Clone()
	if c.Data == nil || !b.Equal(c) {
		t.Fatal("Clone lost empty data")
	}
	if a.Clone().Data != nil {
		t.Fatal("Clone turned nil data into empty data")
	}
}

func TestPermString(t *testing.T) {
	if got := PermAll.String(); got != "cdrwa" {
		t.Errorf("PermAll = %q", got)
	}
	if got := (PermRead | PermAdmin).String(); got != "ra" {
		t.Errorf("ra = %q", got)
	}
}

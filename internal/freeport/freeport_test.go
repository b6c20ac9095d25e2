package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortsOutsideTheEphemeralRange(t *testing.T) {
	start := ephemeralStart()
	seen := map[int]bool{}
	for range 3 {
		ps, err := Ports(50)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p < low || p >= start {
				t.Fatalf("port %d outside %d..%d", p, low, start-1)
			}
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
		}
	}
	a, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("the address handed out does not bind: %v", err)
	}
	l.Close()
	_, port, _ := net.SplitHostPort(a)
	if p, _ := strconv.Atoi(port); seen[p] {
		t.Fatalf("Addr repeated port %d", p)
	}
}

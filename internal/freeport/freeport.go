// Package freeport hands tests loopback ports that are free and stay theirs
// across a server's restart as far as the kernel is concerned.
//
// Ports are taken from below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), never from it: a port in that
// range that a stopped server frees can be given at once to any outgoing
// connection in the machine as its source port (the tests make thousands),
// and the restarted server then fails with EADDRINUSE. Below it, a port is
// only ever taken by a listener that asks for it by number. Within a process
// no port is handed out twice; across processes (go test runs packages side
// by side) each walks from its own random start and checks that the port
// binds, so two processes collide only when both pick the same port in the
// same moment.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// low is the first port handed out; ports below it are left to services.
const low = 10000

var (
	mu   sync.Mutex
	next int // the next candidate; 0 before the first call
	high int // one past the last candidate: the ephemeral range's start
	used = map[int]bool{}
)

// ephemeralStart reads where the kernel's ephemeral ports begin.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > low+1000 {
				return n
			}
		}
	}
	return 32768 // Linux's default
}

// Ports returns n distinct loopback ports, each free (it bound) a moment
// ago and never returned before by this process.
func Ports(n int) ([]int, error) {
	mu.Lock()
	defer mu.Unlock()
	if next == 0 {
		high = ephemeralStart()
		next = low + rand.IntN(high-low)
	}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > high-low {
			return nil, fmt.Errorf("freeport: no free loopback port in %d..%d", low, high-1)
		}
		p := next
		next++
		if next >= high {
			next = low
		}
		if used[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		used[p] = true
		out = append(out, p)
	}
	return out, nil
}

// Addr returns a free loopback address, 127.0.0.1:PORT (see Ports).
func Addr() (string, error) {
	p, err := Ports(1)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p[0])), nil
}

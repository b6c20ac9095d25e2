package datadir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/zktest"
)

// scenarioOptions are the ensemble settings the scenario needs: extended
// types for TTL nodes, a container manager that runs often (it deletes
// empty containers and expired TTL nodes, as deleteContainer txns), small
// preallocation and snapCount so the logs roll, and each server its own
// snapshot compression.
func scenarioOptions() zktest.Options {
	return zktest.Options{
		Servers:       3,
		ExtendedTypes: true,
		SystemProperties: map[string]string{
			"znode.container.checkIntervalMs": "200",
		},
		ServerSystemProperties: map[int]map[string]string{
			2: {"zookeeper.snapshot.compression.method": "gz"},
			3: {"zookeeper.snapshot.compression.method": "snappy"},
		},
		Config: map[string]string{"snapCount": "40", "preAllocSize": "16"},
	}
}

// dialZK opens a go-zookeeper session and waits until it is connected.
func dialZK(t testing.TB, hosts []string, timeout time.Duration) *zk.Conn {
	t.Helper()
	c, ev, err := zk.Connect(hosts, timeout, zk.WithLogger(silent{}))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for c.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-deadline:
			c.Close()
			t.Fatalf("no ZooKeeper session with %v", hosts)
		}
	}
	return c
}

type silent struct{}

func (silent) Printf(string, ...any) {}

// waitGone waits until path does not exist, on an exists watch.
func waitGone(t testing.TB, c *zk.Conn, path string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		ok, _, ch, err := c.ExistsW(path)
		if err != nil {
			t.Fatalf("exists %s: %v", path, err)
		}
		if !ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s still exists after %v", path, within)
		}
	}
}

// runScenario writes a small tree with every kind of txn the package reads:
// sessions created and closed (with ephemerals), creates of every mode,
// nil and empty data, a sequential counter with a gap, setData, setACL, a
// failed create (an error txn), a multi that commits and one that fails, a
// unicode path, data spanning several snappy blocks, a container emptied and
// then removed by ZooKeeper and a TTL node expired by it (deleteContainer
// txns), and filler that rolls the logs.
func runScenario(t testing.TB, hosts []string) {
	t.Helper()
	a := dialZK(t, hosts, 10*time.Second)
	defer a.Close()
	b := dialZK(t, hosts, 4*time.Second)
	ok := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	world := zk.WorldACL(zk.PermAll)

	ok(a.Create("/app", []byte("v1"), 0, world))
	ok(a.Create("/app/cfg", []byte{}, 0, world))
	ok(a.Create("/app/nil", nil, 0, world))
	for range 4 {
		ok(a.Create("/app/q-", []byte("q"), zk.FlagSequence, world))
	}
	if err := a.Delete("/app/q-0000000003", -1); err != nil {
		t.Fatal(err)
	}
	ok(a.CreateContainer("/locks", nil, zk.FlagContainer, world))
	ok(a.CreateTTL("/ttl", []byte("t"), zk.FlagTTL, world, time.Hour))
	ok(a.CreateTTL("/ttl/t-", []byte("ts"), zk.FlagTTL+1, world, 2*time.Hour))
	ok(b.Create("/app/eph", []byte("mine"), zk.FlagEphemeral, world))
	ok(b.Create("/locks/lock-", nil, zk.FlagEphemeralSequential, world))
	ok(a.Set("/app", []byte("v2"), 0))
	ok(a.Set("/app/cfg", nil, 0))
	acl := append(zk.DigestACL(zk.PermAll, "user", "secret"), zk.WorldACL(zk.PermRead)...)
	ok(a.SetACL("/app/cfg", acl, 0))
	if _, err := a.Create("/app/cfg", nil, 0, world); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("create of an existing node: %v", err)
	}
	ok(a.Multi(
		&zk.CreateRequest{Path: "/m", Data: []byte("m0"), Acl: world},
		&zk.SetDataRequest{Path: "/m", Data: []byte("m1"), Version: 0},
		&zk.CreateRequest{Path: "/m/x", Data: nil, Acl: world},
		&zk.DeleteRequest{Path: "/m/x", Version: -1},
	))
	if _, err := a.Multi(
		&zk.CreateRequest{Path: "/m2", Acl: world},
		&zk.CheckVersionRequest{Path: "/app", Version: 99},
	); err == nil {
		t.Fatal("a multi with a failing check succeeded")
	}
	ok(a.Create("/ünïcode-ñ", []byte("ü"), 0, world))
	ok(a.Create("/big", bytes.Repeat([]byte("0123456789abcdef"), 2500), 0, world))
	ok(a.Create("/fill", nil, 0, world))
	for i := range 120 {
		p := fmt.Sprintf("/fill/n-%03d", i)
		ok(a.Create(p, []byte(strings.Repeat("x", i)), 0, world))
		if i%3 == 0 {
			ok(a.Set(p, []byte("again"), 0))
		}
	}
	ok(a.CreateTTL("/short-ttl", nil, zk.FlagTTL, world, 300*time.Millisecond))
	b.Close() // closeSession deletes /app/eph and /locks/lock-…, leaving /locks empty
	waitGone(t, a, "/app/eph", 30*time.Second)
	waitGone(t, a, "/locks", 60*time.Second)     // the container manager's deleteContainer
	waitGone(t, a, "/short-ttl", 60*time.Second) // an expired TTL node, the same way
	ok(a.Create("/done", nil, 0, world))
}

// waitSynced waits until every server of ens reports the same last zxid
// (srvr), at least min.
func waitSynced(t testing.TB, ens *zktest.Ensemble, min int64) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		var zx []int64
		for _, s := range ens.Servers() {
			out, err := ens.FourLetterWord(ctx, s.ID, "srvr")
			if err != nil {
				t.Fatal(err)
			}
			zx = append(zx, srvrZxid(t, out))
		}
		same := true
		for _, z := range zx {
			same = same && z == zx[0] && z >= min
		}
		if same {
			return zx[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("servers never agreed on a zxid >= %#x: %x", min, zx)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func srvrZxid(t testing.TB, srvr string) int64 {
	t.Helper()
	for _, line := range strings.Split(srvr, "\n") {
		if v, ok := strings.CutPrefix(line, "Zxid: "); ok {
			var z int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "0x%x", &z); err != nil {
				t.Fatalf("srvr zxid %q: %v", v, err)
			}
			return z
		}
	}
	t.Fatalf("srvr without a zxid:\n%s", srvr)
	return 0
}

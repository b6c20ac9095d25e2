package znode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// TestDigestMatchesZooKeeper builds a tree through the client API on a real
// ZooKeeper 3.8, stops writing exactly at a zxid that is a multiple of 128 (the
// only zxids ZooKeeper logs a digest for), and checks that the digest recomputed
// from what the client API returns equals the server's own `hash` entry.
func TestDigestMatchesZooKeeper(t *testing.T) {
	ens := zktest.New(t, zktest.Options{Servers: 1, ExtendedTypes: true})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	conn, err := exporter.Connect(ctx, ens.Hosts(), exporter.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.AddAuth("digest", []byte("alice:secret")); err != nil {
		t.Fatal(err)
	}

	world := zk.WorldACL(zk.PermAll)
	digestACL := zk.DigestACL(zk.PermAll, "alice", "secret")
	ipACL := []zk.ACL{{Perms: zk.PermAll, Scheme: "ip", ID: "127.0.0.1"}}
	readOnly := zk.WorldACL(zk.PermRead | zk.PermCreate | zk.PermDelete | zk.PermWrite)
	ttlOwner, err := znode.TTLOwner(int64(time.Hour / time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	raw := map[string]int64{}

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	create := func(path string, data []byte, flags int32, acl []zk.ACL) string {
		t.Helper()
		p, err := conn.Create(path, data, flags, acl)
		must("create "+path, err)
		return p
	}

	create("/d", []byte{0x00, 0xff, 0x10, 0x80}, 0, world)
	create("/d/nil", nil, 0, world)
	create("/d/empty", []byte{}, 0, world)
	create("/d/secret", []byte("digest-protected"), 0, digestACL)
	create("/d/secret/inner", []byte("x"), 0, digestACL)
	create("/d/ip", []byte("ip acl"), 0, ipACL)
	create("/d/zookeeper", []byte("not the system node"), 0, world)
	create("/d/zookeeper/config", []byte("ordinary"), 0, world)
	create("/d/配置", []byte("cjk"), 0, world)
	create("/d/مفتاح", []byte("arabic"), 0, world)
	create("/d/e\u0301", []byte("combining mark"), 0, world)
	create("/d/seq", nil, 0, world)
	var seqs []string
	for range 5 {
		seqs = append(seqs, create("/d/seq/n-", []byte("s"), zk.FlagSequence, world))
	}
	must("delete", conn.Delete(seqs[1], -1))
	must("delete", conn.Delete(seqs[3], -1))
	if p := create("/d/seq/n-", nil, zk.FlagSequence, world); p != "/d/seq/n-0000000005" {
		t.Fatalf("sequential name after deletes = %s, want /d/seq/n-0000000005", p)
	}
	create("/d/seq/plain", nil, 0, world)
	create("/d/eph", []byte("mine"), zk.FlagEphemeral, world)
	create("/d/seq/e-", nil, zk.FlagEphemeral|zk.FlagSequence, world)
	_, err = conn.CreateContainer("/d/box", []byte("container"), zk.FlagContainer, world)
	must("create container", err)
	raw["/d/box"] = znode.ContainerOwner
	create("/d/box/item", nil, 0, world)
	_, err = conn.CreateTTL("/d/ttl", []byte("ttl"), zk.FlagTTL, world, time.Hour)
	must("create ttl", err)
	raw["/d/ttl"] = ttlOwner
	for i := range 3 {
		_, err := conn.Set("/d", []byte(fmt.Sprintf("v%d", i)), -1)
		must("set", err)
	}
	_, err = conn.SetACL("/d/ip", readOnly, -1)
	must("setACL", err)
	create("/d/gone", nil, 0, world)
	must("delete", conn.Delete("/d/gone", -1))

	// Pad with setData txns until the last zxid is a multiple of 128.
	create("/pad", nil, 0, world)
	var last int64
	for {
		st, err := conn.Set("/pad", []byte("p"), -1)
		must("pad", err)
		last = st.Mzxid
		if last%128 == 0 {
			break
		}
	}

	out, err := ens.FourLetterWord(ctx, ens.Servers()[0].ID, "hash")
	must("hash", err)
	log, err := zkclient.ParseDigestLog(out)
	must("parse hash", err)
	var want znode.Digest
	found := false
	for _, e := range log {
		if e.Zxid == last {
			want, found = e.Digest, true
		}
	}
	if !found {
		t.Fatalf("ZooKeeper logged no digest at zxid %#x; hash said:\n%s", last, out)
	}

	got, nodes, err := exporter.ClientDigest(ctx, conn, exporter.WalkOptions{
		RawOwner: func(path string, client int64) int64 {
			if r, ok := raw[path]; ok {
				return r
			}
			return client
		},
	})
	must("client digest", err)
	if got != want {
		t.Fatalf("digest from the client API = %v over %d nodes, ZooKeeper's hash at zxid %#x = %v", got, nodes, last, want)
	}
	t.Logf("digest %v at zxid %#x over %d nodes matches ZooKeeper", got, last, nodes)
}

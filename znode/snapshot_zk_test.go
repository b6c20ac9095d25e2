package znode_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

var fullAdversarial = flag.Bool("znode.full", false, "round-trip the adversarial profile at full size (100k children)")

// TestSnapshotRoundTripAdversarial seeds the adversarial profile into a real
// ZooKeeper, reads every node back through the client API, writes them into a
// snapshot file (compressed and not), reads the file back, and checks that every
// node survives exactly — every stat field, nil vs empty data, ACLs — and agrees
// with the generator's model and with the digest.
func TestSnapshotRoundTripAdversarial(t *testing.T) {
	ens := zktest.New(t, zktest.Options{Servers: 1, ExtendedTypes: true})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	opts := treegen.Options{Profile: treegen.ProfileAdversarial, Seed: 11, Root: "/adv", Nodes: 1000, BigChildren: 3000}
	if *fullAdversarial {
		opts.BigChildren, opts.Nodes = 0, 0 // the profile's defaults: 100k+ nodes
	}
	tree, err := treegen.Seed(ctx, ens.Hosts(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()

	conn, err := exporter.Connect(ctx, ens.Hosts(), exporter.ConnectOptions{
		Auth: []zkclient.Auth{{Scheme: tree.Credential.Scheme(), Cred: tree.Credential.Auth()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// The live tree as the client API reports it, raw owners filled in from the model
	// (clients see 0 for containers and TTL nodes).
	var live []*znode.Node
	err = exporter.SequentialWalk(ctx, conn, opts.Root, exporter.WalkOptions{
		RawOwner: func(path string, client int64) int64 {
			if e, ok := tree.Node(path); ok && (e.Kind == znode.Container || e.Kind == znode.TTL) {
				return e.RawOwner(tree.SessionIDs)
			}
			return client
		},
	}, func(n *znode.Node) error {
		live = append(live, n)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstModel(t, tree, live)

	for _, compress := range []bool{false, true} {
		name := "plain"
		if compress {
			name = "zstd"
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "adv.zk2r")
			f, err := znode.CreateSnapshotFile(path, znode.SnapshotHeader{Source: "zk://" + ens.ConnectString() + opts.Root, Kind: znode.SnapshotKindExport, ExtendedTypes: true}, znode.SnapshotWriterOptions{Compress: compress})
			if err != nil {
				t.Fatal(err)
			}
			var want znode.Digest
			for _, n := range live {
				want.Add(n.Digest())
				if err := f.WriteNode(n); err != nil {
					t.Fatal(err)
				}
			}
			trailer, err := f.Commit()
			if err != nil {
				t.Fatal(err)
			}
			if trailer.Digest != want || trailer.NodeCount != uint64(len(live)) {
				t.Fatalf("trailer %+v, want %d nodes digest %v", trailer, len(live), want)
			}
			r, err := znode.OpenSnapshotFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for i := 0; ; i++ {
				n, err := r.NextNode()
				if errors.Is(err, io.EOF) {
					if i != len(live) {
						t.Fatalf("read %d nodes, wrote %d", i, len(live))
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if !n.Equal(live[i]) {
					t.Fatalf("node %d differs after the round trip:\n got %+v\nwant %+v", i, n, live[i])
				}
			}
			if r.Trailer().Digest != want {
				t.Fatalf("read trailer digest %v, want %v", r.Trailer().Digest, want)
			}
		})
	}
}

// checkAgainstModel checks that what the client API returned is what the
// generator meant to write, node by node.
func checkAgainstModel(t *testing.T, tree *treegen.Tree, live []*znode.Node) {
	t.Helper()
	byPath := make(map[string]*znode.Node, len(live))
	for _, n := range live {
		byPath[n.Path] = n
	}
	classes := treegen.ClassSet(0)
	for _, p := range tree.Paths() {
		e, _ := tree.Node(p)
		n, ok := byPath[p]
		if !ok {
			t.Errorf("%s: in the model, not read back", p)
			continue
		}
		classes |= e.Classes
		switch {
		case (n.Data == nil) != (e.Data == nil) || string(n.Data) != string(e.Data):
			t.Errorf("%s: data %d bytes (nil %v), model %d bytes (nil %v)", p, len(n.Data), n.Data == nil, len(e.Data), e.Data == nil)
		case !znode.EqualACLs(n.ACL, e.ACL):
			t.Errorf("%s: ACL %v, model %v", p, n.ACL, e.ACL)
		case n.Stat.Version != e.Version || n.Stat.Aversion != e.Aversion || n.Stat.Cversion != e.Cversion || n.NumChildren != e.NumChildren:
			t.Errorf("%s: versions %d/%d/%d children %d, model %d/%d/%d children %d", p,
				n.Stat.Version, n.Stat.Aversion, n.Stat.Cversion, n.NumChildren, e.Version, e.Aversion, e.Cversion, e.NumChildren)
		case n.Stat.EphemeralOwner != e.RawOwner(tree.SessionIDs):
			t.Errorf("%s: owner %#x, model %#x (%v)", p, n.Stat.EphemeralOwner, e.RawOwner(tree.SessionIDs), e.Kind)
		}
	}
	for _, c := range treegen.TreeClasses() {
		if !classes.Has(c) {
			t.Errorf("the adversarial tree lacks input class %v", c)
		}
	}
	if len(byPath) < tree.Len() {
		t.Errorf("read %d nodes, model has %d", len(byPath), tree.Len())
	}
	var scaffold int
	for _, n := range live {
		if _, ok := tree.Node(n.Path); !ok && !strings.HasPrefix(n.Path, "/adv") {
			scaffold++
		}
	}
	if scaffold > 0 {
		t.Errorf("%d nodes read outside the seeded root", scaffold)
	}
}

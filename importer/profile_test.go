package importer

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

type nopZKLogger struct{}

func (nopZKLogger) Printf(string, ...any) {}

// alignZxid writes a scratch node until the ensemble's last zxid is a
// multiple of 128, the only zxids ZooKeeper logs its digest at.
func alignZxid(t testing.TB, hosts []string, cred treegen.Credential) int64 {
	t.Helper()
	c, _, err := zk.Connect(hosts, 30*time.Second, zk.WithLogger(nopZKLogger{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.AddAuth(cred.Scheme(), cred.Auth()); err != nil {
		t.Fatal(err)
	}
	const p = "/zk2raft-test-align"
	if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}
	for {
		st, err := c.Set(p, []byte("align"), -1)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mzxid%128 == 0 {
			return st.Mzxid
		}
	}
}

// zkDigestAt returns ZooKeeper's own digest at zxid (the hash four-letter word).
func zkDigestAt(t testing.TB, host string, zxid int64) znode.Digest {
	t.Helper()
	var got znode.Digest
	waitFor(t, 10*time.Second, fmt.Sprintf("ZooKeeper's digest at zxid %#x", zxid), func() error {
		out, err := zkclient.FourLetterWord(t.Context(), host, "hash")
		if err != nil {
			return err
		}
		entries, err := zkclient.ParseDigestLog(out)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Zxid == zxid {
				got = e.Digest
				return nil
			}
		}
		return fmt.Errorf("no entry at %#x in %d entries", zxid, len(entries))
	})
	return got
}

// TestProfilesArriveIntact seeds every treegen profile into a real
// ZooKeeper, streams the export walk straight into an offline import (as
// migrate does), starts a journal node on the result and checks that every
// node arrived with every field, and that the journal's digest equals the
// export's (plus /zookeeper) and ZooKeeper's own.
func TestProfilesArriveIntact(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ZooKeeper servers")
	}
	for _, profile := range treegen.Profiles() {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			opts := treegen.Options{Profile: profile, Nodes: 3000, Seed: 7, BigChildren: 2000, DeepLevels: 60}
			if *heavy {
				opts = treegen.Options{Profile: profile, Seed: 7}
			}
			profileRoundTrip(t, opts)
		})
	}
}

func profileRoundTrip(t *testing.T, opts treegen.Options) {
	ctx := ctxTimeout(t, 10*time.Minute)
	ens := zktest.New(t, zktest.Options{Servers: 1, ExtendedTypes: true, MaxHeapMB: 1024})
	hosts := ens.Hosts()
	tree, err := treegen.Seed(ctx, hosts, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	aligned := alignZxid(t, hosts, tree.Credential)

	// The export walk streams into the import and, for the comparison, into
	// a snapshot file, as migrate --keep-snapshot does.
	wcfg := exporter.DefaultConfig(hosts)
	wcfg.Auth = []zkclient.Auth{{Scheme: tree.Credential.Scheme(), Cred: tree.Credential.Auth()}}
	wcfg.ExtendedTypes = true
	w, err := exporter.NewWalker(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	snap := filepath.Join(dir, "export.snap")
	keep, err := znode.CreateSnapshotFile(snap, w.Header(), znode.SnapshotWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Abort()
	b, err := NewBuilder(ctx, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort()
	pre := NewPreflight(PreflightConfig{ExtendedTypes: true})
	sum, err := w.Walk(ctx, multiSink{keep, b, pre})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Changed != 0 || sum.Deleted != 0 {
		t.Fatalf("the tree changed during the walk (changed %d, deleted %d)", sum.Changed, sum.Deleted)
	}
	tr, err := keep.Commit()
	if err != nil {
		t.Fatal(err)
	}
	built, err := b.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}
	// No node changed after the aligned zxid (the walk's sessions took zxids
	// since, which do not touch the tree), so ZooKeeper's digest logged there
	// is the digest of what the walk read.
	if built.MaxZxid != aligned || sum.StartZxid < aligned {
		t.Fatalf("newest node zxid %#x, aligned at %#x, walk from %#x: the tree moved after the alignment", built.MaxZxid, aligned, sum.StartZxid)
	}
	cfg := nodeConfig(t, "node-1", filepath.Join(dir, "journal"), testLogger(t))
	if _, err := built.Install(cfg); err != nil {
		t.Fatal(err)
	}
	n := openNode(t, cfg)
	waitLeader(t, n)
	fsm := n.FSM()

	// Digests: journal = export + /zookeeper = ZooKeeper's own, once the
	// container and TTL owners the client API cannot see are accounted for.
	journal := n.Digest()
	if want := tr.Digest + znode.Digest(PristineDigest("/zookeeper")); journal != want || sum.Digest != tr.Digest {
		t.Errorf("journal digest %v, export %v (walk %v) + /zookeeper = %v", journal, tr.Digest, sum.Digest, want)
	}
	var hidden znode.Digest // what the raw owners add to ZooKeeper's digest
	containers := 0
	for _, p := range tree.Paths() {
		e, _ := tree.Node(p)
		if e.Kind != znode.Container && e.Kind != znode.TTL {
			continue
		}
		containers++
		got, ok := fsm.Node(p)
		if !ok {
			continue // reported below
		}
		raw := got.Stat
		raw.EphemeralOwner = e.RawOwner(tree.SessionIDs)
		hidden.Add(znode.NodeDigest(p, got.Data, raw))
		hidden.Remove(got.Digest())
	}
	zkd := zkDigestAt(t, hosts[0], aligned)
	if journal+hidden != zkd {
		t.Errorf("journal digest %v + hidden owners of %d container/TTL nodes %v = %v, ZooKeeper's at %#x is %v", journal, containers, hidden, journal+hidden, aligned, zkd)
	}
	t.Logf("%s: %d nodes, journal %v, export %v, ZooKeeper %v (container/TTL nodes: %d)", opts.Profile, tr.NodeCount, journal, tr.Digest, zkd, containers)

	// Every generated node, every field the model predicts.
	bad := 0
	for _, p := range tree.Paths() {
		e, _ := tree.Node(p)
		got, ok := fsm.Node(p)
		if !ok {
			t.Errorf("%s missing from the journal", p)
			bad++
			continue
		}
		owner := int64(0) // containers and TTL nodes: the client API shows 0
		if e.Kind == znode.Ephemeral {
			owner = e.RawOwner(tree.SessionIDs)
		}
		var diffs []string
		if (got.Data == nil) != (e.Data == nil) || !bytes.Equal(got.Data, e.Data) {
			diffs = append(diffs, fmt.Sprintf("data %q (nil %v), want %q (nil %v)", trunc(got.Data), got.Data == nil, trunc(e.Data), e.Data == nil))
		}
		if !znode.EqualACLs(got.ACL, e.ACL) {
			diffs = append(diffs, fmt.Sprintf("acl %v, want %v", got.ACL, e.ACL))
		}
		st := got.Stat
		if st.Version != e.Version || st.Aversion != e.Aversion || st.Cversion != e.Cversion || got.NumChildren != e.NumChildren || st.EphemeralOwner != owner {
			diffs = append(diffs, fmt.Sprintf("version/aversion/cversion/children/owner %d/%d/%d/%d/%#x, want %d/%d/%d/%d/%#x",
				st.Version, st.Aversion, st.Cversion, got.NumChildren, st.EphemeralOwner, e.Version, e.Aversion, e.Cversion, e.NumChildren, owner))
		}
		if len(diffs) > 0 {
			t.Errorf("%s: %v", p, diffs)
			if bad++; bad > 10 {
				t.Fatal("too many differences")
			}
		}
	}
	// And every exported node, every stat field (zxids and times included).
	checkAgainstSnapshot(t, fsm, snap)
	if got := fsm.NodeCount(); got != int(tr.NodeCount)+3 {
		t.Errorf("journal holds %d nodes, the export %d + 3 system nodes", got, tr.NodeCount)
	}
	rep := pre.Report()
	if rep.Nodes != sum.Nodes {
		t.Errorf("pre-flight saw %d nodes, the walk wrote %d", rep.Nodes, sum.Nodes)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// multiSink writes to each sink in turn.
type multiSink []exporter.Sink

func (m multiSink) WriteNode(n *znode.Node) error {
	for _, s := range m {
		if err := s.WriteNode(n); err != nil {
			return err
		}
	}
	return nil
}

func (m multiSink) ObserveZxid(z int64) {
	for _, s := range m {
		s.ObserveZxid(z)
	}
}

package datadir

import (
	"encoding/binary"
	"errors"
	"hash/adler32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// copyFixture copies a fixture data directory into a temporary one the test
// may damage.
func copyFixture(t *testing.T, mode string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(fixtureDir(mode), "version-2")
	dst := filepath.Join(dir, "version-2")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
	return dir
}

func loadAt(t *testing.T, dir string, to int64) (*State, error) {
	t.Helper()
	return Load(t.Context(), Options{DataDir: dir, ToZxid: to})
}

// TestFixtures checks the scenario's tree as each server's data directory
// holds it: every kind of node, with the raw owners a client never sees, and
// the same tree (and digest, which ZooKeeper's TxnDigest proved) whatever the
// snapshot compression.
func TestFixtures(t *testing.T) {
	var first []*znode.Node
	for _, m := range fixtureModes {
		t.Run(m.name, func(t *testing.T) {
			st, err := loadAt(t, fixtureDir(m.name), 0)
			if err != nil {
				t.Fatal(err)
			}
			if st.Snapshot.File.Compression != m.comp {
				t.Errorf("snapshot %s compression %v, want %v", st.Snapshot.File.Path, st.Snapshot.File.Compression, m.comp)
			}
			if !st.Check.Exact || st.Check.Zxid != st.Zxid || st.Check.Digest != st.Tree.Digest() {
				t.Errorf("check %+v at zxid %#x, digest %v: want an exact match", st.Check, st.Zxid, st.Tree.Digest())
			}
			if st.Torn != nil || len(st.Skipped) > 0 {
				t.Errorf("torn %v, skipped %v", st.Torn, st.Skipped)
			}
			node := func(p string) *znode.Node {
				t.Helper()
				n := st.Tree.Node(p)
				if n == nil {
					t.Fatalf("%s missing", p)
				}
				return n
			}
			gone := func(p string) {
				t.Helper()
				if st.Tree.Node(p) != nil {
					t.Errorf("%s present, want it deleted", p)
				}
			}
			if n := node("/"); n.Data == nil || len(n.Data) != 0 {
				t.Errorf("root data %v, want empty (ZooKeeper's root holds byte[0], not null)", n.Data)
			}
			if n := node("/app"); string(n.Data) != "v2" || n.Stat.Version != 1 || n.Stat.Cversion != 7 || n.NumChildren != 5 {
				t.Errorf("/app = %q version %d cversion %d children %d, want v2, 1, 7 (persisted: 7 creates), 5", n.Data, n.Stat.Version, n.Stat.Cversion, n.NumChildren)
			}
			if n := node("/app/cfg"); n.Data != nil || n.Stat.Aversion != 1 || len(n.ACL) != 2 || n.ACL[0].ID.Scheme != "digest" {
				t.Errorf("/app/cfg data %v aversion %d acl %v, want nil, 1, digest+world", n.Data, n.Stat.Aversion, n.ACL)
			}
			if n := node("/app/nil"); n.Data != nil {
				t.Errorf("/app/nil data %v, want nil", n.Data)
			}
			for _, p := range []string{"/app/q-0000000002", "/app/q-0000000004", "/app/q-0000000005"} {
				node(p)
			}
			gone("/app/q-0000000003")
			if n := node("/ttl"); n.Stat.EphemeralOwner != ttlOwner(t, 3_600_000) || n.Kind() != znode.TTL {
				t.Errorf("/ttl owner %#x, want the TTL encoding of 1h", n.Stat.EphemeralOwner)
			}
			if n := node("/ttl/t-0000000000"); n.Stat.EphemeralOwner != ttlOwner(t, 7_200_000) {
				t.Errorf("/ttl/t-0000000000 owner %#x, want the TTL encoding of 2h", n.Stat.EphemeralOwner)
			}
			if n := node("/m"); string(n.Data) != "m1" || n.Stat.Version != 1 || n.NumChildren != 0 || n.Stat.Cversion != 1 {
				t.Errorf("/m = %q version %d children %d cversion %d, want m1, 1, 0, 1", n.Data, n.Stat.Version, n.NumChildren, n.Stat.Cversion)
			}
			gone("/m2")
			node("/ünïcode-ñ")
			if n := node("/big"); len(n.Data) != 40000 {
				t.Errorf("/big holds %d bytes, want 40000", len(n.Data))
			}
			if n := node("/fill"); n.NumChildren != 120 {
				t.Errorf("/fill has %d children, want 120", n.NumChildren)
			}
			gone("/app/eph")   // its session closed
			gone("/locks")     // an empty container, removed by ZooKeeper
			gone("/short-ttl") // an expired TTL node, removed by ZooKeeper
			node("/done")
			if !st.Tree.ExtendedTypes() {
				t.Error("TTL nodes present, extended types not detected")
			}
			var nodes []*znode.Node
			if err := st.Tree.Walk("/", nil, func(n *znode.Node) error {
				nodes = append(nodes, n.Clone())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(nodes); i++ {
				if znode.ComparePaths(nodes[i-1].Path, nodes[i].Path) >= 0 {
					t.Fatalf("walk out of order: %s then %s", nodes[i-1].Path, nodes[i].Path)
				}
			}
			var d znode.Digest
			for _, n := range nodes {
				d.Add(n.Digest())
			}
			if d != st.Tree.Digest() {
				t.Errorf("walked nodes' digest %v, tree %v", d, st.Tree.Digest())
			}
			if first == nil {
				first = nodes
				return
			}
			if len(nodes) != len(first) {
				t.Fatalf("%d nodes, the plain server's directory %d", len(nodes), len(first))
			}
			for i := range nodes {
				// /zookeeper/config's mtime is each server's own.
				if !nodes[i].Equal(first[i]) && !strings.HasPrefix(nodes[i].Path, "/zookeeper/") {
					t.Errorf("%s differs from the plain server's: %+v vs %+v", nodes[i].Path, nodes[i], first[i])
				}
			}
		})
	}
}

func ttlOwner(t *testing.T, ms int64) int64 {
	t.Helper()
	o, err := znode.TTLOwner(ms)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestFixturesEveryZxid loads the fixtures at every zxid their logs hold
// after the oldest snapshot: each load picks the newest usable snapshot
// (skipping those whose fuzzy range ends after the zxid), and every one must
// be proven by a digest record, exactly where the txn carries one.
func TestFixturesEveryZxid(t *testing.T) {
	for _, m := range fixtureModes {
		t.Run(m.name, func(t *testing.T) {
			files, err := Scan(fixtureDir(m.name), "")
			if err != nil {
				t.Fatal(err)
			}
			var txns []*Txn
			for _, lf := range files.Logs {
				r, err := OpenLog(lf.Path, 0)
				if err != nil {
					t.Fatal(err)
				}
				for {
					tx, err := r.Next()
					if err != nil {
						break
					}
					txns = append(txns, tx)
				}
				r.Close()
			}
			if len(txns) < 150 {
				t.Fatalf("only %d txns in the fixture", len(txns))
			}
			// Every zxid from the plain server's directory; the compressed
			// ones differ only in how snapshots decode, so every fifth.
			step := 1
			if m.comp != CompressionNone {
				step = 5
			}
			loads := 0
			for i, tx := range txns {
				if i%step != 0 {
					continue
				}
				st, err := loadAt(t, fixtureDir(m.name), tx.Zxid)
				if err != nil {
					t.Fatalf("zxid %#x (%s): %v", tx.Zxid, tx.Type, err)
				}
				loads++
				if st.Zxid != tx.Zxid {
					t.Fatalf("loaded to %#x, asked %#x", st.Zxid, tx.Zxid)
				}
				if tx.HasDigest && (!st.Check.Exact || st.Tree.Digest() != tx.Digest) {
					t.Fatalf("zxid %#x: check %+v, digest %v, txn digest %v", tx.Zxid, st.Check, st.Tree.Digest(), tx.Digest)
				}
				if !tx.HasDigest && (st.Check.Exact || !tx.Failed() && tx.Type != TxnCreateSession) {
					t.Fatalf("zxid %#x (%s, no digest): check %+v", tx.Zxid, tx.Type, st.Check)
				}
			}
			t.Logf("%d loads", loads)
		})
	}
}

// damage is one way to break a fixture, and what Load must say.
type damage struct {
	name  string
	apply func(t *testing.T, dir string) // breaks the copy in dir
	// want is the sentinel the error must match; nil means Load must
	// succeed, and check then looks at the result.
	want  error
	text  []string // substrings the one-line error must hold
	check func(t *testing.T, st *State)
}

func v2(dir string) string { return filepath.Join(dir, "version-2") }

// logs and snaps list the fixture copy's files.
func scanCopy(t *testing.T, dir string) *Files {
	t.Helper()
	f, err := Scan(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// txnAt finds the n-th txn record of a log and returns its offset and length.
func txnAt(t *testing.T, path string, n int) (off int64, length int) {
	t.Helper()
	r, err := OpenLog(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; ; i++ {
		tx, err := r.Next()
		if err != nil {
			t.Fatalf("%s has no txn %d: %v", path, n, err)
		}
		if i == n {
			return tx.Pos.Offset, int(r.Offset() - tx.Pos.Offset)
		}
	}
}

func rewrite(t *testing.T, path string, fn func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedFiles(t *testing.T) {
	cases := []damage{
		{
			name: "txn checksum",
			apply: func(t *testing.T, dir string) {
				lf := scanCopy(t, dir).Logs
				p := lf[len(lf)-1].Path
				off, _ := txnAt(t, p, 1)
				rewrite(t, p, func(b []byte) []byte { b[off+12+20] ^= 0x40; return b })
			},
			want: ErrChecksum, text: []string{"offset", "Adler32"},
		},
		{
			name: "unknown txn type",
			apply: func(t *testing.T, dir string) {
				lf := scanCopy(t, dir).Logs
				p := lf[len(lf)-1].Path
				off, n := txnAt(t, p, 1)
				rewrite(t, p, func(b []byte) []byte {
					body := b[off+12 : off+int64(n)-1]
					binary.BigEndian.PutUint32(body[28:], 99) // TxnHeader.type
					binary.BigEndian.PutUint64(b[off:], uint64(adler32.Checksum(body)))
					return b
				})
			},
			want: ErrUnknownTxn, text: []string{"offset", "unknown type 99"},
		},
		{
			name: "missing log",
			apply: func(t *testing.T, dir string) {
				// The newest snapshot's logs: delete the one after the log that
				// holds the snapshot's zxid, if any; otherwise load from an older
				// snapshot by damaging the newer ones.
				f := scanCopy(t, dir)
				for _, s := range f.Snapshots[:len(f.Snapshots)-2] {
					rewrite(t, s.Path, func(b []byte) []byte { return b[:len(b)/2] })
				}
				oldest := f.Snapshots[len(f.Snapshots)-2]
				logs := logsFrom(f.Logs, oldest.Zxid)
				if len(logs) < 3 {
					t.Fatalf("too few logs after %s", oldest.Path)
				}
				if err := os.Remove(logs[1].Path); err != nil {
					t.Fatal(err)
				}
			},
			want: ErrMissingLog, text: []string{"followed by zxid", "offset"},
		},
		{
			name: "snapshot newer than every log",
			apply: func(t *testing.T, dir string) {
				f := scanCopy(t, dir)
				newest := f.Snapshots[0]
				for _, l := range f.Logs {
					if l.Zxid > f.Snapshots[1].Zxid {
						if err := os.Remove(l.Path); err != nil {
							t.Fatal(err)
						}
					}
				}
				// What is left ends before the newest snapshot's zxid.
				_ = newest
			},
			want: ErrSnapshotAhead, text: []string{"snapshot.", "logs end at"},
		},
		{
			name: "no logs",
			apply: func(t *testing.T, dir string) {
				for _, l := range scanCopy(t, dir).Logs {
					os.Remove(l.Path)
				}
			},
			want: ErrMissingLog, text: []string{"holds no transaction log", "dataLogDir"},
		},
		{
			name: "torn last txn: cut short",
			apply: func(t *testing.T, dir string) {
				lf := scanCopy(t, dir).Logs
				p := lf[len(lf)-1].Path
				r, err := OpenLog(p, 0)
				if err != nil {
					t.Fatal(err)
				}
				var last *Txn
				for {
					tx, err := r.Next()
					if err != nil {
						break
					}
					last = tx
				}
				r.Close()
				// Zero the last record's second half: the writer's buffer had
				// not reached the file.
				rewrite(t, p, func(b []byte) []byte {
					n := int(binary.BigEndian.Uint32(b[last.Pos.Offset+8:]))
					clear(b[last.Pos.Offset+12+int64(n)/2 : last.Pos.Offset+12+int64(n)+1])
					return b
				})
			},
			check: func(t *testing.T, st *State) {
				if st.Torn == nil {
					t.Fatal("no torn record reported")
				}
				if !st.Check.Exact || st.Check.Zxid != st.Zxid {
					t.Errorf("check %+v at %#x", st.Check, st.Zxid)
				}
			},
		},
		{
			name: "torn last txn: file ends inside it",
			apply: func(t *testing.T, dir string) {
				lf := scanCopy(t, dir).Logs
				p := lf[len(lf)-1].Path
				off, n := txnAt(t, p, 2)
				rewrite(t, p, func(b []byte) []byte { return b[:off+int64(n)-5] })
			},
			check: func(t *testing.T, st *State) {
				if st.Torn == nil || st.Txns == 0 {
					t.Fatalf("torn %v after %d txns", st.Torn, st.Txns)
				}
			},
		},
		{
			name: "damaged record with data after it",
			apply: func(t *testing.T, dir string) {
				lf := scanCopy(t, dir).Logs
				p := lf[len(lf)-1].Path
				off, n := txnAt(t, p, 1)
				rewrite(t, p, func(b []byte) []byte { b[off+int64(n)-1] = 0; return b })
			},
			want: ErrCorrupt, text: []string{"damaged txn record", "data after it"},
		},
		{
			name: "bad end-of-record byte",
			apply: func(t *testing.T, dir string) {
				lf := scanCopy(t, dir).Logs
				p := lf[len(lf)-1].Path
				off, n := txnAt(t, p, 1)
				rewrite(t, p, func(b []byte) []byte { b[off+int64(n)-1] = 'C'; return b })
			},
			want: ErrCorrupt, text: []string{"end-of-record byte 0x43"},
		},
		{
			name: "log header",
			apply: func(t *testing.T, dir string) {
				lf := scanCopy(t, dir).Logs
				rewrite(t, lf[len(lf)-1].Path, func(b []byte) []byte { b[1] = 'X'; return b })
			},
			want: ErrCorrupt, text: []string{"offset 0", "magic"},
		},
		{
			name: "newest snapshot damaged: the older one is used",
			apply: func(t *testing.T, dir string) {
				s := scanCopy(t, dir).Snapshots[0]
				rewrite(t, s.Path, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
			},
			check: func(t *testing.T, st *State) {
				if len(st.Skipped) != 1 || !strings.Contains(st.Skipped[0].Reason, "offset") {
					t.Fatalf("skipped %+v", st.Skipped)
				}
				if !st.Check.Exact {
					t.Errorf("check %+v", st.Check)
				}
			},
		},
		{
			name: "every snapshot damaged",
			apply: func(t *testing.T, dir string) {
				for _, s := range scanCopy(t, dir).Snapshots {
					rewrite(t, s.Path, func(b []byte) []byte { return b[:len(b)-3] })
				}
			},
			want: ErrNoSnapshot, text: []string{"could not be used", "offset"},
		},
	}
	for _, m := range fixtureModes {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				dir := copyFixture(t, m.name)
				c.apply(t, dir)
				st, err := loadAt(t, dir, 0)
				if c.want == nil {
					if err != nil {
						t.Fatal(err)
					}
					c.check(t, st)
					return
				}
				if err == nil {
					t.Fatalf("loaded to %#x, want an error matching %v", st.Zxid, c.want)
				}
				if !errors.Is(err, c.want) {
					t.Fatalf("error %q does not match %v", err, c.want)
				}
				msg := err.Error()
				if strings.Contains(msg, "\n") {
					t.Errorf("error spans lines: %q", msg)
				}
				for _, s := range c.text {
					if !strings.Contains(msg, s) {
						t.Errorf("error %q does not say %q", msg, s)
					}
				}
				t.Log(msg)
			})
		}
	}
}

// TestSeparateLogDir: ZooKeeper's dataLogDir apart from its dataDir. Given
// both, the load is the same; given only the dataDir, the error says where
// the logs may be.
func TestSeparateLogDir(t *testing.T) {
	snaps, logs := t.TempDir(), t.TempDir()
	for _, d := range []string{snaps, logs} {
		if err := os.MkdirAll(filepath.Join(d, "version-2"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(fixtureDir("snappy"), "version-2")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		dst := snaps
		if strings.HasPrefix(e.Name(), "log.") {
			dst = logs
		}
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, "version-2", e.Name()))
	}
	want, err := Load(t.Context(), Options{DataDir: fixtureDir("snappy")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(t.Context(), Options{DataDir: snaps, LogDir: filepath.Join(logs, "version-2")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Zxid != want.Zxid || got.Tree.Digest() != want.Tree.Digest() {
		t.Fatalf("apart: %#x %v; together: %#x %v", got.Zxid, got.Tree.Digest(), want.Zxid, want.Tree.Digest())
	}
	_, err = Load(t.Context(), Options{DataDir: snaps})
	if !errors.Is(err, ErrNoLogs) || !strings.Contains(err.Error(), "dataLogDir") {
		t.Fatalf("without the log directory: %v", err)
	}
}

package datadir_test

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/adler32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

var benchNodes = flag.Int("datadir.nodes", 1_000_000, "nodes in the kafka tree BenchmarkDatadirExport seeds")

// BenchmarkDatadirExport is issue 17's export benchmark: one ZooKeeper
// server holding a seeded kafka tree (-datadir.nodes, default 1M), and in
// each round, interleaved: a plain read of the files the data-directory
// export reads (the baseline for "as fast as the disk"), the data-directory
// export itself into a snapshot file, and the client-API export of the same
// tree (the walker, multiRead). It reports each one's rate and the ratios
// measured in the same run: x-client-api (target ≥ 3) and x-raw-read (the
// export's time over the plain read's).
func BenchmarkDatadirExport(b *testing.B) {
	ens := zktest.New(b, zktest.Options{Servers: 1, ExtendedTypes: true, MaxHeapMB: 3072})
	start := time.Now()
	tree, err := treegen.Seed(b.Context(), ens.Hosts(), treegen.Options{Profile: "kafka", Nodes: *benchNodes, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer tree.Close()
	b.Logf("seeded %d nodes in %v", tree.Len(), time.Since(start).Round(time.Second))
	dataDir := ens.Servers()[0].DataDir
	out := b.TempDir()

	var raw, dd, api struct {
		d     time.Duration
		nodes int64
		bytes int64
	}
	b.ResetTimer()
	for i := range b.N {
		// Which files the export reads: the snapshot it starts from and the
		// logs after it.
		st, err := datadir.Load(b.Context(), datadir.Options{DataDir: dataDir})
		if err != nil {
			b.Fatal(err)
		}
		files := append([]string{st.Snapshot.File.Path}, st.Logs...)
		t0 := time.Now()
		for _, f := range files {
			n, err := readFileLen(f)
			if err != nil {
				b.Fatal(err)
			}
			raw.bytes += n
		}
		raw.d += time.Since(t0)

		t0 = time.Now()
		sum, err := datadir.ExportFile(b.Context(), datadir.Options{DataDir: dataDir}, datadir.ExportOptions{},
			datadir.FileOptions{Path: filepath.Join(out, fmt.Sprintf("dd-%d.snap", i))})
		if err != nil {
			b.Fatal(err)
		}
		dd.d += time.Since(t0)
		dd.nodes += sum.Nodes

		cfg := exporter.DefaultConfig(ens.Hosts())
		cfg.Auth = []zkclient.Auth{{Scheme: tree.Credential.Scheme(), Cred: tree.Credential.Auth()}}
		w, err := exporter.NewWalker(cfg)
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		asum, err := exporter.ExportFile(b.Context(), w, exporter.FileOptions{Path: filepath.Join(out, fmt.Sprintf("api-%d.snap", i))})
		w.Close()
		if err != nil {
			b.Fatal(err)
		}
		api.d += time.Since(t0)
		api.nodes += asum.Nodes
		if asum.Nodes != sum.Nodes {
			b.Fatalf("client API exported %d nodes, the data directory %d", asum.Nodes, sum.Nodes)
		}
		os.Remove(filepath.Join(out, fmt.Sprintf("dd-%d.snap", i)))
		os.Remove(filepath.Join(out, fmt.Sprintf("api-%d.snap", i)))
	}
	b.StopTimer()
	ddRate := float64(dd.nodes) / dd.d.Seconds()
	apiRate := float64(api.nodes) / api.d.Seconds()
	b.ReportMetric(ddRate, "nodes/s")
	b.ReportMetric(apiRate, "api-nodes/s")
	b.ReportMetric(float64(raw.bytes)/raw.d.Seconds()/(1<<20), "raw-MiB/s")
	b.ReportMetric(ddRate/apiRate, "x-client-api")
	b.ReportMetric(dd.d.Seconds()/raw.d.Seconds(), "x-raw-read")
	b.Logf("datadir export %.0f nodes/s, client API %.0f nodes/s (%.1fx); plain read of the same files %.0f MiB/s, the export takes %.1fx as long",
		ddRate, apiRate, ddRate/apiRate, float64(raw.bytes)/raw.d.Seconds()/(1<<20), dd.d.Seconds()/raw.d.Seconds())
}

func readFileLen(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(io.Discard, bufio.NewReaderSize(f, 1<<20))
}

// writeSnapshot writes a ZooKeeper snapshot file (plain, format 2, with a
// ZxidDigest) of n synthetic nodes under /b/pNNN/cNNNNN, 100 bytes of data
// each, and returns its zxid.
func writeSnapshot(tb testing.TB, dir string, n int) int64 {
	tb.Helper()
	v2 := filepath.Join(dir, "version-2")
	if err := os.MkdirAll(v2, 0o755); err != nil {
		tb.Fatal(err)
	}
	const zxid = 0x100000000 + 1<<20
	f, err := os.Create(filepath.Join(v2, fmt.Sprintf("snapshot.%x", zxid)))
	if err != nil {
		tb.Fatal(err)
	}
	sum := adler32.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, sum), 1<<20)
	be := binary.BigEndian
	i32 := func(v int32) { w.Write(be.AppendUint32(nil, uint32(v))) }
	i64 := func(v int64) { w.Write(be.AppendUint64(nil, uint64(v))) }
	str := func(s string) { i32(int32(len(s))); w.WriteString(s) }
	var digest znode.Digest
	node := func(p string, data []byte, st znode.Stat) {
		str(p)
		if data == nil {
			i32(-1)
		} else {
			i32(int32(len(data)))
			w.Write(data)
		}
		i64(-1)
		for _, v := range []int64{st.Czxid, st.Mzxid, st.Ctime, st.Mtime} {
			i64(v)
		}
		i32(st.Version)
		i32(st.Cversion)
		i32(st.Aversion)
		i64(st.EphemeralOwner)
		i64(st.Pzxid)
		dp := p
		if p == "" {
			dp = "/"
		}
		digest.Add(znode.NodeDigest(dp, data, st))
	}
	i32(0x5A4B534E)
	i32(2)
	i64(-1)
	i32(0) // sessions
	i32(0) // ACL cache
	perParent := 1000
	parents := (n + perParent - 1) / perParent
	node("", nil, znode.Stat{Cversion: 1, Pzxid: 1})
	node("/zookeeper", nil, znode.Stat{})
	node("/b", nil, znode.Stat{Czxid: 1, Mzxid: 1, Pzxid: 2, Cversion: int32(parents)})
	data := make([]byte, 100)
	made := 0
	for p := range parents {
		pp := fmt.Sprintf("/b/p%03d", p)
		k := min(perParent, n-made)
		node(pp, nil, znode.Stat{Czxid: 2, Mzxid: 2, Pzxid: 3, Cversion: int32(k)})
		for c := range k {
			node(fmt.Sprintf("%s/c%05d", pp, c), data, znode.Stat{Czxid: 3, Mzxid: 3, Pzxid: 3, Ctime: 1, Mtime: 1})
		}
		made += k
	}
	str("/")
	w.Flush()
	i64(int64(sum.Sum32()))
	str("/")
	i64(zxid)
	i32(2)
	i64(int64(digest))
	w.Flush()
	i64(int64(sum.Sum32()))
	str("/")
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	// A log holding nothing after the snapshot: the tree is the snapshot's.
	lf, err := os.Create(filepath.Join(v2, fmt.Sprintf("log.%x", zxid-5)))
	if err != nil {
		tb.Fatal(err)
	}
	hdr := be.AppendUint32(nil, 0x5A4B4C47)
	hdr = be.AppendUint32(hdr, 2)
	hdr = be.AppendUint64(hdr, 0)
	// One txn at the snapshot's zxid, so the logs reach it.
	txn := be.AppendUint64(nil, 0)         // session
	txn = be.AppendUint32(txn, 0)          // cxid
	txn = be.AppendUint64(txn, zxid)       // zxid
	txn = be.AppendUint64(txn, 0)          // time
	txn = be.AppendUint32(txn, 0xffffffff) // error txn
	txn = be.AppendUint32(txn, 0)
	rec := be.AppendUint64(nil, uint64(adler32.Checksum(txn)))
	rec = be.AppendUint32(rec, uint32(len(txn)))
	rec = append(append(rec, txn...), 'B')
	if _, err := lf.Write(append(hdr, rec...)); err != nil {
		tb.Fatal(err)
	}
	lf.Close()
	return zxid
}

// BenchmarkLoad measures Load alone on a synthetic snapshot of 1M nodes: the
// rate, and the memory the rebuilt tree holds per node beyond its data.
func BenchmarkLoad(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	writeSnapshot(b, dir, n)
	b.ResetTimer()
	var st *datadir.State
	var ms0, ms1 runtime.MemStats
	for range b.N {
		st = nil
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		var err error
		st, err = datadir.Load(b.Context(), datadir.Options{DataDir: dir})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	nodes := st.Tree.Len()
	perNode := float64(ms1.HeapAlloc-ms0.HeapAlloc)/float64(nodes) - 100
	runtime.KeepAlive(st)
	b.ReportMetric(float64(nodes)*float64(b.N)/b.Elapsed().Seconds(), "nodes/s")
	b.ReportMetric(perNode, "B/node")
}

// TestLoadLargeSnapshot loads a synthetic snapshot several times the
// decoder's buffer, so that node data straddles its refills, and checks the
// tree against the snapshot's digest.
func TestLoadLargeSnapshot(t *testing.T) {
	dir := t.TempDir()
	writeSnapshot(t, dir, 40_000)
	st, err := datadir.Load(t.Context(), datadir.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if st.Tree.Len() != 40_000+3+40 || !st.Check.Exact {
		t.Fatalf("%d nodes, check %+v", st.Tree.Len(), st.Check)
	}
}

// BenchmarkExportSynthetic measures the whole export (Load, the walk in
// canonical order, the snapshot file) of a synthetic 1M-node snapshot,
// without ZooKeeper, against a plain read of the same snapshot file.
func BenchmarkExportSynthetic(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	writeSnapshot(b, dir, n)
	files, _ := filepath.Glob(filepath.Join(dir, "version-2", "*"))
	var raw, exp time.Duration
	var bytes int64
	for i := range b.N {
		t0 := time.Now()
		for _, f := range files {
			m, err := readFileLen(f)
			if err != nil {
				b.Fatal(err)
			}
			bytes += m
		}
		raw += time.Since(t0)
		t0 = time.Now()
		out := filepath.Join(b.TempDir(), fmt.Sprintf("x%d.snap", i))
		if _, err := datadir.ExportFile(b.Context(), datadir.Options{DataDir: dir}, datadir.ExportOptions{}, datadir.FileOptions{Path: out}); err != nil {
			b.Fatal(err)
		}
		exp += time.Since(t0)
		os.Remove(out)
	}
	b.ReportMetric(float64(n)*float64(b.N)/exp.Seconds(), "nodes/s")
	b.ReportMetric(float64(bytes)/raw.Seconds()/(1<<20), "raw-MiB/s")
	b.ReportMetric(exp.Seconds()/raw.Seconds(), "x-raw-read")
}

package raftjournal

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// benchTree yields a realistic tree in parent-first order: 100 services × 100
// instances × (n/10000) leaves, each with dataSize bytes of data, in import
// batches of batchSize nodes.
func benchBatches(n, dataSize, batchSize int, emit func(entry []byte)) {
	hint := uint64(n)
	acl := znode.WorldAnyone()
	data := bytes.Repeat([]byte("d"), dataSize)
	zxid := int64(1) << 32
	batch := make([]*znode.Node, 0, batchSize)
	add := func(path string) {
		zxid++
		batch = append(batch, &znode.Node{Path: path, Data: data, ACL: acl, Stat: znode.Stat{Czxid: zxid, Mzxid: zxid, Pzxid: zxid, Ctime: 1, Mtime: 1}})
		if len(batch) == batchSize {
			emit(Encode(&ImportBatch{Nodes: batch, SizeHint: hint}))
			batch = batch[:0]
		}
	}
	leaves := max(1, n/10000)
	count := 0
	for s := 0; s < 100 && count < n; s++ {
		svc := fmt.Sprintf("/svc%03d", s)
		add(svc)
		count++
		for i := 0; i < 100 && count < n; i++ {
			inst := fmt.Sprintf("%s/inst%03d", svc, i)
			add(inst)
			count++
			for l := 0; l < leaves && count < n; l++ {
				add(fmt.Sprintf("%s/node-%06d", inst, l))
				count++
			}
		}
	}
	if len(batch) > 0 {
		emit(Encode(&ImportBatch{Nodes: batch, SizeHint: hint}))
	}
}

// BenchmarkImportBatch measures ImportBatch apply throughput: 200k nodes of 100
// bytes in batches of 10k into a fresh FSM.
func BenchmarkImportBatch(b *testing.B) {
	const nodes = 200_000
	var entries [][]byte
	benchBatches(nodes, 100, 10_000, func(e []byte) { entries = append(entries, e) })
	b.ResetTimer()
	var elapsed, cpu time.Duration
	for range b.N {
		b.StopTimer()
		f, _ := NewFSM(DefaultConfig())
		runtime.GC()
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		for i, e := range entries {
			if _, err := f.ApplyEntry(uint64(i+1), e); err != nil {
				b.Fatal(err)
			}
		}
		elapsed += time.Since(start)
		cpu += cpuTime() - cpu0
		if f.NodeCount() != nodes+4 {
			b.Fatalf("%d nodes", f.NodeCount())
		}
	}
	b.ReportMetric(float64(nodes*b.N)/elapsed.Seconds(), "nodes/s")
	// The machine may be shared; nodes per CPU-second (user+system, all threads,
	// GC included) does not depend on what else runs.
	b.ReportMetric(float64(nodes*b.N)/cpu.Seconds(), "nodes/cpu-s")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNativeCreate measures native create throughput, one create per entry
// (encoding included), in the primary phase.
func BenchmarkNativeCreate(b *testing.B) {
	h := newHarness(b)
	h.primary()
	s := h.session()
	for i := range 100 {
		h.mustWrite(s, create(fmt.Sprintf("/p%d", i), "", ModePersistent))
	}
	data := bytes.Repeat([]byte("d"), 100)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		w := &Write{Session: s, Time: int64(i), Ops: []Op{{Kind: OpCreate, Path: fmt.Sprintf("/p%d/n-", i%100), Data: data, ACL: znode.WorldAnyone(), Mode: ModePersistentSequential}}}
		h.index++
		res, err := h.f.ApplyEntry(h.index, Encode(w))
		if err != nil || res.Err != nil {
			b.Fatal(err, res.Err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkSourceSetData measures mirrored setData throughput on existing nodes.
func BenchmarkSourceSetData(b *testing.B) {
	f, _ := NewFSM(DefaultConfig())
	idx := uint64(0)
	benchBatches(10_000, 100, 10_000, func(e []byte) { idx++; f.ApplyEntry(idx, e) })
	data := bytes.Repeat([]byte("e"), 100)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		z := int64(2)<<32 | int64(i+1)
		path := fmt.Sprintf("/svc%03d", i%40)
		czxid := f.s.t.nodes[path].czxid
		tx := &SourceTxn{Zxid: z, Ops: []SourceOp{{Kind: SourceSetData, Path: path, Data: data, Stat: znode.Stat{Czxid: czxid, Mzxid: z, Version: int32(i + 1), Pzxid: czxid}}}}
		idx++
		if _, err := f.ApplyEntry(idx, Encode(tx)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "txns/s")
}

// BenchmarkMemoryPerNode imports 1M nodes of 100 bytes and reports the heap the
// tree takes per node beyond the data itself, and how long a snapshot holds the
// read lock and takes to write.
func BenchmarkMemoryPerNode(b *testing.B) {
	const nodes, dataSize = 1_000_000, 100
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f, _ := NewFSM(DefaultConfig())
		idx := uint64(0)
		benchBatches(nodes, dataSize, 10_000, func(e []byte) {
			idx++
			if _, err := f.ApplyEntry(idx, e); err != nil {
				b.Fatal(err)
			}
		})
		runtime.GC()
		runtime.ReadMemStats(&after)
		if f.NodeCount() != nodes+4 {
			b.Fatalf("%d nodes", f.NodeCount())
		}
		perNode := float64(after.HeapAlloc-before.HeapAlloc)/nodes - dataSize
		b.ReportMetric(perNode, "B/node")

		start := time.Now()
		snap := f.capture(false)
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-snapshot-lock")
		start = time.Now()
		if _, err := snap.writeTo(io.Discard); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-snapshot-write")
		runtime.KeepAlive(f)
	}
}

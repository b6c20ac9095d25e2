package importer

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

var (
	benchOfflineNodes = flag.Int("importer.offline-nodes", 1_000_000, "nodes in BenchmarkOfflineImport's snapshot")
	benchOnlineNodes  = flag.Int("importer.online-nodes", 100_000, "nodes BenchmarkOnlineImport imports")
	benchMigrateNodes = flag.Int("importer.migrate-nodes", 100_000, "nodes of BenchmarkMigrateKafka's seeded tree")
)

// BenchmarkOfflineImport runs `zk2raft import --data-dir` as a child process
// on a synthetic Kafka-shaped snapshot (1M nodes by default) and reports its
// rate and its peak RSS (the tree itself lives in the journal's memory).
//
//	go test ./importer -run '^$' -bench OfflineImport -benchtime 3x
func BenchmarkOfflineImport(b *testing.B) {
	dir := b.TempDir()
	snap := filepath.Join(dir, "export.snap")
	tr := synthetic(b, snap, *benchOfflineNodes, false)
	fi, _ := os.Stat(snap)
	b.Logf("snapshot: %d nodes, %d bytes", tr.NodeCount, fi.Size())
	var best, cpu time.Duration
	var peak int64
	i := 0
	for b.Loop() {
		target := filepath.Join(dir, fmt.Sprintf("journal-%d", i))
		i++
		cmd := exec.Command(zk2raftBin, "import", "--snapshot", snap, "--data-dir", target, "--json", "--log-level", "warn", "--no-progress")
		start := time.Now()
		out, err := cmd.Output()
		took := time.Since(start)
		if err != nil {
			b.Fatalf("import: %v\n%s", err, out)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil || m["digest_equal"] != true {
			b.Fatalf("import output: %v\n%s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			peak = max(peak, ru.Maxrss*1024)
		}
		if best == 0 || took < best {
			best = took
			// CPU time, less sensitive than wall time to a machine shared
			// with other work.
			cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		_ = os.RemoveAll(target)
	}
	rate := float64(tr.NodeCount) / best.Seconds()
	b.ReportMetric(rate, "nodes/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(peak)/float64(tr.NodeCount), "RSS-bytes/node")
	b.ReportMetric(rate/200_000, "x-target-200k/s")
	b.ReportMetric(float64(tr.NodeCount)/cpu.Seconds(), "nodes/cpu-s")
	b.Logf("offline import of %d nodes: best %v (%v CPU), %.0f nodes/s (%.2f× the 200k/s target), peak RSS %.0f MiB (%.0f bytes/node)",
		tr.NodeCount, best.Round(time.Millisecond), cpu.Round(time.Millisecond), rate, rate/200_000, float64(peak)/(1<<20), float64(peak)/float64(tr.NodeCount))
}

// BenchmarkOnlineImport imports into a three-node cluster (real raft, on-disk
// stores, loopback TCP) through the admin address as `zk2raft import
// --journal` does, and compares with one awaited Apply per node.
//
//	go test ./importer -run '^$' -bench OnlineImport -benchtime 1x
func BenchmarkOnlineImport(b *testing.B) {
	nodes := cluster(b, 3)
	snap := filepath.Join(b.TempDir(), "export.snap")
	tr := synthetic(b, snap, *benchOnlineNodes, false)
	j, err := DialJournal(b.Context(), adminClient(nodes[0]), nil)
	if err != nil {
		b.Fatal(err)
	}
	var batched float64
	for b.Loop() {
		start := time.Now()
		res, err := ImportFileOnline(b.Context(), snap, j, Options{})
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if res.Sent != int64(tr.NodeCount) && !res.AlreadyDone {
			b.Fatalf("sent %d of %d", res.Sent, tr.NodeCount)
		}
		if !res.AlreadyDone {
			batched = float64(tr.NodeCount) / took.Seconds()
			b.Logf("batched: %d nodes in %v, %d entries, %d bytes", tr.NodeCount, took.Round(time.Millisecond), res.Entries, res.Bytes)
		}
	}
	converged(b, nodes)

	// Baseline: one entry per node, each awaited before the next, through
	// the same client path.
	const single = 2000
	ctx := b.Context()
	parent := &znode.Node{Path: "/baseline", ACL: znode.WorldAnyone(), Stat: znode.Stat{Czxid: 0x300000000, Mzxid: 0x300000000, Pzxid: 0x300000000}}
	if _, err := j.Submit(ctx, raftjournal.Encode(&raftjournal.ImportBatch{Nodes: []*znode.Node{parent}})); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := range single {
		z := int64(0x300000001 + i)
		n := &znode.Node{Path: fmt.Sprintf("/baseline/n%05d", i), Data: []byte(`{"controller_epoch":7,"leader":1,"version":1,"leader_epoch":3,"isr":[1,2,3]}`),
			ACL: znode.WorldAnyone(), Stat: znode.Stat{Czxid: z, Mzxid: z, Pzxid: z}}
		if _, err := j.Submit(ctx, raftjournal.Encode(&raftjournal.ImportBatch{Nodes: []*znode.Node{n}})); err != nil {
			b.Fatal(err)
		}
	}
	one := float64(single) / time.Since(start).Seconds()
	b.ReportMetric(batched, "batched-nodes/s")
	b.ReportMetric(one, "one-apply-per-node-nodes/s")
	b.ReportMetric(batched/one, "x-speedup")
	b.Logf("online import into 3 nodes: batched %.0f nodes/s, one awaited apply per node %.0f nodes/s: %.1f×", batched, one, batched/one)
}

// BenchmarkMigrateKafka seeds the 100k-node kafka tree and times the export
// walk alone (into a discarding sink) against the whole migration: the walk
// streamed into the offline import, the install and its read-back.
//
//	go test ./importer -run '^$' -bench MigrateKafka -benchtime 1x
func BenchmarkMigrateKafka(b *testing.B) {
	ens := zktest.New(b, zktest.Options{Servers: 1, ExtendedTypes: true, MaxHeapMB: 1024})
	hosts := ens.Hosts()
	ctx, cancel := context.WithTimeout(b.Context(), 20*time.Minute)
	defer cancel()
	tree, err := treegen.Seed(ctx, hosts, treegen.Options{Profile: treegen.ProfileKafka, Nodes: *benchMigrateNodes, Seed: 42})
	if err != nil {
		b.Fatal(err)
	}
	defer tree.Close()
	walk := func(sink exporter.Sink) (*exporter.Summary, time.Duration) {
		w, err := exporter.NewWalker(exporter.DefaultConfig(hosts))
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		start := time.Now()
		if err := w.Start(ctx); err != nil {
			b.Fatal(err)
		}
		sum, err := w.Walk(ctx, sink)
		if err != nil {
			b.Fatal(err)
		}
		return sum, time.Since(start)
	}
	var export, migrate time.Duration
	var nodes int64
	i := 0
	for b.Loop() {
		_, e1 := walk(exporter.SinkFunc(func(*znode.Node) error { return nil }))
		start := time.Now()
		bl, err := NewBuilder(ctx, Options{})
		if err != nil {
			b.Fatal(err)
		}
		sum, _ := walk(bl)
		built, err := bl.Finish(nil)
		if err != nil {
			b.Fatal(err)
		}
		cfg := raftjournal.DefaultNodeConfig()
		cfg.NodeID, cfg.RaftAddr, cfg.DataDir = "node-1", "127.0.0.1:7000", filepath.Join(b.TempDir(), fmt.Sprintf("j%d", i))
		i++
		if _, err := built.Install(cfg); err != nil {
			b.Fatal(err)
		}
		m := time.Since(start)
		_, e2 := walk(exporter.SinkFunc(func(*znode.Node) error { return nil }))
		e := min(e1, e2)
		if export == 0 || e < export {
			export = e
		}
		if migrate == 0 || m < migrate {
			migrate = m
		}
		nodes = sum.Nodes
	}
	b.ReportMetric(export.Seconds(), "export-s")
	b.ReportMetric(migrate.Seconds(), "migrate-s")
	b.ReportMetric(migrate.Seconds()/export.Seconds(), "migrate/export")
	b.ReportMetric(float64(nodes)/migrate.Seconds(), "migrate-nodes/s")
	b.Logf("kafka tree of %d nodes: export alone %v, migrate (export streamed into import, install, read-back) %v: %.2f× the export",
		nodes, export.Round(time.Millisecond), migrate.Round(time.Millisecond), migrate.Seconds()/export.Seconds())
}

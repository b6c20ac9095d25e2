package exporter

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkExportRSS runs the real `zk2raft export` binary over a seeded kafka
// tree on a single server and reports its peak resident set size, which stays roughly flat as the
// tree grows (the walk streams; see the package documentation). Run it at two
// sizes:
//
//	go test -run '^$' -bench ExportRSS -benchtime 1x -timeout 60m ./exporter/ -args -export.nodes=100000
//	go test -run '^$' -bench ExportRSS -benchtime 1x -timeout 60m ./exporter/ -args -export.nodes=1000000
func BenchmarkExportRSS(b *testing.B) {
	ens, tree := bench1.get(b, 1)
	bin := filepath.Join(b.TempDir(), "zk2raft")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/zk2raft").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	var peak int64
	var nodes, elapsed float64
	for i := range b.N {
		file := filepath.Join(b.TempDir(), fmt.Sprintf("x%d.snap", i))
		cmd := exec.Command(bin, "export", "--zk", strings.Join(ens.Hosts(), ","), "--path", tree.Root,
			"--out", file, "--json", "--no-progress", "--log-level", "warn")
		cmd.Stderr = os.Stderr
		var stdout strings.Builder
		cmd.Stdout = &stdout
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		// The child's rusage is no use: Go starts children with vfork, so its
		// max RSS counts this process's memory from before the exec. VmHWM in
		// /proc is the child's own high-water mark since the exec.
		done := make(chan struct{})
		hwm := make(chan int64, 1)
		go func() {
			var top int64
			for {
				top = max(top, vmHWM(cmd.Process.Pid))
				select {
				case <-done:
					hwm <- top
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		err := cmd.Wait()
		close(done)
		peak = max(peak, <-hwm)
		if err != nil {
			b.Fatalf("zk2raft export: %v", err)
		}
		elapsed += time.Since(start).Seconds()
		var sum struct {
			Nodes int64 `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(stdout.String()), &sum); err != nil {
			b.Fatal(err)
		}
		nodes += float64(sum.Nodes)
		os.Remove(file)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(nodes/elapsed, "nodes/s")
	fmt.Printf("export peak RSS: %.1f MiB for a %d-node kafka tree (%.0f nodes/s, zk2raft export as a process)\n",
		float64(peak)/(1<<20), tree.Len(), nodes/elapsed)
}

// vmHWM is the peak resident set size of process pid so far, in bytes (0 once
// it is gone).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

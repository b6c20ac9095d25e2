package dualwrite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
)

// openTestQueue opens a queue in dir (a new temp dir if empty) and closes it
// at the end of the test.
func openTestQueue(t testing.TB, cfg QueueConfig) *Queue {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = testlog.New(t)
	}
	q, err := OpenQueue(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func reopenTestQueue(t testing.TB, q *Queue) *Queue {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return openTestQueue(t, q.cfg)
}

// queueTestData is the deterministic payload of writer g's i-th record:
// "g/i;" then 100 to 3,099 pseudo-random bytes.
func queueTestData(g, i int) []byte {
	r := rand.New(rand.NewPCG(uint64(g), uint64(i)))
	b := fmt.Appendf(nil, "%d/%d;", g, i)
	n := 100 + r.IntN(3000)
	for range n {
		b = append(b, byte(r.Uint32()))
	}
	return b
}

// parseQueueTestData returns the writer and index a queueTestData payload
// names, and whether the payload is exactly what queueTestData makes.
func parseQueueTestData(b []byte) (g, i int, ok bool) {
	head, _, found := bytes.Cut(b, []byte(";"))
	if !found {
		return 0, 0, false
	}
	gs, is, found := strings.Cut(string(head), "/")
	if !found {
		return 0, 0, false
	}
	g, err1 := strconv.Atoi(gs)
	i, err2 := strconv.Atoi(is)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return g, i, bytes.Equal(b, queueTestData(g, i))
}

func mustQueueAppend(t testing.TB, q *Queue, recs ...[]byte) (uint64, uint64) {
	t.Helper()
	first, last, err := q.Append(context.Background(), recs...)
	if err != nil {
		t.Fatal(err)
	}
	return first, last
}

func peekWholeQueue(t testing.TB, q *Queue) []Record {
	t.Helper()
	recs, err := q.Peek(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func checkQueueStats(t testing.TB, q *Queue, records int, head, tail uint64) {
	t.Helper()
	st := q.Stats()
	if st.Records != records || st.HeadSeq != head || st.TailSeq != tail {
		t.Fatalf("stats: %d records, seqs %d…%d; want %d records, seqs %d…%d", st.Records, st.HeadSeq, st.TailSeq, records, head, tail)
	}
	if got := len(peekWholeQueue(t, q)); got != records {
		t.Fatalf("peek returns %d records, stats say %d", got, records)
	}
}

func TestQueueReopenKeepsOrderAndContents(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	var want []Record
	for i := range 50 {
		recs := [][]byte{queueTestData(0, 2*i), queueTestData(0, 2*i+1)}
		first, last := mustQueueAppend(t, q, recs...)
		if last != first+1 || first != uint64(2*i+1) {
			t.Fatalf("append %d: seqs %d…%d, want %d…%d", i, first, last, 2*i+1, 2*i+2)
		}
		want = append(want, Record{first, recs[0]}, Record{last, recs[1]})
	}
	// An empty record and a nil one are records too.
	first, _ := mustQueueAppend(t, q, []byte{}, nil)
	want = append(want, Record{first, []byte{}}, Record{first + 1, []byte{}})
	stBefore := q.Stats()

	q = reopenTestQueue(t, q)
	got := peekWholeQueue(t, q)
	if !slices.EqualFunc(got, want, func(a, b Record) bool { return a.Seq == b.Seq && bytes.Equal(a.Data, b.Data) }) {
		t.Fatalf("after reopen: %d records, want %d (or contents differ)", len(got), len(want))
	}
	st := q.Stats()
	if st.Records != stBefore.Records || st.Bytes != stBefore.Bytes || st.HeadSeq != 1 || st.TailSeq != uint64(len(want)) ||
		!st.OldestAppended.Equal(stBefore.OldestAppended) {
		t.Fatalf("stats after reopen %+v, before %+v", st, stBefore)
	}
	if st.Appended != 0 || st.Acked != 0 {
		t.Fatalf("counters after reopen %d/%d, want 0/0 (they count since OpenQueue)", st.Appended, st.Acked)
	}
}

// TestQueueCrashChild is the process TestQueueCrash kills: it appends from
// several goroutines and acks from another, and prints every seq range it
// was given and every ack that returned.
func TestQueueCrashChild(t *testing.T) {
	dir := os.Getenv("ZK2RAFT_QUEUE_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestQueueCrash")
	}
	q, err := OpenQueue(DefaultQueueConfig(dir))
	if err != nil {
		fmt.Printf("E %v\n", err)
		os.Exit(2)
	}
	const writers = 8
	for g := range writers {
		go func() {
			for i := 0; ; {
				k := 1 + i%3 // one to three records an Append
				recs := make([][]byte, k)
				for j := range recs {
					recs[j] = queueTestData(g, i+j)
				}
				first, last, err := q.Append(context.Background(), recs...)
				if err != nil {
					fmt.Printf("E %v\n", err)
					os.Exit(2)
				}
				// One write(2) a line: lines from different goroutines never interleave.
				fmt.Printf("A %d %d %d %d\n", first, last, g, i)
				i += k
			}
		}()
	}
	go func() {
		for {
			<-q.Ready()
			// Lag behind, so that the killed queue holds many records.
			if q.Stats().Records < 1000 {
				continue
			}
			recs, err := q.Peek(200, 0)
			if err != nil {
				fmt.Printf("E %v\n", err)
				os.Exit(2)
			}
			if len(recs) == 0 {
				continue
			}
			// Keep some records: ack only up to the middle of the batch.
			seq := recs[len(recs)/2].Seq
			if err := q.Ack(seq); err != nil {
				fmt.Printf("E %v\n", err)
				os.Exit(2)
			}
			fmt.Printf("K %d\n", seq)
		}
	}()
	time.Sleep(time.Minute)
	fmt.Println("E not killed")
	os.Exit(2)
}

// TestQueueCrash kills (SIGKILL) a process in the middle of appending and
// acking, and checks that the queue it leaves holds every record whose
// Append returned (in the default mode, with no fsync in Append: the page
// cache has them) and nothing but what was appended. Records acked in the
// last 100 ms may come back, since acks are persisted lazily.
func TestQueueCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestQueueCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ZK2RAFT_QUEUE_CRASH_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type appended struct {
		first, last uint64
		g, i        int
	}
	var (
		appends []appended
		ackedTo uint64
		killed  bool
	)
	const killAfter = 5000 // records reported appended
	reported := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "A "):
			var a appended
			if _, err := fmt.Sscanf(line, "A %d %d %d %d", &a.first, &a.last, &a.g, &a.i); err != nil {
				t.Fatalf("child printed %q: %v", line, err)
			}
			appends = append(appends, a)
			reported += int(a.last - a.first + 1)
		case strings.HasPrefix(line, "K "):
			seq, err := strconv.ParseUint(line[2:], 10, 64)
			if err != nil {
				t.Fatalf("child printed %q: %v", line, err)
			}
			ackedTo = max(ackedTo, seq)
		case strings.HasPrefix(line, "E "):
			t.Fatalf("child failed: %s", line)
		}
		if !killed && reported >= killAfter {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed: %v", err)
	}
	t.Logf("child killed after reporting %d appends (%d records) and acks through %d", len(appends), reported, ackedTo)

	q := openTestQueue(t, DefaultQueueConfig(dir))
	held := map[uint64][]byte{}
	for _, r := range peekWholeQueue(t, q) {
		if _, _, ok := parseQueueTestData(r.Data); !ok {
			t.Fatalf("record %d holds data no writer appended (%d bytes)", r.Seq, len(r.Data))
		}
		held[r.Seq] = r.Data
	}
	st := q.Stats()
	t.Logf("queue after the crash: %d records, seqs %d…%d", st.Records, st.HeadSeq, st.TailSeq)
	if st.HeadSeq <= ackedTo {
		t.Logf("records %d to %d were acked but not yet persisted: they are delivered again", st.HeadSeq, ackedTo)
	}
	if l, ok := q.Lost(); ok && readBootID() != "" {
		t.Fatalf("a process crash (same boot id) recorded a loss: %+v", l)
	}
	lastSeqOf := map[int]uint64{}
	for _, a := range appends {
		if a.first <= lastSeqOf[a.g] {
			t.Fatalf("writer %d: append got seqs %d…%d after an earlier one got %d", a.g, a.first, a.last, lastSeqOf[a.g])
		}
		lastSeqOf[a.g] = a.last
		for j := range int(a.last - a.first + 1) {
			seq := a.first + uint64(j)
			if seq < st.HeadSeq {
				continue
			}
			data, ok := held[seq]
			if !ok {
				t.Fatalf("record %d (writer %d, #%d) was reported appended but is gone after the crash", seq, a.g, a.i+j)
			}
			if !bytes.Equal(data, queueTestData(a.g, a.i+j)) {
				t.Fatalf("record %d holds other data than writer %d's #%d", seq, a.g, a.i+j)
			}
		}
	}
	// The queue goes on from where it was.
	first, _ := mustQueueAppend(t, q, []byte("after the crash"))
	if first != st.TailSeq+1 {
		t.Fatalf("append after the crash got seq %d, want %d", first, st.TailSeq+1)
	}
}

func TestQueueBounds(t *testing.T) {
	type step struct {
		sizes []int // one record per size; negative: ack through -size
		full  bool
	}
	for _, tc := range []struct {
		name       string
		maxRecords int
		maxBytes   int64
		steps      []step
		records    int
	}{
		{"records", 5, 1 << 20, []step{{[]int{1, 1, 1}, false}, {[]int{1, 1, 1}, true}, {[]int{1, 1}, false}, {[]int{1}, true}}, 5},
		{"bytes", 100, 1000, []step{{[]int{600}, false}, {[]int{500}, true}, {[]int{400}, false}, {[]int{1}, true}, {[]int{0}, false}}, 3},
		{"record larger than the bound", 100, 100, []step{{[]int{101}, true}, {[]int{100}, false}}, 1},
		{"multi-record append is all or nothing", 4, 1 << 20, []step{{[]int{1, 1, 1}, false}, {[]int{1, 1}, true}, {[]int{1}, false}}, 4},
		{"room again after an ack", 3, 1 << 20, []step{{[]int{1, 1, 1}, false}, {[]int{1}, true}, {[]int{-2}, false}, {[]int{1, 1}, false}, {[]int{1}, true}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTestQueue(t, QueueConfig{MaxRecords: tc.maxRecords, MaxBytes: tc.maxBytes})
			for i, s := range tc.steps {
				if s.sizes[0] < 0 {
					if err := q.Ack(uint64(-s.sizes[0])); err != nil {
						t.Fatal(err)
					}
					continue
				}
				recs := make([][]byte, len(s.sizes))
				for j, n := range s.sizes {
					recs[j] = make([]byte, n)
				}
				before := q.Stats()
				first, last, err := q.Append(context.Background(), recs...)
				switch {
				case s.full && !errors.Is(err, ErrQueueFull):
					t.Fatalf("step %d: err %v, want ErrQueueFull", i, err)
				case s.full:
					if after := q.Stats(); first != 0 || last != 0 || after.Records != before.Records || after.Bytes != before.Bytes || after.TailSeq != before.TailSeq {
						t.Fatalf("step %d: a refused append changed the queue: seqs %d…%d, stats %+v, before %+v", i, first, last, after, before)
					}
				case err != nil:
					t.Fatalf("step %d: %v", i, err)
				}
			}
			q = reopenTestQueue(t, q)
			if got := len(peekWholeQueue(t, q)); got != tc.records {
				t.Fatalf("%d records after reopen, want %d", got, tc.records)
			}
		})
	}
}

// TestQueueBoundsUnderConcurrency checks the bound when many appends share
// a group commit: exactly MaxRecords succeed.
func TestQueueBoundsUnderConcurrency(t *testing.T) {
	const maxRecords = 100
	q := openTestQueue(t, QueueConfig{MaxRecords: maxRecords})
	var ok, full atomic.Int64
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Go(func() {
			for i := range 10 {
				_, _, err := q.Append(context.Background(), queueTestData(g, i))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrQueueFull):
					full.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != maxRecords || full.Load() != 200-maxRecords {
		t.Fatalf("%d appends succeeded and %d were refused, want %d and %d", ok.Load(), full.Load(), maxRecords, 200-maxRecords)
	}
	checkQueueStats(t, q, maxRecords, 1, maxRecords)
}

func TestQueueAck(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	for i := range 10 {
		mustQueueAppend(t, q, queueTestData(0, i))
	}
	if err := q.Ack(4); err != nil {
		t.Fatal(err)
	}
	checkQueueStats(t, q, 6, 5, 10)
	if err := q.Ack(2); err != nil { // below the head: nothing to do
		t.Fatal(err)
	}
	if err := q.Ack(11); err == nil {
		t.Fatal("ack past the tail succeeded")
	}
	q = reopenTestQueue(t, q)
	checkQueueStats(t, q, 6, 5, 10)
	if recs := peekWholeQueue(t, q); recs[0].Seq != 5 || !bytes.Equal(recs[0].Data, queueTestData(0, 4)) {
		t.Fatalf("head after reopen is record %d", recs[0].Seq)
	}
	if err := q.Ack(10); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Bytes != 0 || !st.OldestAppended.IsZero() || st.Acked != 6 {
		t.Fatalf("stats after acking everything: %+v", st)
	}
	q = reopenTestQueue(t, q)
	checkQueueStats(t, q, 0, 11, 10)
}

func TestQueueSeqsNeverReused(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	_, last := mustQueueAppend(t, q, []byte("a"), []byte("b"), []byte("c"))
	if err := q.Ack(last); err != nil {
		t.Fatal(err)
	}
	q = reopenTestQueue(t, q)
	checkQueueStats(t, q, 0, 4, 3)
	if first, _ := mustQueueAppend(t, q, []byte("d")); first != 4 {
		t.Fatalf("first append after a full ack and a restart got seq %d, want 4", first)
	}
}

func TestQueueConcurrentAppendersKeepOrder(t *testing.T) {
	const writers, appends = 16, 100
	q := openTestQueue(t, QueueConfig{})
	seqs := make([][]uint64, writers) // seqs[g][i]: seq of writer g's record i
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := 0; i < appends; {
				k := min(1+(g+i)%2, appends-i)
				recs := make([][]byte, k)
				for j := range recs {
					recs[j] = queueTestData(g, i+j)
				}
				first, last, err := q.Append(context.Background(), recs...)
				if err != nil {
					t.Error(err)
					return
				}
				if last-first+1 != uint64(k) {
					t.Errorf("append of %d records got seqs %d…%d", k, first, last)
				}
				for j := range k {
					seqs[g] = append(seqs[g], first+uint64(j))
				}
				i += k
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	recs := peekWholeQueue(t, q)
	bySeq := map[uint64][]byte{}
	next := make([]int, writers)
	for _, r := range recs {
		g, i, ok := parseQueueTestData(r.Data)
		if !ok {
			t.Fatalf("record %d holds data no writer appended", r.Seq)
		}
		if i != next[g] {
			t.Fatalf("writer %d's record %d comes where its record %d should", g, i, next[g])
		}
		next[g]++
		bySeq[r.Seq] = r.Data
	}
	for g := range writers {
		for i, seq := range seqs[g] {
			if !bytes.Equal(bySeq[seq], queueTestData(g, i)) {
				t.Fatalf("seq %d, returned to writer %d for record %d, holds other data", seq, g, i)
			}
		}
	}
	if len(recs) != writers*appends {
		t.Fatalf("%d records, want %d", len(recs), writers*appends)
	}
}

func TestQueueSecondOpenerFails(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	_, err := OpenQueue(QueueConfig{Dir: q.dir})
	if !errors.Is(err, ErrQueueLocked) || !strings.Contains(err.Error(), q.dir) {
		t.Fatalf("second open: %v, want ErrQueueLocked naming %s", err, q.dir)
	}
	t.Log(err)
	reopenTestQueue(t, q)
}

// crashTestQueue closes q as a kill -9 of its process would leave it: no
// last fsync, no state write; what was written is in the page cache.
func crashTestQueue(t testing.TB, q *Queue) {
	t.Helper()
	q.mu.Lock()
	q.crashed = true
	q.mu.Unlock()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// queueTestSegments returns the segment files in dir, oldest first.
func queueTestSegments(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, queueSegPrefix+"*"+queueSegSuffix))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(segs)
	return segs
}

// queueTestRecordOffsets returns the offset of every record in a segment file.
func queueTestRecordOffsets(t testing.TB, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := 0; off < len(b); {
		_, _, n, err := decodeQueueRecord(b[off:])
		if err != nil {
			t.Fatalf("%s at offset %d: %v", path, off, err)
		}
		offs = append(offs, off)
		off += n
	}
	return offs
}

// patchQueueTestFile overwrites the bytes of path at off with b (or
// truncates it to off when b is nil and trunc is set).
func patchQueueTestFile(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func flipQueueTestByte(t testing.TB, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patchQueueTestFile(t, path, off, []byte{b[off] ^ 0x10})
}

func truncateQueueTestFile(t testing.TB, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// fillTestQueue opens a queue with small segments in a new dir and appends
// n records, queueTestData(0, i) being seq i+1.
func fillTestQueue(t testing.TB, n int, cfg QueueConfig) *Queue {
	t.Helper()
	cfg.SegmentBytes = 8 << 10
	q := openTestQueue(t, cfg)
	for i := range n {
		mustQueueAppend(t, q, queueTestData(0, i))
	}
	if segs := queueTestSegments(t, q.dir); len(segs) < 3 {
		t.Fatalf("%d records make %d segments, want at least 3", n, len(segs))
	}
	return q
}

func TestQueueCorrupt(t *testing.T) {
	// Each damage returns the file it damaged and what the error must say.
	for _, tc := range []struct {
		name   string
		crash  bool // leave the queue as a kill -9 would, instead of closing it
		damage func(t testing.TB, dir string) (path, want string)
	}{
		{"bad CRC in a middle segment", false, func(t testing.TB, dir string) (string, string) {
			seg := queueTestSegments(t, dir)[1]
			off := queueTestRecordOffsets(t, seg)[1]
			flipQueueTestByte(t, seg, int64(off+queueRecordHeaderLen+5))
			return seg, fmt.Sprintf("offset %d: checksum mismatch", off)
		}},
		{"bad CRC in the middle of the last segment", false, func(t testing.TB, dir string) (string, string) {
			segs := queueTestSegments(t, dir)
			seg := segs[len(segs)-1]
			flipQueueTestByte(t, seg, queueRecordHeaderLen+5)
			return seg, "offset 0: checksum mismatch"
		}},
		{"bad CRC followed by a record, after a process crash", true, func(t testing.TB, dir string) (string, string) {
			segs := queueTestSegments(t, dir)
			seg := segs[len(segs)-1]
			flipQueueTestByte(t, seg, queueRecordHeaderLen+5)
			return seg, "offset 0: checksum mismatch"
		}},
		{"cut short after a clean shutdown", false, func(t testing.TB, dir string) (string, string) {
			segs := queueTestSegments(t, dir)
			seg := segs[len(segs)-1]
			offs := queueTestRecordOffsets(t, seg)
			fi, _ := os.Stat(seg)
			truncateQueueTestFile(t, seg, fi.Size()-3)
			return seg, fmt.Sprintf("offset %d: record of", offs[len(offs)-1])
		}},
		{"record under another seq", false, func(t testing.TB, dir string) (string, string) {
			seg := queueTestSegments(t, dir)[1]
			first, _ := parseQueueSegmentName(filepath.Base(seg))
			patchQueueTestFile(t, seg, 0, encodeQueueRecord(first+7, 0, queueTestData(0, int(first-1))))
			return seg, fmt.Sprintf("offset 0: holds seq %d where seq %d belongs", first+7, first)
		}},
		{"missing middle segment", false, func(t testing.TB, dir string) (string, string) {
			segs := queueTestSegments(t, dir)
			if err := os.Remove(segs[1]); err != nil {
				t.Fatal(err)
			}
			return segs[2], "offset 0: starts at seq"
		}},
		{"missing last segment", false, func(t testing.TB, dir string) (string, string) {
			segs := queueTestSegments(t, dir)
			if err := os.Remove(segs[len(segs)-1]); err != nil {
				t.Fatal(err)
			}
			return segs[len(segs)-2], "records"
		}},
		{"malformed segment name", false, func(t testing.TB, dir string) (string, string) {
			path := filepath.Join(dir, "seg-12.log")
			writeQueueTestFile(t, path, nil)
			return path, "offset 0: not a segment"
		}},
		{"state checksum", false, func(t testing.TB, dir string) (string, string) {
			path := filepath.Join(dir, queueStateName)
			flipQueueTestByte(t, path, 12)
			return path, "offset 0: checksum mismatch"
		}},
		{"state cut short", false, func(t testing.TB, dir string) (string, string) {
			path := filepath.Join(dir, queueStateName)
			truncateQueueTestFile(t, path, 20)
			return path, "offset 0: 20 bytes, shorter than a state"
		}},
		{"state missing", false, func(t testing.TB, dir string) (string, string) {
			path := filepath.Join(dir, queueStateName)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			return path, "missing, but the dir holds segments"
		}},
		{"queue file of the bbolt format", false, func(t testing.TB, dir string) (string, string) {
			path := filepath.Join(dir, queueLegacyName)
			writeQueueTestFile(t, path, []byte("bbolt"))
			return path, "earlier bbolt format"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := fillTestQueue(t, 30, QueueConfig{})
			if tc.crash {
				crashTestQueue(t, q)
			} else if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			path, want := tc.damage(t, q.dir)
			q2, err := OpenQueue(QueueConfig{Dir: q.dir, Logger: testlog.New(t)})
			if err == nil {
				q2.Close()
				t.Fatal("open succeeded")
			}
			msg := err.Error()
			if !errors.Is(err, ErrQueueCorrupt) || !strings.Contains(msg, path) || !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q, want one line wrapping ErrQueueCorrupt, naming %s and saying %q", msg, path, want)
			}
			t.Log(msg)
		})
	}
}

// TestQueuePeekFindsDamage damages a record under a running queue: Peek
// reports it with the segment and offset.
func TestQueuePeekFindsDamage(t *testing.T) {
	q := fillTestQueue(t, 30, QueueConfig{})
	seg := queueTestSegments(t, q.dir)[0]
	off := queueTestRecordOffsets(t, seg)[2]
	flipQueueTestByte(t, seg, int64(off+queueRecordHeaderLen))
	_, err := q.Peek(0, 0)
	if !errors.Is(err, ErrQueueCorrupt) || !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d: checksum mismatch", off)) {
		t.Fatalf("peek: %v, want ErrQueueCorrupt naming %s at offset %d", err, seg, off)
	}
}

// queueTestLog is a logger whose output the test reads.
type queueTestLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *queueTestLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *queueTestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *queueTestLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// queueTestBootID returns a boot id hook that returns *id.
func queueTestBootID(id *string) func() string { return func() string { return *id } }

// TestQueueTornTail leaves the last segment ending in a record cut short or
// garbage after an unclean shutdown: opening truncates it, logs it, and
// records an unknown loss only if the machine went down.
func TestQueueTornTail(t *testing.T) {
	const n = 30
	for _, tc := range []struct {
		name     string
		reboot   bool
		damage   func(t testing.TB, seg string) // the last segment
		records  int                            // records left
		wantLost bool
	}{
		{"last record cut short, process crash", false, func(t testing.TB, seg string) {
			fi, _ := os.Stat(seg)
			truncateQueueTestFile(t, seg, fi.Size()-7)
		}, n - 1, false},
		{"half a header, process crash", false, func(t testing.TB, seg string) {
			fi, _ := os.Stat(seg)
			patchQueueTestFile(t, seg, fi.Size(), encodeQueueRecord(n+1, 0, []byte("x"))[:10])
		}, n, false},
		{"zeros, machine went down", true, func(t testing.TB, seg string) {
			fi, _ := os.Stat(seg)
			patchQueueTestFile(t, seg, fi.Size(), make([]byte, 4096))
		}, n, true},
		{"bad record followed by good ones, machine went down", true, func(t testing.TB, seg string) {
			flipQueueTestByte(t, seg, queueRecordHeaderLen+1)
		}, -1, true}, // -1: up to the last segment's first record
	} {
		t.Run(tc.name, func(t *testing.T) {
			boot := "boot-1"
			var log queueTestLog
			q := fillTestQueue(t, n, QueueConfig{bootID: queueTestBootID(&boot), Logger: log.logger()})
			crashTestQueue(t, q)
			segs := queueTestSegments(t, q.dir)
			seg := segs[len(segs)-1]
			offs := queueTestRecordOffsets(t, seg)
			segFirst, _ := parseQueueSegmentName(filepath.Base(seg))
			before, err := os.Stat(seg)
			if err != nil {
				t.Fatal(err)
			}
			sizeBefore := before.Size()
			tc.damage(t, seg)
			if tc.reboot {
				boot = "boot-2"
			}
			q = openTestQueue(t, q.cfg)
			want := tc.records
			if want < 0 {
				want = int(segFirst - 1)
			}
			recs := peekWholeQueue(t, q)
			if len(recs) != want {
				t.Fatalf("%d records after the torn tail, want %d", len(recs), want)
			}
			for i, r := range recs {
				if r.Seq != uint64(i+1) || !bytes.Equal(r.Data, queueTestData(0, i)) {
					t.Fatalf("record %d is not as appended", r.Seq)
				}
			}
			if !strings.Contains(log.String(), "truncated a torn record") {
				t.Fatalf("no log line on the truncation; logs:\n%s", log.String())
			}
			fi, err := os.Stat(seg)
			if err != nil {
				t.Fatal(err)
			}
			wantSize := sizeBefore
			if kept := want - int(segFirst) + 1; kept < len(offs) {
				wantSize = int64(offs[kept])
			}
			if fi.Size() != wantSize {
				t.Fatalf("segment is %d bytes after the truncation, want %d", fi.Size(), wantSize)
			}
			l, lost := q.Lost()
			if lost != tc.wantLost || lost && l != (LostInfo{Since: l.Since}) {
				t.Fatalf("lost %+v %v, want an unknown loss: %v", l, lost, tc.wantLost)
			}
			if first, _ := mustQueueAppend(t, q, []byte("after")); first != uint64(want+1) {
				t.Fatalf("append after the truncation got seq %d, want %d", first, want+1)
			}
			q = reopenTestQueue(t, q)
			checkQueueStats(t, q, want+1, 1, uint64(want+1))
		})
	}
}

// TestQueueHostCrash checks when a previous run's end counts as the machine
// going down (an unknown loss is recorded) and when not.
func TestQueueHostCrash(t *testing.T) {
	for _, tc := range []struct {
		name             string
		before, after    string // boot ids
		crash, strict    bool
		markedBefore     bool // a MarkLost before the crash
		wantLost         bool
		wantFirst, wantN int64
	}{
		{"process crash", "boot-1", "boot-1", true, false, false, false, 0, 0},
		{"machine went down", "boot-1", "boot-2", true, false, false, true, 0, 0},
		{"clean shutdown and reboot", "boot-1", "boot-2", false, false, false, false, 0, 0},
		{"machine went down with SyncOnAppend", "boot-1", "boot-2", true, true, false, false, 0, 0},
		{"no boot id to compare", "", "", true, false, false, true, 0, 0},
		{"machine went down after a known loss", "boot-1", "boot-2", true, false, true, true, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			boot := tc.before
			var log queueTestLog
			q := openTestQueue(t, QueueConfig{bootID: queueTestBootID(&boot), SyncOnAppend: tc.strict, Logger: log.logger()})
			mustQueueAppend(t, q, []byte("a"), []byte("b"))
			if tc.markedBefore {
				if err := q.MarkLost(0x100000005); err != nil {
					t.Fatal(err)
				}
			}
			if tc.crash {
				crashTestQueue(t, q)
			} else if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			boot = tc.after
			q = openTestQueue(t, q.cfg)
			l, lost := q.Lost()
			if lost != tc.wantLost || lost && (l.FirstZxid != tc.wantFirst || l.Count != tc.wantN) {
				t.Fatalf("lost %+v %v, want %v with first zxid %#x and count %d", l, lost, tc.wantLost, tc.wantFirst, tc.wantN)
			}
			if lost && !tc.markedBefore && l.LastZxid != 0 {
				t.Fatalf("unknown loss %+v has a last zxid", l)
			}
			if said := strings.Contains(log.String(), "the machine went down"); said != (tc.wantLost) {
				t.Fatalf("log says the machine went down: %v, want %v; logs:\n%s", said, tc.wantLost, log.String())
			}
			checkQueueStats(t, q, 2, 1, 2)
			if !lost {
				return
			}
			// The mark survives a restart, widens with later losses, and is
			// cleared by ClearLost.
			q = reopenTestQueue(t, q)
			if err := q.MarkLost(0x200000001); err != nil {
				t.Fatal(err)
			}
			if l, _ := q.Lost(); l.FirstZxid != 0 || l.LastZxid != 0x200000001 || l.Count != tc.wantN+1 {
				t.Fatalf("after MarkLost: %+v", l)
			}
			if err := q.ClearLost(); err != nil {
				t.Fatal(err)
			}
			q = reopenTestQueue(t, q)
			if l, ok := q.Lost(); ok {
				t.Fatalf("lost after ClearLost and reopen: %+v", l)
			}
		})
	}
}

// TestQueueSyncOnAppend checks that with SyncOnAppend every Append returns
// after an fsync covering its records, shared between concurrent appenders,
// and that by default the syncer catches up within SyncEvery.
func TestQueueSyncOnAppend(t *testing.T) {
	syncedThrough := func(q *Queue) uint64 {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.synced
	}
	t.Run("strict", func(t *testing.T) {
		q := openTestQueue(t, QueueConfig{SyncOnAppend: true})
		before := q.syncs.Load()
		const writers, appends = 8, 50
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				for i := range appends {
					_, last, err := q.Append(context.Background(), queueTestData(g, i))
					if err != nil {
						t.Error(err)
						return
					}
					if s := syncedThrough(q); s < last {
						t.Errorf("append of seq %d returned with records synced through %d", last, s)
						return
					}
				}
			})
		}
		wg.Wait()
		syncs := q.syncs.Load() - before
		if syncs == 0 || syncs > writers*appends {
			t.Fatalf("%d fsyncs for %d appends", syncs, writers*appends)
		}
		t.Logf("%d appends from %d goroutines, %d fsyncs", writers*appends, writers, syncs)
	})
	t.Run("default", func(t *testing.T) {
		q := openTestQueue(t, QueueConfig{SyncEvery: 5 * time.Millisecond})
		_, last := mustQueueAppend(t, q, []byte("x"))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.waitSynced(ctx, last); err != nil {
			t.Fatalf("record %d not synced: %v", last, err)
		}
	})
}

// TestQueueSegments checks that appends roll segments at SegmentBytes and
// that segments are deleted once every record in them is acked and the ack
// persisted.
func TestQueueSegments(t *testing.T) {
	const n = 60
	q := fillTestQueue(t, n, QueueConfig{})
	segs := queueTestSegments(t, q.dir)
	full := q.Stats().FileBytes
	if err := q.Ack(n / 2); err != nil {
		t.Fatal(err)
	}
	q = reopenTestQueue(t, q)
	left := queueTestSegments(t, q.dir)
	if len(left) >= len(segs) || q.Stats().FileBytes >= full {
		t.Fatalf("%d segments (%d bytes) before acking half, %d (%d bytes) after", len(segs), full, len(left), q.Stats().FileBytes)
	}
	if first, _ := parseQueueSegmentName(filepath.Base(left[0])); first > n/2+1 {
		t.Fatalf("first segment left starts at %d, past the head %d", first, n/2+1)
	}
	recs := peekWholeQueue(t, q)
	for i, r := range recs {
		if r.Seq != uint64(n/2+1+i) || !bytes.Equal(r.Data, queueTestData(0, n/2+i)) {
			t.Fatalf("record %d after deleting segments is not as appended", r.Seq)
		}
	}
	if err := q.Ack(n); err != nil {
		t.Fatal(err)
	}
	q = reopenTestQueue(t, q)
	if left := queueTestSegments(t, q.dir); len(left) != 1 {
		t.Fatalf("%d segments after acking everything, want the last one only", len(left))
	}
	if first, _ := mustQueueAppend(t, q, []byte("next")); first != n+1 {
		t.Fatalf("append after acking everything got seq %d, want %d", first, n+1)
	}
}

func writeQueueTestFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestQueueLostSurvivesRestart(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	if _, ok := q.Lost(); ok {
		t.Fatal("a new queue reports lost writes")
	}
	before := time.Now()
	for _, zxid := range []int64{0x100000100, 0x100000105, 0x100000103} {
		if err := q.MarkLost(zxid); err != nil {
			t.Fatal(err)
		}
	}
	want, ok := q.Lost()
	if !ok || want.FirstZxid != 0x100000100 || want.LastZxid != 0x100000105 || want.Count != 3 || want.Since.Before(before) {
		t.Fatalf("lost %+v %v", want, ok)
	}
	q = reopenTestQueue(t, q)
	got, ok := q.Lost()
	if !ok || got.FirstZxid != want.FirstZxid || got.LastZxid != want.LastZxid || got.Count != want.Count || !got.Since.Equal(want.Since) {
		t.Fatalf("lost after reopen %+v %v, want %+v", got, ok, want)
	}
	if err := q.ClearLost(); err != nil {
		t.Fatal(err)
	}
	if _, ok := q.Lost(); ok {
		t.Fatal("lost after ClearLost")
	}
	q = reopenTestQueue(t, q)
	if l, ok := q.Lost(); ok {
		t.Fatalf("lost after ClearLost and reopen: %+v", l)
	}
}

func TestQueueClose(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	mustQueueAppend(t, q, []byte("x"))
	for range 2 {
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := q.Append(context.Background(), []byte("y")); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := q.Peek(1, 0); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("peek after close: %v", err)
	}
	for name, err := range map[string]error{"ack": q.Ack(1), "mark lost": q.MarkLost(1), "clear lost": q.ClearLost()} {
		if !errors.Is(err, ErrQueueClosed) {
			t.Fatalf("%s after close: %v", name, err)
		}
	}
	q = openTestQueue(t, q.cfg)
	checkQueueStats(t, q, 1, 1, 1)
}

// TestQueueCloseWaitsForAppends closes while appends are in flight: each
// either returns a seq, and is then in the queue after reopening, or
// ErrQueueClosed.
func TestQueueCloseWaitsForAppends(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				first, _, err := q.Append(context.Background(), queueTestData(g, i))
				if errors.Is(err, ErrQueueClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, first)
				mu.Unlock()
			}
		})
	}
	for q.Stats().TailSeq < 100 {
		select {
		case <-q.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("no appends")
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	q = openTestQueue(t, q.cfg)
	if st := q.Stats(); st.Records != len(got) {
		t.Fatalf("%d records after reopen, %d appends returned a seq", st.Records, len(got))
	}
}

func TestQueueAppendContext(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := q.Append(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a canceled context: %v", err)
	}
	checkQueueStats(t, q, 0, 1, 0)
	if first, last, err := q.Append(context.Background()); first != 0 || last != 0 || err != nil {
		t.Fatalf("append of nothing: %d %d %v", first, last, err)
	}
}

func TestQueueReady(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	select {
	case <-q.Ready():
		t.Fatal("ready before any append")
	default:
	}
	mustQueueAppend(t, q, []byte("x"))
	select {
	case <-q.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no ready signal after an append")
	}
}

func TestQueuePeekLimits(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	for range 10 {
		mustQueueAppend(t, q, make([]byte, 100))
	}
	for _, tc := range []struct {
		name          string
		max, maxBytes int
		want          int
	}{
		{"count", 3, 0, 3},
		{"bytes", 0, 250, 2},
		{"bytes exactly", 0, 300, 3},
		{"at least one record", 0, 50, 1},
		{"no limit", 0, 0, 10},
		{"count and bytes", 5, 1000, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := q.Peek(tc.max, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tc.want || recs[0].Seq != 1 {
				t.Fatalf("peek(%d, %d): %d records from %d, want %d from 1", tc.max, tc.maxBytes, len(recs), recs[0].Seq, tc.want)
			}
		})
	}
	if got := q.Stats().Records; got != 10 {
		t.Fatalf("peek removed records: %d left", got)
	}
}

func TestQueueOldestAppended(t *testing.T) {
	q := openTestQueue(t, QueueConfig{})
	if st := q.Stats(); !st.OldestAppended.IsZero() {
		t.Fatalf("empty queue: oldest %v", st.OldestAppended)
	}
	before := time.Now()
	mustQueueAppend(t, q, []byte("a"))
	first := q.Stats().OldestAppended
	if first.Before(before) || first.After(time.Now()) {
		t.Fatalf("oldest %v, appended after %v", first, before)
	}
	time.Sleep(2 * time.Millisecond) // two distinct append times
	mustQueueAppend(t, q, []byte("b"))
	if st := q.Stats(); !st.OldestAppended.Equal(first) {
		t.Fatalf("oldest moved to %v on a second append", st.OldestAppended)
	}
	if err := q.Ack(1); err != nil {
		t.Fatal(err)
	}
	second := q.Stats().OldestAppended
	if !second.After(first) {
		t.Fatalf("oldest after ack %v, not after %v", second, first)
	}
	q = reopenTestQueue(t, q)
	if got := q.Stats().OldestAppended; !got.Equal(second) {
		t.Fatalf("oldest after reopen %v, want %v", got, second)
	}
}

// TestQueueMatchesModel runs random appends, acks, peeks, lost marks,
// reopens and process crashes against a slice, with small segments. After a
// crash the head may move back (acks not yet persisted) but never past what
// was acked, and nothing appended is missing. ZK2RAFT_QUEUE_SEED replays a
// seed.
func TestQueueMatchesModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ZK2RAFT_QUEUE_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (ZK2RAFT_QUEUE_SEED=%d replays it)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0))
	const maxRecords, maxBytes = 50, 20000
	q := openTestQueue(t, QueueConfig{MaxRecords: maxRecords, MaxBytes: maxBytes, NoSync: true, SegmentBytes: 8 << 10,
		bootID: func() string { return "model" }})
	var model, all []Record // all: every record appended, by seq-1
	var modelBytes int64
	next := uint64(1)
	lost := int64(0)
	for step := range 2000 {
		switch op := r.IntN(20); {
		case op < 10:
			recs := make([][]byte, 1+r.IntN(4))
			size := 0
			for j := range recs {
				d := queueTestData(step, j)
				recs[j] = d[:r.IntN(min(2000, len(d)))]
				size += len(recs[j])
			}
			first, last, err := q.Append(context.Background(), recs...)
			fits := len(model)+len(recs) <= maxRecords && modelBytes+int64(size) <= maxBytes
			if !fits {
				if !errors.Is(err, ErrQueueFull) {
					t.Fatalf("step %d: append that does not fit: %v", step, err)
				}
				continue
			}
			if err != nil || first != next || last != next+uint64(len(recs))-1 {
				t.Fatalf("step %d: append: %d…%d %v, want %d…", step, first, last, err, next)
			}
			for _, d := range recs {
				model = append(model, Record{next, d})
				all = append(all, Record{next, d})
				modelBytes += int64(len(d))
				next++
			}
		case op < 15:
			seq := next - 1
			if len(model) > 0 {
				seq = model[r.IntN(len(model))].Seq
			}
			if err := q.Ack(seq); err != nil {
				t.Fatalf("step %d: ack %d: %v", step, seq, err)
			}
			for len(model) > 0 && model[0].Seq <= seq {
				modelBytes -= int64(len(model[0].Data))
				model = model[1:]
			}
		case op < 17:
			max, maxB := r.IntN(10), r.IntN(5000)
			got, err := q.Peek(max, maxB)
			if err != nil {
				t.Fatal(err)
			}
			want := peekQueueModel(model, max, maxB)
			if !slices.EqualFunc(got, want, func(a, b Record) bool { return a.Seq == b.Seq && bytes.Equal(a.Data, b.Data) }) {
				t.Fatalf("step %d: peek(%d, %d) returned %d records, want %d", step, max, maxB, len(got), len(want))
			}
		case op < 18:
			if err := q.MarkLost(int64(step)); err != nil {
				t.Fatal(err)
			}
			lost++
		case op < 19:
			q = reopenTestQueue(t, q)
		default:
			crashTestQueue(t, q)
			q = openTestQueue(t, q.cfg)
			head := q.Stats().HeadSeq
			modelHead := next
			if len(model) > 0 {
				modelHead = model[0].Seq
			}
			if head > modelHead {
				t.Fatalf("step %d: head %d after a crash, past the model's %d", step, head, modelHead)
			}
			model = slices.Clone(all[head-1:])
			modelBytes = 0
			for _, r := range model {
				modelBytes += int64(len(r.Data))
			}
			if got := peekWholeQueue(t, q); !slices.EqualFunc(got, model, func(a, b Record) bool { return a.Seq == b.Seq && bytes.Equal(a.Data, b.Data) }) {
				t.Fatalf("step %d: after a crash the queue holds %d records, want %d from %d", step, len(got), len(model), head)
			}
		}
		st := q.Stats()
		head := next
		if len(model) > 0 {
			head = model[0].Seq
		}
		if st.Records != len(model) || st.Bytes != modelBytes || st.HeadSeq != head || st.TailSeq != next-1 {
			t.Fatalf("step %d: stats %+v, model %d records, %d bytes, seqs %d…%d", step, st, len(model), modelBytes, head, next-1)
		}
		if l, _ := q.Lost(); l.Count != lost {
			t.Fatalf("step %d: lost count %d, want %d", step, l.Count, lost)
		}
	}
}

func peekQueueModel(model []Record, max, maxBytes int) []Record {
	var out []Record
	total := 0
	for _, r := range model {
		if max > 0 && len(out) == max || maxBytes > 0 && len(out) > 0 && total+len(r.Data) > maxBytes {
			break
		}
		total += len(r.Data)
		out = append(out, r)
	}
	return out
}

// BenchmarkQueueAppend appends one 300-byte record per call from many
// goroutines, with a delivery loop acking behind them: default durability
// (no fsync in Append), SyncOnAppend (group-committed fsync) and NoSync.
func BenchmarkQueueAppend(b *testing.B) {
	procs := runtime.GOMAXPROCS(0)
	for _, mode := range []struct {
		name string
		cfg  QueueConfig
	}{
		{"default", QueueConfig{}},
		{"sync-on-append", QueueConfig{SyncOnAppend: true}},
		{"nosync", QueueConfig{NoSync: true}},
	} {
		// RunParallel starts parallelism × GOMAXPROCS goroutines.
		for _, parallelism := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/appenders=%d", mode.name, parallelism*procs), func(b *testing.B) {
				cfg := mode.cfg
				cfg.MaxRecords, cfg.MaxBytes = 1<<30, 1<<40
				q := openTestQueue(b, cfg)
				stop := make(chan struct{})
				acked := make(chan struct{})
				go func() {
					defer close(acked)
					for {
						select {
						case <-q.Ready():
						case <-stop:
							return
						}
						if err := q.Ack(q.Stats().TailSeq); err != nil {
							b.Error(err)
							return
						}
					}
				}()
				defer func() { close(stop); <-acked }()
				rec := bytes.Repeat([]byte("x"), 300)
				b.SetBytes(int64(len(rec)))
				b.SetParallelism(parallelism)
				syncs := q.syncs.Load()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, _, err := q.Append(context.Background(), rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(q.syncs.Load()-syncs)/float64(b.N), "fsyncs/record")
			})
		}
	}
}

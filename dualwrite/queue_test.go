package dualwrite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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

	"go.etcd.io/bbolt"

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
// Append returned and no record whose Ack returned.
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
		t.Fatalf("head is %d, but the child's Ack through %d returned", st.HeadSeq, ackedTo)
	}
	lastSeqOf := map[int]uint64{}
	for _, a := range appends {
		if a.first <= lastSeqOf[a.g] {
			t.Fatalf("writer %d: append got seqs %d…%d after an earlier one got %d", a.g, a.first, a.last, lastSeqOf[a.g])
		}
		lastSeqOf[a.g] = a.last
		for j := range int(a.last - a.first + 1) {
			seq := a.first + uint64(j)
			if seq <= ackedTo {
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

// editQueueFile changes a closed queue's file with bbolt directly.
func editQueueFile(t testing.TB, dir string, fn func(meta, recs *bbolt.Bucket) error) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, queueFileName), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		return fn(tx.Bucket(queueMetaBucket), tx.Bucket(queueRecordsBucket))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func queueKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func TestQueueCorruptFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t testing.TB, dir string)
		want   string // in the error, from OpenQueue, or from Peek if peek
		peek   bool
	}{
		{"not a bbolt file", func(t testing.TB, dir string) {
			writeQueueTestFile(t, filepath.Join(dir, queueFileName), bytes.Repeat([]byte("not a queue "), 5000))
		}, "not a bbolt database", false},
		{"empty file", func(t testing.TB, dir string) {
			writeQueueTestFile(t, filepath.Join(dir, queueFileName), nil)
		}, "is empty (0 bytes)", false},
		{"no buckets", func(t testing.TB, dir string) {
			db, err := bbolt.Open(filepath.Join(dir, queueFileName), 0o644, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket(queueMetaBucket) }); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, `has no "meta" or "records" bucket`, false},
		{"short state value", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(meta, _ *bbolt.Bucket) error { return meta.Put(queueStateKey, []byte("12345")) })
		}, "state value: 5 bytes, want 21", false},
		{"state checksum", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(meta, _ *bbolt.Bucket) error {
				v := bytes.Clone(meta.Get(queueStateKey))
				v[5] ^= 1
				return meta.Put(queueStateKey, v)
			})
		}, "state value: checksum mismatch", false},
		{"lost value", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(meta, _ *bbolt.Bucket) error { return meta.Put(queueLostKey, []byte{1, 2, 3}) })
		}, "lost value: 3 bytes, want 37", false},
		{"truncated record", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(_, recs *bbolt.Bucket) error {
				v := recs.Get(queueKey(2))
				return recs.Put(queueKey(2), bytes.Clone(v[:len(v)-10]))
			})
		}, "record 2: record holds", false},
		{"record shorter than a header", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(_, recs *bbolt.Bucket) error { return recs.Put(queueKey(3), []byte{1, 0}) })
		}, "record 3: value is 2 bytes, shorter than a record header", false},
		{"missing record", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(_, recs *bbolt.Bucket) error { return recs.Delete(queueKey(2)) })
		}, "records 2 to 2 are missing", false},
		{"missing tail", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(_, recs *bbolt.Bucket) error { return recs.Delete(queueKey(3)) })
		}, "records 3 to 3 are missing", false},
		{"record past the tail", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(_, recs *bbolt.Bucket) error {
				return recs.Put(queueKey(9), encodeQueueRecord(9, 0, []byte("x")))
			})
		}, "record 9 is past the tail 3", false},
		{"acked record still present", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(meta, recs *bbolt.Bucket) error { return meta.Put(queueStateKey, encodeQueueState(4, 1)) })
		}, "record 1 is still present, but the queue is acked through 1", false},
		{"flipped data bit", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(_, recs *bbolt.Bucket) error {
				v := bytes.Clone(recs.Get(queueKey(2)))
				v[len(v)-1] ^= 0x10
				return recs.Put(queueKey(2), v)
			})
		}, "record 2: checksum mismatch", true},
		{"record under another seq", func(t testing.TB, dir string) {
			editQueueFile(t, dir, func(_, recs *bbolt.Bucket) error {
				return recs.Put(queueKey(1), bytes.Clone(recs.Get(queueKey(2))))
			})
		}, "record 1: checksum mismatch", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTestQueue(t, QueueConfig{})
			mustQueueAppend(t, q, queueTestData(0, 1), queueTestData(0, 2), queueTestData(0, 3))
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, q.dir)
			path := filepath.Join(q.dir, queueFileName)
			q2, err := OpenQueue(QueueConfig{Dir: q.dir, Logger: testlog.New(t)})
			if tc.peek {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				defer q2.Close()
				_, err = q2.Peek(0, 0)
			} else if err == nil {
				q2.Close()
				t.Fatal("open succeeded")
			}
			msg := fmt.Sprint(err)
			if !errors.Is(err, ErrQueueCorrupt) || !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q, want one line wrapping ErrQueueCorrupt, naming %s and saying %q", msg, path, tc.want)
			}
			t.Log(msg)
		})
	}
}

// TestQueueDamagedPages overwrites every bbolt page but the two meta pages:
// opening must fail with an error, not crash the process.
func TestQueueDamagedPages(t *testing.T) {
	for _, fill := range []byte{0x00, 0xff, 0x5a} {
		t.Run(fmt.Sprintf("%#02x", fill), func(t *testing.T) {
			q := openTestQueue(t, QueueConfig{})
			for i := range 20 {
				mustQueueAppend(t, q, queueTestData(0, i))
			}
			q.Close()
			path := filepath.Join(q.dir, queueFileName)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			const page = 4096
			for i := 2 * page; i < len(b); i++ {
				b[i] = fill
			}
			writeQueueTestFile(t, path, b)
			q2, err := OpenQueue(QueueConfig{Dir: q.dir, Logger: testlog.New(t)})
			if err == nil {
				_, err = q2.Peek(0, 0)
				q2.Close()
			}
			if !errors.Is(err, ErrQueueCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want ErrQueueCorrupt naming %s", err, path)
			}
			t.Log(err)
		})
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

func TestQueueShrink(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep int // records left when the shrink happens
	}{
		{"empty", 0},
		{"two records left", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTestQueue(t, QueueConfig{ShrinkAboveBytes: 1 << 20})
			const n = 40
			for i := range n {
				mustQueueAppend(t, q, bytes.Repeat(queueTestData(0, i), 20)) // 2–60 KiB each
			}
			big := q.Stats().FileBytes
			if err := q.Ack(n - uint64(tc.keep)); err != nil {
				t.Fatal(err)
			}
			small := q.Stats().FileBytes
			if small*4 > big {
				t.Fatalf("file of %d bytes is %d bytes after the ack, want it shrunk", big, small)
			}
			t.Logf("file shrank from %d to %d bytes", big, small)
			first, _ := mustQueueAppend(t, q, []byte("after"))
			if first != n+1 {
				t.Fatalf("append after the shrink got seq %d, want %d", first, n+1)
			}
			check := func() {
				t.Helper()
				recs := peekWholeQueue(t, q)
				if len(recs) != tc.keep+1 {
					t.Fatalf("%d records, want %d", len(recs), tc.keep+1)
				}
				for j, r := range recs[:tc.keep] {
					if i := n - tc.keep + j; r.Seq != uint64(i+1) || !bytes.Equal(r.Data, bytes.Repeat(queueTestData(0, i), 20)) {
						t.Fatalf("record %d after the shrink is not record %d as appended", r.Seq, i+1)
					}
				}
			}
			check()
			q = reopenTestQueue(t, q)
			check()
			if stale, _ := filepath.Glob(filepath.Join(q.dir, queueTempPrefix+"*")); len(stale) > 0 {
				t.Fatalf("temporary files left: %v", stale)
			}
		})
	}
}

// TestQueueMatchesModel runs random appends, acks, peeks, lost marks and
// reopens against a slice. ZK2RAFT_QUEUE_SEED replays a seed.
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
	q := openTestQueue(t, QueueConfig{MaxRecords: maxRecords, MaxBytes: maxBytes, NoSync: true, ShrinkAboveBytes: 64 << 10})
	var model []Record
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
		default:
			q = reopenTestQueue(t, q)
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
// goroutines, with a delivery loop acking behind them, with and without
// fsync.
func BenchmarkQueueAppend(b *testing.B) {
	procs := runtime.GOMAXPROCS(0)
	for _, fsync := range []bool{true, false} {
		mode := map[bool]string{true: "fsync", false: "nosync"}[fsync]
		// RunParallel starts parallelism × GOMAXPROCS goroutines.
		for _, parallelism := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/appenders=%d", mode, parallelism*procs), func(b *testing.B) {
				q := openTestQueue(b, QueueConfig{NoSync: !fsync, MaxRecords: 1 << 30, MaxBytes: 1 << 40})
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
			})
		}
	}
}

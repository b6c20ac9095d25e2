package datadir

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// logRecords splits a log file into its header and its records' bytes.
func logRecords(t *testing.T, path string) (header []byte, recs [][]byte, txns []*Txn) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenLog(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		tx, err := r.Next()
		if err != nil {
			break
		}
		recs = append(recs, b[tx.Pos.Offset:r.Offset()])
		txns = append(txns, tx)
	}
	return b[:logHeaderSize], recs, txns
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFollowGrowingLogs replays the fixture's last two logs as a running
// server would write them: record by record, one record in two writes, and
// the last log appearing only when the one before is full. The follower must
// return every txn once, in order, with the tree's digest checked at each.
func TestFollowGrowingLogs(t *testing.T) {
	dir := copyFixture(t, "plain")
	files := scanCopy(t, dir)
	n := len(files.Logs)
	prevLog, lastLog := files.Logs[n-2], files.Logs[n-1]
	hdr, prevRecs, prevTxns := logRecords(t, prevLog.Path)
	_, lastRecs, lastTxns := logRecords(t, lastLog.Path)
	if len(prevRecs) < 4 || len(lastRecs) < 2 {
		t.Fatalf("fixture logs too short: %d and %d records", len(prevRecs), len(lastRecs))
	}
	// The server has written the first two records of the second-to-last log.
	if err := os.Remove(lastLog.Path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prevLog.Path, hdr, 0o644); err != nil {
		t.Fatal(err)
	}
	appendFile(t, prevLog.Path, append(append([]byte{}, prevRecs[0]...), prevRecs[1]...))
	for _, s := range files.Snapshots {
		if s.Zxid >= prevTxns[1].Zxid {
			os.Remove(s.Path) // taken after what the server has written so far
		}
	}

	f, err := Follow(t.Context(), FollowOptions{Options: Options{DataDir: dir}, From: prevTxns[0].Zxid, Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next := func(want *Txn) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		tx, res, err := f.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for zxid %#x: %v", want.Zxid, err)
		}
		if tx.Zxid != want.Zxid || tx.Type != want.Type {
			t.Fatalf("got %s at %#x, want %s at %#x", tx.Type, tx.Zxid, want.Type, want.Zxid)
		}
		if want.HasDigest && f.Tree().Digest() != want.Digest {
			t.Fatalf("zxid %#x: tree digest %v, txn %v", tx.Zxid, f.Tree().Digest(), want.Digest)
		}
		if !tx.Failed() && tx.Type != TxnCreateSession && len(res.Changes) == 0 && tx.Type != TxnCloseSession {
			t.Fatalf("zxid %#x (%s): no changes reported", tx.Zxid, tx.Type)
		}
	}
	nothing := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if tx, _, err := f.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next = %v, %v; want nothing yet", tx, err)
		}
	}
	next(prevTxns[1])
	nothing()
	// A record written in two halves: nothing until it is whole.
	rec := prevRecs[2]
	appendFile(t, prevLog.Path, rec[:len(rec)/2])
	nothing()
	appendFile(t, prevLog.Path, rec[len(rec)/2:])
	next(prevTxns[2])
	for i := 3; i < len(prevRecs); i++ {
		appendFile(t, prevLog.Path, prevRecs[i])
		next(prevTxns[i])
	}
	// The preallocated zeros ZooKeeper writes, then the next log.
	appendFile(t, prevLog.Path, make([]byte, 4096))
	nothing()
	appendFile(t, lastLog.Path, hdr)
	for i := range lastRecs {
		appendFile(t, lastLog.Path, lastRecs[i])
		next(lastTxns[i])
	}
	want, err := Load(t.Context(), Options{DataDir: copyFixture(t, "plain")})
	if err != nil {
		t.Fatal(err)
	}
	if f.Zxid() != want.Zxid || f.Tree().Digest() != want.Tree.Digest() {
		t.Fatalf("followed to %#x, digest %v; Load: %#x, %v", f.Zxid(), f.Tree().Digest(), want.Zxid, want.Tree.Digest())
	}

	// ZooKeeper truncating the log it is reading (a resync with a new
	// leader) must stop the follower.
	if err := os.Truncate(lastLog.Path, int64(len(hdr)+len(lastRecs[0]))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, _, err := f.Next(ctx); !errors.Is(err, ErrTruncatedLog) {
		t.Fatalf("after truncation: %v, want ErrTruncatedLog", err)
	}
}

package datadir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// cursor walks the txns after a snapshot, across log files, checking that
// each follows the one before. Load drives it to the end of the logs; a
// Follower keeps driving it as the logs grow.
type cursor struct {
	files    *Files
	maxLen   int
	snapZxid int64
	snapName string

	logs []LogFile // logs[0] is the file r reads (or will open)
	r    *LogReader
	read []string // the log files opened, in order

	prev    int64 // zxid of the last txn returned (snapZxid before any)
	applied bool  // a txn was returned
	pending *Txn  // a txn read but given back (unread)
	// before is (prev, applied) before the last txn returned, for unread.
	beforePrev    int64
	beforeApplied bool

	// lastLogged is the largest zxid of a complete txn read, the snapshot's
	// own txns included.
	lastLogged int64
	// torn is the torn record the cursor stopped at in the last log.
	torn *TornError
	// follow makes a torn record in the last log an end of data (the writer
	// is at work) without scanning the rest of the file for damage.
	follow bool
}

func newCursor(files *Files, snap SnapshotFile, maxLen int) *cursor {
	return &cursor{
		files: files, maxLen: maxLen, snapZxid: snap.Zxid, snapName: filepath.Base(snap.Path),
		logs: logsFrom(files.Logs, snap.Zxid), prev: snap.Zxid,
	}
}

func (c *cursor) close() {
	if c.r != nil {
		c.r.Close()
		c.r = nil
	}
}

// unread gives back tx, the last txn next returned: the next call to next
// returns it again.
func (c *cursor) unread(tx *Txn) {
	c.pending = tx
	c.prev, c.applied = c.beforePrev, c.beforeApplied
}

// next returns the next txn after the snapshot. At the end of the data
// written so far it returns io.EOF, with c.torn set when a torn record ends
// the last log; a later call sees what was written since (and, after
// addLogs, the logs that appeared).
func (c *cursor) next(ctx context.Context) (*Txn, error) {
	if tx := c.pending; tx != nil {
		c.pending = nil
		c.beforePrev, c.beforeApplied = c.prev, c.applied
		c.prev, c.applied = tx.Zxid, true
		return tx, nil
	}
	for n := 0; ; n++ {
		if n&1023 == 1023 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if len(c.logs) == 0 {
			return nil, io.EOF
		}
		if c.r == nil {
			r, err := OpenLog(c.logs[0].Path, c.maxLen)
			if err != nil {
				return nil, err
			}
			c.r = r
			c.read = append(c.read, c.logs[0].Path)
		}
		last := len(c.logs) == 1
		tx, err := c.r.Next()
		var te *TornError
		if errors.As(err, &te) {
			if last && c.follow {
				c.torn = te
				return nil, io.EOF
			}
			// Damage, or a torn tail: only zeros may follow a torn record.
			tx, err = c.r.CheckTorn()
			if err == nil && tx == nil {
				if last {
					c.torn = te
					return nil, io.EOF
				}
				err = io.EOF // the next log must continue the sequence
			}
		}
		if err == io.EOF {
			if last {
				return nil, io.EOF
			}
			c.close()
			c.logs = c.logs[1:]
			continue
		}
		if err != nil {
			return nil, err
		}
		c.torn = nil
		c.lastLogged = max(c.lastLogged, tx.Zxid)
		if tx.Zxid <= c.prev && !c.applied {
			continue // in the snapshot already (this log started before it)
		}
		if !nextZxid(c.prev, tx.Zxid) {
			what := "the snapshot " + c.snapName
			if c.applied {
				what = fmt.Sprintf("the txn at zxid %#x", c.prev)
			}
			return nil, fmt.Errorf("%w: %s is followed by zxid %#x at %s; the txns between are in no log", ErrMissingLog, what, tx.Zxid, tx.Pos)
		}
		c.beforePrev, c.beforeApplied = c.prev, c.applied
		c.prev, c.applied = tx.Zxid, true
		return tx, nil
	}
}

// addLogs rescans the log directory and queues the logs that start after
// the one being read.
func (c *cursor) addLogs() (int, error) {
	if err := c.files.rescan(); err != nil {
		return 0, err
	}
	after := c.snapZxid
	if len(c.logs) > 0 {
		after = c.logs[len(c.logs)-1].Zxid
	}
	added := 0
	for _, l := range c.files.Logs {
		if l.Zxid > after {
			c.logs = append(c.logs, l)
			added++
		}
	}
	return added, nil
}

// checkTruncated reports ErrTruncatedLog when the log being read is now
// shorter than what was read from it, or no longer in the directory
// (ZooKeeper's FileTxnLog.truncate deletes the logs after the one it cuts).
func (c *cursor) checkTruncated() error {
	if c.r == nil {
		return nil
	}
	if fi, err := os.Stat(c.r.Path()); err != nil || !c.r.sameFile(fi) {
		return fmt.Errorf("%w: %s was removed or replaced while being read", ErrTruncatedLog, filepath.Base(c.r.Path()))
	}
	size, err := c.r.Size()
	if err != nil {
		return err
	}
	if size < c.r.Offset() {
		return fmt.Errorf("%w: %s is %d bytes long, %d of them had been read", ErrTruncatedLog, filepath.Base(c.r.Path()), size, c.r.Offset())
	}
	return nil
}

package datadir

import (
	"context"
	"fmt"
	"io"
	"time"
)

// FollowOptions configure a Follower.
type FollowOptions struct {
	// DataDir, LogDir, MaxRecordBytes and Logger are as for Load (ToZxid is
	// ignored).
	Options
	// From is the zxid of the last txn already taken care of (mirrored):
	// Next returns the txns after it. 0 starts at the end of the logs, so
	// that Next returns only txns written from now on.
	From int64
	// Poll is how often the end of the log is looked at again while there
	// is nothing new (0: DefaultPoll).
	Poll time.Duration
}

// DefaultPoll is how often a Follower looks for new txns when it has read
// everything.
const DefaultPoll = 20 * time.Millisecond

// Follower returns a running server's txns as its logs grow, each applied to
// the tree rebuilt up to the starting point, with the changes it made and
// its digest checked (see the package documentation). It is not safe for
// concurrent use.
type Follower struct {
	st   *State
	c    *cursor
	rp   *replayer
	poll time.Duration
}

// Follow loads the tree as of opts.From (or the end of the logs) as Load
// does, proven by a digest record, and returns a Follower positioned after
// it.
func Follow(ctx context.Context, opts FollowOptions) (*Follower, error) {
	o := opts.Options
	o.ToZxid = opts.From
	st, err := load(ctx, o, true)
	if err != nil {
		return nil, err
	}
	f := &Follower{st: st, c: st.cur, rp: st.rp, poll: opts.Poll}
	if f.poll <= 0 {
		f.poll = DefaultPoll
	}
	f.c.follow = true
	return f, nil
}

// State is the load the Follower started from; its Tree is the live tree.
func (f *Follower) State() *State { return f.st }

// Tree returns the tree as of Zxid.
func (f *Follower) Tree() *Tree { return f.st.Tree }

// Zxid is the last txn applied to the tree.
func (f *Follower) Zxid() int64 { return f.c.prev }

// Position is where the next txn will be read.
func (f *Follower) Position() Position {
	if f.c.r == nil {
		return Position{}
	}
	return Position{File: f.c.r.Path(), Offset: f.c.r.Offset()}
}

// Next waits for the next txn, applies it to the tree, checks it against its
// TxnDigest and returns it with what it changed (the changes' nodes are
// valid until the next call). It returns ctx's error when ctx ends first, and
// ErrDigestMismatch, ErrMissingLog, ErrTruncatedLog or a *FileError when the
// log cannot be followed any more.
func (f *Follower) Next(ctx context.Context) (*Txn, Result, error) {
	for {
		tx, err := f.c.next(ctx)
		if err == io.EOF {
			if err := f.c.checkTruncated(); err != nil {
				return nil, Result{}, err
			}
			n, err := f.c.addLogs()
			if err != nil {
				return nil, Result{}, err
			}
			if n > 0 {
				continue
			}
			select {
			case <-ctx.Done():
				return nil, Result{}, ctx.Err()
			case <-time.After(f.poll):
			}
			continue
		}
		if err != nil {
			return nil, Result{}, err
		}
		if err := f.rp.apply(tx, true); err != nil {
			return nil, Result{}, fmt.Errorf("%w (following %s)", err, tx.Pos)
		}
		f.st.Zxid = tx.Zxid
		return tx, f.rp.res, nil
	}
}

// CheckTruncated reports ErrTruncatedLog when the log being read was cut
// short or removed since it was read: txns already returned may never have
// been committed.
func (f *Follower) CheckTruncated() error { return f.c.checkTruncated() }

// Poll is how often the Follower looks at the log's end again.
func (f *Follower) Poll() time.Duration { return f.poll }

// Close closes the log being read; it is idempotent.
func (f *Follower) Close() error {
	f.c.close()
	return nil
}

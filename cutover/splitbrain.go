package cutover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/reversemirror"
)

// SplitBrain lists the split-brain writes the journal recorded: writes
// ZooKeeper took around the proxies while the journal was primary (the
// reverse mirror's sentry records them; see package reversemirror).
func SplitBrain(ctx context.Context, o Options) ([]reversemirror.SplitBrainWrite, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	js, err := e.journalState(ctx)
	if err != nil {
		return nil, err
	}
	return reversemirror.SplitBrainWrites(js.Checkpoints), nil
}

// Unresolved returns the records not resolved.
func Unresolved(ws []reversemirror.SplitBrainWrite) []reversemirror.SplitBrainWrite {
	var out []reversemirror.SplitBrainWrite
	for _, w := range ws {
		if w.Resolved == nil {
			out = append(out, w)
		}
	}
	return out
}

// ResolveOptions name the split-brain records an operator acknowledges.
type ResolveOptions struct {
	// Zxid selects the records of that ZooKeeper zxid (with Path, only that
	// node's); All selects every unresolved record.
	Zxid int64
	Path string
	All  bool
	// Note says why (required): it is kept in the record.
	Note string
}

// Resolve records the operator's acknowledgement of split-brain writes: the
// write stays in ZooKeeper and is not in the journal, and the operator
// accepts that (typically before finalize, after which ZooKeeper is
// retired). It returns the records it resolved; none matching is an error.
func Resolve(ctx context.Context, o Options, ro ResolveOptions) ([]reversemirror.SplitBrainWrite, error) {
	if ro.Note == "" {
		return nil, errors.New("cutover: resolve: say why (--note): the note is kept in the record")
	}
	if !ro.All && ro.Zxid == 0 && ro.Path == "" {
		return nil, errors.New("cutover: resolve: name the records (--zxid, --path) or --all")
	}
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	js, err := e.journalState(ctx)
	if err != nil {
		return nil, err
	}
	var done []reversemirror.SplitBrainWrite
	for _, w := range Unresolved(reversemirror.SplitBrainWrites(js.Checkpoints)) {
		if !ro.All && (ro.Zxid != 0 && w.Zxid != ro.Zxid || ro.Path != "" && w.Path != ro.Path) {
			continue
		}
		w.Resolved = &reversemirror.Resolution{By: "operator", At: time.Now().UTC(), Note: ro.Note}
		if err := submit(ctx, e.cluster, reversemirror.SplitBrainCheckpoint(&w)); err != nil {
			return done, fmt.Errorf("cutover: resolve %s: %w", w.String(), err)
		}
		e.o.Logger.Warn("cutover: split-brain write acknowledged by the operator", "write", w.String(), "note", ro.Note)
		done = append(done, w)
	}
	if len(done) == 0 {
		return nil, fmt.Errorf("cutover: resolve: no unresolved split-brain write matches (zxid %#x, path %q)", ro.Zxid, ro.Path)
	}
	return done, nil
}

// splitBrainSummary names the split-brain writes for a report line (empty:
// none): how many, how many unresolved, and the first few.
func splitBrainSummary(ws []reversemirror.SplitBrainWrite) string {
	if len(ws) == 0 {
		return ""
	}
	var parts []string
	for i, w := range ws {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more ('cutover status' lists them)", len(ws)-i))
			break
		}
		s := fmt.Sprintf("%s %s at %#x", w.Op, w.Path, w.Zxid)
		if w.Resolved != nil {
			s += " (resolved)"
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("%d split-brain writes recorded while primary, %d unresolved: %s", len(ws), len(Unresolved(ws)), strings.Join(parts, "; "))
}

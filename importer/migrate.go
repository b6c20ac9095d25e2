package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// VerifyMode is how much a migration verifies after the import.
type VerifyMode uint8

const (
	// VerifyDigest compares digests: the journal's against the walk's (with
	// the system nodes) and ZooKeeper's own where it logged a comparable one.
	VerifyDigest VerifyMode = iota
	// VerifyFull also compares every node field by field (verify), against
	// the kept snapshot or by walking ZooKeeper again.
	VerifyFull
	// VerifyNone runs only the checks the import itself makes.
	VerifyNone
)

func (m VerifyMode) String() string {
	switch m {
	case VerifyDigest:
		return "digest"
	case VerifyFull:
		return "full"
	case VerifyNone:
		return "none"
	}
	return fmt.Sprintf("VerifyMode(%d)", uint8(m))
}

// ParseVerifyMode parses "digest", "full" or "none".
func ParseVerifyMode(s string) (VerifyMode, error) {
	for _, m := range []VerifyMode{VerifyDigest, VerifyFull, VerifyNone} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("importer: verify mode %q: want digest, full or none", s)
}

// MigrateOptions configure Migrate. Exactly one target: Node (with DataDir
// set), Journal, or DryRun.
type MigrateOptions struct {
	// Walk is the export walk (start from exporter.DefaultConfig). Its
	// AllowPartial is set from Accept. Unused when FromDataDir is set,
	// except its ToolVersion and ExtendedTypes.
	Walk exporter.Config
	// FromDataDir, when its DataDir is set, reads the tree from a ZooKeeper
	// server's data directory (datadir.Load: exact at one zxid, proven by
	// ZooKeeper's digest, raw owners, sessions) instead of walking the live
	// ensemble.
	FromDataDir datadir.Options
	// Import cuts and sends the entries.
	Import Options
	// Node, when its DataDir is set, is the fresh journal data dir to build
	// and install the initial snapshot into, and the node that will serve
	// it (id, Raft address, log store, snapshot compression).
	Node raftjournal.NodeConfig
	// Journal is the admin client of a running journal to import into,
	// through its leader.
	Journal *raftjournal.AdminClient
	// DryRun walks and reports the pre-flight findings only.
	DryRun bool
	// Accept lets blockers of these kinds through (AcceptableKinds).
	Accept []string
	// KeepSnapshot, when set, is a snapshot file the export is also
	// written to.
	KeepSnapshot string
	// Verify is how much is verified after the import.
	Verify VerifyMode
	// Walking, when set, is called as the walk starts, with what it is
	// ("export+import" or "pre-flight walk") and a reader of its progress;
	// it returns the function to call when the walk ends (a progress bar).
	Walking func(desc string, progress func() exporter.Progress) (done func())
	// Logger receives the migration's log lines; nil discards them.
	Logger *slog.Logger
}

// Validate reports whether the options can be used: one target, and the
// walk's, the import's and the node's own Validate. Their errors are
// returned as they are.
func (o MigrateOptions) Validate() error {
	targets := 0
	for _, set := range []bool{o.Node.DataDir != "", o.Journal != nil, o.DryRun} {
		if set {
			targets++
		}
	}
	switch {
	case targets == 0 || (targets > 1 && !(o.DryRun && targets == 2)):
		return errors.New("importer: a migration needs exactly one target: a data dir, a journal, or a dry run")
	case o.Verify > VerifyNone:
		return fmt.Errorf("importer: %v", o.Verify)
	case o.Verify == VerifyFull && o.Journal != nil:
		return errors.New("importer: a full verification compares the installed snapshot of a data dir migration")
	}
	known := AcceptableKinds()
	for _, k := range o.Accept {
		if !slices.Contains(known, k) {
			return fmt.Errorf("importer: accept %q: want one of %s", k, strings.Join(known, ", "))
		}
	}
	if o.FromDataDir.DataDir == "" {
		if err := o.walkConfig().Validate(); err != nil {
			return err
		}
	} else if o.FromDataDir.ToZxid < 0 {
		return fmt.Errorf("importer: from data dir: ToZxid %#x is negative", o.FromDataDir.ToZxid)
	}
	if err := o.Import.Validate(); err != nil {
		return err
	}
	if o.Node.DataDir != "" {
		if err := o.Node.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// walkConfig is the walk with AllowPartial set from Accept: the walk fails
// on either reason unless told otherwise; the pre-flight still blocks on the
// one not accepted.
func (o MigrateOptions) walkConfig() exporter.Config {
	cfg := o.Walk
	cfg.AllowPartial = slices.Contains(o.Accept, KindUnreadable) || slices.Contains(o.Accept, KindACLMasked)
	return cfg
}

// ErrInterrupted is matched by the error of a migration whose context
// ended before it finished (Ctrl-C, a timeout); the error is an
// *InterruptedError saying what state the target was left in, and matches
// the context's error too.
var ErrInterrupted = errors.New("importer: migration interrupted")

// InterruptedError is a migration stopped by its context: the phase it was
// in, the state it left the target in, and the context's error.
type InterruptedError struct {
	Phase string
	State string
	Err   error
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("migration interrupted during the %s (%v): %s", e.Phase, e.Err, e.State)
}

// Is matches ErrInterrupted.
func (e *InterruptedError) Is(target error) bool { return target == ErrInterrupted }

// Unwrap returns the context's error.
func (e *InterruptedError) Unwrap() error { return e.Err }

// ErrBlocked is matched by the error of a migration the pre-flight refused
// (a blocker not accepted), and of a dry run that found one.
var ErrBlocked = errors.New("importer: pre-flight blocker")

// BlockedError says how many blockers stopped a migration; nothing was
// written to the target. Summary.Preflight lists them.
type BlockedError struct {
	Blockers int
	Source   string // a dry run's source
	Target   string // a refused migration's target
	DryRun   bool
}

func (e *BlockedError) Error() string {
	if e.DryRun {
		return fmt.Sprintf("pre-flight: %d blocker(s) in %s", e.Blockers, e.Source)
	}
	return fmt.Sprintf("migration refused: %d pre-flight blocker(s); nothing was written to %s", e.Blockers, e.Target)
}

// Is matches ErrBlocked.
func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

// Migrate runs a migration: it checks the target before anything else
// (a data dir must be fresh, a journal must be in the shadow phase), walks
// the live ensemble, streams every node into the pre-flight, the kept
// snapshot and the import at once, finishes the import (an offline one is
// installed as the data dir's initial snapshot and read back), and runs the
// verification steps. It returns the summary, also with an error matching
// ErrBlocked (a dry run that found blockers, or a migration the pre-flight
// refused, with nothing written to the target). A summary whose Verified is
// false is a migration whose checks found differences; that is not an error.
func Migrate(ctx context.Context, o MigrateOptions) (*MigrateSummary, error) {
	start := time.Now()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	wcfg := o.walkConfig()
	opts := o.Import
	var src migrateSource
	var dd *dataDirSource
	if o.FromDataDir.DataDir != "" {
		dd = newDataDirSource(o.FromDataDir, wcfg.ToolVersion, wcfg.ExtendedTypes)
		src = dd
		// The sweep's scope: the whole tree, as the data directory holds it.
		// Walk.Auth stays: the sweep reads the journal's tree with it.
		wcfg = exporter.Config{Root: "/", Ephemerals: exporter.EphemeralsInclude, ToolVersion: wcfg.ToolVersion, ExtendedTypes: wcfg.ExtendedTypes, Auth: wcfg.Auth}
	} else {
		src = &walkSource{cfg: wcfg}
	}
	defer src.Close()
	sum := &MigrateSummary{Source: exporter.Source(wcfg.Hosts, wcfg.Root)}
	if dd != nil {
		sum.Source = dd.source
	}
	finished := false // the import reached the target in full
	// interrupted describes what an interrupted run leaves behind.
	interrupted := func(phaseName string) (*MigrateSummary, error) {
		var state string
		switch {
		case o.DryRun:
			state = "a dry run writes nothing"
		case sum.Installed != nil:
			state = fmt.Sprintf("%s holds the complete initial snapshot %s (index %d, read back in full), but it is not verified against ZooKeeper: run 'zk2raft verify --source zk://%s --target journal://%s', or remove the directory and migrate again",
				o.Node.DataDir, sum.Installed.Path, sum.Installed.Index, verifySourceURI(wcfg, dd), o.Node.DataDir)
		case o.Node.DataDir != "":
			state = fmt.Sprintf("nothing was written to %s; not verified", o.Node.DataDir)
		case finished:
			state = fmt.Sprintf("the journal at %s holds the whole import, but it is not verified against ZooKeeper: run 'zk2raft verify'", o.Journal.Addr())
		default:
			state = fmt.Sprintf("the journal at %s holds part of the import (merged node by node, nothing half-written); not verified: run the same migrate again to finish it", o.Journal.Addr())
		}
		sum.Verdict, sum.VerdictReason, sum.Verified = VerdictUnverified, "interrupted: "+state, false
		return sum, &InterruptedError{Phase: phaseName, State: state, Err: ctx.Err()}
	}
	phase := func(name string, since time.Time, nodes int64) time.Time {
		now := time.Now()
		sum.Phases = append(sum.Phases, PhaseTime{Phase: name, Seconds: now.Sub(since).Seconds(), Nodes: nodes})
		o.Logger.Info("phase done", "phase", name, "took", now.Sub(since).Round(time.Millisecond), "nodes", nodes)
		return now
	}

	// Pre-flight of the target: fail before the walk, not after it.
	var journal *RemoteJournal
	switch {
	case o.Node.DataDir != "":
		if err := raftjournal.CheckFreshDataDir(o.Node.DataDir); err != nil {
			return nil, err
		}
		sum.Target = o.Node.DataDir
	case o.Journal != nil:
		var err error
		if journal, err = DialJournal(ctx, o.Journal, o.Logger); err != nil {
			return nil, err
		}
		defer journal.Close()
		st, err := journal.State(ctx, 0)
		if err != nil {
			return nil, err
		}
		if st.Phase != raftjournal.PhaseShadow.String() {
			return nil, fmt.Errorf("importer: the journal at %s is in phase %s; imports need the shadow phase", o.Journal.Addr(), st.Phase)
		}
		sum.Target = "journal " + o.Journal.Addr()
	}

	t := time.Now()
	if err := src.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return interrupted("connect")
		}
		return nil, err
	}
	if dd != nil {
		t = phase("load", t, int64(dd.st.Tree.Len()))
	} else {
		t = phase("connect", t, 0)
	}
	pre := NewPreflight(PreflightConfig{ExtendedTypes: wcfg.ExtendedTypes || src.Header().ExtendedTypes, Accept: o.Accept, RawOwners: dd != nil})
	switch {
	case dd != nil:
		pre.AddQuotas(dd.quotas())
	case wcfg.Root == "/":
		if quotas, err := listQuotas(ctx, wcfg, o.Logger); err != nil {
			o.Logger.Warn("cannot list quotas under /zookeeper/quota", "error", err)
		} else {
			pre.AddQuotas(quotas)
		}
	}

	sinks := teeSink{pre}
	var builder *Builder
	var online *Online
	var keep *znode.SnapshotFile
	var walked *walkedPaths // a journal that held nodes: which paths the walk read, for the sweep
	var err error
	if !o.DryRun {
		if o.KeepSnapshot != "" {
			if keep, err = znode.CreateSnapshotFile(o.KeepSnapshot, src.Header(), znode.SnapshotWriterOptions{}); err != nil {
				return nil, err
			}
			defer keep.Abort()
			sinks = append(sinks, keep)
		}
		if o.Node.DataDir != "" {
			opts.CompressSnapshots = o.Node.CompressSnapshots
			if builder, err = NewBuilder(ctx, opts); err != nil {
				return nil, err
			}
			defer builder.Abort()
			sinks = append(sinks, builder)
		} else {
			st, err := journal.State(ctx, 0)
			if err != nil {
				return nil, err
			}
			base := CheckpointValue{Source: sum.Source, BaseFresh: st.Nodes == int64(len(SystemPaths)) && st.Digest == znode.EmptyTreeDigest}
			key := fmt.Sprintf("import/migrate/%s/%d", sum.Source, src.StartZxid())
			if online, err = NewOnline(ctx, journal, key, base, opts); err != nil {
				return nil, err
			}
			defer online.Abort()
			sinks = append(sinks, online)
			if !base.BaseFresh {
				walked = newWalkedPaths()
				sinks = append(sinks, walked)
			}
		}
	}

	desc := "export+import"
	if o.DryRun {
		desc = "pre-flight walk"
	}
	walkDone := func() {}
	if o.Walking != nil {
		walkDone = o.Walking(desc, src.Progress)
	}
	walkSum, werr := src.Walk(ctx, sinks)
	walkDone()
	var unreadable *exporter.UnreadableError
	switch {
	case ctx.Err() != nil:
		return interrupted(desc)
	case werr == nil:
	case errors.As(werr, &unreadable) && walkSum != nil:
	default:
		return nil, werr
	}
	pre.AddUnreadable(walkSum.Unreadable-walkSum.ACLMasked, exporter.NoAuthPaths(walkSum.UnreadableList, walkSum.ACLMaskedList))
	pre.AddACLMasked(walkSum.ACLMasked, walkSum.ACLMaskedList)
	report := pre.Report()
	report.Source = sum.Source
	t = phase(desc, t, walkSum.Nodes)
	fillWalk(sum, walkSum, wcfg)
	sum.Preflight = report

	if o.DryRun {
		if !report.OK() {
			return sum, &BlockedError{Blockers: report.Blockers, Source: sum.Source, DryRun: true}
		}
		return sum, nil
	}
	if !report.OK() {
		return sum, &BlockedError{Blockers: report.Blockers, Target: sum.Target}
	}
	if werr != nil {
		return nil, werr
	}

	// Finish the import and install.
	if keep != nil {
		tr, err := keep.Commit()
		if err != nil {
			return nil, err
		}
		if tr.Digest != walkSum.Digest || int64(tr.NodeCount) != walkSum.Nodes {
			return nil, fmt.Errorf("%w: kept snapshot %s holds %d nodes with digest %v, the walk read %d with %v", ErrMismatch, o.KeepSnapshot, tr.NodeCount, tr.Digest, walkSum.Nodes, walkSum.Digest)
		}
		sum.KeptSnapshot = o.KeepSnapshot
		sum.Verification = append(sum.Verification, Check{CheckKeptSnapshot, Equal,
			fmt.Sprintf("%s: %d nodes, digest %v", o.KeepSnapshot, tr.NodeCount, tr.Digest)})
	}
	var built *Built
	nodeMax := walkSum.MaxZxid // the newest node zxid, when the import knows it
	if builder != nil {
		cp := CheckpointValue{Source: sum.Source, Nodes: walkSum.Nodes, Total: walkSum.Nodes, Digest: walkSum.Digest.String(), Done: true, BaseFresh: true}
		built, err = builder.Finish(&raftjournal.Checkpoint{Key: fmt.Sprintf("import/migrate/%s/%d", sum.Source, walkSum.StartZxid), Value: cp.Encode()})
		if ctx.Err() != nil {
			return interrupted("build")
		}
		if err != nil {
			return nil, err
		}
		if built.Expected.StreamDigest != walkSum.Digest || built.Expected.StreamNodes != walkSum.Nodes {
			return nil, fmt.Errorf("%w: the import received %d nodes with digest %v, the walk wrote %d with %v", ErrMismatch,
				built.Expected.StreamNodes, built.Expected.StreamDigest, walkSum.Nodes, walkSum.Digest)
		}
		sum.EntryBytes, nodeMax = built.Bytes, built.MaxZxid
		sum.JournalDigest, sum.JournalNodes, sum.SystemAdded = built.Digest.String(), built.Nodes, built.Expected.Added
		sum.Verification = append(sum.Verification, Check{CheckJournalExport, Equal, built.Expected.Explain()})
		info, err := built.Install(o.Node)
		if err != nil {
			return nil, err
		}
		sum.Installed = &InstalledReport{Path: info.Path, Index: info.Index, Term: info.Term, Bytes: info.Bytes, NodeID: info.NodeID, RaftAddr: info.RaftAddr}
		sum.Verification = append(sum.Verification, Check{CheckInstalled, Equal,
			fmt.Sprintf("%s read back in full: %d nodes, digest %v", info.Path, info.Trailer.NodeCount, info.Trailer.Digest)})
		finished = true
		t = phase("install", t, built.Nodes)
		// The install runs to its end whatever the context says (it is
		// atomic); an interrupt that came meanwhile is seen here.
		if ctx.Err() != nil {
			return interrupted("install")
		}
	} else {
		res, err := online.Finish(walkSum.Nodes, walkSum.Digest)
		if res != nil {
			sum.EntryBytes, nodeMax = res.Bytes, res.MaxZxid
			sum.JournalDigest, sum.JournalNodes, sum.SystemAdded = res.Journal.Digest.String(), res.Journal.Nodes, res.Expected.Added
		}
		if ctx.Err() != nil {
			return interrupted("import")
		}
		if err != nil {
			return nil, err
		}
		finished = true
		t = phase("import-finish", t, res.Sent)
		if res.Checked {
			sum.Verification = append(sum.Verification, Check{CheckJournalExport, Equal, res.Expected.Explain()})
		} else {
			// The journal held nodes before: bring it to the walk's tree
			// (deletes included), then compare the migrated scope.
			sw, err := sweep(ctx, journal, o.Journal.WithZooKeeperAuth(authStrings(wcfg.Auth)), wcfg, walked, src, o.Logger)
			if ctx.Err() != nil {
				return interrupted("sweep")
			}
			if err != nil {
				return nil, err
			}
			sum.Swept = &SweepReport{Extra: sw.Extra, Deleted: sw.Deleted, Kept: sw.Kept}
			t = phase("sweep", t, int64(sw.Extra))
			how := fmt.Sprintf("the journal held nodes before this run; %d node(s) in scope the walk did not read, %d deleted as ZooKeeper no longer has them, %d kept (ZooKeeper has them)",
				sw.Extra, sw.Deleted, sw.Kept)
			if st, err := journal.State(ctx, 0); err == nil {
				sum.JournalDigest, sum.JournalNodes = st.Digest.String(), st.Nodes
			}
			if sw.Nodes == walkSum.Nodes && sw.Digest == walkSum.Digest {
				sum.Verification = append(sum.Verification, Check{CheckJournalExport, Equal,
					fmt.Sprintf("%s; the journal's %s now holds the walk's %d nodes, digest %v", how, wcfg.Root, sw.Nodes, sw.Digest)})
			} else {
				sum.Verification = append(sum.Verification, Check{CheckJournalExport, NotComparable,
					fmt.Sprintf("%s; the journal's %s holds %d nodes with digest %v, the walk read %d with %v: writes mirrored since the walk, or a real difference (run 'zk2raft verify')",
						how, wcfg.Root, sw.Nodes, sw.Digest, walkSum.Nodes, walkSum.Digest)})
			}
		}
	}

	// Verify.
	if o.Verify != VerifyNone {
		if dd != nil {
			sum.Verification = append(sum.Verification, dd.digestCheck(sum.JournalDigest, online == nil || online.base.BaseFresh))
		} else {
			sum.Verification = append(sum.Verification, zookeeperDigestCheck(ctx, walkSum, wcfg, nodeMax, sum.JournalDigest))
		}
	}
	if ctx.Err() != nil {
		return interrupted("verification")
	}
	if o.Verify == VerifyFull {
		rep, err := fullVerify(ctx, wcfg, verifySourceURI(wcfg, dd), o.KeepSnapshot, built, sum.Installed.Path, o.Logger)
		if ctx.Err() != nil {
			return interrupted("verification")
		}
		if err != nil {
			return nil, err
		}
		sum.Full = rep
		res := Equal
		if !rep.Equal() {
			res = Different
		}
		sum.Verification = append(sum.Verification, Check{CheckNodeByNode, res,
			fmt.Sprintf("%s vs %s: %d paths compared, %d differences", rep.Source.URI, rep.Target.URI, rep.Compared, rep.Counts.Differences)})
	}
	if o.Verify != VerifyNone {
		phase("verify", t, 0)
	}
	sum.Verdict, sum.VerdictReason = verdict(sum.Verification)
	sum.Verified = sum.Verdict == VerdictVerified
	sum.Seconds = time.Since(start).Seconds()
	return sum, nil
}

// teeSink writes every node to each sink in turn.
type teeSink []exporter.Sink

func (t teeSink) WriteNode(n *znode.Node) error {
	for _, s := range t {
		if err := s.WriteNode(n); err != nil {
			return err
		}
	}
	return nil
}

// WriteRecord passes an application record (a data directory's sessions)
// to the sinks that keep records (a kept snapshot file).
func (t teeSink) WriteRecord(rt znode.RecordType, payload []byte) error {
	for _, s := range t {
		if r, ok := s.(interface {
			WriteRecord(znode.RecordType, []byte) error
		}); ok {
			if err := r.WriteRecord(rt, payload); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t teeSink) ObserveZxid(z int64) {
	for _, s := range t {
		s.ObserveZxid(z)
	}
}

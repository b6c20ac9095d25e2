package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/verify"
)

type verifyOptions struct {
	source, target  string
	format          string
	maxDiffs        int
	digestOnly      bool
	trustTrailer    bool
	path            string
	exclude         []string
	allowFiles      []string
	allowRules      []string
	noDefaultAllow  bool
	zkAuth          zkAuthOptions
	out             string
	rechecks        int
	recheckInterval time.Duration
	timeout         time.Duration
}

func newVerifyCommand(g *globalOptions) *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify --source URI --target URI",
		Short: "Compare two trees node by node and field by field, or by ZooKeeper's digest",
		Long: `Compares the target tree (normally the journal) with the source (normally ZooKeeper):
the set of paths, data (nil and empty told apart), ACL lists, every persisted stat
field (czxid, mzxid, pzxid, ctime, mtime, version, persisted cversion, aversion,
ephemeralOwner) and numChildren. Both sides are streamed in canonical order and
merged with bounded memory.

Sides (URIs):
  zk://host:port[,host:port...][/chroot]  a live ensemble (or a journal node's ZooKeeper port);
                                          the chroot is the subtree compared, paths stay absolute
  snap://FILE                             a snapshot file (export or journal FSM snapshot)
  journal://DATA_DIR                      a journal data directory, read-only
  datadir://ZK_DATA_DIR[?log=DIR][&zxid=Z] a ZooKeeper server's data directory, read-only (as
                                          export --from-datadir reads it: exact at the last txn or
                                          zxid Z, proven by ZooKeeper's digest, raw owners)

Left out of every comparison: /zookeeper (ZooKeeper's own subtree) and what a
snapshot's export recorded as left out. Allowed by default (--no-default-allow to
report them): container and TTL ephemeralOwner values a client-API side cannot see
(it shows 0), and ephemerals missing from an export that skipped them.
--allow FILE reads rules "PATTERN WHAT[,WHAT...] [# reason]" (PATTERN: path glob,
** for any depth; WHAT: missing, extra, *, or a field name); --allow-diff adds one
as PATTERN=WHAT[,WHAT...].

With a live side, a difference where one side is newer is read again up to
--rechecks times before it is reported; those that resolve are reported as
"converged in flight". --digest-only compares ZooKeeper's tree digest where both
sides offer one of their *current* state at the same zxid (a static side's own
state, the hash four-letter word when ZooKeeper's newest logged digest is at its
last zxid, the journal's digest) and walks otherwise, saying why: equal digests at
an older zxid both sides have moved past prove nothing. A snapshot file's digest
comes from its trailer, and the file is read in full first (every record's CRC), so
a damaged file is an error; --trust-trailer skips that read and the report says so.

A comparison that compares no node is not equality: a --path or chroot that exists
on neither side, or a scope every node of which is excluded, is an error (exit 1).
A malformed --source or --target URI is a usage error (exit 2).

Exit codes: 0 equal, 3 different, 1 error (unreachable, unreadable, damaged, unsorted,
nothing compared), 2 usage.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runVerify(cmd.Context(), g, &o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.source, "source", "", "the reference side: zk://HOSTS[/CHROOT], snap://FILE, journal://DIR or datadir://ZK_DATA_DIR")
	f.StringVar(&o.target, "target", "", "the side checked against it")
	f.StringVar(&o.format, "format", "text", "report format: text, json or junit")
	f.IntVar(&o.maxDiffs, "max-diffs", verify.DefaultMaxDiffs, "differences listed in the report (counts stay exact)")
	f.BoolVar(&o.digestOnly, "digest-only", false, "compare ZooKeeper's tree digests only (constant time where both sides offer them)")
	f.BoolVar(&o.trustTrailer, "trust-trailer", false, "with --digest-only: take a snapshot file's digest from its trailer without reading the file (default: read it in full, checking every record)")
	f.StringVar(&o.path, "path", "", "compare only this subtree (default: all both sides hold)")
	f.StringArrayVar(&o.exclude, "exclude", nil, "leave out subtrees matching this path glob (repeatable)")
	f.StringArrayVar(&o.allowFiles, "allow", nil, "allow-list file of benign differences (repeatable)")
	f.StringArrayVar(&o.allowRules, "allow-diff", nil, "allow one kind of difference: PATTERN=WHAT[,WHAT...] (repeatable)")
	f.BoolVar(&o.noDefaultAllow, "no-default-allow", false, "report the differences allowed by default too")
	o.zkAuth.addFlags(cmd, "ZooKeeper credentials for zk:// sides")
	f.StringVar(&o.out, "out", "", "write the report to this file instead of stdout")
	f.IntVar(&o.rechecks, "rechecks", verify.DefaultRechecks, "re-reads of a live side before a difference is reported (0: none)")
	f.DurationVar(&o.recheckInterval, "recheck-interval", verify.DefaultRecheckInterval, "pause before the first re-read; doubles up to 2s")
	f.DurationVar(&o.timeout, "timeout", 0, "give up after this long (0: no limit)")
	return cmd
}

func runVerify(ctx context.Context, g *globalOptions, o *verifyOptions) error {
	cfg, format, openOpts, err := o.config(g)
	if err != nil {
		return err
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	src, err := verify.Open(ctx, o.source, openOpts)
	if err != nil {
		return fmt.Errorf("--source: %w", err)
	}
	defer src.Close()
	tgt, err := verify.Open(ctx, o.target, openOpts)
	if err != nil {
		return fmt.Errorf("--target: %w", err)
	}
	defer tgt.Close()

	g.logger.Info("verifying", "source", src.Info().URI, "target", tgt.Info().URI, "digest-only", o.digestOnly)
	r, err := verify.Compare(ctx, src, tgt, cfg)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := verify.WriteReport(&buf, r, format); err != nil {
		return err
	}
	if err := writeOutput(g.stdout, o.out, buf.Bytes()); err != nil {
		return err
	}
	g.logger.Info("verified", "verdict", r.Verdict, "compared", r.Compared, "differences", r.Counts.Differences,
		"allowed", r.Counts.Allowed, "converged", r.Counts.Converged, "elapsed", r.Elapsed.Round(time.Millisecond))
	if !r.Equal() {
		what := fmt.Sprintf("%d differences", r.Counts.Differences)
		if r.Mode == verify.ModeDigest {
			what = "digests differ"
		}
		return &ExitError{Code: ExitDifferences, Err: fmt.Errorf("verify: %s: %s against %s", what, r.Target.URI, r.Source.URI)}
	}
	return nil
}

// config turns the flags into the comparison's configuration.
func (o *verifyOptions) config(g *globalOptions) (verify.Config, verify.Format, verify.OpenOptions, error) {
	var none verify.Config
	switch {
	case o.source == "":
		return none, 0, verify.OpenOptions{}, usageErrorf("--source is required")
	case o.target == "":
		return none, 0, verify.OpenOptions{}, usageErrorf("--target is required")
	case o.recheckInterval <= 0:
		return none, 0, verify.OpenOptions{}, usageErrorf("--recheck-interval must be positive")
	}
	if err := firstErr(intFlagIn("--max-diffs", o.maxDiffs, 0, maxListedDiffs),
		intFlagIn("--rechecks", o.rechecks, 0, maxRechecks)); err != nil {
		return none, 0, verify.OpenOptions{}, err
	}
	format, err := verify.ParseFormat(o.format)
	if err != nil {
		return none, 0, verify.OpenOptions{}, usageErrorf("--format %q: want text, json or junit", o.format)
	}
	cfg := verify.DefaultConfig()
	cfg.Logger = g.logger
	cfg.Path = o.path
	cfg.Exclude = o.exclude
	cfg.DigestOnly = o.digestOnly
	cfg.TrustTrailer = o.trustTrailer
	if o.trustTrailer && !o.digestOnly {
		return none, 0, verify.OpenOptions{}, usageErrorf("--trust-trailer applies to --digest-only")
	}
	cfg.NoDefaultAllow = o.noDefaultAllow
	cfg.RecheckInterval = o.recheckInterval
	cfg.MaxRecheckInterval = max(verify.DefaultMaxRecheckInterval, o.recheckInterval)
	cfg.Rechecks = o.rechecks
	if o.rechecks == 0 {
		cfg.Rechecks = -1
	}
	cfg.MaxDiffs = o.maxDiffs
	if o.maxDiffs == 0 {
		cfg.MaxDiffs = -1 // counts only
	}
	for _, name := range o.allowFiles {
		rules, err := verify.ReadAllowFile(name)
		if err != nil {
			return none, 0, verify.OpenOptions{}, usageErrorf("--allow: %v", err)
		}
		cfg.Allow = append(cfg.Allow, rules...)
	}
	for _, s := range o.allowRules {
		r, err := verify.ParseAllowFlag(s)
		if err != nil {
			return none, 0, verify.OpenOptions{}, usageErrorf("--allow-diff: %v", err)
		}
		cfg.Allow = append(cfg.Allow, r)
	}
	if err := cfg.Validate(); err != nil {
		return none, 0, verify.OpenOptions{}, usageErrorf("%v", err)
	}
	opts := verify.OpenOptions{Logger: g.logger, Journal: openJournalSource}
	if opts.Auth, err = o.zkAuth.parsed(); err != nil {
		return none, 0, verify.OpenOptions{}, err
	}
	// One rule for both sides: a URI that does not parse is a usage error
	// naming its flag, found before anything is opened.
	for _, side := range []struct{ flag, uri string }{{"--source", o.source}, {"--target", o.target}} {
		if _, err := verify.ParseURI(side.uri); err != nil {
			return none, 0, verify.OpenOptions{}, usageErrorf("%s %v", side.flag, strings.TrimPrefix(err.Error(), "verify: "))
		}
	}
	return cfg, format, opts, nil
}

// writeOutput writes the report to stdout, or to path through a temporary file
// renamed into place, so a reader never sees half a report.
func writeOutput(stdout io.Writer, path string, b []byte) error {
	if path == "" {
		_, err := stdout.Write(b)
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}

// openJournalSource opens journal://DATA_DIR with raftjournal.OpenReadOnly: the
// newest FSM snapshot plus the log after it, replayed without starting a node;
// a directory a running node has locked is refused. The data dir's lock is not
// held while the comparison runs (the state is in memory).
func openJournalSource(_ context.Context, dir string) (verify.Source, error) {
	if dir == "" {
		return nil, fmt.Errorf("journal:// needs a data directory (journal://DATA_DIR)")
	}
	fsm, info, err := raftjournal.OpenReadOnly(dir, nil)
	if err != nil {
		return nil, err
	}
	st := fsm.Status()
	var history []verify.ZxidDigest
	for _, e := range fsm.DigestHistory() {
		history = append(history, verify.ZxidDigest{Zxid: e.Zxid, Digest: e.Digest})
	}
	desc := fmt.Sprintf("data dir read offline, log entries to index %d term %d (possibly past the cluster's commit index)", info.LastIndex, info.LastTerm)
	if info.SnapshotID != "" {
		desc += fmt.Sprintf(", snapshot %s at index %d", info.SnapshotID, info.SnapshotIndex)
	}
	return verify.NewJournalSource("journal://"+dir, verify.JournalState{
		Tree: fsm, LastZxid: st.LastZxid, Nodes: int64(fsm.NodeCount()), History: history, Description: desc,
	}), nil
}

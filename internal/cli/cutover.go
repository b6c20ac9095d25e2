package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/cutover"
	"github.com/zk2raft/zk2raft/zkclient"
)

// cutoverOptions are the flags of `cutover` and `cutover status`.
type cutoverOptions struct {
	clusterOptions
	zkAuth       zkAuthOptions
	journal      string
	zk           string
	json         bool
	timeout      time.Duration
	maxLag       time.Duration
	repairQuiet  time.Duration
	alignPath    string
	to           string
	force        []string
	holdTimeout  time.Duration
	adoptTimeout time.Duration
	align        bool
	yes          bool
	fence        bool
}

func (o *cutoverOptions) addCommonFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.journal, "journal", "", "admin addresses of journal members, host:port[,host:port...] (required)")
	f.StringVar(&o.zk, "zk", "", "ZooKeeper's servers, host:port,... (default: those the registered proxies relay to)")
	f.BoolVar(&o.json, "json", false, "print the status or report as JSON")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up after this long")
	f.DurationVar(&o.maxLag, "max-lag", 5*time.Second, "mirror-lag gate: the oldest mirror a proxy has not delivered may be at most this old")
	f.DurationVar(&o.repairQuiet, "repair-quiet", time.Minute, "repairs gate: no reconciler may have repaired anything (a write around the proxies) for this long")
	f.StringVar(&o.alignPath, "align-path", cutover.DefaultAlignPath, "the node alignment writes go to (created through a proxy if missing)")
	o.zkAuth.addFlags(cmd, "credentials to read ZooKeeper's and the journal's ACL'd nodes for the digest check")
	o.clusterOptions.addFlags(cmd)
}

func (o *cutoverOptions) options(g *globalOptions) (cutover.Options, error) {
	if o.journal == "" {
		return cutover.Options{}, usageErrorf("--journal is required")
	}
	creds, err := o.credentials()
	if err != nil {
		return cutover.Options{}, err
	}
	auth, err := o.zkAuth.list()
	if err != nil {
		return cutover.Options{}, err
	}
	opts := cutover.Options{Credentials: creds, ZKAuth: auth, MaxLag: o.maxLag, RepairQuiet: o.repairQuiet,
		AlignPath: o.alignPath, Force: o.force, HoldTimeout: o.holdTimeout, AdoptTimeout: o.adoptTimeout,
		Align: o.align, Logger: g.logger.With("component", "cutover")}
	for _, a := range strings.Split(o.journal, ",") {
		if a = strings.TrimSpace(a); a != "" {
			opts.Journal = append(opts.Journal, a)
		}
	}
	if o.zk != "" {
		if opts.ZK, err = zkclient.ParseHosts(o.zk); err != nil {
			return opts, usageErrorf("--zk: %v", err)
		}
	}
	for _, f := range o.force {
		if !contains(cutover.Gates, f) && !contains(cutover.RollbackGates, f) {
			return opts, usageErrorf("--force %q: no such gate (gates: %s; rolling back: %s)", f, strings.Join(cutover.Gates, ", "), strings.Join(cutover.RollbackGates, ", "))
		}
	}
	return opts, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func newCutoverCommand(g *globalOptions) *cobra.Command {
	var o cutoverOptions
	cmd := &cobra.Command{
		Use:   "cutover --journal ADMIN_ADDR --to primary|shadow [--force GATE]... [--fence] | --to finalized [--yes]",
		Short: "Switch the source of truth from ZooKeeper to the journal (or back), keeping clients' sessions",
		Long: `Cuts over from ZooKeeper to the journal through the dual-write proxies, in order:

  1. gates: every gate of 'cutover status' must pass (with an alignment, so that
     the digests are compared at ZooKeeper's latest zxid); a failing gate refuses
     the cutover, naming the gate and its evidence. --force GATE passes one named
     gate (repeat it for another); each is logged as a warning.
  2. the proxies hold their clients' requests (nothing more reaches ZooKeeper);
  3. drain: nothing in flight, every mirror and session committed by the journal;
  4. proof: after an alignment write, the digests are equal at ZooKeeper's latest
     zxid and the journal has applied it; every proxy session is known to it;
  5. commit: the phase change to primary, one Raft entry, fenced so that it cannot
     land after a proxy's hold expired;
  6. switch: each proxy checks the committed phase, closes its clients'
     ZooKeeper connections and relays them to the journal's client ports, where
     they resume their sessions (ephemerals kept, watches re-registered).

A failure before the commit aborts: the proxies release their held requests to
ZooKeeper and nothing is lost. If this command dies midway, each proxy settles
its hold at the deadline (--hold-timeout) by the journal's committed phase. Every
step is logged and shown by 'zk2raft cutover status'.

--to shadow rolls back to ZooKeeper (the journal must run the reverse mirror,
serve --zk, while primary), through the same proxies:

  1. gates: journal (answers, primary), proxies (every registered proxy
     answers), reverse-mirror-lag (ZooKeeper is behind the journal by at most
     --max-lag, and the leader's mirror reports no error); --force GATE as above;
  2. the proxies hold their clients' requests (nothing more reaches the journal);
  3. drain: the reverse mirror brings ZooKeeper every journal write (its marker,
     /zookeeper/zk2raft, names the last journal index);
  4. commit: the phase change to shadow, one Raft entry, fenced like the
     cutover's; the journal refuses it while ZooKeeper lacks any of its writes;
  5. switch back: each proxy checks the committed phase, closes its clients'
     journal connections and relays them to ZooKeeper again, rewriting each
     client's last zxid (and setWatches' relativeZxid) from the journal's to the
     ZooKeeper zxid where ZooKeeper held the same state; sessions the reverse
     mirror kept alive in ZooKeeper resume there, sessions minted by the journal
     expire (their clients see an expiry, as after a ZooKeeper failover);
  6. rebaseline: the nodes the journal wrote in its epoch (they carry its own
     zxids and times, ZooKeeper's copies ZooKeeper's) and the split-brain paths
     are repaired from ZooKeeper, then ZooKeeper's tree digest is compared with
     the journal's at a zxid after the repairs (under a write load: at a common
     zxid, named in the report); when the digests differ or cannot be compared
     every node is compared and repaired, so that mirroring resumes exactly.

A rollback lifts the fence first (restoring the journal's ACLs in ZooKeeper)
when one is set, and reports the split-brain writes recorded while primary.
` + finalizeHelp + `
Exit codes: 0 cut over, rolled back or finalized (or already there), 1 refused,
aborted or failed (the message says which and why), 2 usage.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch o.to {
			case "":
				return usageErrorf("--to is required (primary, shadow or finalized), or use 'zk2raft cutover status'")
			case "primary", "shadow":
			case "finalized":
				return runFinalize(cmd, g, &o)
			default:
				return usageErrorf("--to %q: want primary, shadow or finalized", o.to)
			}
			opts, err := o.options(g)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			run := cutover.ToPrimary
			if o.to == "shadow" {
				run = cutover.ToShadow
			}
			rep, err := run(ctx, opts)
			if o.to == "primary" && o.fence && rep != nil && rep.Outcome == "committed" {
				// Committed, even if a proxy did not switch when asked (it
				// does by itself): fence ZooKeeper all the same.
				err = errors.Join(err, fenceAfterCutover(ctx, g, opts))
			}
			if rep != nil {
				if o.json {
					enc := json.NewEncoder(g.stdout)
					enc.SetIndent("", "  ")
					if werr := enc.Encode(rep); werr != nil {
						return werr
					}
				} else {
					printCutoverReport(g.stdout, rep)
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&o.to, "to", "", "the phase to move to: primary (cut over), shadow (roll back), finalized (no way back)")
	cmd.Flags().BoolVar(&o.yes, "yes", false, "--to finalized: do not ask for confirmation")
	cmd.Flags().BoolVar(&o.fence, "fence", false, "--to primary: fence ZooKeeper once committed (see 'cutover fence')")
	cmd.Flags().StringArrayVar(&o.force, "force", nil, "pass this gate although it fails (one gate per flag: "+strings.Join(cutover.Gates, ", ")+"; rolling back: "+strings.Join(cutover.RollbackGates, ", ")+")")
	cmd.Flags().DurationVar(&o.holdTimeout, "hold-timeout", 5*time.Second, "the proxies' hold deadline: past it a proxy settles the hold by the journal's phase by itself; the drain, proof and commit must fit in it, and in half the shortest session timeout (held clients cannot ping)")
	cmd.Flags().DurationVar(&o.adoptTimeout, "adopt-timeout", 0, "session timeout for owners of ephemerals no proxy mirrored (default: the journal's, 30s)")
	o.addCommonFlags(cmd)
	cmd.AddCommand(newCutoverStatusCommand(g), newCutoverUnregisterCommand(g))
	cmd.AddCommand(newCutoverResolveCommand(g), newCutoverFenceCommand(g))
	return cmd
}

func newCutoverStatusCommand(g *globalOptions) *cobra.Command {
	var o cutoverOptions
	cmd := &cobra.Command{
		Use:   "status --journal ADMIN_ADDR [--json] [--align]",
		Short: "Show the phase, the proxies and every cutover gate with its evidence",
		Long: `Reads the journal's phase, the proxies registered with it (each asked for its
hold, backend, connections, mirror queue, in-flight writes, sessions and
reconciler figures), ZooKeeper's latest zxid, and judges every gate:

  journal     the journal answers and is in shadow
  proxies     at least one proxy is registered and every one answers; no journal
              member runs an in-process proxy (serve --proxy-addr), which is not switched
  direct-clients
              every session ZooKeeper lists (cons) is a proxy's client's, the proxy's
              or its reconciler's: a client around the proxies would not be switched
  mirror-lag  each proxy's oldest undelivered mirror is younger than --max-lag,
              its journal answers, no mirror was lost; each tail (zk2raft tail) has
              mirrored ZooKeeper's latest zxid or records progress within --max-lag
  digest      the digests are equal at ZooKeeper's latest zxid (never an older
              one: equal at an old zxid says nothing of the writes since)
  repairs     no reconciler repaired anything for --repair-quiet (a repair means
              a write around the proxies, whose client would not be switched),
              nothing unreadable
  sessions    every session of the proxies' clients is known to the journal

While the journal is primary, the rollback's gates instead (cutover --to shadow):

  journal     the journal answers and is primary
  proxies     at least one proxy is registered and every one answers
  reverse-mirror-lag
              ZooKeeper lacks no journal write older than --max-lag, and the
              leader's reverse mirror reports no error

Without --align the digest check only reads, and on an ensemble whose latest
zxid is not a multiple of 128 (where ZooKeeper logs its digest) it says
"unknown"; --align writes --align-path through a proxy until it is (cutover
--to primary always does). The last cutover's steps are shown too.

From primary on it also lists the split-brain writes (writes ZooKeeper took
around the proxies after the switch: path, ZooKeeper zxid, session when known,
resolved or not), the fence, the reverse mirror's lag, and the gates of
--to finalized (proxies switched, no split-brain write unresolved).

Exit codes: 0 every gate passes (in primary: no split-brain write is
unresolved; the rollback's gates are shown for information), 3 a gate fails in
shadow or a split-brain write is unresolved (the status is printed), 1 the
journal could not be asked, 2 usage.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := o.options(g)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			st, err := cutover.Inspect(ctx, opts)
			if err != nil {
				return fmt.Errorf("cutover status: %w", o.explain(err))
			}
			if o.json {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			} else {
				printCutoverStatus(g.stdout, st)
			}
			if f := st.Failing(); len(f) > 0 && st.Phase == "shadow" {
				var names []string
				for _, gt := range f {
					names = append(names, gt.Name)
				}
				return &ExitError{Code: ExitDifferences, Err: fmt.Errorf("cutover status: failing gates: %s", strings.Join(names, ", "))}
			}
			if open := cutover.Unresolved(st.SplitBrain); len(open) > 0 {
				return &ExitError{Code: ExitDifferences, Err: fmt.Errorf("cutover status: %d unresolved split-brain writes", len(open))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.align, "align", false, "make the digest check comparable at ZooKeeper's latest zxid with alignment writes through a proxy")
	o.addCommonFlags(cmd)
	return cmd
}

func newCutoverUnregisterCommand(g *globalOptions) *cobra.Command {
	var o cutoverOptions
	var id string
	cmd := &cobra.Command{
		Use:   "unregister --journal ADMIN_ADDR --proxy ID",
		Short: "Forget a proxy taken out of service (the gates stop waiting for it)",
		Long: `Removes a proxy's registration from the journal. A proxy registers itself when it
starts; one that is gone for good fails the proxies gate until it is unregistered.
A proxy that is still running registers again at its next start.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return usageErrorf("--proxy is required")
			}
			opts, err := o.options(g)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			if err := cutover.UnregisterProxy(ctx, opts, id); err != nil {
				return o.explain(err)
			}
			if !g.quiet {
				fmt.Fprintf(g.stdout, "proxy %s unregistered\n", id)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "proxy", "", "the proxy's id (as cutover status shows it)")
	f := cmd.Flags()
	f.StringVar(&o.journal, "journal", "", "admin addresses of journal members (required)")
	o.clusterOptions.addFlags(cmd)
	return cmd
}

func printCutoverStatus(w io.Writer, st *cutover.Status) {
	fmt.Fprintf(w, "phase      %s\n", st.Phase)
	fmt.Fprintf(w, "zookeeper  %s (latest zxid %s)\n", strings.Join(st.ZooKeeper, ","), orDash(st.ZooKeeperZxid))
	fmt.Fprintf(w, "journal    has seen zookeeper zxid %s\n\n", orDash(st.JournalZxid))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROXY\tLISTEN\tADMIN\tBACKEND\tHELD\tZK CONNS\tJOURNAL CONNS\tQUEUE\tIN FLIGHT\tLAST MIRRORED\tSESSIONS")
	for _, p := range st.Proxies {
		if p.State == nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\tunreachable: %s\n", p.Record.ID, p.Record.Listen, p.Record.Admin, oneLine(p.Error))
			continue
		}
		t := p.State.Tap
		held := "no"
		if t.Held {
			held = "since " + t.HeldSince.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%#x\t%d\n", p.Record.ID, p.Record.Listen, p.Record.Admin, t.Backend, held,
			t.ZooKeeperConnections, t.JournalConnections, t.QueueRecords, t.InFlight, t.LastMirroredZxid, len(t.Sessions))
	}
	tw.Flush()
	for _, tl := range st.Tails {
		name := tl.Name
		if name == "" {
			name = "(default)"
		}
		fmt.Fprintf(w, "tail %s: %s, mirrored up to %#x, lag %.1fs, recorded %s\n", name, tl.Progress.DataDir, tl.Progress.Zxid,
			tl.Progress.LagSeconds, tl.Progress.UpdatedAt.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GATE\tVERDICT\tEVIDENCE")
	for _, gt := range st.Gates {
		v := "pass"
		switch {
		case !gt.Pass && gt.Forced:
			v = "FORCED"
		case !gt.Pass:
			v = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", gt.Name, v, oneLine(gt.Evidence))
	}
	tw.Flush()
	for _, e := range st.Errors {
		fmt.Fprintf(w, "error: %s\n", oneLine(e))
	}
	printPrimaryStatus(w, st)
	if st.Last != nil {
		fmt.Fprintf(w, "\nlast cutover %s to %s: %s\n", st.Last.ID, st.Last.To, st.Last.Outcome)
		printSteps(w, st.Last.Steps)
	}
}

func printCutoverReport(w io.Writer, rep *cutover.Report) {
	fmt.Fprintf(w, "cutover %s to %s: %s\n", rep.ID, rep.To, rep.Outcome)
	printSteps(w, rep.Steps)
	if rep.Pause != "" {
		fmt.Fprintf(w, "clients held for %s\n", rep.Pause)
	}
}

func printSteps(w io.Writer, steps []cutover.Step) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range steps {
		ok := "ok"
		if !s.OK {
			ok = "FAILED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.At.Format("15:04:05.000"), s.Name, ok, oneLine(s.Detail))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/zk2raft/zk2raft/cutover"
	"github.com/zk2raft/zk2raft/reversemirror"
)

// The finalize path of `cutover`, the fence and split-brain verbs, and what
// `cutover status` prints of them (issue 15 items 4 and 5).

const finalizeHelp = `
--to finalized ends the migration, with no way back: it refuses unless the
journal is primary, every registered proxy answers and relays to the journal
(none still relays to ZooKeeper or holds its clients), and no split-brain
write is unresolved (a write ZooKeeper took around the proxies while the
journal was primary; 'cutover status' lists them, 'cutover resolve'
acknowledges one). It asks for confirmation on the terminal unless --yes (a
stdin that is not a terminal without --yes is refused). Then it commits the
phase finalized through Raft: the reverse mirror stops applying the journal's
writes to ZooKeeper, closes the ZooKeeper sessions it kept, and the journal
refuses any rollback.

--fence (with --to primary) fences ZooKeeper once the cutover committed: the
reverse mirror (serve --zk, with --auth as ZooKeeper's super user) gives every
node an ACL that keeps who may read it and lets only the mirror write it, so
ZooKeeper refuses a write around the proxies instead of taking it. 'cutover
fence' sets it later, 'cutover fence --lift' lifts it (every ACL back to the
journal's, which is what it was; aversions move: see docs/cutover.md).`

// stdinIsTerminal reports whether r is a terminal.
func stdinIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runFinalize is `cutover --to finalized`.
func runFinalize(cmd *cobra.Command, g *globalOptions, o *cutoverOptions) error {
	if !o.yes && !stdinIsTerminal(g.stdin) {
		return fmt.Errorf("cutover --to finalized: refusing without --yes: stdin is not a terminal to confirm on (nothing was changed)")
	}
	opts, err := o.options(g)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	if !o.yes {
		st, err := cutover.FinalizeSummary(ctx, opts)
		if err != nil {
			return fmt.Errorf("cutover --to finalized: %w", o.explain(err))
		}
		printFinalizeGates(g.stderr, st)
		pass := true
		for _, gt := range st.FinalizeGates {
			pass = pass && gt.Pass
		}
		if pass && st.Phase == "primary" {
			fmt.Fprintln(g.stderr, "\nThis is the point of no return: ZooKeeper stops receiving the journal's writes, the reverse mirror")
			fmt.Fprintln(g.stderr, "closes the sessions it kept there, and the journal refuses any rollback.")
			fmt.Fprint(g.stderr, "Type 'finalize' to go on: ")
			line, rerr := bufio.NewReader(g.stdin).ReadString('\n')
			if rerr != nil {
				fmt.Fprintln(g.stderr)
			}
			if strings.TrimSpace(line) != "finalize" {
				return fmt.Errorf("cutover --to finalized: not confirmed (answer %q); nothing was changed", strings.TrimSpace(line))
			}
		}
	}
	rep, err := cutover.ToFinalized(ctx, opts)
	if rep != nil {
		if werr := printReport(g, o, rep); werr != nil {
			return werr
		}
	}
	return err
}

func printReport(g *globalOptions, o *cutoverOptions, rep *cutover.Report) error {
	if o.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printCutoverReport(g.stdout, rep)
	if rep.Gates != nil && len(rep.Gates.FinalizeGates) > 0 && rep.To == "finalized" {
		printFinalizeGates(g.stdout, rep.Gates)
	}
	return nil
}

// fenceAfterCutover sets the fence after a committed --to primary --fence.
func fenceAfterCutover(ctx context.Context, g *globalOptions, opts cutover.Options) error {
	st, err := cutover.Fence(ctx, opts)
	if err != nil {
		return fmt.Errorf("cutover: committed, but %w (run `zk2raft cutover fence` again)", err)
	}
	if !g.quiet {
		fmt.Fprintf(g.stdout, "fence on: %d nodes, %d ACLs changed\n", st.Nodes, st.Changed)
	}
	return nil
}

func printFinalizeGates(w io.Writer, st *cutover.Status) {
	fmt.Fprintf(w, "\nfinalize (phase %s)\n", st.Phase)
	if rm := st.ReverseMirror; rm != nil {
		fmt.Fprintf(w, "reverse mirror: ZooKeeper holds journal index %d (zxid %s), %d entries owed, lag %.1fs\n",
			rm.AckedIndex, rm.AckedZkZxid, rm.PendingEntries, rm.LagSeconds)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FINALIZE GATE\tVERDICT\tEVIDENCE")
	for _, gt := range st.FinalizeGates {
		v := "pass"
		if !gt.Pass {
			v = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", gt.Name, v, oneLine(gt.Evidence))
	}
	tw.Flush()
}

// printPrimaryStatus prints the split-brain writes, the fence and the
// finalize gates (cutover status from primary on).
func printPrimaryStatus(w io.Writer, st *cutover.Status) {
	if st.Phase == "shadow" && len(st.SplitBrain) == 0 && st.Fence == nil {
		return
	}
	open := cutover.Unresolved(st.SplitBrain)
	fmt.Fprintf(w, "\nsplit-brain writes: %d recorded, %d unresolved\n", len(st.SplitBrain), len(open))
	if len(st.SplitBrain) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ZXID\tOP\tPATH\tSESSION\tDETECTED\tRESOLVED\tEXPECTED / FOUND")
		for _, sb := range st.SplitBrain {
			sess := "unknown"
			if sb.Session != 0 {
				sess = fmt.Sprintf("%#x (%s)", sb.Session, sb.SessionFrom)
			}
			res := "NO"
			if sb.Resolved != nil {
				res = sb.Resolved.By
				if sb.Resolved.Note != "" {
					res += ": " + sb.Resolved.Note
				}
			}
			fmt.Fprintf(tw, "%#x\t%s\t%s\t%s\t%s\t%s\t%s / %s\n", sb.Zxid, sb.Op, sb.Path, sess, sb.DetectedAt.Format(time.RFC3339),
				oneLine(res), oneLine(sb.Expected), oneLine(sb.Found))
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "fence: %s\n", st.Fence.Summary())
	if len(st.FinalizeGates) > 0 {
		printFinalizeGates(w, st)
	}
}

func newCutoverResolveCommand(g *globalOptions) *cobra.Command {
	var o cutoverOptions
	var zxid, path, note string
	var all bool
	cmd := &cobra.Command{
		Use:   "resolve --journal ADMIN_ADDR (--zxid Z [--path P] | --path P | --all) --note WHY",
		Short: "Acknowledge split-brain writes (writes ZooKeeper took around the proxies in primary)",
		Long: `Marks split-brain writes as resolved by the operator. A split-brain write is a write
ZooKeeper took around the proxies while the journal was primary: it is in ZooKeeper and
not in the journal. The reverse mirror's sentry records each (cutover status lists them)
and resolves one by itself when ZooKeeper's copy agrees with the journal's again (someone
undid the write). Acknowledging one says the operator accepts that ZooKeeper's copy
differs — typically before --to finalized, after which ZooKeeper is retired. It changes
nothing in ZooKeeper or in the journal's tree; the reverse mirror still stops at a node
that differs.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ro := cutover.ResolveOptions{Path: path, All: all, Note: note}
			if zxid != "" {
				z, err := strconv.ParseInt(strings.TrimPrefix(strings.ToLower(zxid), "0x"), 16, 64)
				if err != nil {
					return usageErrorf("--zxid %q: want a hex zxid as cutover status prints it", zxid)
				}
				ro.Zxid = z
			}
			switch {
			case note == "":
				return usageErrorf("--note is required (why the write is accepted; kept in the record)")
			case !all && zxid == "" && path == "":
				return usageErrorf("name the writes: --zxid, --path, or --all")
			}
			opts, err := o.options(g)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			done, err := cutover.Resolve(ctx, opts, ro)
			for _, w := range done {
				fmt.Fprintf(g.stdout, "resolved: %s\n", w.String())
			}
			if err != nil {
				return o.explain(err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&zxid, "zxid", "", "the ZooKeeper zxid of the write (hex, as cutover status shows it)")
	f.StringVar(&path, "path", "", "the node's path")
	f.BoolVar(&all, "all", false, "every unresolved split-brain write")
	f.StringVar(&note, "note", "", "why the write is accepted (required; kept in the record)")
	f.StringVar(&o.journal, "journal", "", "admin addresses of journal members (required)")
	f.DurationVar(&o.timeout, "timeout", time.Minute, "give up after this long")
	o.clusterOptions.addFlags(cmd)
	return cmd
}

func newCutoverFenceCommand(g *globalOptions) *cobra.Command {
	var o cutoverOptions
	var lift bool
	cmd := &cobra.Command{
		Use:   "fence --journal ADMIN_ADDR [--lift]",
		Short: "Fence ZooKeeper in primary (ACLs only the reverse mirror can write through), or lift the fence",
		Long: `Asks the reverse mirror (on the journal's leader; serve --zk with --auth as ZooKeeper's
super user) to fence ZooKeeper while the journal is primary, and waits until it has:
every node gets an ACL that keeps each entry's READ permission and gives every
permission to the mirror's identity only, so that ZooKeeper refuses (NoAuth) any write,
create, delete or setACL made around the proxies. Nodes the journal creates meanwhile
reach ZooKeeper fenced.

--lift gives every node the journal's ACL again: exactly the ACL it had before the fence
(every ACL change goes through the journal, and the fence never touches the journal's).
Each fence and lift raises every node's aversion in ZooKeeper by one (setACL always
does), so ZooKeeper's aversions no longer equal the journal's; see docs/cutover.md.
A rollback must lift the fence before it commits.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := o.options(g)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			var st *reversemirror.FenceState
			if lift {
				st, err = cutover.LiftFence(ctx, opts)
			} else {
				st, err = cutover.Fence(ctx, opts)
			}
			if err != nil {
				return o.explain(err)
			}
			switch {
			case st == nil:
				fmt.Fprintln(g.stdout, "no fence was ever set")
			case o.json:
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			default:
				fmt.Fprintf(g.stdout, "fence %s: %d nodes, %d ACLs changed", st.Want, st.Nodes, st.Changed)
				if st.NotInJournal > 0 {
					fmt.Fprintf(g.stdout, ", %d nodes the journal lacks left alone (split-brain creates: see cutover status)", st.NotInJournal)
				}
				fmt.Fprintln(g.stdout)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&lift, "lift", false, "lift the fence: every node's ACL back to the journal's")
	f := cmd.Flags()
	f.StringVar(&o.journal, "journal", "", "admin addresses of journal members (required)")
	f.BoolVar(&o.json, "json", false, "print the fence's state as JSON")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long (the walk sets one ACL per node)")
	o.clusterOptions.addFlags(cmd)
	return cmd
}

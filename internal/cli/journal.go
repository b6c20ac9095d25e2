package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/raftjournal"
)

// newJournalCommand groups the verbs that talk to a running journal through a
// member's admin endpoint.
func newJournalCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "journal",
		Short: "Inspect and manage a running journal cluster",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newJournalStatusCommand(g),
		newJournalRemoveCommand(g),
		newJournalTransferCommand(g),
		newJournalNewSecretCommand(g),
	)
	return cmd
}

// journalOptions are the flags every journal verb shares.
type journalOptions struct {
	clusterOptions
	journal string
	timeout time.Duration
}

func (o *journalOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.journal, "journal", "", "admin address (host:port) of any journal member (required)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 15*time.Second, "give up after this long")
	o.clusterOptions.addFlags(cmd)
}

// client checks the flags and returns a client of the member's admin endpoint.
func (o *journalOptions) client() (*raftjournal.AdminClient, error) {
	if o.journal == "" {
		return nil, usageErrorf("--journal is required")
	}
	return o.admin(o.journal)
}

type journalStatusOptions struct {
	journalOptions
	json bool
}

func newJournalStatusCommand(g *globalOptions) *cobra.Command {
	var o journalStatusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the status of a running journal cluster",
		Long: `Asks one member for the cluster's status: the leader and term, the migration
phase, and for every member its role, its ZooKeeper client address and open
client connections (serve --client-addr), indexes, node count and tree digest (a
member that does not answer is shown with the error). Members that agree on the
applied index hold the same tree exactly when their digests agree.

Exit codes: 0 the cluster has a leader, 4 it has none (the status is printed
all the same), 1 the member could not be asked or is not a journal node (a
proxy's admin port, say), 2 usage.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			admin, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			cs, err := admin.ClusterStatus(ctx, false)
			if err != nil {
				return fmt.Errorf("journal status: %w", o.explain(err))
			}
			if o.json {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				err = enc.Encode(cs)
			} else {
				err = printJournalStatus(g.stdout, &cs)
			}
			if err == nil && !o.json {
				err = printTailProgress(ctx, g.stdout, admin)
			}
			if err != nil {
				return err
			}
			if cs.Leader == "" {
				return &ExitError{Code: ExitNoLeader, Err: fmt.Errorf("journal status: %w: %s (%s) knows of no leader in term %d", raftjournal.ErrNoLeader, cs.ID, admin.Addr(), cs.Term)}
			}
			return nil
		},
	}
	o.addFlags(cmd)
	cmd.Flags().BoolVar(&o.json, "json", false, "print the status as JSON")
	return cmd
}

func printJournalStatus(w io.Writer, cs *raftjournal.ClusterStatus) error {
	leader := "none"
	if cs.Leader != "" {
		leader = fmt.Sprintf("%s (%s)", cs.Leader, cs.LeaderAddr)
	}
	fmt.Fprintf(w, "leader   %s\nterm     %d\nphase    %s\nmembers  %d\nasked    %s (%s)\n\n",
		leader, cs.Term, cs.Phase, len(cs.Members), cs.ID, cs.Role)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tSUFFRAGE\tRAFT ADDR\tADMIN ADDR\tCLIENT ADDR\tCONNS\tAPPLIED\tCOMMIT\tNODES\tSESSIONS\tDIGEST")
	for _, m := range cs.Members {
		if m.Status == nil {
			fmt.Fprintf(tw, "%s\t?\t%s\t%s\t\t\t\t\t\t\t\tunreachable: %s\n", m.ID, m.Suffrage, m.RaftAddr, oneLine(m.Error))
			continue
		}
		s := m.Status
		client, conns := "-", "-"
		switch {
		case s.ClientAddr != "" && s.SecureClientAddr != "":
			client = s.ClientAddr + " tls:" + s.SecureClientAddr
		case s.ClientAddr != "":
			client = s.ClientAddr
		case s.SecureClientAddr != "":
			client = "tls:" + s.SecureClientAddr
		}
		if client != "-" {
			conns = fmt.Sprint(s.ClientConnections)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", m.ID, s.Role, m.Suffrage, m.RaftAddr, s.AdminAddr,
			client, conns, s.AppliedIndex, s.CommitIndex, s.NodeCount, s.Sessions, s.Digest)
	}
	return tw.Flush()
}

type journalRemoveOptions struct {
	journalOptions
	id string
}

func newJournalRemoveCommand(g *globalOptions) *cobra.Command {
	var o journalRemoveOptions
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove a member from the journal cluster",
		Long: `Removes the member --id from the Raft configuration (through the leader).
Stop the removed node afterwards; to bring it back, wipe its data dir and start
it with --join.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			admin, err := o.client()
			if err != nil {
				return err
			}
			if o.id == "" {
				return usageErrorf("--id is required")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			if err := admin.Call(ctx, http.MethodPost, "/remove", map[string]string{"id": o.id}, nil); err != nil {
				return fmt.Errorf("journal remove: %w", o.explain(err))
			}
			if !g.quiet {
				fmt.Fprintf(g.stdout, "removed %s\n", o.id)
			}
			return nil
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&o.id, "id", "", "the member to remove (required)")
	return cmd
}

type journalTransferOptions struct {
	journalOptions
	to string
}

func newJournalTransferCommand(g *globalOptions) *cobra.Command {
	var o journalTransferOptions
	cmd := &cobra.Command{
		Use:   "transfer-leadership",
		Short: "Hand leadership to another member",
		Long:  `Asks the leader to hand leadership over to --to, or to the most up-to-date follower.`,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			admin, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			var out map[string]string
			if err := admin.Call(ctx, http.MethodPost, "/transfer-leadership", map[string]string{"id": o.to}, &out); err != nil {
				return fmt.Errorf("journal transfer-leadership: %w", o.explain(err))
			}
			if !g.quiet {
				fmt.Fprintf(g.stdout, "leader %s\n", out["leader"])
			}
			return nil
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&o.to, "to", "", "the member to hand leadership to (default: the most up-to-date follower)")
	return cmd
}

func newJournalNewSecretCommand(g *globalOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "new-secret --out FILE",
		Short: "Write a new cluster secret to a file (mode 600)",
		Long: `Writes 32 random bytes, base64-encoded, to FILE, readable by its owner only. Give
the same file to every node (serve --cluster-secret-file), proxy and zk2raft command
that talks to the cluster, or put its path in $` + envClusterSecretFile + `. An existing
file is never overwritten.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			if out == "" {
				return usageErrorf("--out is required")
			}
			s, err := newSecret()
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("journal new-secret: %w", err)
			}
			_, err = f.Write(append(s, '\n'))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				_ = os.Remove(out)
				return fmt.Errorf("journal new-secret: %w", err)
			}
			if !g.quiet {
				fmt.Fprintf(g.stdout, "wrote a new cluster secret to %s\n", out)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the file to create (required)")
	return cmd
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/internal/rehearsal"
	"github.com/zk2raft/zk2raft/zkclient"
)

type devRehearseOptions struct {
	zk, verify string
	root       string
	writers    int
	watchers   int
	kazoo      int
	json       bool
	timeout    time.Duration
}

func newDevRehearseCommand(g *globalOptions) *cobra.Command {
	var o devRehearseOptions
	cmd := &cobra.Command{
		Use:   "rehearse --zk PROXY --verify JOURNAL_CLIENT",
		Short: "Run a client workload through a proxy across a cutover, then check every promise against the journal",
		Long: `Runs the cutover rehearsal's client workload (package internal/rehearsal) through
--zk (the proxy's address): go-zookeeper sessions writing sequential nodes, each
with an ephemeral, a beacon node other sessions keep data watches on, and kazoo
clients (Debian's python3-kazoo, run with /usr/bin/python3) contending in an
Election and for a Lock. It prints "running" once every kind of client has made
progress, and keeps running until SIGINT or SIGTERM — run the cutover meanwhile.
Then it lets every client make progress once more, stops, and reads the journal
through --verify (a journal node's ZooKeeper port): the longest request, the
errors (only a connection loss is acceptable), sessions and ephemerals lost,
acknowledged writes missing or applied twice, watches set before the switch
that fired for a change after it, and kazoo's recipes never with two holders.
Exits 0 only when every promise held, 3 when one broke.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hosts, err := zkclient.ParseHosts(o.zk)
			if err != nil {
				return usageErrorf("--zk: %v", err)
			}
			verify, err := zkclient.ParseHosts(o.verify)
			if err != nil {
				return usageErrorf("--verify: %v", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sig)

			w, err := rehearsal.Start(ctx, rehearsal.Config{Hosts: hosts, Root: o.root, Writers: o.writers, Watchers: o.watchers,
				KazooClients: o.kazoo, NoKazoo: o.kazoo == 0, Logger: g.logger})
			if err != nil {
				return err
			}
			defer w.Close()
			if err := waitRehearsal(ctx, w, time.Now(), o.kazoo > 0); err != nil {
				return fmt.Errorf("rehearse: the workload makes no progress: %w", err)
			}
			fmt.Fprintf(g.stdout, "running: %d go-zookeeper writers, %d watchers, a beacon and %d kazoo clients through %s (until SIGINT)\n",
				o.writers, o.watchers, o.kazoo, strings.Join(hosts, ","))
			select {
			case <-sig:
			case <-ctx.Done():
				return fmt.Errorf("rehearse: no signal within --timeout: %w", ctx.Err())
			}
			if err := waitRehearsal(ctx, w, time.Now(), o.kazoo > 0); err != nil {
				return fmt.Errorf("rehearse: the workload makes no progress after the signal: %w", err)
			}
			if err := w.Stop(ctx); err != nil {
				return err
			}
			res, err := w.Verify(ctx, verify)
			if err != nil {
				return err
			}
			problems := res.Problems()
			if o.json {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"result": res, "problems": problems}); err != nil {
					return err
				}
			} else {
				switchAt := "none seen"
				if !res.SwitchAt.IsZero() {
					switchAt = res.SwitchAt.UTC().Format("15:04:05.000")
				}
				fmt.Fprintf(g.stdout, "switch              the first connection loss at %s; checked against the journal at %s\n", switchAt, strings.Join(verify, ","))
				for _, l := range res.Summary() {
					fmt.Fprintln(g.stdout, l)
				}
			}
			if len(problems) > 0 {
				return &ExitError{Code: ExitDifferences, Err: fmt.Errorf("rehearse: %d broken promises: %s", len(problems), strings.Join(problems, "; "))}
			}
			if !o.json {
				fmt.Fprintln(g.stdout, "every promise held: no session or ephemeral lost, every acknowledged write in the journal once, no error but a connection loss, watches fired across the switch, one holder at a time")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.zk, "zk", "", "the clients' connect string: the proxy's address (list it twice for go-zookeeper to reconnect without its one-second wait)")
	f.StringVar(&o.verify, "verify", "", "a journal node's ZooKeeper client address, to check the outcome against")
	f.StringVar(&o.root, "root", "/rehearsal", "where the workload writes (must not exist)")
	f.IntVar(&o.writers, "writers", 4, "go-zookeeper sessions writing")
	f.IntVar(&o.watchers, "watchers", 2, "go-zookeeper sessions watching")
	f.IntVar(&o.kazoo, "kazoo-clients", 3, "kazoo clients in the Election and the Lock (0: no kazoo)")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	f.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	return cmd
}

// waitRehearsal waits until every kind of client made progress after since.
func waitRehearsal(ctx context.Context, w *rehearsal.Workload, since time.Time, kazoo bool) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p := w.ProgressSince(since)
		if p.Writes >= 50 && p.WatchesFired >= 4 && (!kazoo || (p.LockAcquired >= 3 && p.Elected >= 2)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 2 minutes: %+v", p)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitDifferences = 3
	// ExitNoLeader is journal status's answer for a cluster without a leader.
	ExitNoLeader = 4
)

// ExitError carries an exit code other than ExitFailure (1) out of a verb.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// globalOptions are the flags every verb shares.
type globalOptions struct {
	logLevel   string
	logFormat  string
	quiet      bool
	noProgress bool

	stdin          io.Reader
	stdout, stderr io.Writer
	logger         *slog.Logger
}

func (g *globalOptions) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "print only errors and the requested data")
	f.BoolVar(&g.noProgress, "no-progress", false, "never draw progress bars")
}

// setup validates the global flags and builds the logger; it runs before every verb.
func (g *globalOptions) setup() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return usageErrorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	if g.quiet && level < slog.LevelError {
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		g.logger = slog.New(slog.NewTextHandler(g.stderr, opts))
	case "json":
		g.logger = slog.New(slog.NewJSONHandler(g.stderr, opts))
	default:
		return usageErrorf("--log-format %q: want text or json", g.logFormat)
	}
	return nil
}

// showProgress reports whether progress bars may be drawn on stderr.
func (g *globalOptions) showProgress() bool {
	if g.quiet || g.noProgress {
		return false
	}
	f, ok := g.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// NewRootCommand builds the zk2raft command tree writing to the given streams.
func NewRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globalOptions{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "zk2raft",
		Short: "Move a live ZooKeeper ensemble into an embedded Raft journal, and prove nothing was lost",
		Long: `zk2raft exports a live ZooKeeper ensemble's tree (data, ACLs, full stat), imports it
into a Raft journal that speaks ZooKeeper's protocol, mirrors writes during cutover
and verifies both sides node by node and by ZooKeeper's own tree digest.

Exit codes: 0 success, 1 error, 2 usage, 3 verification found differences,
4 the journal cluster has no leader (journal status).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return g.setup()
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: err}
	})
	g.addFlags(root)

	root.AddCommand(
		newVersionCommand(g),
		newDevCommand(g),
		newServeCommand(g),
		newProxyCommand(g),
		newJournalCommand(g),
		newVerifyCommand(g),
		newImportCommand(g),
		newMigrateCommand(g),
		newExportCommand(g), newSnapshotCommand(g),
		newTailCommand(g),
		newCutoverCommand(g),
	)
	return root
}

// Main runs zk2raft with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	fmt.Fprintln(stderr, "zk2raft: "+oneLine(err.Error()))
	if code == ExitUsage {
		fmt.Fprintln(stderr, "run 'zk2raft --help' for usage")
	}
	return code
}

func exitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	// cobra reports bad arguments to a verb (cobra.ExactArgs and friends) as plain
	// errors from Args validators; ours return *ExitError, so anything else is an error.
	return ExitFailure
}

// oneLine keeps error output to one line, as the contract promises.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

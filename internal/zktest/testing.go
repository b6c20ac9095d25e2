package zktest

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// New starts an ensemble for one test (or benchmark) and closes it in
// t.Cleanup. A start failure, including ErrNotInstalled, fails the test; it
// never skips. Unless opts.BaseDir is set the servers live under t.TempDir().
// If the test has failed by cleanup time, the end of every server's log is
// logged before the ensemble is closed.
func New(t testing.TB, opts Options) *Ensemble {
	t.Helper()
	if opts.BaseDir == "" {
		opts.BaseDir = t.TempDir()
	}
	e, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range e.Servers() {
				t.Logf("zktest: server %d (%s), last lines of %s:\n%s", s.ID, s.ClientAddr, s.LogFile, logTail(s.LogFile))
			}
		}
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// Run starts one ensemble for a whole test binary, stores it in *shared, runs
// the tests and closes the ensemble. It returns the exit code for os.Exit: 1
// when the ensemble does not start (the error goes to stderr, so `go test`
// reports FAIL, never a skip) or does not close cleanly. Use it from TestMain
// when more setup surrounds the tests; otherwise use Main.
func Run(m *testing.M, opts Options, shared **Ensemble) int {
	e, err := Start(context.Background(), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*shared = e
	code := m.Run()
	if err := e.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Main is a complete TestMain body: os.Exit(Run(m, opts, shared)).
func Main(m *testing.M, opts Options, shared **Ensemble) {
	os.Exit(Run(m, opts, shared))
}

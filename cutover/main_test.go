package cutover

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
)

// orchestratorEnv carries an orchestratorSpec to a child test process.
const orchestratorEnv = "ZK2RAFT_TEST_CUTOVER_ORCHESTRATOR"

// orchestratorSpec is what a child orchestrator runs: ToPrimary against the
// journal, killing itself with SIGKILL right after step KillAt.
type orchestratorSpec struct {
	Journal     string
	HoldTimeout time.Duration
	KillAt      string
}

func TestMain(m *testing.M) {
	testproc.JournalChild() // a journal node process (cluster rigs) runs here and exits
	var spec orchestratorSpec
	if testproc.Child(orchestratorEnv, &spec) {
		runOrchestrator(spec)
		return
	}
	os.Exit(m.Run())
}

// runOrchestrator is the child: a real process that dies by kill -9 in the
// middle of a cutover, leaving whatever it did not finish.
func runOrchestrator(spec orchestratorSpec) {
	o := Options{Journal: []string{spec.Journal}, Credentials: creds(), HoldTimeout: spec.HoldTimeout, RepairQuiet: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		stepHook: func(step string) error {
			if step == spec.KillAt {
				fmt.Fprintln(os.Stderr, "orchestrator: kill -9 after", step)
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
			return nil
		}}
	_, err := ToPrimary(context.Background(), o)
	fmt.Fprintln(os.Stderr, "orchestrator: not killed:", err)
	os.Exit(5)
}

// killedOrchestrator runs ToPrimary in a child process killed after step.
func killedOrchestrator(t *testing.T, journal, step string, hold time.Duration) {
	t.Helper()
	p := testproc.Start(t, testproc.Options{Test: "TestCutoverOrchestratorKilled", Env: orchestratorEnv,
		Spec: orchestratorSpec{Journal: journal, HoldTimeout: hold, KillAt: step}})
	testlog.WaitFor(t, 2*time.Minute, "the orchestrator to die after "+step, func() error {
		exited, err := p.Exited()
		if !exited {
			return fmt.Errorf("still running")
		}
		if err == nil || !isKilled(err) {
			return fmt.Errorf("orchestrator exited with %v, not by SIGKILL; stderr:\n%s", err, p.Stderr())
		}
		return nil
	})
}

// isKilled reports whether a child's exit error is death by SIGKILL.
func isKilled(err error) bool {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

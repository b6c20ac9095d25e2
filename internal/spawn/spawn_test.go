package spawn_test

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/spawn"
)

// TestChildOutlivesRetiredThreads: a child forked with Pdeathsig from a
// thread the runtime then retires dies (the hazard, shown first), while one
// started through spawn.Start lives on.
func TestChildOutlivesRetiredThreads(t *testing.T) {
	kept := exec.Command("sleep", "60")
	if err := spawn.Start(kept); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = kept.Process.Kill(); _ = kept.Wait() }()

	// The hazard: fork from a locked thread, then let its goroutine return.
	doomed := exec.Command("sleep", "60")
	doomed.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes when this returns
		started <- doomed.Start()
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- doomed.Wait() }()
	select {
	case err := <-exited:
		if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("the child of a retired thread ended with %v, want SIGKILL", err)
		}
	case <-time.After(30 * time.Second):
		_ = doomed.Process.Kill()
		t.Fatal("the child of a retired thread was not killed: the hazard this package avoids did not show")
	}

	// The spawned child saw the same retirement and is still running.
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(kept.Process.Pid) + "/stat")
	if err != nil {
		t.Fatalf("the spawned child is gone: %v", err)
	}
	if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) == 0 || f[0] == "Z" || f[0] == "X" {
		t.Fatalf("the spawned child is not running: %s", stat)
	}
}

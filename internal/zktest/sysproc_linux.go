package zktest

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the JVM in its own process group (so a terminal's ^C does
// not reach it directly and the whole group can be killed) and asks the kernel
// to SIGKILL it if the forking thread dies, so a crashed or timed-out test
// binary leaves no JVM behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}

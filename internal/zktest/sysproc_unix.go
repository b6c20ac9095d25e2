//go:build unix && !linux

package zktest

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the JVM in its own process group. Without Pdeathsig a
// crashed test binary can leave JVMs behind on this platform.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}

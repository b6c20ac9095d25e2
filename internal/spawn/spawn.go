// Package spawn starts test child processes that die with the test binary.
//
// On Linux, Pdeathsig fires when the thread that forked the child exits, not
// when the process does, and Go retires OS threads: a goroutine that locked
// its thread and returns takes the thread with it (internal/zktest does
// exactly that when an ensemble closes, on purpose). A child forked from such
// a thread while it ran some other goroutine is then killed in the middle of
// a test, with nothing in its log — a journal node of a parallel test died
// that way. Start forks every child from one goroutine locked to a thread
// that is never released, so Pdeathsig means "the test binary is gone".
//
// For tests only, and Linux only.
package spawn

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

type request struct {
	cmd   *exec.Cmd
	reply chan error
}

var (
	once sync.Once
	reqs chan request
)

func loop() {
	// Never unlocked, and the loop never returns: the thread lives as long
	// as the process.
	runtime.LockOSThread()
	for r := range reqs {
		r.reply <- r.cmd.Start()
	}
}

// Start starts cmd with Pdeathsig SIGKILL (added to cmd.SysProcAttr, made if
// nil) from the spawning thread, and returns cmd.Start's error.
func Start(cmd *exec.Cmd) error {
	once.Do(func() {
		reqs = make(chan request)
		go loop()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	r := request{cmd: cmd, reply: make(chan error, 1)}
	reqs <- r
	return <-r.reply
}

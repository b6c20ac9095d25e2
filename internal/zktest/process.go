package zktest

import (
	"errors"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// process is one running (or exited) JVM.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait has returned
	err  error         // Wait's result; read only after done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process group, unless the process is already reaped.
func (p *process) signal(sig syscall.Signal) {
	if p.exited() {
		return
	}
	signalGroup(p.cmd, sig)
}

// kill sends SIGKILL to the group and waits for the process to be reaped,
// giving up after limit (an unkillable process is a host problem; report it
// rather than hang the test binary).
func (p *process) kill(limit time.Duration) error {
	p.signal(syscall.SIGKILL)
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return errors.New("process did not exit after SIGKILL")
	}
}

// spawner starts processes from one goroutine locked to its OS thread.
//
// On Linux, Pdeathsig fires when the thread that forked the child exits, not
// when the process does. Go may retire an OS thread at any time (for example
// when some goroutine that called runtime.LockOSThread returns), which would
// kill a JVM in the middle of a test. Forking from a thread that lives exactly
// as long as the Ensemble makes Pdeathsig mean "the ensemble (or the whole test
// binary) is gone".
type spawner struct {
	reqs chan spawnReq
	stop chan struct{}
	done chan struct{}
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *spawner) loop() {
	// Deliberately never unlocked: when loop returns, the runtime destroys
	// the thread, which delivers Pdeathsig to any child still alive.
	runtime.LockOSThread()
	defer close(s.done)
	for {
		select {
		case r := <-s.reqs:
			r.reply <- r.cmd.Start()
		case <-s.stop:
			return
		}
	}
}

// start runs cmd.Start on the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, reply: make(chan error, 1)}
	select {
	case s.reqs <- r:
		return <-r.reply
	case <-s.stop:
		return ErrClosed
	}
}

// close stops the goroutine and waits for it. It must be called once.
func (s *spawner) close() {
	close(s.stop)
	<-s.done
}

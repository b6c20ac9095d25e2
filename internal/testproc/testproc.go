//go:build linux

package testproc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/spawn"
)

// Child reports whether this process is a child started with env set, and
// if so decodes its spec into v; a spec that does not decode ends the
// process with status 3.
func Child(env string, v any) bool {
	raw := os.Getenv(env)
	if raw == "" {
		return false
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		fmt.Fprintln(os.Stderr, "bad spec:", err)
		os.Exit(3)
	}
	return true
}

// WaitSignal blocks the child until it gets SIGTERM or SIGINT, the parent's
// Stop.
func WaitSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	signal.Stop(sig)
}

// Options say what Start runs.
type Options struct {
	// Test is the test function the child runs, e.g. "TestNodeProcess".
	Test string
	// Env is the environment variable the spec travels in.
	Env string
	// Spec is marshalled to JSON for the child.
	Spec any
	// CPUs pins the child to these CPUs (taskset's list syntax, e.g. "1");
	// empty means all.
	CPUs string
	// LogFile, when set, receives the child's stdout and stderr (appended:
	// a restarted node keeps one log); otherwise they are kept in memory
	// (Stdout, Stderr).
	LogFile string
}

// Process is a running child.
type Process struct {
	opts     Options
	cmd      *exec.Cmd
	stdout   bytes.Buffer
	stderr   bytes.Buffer
	done     chan struct{}
	exitErr  error
	killOnce sync.Once
}

// Start starts the child and kills it (if still running) when t ends.
func Start(t testing.TB, o Options) *Process {
	t.Helper()
	raw, err := json.Marshal(o.Spec)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{os.Args[0], "-test.run=^" + o.Test + "$", "-test.count=1"}
	if o.CPUs != "" {
		args = append([]string{"taskset", "-c", o.CPUs}, args...)
	}
	p := &Process{opts: o, done: make(chan struct{})}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Env = append(os.Environ(), o.Env+"="+string(raw))
	if o.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(o.LogFile), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(o.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p.cmd.Stdout, p.cmd.Stderr = f, f
	} else {
		p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	}
	// The child dies with the test binary, whatever happens to it (spawn:
	// Pdeathsig from a thread that outlives every test).
	if err := spawn.Start(p.cmd); err != nil {
		t.Fatalf("start %s: %v", o.Test, err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// Pid is the child's process id (taskset execs it in place).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL and reaps the child; it is idempotent.
func (p *Process) Kill() {
	p.killOnce.Do(func() { _ = p.cmd.Process.Kill() })
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for the child to exit, and
// returns how it exited (under -race a child that saw a data race exits
// with status 66). A child still running after timeout is killed, and that
// is an error.
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("testproc: %s did not stop within %v of SIGTERM", p.opts.Test, timeout)
	}
}

// Exited reports whether the child has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.exitErr
	default:
		return false, nil
	}
}

// Stdout is what the child wrote to stdout (without LogFile), once it has
// exited; any output the testing package printed before it comes first.
func (p *Process) Stdout() []byte {
	<-p.done
	return p.stdout.Bytes()
}

// Stderr is what the child wrote to stderr so far (without LogFile).
func (p *Process) Stderr() string {
	select {
	case <-p.done:
		return p.stderr.String()
	default:
		return "(the process is running)"
	}
}

// WaitListening waits until addr accepts connections, failing t if the
// child exits first or timeout passes.
func (p *Process) WaitListening(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		if exited, err := p.Exited(); exited {
			t.Fatalf("%s exited (%v) before listening on %s: %s", p.opts.Test, err, addr, p.Stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened on %s", p.opts.Test, addr)
		}
	}
}

// LogTail returns the end of a LogFile: from its first data race report if
// it has one (120 lines), else its last lines lines.
func LogTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(string(b), "\n")
	if i := slices.IndexFunc(ls, func(l string) bool { return strings.Contains(l, "DATA RACE") }); i >= 0 {
		return strings.Join(ls[i:min(len(ls), i+120)], "\n")
	}
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

//go:build linux

package testproc

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
)

const echoEnv = "ZK2RAFT_TESTPROC_ECHO"

type echoSpec struct {
	Listen string
	Word   string
}

// TestEchoProcess is not a test: it is the child of TestProcess. It listens,
// waits for SIGTERM and prints its word.
func TestEchoProcess(t *testing.T) {
	var spec echoSpec
	if !Child(echoEnv, &spec) {
		return
	}
	ln, err := net.Listen("tcp", spec.Listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	defer ln.Close()
	fmt.Fprintln(os.Stderr, "listening")
	WaitSignal()
	_ = json.NewEncoder(os.Stdout).Encode(spec)
	os.Exit(0)
}

func TestProcess(t *testing.T) {
	t.Parallel()
	t.Run("stop", func(t *testing.T) {
		spec := echoSpec{Listen: testlog.FreeAddr(t), Word: "hello"}
		p := Start(t, Options{Test: "TestEchoProcess", Env: echoEnv, Spec: spec})
		p.WaitListening(t, spec.Listen, 30*time.Second)
		if exited, _ := p.Exited(); exited {
			t.Fatal("exited early")
		}
		if err := p.Stop(30 * time.Second); err != nil {
			t.Fatalf("stop: %v: %s", err, p.Stderr())
		}
		out := p.Stdout()
		var got echoSpec
		if err := json.Unmarshal(out[strings.IndexByte(string(out), '{'):], &got); err != nil || got != spec {
			t.Errorf("child printed %q (%v)", out, err)
		}
	})
	t.Run("kill, with a log file", func(t *testing.T) {
		spec := echoSpec{Listen: testlog.FreeAddr(t)}
		log := filepath.Join(t.TempDir(), "child.log")
		p := Start(t, Options{Test: "TestEchoProcess", Env: echoEnv, Spec: spec, LogFile: log})
		p.WaitListening(t, spec.Listen, 30*time.Second)
		p.Kill()
		exited, err := p.Exited()
		if !exited || err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("after Kill: exited %v, %v", exited, err)
		}
		p.Kill() // idempotent
		if tail := LogTail(log, 10); !strings.Contains(tail, "listening") {
			t.Errorf("log tail %q", tail)
		}
	})
}

// Package testlog gives tests a logger whose output is kept in memory and
// printed (its last lines) only when the test fails, so components whose
// goroutines outlive a test never call t.Log late. ZK2RAFT_TEST_LOG=debug
// raises the level. It also hands out free loopback addresses, and a port
// that answers like a web server (HTTPAddr), for the clients' bound tests.
package testlog

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/freeport"
)

// keepLines is how many of the last log lines a failing test prints.
const keepLines = 400

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// New returns a logger for t whose output is shown only if t fails.
func New(t testing.TB) *slog.Logger {
	t.Helper()
	level := slog.LevelInfo
	if os.Getenv("ZK2RAFT_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(buf.String(), "\n")
			if len(lines) > keepLines {
				lines = lines[len(lines)-keepLines:]
			}
			t.Logf("logs (last %d lines):\n%s", len(lines), strings.Join(lines, "\n"))
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level}))
}

// FreeAddr returns a free loopback address for servers whose address must be
// known up front and survive restarts (internal/freeport: outside the
// kernel's ephemeral range, so no outgoing connection takes it meanwhile).
func FreeAddr(t testing.TB) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Secret is the cluster secret test journals and the tools that talk to them
// share (raftjournal.NodeConfig.Secret, raftjournal.Credentials.Secret).
func Secret() []byte { return []byte("zk2raft-test-cluster-secret-0123456789") }

// SecretFile writes Secret to a file only its owner may read, for the
// command line's --cluster-secret-file, and returns its path.
func SecretFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster-secret")
	if err := os.WriteFile(p, append(Secret(), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// HTTPAddr returns the address of a loopback server that answers every
// connection with an HTTP error and closes it, as a web server or an admin
// port would answer ZooKeeper's connect request: the tests of the clients'
// bounds point them at it. It stops when t ends.
func HTTPAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n400 Bad Request"))
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	return ln.Addr().String()
}

// WaitFor polls cond until it returns nil, failing t with what and cond's
// last error if timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

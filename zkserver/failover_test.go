package zkserver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/spawn"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkwire"
)

// Failover: journal nodes as separate `zk2raft serve` processes, killed with
// SIGKILL. A client loses the node it is connected to, then the leader; it
// reconnects elsewhere with its session, its ephemerals stay, its watches
// fire for what changed meanwhile, no acknowledged write is lost, and the
// sessions of clients that are gone expire on the new leader.

var buildOnce struct {
	sync.Once
	bin string
	err error
}

func zk2raftBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "zkserver-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.bin = filepath.Join(dir, "zk2raft")
		out, err := exec.Command("go", "build", "-o", buildOnce.bin, "github.com/zk2raft/zk2raft/cmd/zk2raft").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.bin
}

type procNode struct {
	id, dir, raft, admin, client string
	secretFile                   string
	cmd                          *exec.Cmd
	log                          *os.File
}

func (p *procNode) start(t *testing.T, bin string, extra ...string) {
	t.Helper()
	args := append([]string{"serve", "--data-dir", p.dir, "--node-id", p.id, "--raft-addr", p.raft, "--admin-addr", p.admin,
		"--client-addr", p.client, "--tick-time", "200ms", "--4lw-whitelist", "*", "--max-client-cnxns", "0",
		"--cluster-secret-file", p.secretFile}, extra...)
	f, err := os.OpenFile(filepath.Join(filepath.Dir(p.dir), p.id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.log = f
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := spawn.Start(p.cmd); err != nil {
		t.Fatal(err)
	}
}

func (p *procNode) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		p.cmd = nil
	}
	if p.log != nil {
		p.log.Close()
	}
}

func (p *procNode) fourLetter(word string) string {
	out, err := fourLetterWord(p.client, word)
	if err != nil {
		return ""
	}
	return out
}

func TestFailover(t *testing.T) {
	bin := zk2raftBinary(t)
	base := t.TempDir()
	secret := testlog.SecretFile(t)
	var nodes []*procNode
	for i := range 3 {
		n := &procNode{id: fmt.Sprintf("f%d", i+1), dir: filepath.Join(base, fmt.Sprintf("f%d", i+1)),
			raft: freeAddrT(t), admin: freeAddrT(t), client: freeAddrT(t), secretFile: secret}
		nodes = append(nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.kill()
		}
		if t.Failed() {
			for _, n := range nodes {
				b, _ := os.ReadFile(filepath.Join(base, n.id+".log"))
				t.Logf("%s log:\n%s", n.id, tail(string(b), 3000))
			}
		}
	})
	nodes[0].start(t, bin, "--bootstrap")
	waitFor(t, "f1 serving", func() error { return expect(nodes[0].fourLetter("ruok"), "imok") })
	for _, n := range nodes[1:] {
		n.start(t, bin, "--join", nodes[0].admin)
	}
	cutover(t, nodes)
	for _, n := range nodes {
		waitFor(t, n.id+" read-write", func() error { return expect(n.fourLetter("isro"), "rw") })
	}

	// The client starts on f2 (a follower) with an ephemeral and a watch;
	// another client, on f3, makes an ephemeral and vanishes without a word.
	hosts := []string{nodes[1].client, nodes[2].client, nodes[0].client}
	c, _ := connectTimeout(t, hosts, 4*time.Second)
	p := "/failover"
	mustCreate(t, c, p, nil, 0)
	mustCreate(t, c, p+"/mine", []byte("e"), zk.FlagEphemeral)
	gone := mustDialRaw(t, nodes[2].client, connectOpts{timeout: 2000})
	if r := gone.call(zkwire.OpCreate, create(p+"/theirs", nil, zkwire.ModeEphemeral)); r.Err != zkwire.CodeOK {
		t.Fatalf("create theirs: %v", r.Err)
	}
	gone.close()
	sid := c.SessionID()
	_, _, watch, err := c.GetW(p + "/mine")
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for i := range 20 {
		name := fmt.Sprintf("w%02d", i)
		if _, err := c.Create(p+"/"+name, nil, 0, zk.WorldACL(zk.PermAll)); err == nil {
			acked[name] = true
		}
	}
	byClient := func(addr string) *procNode {
		for _, n := range nodes {
			if n.client == addr {
				return n
			}
		}
		return nil
	}
	first := byClient(c.Server())
	if first == nil {
		t.Fatalf("client connected to %q, not a journal node", c.Server())
	}
	first.kill()
	waitFor(t, "the client back on another node with its session", func() error {
		if c.State() != zk.StateHasSession || c.SessionID() != sid || c.Server() == first.client {
			return fmt.Errorf("state %v session %#x server %s", c.State(), c.SessionID(), c.Server())
		}
		_, err := c.Create(p+"/after-kill", nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
		return nil
	})
	// The killed node comes back (a quorum must survive the next kill), then
	// the leader dies.
	first.start(t, bin)
	waitFor(t, first.id+" serving again", func() error { return expect(first.fourLetter("ruok"), "imok") })
	var leader *procNode
	waitFor(t, "a leader", func() error {
		for _, n := range nodes {
			if strings.Contains(n.fourLetter("srvr"), "Mode: leader") {
				leader = n
				return nil
			}
		}
		return errors.New("no node says Mode: leader")
	})
	leader.kill()
	var alive []string
	for _, n := range nodes {
		if n.cmd != nil {
			alive = append(alive, n.client)
		}
	}
	writer, _ := connectTimeout(t, alive, 10*time.Second)
	waitFor(t, "a write through the surviving nodes", func() error {
		_, err := writer.Set(p+"/mine", []byte("changed"), -1)
		return err
	})
	select {
	case ev := <-watch:
		if ev.Type != zk.EventNodeDataChanged {
			t.Fatalf("watch event %+v", ev)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the watch did not fire for the change made while the client moved")
	}
	waitFor(t, "the client's session after the leader died", func() error {
		if c.State() != zk.StateHasSession || c.SessionID() != sid {
			return fmt.Errorf("state %v session %#x", c.State(), c.SessionID())
		}
		return nil
	})
	// Every acknowledged write is there, the live session's ephemeral stays,
	// and the vanished client's session expired on the new leader.
	waitFor(t, "the vanished client's ephemeral to expire", func() error {
		if _, err := c.Sync(p); err != nil {
			return err
		}
		kids, _, err := c.Children(p)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, k := range kids {
			have[k] = true
		}
		for name := range acked {
			if !have[name] {
				t.Fatalf("acknowledged write %s lost; children %v", name, kids)
			}
		}
		if !have["mine"] || !have["after-kill"] {
			t.Fatalf("children %v lack mine or after-kill", kids)
		}
		if have["theirs"] {
			return errors.New("theirs still there")
		}
		return nil
	})
}

func freeAddrT(t testing.TB) string {
	t.Helper()
	a, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func expect(got, want string) error {
	if got != want {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	return nil
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustCreate(t *testing.T, c *zk.Conn, path string, data []byte, flags int32) {
	t.Helper()
	if _, err := c.Create(path, data, flags, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
}

// cutover moves the process journal to primary: a SetPhase entry sent to
// whichever node leads (there is no cutover verb yet).
func cutover(t *testing.T, nodes []*procNode) {
	t.Helper()
	waitFor(t, "the journal in primary", func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		var errs []error
		for _, n := range nodes {
			res, err := raftjournal.RemoteApply(ctx, raftjournal.Credentials{Secret: testlog.Secret()}, n.raft, raftjournal.Encode(&raftjournal.SetPhase{Phase: raftjournal.PhasePrimary}))
			if err == nil && res.Err == nil {
				return nil
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

func fourLetterWord(addr, word string) (string, error) {
	c, err := dialTimeout(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(word)); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewReader(c)
	buf := make([]byte, 4096)
	for {
		n, err := sc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String(), nil
}

func dialTimeout(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

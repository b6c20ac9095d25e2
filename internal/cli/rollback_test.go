package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/zkclient"
)

// TestRollbackCommand runs the rollback as an operator would: a journal
// node with the reverse mirror (serve --zk), a proxy in front of its own
// ZooKeeper, `cutover --to primary`, a write through the proxy (to the
// journal), `cutover status` with the rollback's gates, `cutover --to
// shadow` (exit 0, its steps printed, the rebaseline's comparison equal),
// the write in ZooKeeper and the go-zookeeper session kept.
func TestRollbackCommand(t *testing.T) {
	ens, admin, listen := startCutoverRig(t)
	conn, _, err := zk.Connect([]string{listen, listen}, 10*time.Second, zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitUntil(t, "a session through the proxy", func() error {
		_, err := conn.Create("/before", []byte("zk"), 0, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	})
	session := conn.SessionID()
	waitUntil(t, "the cutover", func() error {
		code, out, errOut := run(t, "cutover", "--journal", admin, "--to", "primary", "--force", "repairs")
		if code != ExitOK {
			return fmt.Errorf("exit %d: %s%s", code, out, errOut)
		}
		return nil
	})
	waitUntil(t, "a write through the switched proxy", func() error {
		_, err := conn.Create("/in-primary", []byte("journal"), 0, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	})
	code, out, errOut := run(t, "cutover", "status", "--journal", admin)
	if code != ExitOK || !strings.Contains(out, "phase      primary") || !strings.Contains(out, "reverse-mirror-lag") {
		t.Fatalf("status in primary: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = run(t, "cutover", "--journal", admin, "--to", "shadow")
	if code != ExitOK || !strings.Contains(out, "rebaseline") || !(strings.Contains(out, "the journal matches ZooKeeper by digest") || strings.Contains(out, "the journal equals ZooKeeper node by node")) {
		t.Fatalf("rollback: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("rollback:\n%s", out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	direct, err := zkclient.Dial(ctx, zkclient.Config{Hosts: ens.Hosts()})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if data, _, err := direct.GetData(ctx, "/in-primary"); err != nil || string(data) != "journal" {
		t.Fatalf("ZooKeeper's /in-primary: %q %v", data, err)
	}
	waitUntil(t, "the session back through the proxy", func() error {
		_, err := conn.Sync("/")
		return err
	})
	if conn.SessionID() != session {
		t.Fatalf("session %#x became %#x", session, conn.SessionID())
	}
	code, out, _ = run(t, "cutover", "status", "--journal", admin)
	if !strings.Contains(out, "phase      shadow") {
		t.Fatalf("status after: exit %d\n%s", code, out)
	}
}

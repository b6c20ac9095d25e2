package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// TestServeReverseMirror: `serve --client-addr --zk` runs the reverse
// mirror: once the journal is primary, a write through the node's client
// port reaches ZooKeeper, and /status shows the mirror's lag and its own
// status. `cutover fence` makes ZooKeeper refuse a direct write, `cutover
// fence --lift` gives the node its ACL back; a direct write then is a
// split-brain write that `cutover status` reports (exit 3) until `cutover
// resolve` acknowledges it; `cutover --to finalized --yes` then stops the
// mirror.
func TestServeReverseMirror(t *testing.T) {
	dir := t.TempDir()
	admin, raftAddr, client := testlog.FreeAddr(t), testlog.FreeAddr(t), testlog.FreeAddr(t)
	marker := "/zookeeper/zk2raft-cli-test"
	root := "/serve-reverse-mirror"
	s := startServe(t, "--data-dir", filepath.Join(dir, "n1"), "--node-id", "n1", "--raft-addr", raftAddr,
		"--admin-addr", admin, "--client-addr", client, "--bootstrap", "--zk", sharedZK.ConnectString(),
		"--reverse-mirror-marker", marker, "--reverse-mirror-root", root, "--auth", "digest:mirror:secret")
	defer s.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	creds := raftjournal.Credentials{Secret: testlog.Secret()}
	waitUntil(t, "the node to lead", func() error {
		st, err := testAdmin(admin).ClusterStatus(ctx, true)
		if err != nil || st.Role != "leader" {
			return fmt.Errorf("role %q, %v", st.Role, err)
		}
		return nil
	})
	if res, err := raftjournal.RemoteApply(ctx, creds, raftAddr, raftjournal.Encode(&raftjournal.SetPhase{Phase: raftjournal.PhasePrimary})); err != nil || res.Err != nil {
		t.Fatalf("set primary: %v %+v", err, res)
	}
	app, err := zkclient.Dial(ctx, zkclient.Config{Hosts: []string{client}})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, _, err := app.Create(ctx, root, []byte("from the journal"), znode.WorldAnyone(), 0); err != nil {
		t.Fatal(err)
	}
	direct, err := zkclient.Dial(ctx, zkclient.Config{Hosts: sharedZK.Hosts()})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	waitUntil(t, "the write in ZooKeeper", func() error {
		data, _, err := direct.GetData(ctx, root)
		if err != nil || string(data) != "from the journal" {
			return fmt.Errorf("%q, %v", data, err)
		}
		return nil
	})
	waitUntil(t, "the mirror drained, as /status says", func() error {
		st, err := testAdmin(admin).ClusterStatus(ctx, true)
		if err != nil {
			return err
		}
		rm, ext := st.ReverseMirror, st.Extensions["reverse_mirror"]
		if rm == nil || !rm.Active || rm.PendingEntries != 0 || rm.AckedIndex <= rm.StartIndex || ext == nil {
			return fmt.Errorf("reverse_mirror %+v, extension %v", rm, ext)
		}
		return nil
	})
	if _, _, err := direct.GetData(ctx, marker); err != nil {
		t.Errorf("marker %s: %v", marker, err)
	}

	// The fence: ZooKeeper refuses a write around the journal.
	if code, out, errOut := run(t, "cutover", "fence", "--journal", admin, "--timeout", "1m"); code != ExitOK || !strings.Contains(out, "fence on: 1 nodes, 1 ACLs changed") {
		t.Fatalf("cutover fence: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := direct.SetData(ctx, root, []byte("around"), -1); !errors.Is(err, zkclient.ErrNoAuth) {
		t.Fatalf("a direct write under the fence: %v; want NoAuth", err)
	}
	if code, out, errOut := run(t, "cutover", "status", "--journal", admin); code != ExitOK || !strings.Contains(out, "fence: on since") {
		t.Fatalf("cutover status with the fence: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, "cutover", "fence", "--journal", admin, "--lift", "--timeout", "1m"); code != ExitOK || !strings.Contains(out, "fence off: 1 nodes, 1 ACLs changed") {
		t.Fatalf("cutover fence --lift: exit %d\n%s%s", code, out, errOut)
	}
	if acl, _, err := direct.GetACL(ctx, root); err != nil || !slices.Equal(acl, znode.WorldAnyone()) {
		t.Fatalf("ACL after the lift: %v, %v", acl, err)
	}

	// A write around the journal is a split-brain write until acknowledged.
	st, err := direct.SetData(ctx, root, []byte("around"), -1)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%#x setData %s", st.Mzxid, root)
	waitUntil(t, "cutover status to report the split-brain write", func() error {
		code, out, errOut := run(t, "cutover", "status", "--journal", admin)
		if code != ExitDifferences || !strings.Contains(oneLine(out), want) || !strings.Contains(errOut, "1 unresolved split-brain writes") {
			return fmt.Errorf("exit %d\n%s%s", code, out, errOut)
		}
		return nil
	})
	code, out, errOut := run(t, "cutover", "status", "--journal", admin, "--json")
	var js struct {
		SplitBrain []struct {
			Path string `json:"path"`
			Op   string `json:"op"`
			Zxid int64  `json:"zxid"`
		} `json:"split_brain"`
		FinalizeGates []struct {
			Name string `json:"name"`
			Pass bool   `json:"pass"`
		} `json:"finalize_gates"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || code != ExitDifferences || len(js.SplitBrain) != 1 || js.SplitBrain[0].Path != root ||
		js.SplitBrain[0].Zxid != st.Mzxid || len(js.FinalizeGates) != 3 || js.FinalizeGates[2].Pass {
		t.Fatalf("cutover status --json: exit %d, %v: %s%s", code, err, out, errOut)
	}
	code, out, errOut = run(t, "cutover", "--journal", admin, "--to", "finalized", "--yes")
	if code != ExitFailure || !strings.Contains(errOut, `gate "split-brain" fails`) {
		t.Fatalf("finalize with a split-brain write: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, "cutover", "resolve", "--journal", admin, "--path", root, "--note", "a test"); code != ExitOK || !strings.Contains(out, "resolved: setData "+root) {
		t.Fatalf("cutover resolve: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, "cutover", "--journal", admin, "--to", "finalized", "--yes"); code != ExitOK || !strings.Contains(out, "committed") {
		t.Fatalf("finalize: exit %d\n%s%s", code, out, errOut)
	}
	waitUntil(t, "the mirror to stop", func() error {
		st, err := testAdmin(admin).ClusterStatus(ctx, true)
		if err != nil {
			return err
		}
		if ext, _ := st.Extensions["reverse_mirror"].(map[string]any); ext == nil || ext["running"] != false {
			return fmt.Errorf("extension %v", st.Extensions["reverse_mirror"])
		}
		return nil
	})
}

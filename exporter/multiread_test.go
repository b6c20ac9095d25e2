package exporter

import (
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// TestNodeFromBatch checks how one node's getData and getChildren results and
// getACL reply are put together, and which disagreements make it be read
// again.
func TestNodeFromBatch(t *testing.T) {
	st := znode.WireStat{Czxid: 10, Mzxid: 12, Pzxid: 14, Version: 2, Cversion: 3, Aversion: 1, NumChildren: 2, DataLength: 3}
	moved := func(f func(*znode.WireStat)) znode.WireStat {
		s := st
		f(&s)
		return s
	}
	data := zkwire.MultiResult{Op: zkwire.OpGetData, Response: &zkwire.GetDataResponse{Data: []byte("abc"), Stat: st}}
	kids := zkwire.MultiResult{Op: zkwire.OpGetChildren, Response: &zkwire.GetChildrenResponse{Children: []string{"b", "a"}}}
	acl := &zkwire.GetACLResponse{ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "world", ID: "anyone"}}}, Stat: st}
	fail := func(c zkwire.Code) zkwire.MultiResult { return zkwire.MultiResult{Op: zkwire.OpError, Err: c} }
	for _, tc := range []struct {
		name       string
		data, kids zkwire.MultiResult
		acl        zkwire.Response
		aclErr     error
		want       error // nil: a node
	}{
		{"consistent", data, kids, acl, nil, nil},
		{"getData NoNode: deleted since listed", fail(zkwire.CodeNoNode), fail(zkwire.CodeNoNode), nil, zk.ErrNoNode, zk.ErrNoNode},
		{"getData NoAuth", fail(zkwire.CodeNoAuth), fail(zkwire.CodeNoAuth), acl, nil, zk.ErrNoAuth},
		{"getACL NoNode: deleted after getData", data, kids, nil, zk.ErrNoNode, zk.ErrNoNode},
		{"getACL NoAuth", data, kids, nil, zk.ErrNoAuth, zk.ErrNoAuth},
		{"data changed", data, kids, &zkwire.GetACLResponse{ACL: acl.ACL, Stat: moved(func(s *znode.WireStat) { s.Mzxid, s.Version = 20, 3 })}, nil, errMoved},
		{"children changed", data, kids, &zkwire.GetACLResponse{ACL: acl.ACL, Stat: moved(func(s *znode.WireStat) { s.Pzxid, s.Cversion = 20, 4 })}, nil, errMoved},
		{"ACL changed", data, kids, &zkwire.GetACLResponse{ACL: acl.ACL, Stat: moved(func(s *znode.WireStat) { s.Aversion = 2 })}, nil, errMoved},
		{"recreated", data, kids, &zkwire.GetACLResponse{ACL: acl.ACL, Stat: moved(func(s *znode.WireStat) { s.Czxid = 30 })}, nil, errMoved},
		{"child count disagrees", data, zkwire.MultiResult{Op: zkwire.OpGetChildren, Response: &zkwire.GetChildrenResponse{Children: []string{"a"}}}, acl, nil, errMoved},
		{"getChildren NoNode between equal stats", data, fail(zkwire.CodeNoNode), acl, nil, errMoved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := nodeFromBatch("/p", tc.data, tc.kids, tc.acl, tc.aclErr)
			if tc.want != nil {
				if !errors.Is(r.err, tc.want) || r.node != nil {
					t.Fatalf("got node %v, err %v; want %v", r.node, r.err, tc.want)
				}
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.node.Path != "/p" || string(r.node.Data) != "abc" || r.node.NumChildren != 2 || len(r.node.ACL) != 1 ||
				r.node.Stat.Mzxid != 12 || !slices.Equal(r.children, []string{"b", "a"}) {
				t.Errorf("node %+v children %v", r.node, r.children)
			}
		})
	}
	t.Run("other error is final", func(t *testing.T) {
		r := nodeFromBatch("/p", fail(zkwire.CodeMarshallingError), fail(zkwire.CodeRuntimeInconsistency), nil, zk.ErrNoNode)
		if r.err == nil || errors.Is(r.err, errMoved) || retryable(r.err) {
			t.Errorf("err = %v, want a final error", r.err)
		}
	})
}

// TestMultiReadSubOpErrors reads one batch holding a node that is gone (as
// one deleted after its parent listed it) and one the credentials may not
// read, among readable ones: the batch is answered per node.
func TestMultiReadSubOpErrors(t *testing.T) {
	t.Parallel()
	root := rootFor(t)
	c := dialZK(t, ensemble.Hosts(), "owner:right")
	mustCreate(t, c, root, nil, 0, nil)
	mustCreate(t, c, root+"/a", []byte("a"), 0, nil)
	mustCreate(t, c, root+"/a/kid", nil, 0, nil)
	mustCreate(t, c, root+"/deleted", nil, 0, nil)
	mustCreate(t, c, root+"/locked", []byte("secret"), 0, zk.DigestACL(zk.PermAll, "owner", "right"))
	mustCreate(t, c, root+"/z", []byte{}, 0, nil)
	if err := c.Delete(root+"/deleted", -1); err != nil {
		t.Fatal(err)
	}

	cfg := DefaultConfig(ensemble.Hosts())
	cfg.Root, cfg.ReadMode = root, ReadModeMultiRead
	w, err := NewWalker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w.ReadMode() != ReadModeMultiRead {
		t.Fatalf("read mode %v", w.ReadMode())
	}
	var tasks []*task
	for _, p := range []string{"/a", "/deleted", "/locked", "/z", "/a/kid"} {
		tasks = append(tasks, &task{path: root + p})
	}
	w.readBatch(t.Context(), w.sessions[0], tasks)
	want := []outcome{outcomeRead, outcomeGone, outcomeUnreadable, outcomeRead, outcomeRead}
	for i, tk := range tasks {
		if tk.outcome != want[i] {
			t.Errorf("%s: outcome %d (err %v), want %d", tk.path, tk.outcome, tk.err, want[i])
		}
	}
	if n := tasks[0].node; n == nil || string(n.Data) != "a" || n.NumChildren != 1 || !slices.Equal(tasks[0].children, []string{"kid"}) {
		t.Errorf("/a read as %+v, children %v", n, tasks[0].children)
	}
	if n := tasks[3].node; n == nil || n.Data == nil || len(n.Data) != 0 {
		t.Errorf("/z (empty data) read as %+v", n)
	}
	if got := w.Progress().Requests; got < 6 {
		t.Errorf("%d requests counted, want at least the multiRead and 5 getACLs", got)
	}
}

// TestReadModeChoice checks which read mode Start settles on.
func TestReadModeChoice(t *testing.T) {
	t.Parallel()
	root := rootFor(t)
	mustCreate(t, dialZK(t, ensemble.Hosts()), root, nil, 0, nil)
	for _, tc := range []struct {
		name   string
		mode   ReadMode
		dialer bool
		want   ReadMode
	}{
		{"auto on ZooKeeper 3.8", ReadModeAuto, false, ReadModeMultiRead},
		{"auto with a dialer (TLS)", ReadModeAuto, true, ReadModeClassic},
		{"classic", ReadModeClassic, false, ReadModeClassic},
		{"multiread with a dialer", ReadModeMultiRead, true, ReadModeMultiRead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mode == ReadModeAuto && readModeOverride != ReadModeAuto {
				t.Skipf("-exporter.readmode=%v overrides auto", readModeOverride)
			}
			cfg := DefaultConfig(ensemble.Hosts())
			cfg.Root, cfg.ReadMode, cfg.Sessions = root, tc.mode, 2
			if tc.dialer {
				cfg.Dialer = net.DialTimeout
			}
			nodes, sum, err := collect(t, t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) != 1 || sum.ReadMode != tc.want.String() {
				t.Errorf("%d nodes, read mode %q, want 1 in %v", len(nodes), sum.ReadMode, tc.want)
			}
		})
	}
}

// TestNoMultiRead points the walk at a server that does not know multiRead,
// as ZooKeeper before 3.6: it closes the connection, or answers with an
// error. A forced multiRead walk fails to start with ErrNoMultiRead; the probe
// of an automatic one says no.
func TestNoMultiRead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		reply func(net.Conn, zkwire.RequestHeader)
	}{
		{"closes", func(c net.Conn, _ zkwire.RequestHeader) { c.Close() }},
		{"unimplemented", func(c net.Conn, h zkwire.RequestHeader) {
			frame, _ := zkwire.AppendReplyFrame(nil, zkwire.ReplyHeader{Xid: h.Xid, Err: zkwire.CodeUnimplemented}, h.Op, nil)
			c.Write(frame)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeOldServer(t, tc.reply)
			cfg := DefaultConfig([]string{addr})
			cfg.ReadMode, cfg.ConnectTimeout = ReadModeMultiRead, 3*time.Second
			w, err := NewWalker(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := w.Start(t.Context()); !errors.Is(err, ErrNoMultiRead) {
				t.Errorf("Start: %v, want ErrNoMultiRead", err)
			}
			cfg.ReadMode = ReadModeAuto
			w2, err := NewWalker(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := w2.probeMultiRead(t.Context()); err == nil {
				t.Error("the probe found multiRead")
			}
		})
	}
}

// fakeOldServer accepts sessions and syncs, and answers any other request
// with reply.
func fakeOldServer(t *testing.T, reply func(net.Conn, zkwire.RequestHeader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fr := zkwire.NewFrameReader(c, 0)
				if _, err := fr.Next(); err != nil {
					return
				}
				resp := zkwire.ConnectResponse{TimeOut: 10000, SessionID: 1, Passwd: make([]byte, 16)}
				if _, err := c.Write(zkwire.AppendRecordFrame(nil, &resp)); err != nil {
					return
				}
				for {
					p, err := fr.Next()
					if err != nil {
						return
					}
					h, _, err := zkwire.SplitRequest(p)
					if err != nil {
						return
					}
					switch h.Op {
					case zkwire.OpPing, zkwire.OpSync, zkwire.OpAuth, zkwire.OpCloseSession:
						frame, _ := zkwire.AppendReplyFrame(nil, zkwire.ReplyHeader{Xid: h.Xid, Zxid: 1}, h.Op,
							map[zkwire.OpCode]zkwire.Response{zkwire.OpSync: &zkwire.SyncResponse{Path: "/"}}[h.Op])
						c.Write(frame)
					default:
						reply(c, h)
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

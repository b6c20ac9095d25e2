package exporter

import (
	"context"
	"flag"
	"fmt"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

var benchMRWorkers = flag.Int("export.mrworkers", 16, "requests in flight for BenchmarkReadShapes' multiRead rows")

// BenchmarkReadShapes measures, on the shared three-server ensemble and kafka
// tree, how many nodes per second each way of reading the tree's known paths
// gets, against the pipelined getData ceiling of BenchmarkExport measured in
// the same run: whether a walk built on multiRead can reach the ceiling.
//
//	go test -run '^$' -bench 'BenchmarkReadShapes$' -benchtime 1x ./exporter/
func BenchmarkReadShapes(b *testing.B) {
	ens, tree := seededKafka(b)
	paths := append([]string{tree.Root}, tree.Paths()...)
	cfg := benchConfig(ens, tree.Root)
	cfg = cfg.withDefaults()
	w, err := NewWalker(cfg)
	if err != nil {
		b.Fatal(err)
	}
	clients := make([]*wireSession, cfg.Sessions)
	for i := range clients {
		c, err := w.dialWire(b.Context(), i, &replyTracker{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	type row struct {
		name string
		run  func() error
		p    phase
	}
	single := func(op func(c *wireSession, p string) []zkclient.Request) func() error {
		return func() error { return wireBatches(clients, paths, 1, cfg.Workers, op) }
	}
	multi := func(k int, children, acl bool) func() error {
		return func() error {
			return wireBatches(clients, paths, k, *benchMRWorkers, func(_ *wireSession, _ string) []zkclient.Request { return nil }, func(batch []string) []zkclient.Request {
				ops := make([]zkwire.MultiOp, 0, 2*len(batch))
				for _, p := range batch {
					ops = append(ops, zkwire.MultiOp{Op: zkwire.OpGetData, Request: &zkwire.GetDataRequest{Path: p}})
					if children {
						ops = append(ops, zkwire.MultiOp{Op: zkwire.OpGetChildren, Request: &zkwire.GetChildrenRequest{Path: p}})
					}
				}
				reqs := []zkclient.Request{{Op: zkwire.OpMultiRead, Body: &zkwire.MultiRequest{Ops: ops}}}
				if acl {
					for _, p := range batch {
						reqs = append(reqs, zkclient.Request{Op: zkwire.OpGetACL, Body: &zkwire.GetACLRequest{Path: p}})
					}
				}
				return reqs
			})
		}
	}
	rows := []*row{
		{name: "walker classic (getData+getACL+getChildren2)", run: walkIn(cfg, ReadModeClassic)},
		{name: "walker multiRead", run: walkIn(cfg, ReadModeMultiRead)},
		{name: "ceiling (go-zk getData)", run: func() error {
			cfg := cfg
			cfg.ReadMode = ReadModeClassic
			w, err := NewWalker(cfg)
			if err != nil {
				return err
			}
			defer w.Close()
			if err := w.Start(b.Context()); err != nil {
				return err
			}
			return rawGetData(w, paths, cfg.Workers)
		}},
		{name: "wire getData", run: single(func(_ *wireSession, p string) []zkclient.Request {
			return []zkclient.Request{{Op: zkwire.OpGetData, Body: &zkwire.GetDataRequest{Path: p}}}
		})},
		{name: "wire getACL", run: single(func(_ *wireSession, p string) []zkclient.Request {
			return []zkclient.Request{{Op: zkwire.OpGetACL, Body: &zkwire.GetACLRequest{Path: p}}}
		})},
		{name: "wire getData+getACL pipelined", run: single(func(_ *wireSession, p string) []zkclient.Request {
			return []zkclient.Request{{Op: zkwire.OpGetData, Body: &zkwire.GetDataRequest{Path: p}}, {Op: zkwire.OpGetACL, Body: &zkwire.GetACLRequest{Path: p}}}
		})},
	}
	for _, k := range []int{8, 32, 128} {
		rows = append(rows,
			&row{name: fmt.Sprintf("multiRead K=%d getData", k), run: multi(k, false, false)},
			&row{name: fmt.Sprintf("multiRead K=%d getData+getChildren", k), run: multi(k, true, false)},
			&row{name: fmt.Sprintf("multiRead K=%d getData + K getACL", k), run: multi(k, false, true)},
			&row{name: fmt.Sprintf("multiRead K=%d getData+getChildren + K getACL", k), run: multi(k, true, true)},
		)
	}
	for range b.N {
		for _, r := range rows {
			r.p.measure(func() (int64, int64) {
				if err := r.run(); err != nil {
					b.Fatalf("%s: %v", r.name, err)
				}
				return int64(len(paths)), 0
			})
		}
	}
	ceil := rows[2].p.nodeRate()
	for _, r := range rows {
		fmt.Printf("read shapes: %-50s %8.0f nodes/s  %.2fx ceiling  server CPU %4.0f us/node\n",
			r.name, r.p.nodeRate(), r.p.nodeRate()/ceil, r.p.serverCPUPerNode())
	}
}

func nopSink(*znode.Node) error { return nil }

// walkIn returns a whole walk in the given mode, into no sink.
func walkIn(cfg Config, mode ReadMode) func() error {
	return func() error {
		cfg.ReadMode = mode
		w, err := NewWalker(cfg)
		if err != nil {
			return err
		}
		defer w.Close()
		if err := w.Start(context.Background()); err != nil {
			return err
		}
		_, err = w.Walk(context.Background(), SinkFunc(nopSink))
		return err
	}
}

// wireBatches reads paths over clients with workers goroutines, k paths at a
// time: each goroutine sends one batch's requests (batch(paths) when given,
// else each path's op) in one write and waits for all their replies.
func wireBatches(clients []*wireSession, paths []string, k, workers int, op func(*wireSession, string) []zkclient.Request, batch ...func([]string) []zkclient.Request) error {
	ctx := context.Background()
	var g errgroup.Group
	next := make(chan []string, workers)
	for i := range workers {
		c := clients[i%len(clients)]
		g.Go(func() error {
			for ps := range next {
				var reqs []zkclient.Request
				if len(batch) > 0 {
					reqs = batch[0](ps)
				} else {
					for _, p := range ps {
						reqs = append(reqs, op(c, p)...)
					}
				}
				for i, cl := range c.send(reqs...) {
					resp, err := wait(ctx, cl)
					if err != nil {
						return fmt.Errorf("%v: %w", reqs[i].Op, err)
					}
					if m, ok := resp.(*zkwire.MultiResponse); ok {
						if code := m.Err(); code != zkwire.CodeOK {
							return fmt.Errorf("multiRead: %v", code)
						}
						if want := len(reqs[0].Body.(*zkwire.MultiRequest).Ops); len(m.Results) != want {
							return fmt.Errorf("multiRead: %d results for %d ops", len(m.Results), want)
						}
						if g, ok := m.Results[0].Response.(*zkwire.GetDataResponse); !ok || g.Stat.Czxid == 0 {
							return fmt.Errorf("multiRead: first result %+v", m.Results[0])
						}
					}
				}
			}
			return nil
		})
	}
	for i := 0; i < len(paths); i += k {
		next <- paths[i:min(i+k, len(paths))]
	}
	close(next)
	return g.Wait()
}

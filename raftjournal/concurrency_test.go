package raftjournal

import (
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// Reads, watch registrations and snapshots run concurrently with Apply; under
// -race this checks the locking, and every read must see a consistent tree.
func TestConcurrentReadsDuringApply(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s := h.session()
	h.mustWrite(s, create("/c", "", ModePersistent))
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	reader := func(id int) {
		defer wg.Done()
		w := NewWatcher(1024)
		defer w.Close()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			kids, st, err := h.f.Children("/c", w)
			if err != nil {
				errs <- err
				return
			}
			if int(st.NumChildren) != len(kids) {
				errs <- fmt.Errorf("reader %d: %d children, stat says %d", id, len(kids), st.NumChildren)
				return
			}
			for _, k := range kids {
				h.f.Get("/c/"+k, w)
			}
			h.f.Exists("/c/x", w)
			if i%50 == 0 {
				if _, err := h.f.WriteSnapshot(io.Discard); err != nil {
					errs <- err
					return
				}
				var last string
				h.f.Walk(func(n *znode.Node) error {
					if n.Path <= last {
						errs <- fmt.Errorf("walk out of order: %s after %s", n.Path, last)
					}
					last = n.Path
					return nil
				})
				_ = h.f.Status()
				_ = h.f.DigestHistory()
			}
			select {
			case <-w.Ready():
				w.Take()
			case <-done:
				return
			}
		}
	}
	for i := range 3 {
		wg.Add(1)
		go reader(i)
	}
	for i := range 2000 {
		r := h.mustWrite(s, create("/c/n-", fmt.Sprint(i), ModeEphemeralSequential))
		if i%3 == 0 {
			h.mustWrite(s, setData(r.Path, "x", -1))
		}
		if i%2 == 0 {
			h.mustWrite(s, del(r.Path, -1))
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkInvariants(t, h.f)
}

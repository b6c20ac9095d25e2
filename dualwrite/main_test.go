package dualwrite

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zk2raft/zk2raft/internal/zktest"
)

// shared is the three-server ensemble (extended types on, so TTL nodes can be
// created) that the package's tests and benchmarks share. It starts on first
// use, so tests that need no ZooKeeper pay nothing, and TestMain closes it.
// Tests sharing it must not stop or kill its servers and must work under
// their own freshRoot; tests that inject faults start their own with
// zktest.New.
var shared struct {
	once sync.Once
	ens  *zktest.Ensemble
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	// Every test has returned, so once.Do (if it ran) happened before this.
	if shared.ens != nil {
		if err := shared.ens.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = max(code, 1)
		}
	}
	os.Exit(code)
}

// testEnsemble returns the package's shared ensemble, starting it on first
// use. A start failure (including zktest.ErrNotInstalled) fails the test; it
// never skips.
func testEnsemble(t testing.TB) *zktest.Ensemble {
	t.Helper()
	shared.once.Do(func() {
		shared.ens, shared.err = zktest.Start(context.Background(), zktest.Options{Servers: 3, ExtendedTypes: true})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.ens
}

// rootSeq makes freshRoot unique when one test asks for several roots.
var rootSeq atomic.Int64

// freshRoot returns an absolute path, not yet created, that no other test of
// this binary uses: "/" + the test's name (subtest slashes made dashes) + a
// counter.
func freshRoot(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/%s-%d", name, rootSeq.Add(1))
}

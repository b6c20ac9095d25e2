// Package testproc runs part of a test in a process of its own, so that a
// test can kill it with SIGKILL (losing what a real crash loses: the
// process, its goroutines and buffers, not the page cache) or account its
// CPU time apart. The child is the test binary itself, re-executed to run
// one test function, which finds its spec (JSON) in an environment variable:
//
//	// The child's body: not a test, it returns at once in a normal run.
//	func TestNodeProcess(t *testing.T) {
//		var spec nodeSpec
//		if !testproc.Child(nodeEnv, &spec) {
//			return
//		}
//		… run the node; testproc.WaitSignal(); exit
//	}
//
//	// The parent:
//	p := testproc.Start(t, testproc.Options{Test: "TestNodeProcess", Env: nodeEnv, Spec: spec})
//	p.Kill()  // SIGKILL and reap
//
// raftjournal's kill -9 cluster test and dualwrite's tap process (its kill
// -9 test and the proxy benchmark) share it; it sits under internal, and
// imports neither, so that raftjournal's own tests can use it without an
// import cycle. It is for tests only, and Linux only (Pdeathsig: a child
// dies with the test binary, whatever happens to the test).
package testproc

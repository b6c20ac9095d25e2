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
// A journal node in a process of its own is the common case: StartJournal
// runs a JournalSpec's node (the tests' short Raft timings, output in a log
// file beside its data dir), JournalChild is its body. raftjournal's kill -9
// cluster test and dualwrite's fault tests share it, and dualwrite's tap
// process (its kill -9 test, the proxy benchmark) runs on Start and Child.
// The package imports raftjournal, so raftjournal's test that uses it is an
// external test (package raftjournal_test): an internal package that a
// test-only import reaches is what breaks the cycle a shared helper would
// otherwise make. It is for tests only, and Linux only (Pdeathsig: a child
// dies with the test binary, whatever happens to the test).
package testproc

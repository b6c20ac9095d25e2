// Package zktest starts and stops real Apache ZooKeeper ensembles for tests
// and injects faults into them. Tests never mock ZooKeeper.
//
// # What it owns
//
// zktest owns the JVMs it launches and everything under its base directory:
// per server a directory server-N holding zoo.cfg, log4j.properties, the data
// directory (snapshots, transaction logs, myid) and zookeeper.log, where the
// JVM's stdout/stderr and ZooKeeper's own log4j output both go. It uses the
// standard library only.
//
// Servers run Debian's ZooKeeper 3.8 directly:
//
//	java -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
//	     -Dzookeeper.digest.enabled=true [-Dzookeeper.extendedTypesEnabled=true] [-Djute.maxbuffer=N] [-D...] \
//	     -cp /usr/share/java/zookeeper.jar:slf4j-log4j12.jar:log4j-1.2.jar \
//	     org.apache.zookeeper.server.quorum.QuorumPeerMain server-N/zoo.cfg
//
// Nothing under /etc/zookeeper, /var/lib/zookeeper or /var/log/zookeeper is
// read or written. Every server binds 127.0.0.1 only: a client port, a quorum
// port and an election port, each picked by listening on 127.0.0.1:0 and
// closing, so any number of test binaries can run at once. If another process
// grabs a port before the JVM binds it, Start retries the whole ensemble on
// new ports (three attempts).
//
// Every ensemble has the four-letter-word whitelist "*" (so hash, mntr, cons,
// ... answer), the tree digest enabled, the admin server disabled,
// maxClientCnxns=0 (unlimited) and forceSync=no (kill -9 keeps the page cache;
// only a host crash would lose data). tickTime defaults to 200ms so short
// session timeouts are possible; maxSessionTimeout is 60s so ordinary client
// timeouts are not clamped. Options lets a test add system properties, JVM
// flags and zoo.cfg entries.
//
// # Ordering and lifetime
//
// Start returns only when every server answers srvr with a serving mode
// (standalone, or leader/follower with a leader among them). StartServer and
// Restart return when that server serves again; Wait returns when every
// running server serves and one leads. Stop sends SIGTERM and waits; Kill
// sends SIGKILL (kill -9) and waits until the process is reaped. Close kills
// every JVM, waits for all of them, removes the directory Start created, and
// may be called any number of times.
//
// Each JVM is the leader of its own process group, and on Linux is started
// with Pdeathsig=SIGKILL from an OS thread that lives exactly as long as the
// Ensemble, so a test binary that panics, times out or is killed takes its
// JVMs with it even though no cleanup ran (its temporary directory stays).
//
// # One ensemble per test
//
// New starts an ensemble for a single test and closes it in t.Cleanup; use it
// for tests that kill, stop or restart servers:
//
//	func TestFailover(t *testing.T) {
//		zk := zktest.New(t, zktest.Options{Servers: 3})
//		leader, err := zk.Leader(t.Context())
//		...
//		zk.Kill(leader)
//		if err := zk.Wait(t.Context()); err != nil { t.Fatal(err) }
//	}
//
// # One ensemble per test binary
//
// Starting a JVM costs about half a second (a three-server quorum about one
// and a half on a two-CPU machine), so packages whose tests only read and
// write share one ensemble: TestMain starts it, the tests reach it through a
// package-level accessor, and it is closed after m.Run:
//
//	var ensemble *zktest.Ensemble
//
//	func TestMain(m *testing.M) {
//		zktest.Main(m, zktest.Options{Servers: 3, ExtendedTypes: true}, &ensemble)
//	}
//
//	// zk returns the ensemble shared by every test in the package.
//	func zk(t testing.TB) *zktest.Ensemble {
//		t.Helper()
//		return ensemble
//	}
//
// Tests sharing an ensemble must not stop or kill its servers, and should
// each work under their own path prefix (for example "/" + t.Name()), which
// is the caller's business. Use Run instead of Main when TestMain has more to
// set up or tear down.
//
// # When ZooKeeper or Java is missing
//
// Find locates java ($ZK2RAFT_JAVA, $JAVA_HOME/bin/java, then PATH) and the
// jars ($ZK2RAFT_ZK_CLASSPATH verbatim, else Debian's /usr/share/java). When
// either is missing, Find, Start and New return ErrNotInstalled:
//
//	zktest: ZooKeeper 3.8 (Debian package `zookeeper`) and a Java runtime are required: run `make deps`
//
// followed by what exactly was not found. Tests fail with that message; they
// never skip, so a machine without ZooKeeper cannot pass the suite by
// accident. A server that fails to start is reported as a *ServerError
// quoting the end of its zookeeper.log.
//
// # Debian specifics
//
// Debian's zookeeper.jar lists its dependencies (jute, netty, jetty, jackson,
// snappy, metrics, commons-cli, commons-io, slf4j-api) by absolute path in its
// manifest Class-Path, so the jar alone is a runnable classpath. The manifest
// has no SLF4J binding, and Debian's zkEnv.sh puts none on the classpath
// either, so a server started the Debian way logs nothing at all ("SLF4J:
// Defaulting to no-operation (NOP) logger"). zktest adds slf4j-log4j12 and
// log4j 1.2 (both dependencies of libzookeeper-java) and its own
// log4j.properties per server.
//
// The hash four-letter word lists the tree digest only at zxids that are
// multiples of 128 (hard-coded in DataTree), so on a fresh ensemble it answers
// with nothing until 128 transactions have been committed in the epoch.
package zktest

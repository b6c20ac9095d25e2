// Package rehearsal is the client workload of a cutover rehearsal (issue 15):
// clients no one here wrote keep working through a proxy's address while the
// cutover switches them from ZooKeeper to the journal, and every promise of
// the switch is checked afterwards against the journal's tree, read through
// its ZooKeeper port. cutover's rehearsal test and `make demo` (through the
// hidden `zk2raft dev rehearse`) run the same workload and the same checks.
// It is a client, never part of the migration path.
//
// # The workload (Start)
//
//   - Writers: go-zookeeper sessions, each creating sequential nodes
//     Root/w<N>/k<id>- one at a time, each with its own ephemeral
//     Root/eph/g<N>. A write is acknowledged when it returns a name; one that
//     fails with a connection loss (go-zookeeper's ErrConnectionClosed, or
//     ErrNoServer for a request it never sent) is checked after the client
//     reconnects — the write id in the name tells whether it was applied — and
//     written again under the same id only when it was not. Any other error
//     is counted as an error. Each request's time is measured from its first
//     attempt to its answer, so a request caught by the switch shows the
//     whole pause.
//   - A beacon: one session sets Root/beacon every few milliseconds.
//   - Watchers: go-zookeeper sessions that keep a data watch on the beacon
//     (GetW, and again after every event). go-zookeeper keeps its watches
//     across a reconnect and re-registers them with setWatches and its last
//     zxid, so a watch set on ZooKeeper fires for a change made on the
//     journal.
//   - kazoo (Debian's python3-kazoo, run with /usr/bin/python3; the script is
//     embedded): several KazooClients, each with an ephemeral of its own,
//     contending in an Election (leaders hold a short term and resign) and
//     for a Lock (held a few milliseconds). The script logs every
//     acquisition and release, in one order, from the kazoo side.
//
// # The checks (Workload.Verify)
//
// The switch is the first connection loss a go-zookeeper session saw. After
// the workload stopped (Workload.Stop, which also makes a last beacon change
// every watcher must see), Verify reads the journal through verifyHosts and
// reports: sessions lost (expired, or another session id afterwards, for
// go-zookeeper and kazoo), ephemerals lost (each missing or owned by another
// session), acknowledged writes missing and writes present twice, errors
// other than a connection loss, watches set before the switch that fired
// for a change after it (at least one per watcher), every watcher at the
// final beacon value, the Election and the Lock never with two holders and
// changing hands both before and after the switch, and the longest request.
// Result.Problems lists every broken promise; an empty list is the only
// pass.
package rehearsal

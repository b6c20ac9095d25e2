// Package cli is zk2raft's command line: one file per verb, each a newXCommand
// function that builds a cobra command around an options struct, in the style of
// etcd-io/bbolt. cmd/zk2raft only calls [Main]. A verb parses its flags, calls
// a package (migrate calls importer.Migrate; connect strings, credentials and
// TLS are zkclient's) and prints; a malformed flag value, such as a --zk host
// that is not host:port, is a usage error before anything connects.
//
// Output rules: data and reports go to stdout (or --out); logs, progress bars and
// errors go to stderr. Progress bars are drawn only when stderr is a terminal and
// neither --quiet nor --no-progress is given.
//
// Exit codes (the contract scripts rely on): 0 success, 1 error, 2 usage,
// 3 verification found differences, 4 the journal cluster has no leader (journal
// status). A verb signals codes other than 1 by returning an [*ExitError].
//
// Secrets never need the command line (ps shows it to every user): the cluster
// secret comes from --cluster-secret-file, $ZK2RAFT_CLUSTER_SECRET_FILE or
// $ZK2RAFT_CLUSTER_SECRET, ZooKeeper credentials from --auth-file,
// $ZK2RAFT_ZK_AUTH_FILE or $ZK2RAFT_ZK_AUTH (credentials.go). Every verb that
// talks to a journal builds its raftjournal.AdminClient from clusterOptions.
package cli

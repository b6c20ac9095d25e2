// Command zk2raft moves a ZooKeeper ensemble's state into an embedded Raft journal.
// Everything but the exit code lives in internal/cli.
package main

import (
	"os"

	"github.com/zk2raft/zk2raft/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

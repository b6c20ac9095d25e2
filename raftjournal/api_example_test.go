package raftjournal_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
)

// A single-node journal embedded in a program: bootstrap it, make it the
// source of truth, then use ZooKeeper's operations on it.
func Example() {
	dir, err := os.MkdirTemp("", "journal-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cfg := raftjournal.DefaultNodeConfig()
	cfg.DataDir = dir
	cfg.NodeID = "n1"
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.Bootstrap = true
	cfg.Secret = []byte("example-cluster-secret-0123456789") // LoadSecretFile in real life
	cfg.HeartbeatTimeout = 200 * time.Millisecond
	cfg.ElectionTimeout = 200 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	node, err := raftjournal.Open(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A fresh journal shadows ZooKeeper; native writes need the primary phase.
	if err := node.SetPhase(ctx, raftjournal.PhasePrimary, false); err != nil {
		log.Fatal(err)
	}
	if _, _, err := node.Create(ctx, "/app", []byte("config"), raftjournal.ModePersistent); err != nil {
		log.Fatal(err)
	}
	for range 2 {
		p, _, err := node.Create(ctx, "/app/job-", nil, raftjournal.ModePersistentSequential)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("created", p)
	}
	st, err := node.Set(ctx, "/app", []byte("config v2"), 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version", st.Version)

	// Versions are checked as ZooKeeper checks them, with its error codes.
	_, err = node.Set(ctx, "/app", []byte("stale"), 0)
	fmt.Println("stale set:", raftjournal.CodeOf(err).String())

	data, _, err := node.Get(ctx, "/app", raftjournal.Linearizable())
	if err != nil {
		log.Fatal(err)
	}
	kids, _, _ := node.Children(ctx, "/app")
	fmt.Printf("%s %v\n", data, kids)

	// Ephemerals go with their session.
	sess, err := node.CreateSession(ctx, 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	if _, _, err := node.Create(ctx, "/app/lock", nil, raftjournal.ModeEphemeral, raftjournal.WithSession(sess)); err != nil {
		log.Fatal(err)
	}
	if err := node.CloseSession(ctx, sess); err != nil {
		log.Fatal(err)
	}
	_, exists, _ := node.Exists(ctx, "/app/lock")
	fmt.Println("lock exists after close:", exists)
	fmt.Println("nodes:", node.Status().NodeCount)
	// Output:
	// created /app/job-0000000000
	// created /app/job-0000000001
	// version 1
	// stale set: BadVersion
	// config v2 [job-0000000000 job-0000000001]
	// lock exists after close: false
	// nodes: 7
}

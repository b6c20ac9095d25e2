// Package exporter reads a live ZooKeeper ensemble into znode values.
//
// This first part holds the pieces every reader of a live ensemble needs:
//
//   - [SequentialWalk], the plain one-request-at-a-time walk over the client API. It
//     is the reference the parallel walker is measured and checked against, and what
//     `zk2raft dev digest` uses to recompute ZooKeeper's tree digest.
//   - [FourLetterWord] and [ParseDigestLog], to ask a server for its own digest log
//     (the `hash` four-letter word) and read it.
//
// # What the client API can and cannot tell
//
// A client sees the persisted stat with two changes (see package znode): cversion is
// 2·persisted − numChildren, which the walk undoes exactly, and ephemeralOwner is 0
// for container and TTL nodes, which cannot be undone from the client side. A walk
// therefore records such nodes as persistent unless the caller knows better
// ([WalkOptions.RawOwner]).
//
// # Ordering
//
// Nodes are produced parents before children, children in sorted name order, with
// no recursion on the call stack (a 500-level path costs 500 stack entries of a
// slice, not 500 frames).
package exporter

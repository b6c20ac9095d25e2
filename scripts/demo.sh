#!/usr/bin/env bash
# The local demo behind `make demo`: a real ZooKeeper ensemble, a seeded Kafka-shaped
# tree, and zk2raft's digest checked against ZooKeeper's own. Everything lives under
# ./zk2raft-demo and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/zk2raft}
DIR=${DEMO_DIR:-zk2raft-demo}
NODES=${DEMO_NODES:-100000}
SEED=${DEMO_SEED:-42}

rm -rf "$DIR"
mkdir -p "$DIR"

say() { printf '\n== %s\n' "$*"; }

say "starting a local ZooKeeper 3.8 ensemble (Debian's package) on a free loopback port"
"$BIN" dev ensemble --dir "$DIR/zk" --servers 1 >"$DIR/ensemble.addr" 2>"$DIR/ensemble.log" &
ENSEMBLE_PID=$!
trap 'kill "$ENSEMBLE_PID" 2>/dev/null; wait "$ENSEMBLE_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
	[ -s "$DIR/ensemble.addr" ] && break
	kill -0 "$ENSEMBLE_PID" 2>/dev/null || { cat "$DIR/ensemble.log" >&2; exit 1; }
	sleep 0.25
done
ZK=$(head -n1 "$DIR/ensemble.addr")
[ -n "$ZK" ] || { echo "demo: the ensemble did not start; see $DIR/ensemble.log" >&2; exit 1; }
echo "ZooKeeper serving at $ZK (data and logs in $DIR/zk)"

say "seeding a Kafka-shaped tree: $NODES nodes, seed $SEED"
"$BIN" dev seed --zk "$ZK" --profile kafka --nodes "$NODES" --seed "$SEED"

say "recomputing ZooKeeper's tree digest from the client API and comparing it with the server's hash log"
"$BIN" dev digest --zk "$ZK" --align /zk2raft-demo-align

say "done"
echo "The ensemble stops now. Export, import into the Raft journal and verify join this demo as they land."

#!/usr/bin/env bash
# Export benchmarks (issue 4), meant to be called from scripts/bench.sh.
#
#   1. BenchmarkExport: on a three-server loopback ensemble and one seeded kafka
#      tree (EXPORT_NODES, default 100k), interleaved rounds of the walker (a whole
#      export into a snapshot file), the one-request-at-a-time SequentialWalk
#      baseline, and the raw pipelined getData ceiling; prints the ratios measured
#      in the same run, requests per node and the ensemble's CPU per request.
#   2. BenchmarkExportRSS: the zk2raft binary's peak RSS at EXPORT_NODES and at
#      EXPORT_BIG_NODES (default 1M; set it to 0 to skip, it takes a while).
#
# Raw `go test -bench` output is appended to BENCH_OUT (default bench-export.out).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench-export.out}
NODES=${EXPORT_NODES:-100000}
BIG=${EXPORT_BIG_NODES:-1000000}
ROUNDS=${EXPORT_ROUNDS:-3}

run() { # regexp, benchtime, nodes
	go test -run '^$' -bench "$1" -benchtime "$2" -timeout 90m ./exporter/ -args -export.nodes="$3" | tee -a "$OUT"
}

echo "== export: walker vs sequential vs pipelined getData ceiling ($NODES-node kafka tree, $ROUNDS rounds)"
run 'BenchmarkExport$' "${ROUNDS}x" "$NODES"
echo "== export: peak RSS"
run 'BenchmarkExportRSS$' 1x "$NODES"
if [ "$BIG" -gt 0 ]; then
	run 'BenchmarkExportRSS$' 1x "$BIG"
fi
echo
grep -ho 'export \(ratios\|requests\|peak RSS\).*' "$OUT" | tail -n 4 || true

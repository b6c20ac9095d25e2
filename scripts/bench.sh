#!/usr/bin/env bash
# Runs the benchmarks behind BENCHMARKS.md and prints each target as a ratio against
# the baseline measured in the same run (the machines are shared and noisy, so only
# same-run ratios are compared). Raw `go test -bench` output is kept in bench.out.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench.out}
: >"$OUT"

bench() { # package, regexp, benchtime
	go test -run '^$' -bench "$2" -benchtime "$3" -timeout 60m "$1" | tee -a "$OUT"
}
metric() { # benchmark name prefix, unit -> value
	awk -v name="$1" -v unit="$2" '$1 ~ "^"name"(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == unit) print $i }' "$OUT" | tail -n1
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "== seeding (internal/treegen)"
bench ./internal/treegen/ 'SeedKafka100k$|SeedKafkaSequentialBaseline' 1x
echo "== snapshot format (znode)"
bench ./znode/ 'Snapshot(Write|Read)' 1s

seed=$(metric BenchmarkSeedKafka100k nodes/s)
seq=$(metric BenchmarkSeedKafkaSequentialBaseline nodes/s)
echo
echo "== ratios ($(date -u +%F), $(nproc) cores)"
printf '%-58s %10s nodes/s\n' "seed 100k kafka, pipelined (1 server)" "$seed"
printf '%-58s %10s nodes/s\n' "seed 20k kafka, one request at a time (baseline)" "$seq"
printf '%-58s %10sx\n' "pipelined / sequential" "$(ratio "$seed" "$seq")"
awk -v n="$seed" 'BEGIN { if (n > 0) printf "%-58s %10.1f s\n", "time to seed 100k nodes", 100000 / n }'

#!/usr/bin/env bash
# Runs the benchmarks behind BENCHMARKS.md and prints every target as a ratio against
# the baseline measured in the same run (the machines are shared and noisy, so only
# same-run ratios are compared). Raw `go test -bench` output is kept in $BENCH_OUT.
#
#   scripts/bench.sh [GROUP...]    groups: seed snapshot fsm raft export import verify proxy zkserver datadir rollback cutover
#                                  (default: all, which `make bench` runs)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench.out}
: >"$OUT"
groups=${*:-seed snapshot fsm raft export import verify proxy zkserver datadir rollback cutover}

bench() { # package, regexp, benchtime, extra args...
	local pkg=$1 re=$2 bt=$3
	shift 3
	go test -run '^$' -bench "$re" -benchtime "$bt" -timeout 90m "$pkg" "$@" | tee -a "$OUT"
}
metric() { # benchmark name (regexp, without -N), unit -> last value
	awk -v name="$1" -v unit="$2" '$1 ~ "^"name"(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == unit) v = $i } END { print v }' "$OUT"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
row() { printf '%-66s %12s   %s\n' "$1" "${2:-n/a}" "${3:-}"; }

for g in $groups; do
	case $g in
	seed) echo "== seed (internal/treegen)"; bench ./internal/treegen/ 'SeedKafka100k$|SeedKafkaSequentialBaseline' 1x ;;
	snapshot) echo "== snapshot format (znode)"; bench ./znode/ 'Snapshot(Write|Read)' 1s ;;
	fsm) echo "== journal state machine (raftjournal, no raft)"; bench ./raftjournal/ 'ImportBatch$|NativeCreate|SourceSetData|MemoryPerNode' 1x ;;
	raft) echo "== journal cluster (raftjournal, 3 nodes)"; bench ./raftjournal/ 'LogStore|ClusterImport|ClusterNativeWrites' 1x ;;
	export) echo "== export (exporter)"; BENCH_OUT="$OUT.export" EXPORT_BIG_NODES=${EXPORT_BIG_NODES:-0} ./scripts/bench-export.sh; cat "$OUT.export" >>"$OUT"; rm -f "$OUT.export" ;;
	import) echo "== import and migrate (importer)"; bench ./importer/ 'OfflineImport|OnlineImport|MigrateKafka' 1x ;;
	verify) echo "== verify"; bench ./verify/ 'CompareSnapshots|CompareZooKeeper|DigestOnly' 3x ;;
	proxy)
		echo "== dual-write proxy (dualwrite)"
		bench ./dualwrite/ 'Proxy$' 2x -load.dur=3s
		# Interleaved rounds (direct, tap, Go byte relay, socat), median of per-round ratios.
		bench ./dualwrite/ 'ProxyCreates$|ProxyKazoo$' 7x -load.dur=1s
		;;
	zkserver) echo "== the journal's client port vs ZooKeeper (zkserver)"; bench ./zkserver/ 'VsZooKeeper$|MemoryVsZooKeeper$' 1x ;;
	datadir)
		echo "== ZooKeeper data directory: export and tail (exporter/datadir, dualwrite)"
		bench ./exporter/datadir/ 'DatadirExport$' 1x -args -datadir.nodes="${DATADIR_NODES:-1000000}"
		bench ./exporter/datadir/ 'Load$' 1x
		bench ./dualwrite/ 'TailLag$' 1x -args -tail.rate="${TAIL_RATE:-5000}" -tail.dur="${TAIL_DUR:-20s}"
		;;
	rollback)
		echo "== reverse mirror vs the journal's native writes (reversemirror)"; bench ./reversemirror/ 'ReverseMirror$' 3x -args -rm.writes="${RM_WRITES:-30000}"
		echo "== reverse mirror: a backlog pipelined vs one multi at a time, same run"; bench ./reversemirror/ 'ReverseMirrorPipeline$' 6x -args -rm.writes="${RM_WRITES:-30000}"
		echo "== the rollback (cutover --to shadow): duration vs the cutover's, 16 sessions through the proxy"
		bench ./cutover/ 'Rollback$' 1x -args -rollback.nodes="${ROLLBACK_NODES:-100000}"
		;;
	cutover)
		echo "== the cutover's pause (cutover): 64 sessions through the proxy, baseline p99 vs the longest request across the switch"
		bench ./cutover/ 'CutoverPause$' 1x -args -cutover.nodes="${CUTOVER_NODES:-100000}"
		bench ./cutover/ 'CutoverPause$' 1x -args -cutover.nodes="${CUTOVER_NODES:-100000}" -cutover.addr-twice
		;;
	*) echo "bench.sh: unknown group $g (want seed snapshot fsm raft export import verify proxy zkserver datadir rollback cutover)" >&2; exit 2 ;;
	esac
done

echo
echo "== targets as same-run ratios ($(date -u +%F), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
for g in $groups; do
	case $g in
	seed)
		seed=$(metric BenchmarkSeedKafka100k nodes/s)
		row "seed: pipelined vs one request at a time (nodes/s ratio)" "$(ratio "$seed" "$(metric BenchmarkSeedKafkaSequentialBaseline nodes/s)")x" "100k kafka at $seed nodes/s"
		;;
	snapshot)
		row "snapshot: write, uncompressed (nodes/s)" "$(metric 'BenchmarkSnapshotWrite/zstd=false' nodes/s)"
		row "snapshot: read, uncompressed (nodes/s)" "$(metric 'BenchmarkSnapshotRead/zstd=false' nodes/s)"
		;;
	fsm)
		row "fsm: memory per node beyond the data (B)" "$(metric BenchmarkMemoryPerNode B/node)"
		;;
	raft)
		row "raft: ImportBatch vs one awaited Apply per node" "$(metric BenchmarkClusterImport x-baseline)x" "target >= 20x; $(metric BenchmarkClusterImport nodes/s) nodes/s (target >= 100k)"
		row "raft: native writes, 64 callers, journal vs 3-node ZooKeeper" "$(metric BenchmarkClusterNativeWrites x-zookeeper)x" "target >= 1x"
		;;
	export)
		row "export: walker vs sequential walk" "$(metric BenchmarkExport x-sequential)x" "target >= 5x"
		row "export: walker vs pipelined getData ceiling" "$(metric BenchmarkExport x-ceiling)x" "target >= 0.7x"
		;;
	import)
		row "import: offline 1M-node snapshot vs the 200k nodes/s target" "$(metric BenchmarkOfflineImport x-target-200k/s)x" "$(metric BenchmarkOfflineImport nodes/s) nodes/s, peak RSS $(metric BenchmarkOfflineImport peak-RSS-MiB) MiB"
		row "import: online batched vs one awaited Apply per node" "$(metric BenchmarkOnlineImport x-speedup)x" "target >= 20x"
		row "migrate: end to end vs export alone (time ratio)" "$(metric BenchmarkMigrateKafka migrate/export)" "closer to 1 is better"
		;;
	verify)
		c=$(metric 'BenchmarkCompareZooKeeper/zk-vs-snap' nodes/s)
		e=$(metric 'BenchmarkCompareZooKeeper/export' nodes/s)
		row "verify: zk vs snap compare vs export rate" "$(ratio "$c" "$e")x" "target >= 0.8x"
		row "verify: --digest-only at 100k vs at 1M nodes (ns/op ratio)" "$(ratio "$(metric 'BenchmarkDigestOnly/nodes=1000000' ns/op)" "$(metric 'BenchmarkDigestOnly/nodes=100000' ns/op)")" "constant time: about 1"
		;;
	datadir)
		row "datadir: export vs client-API export of the same tree (nodes/s ratio)" "$(metric BenchmarkDatadirExport x-client-api)x" "target >= 3x; $(metric BenchmarkDatadirExport nodes/s) vs $(metric BenchmarkDatadirExport api-nodes/s) nodes/s"
		row "datadir: export time vs a plain read of the same files" "$(metric BenchmarkDatadirExport x-raw-read)x" "plain read $(metric BenchmarkDatadirExport raw-MiB/s) MiB/s"
		row "datadir: Load of a 1M-node snapshot (nodes/s)" "$(metric BenchmarkLoad nodes/s)" "$(metric BenchmarkLoad B/node) B/node beyond the data"
		for m in logged applied; do
			b=BenchmarkTailLag/$m
			row "tail ($m): mirrored vs ZooKeeper's txn rate (1 = kept up)" "$(metric "$b" x-load)x" "$(metric "$b" zk-txns/s) txns/s (aimed at ${TAIL_RATE:-5000}); lag p50 $(metric "$b" lag-p50-ms) ms, p99 $(metric "$b" lag-p99-ms) ms, max $(metric "$b" lag-max-ms) ms; catch-up $(metric "$b" catchup-ms) ms"
		done
		row "tail: a backlog mirrored, the most it can follow (txns/s over the aim)" "$(ratio "$(metric BenchmarkTailLag/backlog backlog-txns/s)" "${TAIL_RATE:-5000}")x" "target >= 1x; $(metric BenchmarkTailLag/backlog backlog-txns/s) txns/s over a backlog of $(metric BenchmarkTailLag/backlog backlog-txns) txns"
		;;
	proxy)
		for cpu in "" -own-cpu; do
			where="the tap sharing the cores"
			[ -n "$cpu" ] && where="the tap on a CPU of its own"
			for mix in read90 write100; do
				row "proxy async$cpu, $mix: throughput through the tap vs direct" "$(metric "BenchmarkProxy/async$cpu/$mix" tap-ratio)x" "target >= 0.8x ($where); $(metric "BenchmarkProxy/async$cpu/$mix" ops/s) ops/s"
				row "proxy sync$cpu, $mix: throughput through the tap vs direct" "$(metric "BenchmarkProxy/sync$cpu/$mix" tap-ratio)x" "reported"
			done
			row "proxy async$cpu, read90: read p50 added, lightly loaded (ms)" "$(metric "BenchmarkProxy/async$cpu/read90" added-read-p50-ms)" "target <= 0.3 ms (paced at a quarter of direct); saturated: $(metric "BenchmarkProxy/async$cpu/read90" saturated-added-read-p50-ms) ms"
			row "proxy async$cpu, read90: CPU per request, the tap (us)" "$(metric "BenchmarkProxy/async$cpu/read90" tap-cpu-us/op)" "ZooKeeper's 3 servers $(metric "BenchmarkProxy/async$cpu/read90" zk-cpu-us/op) us, the 64 go-zookeeper clients $(metric "BenchmarkProxy/async$cpu/read90" client-cpu-us/op) us"
		done
		for cpu in shared own-cpu; do
			for n in 1 3000; do
				b="BenchmarkProxyCreates/$cpu/inflight=$n"
				row "proxy creates, $n in flight on one connection, $cpu: tap vs direct" "$(metric "$b" tap-ratio)x" "target >= 0.8x; Go byte relay $(metric "$b" relay-ratio)x, socat $(metric "$b" socat-ratio)x; direct $(metric "$b" direct-creates/s) creates/s; CPU per create tap $(metric "$b" tap-cpu-us/op) us, relay $(metric "$b" relay-cpu-us/op) us, socat $(metric "$b" socat-cpu-us/op) us"
			done
			for op in set get; do
				b="BenchmarkProxyKazoo/$cpu"
				row "proxy kazoo sequential $op, $cpu: p50 latency tap vs direct" "$(metric "$b" $op-p50-ratio)x" "target <= 1.2x; Go byte relay $(metric "$b" relay-$op-p50-ratio)x, socat $(metric "$b" socat-$op-p50-ratio)x; mean $(metric "$b" $op-mean-ratio)x; direct p50 $(metric "$b" direct-$op-p50-ms) ms"
			done
		done
		;;
	zkserver)
		for w in reads writes mixed; do
			row "zkserver $w: journal vs ZooKeeper, 3 vs 3, 64 sessions (ops/s ratio)" "$(metric BenchmarkVsZooKeeper $w-ratio)x" "target >= 1x (pairs $(metric BenchmarkVsZooKeeper $w-ratio-min)x..$(metric BenchmarkVsZooKeeper $w-ratio-max)x); p99 $(metric BenchmarkVsZooKeeper $w-journal-p99-us) us vs ZooKeeper's $(metric BenchmarkVsZooKeeper $w-zk-p99-us) us = $(metric BenchmarkVsZooKeeper $w-p99-ratio)x (target <= 1x)"
		done
		m=BenchmarkMemoryVsZooKeeper
		row "zkserver memory per znode: journal heap vs ZooKeeper's JVM heap" "$(ratio "$(metric $m journal-heap-B/znode)" "$(metric $m zookeeper-heap-B/znode)")x" "target < 1x; $(metric $m journal-heap-B/znode) vs $(metric $m zookeeper-heap-B/znode) B/znode"
		row "zkserver memory per watch: journal vs ZooKeeper" "$(ratio "$(metric $m journal-heap-B/watch)" "$(metric $m zookeeper-heap-B/watch)")x" "$(metric $m journal-heap-B/watch) vs $(metric $m zookeeper-heap-B/watch) B/watch; set $(metric $m journal-watches-set/s) vs $(metric $m zookeeper-watches-set/s)/s; fired $(metric $m journal-watch-events/s) vs $(metric $m zookeeper-watch-events/s)/s"
		row "zkserver memory per session: journal vs ZooKeeper" "$(ratio "$(metric $m journal-heap-B/session)" "$(metric $m zookeeper-heap-B/session)")x" "$(metric $m journal-heap-B/session) vs $(metric $m zookeeper-heap-B/session) B/session; opened $(metric $m journal-sessions/s) vs $(metric $m zookeeper-sessions/s)/s"
		;;
	rollback)
		row "reverse mirror: entries/s vs the journal's native writes/s, 64 writers" "$(metric BenchmarkReverseMirror mirror/journal)x" "target >= 1x (keeps up); $(metric BenchmarkReverseMirror mirror-entries/s) vs $(metric BenchmarkReverseMirror journal-writes/s)/s, largest outbox $(metric BenchmarkReverseMirror max-pending), drained $(metric BenchmarkReverseMirror drain-ms) ms after the load"
		row "reverse mirror: backlog applied pipelined vs one multi at a time" "$(metric BenchmarkReverseMirrorPipeline pipelined/one-at-a-time)x" "$(metric BenchmarkReverseMirrorPipeline pipelined-entries/s) vs $(metric BenchmarkReverseMirrorPipeline one-at-a-time-entries/s) entries/s (mean of 6 runs)"
		row "rollback at ${ROLLBACK_NODES:-100000} znodes: duration vs the cutover's (same run)" "$(metric BenchmarkRollback rollback/cutover)x" "rollback $(metric BenchmarkRollback rollback-s) s (rebaseline $(metric BenchmarkRollback rebaseline-s) s, $(metric BenchmarkRollback rebaseline/full-compare)x one full comparison of the same tree, targeted $(metric BenchmarkRollback targeted)), cutover $(metric BenchmarkRollback cutover-s) s; clients held $(metric BenchmarkRollback hold-ms) ms; longest request across $(metric BenchmarkRollback max-across-ms) ms vs p99 $(metric BenchmarkRollback baseline-p99-ms) ms; sessions lost $(metric BenchmarkRollback sessions-lost)"
		;;
	esac
done

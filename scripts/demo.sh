#!/usr/bin/env bash
# The local demo behind `make demo`: the main job on an embedded default. A real
# ZooKeeper ensemble, a seeded Kafka-shaped tree, `zk2raft migrate` into a fresh
# journal data dir under ./zk2raft-demo (pre-flight, export streamed straight into
# the import, verification against ZooKeeper's own digest), then a 3-node journal
# serving the result and its status; then the shadow phase (a dual-write proxy in
# front of ZooKeeper) and the cutover to primary under a client workload, checked
# against the journal. Everything lives under ./zk2raft-demo and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/zk2raft}
DIR=${DEMO_DIR:-zk2raft-demo}
NODES=${DEMO_NODES:-100000}
SEED=${DEMO_SEED:-42}

rm -rf "$DIR"
mkdir -p "$DIR"

# The cluster secret every journal node, the proxy and each zk2raft command share
# (the admin and Raft ports refuse anyone without it). Commands find it through
# the environment; it never appears on a command line.
"$BIN" journal new-secret --out "$DIR/cluster-secret" --quiet
export ZK2RAFT_CLUSTER_SECRET_FILE="$DIR/cluster-secret"
# curl reads the bearer header from a file (-H @FILE), not from its arguments.
(umask 077 && printf 'Authorization: Bearer %s\n' "$(cat "$DIR/cluster-secret")" >"$DIR/admin-header")

say() { printf '\n== %s\n' "$*"; }

PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# free_port prints a loopback TCP port nothing listens on right now.
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "demo: no free port found" >&2
	exit 1
}

# wait_line FILE PATTERN PID WHAT: wait until FILE has a line matching PATTERN.
wait_line() {
	for _ in $(seq 1 240); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || { echo "demo: $4 exited; its log:" >&2; cat "${1%.*}.log" >&2 || true; exit 1; }
		sleep 0.25
	done
	echo "demo: $4 did not come up; see ${1%.*}.log" >&2
	exit 1
}

say "starting a local ZooKeeper 3.8 ensemble (Debian's package) on a free loopback port"
"$BIN" dev ensemble --dir "$DIR/zk" --servers 1 >"$DIR/ensemble.addr" 2>"$DIR/ensemble.log" &
PIDS+=($!)
wait_line "$DIR/ensemble.addr" ":" "${PIDS[0]}" "the ensemble"
ZK=$(head -n1 "$DIR/ensemble.addr")
echo "ZooKeeper serving at $ZK (data and logs in $DIR/zk)"

say "seeding a Kafka-shaped tree: $NODES nodes, seed $SEED"
"$BIN" dev seed --zk "$ZK" --profile kafka --nodes "$NODES" --seed "$SEED"

say "aligning ZooKeeper's last zxid on a digest-log entry (it logs one every 128 zxids), so the migration can be checked against ZooKeeper's own digest"
"$BIN" dev digest --zk "$ZK" --align /zk2raft-demo-align

say "pre-flight (migrate --dry-run): what the journal cannot honour or the operator must decide"
"$BIN" migrate --zk "$ZK" --dry-run --log-level warn

P1=$(free_port)
say "migrate: the export walk streamed straight into a fresh journal in $DIR/node-1, then verified"
"$BIN" migrate --zk "$ZK" --data-dir "$DIR/node-1" --node-id node-1 --raft-addr "127.0.0.1:$P1" \
	--keep-snapshot "$DIR/export.snap" --verify full --log-level warn | tee "$DIR/migrate.out"
DIGEST=$(sed -n 's/^  digest .* journal \(-\{0,1\}[0-9]*\) over.*/\1/p' "$DIR/migrate.out")

say "a 3-node journal: node-1 serves the migrated data dir, node-2 and node-3 join it and catch up by snapshot install"
start_node() { # ID RAFT_PORT ADMIN_PORT [--join ADMIN]
	local id=$1 raft=$2 admin=$3
	shift 3
	"$BIN" serve --data-dir "$DIR/$id" --node-id "$id" --raft-addr "127.0.0.1:$raft" --admin-addr "127.0.0.1:$admin" \
		--client-addr "127.0.0.1:$(free_port)" --4lw-whitelist 'ruok,srvr,isro,hash,mntr' "$@" \
		>"$DIR/$id.out" 2>"$DIR/$id.log" &
	PIDS+=($!)
	wait_line "$DIR/$id.out" "serving" "$!" "journal node $id"
	cat "$DIR/$id.out"
}
A1=$(free_port)
start_node node-1 "$P1" "$A1"
start_node node-2 "$(free_port)" "$(free_port)" --join "127.0.0.1:$A1"
start_node node-3 "$(free_port)" "$(free_port)" --join "127.0.0.1:$A1"

# Wait until every member reports the migrated digest.
for _ in $(seq 1 240); do
	n=$("$BIN" journal status --journal "127.0.0.1:$A1" 2>/dev/null | grep -c -- " $DIGEST\$" || true)
	[ "$n" = 3 ] && break
	sleep 0.25
done

say "journal status"
"$BIN" journal status --journal "127.0.0.1:$A1"

n=$("$BIN" journal status --journal "127.0.0.1:$A1" | grep -c -- " $DIGEST\$" || true)
if [ "$n" = 3 ]; then
	echo "All 3 journal nodes hold digest $DIGEST: the tree migrate verified against ZooKeeper's export and its own digest."
else
	echo "demo: only $n of 3 journal nodes report digest $DIGEST" >&2
	exit 1
fi

say "reading the migrated tree through a journal node's ZooKeeper client port, with ZooKeeper's own zkCli.sh (read-only: the journal is in shadow)"
CLIENT2=$(sed -n 's/^zookeeper clients: //p' "$DIR/node-2.out")
zkcli() { # SERVER CMD...: one zkCli.sh command, its output lines after the connection chatter
	CLIENT_JVMFLAGS="-Xmx64m" ZOO_LOG_DIR="$DIR" /usr/share/zookeeper/bin/zkCli.sh -server "$@" 2>/dev/null | grep -v -e '^WATCHER::' -e '^WatchedEvent' -e '^$' | tail -n 1
}
J_LS=$(zkcli "$CLIENT2" ls /)
Z_LS=$(zkcli "$ZK" ls /)
echo "journal  ($CLIENT2) ls /: $J_LS"
echo "zookeeper ($ZK) ls /: $Z_LS"
echo "journal  getAllChildrenNumber /: $(zkcli "$CLIENT2" getAllChildrenNumber /)"
echo "zookeeper getAllChildrenNumber /: $(zkcli "$ZK" getAllChildrenNumber /)"
if [ -z "$J_LS" ] || [ "$J_LS" != "$Z_LS" ]; then
	echo "demo: the journal's client port lists / as $J_LS, ZooKeeper as $Z_LS" >&2
	exit 1
fi

say "cutover, shadow phase: clients go through a dual-write proxy, which mirrors every write ZooKeeper commits into the journal"
PROXY=127.0.0.1:$(free_port)
PADMIN=127.0.0.1:$(free_port)
"$BIN" proxy --listen "$PROXY" --zk "$ZK" --journal "127.0.0.1:$A1" --queue-dir "$DIR/proxy-queue" --admin-addr "$PADMIN" \
	>"$DIR/proxy.out" 2>"$DIR/proxy.log" &
PIDS+=($!)
wait_line "$DIR/proxy.out" "serving" "$!" "the proxy"
cat "$DIR/proxy.out"
echo "a service registry written by clients through the proxy ($PROXY):"
"$BIN" dev seed --zk "$PROXY" --profile registry --root /services --nodes "$((NODES / 10))" --seed "$((SEED + 1))"
# ZooKeeper writes on its own too: its container manager deletes the registry's
# emptied container nodes (about a minute after their last child went), and the
# reconciler repairs those deletes into the journal. The cutover's digest gate
# (cutover status --align) compares ZooKeeper's own digest (its hash log) with
# the journal's at ZooKeeper's latest zxid, after alignment writes through the
# proxy: O(1), no walk of the tree. A write that overtakes the alignment leaves
# it "unknown": look again until ZooKeeper holds still.
n=0 ZKDIGEST=unknown
for attempt in $(seq 1 24); do
	"$BIN" cutover status --journal "127.0.0.1:$A1" --align >"$DIR/digest-after.out" 2>>"$DIR/cutover-status.log" || true
	line=$(grep -E '^digest +pass +equal at zxid' "$DIR/digest-after.out" || true)
	if [ -n "$line" ]; then
		echo "$line"
		ZKDIGEST=$(echo "$line" | sed -n 's/.*(zookeeper \(-\{0,1\}[0-9]*\), journal.*/\1/p')
		for _ in $(seq 1 120); do
			n=$("$BIN" journal status --journal "127.0.0.1:$A1" 2>/dev/null | grep -c -- " $ZKDIGEST\$" || true)
			[ "$n" = 3 ] && break 2
			sleep 0.25
		done
	fi
	echo "(attempt $attempt: $(grep -E '^digest ' "$DIR/digest-after.out" | cut -c1-160 || echo 'no digest verdict'); ZooKeeper may have moved on, aligning again)"
	sleep 5
done
echo "proxy status: $(curl -fsS -H @"$DIR/admin-header" "http://$PADMIN/status" 2>/dev/null || echo unavailable)"
"$BIN" journal status --journal "127.0.0.1:$A1"

if [ "$n" = 3 ]; then
	echo "All 3 journal nodes hold digest $ZKDIGEST, ZooKeeper's own digest at its latest zxid after the writes through the proxy."
else
	echo "demo: only $n of 3 journal nodes report ZooKeeper's digest $ZKDIGEST after the writes through the proxy" >&2
	exit 1
fi

say "cutover to primary while clients work through the proxy ($PROXY): go-zookeeper writers with ephemerals and watchers, kazoo clients in an Election and a Lock"
# The workload's clients list the proxy twice: go-zookeeper then reconnects at
# once instead of waiting a second at the end of its list (the runbook's advice).
"$BIN" dev rehearse --zk "$PROXY,$PROXY" --verify "$CLIENT2" >"$DIR/rehearse.out" 2>"$DIR/rehearse.log" &
WPID=$!
PIDS+=("$WPID")
wait_line "$DIR/rehearse.out" "^running" "$WPID" "the rehearsal workload"
cat "$DIR/rehearse.out"
# The gates, with an alignment so that the digest is compared at ZooKeeper's
# latest zxid. The repairs gate waits until the reconciler has repaired nothing
# for a minute (ZooKeeper's container manager deleted the registry's emptied
# containers, which the reconciler repaired): wait for every gate to pass.
for attempt in $(seq 1 30); do
	if "$BIN" cutover status --journal "127.0.0.1:$A1" --align >"$DIR/cutover-status.out" 2>>"$DIR/cutover-status.log"; then
		break
	fi
	[ "$attempt" = 30 ] && { cat "$DIR/cutover-status.out"; echo "demo: the cutover gates did not pass" >&2; exit 1; }
	echo "(a gate fails: $(grep -E '^[a-z-]+ +FAIL' "$DIR/cutover-status.out" | awk '{print $1}' | xargs); looking again)"
	sleep 5
done
cat "$DIR/cutover-status.out"
echo
"$BIN" cutover --journal "127.0.0.1:$A1" --to primary --log-level warn
kill -INT "$WPID"
rc=0
wait "$WPID" || rc=$?
say "what the clients saw (checked against the journal through its ZooKeeper port, $CLIENT2)"
sed -n '2,$p' "$DIR/rehearse.out"
if [ "$rc" != 0 ]; then
	echo "demo: the rehearsal found broken promises (exit $rc); see $DIR/rehearse.log" >&2
	exit 1
fi

say "the journal is the source of truth: its tree read through a journal node's ZooKeeper port ($CLIENT2) against its own digest"
# (Clients see container and TTL nodes' owner as 0; --journal takes their raw
# owner from the journal's admin port, as ZooKeeper's digest needs it.)
"$BIN" dev digest --zk "$CLIENT2" --journal "127.0.0.1:$A1" --align /zk2raft-demo-align --log-level warn | tee "$DIR/digest-journal.out"
grep -q '^match' "$DIR/digest-journal.out" || { echo "demo: the tree read through the journal's port does not match its digest" >&2; exit 1; }
JDIGEST=$(sed -n 's/^server .*: digest \(-\{0,1\}[0-9]*\) at zxid.*/\1/p' "$DIR/digest-journal.out")
for _ in $(seq 1 120); do
	n=$("$BIN" journal status --journal "127.0.0.1:$A1" 2>/dev/null | grep -c -- " $JDIGEST\$" || true)
	[ "$n" = 3 ] && break
	sleep 0.25
done
"$BIN" journal status --journal "127.0.0.1:$A1"
if [ "$n" != 3 ]; then
	echo "demo: only $n of 3 journal nodes report digest $JDIGEST" >&2
	exit 1
fi
echo "All 3 journal nodes, now primary, hold digest $JDIGEST: the tree their clients read through the journal's ZooKeeper port."

say "done"
echo "The proxy, the journal nodes and the ensemble stop now; their data and logs stay in $DIR."

package zkserver_test

import (
	"regexp"
	"strings"
	"testing"
)

// intendedDifferences are the only ways the journal's answers may differ
// from ZooKeeper 3.8's in the differential suite, each with its reason. A
// difference rewrites both transcripts' lines it concerns to one form;
// anything it does not cover fails the suite.
var intendedDifferences = []struct {
	name, reason string
	// rewrite returns the line as compared, for a line of either side.
	rewrite func(line string) string
}{
	{
		name: "exists checks READ",
		reason: "ZooKeeper 3.8.0 (the oracle, Debian's) answers exists with the stat of a node the client " +
			"may not read; later 3.8 releases check READ there (FinalRequestProcessor in 3.8.4), and so does " +
			"the journal, so a stat never leaks past an ACL",
		rewrite: func(line string) string {
			if strings.Contains(line, " exists -> NoAuth") { // sent to the journal only
				return ""
			}
			return line
		},
	},
	{
		name: "the ephemerals of a closed session go in path order",
		reason: "ZooKeeper deletes a closed or expired session's ephemerals in its hash set's order, so " +
			"their watch events come in no defined order; the journal deletes them in path order. The " +
			"scripts compare such events as a set (side.waitUnordered)",
		rewrite: func(line string) string { return line },
	},
	{
		name: "top-level check is answered",
		reason: "ZooKeeper 3.8 sends no reply at all to a check outside a multi (it fails to serialize " +
			"SetDataResponse with a null stat; recorded in zkwire's golden top-level-check session), " +
			"which hangs the client; the journal answers with the node's stat, as 3.9 does",
		rewrite: func(line string) string {
			if strings.Contains(line, " check -> ") {
				return "" // the scripts send it to the journal only (TestTopLevelCheck checks the answer)
			}
			return line
		},
	},
}

func applyIntended(t *testing.T, zk, jn []string) ([]string, []string) {
	t.Helper()
	rw := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			for _, d := range intendedDifferences {
				l = d.rewrite(l)
			}
			if l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	return rw(zk), rw(jn)
}

// intendedFourLetterGaps are what the journal's four-letter words leave out
// of ZooKeeper 3.8's, or print differently, each with its reason
// (TestFourLetterWordsMatchZooKeeper fails on anything else). For mntr and
// the key=value words, a pattern names keys ZooKeeper prints that the
// journal does not; every key the journal prints is ZooKeeper's, with
// ZooKeeper's value type.
var intendedFourLetterGaps = []struct {
	word    string // mntr, conf, envi
	pattern *regexp.Regexp
	reason  string
}{
	{"mntr", regexp.MustCompile(`^(avg|min|max|cnt|sum|p50|p95|p99|p999)_(prep_|sync_|commit_|read_commit|write_commit|read_final|write_final|` +
		`concurrent_request|time_waiting|write_batch|session_queues|requests_in_session|reads_after_write|reads_issued|pending_session|` +
		`request_throttle|close_session_prep|local_write_committed|server_write_committed|om_|propagation|proposal|quorum_ack|` +
		`commit_propagation|[0-9]+_learner_handler|learner_request_processor)|^(prep_processor_request_queued|sync_processor_request_queued|` +
		`request_commit_queued|requests_not_forwarded_to_commit_processor|skip_learner_request_to_next_processor_count|` +
		`outstanding_changes_queued|outstanding_changes_removed|commit_count|proposal_count|request_throttle_wait_count|` +
		`throttled_ops|learner_commit_received_count|learner_proposal_received_count|stale_requests|stale_requests_dropped|stale_replies)$`),
		"ZooKeeper's request pipeline (PrepRequestProcessor, SyncRequestProcessor, CommitProcessor, FinalRequestProcessor, " +
			"proposals, learner handlers, request throttling): the journal has no such stages. Its write path is Raft's; where " +
			"writes wait is zk2raft_zkserver_write_phase_seconds and the zk2raft_raft_* series on /metrics"},
	{"mntr", regexp.MustCompile(`^(avg|min|max|cnt|sum|p50|p95|p99|p999)_(election_time|follower_sync_time|observer_sync_time|` +
		`leader_unavailable_time|unavailable_time)$|^(looking_count|quit_leading_due_to_disloyal_voter|diff_count|inflight_diff_count|` +
		`inflight_snap_count|leader_uptime|ensemble_auth_success|ensemble_auth_fail|ensemble_auth_skip|digest_mismatches_count)$`),
		"ZooKeeper's leader election, learner sync (DIFF/SNAP) and quorum authentication: the journal's membership, elections " +
			"and catch-up are hashicorp/raft's (on /metrics). digest_mismatches_count counts ZooKeeper's follower-against-leader " +
			"digest checks, which the journal does not run: every node applies the same log, and `zk2raft verify` compares digests"},
	{"mntr", regexp.MustCompile(`^(avg|min|max|cnt|sum|p50|p95|p99|p999)_(fsynctime|snapshottime|dbinittime|startup_snap_load_time|` +
		`startup_txns_load_time|startup_txns_loaded|inflight_snap_count|inflight_diff_count)$|^snap_count$`),
		"ZooKeeper's transaction log and snapshot files: the journal's Raft log and snapshots report on /metrics"},
	{"mntr", regexp.MustCompile(`^(avg|min|max|cnt|sum|p50|p95|p99|p999)_jvm_pause_time_ms$`),
		"no JVM; the Go runtime's pauses are not reported here"},
	{"mntr", regexp.MustCompile(`^(avg|min|max|cnt|sum|p50|p95|p99|p999)_(connection_token_deficit|netty_queued_buffer_capacity|` +
		`socket_closing_time)$|^(connection_drop_probability|connection_drop_count|cnxn_closed_without_zk_server_running|` +
		`sessionless_connections_expired|non_mtls_local_conn_count|non_mtls_remote_conn_count|insecure_admin_count|` +
		`tls_handshake_exceeded|unsuccessful_handshake|unrecoverable_error_count|large_requests_rejected|connection_revalidate_count|` +
		`revalidate_count|stale_sessions_expired)$`),
		"ZooKeeper's connection throttling (token bucket, drop probability), Netty buffers, admin server, large-request " +
			"throttling and learner session revalidation: not part of the journal's server, whose limits are maxClientCnxns, the " +
			"per-connection outstanding cap and jute.maxbuffer (zk_connection_rejected, zk2raft_zkserver_bad_requests_total)"},
	{"mntr", regexp.MustCompile(`^(avg|min|max|cnt|sum|p50|p95|p99|p999)_(dead_watchers_cleaner_latency|node_changed_watch_count|` +
		`node_children_watch_count|node_created_watch_count|node_deleted_watch_count)$|^(dead_watchers_queued|dead_watchers_cleared|` +
		`add_dead_watcher_stall_time|watch_bytes)$`),
		"ZooKeeper's watch manager internals (dead-watcher cleaner, per-event fan-out, bytes of its watch tables); the " +
			"journal reports zk_watch_count and zk2raft_zkserver_watches / watch_events_total"},
	{"mntr", regexp.MustCompile(`^(response_packet_cache_hits|response_packet_cache_misses|response_packet_get_children_cache_hits|` +
		`response_packet_get_children_cache_misses|response_bytes)$`),
		"ZooKeeper's cache of serialized responses, which the journal does not have"},
	{"mntr", regexp.MustCompile(`^(avg|min|max|cnt|sum|p50|p95|p99|p999)_.+_(write|read)_per_namespace$`),
		"bytes read and written per top-level namespace (ZooKeeper's per-namespace accounting), not kept"},
	{"mntr", regexp.MustCompile(`^(p50|p95|p99|p999)_(readlatency|updatelatency)$`),
		"latency quantiles are not kept for mntr (avg, min, max, cnt and sum are); the distributions are the " +
			"zk2raft_zkserver_request_seconds histograms on /metrics"},
	{"conf", regexp.MustCompile(`^(initLimit|syncLimit|electionAlg|electionPort|quorumPort|peerType|version)$`),
		"election and quorum settings are Raft's, and the membership has no reconfig version: conf lists the members as " +
			"server.<node id>=<raft address>:participant"},
	{"envi", regexp.MustCompile(`^(java\..*|os\.memory\..*)$`),
		"no JVM: envi prints go.version instead of the java.* properties, and no JVM memory figures"},
}

// fourLetterGap returns the reason ZooKeeper's key may be missing from the
// journal's output of word, or "".
func fourLetterGap(word, key string) string {
	for _, g := range intendedFourLetterGaps {
		if g.word == word && g.pattern.MatchString(key) {
			return g.reason
		}
	}
	return ""
}

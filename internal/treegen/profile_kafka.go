package treegen

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// kafkaSessions caps the sessions owning broker registrations: ZooKeeper
// allows 60 connections per client address by default.
const kafkaSessions = 8

// kafkaEpochMillis anchors the timestamps written into Kafka's JSON.
const kafkaEpochMillis = 1_700_000_000_000

// buildKafka lays out what a ZooKeeper-mode Kafka cluster (2.8–3.x) keeps,
// scaled to the node budget: brokers register ephemerals, topics dominate
// the count with one state node per partition, notifications are
// persistent sequential children with gaps where consumed ones were purged.
func buildKafka(b *builder) {
	budget := b.opts.Nodes
	brokers := min(max(3, budget/5000), 24)
	controllerEpoch := b.between(5, 40)
	topicJSON := func(topicID string, parts [][]int) []byte {
		var sb strings.Builder
		sb.WriteString(`{"partitions":{`)
		for p, rs := range parts {
			if p > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `"%d":%s`, p, intList(rs))
		}
		fmt.Fprintf(&sb, `},"topic_id":"%s","adding_replicas":{},"removing_replicas":{},"version":3}`, topicID)
		return []byte(sb.String())
	}

	b.create(b.path("cluster"), spec{})
	b.create(b.path("cluster/id"), spec{data: fmt.Appendf(nil, `{"version":"1","id":"%s"}`, b.shortID())})
	epoch := b.create(b.path("controller_epoch"), spec{data: []byte("0")})
	for e := 1; e <= controllerEpoch; e++ {
		b.setData(epoch, []byte(strconv.Itoa(e)))
	}
	b.create(b.path("brokers"), spec{})
	b.create(b.path("brokers/ids"), spec{})
	b.create(b.path("brokers/topics"), spec{})
	seqid := b.create(b.path("brokers/seqid"), spec{})
	for range b.between(0, 3) {
		b.setData(seqid, nil)
	}
	for id := 1; id <= brokers; id++ {
		host := fmt.Sprintf("kafka-%d.kafka.svc.cluster.local", id)
		b.create(b.path(fmt.Sprintf("brokers/ids/%d", id)), spec{
			kind: znode.Ephemeral, session: (id - 1) % kafkaSessions,
			data: fmt.Appendf(nil, `{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT","SSL":"SSL"},`+
				`"endpoints":["PLAINTEXT://%s:9092","SSL://%s:9093"],"rack":"zone-%c","jmx_port":9999,"port":9092,`+
				`"host":"%s","version":5,"timestamp":"%d"}`,
				host, host, 'a'+byte(id%3), host, kafkaEpochMillis+int64(b.intn(86_400_000))),
		})
	}
	b.create(b.path("controller"), spec{
		kind: znode.Ephemeral, session: 0,
		data: fmt.Appendf(nil, `{"version":2,"brokerid":1,"timestamp":"%d","kraftControllerEpoch":-1}`,
			kafkaEpochMillis+int64(b.intn(86_400_000))),
	})
	for _, p := range []string{"config", "config/topics", "config/clients", "config/users", "config/brokers", "config/ips", "admin", "admin/delete_topics"} {
		b.create(b.path(p), spec{})
	}
	b.create(b.path("config/changes"), spec{ordered: true})
	b.create(b.path("isr_change_notification"), spec{ordered: true})
	b.create(b.path("log_dir_event_notification"), spec{ordered: true})
	b.create(b.path("latest_producer_id_block"), spec{data: fmt.Appendf(nil,
		`{"version":1,"broker":%d,"block_start":"%d","block_end":"%d"}`, b.between(1, brokers), 0, 999)})
	b.create(b.path("feature"), spec{data: []byte(`{"features":{},"version":2,"status":1}`)})
	b.create(b.path("kafka-acl"), spec{})
	b.create(b.path("kafka-acl/Topic"), spec{})
	b.create(b.path("kafka-acl/Group"), spec{})
	b.create(b.path("kafka-acl-changes"), spec{ordered: true})
	b.create(b.path("consumers"), spec{})
	b.create(b.path("config/brokers/<default>"), spec{data: []byte(`{"version":1,"config":{"log.cleaner.threads":"2"}}`)})

	// Topics take 85% of the budget; consumer groups and notifications
	// the rest.
	topicBudget := budget * 85 / 100
	var topics []string
	for t := 0; b.count() < topicBudget; t++ {
		name := fmt.Sprintf("%s.%s-%d", b.pick([]string{"orders", "payments", "clicks", "logs", "metrics", "events", "users", "audit"}), b.word(6), t)
		topics = append(topics, name)
		nParts := b.pick([]string{"1", "3", "6", "12", "12", "24", "50"})
		np, _ := strconv.Atoi(nParts)
		np = min(np, max(1, (topicBudget-b.count())/2))
		rf := min(3, brokers)
		parts := make([][]int, np)
		for p := range parts {
			first := b.intn(brokers)
			for r := range rf {
				parts[p] = append(parts[p], (first+r)%brokers+1)
			}
		}
		tp := b.create(b.path("brokers/topics/"+name), spec{data: topicJSON(b.shortID(), parts)})
		b.create(tp+"/partitions", spec{})
		for p, rs := range parts {
			pp := b.create(fmt.Sprintf("%s/partitions/%d", tp, p), spec{})
			leaderEpoch := b.intn(8)
			state := func(ep int, isr []int) []byte {
				return fmt.Appendf(nil, `{"controller_epoch":%d,"leader":%d,"version":1,"leader_epoch":%d,"isr":%s}`,
					controllerEpoch, isr[0], ep, intList(isr))
			}
			sp := b.create(pp+"/state", spec{data: state(leaderEpoch, rs)})
			// Some partitions saw ISR shrinks and leader changes.
			if !b.chance(0.1) {
				continue
			}
			for range b.between(1, 3) {
				leaderEpoch++
				isr := rs[:max(1, len(rs)-b.intn(len(rs)))]
				b.setData(sp, state(leaderEpoch, isr))
			}
		}
		cfg := `{"version":1,"config":{}}`
		if b.chance(0.4) {
			cfg = fmt.Sprintf(`{"version":1,"config":{"retention.ms":"%d","cleanup.policy":"%s"}}`,
				b.between(1, 30)*86_400_000, b.pick([]string{"delete", "compact"}))
		}
		b.create(b.path("config/topics/"+name), spec{data: []byte(cfg)})
	}
	if len(topics) > 2 {
		for _, t := range topics[:1+len(topics)/50] {
			b.create(b.path("admin/delete_topics/"+t), spec{})
		}
	}

	// Notifications: created in order, the older ones purged (Kafka
	// deletes changes it has processed), leaving gaps and a persisted
	// cversion far above the child count.
	// Each notification queue is one ordered chain, so its length bounds
	// how fast the tree can be written; Kafka keeps only recent ones anyway.
	notifications := min(max(4, (budget-b.count())/20), 150)
	var changes []string
	for i := range notifications {
		entity := "topics/" + topics[i%len(topics)]
		if i%5 == 4 {
			entity = "clients/" + fmt.Sprintf("client-%d", i)
		}
		changes = append(changes, b.create(b.path("config/changes/config_change_"), spec{
			seq: true, data: fmt.Appendf(nil, `{"version":2,"entity_path":"%s"}`, entity),
		}))
		if len(changes) > 3 && b.chance(0.5) {
			b.delete(changes[0])
			changes = changes[1:]
		}
	}
	var isr []string
	for i := range notifications / 2 {
		isr = append(isr, b.create(b.path("isr_change_notification/isr_change_"), spec{
			seq: true, data: fmt.Appendf(nil, `{"version":1,"partitions":[{"topic":"%s","partition":%d}]}`, topics[i%len(topics)], i%3),
		}))
		if len(isr) > 2 && b.chance(0.6) {
			b.delete(isr[0])
			isr = isr[1:]
		}
	}
	for i := range notifications / 4 {
		b.create(b.path("kafka-acl-changes/acl_changes_"), spec{
			seq: true, data: fmt.Appendf(nil, "Topic:LITERAL:%s", topics[i%len(topics)]),
		})
	}
	for i, t := range topics {
		if i%7 == 0 {
			b.create(b.path("kafka-acl/Topic/"+t), spec{data: fmt.Appendf(nil,
				`{"version":1,"acls":[{"principal":"User:svc-%s","permissionType":"Allow","operation":"Read","host":"*"}]}`, b.word(4))})
		}
	}

	// Clients, users and per-broker overrides.
	for i := range max(2, budget/400) {
		b.create(b.path(fmt.Sprintf("config/clients/client-%d", i)), spec{data: fmt.Appendf(nil,
			`{"version":1,"config":{"producer_byte_rate":"%d","consumer_byte_rate":"%d"}}`, b.between(1, 100)<<20, b.between(1, 100)<<20)})
		b.create(b.path(fmt.Sprintf("config/users/svc-%s-%d", b.word(4), i)), spec{data: fmt.Appendf(nil,
			`{"version":2,"config":{"SCRAM-SHA-512":"salt=%s,stored_key=%s,server_key=%s,iterations=4096"}}`,
			b.shortID(), b.shortID(), b.shortID())})
	}
	for id := 1; id <= brokers; id++ {
		if id%2 == 1 {
			b.create(b.path(fmt.Sprintf("config/brokers/%d", id)), spec{data: []byte(`{"version":1,"config":{"log.retention.hours":"72"}}`)})
		}
	}

	// Old-style consumer groups fill what is left: offsets per partition.
	for g := 0; b.count() < budget; g++ {
		group := b.create(b.path(fmt.Sprintf("consumers/cg-%s-%d", b.word(5), g)), spec{})
		b.create(group+"/ids", spec{})
		b.create(group+"/owners", spec{})
		b.create(group+"/offsets", spec{})
		t := topics[b.intn(len(topics))]
		to := b.create(group+"/offsets/"+t, spec{})
		for p := range b.between(1, 12) {
			b.create(fmt.Sprintf("%s/%d", to, p), spec{data: []byte(strconv.Itoa(b.intn(10_000_000)))})
		}
	}
}

func intList(xs []int) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, x := range xs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(x))
	}
	sb.WriteByte(']')
	return sb.String()
}

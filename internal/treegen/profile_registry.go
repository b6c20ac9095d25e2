package treegen

import (
	"fmt"

	"github.com/zk2raft/zk2raft/znode"
)

// registrySessions is how many client sessions own the registry's
// ephemerals (one per simulated host process).
const registrySessions = 12

// buildRegistry lays out service discovery in the style of Curator's
// ServiceDiscovery and recipes: per service a metadata node, ephemeral
// sequential members with JSON payloads (some members left, leaving gaps),
// and container parents for locks and leader latches.
func buildRegistry(b *builder) {
	budget := b.opts.Nodes
	b.create(b.path("services"), spec{})
	b.create(b.path("locks"), spec{})
	b.create(b.path("leader"), spec{})
	for s := 0; b.count() < budget; s++ {
		name := fmt.Sprintf("%s-%s-%d", b.pick([]string{"api", "auth", "billing", "search", "cart", "notify", "geo", "media"}), b.word(4), s)
		port := b.between(8000, 9999)
		svc := b.create(b.path("services/"+name), spec{data: fmt.Appendf(nil,
			`{"name":"%s","owner":"team-%s","tier":"%s","protocol":"%s","port":%d,"healthCheck":"/healthz"}`,
			name, b.word(4), b.pick([]string{"critical", "standard", "batch"}), b.pick([]string{"http", "grpc"}), port)})
		b.create(svc+"/config", spec{data: fmt.Appendf(nil, `{"timeoutMs":%d,"retries":%d,"circuitBreaker":%t}`,
			b.between(100, 5000), b.between(0, 5), b.chance(0.5))})
		inst := b.create(svc+"/instances", spec{ordered: true})
		members := b.between(3, 40)
		var live []string
		for i := range members {
			session := b.intn(registrySessions)
			id := b.uuid()
			live = append(live, b.create(inst+"/member_", spec{
				kind: znode.Ephemeral, seq: true, session: session,
				data: fmt.Appendf(nil, `{"name":"%s","id":"%s","address":"10.%d.%d.%d","port":%d,"sslPort":null,`+
					`"payload":{"zone":"zone-%c","version":"1.%d.%d"},"registrationTimeUTC":%d,"serviceType":"DYNAMIC"}`,
					name, id, b.intn(256), b.intn(256), b.between(1, 254), port,
					'a'+byte(b.intn(3)), b.intn(20), b.intn(10), kafkaEpochMillis+int64(i)*60_000),
			}))
			// Rolling restarts: an old member leaves now and then.
			if len(live) > 2 && b.chance(0.2) {
				k := b.intn(len(live) - 1)
				b.delete(live[k])
				live = append(live[:k], live[k+1:]...)
			}
		}
		if b.chance(0.5) {
			lock := b.create(b.path("locks/"+name), spec{kind: znode.Container, ordered: true})
			for range b.between(1, 4) {
				b.create(fmt.Sprintf("%s/_c_%s-lock-", lock, b.uuid()), spec{
					kind: znode.Ephemeral, seq: true, session: b.intn(registrySessions), data: []byte("10.0.0.1"),
				})
			}
		}
		if b.chance(0.3) {
			latch := b.create(b.path("leader/"+name), spec{kind: znode.Container, ordered: true})
			for range b.between(1, 3) {
				b.create(fmt.Sprintf("%s/_c_%s-latch-", latch, b.uuid()), spec{
					kind: znode.Ephemeral, seq: true, session: b.intn(registrySessions), data: []byte{},
				})
			}
		}
	}
}

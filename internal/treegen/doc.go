// Package treegen writes deterministic, realistic or adversarial znode trees
// into a live ZooKeeper ensemble, fast, and returns the tree ZooKeeper is
// expected to hold, so exporter, importer, proxy and verifier tests can
// compare against a known truth.
//
// # Entry points
//
//	plan, err := treegen.NewPlan(treegen.Options{Profile: "kafka", Nodes: 100_000, Seed: 7, Root: "/t1"})
//	tree, err := plan.Apply(ctx, ensemble.Hosts()) // or treegen.Seed(ctx, hosts, opts)
//	defer tree.Close()                             // ends the sessions holding the ephemerals
//	for _, p := range tree.Paths() { e, _ := tree.Node(p); ... e.Data, e.ACL, e.Kind, e.TTL, e.Version ... }
//
// [NewPlan] is pure: it returns every write ([Op]) in a dependency-respecting
// order, with sequential names, versions and the resulting tree ([Plan.Model])
// predicted. [Plan.Apply] writes the plan; [Tree] is the resulting [Model]
// plus the session ids owning its ephemerals, the digest [Credential] that
// reads its protected subtree, and the write time.
//
// # Profiles
//
//   - kafka: a ZooKeeper-mode Kafka cluster. /cluster/id, /controller_epoch
//     (set once per epoch, so its version is the epoch), /controller and
//     /brokers/ids/<id> (ephemeral JSON, one session per broker, at most 8),
//     /brokers/topics/<t> with /partitions/<p>/state JSON (about one in ten
//     states rewritten after ISR changes), /brokers/seqid, /config/topics,
//     clients, users, brokers (with <default>), /admin/delete_topics,
//     /config/changes/config_change_NNNNNNNNNN, /isr_change_notification/
//     isr_change_NNNNNNNNNN and /kafka-acl-changes/acl_changes_NNNNNNNNNN
//     (persistent sequential; consumed ones deleted, leaving gaps),
//     /kafka-acl, /latest_producer_id_block, /feature, and old-style
//     /consumers/<group>/offsets/<topic>/<p> filling the rest. Intermediate
//     nodes have nil data, as Kafka creates them.
//   - registry: service discovery in Curator's style. /services/<svc> with
//     metadata JSON, /services/<svc>/config, /services/<svc>/instances/
//     member_NNNNNNNNNN (ephemeral sequential JSON members over 12 sessions,
//     some removed by rolling restarts), and container parents /locks/<svc>
//     and /leader/<svc> holding _c_<uuid>-lock-/-latch- ephemeral sequentials.
//   - config: /config/<env>/<app>/<section>[/<sub>]/<key> with small values:
//     numbers, durations, URLs, booleans, base64, raw binary, empty and nil;
//     a quarter of the keys rewritten one to three times.
//   - adversarial: one subtree per input class below, then filler (random
//     data kinds, unicode names, some ephemerals) up to Nodes. Its fixed part
//     alone is BigChildren + DeepLevels + about 200 nodes, so by default it
//     has more than 100,000 nodes whatever Nodes says.
//
// Profiles scale to Options.Nodes (nodes alive at the end, within a few
// percent for kafka, registry and config).
//
// # Input classes covered
//
// Classes are numbered as in shared/reference/prior-art.md, "Inputs that
// break tree copiers". Paths are relative to Root; [Model.WithClass] lists
// the nodes of each class.
//
//	class                      where
//	1  binary, nil vs empty    data/{nil,empty,zero-byte,all-bytes,invalid-utf8,utf8-bom,text-null,random-NN};
//	                           data/set-to-nil, set-to-empty, empty-then-nil (changed by setData);
//	                           data itself (an interior node with data)
//	2  data near 1 MiB         large/at-limit (LargestData: the request frame is exactly jute.maxbuffer),
//	                           large/one-mib-minus-1k (1,047,552 bytes, fits request and reply with margin)
//	3  100k+ children          wide/member-<uuid> × BigChildren (default 100,000; ~4.7 MiB getChildren reply)
//	4  deep path               deep/l002/l003/.../lNNN, DeepLevels (default 500) levels below Root
//	5  unicode names           unicode/<name>/<name>: CJK, Hangul, Arabic, Hebrew, Cyrillic, Greek,
//	                           Devanagari, Thai, NFC vs NFD twins (café), combining marks (also leading),
//	                           RTL override, zero-width, BOM, U+FDD0, U+F900, U+FFEF, spaces, "...",
//	                           ".hidden", punctuation, a 1000-byte and a 1200-byte name
//	6  "zookeeper" below root  zookeeper/quota (when Root is not "/"), names/zookeeper/{quota,config},
//	                           names/zookeeper/zookeeper/leaf, names/{Zookeeper,zookeeper2,zookeeper.bak}
//	7  sequential after delete sequential/seq-NNNNNNNNNN with gaps (1, 3 and 7 deleted, a plain child
//	                           takes counter 5): persisted cversion 10, 7 children; sequential/emptied
//	                           (cversion 3, no children); sequential/mixed-prefix; ephemeral/queue
//	8  ephemerals              ephemeral/e0..e5 (nil, empty, JSON, binary data) over 2 sessions,
//	                           ephemeral/queue/item-NNNNNNNNNN, container/lock/_c_<uuid>-lock-NNNNNNNNNN
//	9  container and TTL       container/with-child, container/nested/inner/leaf, container/never-used
//	                           (never had a child, so ContainerManager keeps it), container/lock;
//	                           ttl/leaf, ttl/parent/child (30 days), ttl/max-ttl (2^40−1 ms),
//	                           ttl/sequential/ttl-seq-NNNNNNNNNN (PERSISTENT_SEQUENTIAL_WITH_TTL)
//	10 ACLs                    acl/world-all, world-read, ip-localhost (+child), ip-cidr (10.0.0.0/8 r,
//	                           127.0.0.0/8 all), digest-and-world, auth-scheme, duplicates,
//	                           perms-separate, sealed (children, then setACL read-only: aversion 1),
//	                           no-read-world (children unlistable), secret/... (digest only)
//
// Classes 11–17 (nodes deleted, created or changed mid-walk, session expiry,
// connection loss, stale follower reads, throttling, jute.maxbuffer
// mismatch) are conditions of a live walk, not shapes of a tree; tests
// produce them with zktest's fault injection while a generated tree is being
// read.
//
// The protected subtree: acl/secret and everything below it, acl/auth-scheme
// and acl/no-read-world's children cannot be read (or listed) by a client
// without [Tree.Credential]: ZooKeeper answers NOAUTH. [Expected.Protected]
// marks them. Every generator session authenticates with that credential so
// it can build them.
//
// # Determinism
//
// All randomness comes from one PCG generator seeded with Options.Seed and
// is drawn in plan order, so the same Options give the same plan byte for
// byte ([Plan.Fingerprint]), and different seeds give different plans. What
// ZooKeeper decides at run time — zxids, times, session ids — is not part of
// the model; everything else is: data, stored ACLs, kind and TTL, sequential
// names, versions, ACL versions, persisted cversions and child counts.
//
// # Ordering
//
// Every op has at most one predecessor ([Op.After]), so the dependencies are
// a forest and Apply can run any ready op:
//
//   - a create follows its parent's create;
//   - under an "ordered" parent, every create, delete and the parent's own
//     setData/setACL form one chain in plan order. Parents with sequential
//     children are ordered, which makes ZooKeeper's names (prefix +
//     %010d of the parent's persisted cversion) predictable, and a parent
//     whose ACL is later narrowed is ordered so its children come first;
//   - setData and setACL of a node follow the node's previous op and carry
//     the expected version as their condition;
//   - only leaves untouched since their create are deleted.
//
// Apply replays the plan through [Plan.Model] before writing, which checks
// every one of these rules and every predicted sequential name.
//
// # Speed
//
// Apply keeps Options.Concurrency requests (default 256) in flight from a
// fixed pool of workers over Options.Conns connections (default 8;
// go-zookeeper pipelines concurrent requests on one connection and matches
// replies by xid). Ephemerals go over their owners' sessions. Among ready
// ops the scheduler picks the one with the longest chain still behind it, so
// a 500-level path or a sequential queue overlaps with wide fan-outs instead
// of waiting behind them. Creates are single requests, so every node gets its
// own zxid as in a real tree; MultiBatch > 1 packs plain persistent creates
// into multi requests instead (shared zxids, fewer round trips).
//
// BenchmarkSeedKafka100k measured, on a shared two-CPU VM with zktest's
// ensembles (go test -run '^$' -bench SeedKafka100k -benchtime 1x): the
// 100k-node kafka tree (about 111k ops) in 4.5–5.5 s on a single server,
// 19–22k nodes/s (9–15k when other jobs loaded the machine), and in 10–15 s
// on three servers, 7–10k nodes/s, where three JVMs share the two CPUs. The
// client itself used about 2.5 s of CPU for the single-server run. The
// adversarial profile at default size (100,707 nodes) wrote in about 7.6 s.
//
// # ZooKeeper facts the package relies on (3.8.0, checked by its tests)
//
//   - Data nil (go-zookeeper sends length −1) is stored as null and read back
//     as length −1 (go-zookeeper returns nil); empty data (length 0) reads
//     back as empty. Both show dataLength 0. setData(nil) stores null again.
//     Both survive a restart, from the transaction log and from a snapshot.
//   - A create's whole request frame must be at most jute.maxbuffer
//     (1,048,575) bytes; see [LargestData]. The at-limit node also works
//     through a follower of a three-server ensemble. Its getData reply is
//     larger than 1,048,575 bytes, which the Java client refuses at default
//     settings; go-zookeeper reads it (Apply's sessions take replies up to
//     zkclient.DefaultMaxReplyFrame, 64 MiB).
//   - An "auth" ACL entry is stored as the session's digest identities (ip
//     identities do not count); exact duplicate entries are dropped. "sasl"
//     and "x509" entries are refused with InvalidACL by a server without
//     those providers, so the tree has none.
//   - A TTL create is checked for extended types before its parent, so a
//     TTL create under a missing parent is a side-effect-free probe:
//     NONODE with extended types, UNIMPLEMENTED (−6, which go-zookeeper
//     reports as "unknown error: -6") without. Without extended types Apply
//     drops the TTL nodes (all under ttl/, whose persistent parent then has
//     no children) and says so in [Tree.ExtendedTypes].
//   - Containers and TTL nodes show ephemeralOwner 0 to clients, so their
//     kind can only be checked from ZooKeeper's snapshot or log; ephemerals
//     show their session id ([Expected.RawOwner] gives the raw value of
//     every kind).
//
// # Dependencies
//
// Unlike the layout table in DESIGN.md (which lists znode only), treegen
// imports go-zookeeper and x/sync: it is a client of the ensemble it fills
// (and zkclient, whose Guard bounds its connections' replies).
// It is meant for tests, benchmarks and demo tooling, never for the
// migration path itself.
package treegen

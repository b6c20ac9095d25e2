package importer

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// Severity says what a pre-flight finding means for the migration.
type Severity uint8

// The severities.
const (
	// Info is worth knowing and needs no decision.
	Info Severity = iota
	// Warning is something the journal does differently from ZooKeeper, or
	// cannot know, that the operator should have decided on.
	Warning
	// Blocker is something the journal cannot honour: the migration is
	// refused unless the operator accepts the finding's kind (--accept KIND).
	Blocker
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Blocker:
		return "blocker"
	}
	return fmt.Sprintf("Severity(%d)", uint8(s))
}

// MarshalText renders the severity as String does.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// The kinds of pre-flight findings.
const (
	KindUnreadable       = "unreadable"         // subtrees the credentials could not read (NoAuth)
	KindACLMasked        = "acl-masked"         // ACLs ZooKeeper masked (digest:user:x): the credentials lack ADMIN
	KindUnknownACLScheme = "unknown-acl-scheme" // ACL schemes the journal cannot authenticate
	KindForeignMigration = "foreign-migration"  // another migration's control znode
	KindContainerTTL     = "container-ttl"      // container and TTL nodes
	KindLargeData        = "large-data"         // data near or over jute.maxbuffer
	KindACLSchemes       = "acl-schemes"        // which schemes guard the tree
	KindAuthProviders    = "auth-providers"     // schemes that need an authentication provider
	KindIPACL            = "ip-acl"             // ip: ACL entries, which the dual-write proxy cannot honour
	KindEphemerals       = "ephemerals"         // ephemeral nodes and their sessions
	KindSequence         = "sequence-counter"   // sequential counters near 2^31
	KindControlZnode     = "control-znode"      // znodes tools use for control
	KindQuota            = "quota"              // quotas under /zookeeper/quota
	KindSourceRoute      = "source-route"       // what the route the copy came by keeps
)

// DefaultJuteMaxBuffer is ZooKeeper's default jute.maxbuffer (1 MiB − 1).
const DefaultJuteMaxBuffer = 1<<20 - 1

// maxIPListed caps the paths the ip-acl finding names: every one up to it,
// however small MaxListed is, since each is a node whose clients the
// dual-write proxy would lock out.
const maxIPListed = 10_000

// sequenceWarnAt is the persisted cversion from which a parent's sequential
// counter is reported: 2^24 creates short of wrapping to negative names.
const sequenceWarnAt = math.MaxInt32 - 1<<24

// PreflightConfig configures a pre-flight check.
type PreflightConfig struct {
	// RawOwners says the stream carries raw ephemeralOwner values (read from
	// ZooKeeper's own files); a client-API walk sees 0 for containers and TTLs.
	RawOwners bool
	// ExtendedTypes says the source runs with zookeeper.extendedTypesEnabled
	// (TTL nodes possible), when known.
	ExtendedTypes bool
	// JuteMaxBuffer is the source's jute.maxbuffer (0: the default).
	JuteMaxBuffer int
	// Accept lists finding kinds the operator has decided on: blockers of
	// those kinds are reported as warnings.
	Accept []string
	// MaxListed caps the example paths per finding (0: 10).
	MaxListed int
}

// Finding is one thing the pre-flight reports.
type Finding struct {
	Kind     string   `json:"kind"`
	Severity Severity `json:"severity"`
	Count    int64    `json:"count"`
	Summary  string   `json:"summary"`
	// Meaning says what it means for the journal and what to do.
	Meaning  string   `json:"meaning,omitempty"`
	Paths    []string `json:"paths,omitempty"`
	Accepted bool     `json:"accepted,omitempty"` // a blocker the operator accepted
}

// Preflight inspects a node stream for what the journal cannot honour or the
// operator must decide. It is an exporter.Sink; feed it the same stream the
// import gets (or a dry-run walk). It holds counters and a few example paths,
// never the tree.
type Preflight struct {
	cfg PreflightConfig

	nodes, dataBytes int64
	kinds            [4]int64 // by znode.EphemeralType
	kindPaths        [4][]string
	sessions         map[int64]int64 // ephemeral owner → ephemerals
	large            int64
	overLimit        int64
	largePaths       []string
	largest          int
	schemes          map[string]int64 // ACL scheme → nodes using it
	schemePaths      map[string][]string
	ipNodes          int64
	ipPaths          []string // "path (ip:ID, …)"
	seq              int64
	seqPaths         []string
	recipeParents    map[string]struct{} // parents of Curator protected-mode children
	control          map[string][]string // kind → paths
	extra            []Finding
}

const maxSessionsTracked = 1 << 16

// NewPreflight returns an empty pre-flight check.
func NewPreflight(cfg PreflightConfig) *Preflight {
	if cfg.JuteMaxBuffer <= 0 {
		cfg.JuteMaxBuffer = DefaultJuteMaxBuffer
	}
	if cfg.MaxListed <= 0 {
		cfg.MaxListed = 10
	}
	return &Preflight{
		cfg: cfg, sessions: make(map[int64]int64), schemes: make(map[string]int64),
		schemePaths: make(map[string][]string), recipeParents: make(map[string]struct{}),
		control: make(map[string][]string),
	}
}

func (p *Preflight) list(l []string, path string) []string {
	if len(l) < p.cfg.MaxListed {
		return append(l, path)
	}
	return l
}

// WriteNode inspects one node.
func (p *Preflight) WriteNode(n *znode.Node) error {
	p.nodes++
	p.dataBytes += int64(len(n.Data))
	k := znode.EphemeralTypeOf(n.Stat.EphemeralOwner, p.cfg.ExtendedTypes || p.cfg.RawOwners)
	if int(k) < len(p.kinds) {
		p.kinds[k]++
		if k != znode.Persistent {
			p.kindPaths[k] = p.list(p.kindPaths[k], n.Path)
		}
	}
	if k == znode.Ephemeral {
		if _, ok := p.sessions[n.Stat.EphemeralOwner]; ok || len(p.sessions) < maxSessionsTracked {
			p.sessions[n.Stat.EphemeralOwner]++
		}
	}
	if size := len(n.Data); size >= p.cfg.JuteMaxBuffer*9/10 {
		p.large++
		if size > p.cfg.JuteMaxBuffer {
			p.overLimit++
		}
		p.largest = max(p.largest, size)
		p.largePaths = p.list(p.largePaths, fmt.Sprintf("%s (%d bytes)", n.Path, size))
	}
	var ips []string
	for _, a := range n.ACL {
		if a.ID.Scheme == "ip" {
			ips = append(ips, "ip:"+a.ID.ID)
		}
	}
	if len(ips) > 0 {
		p.ipNodes++
		if len(p.ipPaths) < maxIPListed {
			p.ipPaths = append(p.ipPaths, fmt.Sprintf("%s (%s)", n.Path, strings.Join(ips, ", ")))
		}
	}
	seen := ""
	for _, a := range n.ACL {
		if a.ID.Scheme == seen {
			continue
		}
		seen = a.ID.Scheme
		p.schemes[a.ID.Scheme]++
		p.schemePaths[a.ID.Scheme] = p.list(p.schemePaths[a.ID.Scheme], n.Path)
	}
	if n.Stat.Cversion >= sequenceWarnAt {
		p.seq++
		p.seqPaths = p.list(p.seqPaths, fmt.Sprintf("%s (cversion %d)", n.Path, n.Stat.Cversion))
	}
	if name := znode.Base(n.Path); strings.HasPrefix(name, "_c_") {
		if len(p.recipeParents) < maxSessionsTracked {
			p.recipeParents[znode.Parent(n.Path)] = struct{}{}
		}
	}
	switch {
	case n.Path == "/migration":
		p.control[KindForeignMigration] = append(p.control[KindForeignMigration], n.Path)
	case n.Path == "/zk2raft" || strings.HasPrefix(n.Path, "/zk2raft-") || strings.HasPrefix(n.Path, "/zk2raft/"):
		p.control[KindControlZnode] = p.list(p.control[KindControlZnode], n.Path)
	}
	return nil
}

// ObserveZxid is part of exporter.Sink.
func (p *Preflight) ObserveZxid(int64) {}

// AddUnreadable records subtrees a walk could not read (NoAuth): count nodes,
// the first of them listed. Nodes whose ACL came back masked are not among
// them (AddACLMasked): they are in the export, their subtrees too.
func (p *Preflight) AddUnreadable(count int64, paths []string) {
	if count == 0 {
		return
	}
	p.extra = append(p.extra, Finding{
		Kind: KindUnreadable, Severity: Blocker, Count: count,
		Summary: fmt.Sprintf("%d node(s) could not be read with the given credentials (NoAuth); their subtrees are not in the export", count),
		Meaning: "the journal would be missing those subtrees: pass credentials that can read them (--auth digest:USER:PASSWORD), or accept a partial copy with --accept unreadable",
		Paths:   first(paths, p.cfg.MaxListed),
	})
}

// AddACLMasked records nodes whose ACL ZooKeeper masked because the
// credentials lack ADMIN on them (exporter.Summary.ACLMasked): count nodes,
// the first of them listed. It is a blocker of its own kind, so that accepting
// a partial copy (KindUnreadable) does not also accept ACLs that would lock
// clients out: each masked entry reads digest:user:x, which no password
// hashes to.
func (p *Preflight) AddACLMasked(count int64, paths []string) {
	if count == 0 {
		return
	}
	p.extra = append(p.extra, Finding{
		Kind: KindACLMasked, Severity: Blocker, Count: count,
		Summary: fmt.Sprintf("%d node(s) came back with their ACL masked (digest:USER:x): the credentials lack ADMIN on them", count),
		Meaning: "the export holds the masked ACL, not the real one; copied as is, its digest entries match no identity, so only super (and the ACL's other entries) would get into those nodes: " +
			"pass credentials with ADMIN on them (--auth digest:USER:PASSWORD) or super, or copy the masked ACLs anyway with --accept acl-masked",
		Paths: first(paths, p.cfg.MaxListed),
	})
}

// AddQuotas records quotas found under /zookeeper/quota (exports leave
// /zookeeper out).
func (p *Preflight) AddQuotas(paths []string) {
	if len(paths) == 0 {
		return
	}
	p.extra = append(p.extra, Finding{
		Kind: KindQuota, Severity: Warning, Count: int64(len(paths)),
		Summary: fmt.Sprintf("%d quota(s) set under /zookeeper/quota", len(paths)),
		Meaning: "exports leave /zookeeper out and the journal does not enforce quotas: set them again (setquota) if the journal's clients rely on them",
		Paths:   first(paths, p.cfg.MaxListed),
	})
}

// Add records a finding made elsewhere.
func (p *Preflight) Add(f Finding) { p.extra = append(p.extra, f) }

func first(l []string, n int) []string {
	if len(l) > n {
		return slices.Clone(l[:n])
	}
	return slices.Clone(l)
}

// knownSchemes are the ACL schemes the journal understands.
var knownSchemes = map[string]bool{"world": true, "digest": true, "ip": true, "x509": true, "sasl": true, "super": true}

// PreflightReport is the outcome of a pre-flight check.
type PreflightReport struct {
	Source    string    `json:"source,omitempty"`
	Nodes     int64     `json:"nodes"`
	DataBytes int64     `json:"data_bytes"`
	Findings  []Finding `json:"findings"`
	Blockers  int       `json:"blockers"`
	Warnings  int       `json:"warnings"`
}

// OK reports whether nothing blocks the migration.
func (r *PreflightReport) OK() bool { return r.Blockers == 0 }

// Report summarizes the findings, blockers first.
func (p *Preflight) Report() *PreflightReport {
	r := &PreflightReport{Nodes: p.nodes, DataBytes: p.dataBytes}
	add := func(f Finding) { r.Findings = append(r.Findings, f) }
	for _, f := range p.extra {
		add(f)
	}
	if paths := p.control[KindForeignMigration]; len(paths) > 0 {
		add(Finding{Kind: KindForeignMigration, Severity: Blocker, Count: int64(len(paths)),
			Summary: "/migration exists: Kafka's ZooKeeper-to-KRaft migration (KIP-866) keeps its state there",
			Meaning: "a Kafka controller may be dual-writing to this ensemble, fenced by /migration's version; moving the ensemble underneath it must be coordinated with that migration (--accept foreign-migration once it is finished or stopped)",
			Paths:   paths})
	}
	var unknown []string
	for s := range p.schemes {
		if !knownSchemes[s] {
			unknown = append(unknown, s)
		}
	}
	slices.Sort(unknown)
	if len(unknown) > 0 {
		var n int64
		var paths []string
		for _, s := range unknown {
			n += p.schemes[s]
			paths = append(paths, p.schemePaths[s]...)
		}
		add(Finding{Kind: KindUnknownACLScheme, Severity: Blocker, Count: n,
			Summary: fmt.Sprintf("%d node(s) have ACL entries of scheme(s) the journal does not know: %s", n, strings.Join(unknown, ", ")),
			Meaning: "the ACLs are copied verbatim, but no client of the journal can authenticate as those identities: the nodes would be reachable only where other entries allow (--accept unknown-acl-scheme to copy them anyway)",
			Paths:   first(paths, p.cfg.MaxListed)})
	}
	add(p.routeFinding())
	if c, t := p.kinds[znode.Container], p.kinds[znode.TTL]; c+t > 0 {
		f := Finding{Kind: KindContainerTTL, Severity: Warning, Count: c + t,
			Summary: fmt.Sprintf("%d container and %d TTL node(s)", c, t),
			Meaning: "they are copied with their raw ephemeralOwner, so the journal deletes empty containers and expired TTL nodes as ZooKeeper does once it is primary; clients see ephemeralOwner 0 for them, as from ZooKeeper",
			Paths:   first(append(slices.Clone(p.kindPaths[znode.Container]), p.kindPaths[znode.TTL]...), p.cfg.MaxListed)}
		if p.cfg.RawOwners {
			// Read from ZooKeeper's own files: nothing to decide.
			f.Severity = Info
		}
		add(f)
	} else if !p.cfg.RawOwners {
		parents := slices.Sorted(maps.Keys(p.recipeParents))
		f := Finding{Kind: KindContainerTTL, Severity: Warning, Count: int64(len(parents)),
			Summary: "container and TTL nodes cannot be told from persistent ones through the client API (ZooKeeper shows them ephemeralOwner 0)",
			Meaning: "the export records them as persistent, so the journal will never delete an empty container or an expired TTL node; that matters where an application relies on the clean-up (Curator locks, leader latches, TTL'd registrations). " +
				"Export from ZooKeeper's data directory to keep their raw owners, or accept that they stay",
		}
		if len(parents) > 0 {
			f.Summary += fmt.Sprintf("; %d parent(s) of Curator protected-mode children (_c_…) are likely containers", len(parents))
			f.Paths = first(parents, p.cfg.MaxListed)
		} else if !p.cfg.ExtendedTypes {
			f.Severity = Info
		}
		add(f)
	}
	if p.large > 0 {
		f := Finding{Kind: KindLargeData, Severity: Warning, Count: p.large,
			Summary: fmt.Sprintf("%d node(s) with data within 10%% of jute.maxbuffer (%d bytes); the largest holds %d bytes", p.large, p.cfg.JuteMaxBuffer, p.largest),
			Meaning: "the journal stores them, but a client reading them needs a receive buffer above jute.maxbuffer (the Java client refuses replies over it at default settings), as with ZooKeeper",
			Paths:   p.largePaths}
		if p.overLimit > 0 {
			f.Summary += fmt.Sprintf("; %d exceed it (the source runs with a larger jute.maxbuffer)", p.overLimit)
		}
		add(f)
	}
	if len(p.sessions) > 0 {
		owners := slices.Collect(maps.Keys(p.sessions))
		slices.SortFunc(owners, func(a, b int64) int { return int(p.sessions[b] - p.sessions[a]) })
		var top []string
		for _, o := range owners[:min(len(owners), p.cfg.MaxListed)] {
			top = append(top, fmt.Sprintf("0x%x (%d)", uint64(o), p.sessions[o]))
		}
		add(Finding{Kind: KindEphemerals, Severity: Warning, Count: p.kinds[znode.Ephemeral],
			Summary: fmt.Sprintf("%d ephemeral node(s) owned by %d ZooKeeper session(s): %s", p.kinds[znode.Ephemeral], len(p.sessions), strings.Join(top, ", ")),
			Meaning: "they are copied with their owner's session id, which the journal does not have: while ZooKeeper is the source of truth they follow ZooKeeper; when the journal becomes primary it adopts those sessions, and their ephemerals go away unless the clients reconnect to the journal within the session timeout",
			Paths:   p.kindPaths[znode.Ephemeral]})
	}
	if p.seq > 0 {
		add(Finding{Kind: KindSequence, Severity: Warning, Count: p.seq,
			Summary: fmt.Sprintf("%d parent(s) whose sequential counter (persisted cversion) is within 2^24 of 2^31", p.seq),
			Meaning: "the counter is copied verbatim and keeps counting in the journal; past 2^31−1 sequential names turn negative, in the journal as in ZooKeeper",
			Paths:   p.seqPaths})
	}
	if len(p.schemes) > 0 {
		names := slices.Sorted(maps.Keys(p.schemes))
		var parts []string
		for _, s := range names {
			parts = append(parts, fmt.Sprintf("%s %d", s, p.schemes[s]))
		}
		add(Finding{Kind: KindACLSchemes, Severity: Info, Count: int64(len(names)),
			Summary: "nodes per ACL scheme: " + strings.Join(parts, ", "),
			Meaning: "ACL lists are copied verbatim (digest hashes included)"})
		var need []string
		for _, s := range []string{"x509", "sasl"} {
			if p.schemes[s] > 0 {
				need = append(need, s)
			}
		}
		if len(need) > 0 {
			var paths []string
			for _, s := range need {
				paths = append(paths, p.schemePaths[s]...)
			}
			add(Finding{Kind: KindAuthProviders, Severity: Warning, Count: int64(len(need)),
				Summary: "ACL entries of scheme(s) that depend on how clients connect: " + strings.Join(need, ", "),
				Meaning: "x509 and sasl identities need the same authentication set up on the journal's client port",
				Paths:   first(paths, p.cfg.MaxListed)})
		}
	}
	if p.ipNodes > 0 {
		f := Finding{Kind: KindIPACL, Severity: Blocker, Count: p.ipNodes,
			Summary: fmt.Sprintf("%d node(s) have ip: ACL entries, which the dual-write proxy cannot honour", p.ipNodes),
			Meaning: "ZooKeeper checks an ip: entry against the address of the connection it sees, and through the dual-write proxy (zk2raft proxy, serve --proxy-addr) that is the proxy's: " +
				"a client an ip: entry admits when it connects directly is refused through the proxy (NoAuth), and an entry naming the proxy's address would admit every client of the proxy. " +
				"Before the proxy phase, replace those entries with digest, x509 or sasl identities; or keep the clients that rely on them connected to ZooKeeper directly during the shadow phase " +
				"(their writes then reach the journal through the reconciler, not the proxy) and accept with --accept ip-acl. The journal's own client port sees client addresses, so the entries work again after the cutover for clients that connect to it directly",
			Paths: p.ipPaths}
		if p.ipNodes > int64(len(p.ipPaths)) {
			f.Summary += fmt.Sprintf(" (the first %d are listed)", len(p.ipPaths))
		}
		add(f)
	}
	if paths := p.control[KindControlZnode]; len(paths) > 0 {
		add(Finding{Kind: KindControlZnode, Severity: Info, Count: int64(len(paths)),
			Summary: "zk2raft's own scratch znodes (dev digest --align and similar) are in the tree",
			Meaning: "they are copied like any node; delete them from ZooKeeper first if they are not wanted",
			Paths:   paths})
	}
	accepted := make(map[string]bool)
	for _, k := range p.cfg.Accept {
		accepted[k] = true
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.Severity == Blocker && accepted[f.Kind] {
			f.Severity, f.Accepted = Warning, true
		}
		switch f.Severity {
		case Blocker:
			r.Blockers++
		case Warning:
			r.Warnings++
		}
	}
	slices.SortStableFunc(r.Findings, func(a, b Finding) int { return int(b.Severity) - int(a.Severity) })
	return r
}

// routeFinding says what the route the stream came by keeps, and what it
// cannot.
func (p *Preflight) routeFinding() Finding {
	if p.cfg.RawOwners {
		return Finding{Kind: KindSourceRoute, Severity: Info,
			Summary: "copied from a ZooKeeper server's data directory (snapshot and transaction logs)",
			Meaning: "the tree is ZooKeeper's exactly at one zxid, proven by the digest ZooKeeper logged there; every node keeps its raw ephemeralOwner " +
				"(containers and TTL nodes stay containers and TTL nodes, ephemerals keep their session), ACLs come from ZooKeeper's own cache (no credentials, nothing masked), " +
				"sessions with their timeouts are in the export; for the shadow phase `zk2raft tail` mirrors the same server's log from that zxid on, " +
				"writes that bypass any proxy, session expiries and ZooKeeper's own container and TTL clean-up included"}
	}
	return Finding{Kind: KindSourceRoute, Severity: Info,
		Summary: "copied through the client API (a live walk)",
		Meaning: "each node is read at its own zxid (the mirror replays what changed meanwhile); containers and TTL nodes read as persistent (ephemeralOwner 0), " +
			"ACLs as the credentials may see them (masked without ADMIN), sessions are not exported; export --from-datadir keeps all of these, " +
			"and `zk2raft tail` shadows without re-pointing clients, where the proxy sees only the writes sent through it"}
}

// AcceptableKinds are the kinds --accept may name.
func AcceptableKinds() []string {
	return []string{KindUnreadable, KindACLMasked, KindUnknownACLScheme, KindForeignMigration, KindIPACL}
}

// WriteText writes the report for a terminal.
func (r *PreflightReport) WriteText(w io.Writer) error {
	var b strings.Builder
	src := ""
	if r.Source != "" {
		src = " in " + r.Source
	}
	fmt.Fprintf(&b, "pre-flight: %d nodes, %d bytes of data%s\n", r.Nodes, r.DataBytes, src)
	for _, f := range r.Findings {
		sev := strings.ToUpper(f.Severity.String())
		if f.Accepted {
			sev += " (accepted)"
		}
		fmt.Fprintf(&b, "  %-8s %s: %s\n", sev, f.Kind, f.Summary)
		if f.Meaning != "" {
			fmt.Fprintf(&b, "           what it means: %s\n", f.Meaning)
		}
		if len(f.Paths) > 0 {
			more := ""
			if f.Count > int64(len(f.Paths)) && f.Kind != KindACLSchemes && f.Kind != KindAuthProviders && f.Kind != KindIPACL {
				more = fmt.Sprintf(" (first %d)", len(f.Paths))
			}
			fmt.Fprintf(&b, "           paths%s: %s\n", more, strings.Join(f.Paths, ", "))
		}
	}
	verdict := "nothing blocks the migration"
	if r.Blockers > 0 {
		verdict = "the migration is refused until they are resolved or accepted (--accept KIND)"
	}
	fmt.Fprintf(&b, "pre-flight: %d blocker(s), %d warning(s): %s\n", r.Blockers, r.Warnings, verdict)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *PreflightReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

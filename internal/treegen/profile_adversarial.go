package treegen

import (
	"fmt"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// adversarialSessions is how many sessions own the adversarial ephemerals.
const adversarialSessions = 2

// unicodeNames are node names a copier must carry byte for byte. Every one
// passes the server's path rules (znode.ValidatePath) and go-zookeeper's
// client-side check; nothing outside the Basic Multilingual Plane (no
// emoji), because Java sees those as surrogates, which the server rejects.
var unicodeNames = []string{
	"配置", "服务器列表", "日本語のノード", "한국어",
	"خادم", "مرحبا بالعالم", "שרת", "сервер", "Ωμέγα", "सर्वर", "ไทย",
	"café",       // precomposed é (U+00E9)
	"cafe\u0301", // e + combining acute: same text after NFC, another name
	"a\u0308\u0301\u0323",
	"\u0301leading-combining-mark",
	"rtl\u202eoverride", "zero\u200bwidth", "\u200d",
	"nbsp\u00a0", "\u00ff", "\ufeffbom", "\ufdd0noncharacter",
	"\uf900after-private-use", "\uffefbelow-specials", "ＡＢＣ", "½™",
	" leading space", "trailing space ", "...", ".hidden", "a.b",
	"colon:name", "at@sign", "percent%2F", "star*", "question?", "hash#",
	`back\slash`, `quote"`, "apos'", "brackets[0]", "braces{x}", "pipe|", "<angle>",
	"0000000001", "-", "_",
	strings.Repeat("x", 1000),
	strings.Repeat("字", 400),
}

// buildAdversarial builds one subtree per input class (see doc.go for the
// table), then fills any remaining node budget with a random mix.
func buildAdversarial(b *builder) {
	cls := Classes

	// Class 1: binary data, nil vs empty, interior data.
	c1 := cls(ClassBinaryData)
	d := b.create(b.path("data"), spec{data: []byte{0, 1, 2, 0xff}, classes: c1}) // interior node with data
	b.create(d+"/nil", spec{data: nil, classes: c1})
	b.create(d+"/empty", spec{data: []byte{}, classes: c1})
	b.create(d+"/zero-byte", spec{data: []byte{0}, classes: c1})
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	b.create(d+"/all-bytes", spec{data: all, classes: c1})
	b.create(d+"/invalid-utf8", spec{data: []byte{0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xf8, 0x88, 0x80, 0x80, 0x80}, classes: c1})
	b.create(d+"/utf8-bom", spec{data: []byte("\ufeff{\"k\":\"v\"}"), classes: c1})
	b.create(d+"/text-null", spec{data: []byte("null"), classes: c1})
	setNil := b.create(d+"/set-to-nil", spec{data: []byte("was here"), classes: c1})
	b.setData(setNil, nil)
	setEmpty := b.create(d+"/set-to-empty", spec{data: nil, classes: c1})
	b.setData(setEmpty, []byte{})
	emptyToNil := b.create(d+"/empty-then-nil", spec{data: []byte{}, classes: c1})
	b.setData(emptyToNil, nil)
	for i := range 16 {
		b.create(fmt.Sprintf("%s/random-%02d", d, i), spec{data: b.bytes(b.between(1, 4096)), classes: c1})
	}

	// Class 2: data near jute.maxbuffer.
	c2 := cls(ClassLargeData)
	large := b.create(b.path("large"), spec{classes: c2})
	limit := large + "/at-limit"
	b.create(limit, spec{data: b.bytes(LargestData(limit, znode.WorldAnyone(), JuteMaxBuffer)), classes: c2})
	b.create(large+"/one-mib-minus-1k", spec{data: []byte(strings.Repeat("0123456789abcdef", OneMiBMinus1KiB/16)), classes: c2})

	// Class 3: one node with BigChildren children, names as long as UUIDs
	// so that a getChildren reply is several MiB.
	c3 := cls(ClassManyChildren)
	wide := b.create(b.path("wide"), spec{classes: c3})
	for i := range b.opts.BigChildren {
		var data []byte
		if i%1000 == 0 {
			data = fmt.Appendf(nil, `{"i":%d}`, i)
		}
		b.create(wide+"/member-"+b.uuid(), spec{data: data, classes: c3})
	}

	// Class 4: a path DeepLevels levels below the root, data on some levels.
	c4 := cls(ClassDeepPath)
	p := b.create(b.path("deep"), spec{classes: c4})
	for level := 2; level <= b.opts.DeepLevels; level++ {
		var data []byte
		if level%50 == 0 || level == b.opts.DeepLevels {
			data = fmt.Appendf(nil, "level %d", level)
		}
		p = b.create(fmt.Sprintf("%s/l%03d", p, level), spec{data: data, classes: c4})
	}

	// Class 5: names from many scripts and at the edges of what the
	// server accepts; each with a unicode-named child.
	c5 := cls(ClassUnicodeNames)
	u := b.create(b.path("unicode"), spec{classes: c5})
	for i, name := range unicodeNames {
		n := b.create(u+"/"+name, spec{data: []byte(name), classes: c5})
		b.create(n+"/"+unicodeNames[(i+1)%len(unicodeNames)], spec{classes: c5})
	}

	// Class 6: "zookeeper" is reserved only directly under "/".
	c6 := cls(ClassZookeeperName)
	if b.opts.Root != "/" {
		z := b.create(b.path("zookeeper"), spec{data: []byte("not the system node"), classes: c6})
		b.create(z+"/quota", spec{classes: c6})
	}
	names := b.create(b.path("names"), spec{classes: c6})
	z := b.create(names+"/zookeeper", spec{data: []byte("ordinary data"), classes: c6})
	b.create(z+"/quota", spec{data: []byte("not a quota"), classes: c6})
	b.create(z+"/config", spec{data: []byte("server.1=not.a.server:2888:3888"), classes: c6})
	zz := b.create(z+"/zookeeper", spec{classes: c6})
	b.create(zz+"/leaf", spec{data: []byte("leaf"), classes: c6})
	for _, n := range []string{"Zookeeper", "zookeeper2", "zookeeper.bak"} {
		b.create(names+"/"+n, spec{classes: c6})
	}

	// Class 7: sequential children after deletes.
	c7 := cls(ClassSequential)
	seq := b.create(b.path("sequential"), spec{ordered: true, classes: c7})
	var made []string
	for range 5 {
		made = append(made, b.create(seq+"/seq-", spec{seq: true, data: b.bytes(8), classes: c7}))
	}
	b.delete(made[1])
	b.delete(made[3])
	b.create(seq+"/plain", spec{classes: c7}) // takes counter 5
	b.create(seq+"/seq-", spec{seq: true, classes: c7})
	last := b.create(seq+"/seq-", spec{seq: true, classes: c7})
	b.delete(last) // a gap at the end
	emptied := b.create(seq+"/emptied", spec{ordered: true, classes: c7})
	var gone []string
	for range 3 {
		gone = append(gone, b.create(emptied+"/", spec{seq: true, classes: c7})) // empty prefix
	}
	for _, g := range gone {
		b.delete(g)
	}
	mixed := b.create(seq+"/mixed-prefix", spec{ordered: true, classes: c7})
	for i := range 6 {
		b.create(mixed+"/"+[]string{"a-", "b-", ""}[i%3], spec{seq: true, data: []byte{byte(i)}, classes: c7})
	}

	// Class 8: ephemerals of two live sessions, one ephemeral queue.
	c8 := cls(ClassEphemeral)
	eph := b.create(b.path("ephemeral"), spec{classes: c8})
	for i, data := range [][]byte{nil, {}, []byte(`{"host":"10.0.0.1"}`), b.bytes(32), nil, []byte("x")} {
		b.create(fmt.Sprintf("%s/e%d", eph, i), spec{kind: znode.Ephemeral, session: i % adversarialSessions, data: data, classes: c8})
	}
	q := b.create(eph+"/queue", spec{ordered: true, classes: c8})
	var qs []string
	for i := range 5 {
		qs = append(qs, b.create(q+"/item-", spec{kind: znode.Ephemeral, seq: true, session: i % adversarialSessions, data: []byte{byte(i)}, classes: c8 | c7}))
	}
	b.delete(qs[0])

	// Class 9: containers (kept alive by a child, or never used) and TTL
	// nodes with a long TTL.
	c9 := cls(ClassContainerTTL)
	ct := b.create(b.path("container"), spec{classes: c9})
	c := b.create(ct+"/with-child", spec{kind: znode.Container, data: []byte("container"), classes: c9})
	b.create(c+"/child", spec{classes: c9})
	outer := b.create(ct+"/nested", spec{kind: znode.Container, classes: c9})
	inner := b.create(outer+"/inner", spec{kind: znode.Container, classes: c9})
	b.create(inner+"/leaf", spec{data: []byte{}, classes: c9})
	// A container that never had a child is not a deletion candidate
	// (ContainerManager wants cversion > 0).
	b.create(ct+"/never-used", spec{kind: znode.Container, classes: c9})
	lock := b.create(ct+"/lock", spec{kind: znode.Container, ordered: true, classes: c9})
	b.create(lock+"/_c_"+b.uuid()+"-lock-", spec{kind: znode.Ephemeral, seq: true, session: 0, classes: c9 | c8 | c7})
	ttl := b.create(b.path("ttl"), spec{classes: c9})
	b.create(ttl+"/leaf", spec{kind: znode.TTL, ttl: DefaultTTL, data: []byte("ttl"), classes: c9})
	b.create(ttl+"/max-ttl", spec{kind: znode.TTL, ttl: maxTTL, classes: c9})
	tp := b.create(ttl+"/parent", spec{kind: znode.TTL, ttl: DefaultTTL, classes: c9})
	b.create(tp+"/child", spec{data: []byte("under a ttl node"), classes: c9})
	ts := b.create(ttl+"/sequential", spec{ordered: true, classes: c9})
	for range 3 {
		b.create(ts+"/ttl-seq-", spec{kind: znode.TTL, ttl: DefaultTTL, seq: true, classes: c9 | c7})
	}

	// Class 10: every ACL scheme the default server accepts (world, ip,
	// digest, auth; sasl and x509 need providers a stock server lacks and
	// are refused with InvalidACL), and subtrees an exporter without the
	// credential cannot read.
	c10 := cls(ClassACL)
	world := znode.ID{Scheme: "world", ID: "anyone"}
	secret := b.cred.ID()
	reader := Credential{User: "treegen-reader", Password: "reader"}.ID()
	acl := b.create(b.path("acl"), spec{classes: c10})
	b.create(acl+"/world-all", spec{data: []byte("open"), classes: c10})
	b.create(acl+"/world-read", spec{data: []byte("read-only"), acl: []znode.ACL{{Perms: znode.PermRead, ID: world}}, classes: c10})
	ipn := b.create(acl+"/ip-localhost", spec{data: []byte("127.0.0.1"), acl: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "127.0.0.1"}}}, classes: c10})
	b.create(ipn+"/child", spec{acl: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "127.0.0.1"}}}, classes: c10})
	b.create(acl+"/ip-cidr", spec{acl: []znode.ACL{
		{Perms: znode.PermRead, ID: znode.ID{Scheme: "ip", ID: "10.0.0.0/8"}},
		{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "127.0.0.0/8"}},
	}, classes: c10})
	b.create(acl+"/digest-and-world", spec{data: []byte("two readers"), acl: []znode.ACL{
		{Perms: znode.PermRead | znode.PermWrite, ID: reader},
		{Perms: znode.PermRead, ID: world},
		{Perms: znode.PermAll, ID: secret},
	}, classes: c10})
	b.create(acl+"/auth-scheme", spec{data: []byte("auth resolves to the session's digest"), acl: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "auth"}}}, classes: c10})
	b.create(acl+"/duplicates", spec{acl: []znode.ACL{
		{Perms: znode.PermRead, ID: world}, {Perms: znode.PermRead, ID: world}, {Perms: znode.PermAll, ID: world},
	}, classes: c10})
	sep := make([]znode.ACL, 0, 5)
	for _, perm := range []znode.Perm{znode.PermCreate, znode.PermDelete, znode.PermRead, znode.PermWrite, znode.PermAdmin} {
		sep = append(sep, znode.ACL{Perms: perm, ID: world})
	}
	b.create(acl+"/perms-separate", spec{acl: sep, classes: c10})
	sealed := b.create(acl+"/sealed", spec{data: []byte("children first, then read-only"), ordered: true, classes: c10})
	b.create(sealed+"/a", spec{classes: c10})
	b.create(sealed+"/b", spec{classes: c10})
	b.setACL(sealed, []znode.ACL{{Perms: znode.PermRead, ID: world}}, c10)
	unlisted := b.create(acl+"/no-read-world", spec{data: []byte("children cannot be listed"), acl: []znode.ACL{
		{Perms: znode.PermAll &^ znode.PermRead, ID: world},
		{Perms: znode.PermRead, ID: secret},
	}, classes: c10})
	b.create(unlisted+"/child", spec{data: []byte("world-readable, if you know the name"), classes: c10})
	secretACL := []znode.ACL{{Perms: znode.PermAll, ID: secret}}
	s := b.create(acl+"/secret", spec{data: []byte("only treegen-secret reads this"), acl: secretACL, classes: c10})
	b.create(s+"/db-password", spec{data: []byte("hunter2"), acl: secretACL, classes: c10 | c1})
	sn := b.create(s+"/nested", spec{acl: secretACL, classes: c10})
	b.create(sn+"/deeper", spec{data: b.bytes(64), acl: secretACL, classes: c10})
	b.create(sn+"/open-inside", spec{data: []byte("world ACL below a protected node"), classes: c10})

	// Whatever budget is left: a random mix of everything above.
	fill := b.create(b.path("filler"), spec{})
	for g := 0; b.count() < b.opts.Nodes; g++ {
		dir := b.create(fmt.Sprintf("%s/g%04d", fill, g), spec{data: b.bytes(b.intn(64))})
		for j := range b.between(5, 50) {
			var data []byte
			switch b.intn(4) {
			case 0:
			case 1:
				data = []byte{}
			case 2:
				data = b.bytes(b.between(1, 512))
			default:
				data = fmt.Appendf(nil, `{"n":%d}`, j)
			}
			name := fmt.Sprintf("%s-%d", b.pick(unicodeNames[:24]), j)
			s := spec{data: data}
			if b.chance(0.1) {
				s.kind, s.session = znode.Ephemeral, b.intn(adversarialSessions)
			}
			b.create(dir+"/"+name, s)
		}
	}
}

// maxTTL is the largest TTL the server accepts (40 bits of milliseconds).
const maxTTL = time.Duration(znode.MaxTTLMillis) * time.Millisecond

package zkserver_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"
)

// TestFourLetterWordsMatchZooKeeper compares the journal's four-letter
// words with a real ZooKeeper 3.8's, on a leader and a follower of each
// after the same activity (a session with a watch, enough writes for a
// digest history entry): mntr's keys and value types (so that scrapers and
// dashboards keep working), the lines of srvr and stat, the keys of conf
// and envi, the fields of cons, wchs, hash's line format, ruok and isro.
// What the journal leaves out is in intendedFourLetterGaps, with reasons;
// anything else fails.
func TestFourLetterWordsMatchZooKeeper(t *testing.T) {
	// The roles are looked up at each question: on a loaded machine a
	// leader may change during the test.
	addrOf := func(side, role string) string {
		t.Helper()
		if side == "zookeeper" {
			l, err := ensemble.Leader(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			hosts := ensemble.Hosts()
			if role == "leader" {
				return hosts[l-1]
			}
			return hosts[l%len(hosts)]
		}
		for i, n := range shared.nodes {
			if n.IsLeader() == (role == "leader") {
				return shared.addrs()[i]
			}
		}
		t.Fatalf("no journal %s", role)
		return ""
	}
	sides := map[string][]string{
		"zookeeper": {addrOf("zookeeper", "leader"), addrOf("zookeeper", "follower")},
		"journal":   {addrOf("journal", "leader"), addrOf("journal", "follower")},
	}
	p := uniquePath(t)
	for name, addrs := range sides {
		for _, addr := range addrs {
			c, _ := connect(t, []string{addr})
			if _, err := c.Create(p+"-"+portOf(addr), nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if _, _, _, err := c.GetW(p + "-" + portOf(addr)); err != nil {
				t.Fatal(err)
			}
			// 130 writes: the zxid crosses a multiple of 128, where both
			// keep a digest history entry.
			for i := range 130 {
				if _, err := c.Set(p+"-"+portOf(addr), []byte{byte(i)}, -1); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, _, err := c.GetW(p + "-" + portOf(addr)); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := func(side, role, word string) string {
		t.Helper()
		for try := 0; ; try++ {
			text, err := fourLetterWord(addrOf(side, role), word)
			if err != nil {
				t.Fatalf("%s %s %s: %v", side, role, word, err)
			}
			// mntr, srvr and stat say the role: ask again if it moved.
			said := regexp.MustCompile(`(?m)^(Mode: |zk_server_state\t)(\w+)$`).FindStringSubmatch(text)
			if said == nil || said[2] == role || try == 5 {
				return text
			}
		}
	}
	for _, role := range []string{"leader", "follower"} {
		t.Run("mntr-"+role, func(t *testing.T) {
			compareMntr(t, out("zookeeper", role, "mntr"), out("journal", role, "mntr"))
		})
		for _, word := range []string{"srvr", "stat"} {
			t.Run(word+"-"+role, func(t *testing.T) {
				compareLines(t, word, out("zookeeper", role, word), out("journal", role, word))
			})
		}
	}
	for _, word := range []string{"conf", "envi"} {
		t.Run(word, func(t *testing.T) {
			compareKeyValues(t, word, out("zookeeper", "follower", word), out("journal", "follower", word))
		})
	}
	t.Run("cons", func(t *testing.T) {
		// ZooKeeper's line for a connection with a session, and for one
		// without (the one asking).
		re := regexp.MustCompile(`^ /[0-9.:\[\]a-f]+\[[01]\]\(queued=\d+,recved=\d+,sent=\d+` +
			`(,sid=0x[0-9a-f]+,lop=[A-Z0-9]+,est=\d+,to=\d+(,lcxid=0x[0-9a-f]+)?,lzxid=0x[0-9a-f]+,lresp=\d+,llat=\d+,minlat=\d+,avglat=\d+,maxlat=\d+)?\)$`)
		for _, side := range []string{"zookeeper", "journal"} {
			text := out(side, "follower", "cons")
			withSession := 0
			for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
				if !re.MatchString(line) {
					t.Errorf("%s cons line %q is not ZooKeeper's format", side, line)
				}
				if strings.Contains(line, ",sid=") {
					withSession++
				}
			}
			if withSession == 0 {
				t.Errorf("%s cons lists no connection with a session:\n%s", side, text)
			}
		}
	})
	t.Run("wchs", func(t *testing.T) {
		re := regexp.MustCompile(`\A\d+ connections watching \d+ paths\nTotal watches:\d+\n\z`)
		for _, side := range []string{"zookeeper", "journal"} {
			if text := out(side, "follower", "wchs"); !re.MatchString(text) {
				t.Errorf("%s wchs: %q", side, text)
			}
		}
	})
	t.Run("hash", func(t *testing.T) {
		re := regexp.MustCompile(`^[0-9a-f]+: -?\d+$`)
		for _, side := range []string{"zookeeper", "journal"} {
			text := strings.TrimRight(out(side, "leader", "hash"), "\n")
			if text == "" {
				t.Errorf("%s hash: no digest history after 130 writes", side)
				continue
			}
			for _, line := range strings.Split(text, "\n") {
				if !re.MatchString(line) {
					t.Errorf("%s hash line %q is not zxid-in-hex: digest", side, line)
				}
			}
		}
	})
	for _, word := range []string{"ruok", "isro"} {
		t.Run(word, func(t *testing.T) {
			if z, j := out("zookeeper", "follower", word), out("journal", "follower", word); z != j {
				t.Errorf("%s: zookeeper %q, journal %q", word, z, j)
			}
		})
	}
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

var (
	intValue   = regexp.MustCompile(`^-?\d+$`)
	floatValue = regexp.MustCompile(`^-?\d+\.\d+$`)
)

func valueType(v string) string {
	switch {
	case intValue.MatchString(v):
		return "integer"
	case floatValue.MatchString(v):
		return "decimal"
	}
	return "text"
}

func parseMntr(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "\t")
		if !ok || !strings.HasPrefix(k, "zk_") {
			t.Fatalf("mntr line %q is not zk_key<TAB>value", line)
		}
		out[strings.TrimPrefix(k, "zk_")] = v
	}
	return out
}

// compareMntr: every key the journal prints is one ZooKeeper prints, with
// a value of the same type; every key ZooKeeper prints is the journal's or
// an intended gap.
func compareMntr(t *testing.T, zkText, jText string) {
	zkKeys, jKeys := parseMntr(t, zkText), parseMntr(t, jText)
	for k, v := range jKeys {
		zv, ok := zkKeys[k]
		switch {
		case !ok:
			t.Errorf("mntr: the journal prints zk_%s, which ZooKeeper 3.8 does not", k)
		case valueType(v) != valueType(zv):
			t.Errorf("mntr: zk_%s is %s %q on the journal, %s %q on ZooKeeper", k, valueType(v), v, valueType(zv), zv)
		}
	}
	var missing []string
	for k := range zkKeys {
		if _, ok := jKeys[k]; !ok && fourLetterGap("mntr", k) == "" {
			missing = append(missing, "zk_"+k)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("mntr: ZooKeeper prints %d keys the journal lacks with no reason in intendedFourLetterGaps: %v", len(missing), missing)
	}
	// The keys of ZooKeeper 3.4's mntr, which scrapers and dashboards were
	// written against, are all there.
	for _, k := range []string{"version", "avg_latency", "max_latency", "min_latency", "packets_received", "packets_sent",
		"num_alive_connections", "outstanding_requests", "server_state", "znode_count", "watch_count", "ephemerals_count",
		"approximate_data_size", "open_file_descriptor_count", "max_file_descriptor_count"} {
		if _, ok := jKeys[k]; !ok {
			t.Errorf("mntr: the journal lacks zk_%s", k)
		}
	}
}

// compareLines: srvr and stat have ZooKeeper's lines, in its order, with
// values of its form.
func compareLines(t *testing.T, word, zkText, jText string) {
	shape := func(text string) []string {
		var out []string
		for _, line := range strings.Split(text, "\n") {
			switch {
			case strings.HasPrefix(line, " /"):
				out = append(out, "<client>")
			case strings.HasPrefix(line, "Zookeeper version: "):
				if !regexp.MustCompile(`^Zookeeper version: 3\.8\.\d+-\S+, built on \d{4}-\d\d-\d\d \d\d:\d\d UTC$`).MatchString(line) {
					out = append(out, "bad version line: "+line)
				} else {
					out = append(out, "Zookeeper version")
				}
			default:
				k, v, _ := strings.Cut(line, ": ")
				out = append(out, k+" "+regexp.MustCompile(`0x[0-9a-f]+|\d+(\.\d+)?`).ReplaceAllString(v, "N"))
			}
		}
		return slices.Compact(out)
	}
	z, j := shape(zkText), shape(jText)
	if !slices.Equal(z, j) {
		t.Errorf("%s: lines differ\nzookeeper: %q\njournal:   %q\n--- zookeeper ---\n%s--- journal ---\n%s", word, z, j, zkText, jText)
	}
}

// compareKeyValues: the journal's key=value lines are ZooKeeper's keys,
// and ZooKeeper's keys are the journal's or intended gaps (envi may add
// go.version).
func compareKeyValues(t *testing.T, word, zkText, jText string) {
	keys := func(text string) map[string]bool {
		out := map[string]bool{}
		for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "server.") {
				out[k] = true
			}
		}
		return out
	}
	z, j := keys(zkText), keys(jText)
	for k := range j {
		if !z[k] && !(word == "envi" && k == "go.version") {
			t.Errorf("%s: the journal prints %s, which ZooKeeper 3.8 does not", word, k)
		}
	}
	for k := range z {
		if !j[k] && fourLetterGap(word, k) == "" {
			t.Errorf("%s: ZooKeeper prints %s, which the journal lacks with no reason in intendedFourLetterGaps", word, k)
		}
	}
	if word == "conf" && !strings.Contains(jText, "membership: \n") {
		t.Errorf("conf: no membership section:\n%s", jText)
	}
}

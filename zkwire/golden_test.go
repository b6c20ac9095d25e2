package zkwire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// describeEvent renders an event as one line of a golden transcript:
// direction, kind, header fields by name, and the record as JSON (byte slices
// in base64, enums as numbers).
func describeEvent(dir string, ev Event) string {
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			return "!" + err.Error()
		}
		return string(b)
	}
	switch ev := ev.(type) {
	case *ConnectEvent:
		return fmt.Sprintf("%s connect %s", dir, js(ev.Request))
	case *ConnectedEvent:
		return fmt.Sprintf("%s connected %s", dir, js(ev.Response))
	case *RequestEvent:
		return fmt.Sprintf("%s request xid=%d %v %s", dir, ev.Header.Xid, ev.Header.Op, js(ev.Request))
	case *ReplyEvent:
		return fmt.Sprintf("%s reply xid=%d zxid=%#x err=%v %v %s", dir, ev.Header.Xid, ev.Header.Zxid, ev.Header.Err, ev.Op, js(ev.Response))
	case *NotificationEvent:
		return fmt.Sprintf("%s notification zxid=%d %v %v %q", dir, ev.Header.Zxid, ev.Event.Type, ev.Event.State, ev.Event.Path)
	case *FourLetterWordEvent:
		return fmt.Sprintf("%s four-letter-word %v mask=%#x", dir, ev.Word, ev.TraceMask)
	}
	return fmt.Sprintf("%s %T", dir, ev)
}

type goldenStream struct {
	name           string
	client, server []byte
}

func readGolden(t testing.TB) []goldenStream {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.client"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden streams under testdata/golden: run go test -run TestLiveGoldenSession -rewrite")
	}
	sort.Strings(files)
	var out []goldenStream
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".client")
		client, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		server, err := os.ReadFile(strings.TrimSuffix(f, ".client") + ".server")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, goldenStream{name, client, server})
	}
	return out
}

// TestGoldenStreams decodes the byte streams recorded from ZooKeeper 3.8 (see
// TestLiveGoldenSession) with a Tracker, checks that every frame re-encodes
// to the recorded bytes, and compares the decoded transcript with the
// recorded one.
func TestGoldenStreams(t *testing.T) {
	for _, g := range readGolden(t) {
		t.Run(g.name, func(t *testing.T) {
			got := joinLines(checkStreams(t, g.client, g.server))
			want, err := os.ReadFile(filepath.Join("testdata", "golden", g.name+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Fatalf("transcript differs from %s.txt (rerun with -rewrite after checking):\n%s", g.name, diffLines(string(want), got))
			}
			// The same streams through the byte-stream API, one odd-sized
			// chunk at a time, give the same events.
			tr := mustTracker(t)
			var lines []string
			for _, dir := range []struct {
				name string
				b    []byte
				feed func([]byte) ([]Event, error)
			}{{"C", g.client, tr.FeedClient}, {"S", g.server, tr.FeedServer}} {
				for b := dir.b; len(b) > 0; {
					n := min(len(b), 7)
					evs, err := dir.feed(b[:n])
					if err != nil {
						t.Fatal(err)
					}
					for _, ev := range evs {
						lines = append(lines, describeEvent(dir.name, ev))
					}
					b = b[n:]
				}
			}
			if !strings.HasPrefix(got, joinLines(lines)) {
				t.Fatalf("stream API transcript differs:\n%s", diffLines(got, joinLines(lines)))
			}
		})
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\nwant %s\n got %s", i+1, a, b)
		}
	}
	return "(no difference)"
}

// writeFuzzSeeds seeds the fuzz corpora with the recorded frames.
func writeFuzzSeeds(recs []recorded) error {
	type seed struct {
		target string
		name   string
		args   []any
	}
	var seeds []seed
	for _, r := range recs {
		seeds = append(seeds,
			seed{"FuzzTracker", r.name, []any{r.client, r.server, uint8(7)}},
			seed{"FuzzFrameReader", r.name + "-client", []any{r.client}},
			seed{"FuzzFrameReader", r.name + "-server", []any{r.server}})
		tr, err := NewTracker(TrackerConfig{})
		if err != nil {
			return err
		}
		if _, ok := DetectFourLetterWord(r.client); ok {
			continue
		}
		for _, dir := range []struct {
			client bool
			b      []byte
		}{{true, r.client}, {false, r.server}} {
			fr := NewFrameReader(bytes.NewReader(dir.b), DefaultMaxReplyFrame)
			for i := 0; ; i++ {
				p, err := fr.Next()
				if err != nil {
					break
				}
				p = bytes.Clone(p)
				name := fmt.Sprintf("%s-%d", r.name, i)
				if dir.client {
					ev, _ := tr.ClientFrame(p)
					switch ev := ev.(type) {
					case *ConnectEvent:
						seeds = append(seeds, seed{"FuzzConnectRequest", name, []any{p}})
					case *RequestEvent:
						seeds = append(seeds, seed{"FuzzDecodeRequest", name + "-" + ev.Header.Op.String(), []any{int32(ev.Header.Op), p[RequestHeaderSize:]}})
					}
					continue
				}
				ev, _ := tr.ServerFrame(p)
				switch ev := ev.(type) {
				case *ConnectedEvent:
					seeds = append(seeds, seed{"FuzzConnectResponse", name, []any{p}})
				case *ReplyEvent:
					seeds = append(seeds, seed{"FuzzDecodeResponse", name + "-" + ev.Op.String(), []any{int32(ev.Op), int32(ev.Header.Err), p[ReplyHeaderSize:]}})
				case *NotificationEvent:
					seeds = append(seeds, seed{"FuzzDecodeResponse", name + "-notification", []any{int32(OpNotification), int32(0), p[ReplyHeaderSize:]}})
				}
			}
		}
	}
	// Seeds from an earlier recording go; crashers the fuzzer saved stay.
	old, err := filepath.Glob(filepath.Join("testdata", "fuzz", "*", "golden-*"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	for _, s := range seeds {
		dir := filepath.Join("testdata", "fuzz", s.target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, a := range s.args {
			switch a := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(a)))
			case int32:
				fmt.Fprintf(&b, "int32(%d)\n", a)
			case uint8:
				fmt.Fprintf(&b, "byte(%s)\n", strconv.QuoteRune(rune(a)))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "golden-"+s.name), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

package raftjournal

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHclogAdapter(t *testing.T) {
	var buf bytes.Buffer
	l := newHclog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), "raft")
	if l.IsDebug() || !l.IsInfo() || l.GetLevel() != hclog.Info {
		t.Fatalf("levels: debug %t info %t level %v", l.IsDebug(), l.IsInfo(), l.GetLevel())
	}
	l.Debug("hidden")
	l.Named("snapshots").With("id", "7").Warn("slow snapshot", "took", "3s")
	l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error}).Print("from the std logger")
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="slow snapshot" id=7 component=raft.snapshots took=3s`,
		`level=ERROR msg="from the std logger" component=raft`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") || strings.Count(out, "component=") != 2 {
		t.Errorf("log:\n%s", out)
	}
}

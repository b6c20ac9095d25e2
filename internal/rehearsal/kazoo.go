package rehearsal

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed kazoo_rehearsal.py
var kazooScript string

// kazooReport is the script's {"report": ...} line.
type kazooReport struct {
	// Log: [unix seconds, contender, what], in the order the contenders
	// saw it.
	Log     [][3]any       `json:"log"`
	Clients []kazooClient  `json:"clients"`
	Stuck   []string       `json:"stuck"`
	Raw     map[string]any `json:"-"`
}

type kazooClient struct {
	Name       string   `json:"name"`
	Session    string   `json:"session"`
	SessionNow string   `json:"session_now"`
	Ephemeral  string   `json:"ephemeral"`
	States     [][2]any `json:"states"`
}

type kazoo struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan []byte
	stderr *lockedBuffer

	mu       sync.Mutex
	acquired []acquisition

	closeOnce sync.Once
}

type acquisition struct {
	what string
	at   time.Time
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

// startKazoo runs the embedded script with Debian's Python and waits for
// every client to run.
func startKazoo(ctx context.Context, cfg Config) (*kazoo, error) {
	if out, err := exec.Command(cfg.Python, "-c", "import kazoo").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("rehearsal: kazoo is not installed for %s (apt-get install python3-kazoo; make deps): %v: %s", cfg.Python, err, out)
	}
	cmd := exec.Command(cfg.Python, "-c", kazooScript, strings.Join(cfg.Hosts, ","), cfg.Root, strconv.Itoa(cfg.KazooClients))
	// Debian's kazoo, not a virtualenv's or pyenv's path.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PYTHONPATH=") || strings.HasPrefix(kv, "PYTHONHOME=") || strings.HasPrefix(kv, "VIRTUAL_ENV=")
	}), "PYTHONDONTWRITEBYTECODE=1")
	k := &kazoo{cmd: cmd, lines: make(chan []byte, 64), stderr: &lockedBuffer{}}
	cmd.Stderr = k.stderr
	var err error
	if k.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("rehearsal: start kazoo: %w", err)
	}
	go k.read(stdout)
	m, err := k.next(ctx, "ready")
	if err != nil {
		k.close()
		return nil, err
	}
	if m["ready"] != true {
		k.close()
		return nil, fmt.Errorf("rehearsal: kazoo said %v, want ready", m)
	}
	return k, nil
}

// read passes the script's lines on, keeping its acquisitions apart.
func (k *kazoo) read(r io.Reader) {
	defer close(k.lines)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var a struct {
			Acquired string  `json:"acquired"`
			At       float64 `json:"at"`
		}
		if json.Unmarshal(sc.Bytes(), &a) == nil && a.Acquired != "" {
			k.mu.Lock()
			k.acquired = append(k.acquired, acquisition{what: a.Acquired, at: unixFloat(a.At)})
			k.mu.Unlock()
			continue
		}
		k.lines <- slices.Clone(sc.Bytes())
	}
}

func unixFloat(f float64) time.Time {
	return time.Unix(0, int64(f*1e9))
}

func (k *kazoo) acquisitionsSince(since time.Time) (lock, elected int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, a := range k.acquired {
		if !a.at.After(since) {
			continue
		}
		switch a.what {
		case "lock-acquired":
			lock++
		case "elected":
			elected++
		}
	}
	return lock, elected
}

// next waits for the script's next line.
func (k *kazoo) next(ctx context.Context, what string) (map[string]any, error) {
	select {
	case b, ok := <-k.lines:
		if !ok {
			return nil, fmt.Errorf("rehearsal: kazoo ended before %s; stderr:\n%s", what, k.stderr)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("rehearsal: kazoo printed %q: %w", b, err)
		}
		return m, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("rehearsal: kazoo did not report %s: %w; stderr:\n%s", what, ctx.Err(), k.stderr)
	}
}

func (k *kazoo) stop(ctx context.Context) (*kazooReport, error) {
	if _, err := fmt.Fprintln(k.in, "stop"); err != nil {
		return nil, fmt.Errorf("rehearsal: kazoo stdin: %w; stderr:\n%s", err, k.stderr)
	}
	for {
		select {
		case b, ok := <-k.lines:
			if !ok {
				return nil, fmt.Errorf("rehearsal: kazoo ended before its report; stderr:\n%s", k.stderr)
			}
			var rep kazooReport
			if err := json.Unmarshal(b, &rep); err != nil {
				return nil, fmt.Errorf("rehearsal: kazoo's report: %w", err)
			}
			if rep.Log == nil && rep.Clients == nil {
				continue // another line
			}
			return &rep, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("rehearsal: kazoo did not report: %w; stderr:\n%s", ctx.Err(), k.stderr)
		}
	}
}

// close ends the script (it closes its clients) and waits for it.
func (k *kazoo) close() {
	k.closeOnce.Do(func() {
		fmt.Fprintln(k.in, "close")
		k.in.Close()
		done := make(chan struct{})
		go func() { k.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			k.cmd.Process.Kill()
			<-done
		}
	})
}

// checkLog walks the contenders' log for one recipe (acquire and release
// names): never two holders at once, and how many acquisitions came before
// and after the switch.
func checkLog(log [][3]any, acquire, release string, switchAt time.Time) (before, after int, problems []string) {
	holder := ""
	for _, e := range log {
		at, _ := e[0].(float64)
		who, _ := e[1].(string)
		what, _ := e[2].(string)
		switch what {
		case acquire:
			if holder != "" {
				problems = append(problems, fmt.Sprintf("%s: %s holds while %s still does (at %s)", acquire, who, holder, unixFloat(at).Format("15:04:05.000")))
			}
			holder = who
			if unixFloat(at).Before(switchAt) {
				before++
			} else {
				after++
			}
		case release:
			if holder != who {
				problems = append(problems, fmt.Sprintf("%s: %s releases what %q holds", release, who, holder))
			}
			holder = ""
		}
	}
	return before, after, problems
}

var errNoReport = errors.New("rehearsal: no kazoo report (Stop first)")

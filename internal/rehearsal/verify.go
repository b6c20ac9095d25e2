package rehearsal

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Result is what a rehearsal measured and checked.
type Result struct {
	// SwitchAt is the first connection loss any go-zookeeper session saw
	// (zero: none saw one).
	SwitchAt time.Time `json:"switch_at"`
	// Requests counts go-zookeeper requests (writes and beacon sets), each
	// timed from its first attempt to its answer.
	Requests int `json:"requests"`
	// Longest is the longest request; LongestAcross the longest of those
	// started within a second of the switch; P99Before the 99th percentile
	// of requests that ended before the switch.
	Longest       time.Duration `json:"longest"`
	LongestAcross time.Duration `json:"longest_across"`
	P99Before     time.Duration `json:"p99_before"`
	// ConnectionLosses counts requests answered with a connection loss
	// (retried, and checked when they were writes); Errors lists every
	// other error.
	ConnectionLosses int      `json:"connection_losses"`
	Errors           []string `json:"errors"`
	// Sessions: go-zookeeper and kazoo sessions; SessionsLost those
	// expired or holding another session id at the end.
	Sessions     int      `json:"sessions"`
	SessionsLost []string `json:"sessions_lost"`
	// Ephemerals checked in the journal, and those missing or owned by
	// another session.
	Ephemerals     int      `json:"ephemerals"`
	EphemeralsLost []string `json:"ephemerals_lost"`
	// Writes: acknowledged, answered with a connection loss and found
	// applied, found not applied and written again; AckedMissing and
	// Duplicates are broken promises.
	WritesAcked    int      `json:"writes_acked"`
	WritesApplied  int      `json:"writes_applied_after_loss"`
	WritesRetried  int      `json:"writes_retried_after_loss"`
	AckedMissing   []string `json:"acked_missing"`
	Duplicates     []string `json:"duplicates"`
	UnknownEntries []string `json:"unknown_entries"`
	// WatchesAcross counts, per watcher, watches set before the switch
	// that fired for a change after it; WatchersFinal says how many read
	// the last beacon value; BeaconFinal whether the journal holds it.
	WatchesAcross []int `json:"watches_across"`
	// BeaconWatchesAcross counts beacon watches that were set before the
	// switch and fired after it (none, when every watcher's next GetW was
	// held by the proxy: not a promise, a figure).
	BeaconWatchesAcross int  `json:"beacon_watches_across"`
	WatchersFinal       int  `json:"watchers_final"`
	BeaconFinal         bool `json:"beacon_final"`
	// Kazoo's recipes: acquisitions before and after the switch, and any
	// moment with two holders.
	LockBefore       int      `json:"lock_before"`
	LockAfter        int      `json:"lock_after"`
	ElectedBefore    int      `json:"elected_before"`
	ElectedAfter     int      `json:"elected_after"`
	RecipeProblems   []string `json:"recipe_problems"`
	KazooStates      []string `json:"kazoo_states"`
	kazoo            bool
	expectedWatchers int
}

// Problems lists every broken promise; empty is the only pass.
func (r *Result) Problems() []string {
	var p []string
	if r.SwitchAt.IsZero() {
		p = append(p, "no go-zookeeper session saw a connection loss: the workload did not span a switch")
	}
	if len(r.Errors) > 0 {
		p = append(p, fmt.Sprintf("%d errors other than a connection loss: %s", len(r.Errors), strings.Join(first(r.Errors, 5), "; ")))
	}
	if len(r.SessionsLost) > 0 {
		p = append(p, "sessions lost: "+strings.Join(r.SessionsLost, ", "))
	}
	if len(r.EphemeralsLost) > 0 {
		p = append(p, "ephemerals lost: "+strings.Join(first(r.EphemeralsLost, 10), ", "))
	}
	if len(r.AckedMissing) > 0 {
		p = append(p, fmt.Sprintf("%d acknowledged writes missing from the journal: %s", len(r.AckedMissing), strings.Join(first(r.AckedMissing, 10), ", ")))
	}
	if len(r.Duplicates) > 0 {
		p = append(p, fmt.Sprintf("%d writes applied twice: %s", len(r.Duplicates), strings.Join(first(r.Duplicates, 10), ", ")))
	}
	if len(r.UnknownEntries) > 0 {
		p = append(p, fmt.Sprintf("%d nodes no write made: %s", len(r.UnknownEntries), strings.Join(first(r.UnknownEntries, 10), ", ")))
	}
	for i, n := range r.WatchesAcross {
		if n == 0 {
			p = append(p, fmt.Sprintf("watcher %d: its watch set before the switch did not fire for the change after it", i))
		}
	}
	if r.WatchersFinal != r.expectedWatchers {
		p = append(p, fmt.Sprintf("%d of %d watchers read the last beacon value", r.WatchersFinal, r.expectedWatchers))
	}
	if !r.BeaconFinal {
		p = append(p, "the journal does not hold the last acknowledged beacon value")
	}
	if r.kazoo {
		p = append(p, r.RecipeProblems...)
		if r.LockBefore == 0 || r.LockAfter == 0 {
			p = append(p, fmt.Sprintf("kazoo's Lock changed hands %d times before the switch and %d after: it did not run across it", r.LockBefore, r.LockAfter))
		}
		if r.ElectedBefore == 0 || r.ElectedAfter == 0 {
			p = append(p, fmt.Sprintf("kazoo's Election had %d leaders before the switch and %d after: it did not run across it", r.ElectedBefore, r.ElectedAfter))
		}
	}
	return p
}

// Summary is the result in a few lines (the demo prints it).
func (r *Result) Summary() []string {
	s := []string{
		fmt.Sprintf("requests            %d (go-zookeeper), longest %s, longest across the switch %s, p99 before the switch %s",
			r.Requests, r.Longest.Round(time.Millisecond), r.LongestAcross.Round(time.Millisecond), r.P99Before.Round(time.Millisecond)),
		fmt.Sprintf("errors              %d connection losses (retried), %d others", r.ConnectionLosses, len(r.Errors)),
		fmt.Sprintf("sessions lost       %d of %d", len(r.SessionsLost), r.Sessions),
		fmt.Sprintf("ephemerals lost     %d of %d", len(r.EphemeralsLost), r.Ephemerals),
		fmt.Sprintf("writes              %d acknowledged, %d applied though the answer was lost, %d retried after a loss; %d acknowledged missing, %d applied twice",
			r.WritesAcked, r.WritesApplied, r.WritesRetried, len(r.AckedMissing), len(r.Duplicates)),
		fmt.Sprintf("watches             %d of %d set on ZooKeeper before the switch fired for a change on the journal after it (%d beacon watches too); %d of %d watchers saw the beacon's last change",
			sum(r.WatchesAcross), len(r.WatchesAcross), r.BeaconWatchesAcross, r.WatchersFinal, r.expectedWatchers),
	}
	if r.kazoo {
		s = append(s, fmt.Sprintf("kazoo               Lock taken %d times before the switch, %d after; Election won %d times before, %d after; %d moments with two holders",
			r.LockBefore, r.LockAfter, r.ElectedBefore, r.ElectedAfter, len(r.RecipeProblems)))
	}
	return s
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// Verify checks the stopped workload against the journal's tree, read
// through verifyHosts (a journal node's ZooKeeper port).
func (w *Workload) Verify(ctx context.Context, verifyHosts []string) (*Result, error) {
	if w.kazoo != nil && w.report == nil {
		return nil, errNoReport
	}
	conn, _, err := zk.Connect(verifyHosts, 30*time.Second, zk.WithLogger(discard{}))
	if err != nil {
		return nil, fmt.Errorf("rehearsal: connect %v: %w", verifyHosts, err)
	}
	defer conn.Close()
	read := func(do func() error) error {
		for {
			err := do()
			if err == nil || !isConnLoss(err) {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	r := &Result{kazoo: w.kazoo != nil, expectedWatchers: len(w.watchers)}
	w.mu.Lock()
	r.ConnectionLosses, r.Errors = w.connLoss, slices.Clone(w.errs)
	requests := slices.Clone(w.requests)
	beacon := w.beaconVal
	for _, st := range w.watchers {
		if w.final != "" && st.last == w.final {
			r.WatchersFinal++
		}
	}
	w.mu.Unlock()

	// The switch: the first connection loss.
	for _, s := range w.sessions {
		if t := s.firstDisconnect(); !t.IsZero() && (r.SwitchAt.IsZero() || t.Before(r.SwitchAt)) {
			r.SwitchAt = t
		}
	}
	sw := r.SwitchAt
	if sw.IsZero() {
		sw = time.Now() // nothing is "after" the switch
	}

	// Request times.
	var before []time.Duration
	for _, q := range requests {
		r.Requests++
		r.Longest = max(r.Longest, q.took)
		if q.start.Add(q.took).Before(sw) {
			before = append(before, q.took)
		} else if q.start.After(sw.Add(-time.Second)) && q.start.Before(sw.Add(time.Second)) {
			r.LongestAcross = max(r.LongestAcross, q.took)
		}
	}
	if len(before) > 0 {
		slices.Sort(before)
		r.P99Before = before[len(before)*99/100]
	}

	// Sessions and their ephemerals.
	ephOwner := map[string]int64{}
	for _, s := range w.sessions {
		if s.name == "setup" {
			continue
		}
		r.Sessions++
		if s.expired.Load() || s.conn.SessionID() != s.id {
			r.SessionsLost = append(r.SessionsLost, fmt.Sprintf("%s %#x (now %#x, expired %v)", s.name, s.id, s.conn.SessionID(), s.expired.Load()))
		}
	}
	for i, s := range w.writerSessions {
		ephOwner[w.ephPath(i)] = s.id
	}
	if w.report != nil {
		for _, c := range w.report.Clients {
			r.Sessions++
			lost := c.Session != c.SessionNow
			var states []string
			for _, st := range c.States {
				s, _ := st[1].(string)
				states = append(states, s)
				if s == "LOST" {
					lost = true
				}
			}
			r.KazooStates = append(r.KazooStates, c.Name+": "+strings.Join(states, ","))
			if lost {
				r.SessionsLost = append(r.SessionsLost, fmt.Sprintf("%s %s (now %s, states %v)", c.Name, c.Session, c.SessionNow, states))
			}
			id, err := strconv.ParseInt(strings.TrimPrefix(c.Session, "0x"), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("rehearsal: kazoo session %q: %w", c.Session, err)
			}
			ephOwner[c.Ephemeral] = id
		}
		if len(w.report.Stuck) > 0 {
			r.RecipeProblems = append(r.RecipeProblems, "kazoo contenders did not stop: "+strings.Join(w.report.Stuck, ", "))
		}
		var probs []string
		r.LockBefore, r.LockAfter, probs = checkLog(w.report.Log, "lock-acquired", "lock-released", sw)
		r.RecipeProblems = append(r.RecipeProblems, probs...)
		r.ElectedBefore, r.ElectedAfter, probs = checkLog(w.report.Log, "elected", "resigned", sw)
		r.RecipeProblems = append(r.RecipeProblems, probs...)
	}
	paths := make([]string, 0, len(ephOwner))
	for p := range ephOwner {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		r.Ephemerals++
		var st *zk.Stat
		var ok bool
		if err := read(func() (err error) { ok, st, err = conn.Exists(p); return err }); err != nil {
			return nil, fmt.Errorf("rehearsal: read %s in the journal: %w", p, err)
		}
		switch {
		case !ok:
			r.EphemeralsLost = append(r.EphemeralsLost, p+" (missing)")
		case st.EphemeralOwner != ephOwner[p]:
			r.EphemeralsLost = append(r.EphemeralsLost, fmt.Sprintf("%s (owned by %#x, not %#x)", p, st.EphemeralOwner, ephOwner[p]))
		}
	}

	// Writes: every id in its final state, once.
	for _, ws := range w.writers {
		var kids []string
		if err := read(func() (err error) { kids, _, err = conn.Children(ws.dir); return err }); err != nil {
			return nil, fmt.Errorf("rehearsal: list %s in the journal: %w", ws.dir, err)
		}
		count := map[int64]int{}
		for _, k := range kids {
			id, ok := writeID(k)
			if !ok {
				r.UnknownEntries = append(r.UnknownEntries, ws.dir+"/"+k)
				continue
			}
			count[id]++
		}
		r.WritesAcked += len(ws.acked)
		r.WritesApplied += len(ws.applied)
		r.WritesRetried += ws.retried
		for id, name := range ws.acked {
			if count[id] == 0 {
				r.AckedMissing = append(r.AckedMissing, name)
			}
		}
		for id, n := range count {
			_, acked := ws.acked[id]
			switch {
			case n > 1:
				r.Duplicates = append(r.Duplicates, fmt.Sprintf("%s/k%08d- (%d times)", ws.dir, id, n))
			case !acked && !ws.applied[id]:
				r.UnknownEntries = append(r.UnknownEntries, fmt.Sprintf("%s/k%08d- (neither acknowledged nor found after a loss)", ws.dir, id))
			}
		}
	}
	slices.Sort(r.AckedMissing)
	slices.Sort(r.Duplicates)

	// Watches.
	w.mu.Lock()
	for _, st := range w.watchers {
		across := func(rec watchRecord) bool {
			return rec.set.Before(r.SwitchAt) && rec.fired.After(r.SwitchAt) && rec.typ == zk.EventNodeDataChanged
		}
		n := 0
		for _, rec := range st.records {
			if across(rec) {
				n++
			}
		}
		r.BeaconWatchesAcross += n
		if across(st.late) {
			r.WatchesAcross = append(r.WatchesAcross, 1)
		} else {
			r.WatchesAcross = append(r.WatchesAcross, 0)
		}
	}
	w.mu.Unlock()
	var data []byte
	if err := read(func() (err error) { data, _, err = conn.Get(w.cfg.Root + "/beacon"); return err }); err != nil {
		return nil, fmt.Errorf("rehearsal: read the beacon in the journal: %w", err)
	}
	r.BeaconFinal = string(data) == strconv.FormatInt(beacon, 10)
	return r, nil
}

// writeID parses k<id>-<sequence>.
func writeID(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, "k")
	if !ok {
		return 0, false
	}
	idStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(idStr, 10, 64)
	return id, err == nil
}

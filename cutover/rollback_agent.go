package cutover

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
)

// The proxy's side of a rollback (see "Rollback" in the package
// documentation): the orchestrator holds the proxy (holdRequest.To shadow:
// the tap stops relaying client bytes to the journal), and after the commit
// asks it to switch back; the agent checks the committed phase itself, reads
// the journal → ZooKeeper zxid map and switches the tap back to ZooKeeper
// with it (dualwrite's SwitchToZooKeeper), which releases the hold. A hold
// whose deadline passes is settled by the phase, as forward: shadow switches
// back, primary releases the clients to the journal.

// zxidMap reads the journal's zxid map from the first member that answers,
// after a read barrier there, with the phase it was read in.
func (a *Agent) zxidMap(ctx context.Context) (string, []raftjournal.ZxidPeriod, error) {
	var errs []error
	for _, m := range a.cfg.Members() {
		phase, zm, err := raftjournal.NewAdminClient(m, a.cfg.Credentials).ZxidMap(ctx)
		if err == nil {
			a.notePhase(phase)
			return phase, zm, nil
		}
		errs = append(errs, err)
	}
	return "", nil, fmt.Errorf("cutover: no journal member answered: %w", errors.Join(errs...))
}

// loadZxidMap installs the journal's zxid map in a tap that relays to
// ZooKeeper, once (a proxy started after a rollback rewrites its clients'
// journal zxids too); a journal that does not answer is asked again at the
// next tick.
func (a *Agent) loadZxidMap(ctx context.Context) {
	a.mu.Lock()
	done := a.mapLoaded
	a.mu.Unlock()
	if done {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, zm, err := a.zxidMap(rctx)
	if err != nil {
		return
	}
	a.cfg.Tap.SetZxidMap(zm)
	a.mu.Lock()
	a.mapLoaded = true
	a.mu.Unlock()
}

// startAfterRollback prepares a tap started held for relaying to ZooKeeper
// when the proxy had switched to the journal before it stopped and the
// journal is shadow now: a rollback committed while it was down (or before
// it could switch back). Its clients come back with the journal's zxids, so
// the tap gets the journal's zxid map before it relays anything (without it
// ZooKeeper refuses their reconnects until the next tick loads the map), and
// the switch record goes, as switchBack removes it: left behind, it would
// make every later start hold the clients until the journal answers, in
// shadow, where ZooKeeper alone is the source of truth. A proxy that never
// switched has nothing to prepare.
func (a *Agent) startAfterRollback(ctx context.Context) error {
	if !SwitchedBefore(a.cfg.StateDir) {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	phase, zm, err := a.zxidMap(rctx)
	if err != nil {
		return err
	}
	if phase != raftjournal.PhaseShadow.String() {
		return fmt.Errorf("rollback: the journal is %s now; reading its phase again", phase)
	}
	a.cfg.Tap.SetZxidMap(zm)
	a.mu.Lock()
	a.mapLoaded = true
	a.mu.Unlock()
	if err := os.Remove(filepath.Join(a.cfg.StateDir, switchedFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Warn("rollback: cannot remove the switch record from the state dir; after a restart this proxy waits for the journal's phase", "err", err)
	}
	a.log.Info("rollback: the journal rolled back to ZooKeeper while this proxy was stopped; relaying to ZooKeeper with the journal's zxid map", "zxid-map-periods", len(zm))
	return nil
}

// switchBack switches the tap back to ZooKeeper, only when the journal's
// committed phase is shadow, with the journal's zxid map.
func (a *Agent) switchBack(ctx context.Context, why string) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	phase, zm, err := a.zxidMap(rctx)
	if err != nil {
		return err
	}
	if phase != raftjournal.PhaseShadow.String() {
		return fmt.Errorf("rollback: the journal is %s; a proxy switches back only when it is shadow", phase)
	}
	n := a.cfg.Tap.SwitchToZooKeeper(zm)
	a.mu.Lock()
	a.hold, a.mapLoaded = nil, true
	fire := a.switched
	a.switched = false
	a.mu.Unlock()
	a.setErr(nil)
	if a.cfg.StateDir != "" {
		if err := os.Remove(filepath.Join(a.cfg.StateDir, switchedFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			a.log.Warn("rollback: cannot remove the switch record from the state dir; after a restart this proxy waits for the journal's phase", "err", err)
		}
	}
	a.log.Info("rollback: proxy switched back to ZooKeeper", "why", why, "closed-connections", n, "zxid-map-periods", len(zm))
	if fire && a.cfg.OnSwitchBack != nil {
		a.cfg.OnSwitchBack()
	}
	return nil
}

// handleSwitchBack switches back only when the journal's committed phase
// says shadow.
func (a *Agent) handleSwitchBack(w http.ResponseWriter, r *http.Request) {
	var req holdRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := a.switchBack(ctx, "rollback "+req.ID); err != nil {
		writeErr(w, http.StatusConflict, err)
		return
	}
	writeJSON(w, http.StatusOK, a.State())
}

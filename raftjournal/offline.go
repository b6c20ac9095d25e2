package raftjournal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/zk2raft/zk2raft/znode"
)

// Offline bootstrap:
//
// The importer builds a journal's first state outside raft (an FSM fed
// ImportBatch entries straight from a snapshot file, hundreds of thousands of
// nodes a second) and installs it here as the data dir's only Raft snapshot,
// carrying a bootstrap configuration with one voter: the node that will serve
// the directory. The first Open of that directory restores the snapshot like
// any restart (the configuration comes from the snapshot's metadata, so
// Bootstrap is not needed and is ignored), elects itself, and every node that
// joins later catches up by snapshot install, because no log precedes the
// snapshot.
//
// Indexes: the snapshot stands where the log would be had the import run
// through raft after BootstrapCluster: the configuration at index 1 of term
// 1, the import entries after it. The snapshot's index is the FSM's applied
// index (the importer applies its entries at 2, 3, ...), and the stable
// store's current term is set to 1, so raft's invariant (no term in the log
// above the current term) holds from the start.
//
// The snapshot is decoded as it is written (every record's CRC, the trailer
// against the records, the digest against the state), so a snapshot that would
// not restore is never installed.
//
// Crash safety: nothing is written to the data dir before the whole state is
// built; the snapshot goes to snapshots/ID.tmp and is renamed into place when
// complete and fsync'd (raft's file snapshot store), and only then are the log
// stores created. A crash before the rename leaves a directory that
// CheckFreshDataDir still accepts (the LOCK file, an empty snapshots dir and
// unfinished *.tmp snapshots); a crash after it leaves a journal that starts
// (the term is then set by the first election).

// ErrDataDirNotEmpty is returned (wrapped, naming what was found) by
// CheckFreshDataDir and InstallInitialSnapshot when the data dir already holds
// a journal or anything else: an offline bootstrap never overwrites or wipes.
var ErrDataDirNotEmpty = errors.New("raftjournal: data dir is not empty")

// bootstrapConfigIndex and bootstrapTerm place the initial snapshot's
// configuration where BootstrapCluster would have put it.
const (
	bootstrapConfigIndex = 1
	bootstrapTerm        = 1
)

// CheckFreshDataDir reports whether dir can take an offline bootstrap: it is
// missing, empty, or holds only what an interrupted bootstrap leaves behind
// (the LOCK file, an empty snapshots dir, unfinished *.tmp snapshots). Any
// other content is an error matching ErrDataDirNotEmpty; one that holds a
// journal (a snapshot or a Raft log) says so.
func CheckFreshDataDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raftjournal: read data dir: %w", err)
	}
	var other []string
	for _, e := range ents {
		switch name := e.Name(); {
		case name == "LOCK" && e.Type().IsRegular():
		case name == snapshotDirName && e.IsDir():
			snaps, err := os.ReadDir(filepath.Join(dir, name))
			if err != nil {
				return fmt.Errorf("raftjournal: read data dir: %w", err)
			}
			for _, s := range snaps {
				if !strings.HasSuffix(s.Name(), ".tmp") {
					return fmt.Errorf("%w: %s holds a journal (snapshot %s)", ErrDataDirNotEmpty, dir, filepath.Join(name, s.Name()))
				}
			}
		case name == "raft":
			return fmt.Errorf("%w: %s holds a journal (Raft log in %s)", ErrDataDirNotEmpty, dir, filepath.Join(dir, name))
		default:
			other = append(other, name)
		}
	}
	if len(other) > 0 {
		more := ""
		if len(other) > 3 {
			more = fmt.Sprintf(" and %d more", len(other)-3)
			other = other[:3]
		}
		return fmt.Errorf("%w: %s holds %s%s", ErrDataDirNotEmpty, dir, strings.Join(other, ", "), more)
	}
	return nil
}

// InitialSnapshot describes a snapshot InstallInitialSnapshot wrote.
type InitialSnapshot struct {
	ID       string // raft's snapshot id (directory name under snapshots/)
	Path     string // the state file
	Index    uint64 // raft index of the snapshot (the FSM's applied index)
	Term     uint64
	Bytes    int64  // state file size
	NodeID   string // the configuration's only voter
	RaftAddr string
	Trailer  znode.SnapshotTrailer // of the state file as written
}

// InstallInitialSnapshot writes fsm's state into cfg.DataDir as the journal's
// initial Raft snapshot, with a configuration of one voter (cfg.NodeID at
// cfg.AdvertiseAddr, or cfg.RaftAddr), so that Open with the same data dir,
// node id and address starts with that state and leads the cluster others
// join. The data dir must pass CheckFreshDataDir; it is locked while the
// snapshot is written, so a running node cannot share it. fsm's applied index
// must be at least 2 (see "Offline bootstrap" above) and it must not be
// applied to concurrently.
func InstallInitialSnapshot(cfg NodeConfig, fsm *FSM) (InitialSnapshot, error) {
	var info InitialSnapshot
	if err := cfg.Validate(); err != nil {
		return info, err
	}
	addr := cfg.RaftAddr
	if cfg.AdvertiseAddr != "" {
		addr = cfg.AdvertiseAddr
	}
	index := fsm.Status().AppliedIndex
	if index <= bootstrapConfigIndex {
		return info, fmt.Errorf("raftjournal: initial snapshot: the FSM's applied index is %d, want at least %d", index, bootstrapConfigIndex+1)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := cfg.DataDir
	if err := CheckFreshDataDir(dir); err != nil {
		return info, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return info, fmt.Errorf("raftjournal: create data dir: %w", err)
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return info, err
	}
	defer lock.release()
	// Checked again under the lock: a node may have started in between.
	if err := CheckFreshDataDir(dir); err != nil {
		return info, err
	}
	snapDir := filepath.Join(dir, snapshotDirName)
	if ents, err := os.ReadDir(snapDir); err == nil {
		for _, e := range ents { // unfinished snapshots of an interrupted bootstrap
			if err := os.RemoveAll(filepath.Join(snapDir, e.Name())); err != nil {
				return info, fmt.Errorf("raftjournal: remove unfinished snapshot: %w", err)
			}
		}
	}

	hl := newHclog(logger, "offline-bootstrap")
	fss, err := raft.NewFileSnapshotStoreWithLogger(dir, max(cfg.SnapshotRetain, 1), hl)
	if err != nil {
		return info, fmt.Errorf("raftjournal: open snapshot store in %s: %w", dir, err)
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(cfg.NodeID), Address: raft.ServerAddress(addr)}}}
	sink, err := fss.Create(1, index, bootstrapTerm, conf, bootstrapConfigIndex, peerEncoder{})
	if err != nil {
		return info, fmt.Errorf("raftjournal: create initial snapshot in %s: %w", snapDir, err)
	}
	// The bytes written are decoded as they go, on another goroutine (every
	// record's CRC, the trailer against the records), so the file is checked
	// without a second pass over it.
	cs := &countingSink{SnapshotSink: sink}
	pr, pw := io.Pipe()
	checked := make(chan error, 1)
	var readTr znode.SnapshotTrailer
	go func() {
		var err error
		readTr, err = readThrough(pr)
		pr.CloseWithError(err)
		checked <- err
	}()
	tr, err := fsm.WriteSnapshot(io.MultiWriter(cs, pw))
	pw.CloseWithError(err)
	cerr := <-checked
	switch {
	case err != nil:
		_ = sink.Cancel()
		return info, fmt.Errorf("raftjournal: write initial snapshot: %w", err)
	case cerr != nil:
		_ = sink.Cancel()
		return info, fmt.Errorf("raftjournal: initial snapshot does not read back: %w", cerr)
	case readTr.NodeCount != tr.NodeCount || readTr.Digest != tr.Digest || readTr.Digest != fsm.Digest():
		_ = sink.Cancel()
		return info, fmt.Errorf("raftjournal: initial snapshot reads back as %d nodes with digest %v, written %d with %v, the state has %v",
			readTr.NodeCount, readTr.Digest, tr.NodeCount, tr.Digest, fsm.Digest())
	}
	if err := sink.Close(); err != nil {
		return info, fmt.Errorf("raftjournal: finish initial snapshot: %w", err)
	}
	info = InitialSnapshot{
		ID: sink.ID(), Path: filepath.Join(snapDir, sink.ID(), stateFileName), Index: index, Term: bootstrapTerm,
		Bytes: cs.n, NodeID: cfg.NodeID, RaftAddr: addr, Trailer: tr,
	}

	// The log stores come last (see "Crash safety"), with the term the
	// snapshot's entries would have been written in.
	st, err := openStores(dir, &cfg, hl)
	if err != nil {
		return info, err
	}
	err = st.stable.SetUint64([]byte("CurrentTerm"), bootstrapTerm)
	if cerr := st.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return info, fmt.Errorf("raftjournal: set initial term in %s: %w", dir, err)
	}
	// The first start checks the snapshot is still there (datadir.go).
	if err := writeStopped(dir, stoppedRecord{LastIndex: index, LastTerm: bootstrapTerm, LogStore: cfg.LogStore, Time: time.Now().UTC()}); err != nil {
		return info, err
	}
	if err := syncOfflineDir(dir); err != nil {
		return info, fmt.Errorf("raftjournal: sync data dir: %w", err)
	}
	logger.Info("installed initial snapshot", "data-dir", dir, "snapshot", info.ID, "index", index,
		"nodes", tr.NodeCount, "digest", tr.Digest.String(), "voter", cfg.NodeID, "raft-addr", addr)
	return info, nil
}

// readThrough reads a snapshot stream to its end, verifying it.
func readThrough(r io.Reader) (znode.SnapshotTrailer, error) {
	sr, err := znode.NewSnapshotReader(r)
	if err != nil {
		return znode.SnapshotTrailer{}, err
	}
	defer sr.Close()
	for {
		if _, err := sr.Next(); err != nil {
			if err == io.EOF {
				_, _ = io.Copy(io.Discard, r)
				return sr.Trailer(), nil
			}
			return znode.SnapshotTrailer{}, err
		}
	}
}

// peerEncoder is the one Transport method a snapshot store needs (the legacy
// peer list in the metadata): NetworkTransport encodes an address as its bytes.
type peerEncoder struct{ raft.Transport }

func (peerEncoder) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte { return []byte(addr) }

func syncOfflineDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

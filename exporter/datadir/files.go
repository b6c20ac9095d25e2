package datadir

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Compression is how a snapshot file is compressed, from its name's last
// extension as ZooKeeper reads it (SnapStream.getStreamMode).
type Compression string

// The compressions ZooKeeper writes (zookeeper.snapshot.compression.method).
const (
	CompressionNone   Compression = ""
	CompressionGzip   Compression = "gz"
	CompressionSnappy Compression = "snappy"
)

func (c Compression) String() string {
	if c == CompressionNone {
		return "none"
	}
	return string(c)
}

// SnapshotFile is a snapshot in a data directory: snapshot.<hex zxid>[.gz|.snappy].
type SnapshotFile struct {
	Path        string
	Zxid        int64 // from the name: the last zxid applied when it was started
	Compression Compression
}

// LogFile is a transaction log: log.<hex zxid of its first txn>.
type LogFile struct {
	Path string
	Zxid int64 // from the name
}

// Files lists a data directory's snapshots and logs.
type Files struct {
	SnapDir   string         // the version-2 directory holding the snapshots
	LogDir    string         // the version-2 directory holding the logs
	Snapshots []SnapshotFile // newest first
	Logs      []LogFile      // oldest first
}

// versionDir is where ZooKeeper keeps its files below dataDir and dataLogDir
// (FileTxnSnapLog.version + VERSION).
const versionDir = "version-2"

// resolveDir accepts ZooKeeper's dataDir (or dataLogDir) or its version-2
// subdirectory.
func resolveDir(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("datadir: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("datadir: %s is not a directory", dir)
	}
	if sub := filepath.Join(dir, versionDir); isDir(sub) {
		return sub, nil
	}
	if filepath.Base(filepath.Clean(dir)) == versionDir {
		return dir, nil
	}
	return "", fmt.Errorf("datadir: %s holds no %s directory: not a ZooKeeper dataDir", dir, versionDir)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// Scan lists the snapshots in dataDir and the logs in logDir (dataDir when
// empty: ZooKeeper's dataLogDir defaults to its dataDir). Either may be
// ZooKeeper's directory or its version-2 subdirectory.
func Scan(dataDir, logDir string) (*Files, error) {
	snapDir, err := resolveDir(dataDir)
	if err != nil {
		return nil, err
	}
	f := &Files{SnapDir: snapDir, LogDir: snapDir}
	if logDir != "" {
		if f.LogDir, err = resolveDir(logDir); err != nil {
			return nil, err
		}
	}
	if err := f.rescan(); err != nil {
		return nil, err
	}
	return f, nil
}

// rescan reads both directories again.
func (f *Files) rescan() error {
	snaps, err := os.ReadDir(f.SnapDir)
	if err != nil {
		return fmt.Errorf("datadir: %w", err)
	}
	f.Snapshots = f.Snapshots[:0]
	for _, e := range snaps {
		if z, ok := parseFileZxid(e.Name(), "snapshot"); ok && e.Type().IsRegular() {
			f.Snapshots = append(f.Snapshots, SnapshotFile{Path: filepath.Join(f.SnapDir, e.Name()), Zxid: z, Compression: compressionOf(e.Name())})
		}
	}
	slices.SortStableFunc(f.Snapshots, func(a, b SnapshotFile) int { return cmp.Compare(b.Zxid, a.Zxid) })
	logs, err := os.ReadDir(f.LogDir)
	if err != nil {
		return fmt.Errorf("datadir: %w", err)
	}
	f.Logs = f.Logs[:0]
	for _, e := range logs {
		if z, ok := parseFileZxid(e.Name(), "log"); ok && e.Type().IsRegular() {
			f.Logs = append(f.Logs, LogFile{Path: filepath.Join(f.LogDir, e.Name()), Zxid: z})
		}
	}
	slices.SortStableFunc(f.Logs, func(a, b LogFile) int { return cmp.Compare(a.Zxid, b.Zxid) })
	return nil
}

// parseFileZxid reads the zxid from a file name as Util.getZxidFromName
// does: the second dot-separated part, in hex, after the prefix.
func parseFileZxid(name, prefix string) (int64, bool) {
	parts := strings.Split(filepath.Base(name), ".")
	if len(parts) < 2 || parts[0] != prefix {
		return -1, false
	}
	z, err := strconv.ParseInt(parts[1], 16, 64)
	if err != nil {
		return -1, false
	}
	return z, true
}

// compressionOf reads a snapshot name's last extension as
// SnapStream.getStreamMode does: gz, snappy, or anything else plain.
func compressionOf(name string) Compression {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		switch strings.ToLower(parts[len(parts)-1]) {
		case "gz":
			return CompressionGzip
		case "snappy":
			return CompressionSnappy
		}
	}
	return CompressionNone
}

// isNotExist reports whether err says a file is gone (a purge raced us).
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

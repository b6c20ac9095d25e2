package verify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/zk2raft/zk2raft/zkclient"
)

// JournalOpener opens a journal data directory read-only as a Source: its
// latest FSM snapshot plus the log after it, without starting a node, refusing
// a directory a running node has locked. verify does not import raftjournal
// (DESIGN.md's layout); the command line supplies the opener.
type JournalOpener func(ctx context.Context, dir string) (Source, error)

// OpenOptions are what Open needs besides the URI.
type OpenOptions struct {
	// Auth are ZooKeeper credentials for zk:// sides.
	Auth []zkclient.Auth
	// Sessions and Workers tune zk:// walks; 0 means the walker's defaults.
	Sessions, Workers int
	// Journal opens journal:// sides; nil makes them ErrUnsupported.
	Journal JournalOpener
	// Logger receives the sources' log lines; nil discards them.
	Logger *slog.Logger
}

// URI is a side's address, parsed (ParseURI) but not opened.
type URI struct {
	Raw    string // as given
	Scheme string // zk, snap, journal or datadir
	// Hosts and Chroot: zk:// (Chroot "/" when none).
	Hosts  []string
	Chroot string
	// Path: the file of snap://, the directory of journal:// and datadir://.
	Path string
	// LogDir and Zxid: datadir://'s log and zxid parameters.
	LogDir string
	Zxid   int64
}

// ParseURI checks a side's URI without any I/O. Its errors match
// ErrInvalidURI: a command line reports them as usage errors.
func ParseURI(uri string) (URI, error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return URI{}, fmt.Errorf("%w %q: want zk://HOSTS[/CHROOT], snap://FILE, journal://DATA_DIR or datadir://ZK_DATA_DIR", ErrInvalidURI, uri)
	}
	u := URI{Raw: uri, Scheme: scheme}
	switch scheme {
	case "zk":
		cs, err := zkclient.ParseConnectString(rest)
		if err != nil {
			return URI{}, fmt.Errorf("%w %q: %w", ErrInvalidURI, uri, err)
		}
		hostPart, _, _ := strings.Cut(rest, "/")
		for _, h := range strings.Split(hostPart, ",") {
			h = strings.TrimSpace(h)
			if afterIPv6 := h[strings.LastIndexByte(h, ']')+1:]; !strings.Contains(afterIPv6, ":") {
				return URI{}, fmt.Errorf("%w %q: host %q has no port", ErrInvalidURI, uri, h)
			}
		}
		u.Hosts, u.Chroot = cs.Hosts, cs.Chroot
		if u.Chroot == "" {
			u.Chroot = "/"
		}
	case "snap":
		if rest == "" {
			return URI{}, fmt.Errorf("%w %q: no file", ErrInvalidURI, uri)
		}
		u.Path = rest
	case "journal":
		if rest == "" {
			return URI{}, fmt.Errorf("%w %q: no data directory", ErrInvalidURI, uri)
		}
		u.Path = rest
	case "datadir":
		dir, logDir, zxid, err := parseDataDirURI(rest)
		if err != nil {
			return URI{}, fmt.Errorf("%w %q: %v", ErrInvalidURI, uri, err)
		}
		u.Path, u.LogDir, u.Zxid = dir, logDir, zxid
	default:
		return URI{}, fmt.Errorf("%w %q: unknown scheme %q, want zk, snap, journal or datadir", ErrInvalidURI, uri, scheme)
	}
	return u, nil
}

// Open opens a side by URI (ParseURI):
//
//	zk://host:port[,host:port...][/chroot]   a live ensemble (or a journal node's ZooKeeper port)
//	snap://FILE                              a snapshot file (snap:///abs/path or snap://rel/path)
//	journal://DATA_DIR                       a journal data directory, read-only
//	datadir://ZK_DATA_DIR[?log=DIR][&zxid=Z] a ZooKeeper server's data directory, read-only
func Open(ctx context.Context, uri string, opts OpenOptions) (Source, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "zk":
		return NewZooKeeperSource(ZKOptions{Hosts: u.Hosts, Chroot: u.Chroot, Auth: opts.Auth,
			Sessions: opts.Sessions, Workers: opts.Workers, Logger: opts.Logger})
	case "snap":
		return OpenSnapshot(u.Path)
	case "journal":
		if opts.Journal == nil {
			return nil, fmt.Errorf("%w: journal:// sources are not yet supported by this build (%s); compare a journal node's FSM snapshot with snap://FILE instead", ErrUnsupported, uri)
		}
		return opts.Journal(ctx, u.Path)
	default: // datadir
		return OpenDataDir(ctx, uri, u.Path, u.LogDir, u.Zxid, opts.Logger)
	}
}

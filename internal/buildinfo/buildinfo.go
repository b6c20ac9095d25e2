// Package buildinfo says which zk2raft this is. Version is set at link time
// (-ldflags "-X github.com/zk2raft/zk2raft/internal/buildinfo.version=v1.2.3") and
// otherwise taken from the module and VCS data Go embeds in every build.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

var version = "" // set by -ldflags; empty means "ask the build info"

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Read returns the build information of the running binary.
func Read() Info {
	info := Info{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if info.Version == "" {
			info.Version = "devel"
		}
		return info
	}
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	if info.Version == "" || info.Version == "(devel)" {
		info.Version = "devel"
	}
	return info
}

// Version is the short version string recorded in snapshot headers.
func Version() string {
	i := Read()
	if i.Commit != "" && i.Version == "devel" {
		c := i.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if i.Modified {
			c += "-dirty"
		}
		return "devel-" + c
	}
	return i.Version
}

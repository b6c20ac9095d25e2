package zktest

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults applied by Start to zero Options fields.
const (
	DefaultTickTime     = 200 * time.Millisecond
	DefaultMaxHeapMB    = 512
	DefaultStartTimeout = 60 * time.Second
)

// ErrInvalidOptions is returned (wrapped) by Options.Validate.
var ErrInvalidOptions = errors.New("zktest: invalid options")

// Options configures an ensemble. The zero value is a usable single server.
type Options struct {
	// Servers is the ensemble size: 1 (standalone) or 3. Zero means 1.
	Servers int

	// ExtendedTypes sets -Dzookeeper.extendedTypesEnabled=true so TTL nodes
	// can be created.
	ExtendedTypes bool

	// TickTime is ZooKeeper's tickTime, in whole milliseconds. Zero means
	// DefaultTickTime. initLimit and syncLimit are derived so they stay
	// about 10s and 5s whatever the tick. Sessions may negotiate timeouts
	// from 2 ticks up to 60s (maxSessionTimeout is raised so clients asking
	// for ordinary timeouts are not clamped by the short tick).
	TickTime time.Duration

	// JuteMaxBuffer sets -Djute.maxbuffer in bytes on the servers. Zero
	// leaves ZooKeeper's default (0xfffff). Clients reading large nodes need
	// the same limit on their side.
	JuteMaxBuffer int

	// MaxHeapMB is the JVM's -Xmx in MiB. Zero means DefaultMaxHeapMB.
	MaxHeapMB int

	// SystemProperties are extra -Dkey=value JVM system properties, passed
	// after the defaults so they override them.
	SystemProperties map[string]string

	// ServerSystemProperties are extra system properties for one server,
	// by server id (1-based), passed after SystemProperties so they
	// override them: a test can run the members of one ensemble with
	// different settings (e.g. each its own snapshot compression).
	ServerSystemProperties map[int]map[string]string

	// JVMArgs are extra raw JVM arguments, passed after everything else
	// (before the main class).
	JVMArgs []string

	// Config holds extra zoo.cfg entries, written after the defaults so they
	// override them (e.g. "forceSync": "yes", "snapCount": "1000").
	// dataDir, dataLogDir, clientPort, clientPortAddress and server.N are
	// owned by zktest and rejected.
	Config map[string]string

	// BaseDir is where each server's directory (server-N, holding zoo.cfg,
	// data and zookeeper.log) is created. Empty means a fresh temporary
	// directory that Close removes; a given BaseDir is left in place.
	BaseDir string

	// StartTimeout bounds Start, StartServer, Restart and Wait when their
	// context has no deadline. Zero means DefaultStartTimeout.
	StartTimeout time.Duration

	// Install overrides the result of Find.
	Install *Install
}

// Validate reports whether the options can be used.
func (o Options) Validate() error {
	if o.Servers != 0 && o.Servers != 1 && o.Servers != 3 {
		return fmt.Errorf("%w: Servers is %d, want 1 or 3", ErrInvalidOptions, o.Servers)
	}
	if o.TickTime < 0 || (o.TickTime > 0 && o.TickTime < time.Millisecond) {
		return fmt.Errorf("%w: TickTime %v is not a positive number of milliseconds", ErrInvalidOptions, o.TickTime)
	}
	if o.JuteMaxBuffer < 0 {
		return fmt.Errorf("%w: JuteMaxBuffer %d is negative", ErrInvalidOptions, o.JuteMaxBuffer)
	}
	if o.MaxHeapMB < 0 {
		return fmt.Errorf("%w: MaxHeapMB %d is negative", ErrInvalidOptions, o.MaxHeapMB)
	}
	if o.StartTimeout < 0 {
		return fmt.Errorf("%w: StartTimeout %v is negative", ErrInvalidOptions, o.StartTimeout)
	}
	for k := range o.Config {
		switch {
		case k == "dataDir", k == "dataLogDir", k == "clientPort", k == "clientPortAddress", strings.HasPrefix(k, "server."):
			return fmt.Errorf("%w: Config[%q] is set by zktest", ErrInvalidOptions, k)
		case k == "" || strings.ContainsAny(k, "=\n"):
			return fmt.Errorf("%w: Config key %q", ErrInvalidOptions, k)
		}
	}
	for k, v := range o.Config {
		if strings.Contains(v, "\n") {
			return fmt.Errorf("%w: Config[%q] contains a newline", ErrInvalidOptions, k)
		}
	}
	for k := range o.SystemProperties {
		if k == "" || strings.Contains(k, "=") {
			return fmt.Errorf("%w: system property name %q", ErrInvalidOptions, k)
		}
	}
	for id, props := range o.ServerSystemProperties {
		if n := max(o.Servers, 1); id < 1 || id > n {
			return fmt.Errorf("%w: ServerSystemProperties for server %d of %d", ErrInvalidOptions, id, n)
		}
		for k := range props {
			if k == "" || strings.Contains(k, "=") {
				return fmt.Errorf("%w: server %d: system property name %q", ErrInvalidOptions, id, k)
			}
		}
	}
	return nil
}

// withDefaults fills zero fields.
func (o Options) withDefaults() Options {
	if o.Servers == 0 {
		o.Servers = 1
	}
	if o.TickTime == 0 {
		o.TickTime = DefaultTickTime
	}
	if o.MaxHeapMB == 0 {
		o.MaxHeapMB = DefaultMaxHeapMB
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	return o
}

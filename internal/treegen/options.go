package treegen

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// Profile names accepted in Options.Profile.
const (
	ProfileKafka       = "kafka"       // a Kafka (ZooKeeper mode) cluster's tree
	ProfileRegistry    = "registry"    // service discovery: ephemeral sequential members
	ProfileConfig      = "config"      // deep configuration trees with small values
	ProfileAdversarial = "adversarial" // every tree-shaped input that breaks copiers
)

// Profiles lists the profile names in a stable order.
func Profiles() []string {
	return []string{ProfileKafka, ProfileRegistry, ProfileConfig, ProfileAdversarial}
}

// Defaults applied to zero Options fields.
const (
	DefaultNodes          = 10_000
	DefaultBigChildren    = 100_000
	DefaultDeepLevels     = 500
	DefaultConcurrency    = 256
	DefaultConns          = 8
	DefaultSessionTimeout = 30 * time.Second
	// DefaultTTL is the TTL of the adversarial profile's TTL nodes: long
	// enough that no test ever sees one expire.
	DefaultTTL = 30 * 24 * time.Hour
	// maxMultiBatchBytes bounds one multi request's encoded size, well under
	// jute.maxbuffer (the server's limit for a whole request frame).
	maxMultiBatchBytes = 512 << 10
)

// Errors returned by Options.Validate, NewPlan, Seed and Apply.
var (
	// ErrInvalidOptions is returned (wrapped) when Options fail Validate.
	ErrInvalidOptions = errors.New("treegen: invalid options")
	// ErrRootExists is returned by Apply when Options.Root already exists
	// (or, for Root "/", has children other than /zookeeper): the generator
	// writes only into an empty place so the model is the whole truth.
	ErrRootExists = errors.New("treegen: root already exists")
	// ErrUnexpectedResult is returned when ZooKeeper's answer differs from
	// the plan's prediction, for instance a sequential child got another
	// name because something else wrote under its parent.
	ErrUnexpectedResult = errors.New("treegen: unexpected result")
	// ErrSessionExpired is returned by Tree.Err once a session holding
	// generated ephemerals has expired, so the ephemerals are gone.
	ErrSessionExpired = errors.New("treegen: ephemeral-holding session expired")
	// ErrClosed is returned by Tree.Err after Close.
	ErrClosed = errors.New("treegen: tree closed")
)

// Options configures a generated tree. The zero value (with a Profile) is
// usable; zero fields take the Default… values.
type Options struct {
	// Profile is one of Profiles().
	Profile string

	// Nodes is the approximate number of nodes to create. Zero means
	// DefaultNodes. The adversarial profile's fixed classes (BigChildren
	// and DeepLevels alone) may exceed it; extra budget becomes filler.
	Nodes int

	// Seed makes the tree deterministic: the same Options give the same
	// plan, byte for byte.
	Seed int64

	// Root is the path under which the tree is written. Empty means "/".
	// Any other root must not exist yet (its missing ancestors are created
	// as scaffolding, outside the model), so tests can share an ensemble
	// under distinct roots.
	Root string

	// Concurrency is the number of requests kept in flight. Zero means
	// DefaultConcurrency.
	Concurrency int

	// Conns is the number of client connections persistent nodes are
	// written over (ephemerals go over their owners' sessions). Zero means
	// DefaultConns.
	Conns int

	// BigChildren is the number of children of the adversarial profile's
	// wide node (input class 3). Zero means DefaultBigChildren; tests pass
	// a small number to stay fast.
	BigChildren int

	// DeepLevels is the depth of the adversarial profile's deep path (input
	// class 4), counted below Root. Zero means DefaultDeepLevels.
	DeepLevels int

	// MultiBatch > 1 writes plain persistent creates in multi requests of
	// up to that many ops. Nodes of one multi share a zxid, which real
	// trees rarely show, so it is off by default.
	MultiBatch int

	// SessionTimeout is asked for by every session, in particular the ones
	// holding ephemerals. Zero means DefaultSessionTimeout.
	SessionTimeout time.Duration

	// Logger receives progress and go-zookeeper's messages. Nil discards.
	Logger *slog.Logger
}

// withDefaults fills zero fields.
func (o Options) withDefaults() Options {
	if o.Nodes == 0 {
		o.Nodes = DefaultNodes
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Conns == 0 {
		o.Conns = DefaultConns
	}
	if o.BigChildren == 0 {
		o.BigChildren = DefaultBigChildren
	}
	if o.DeepLevels == 0 {
		o.DeepLevels = DefaultDeepLevels
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports whether the options can be used.
func (o Options) Validate() error {
	if !slices.Contains(Profiles(), o.Profile) {
		return fmt.Errorf("%w: profile %q, want one of %v", ErrInvalidOptions, o.Profile, Profiles())
	}
	if o.Root != "" {
		if err := znode.ValidatePath(o.Root); err != nil {
			return fmt.Errorf("%w: root: %w", ErrInvalidOptions, err)
		}
		if znode.IsSystemPath(o.Root) {
			return fmt.Errorf("%w: root %q is ZooKeeper's own subtree", ErrInvalidOptions, o.Root)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"Nodes", o.Nodes}, {"Concurrency", o.Concurrency}, {"Conns", o.Conns},
		{"BigChildren", o.BigChildren}, {"DeepLevels", o.DeepLevels}, {"MultiBatch", o.MultiBatch},
	} {
		if f.v < 0 {
			return fmt.Errorf("%w: %s is %d, must not be negative", ErrInvalidOptions, f.name, f.v)
		}
	}
	if o.Conns > 32 {
		// ZooKeeper allows 60 connections per client address by default;
		// leave room for ephemeral sessions and the caller's own clients.
		return fmt.Errorf("%w: Conns is %d, at most 32", ErrInvalidOptions, o.Conns)
	}
	if o.SessionTimeout < 0 {
		return fmt.Errorf("%w: SessionTimeout %v is negative", ErrInvalidOptions, o.SessionTimeout)
	}
	return nil
}

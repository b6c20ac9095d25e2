package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// Keys of the journal checkpoints the cutover keeps (replicated, in every
// phase, written with raftjournal.SetCheckpoint).
const (
	// ProxyKeyPrefix + a proxy's id holds its ProxyRecord.
	ProxyKeyPrefix = "zk2raft/proxy/"
	// TokenKey fences the commit: "<cutover id>/hold" while a cutover may
	// commit; a proxy whose hold expires, or an aborting orchestrator,
	// writes "<id>/expired" or "<id>/aborted", and SetPhase's guard then
	// refuses a late commit.
	TokenKey = "zk2raft/cutover/token"
	// LogKey holds the last cutover's Progress (JSON), step by step.
	LogKey = "zk2raft/cutover/log"
)

// Submitter submits encoded entries to the journal (dualwrite.Journal,
// importer.JournalCluster).
type Submitter interface {
	Submit(ctx context.Context, entry []byte) (*raftjournal.Result, error)
}

// ProxyRecord is a proxy's registration with the cluster.
type ProxyRecord struct {
	ID string `json:"id"`
	// Listen is the address its clients connect to; Admin its admin HTTP
	// address (/status, /metrics and the cutover's /cutover/...).
	Listen     string    `json:"listen"`
	Admin      string    `json:"admin"`
	ZooKeeper  []string  `json:"zookeeper"`
	Registered time.Time `json:"registered"`
	Version    string    `json:"version,omitempty"`
}

// submit applies one command and returns its error, the entry's included.
func submit(ctx context.Context, j Submitter, c raftjournal.Command) error {
	res, err := j.Submit(ctx, raftjournal.Encode(c))
	if err == nil && res != nil {
		err = res.Err
	}
	return err
}

// Register records a proxy in the journal (replacing an older record of the
// same id).
func Register(ctx context.Context, j Submitter, rec ProxyRecord) error {
	if rec.ID == "" || rec.Admin == "" {
		return errors.New("cutover: a proxy registers with an id and an admin address")
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := submit(ctx, j, &raftjournal.SetCheckpoint{Checkpoint: raftjournal.Checkpoint{Key: ProxyKeyPrefix + rec.ID, Value: v}}); err != nil {
		return fmt.Errorf("cutover: register proxy %s: %w", rec.ID, err)
	}
	return nil
}

// Unregister removes a proxy's record (a proxy taken out of service: the
// gates stop waiting for it).
func Unregister(ctx context.Context, j Submitter, id string) error {
	if err := submit(ctx, j, &raftjournal.SetCheckpoint{Checkpoint: raftjournal.Checkpoint{Key: ProxyKeyPrefix + id}}); err != nil {
		return fmt.Errorf("cutover: unregister proxy %s: %w", id, err)
	}
	return nil
}

// proxiesOf decodes the proxy records among checkpoints.
func proxiesOf(cps []raftjournal.Checkpoint) ([]ProxyRecord, error) {
	var out []ProxyRecord
	for _, cp := range cps {
		if !strings.HasPrefix(cp.Key, ProxyKeyPrefix) {
			continue
		}
		var r ProxyRecord
		if err := json.Unmarshal(cp.Value, &r); err != nil {
			return nil, fmt.Errorf("cutover: proxy record %s: %w", cp.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// holdToken, expiredToken and abortedToken are TokenKey's values.
func holdToken(id string) []byte    { return []byte(id + "/hold") }
func expiredToken(id string) []byte { return []byte(id + "/expired") }
func abortedToken(id string) []byte { return []byte(id + "/aborted") }

// setToken writes TokenKey.
func setToken(ctx context.Context, j Submitter, v []byte) error {
	return submit(ctx, j, &raftjournal.SetCheckpoint{Checkpoint: raftjournal.Checkpoint{Key: TokenKey, Value: v}})
}

// createVia creates path (empty, world:anyone) through the ZooKeeper-protocol
// address addr unless it exists.
func createVia(ctx context.Context, addr, path string, auth []string) error {
	au, err := zkclient.ParseAuths(auth)
	if err != nil {
		return err
	}
	c, err := zkclient.Dial(ctx, zkclient.Config{Hosts: []string{addr}, Auth: au})
	if err != nil {
		return fmt.Errorf("cutover: connect to %s: %w", addr, err)
	}
	defer c.Close()
	if _, _, err := c.Create(ctx, path, nil, znode.WorldAnyone(), zkwire.ModePersistent); err != nil && !errors.Is(err, zkclient.ErrNodeExists) {
		return fmt.Errorf("cutover: create %s through %s: %w", path, addr, err)
	}
	return nil
}

// UnregisterProxy removes a proxy's registration through the journal named
// in o.
func UnregisterProxy(ctx context.Context, o Options, id string) error {
	e, err := newEnv(o)
	if err != nil {
		return err
	}
	defer e.close()
	return Unregister(ctx, e.cluster, id)
}

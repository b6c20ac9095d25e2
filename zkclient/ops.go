package zkclient

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// abs turns a path of the typed calls into the server's path (the chroot
// applied).
func (c *Client) abs(path string) string {
	switch {
	case c.cfg.Chroot == "":
		return path
	case path == "/":
		return c.cfg.Chroot
	}
	return c.cfg.Chroot + path
}

// rel turns a server path back into the caller's (the chroot removed).
func (c *Client) rel(path string) string {
	root := c.cfg.Chroot
	switch {
	case root == "":
		return path
	case path == root:
		return "/"
	case strings.HasPrefix(path, root) && len(path) > len(root) && path[len(root)] == '/':
		return path[len(root):]
	}
	return path
}

// do runs one typed call on path (the caller's, named in errors).
func (c *Client) do(ctx context.Context, op zkwire.OpCode, req zkwire.Request, path string, watch watchKind) (zkwire.Response, error) {
	return c.call(ctx, &Call{op: op, req: req, path: path, watch: watch})
}

// ---- reads ----

// Exists returns the node's stat, and false (with no error) when the node
// does not exist.
func (c *Client) Exists(ctx context.Context, path string) (znode.WireStat, bool, error) {
	return c.exists(ctx, path, 0)
}

// ExistsWatch is Exists that also sets a one-shot watch: a data watch if the
// node exists, an exist watch (fired by its creation) if it does not. The
// event comes on Events.
func (c *Client) ExistsWatch(ctx context.Context, path string) (znode.WireStat, bool, error) {
	return c.exists(ctx, path, watchData|watchExist)
}

func (c *Client) exists(ctx context.Context, path string, w watchKind) (znode.WireStat, bool, error) {
	resp, err := c.do(ctx, zkwire.OpExists, &zkwire.ExistsRequest{Path: c.abs(path), Watch: w != 0}, path, w)
	if zkwire.CodeOf(err) == zkwire.CodeNoNode {
		return znode.WireStat{}, false, nil
	}
	if err != nil {
		return znode.WireStat{}, false, err
	}
	return resp.(*zkwire.ExistsResponse).Stat, true, nil
}

// GetData returns the node's data (nil and empty kept apart) and stat.
func (c *Client) GetData(ctx context.Context, path string) ([]byte, znode.WireStat, error) {
	return c.getData(ctx, path, 0)
}

// GetDataWatch is GetData that also sets a one-shot data watch.
func (c *Client) GetDataWatch(ctx context.Context, path string) ([]byte, znode.WireStat, error) {
	return c.getData(ctx, path, watchData)
}

func (c *Client) getData(ctx context.Context, path string, w watchKind) ([]byte, znode.WireStat, error) {
	resp, err := c.do(ctx, zkwire.OpGetData, &zkwire.GetDataRequest{Path: c.abs(path), Watch: w != 0}, path, w)
	if err != nil {
		return nil, znode.WireStat{}, err
	}
	r := resp.(*zkwire.GetDataResponse)
	return r.Data, r.Stat, nil
}

// GetACL returns the node's ACL list and stat.
func (c *Client) GetACL(ctx context.Context, path string) ([]znode.ACL, znode.WireStat, error) {
	resp, err := c.do(ctx, zkwire.OpGetACL, &zkwire.GetACLRequest{Path: c.abs(path)}, path, 0)
	if err != nil {
		return nil, znode.WireStat{}, err
	}
	r := resp.(*zkwire.GetACLResponse)
	return r.ACL, r.Stat, nil
}

// GetChildren returns the node's child names (in the server's order) and
// its stat (getChildren2).
func (c *Client) GetChildren(ctx context.Context, path string) ([]string, znode.WireStat, error) {
	return c.getChildren(ctx, path, 0)
}

// GetChildrenWatch is GetChildren that also sets a one-shot child watch.
func (c *Client) GetChildrenWatch(ctx context.Context, path string) ([]string, znode.WireStat, error) {
	return c.getChildren(ctx, path, watchChild)
}

func (c *Client) getChildren(ctx context.Context, path string, w watchKind) ([]string, znode.WireStat, error) {
	resp, err := c.do(ctx, zkwire.OpGetChildren2, &zkwire.GetChildrenRequest{Path: c.abs(path), Watch: w != 0}, path, w)
	if err != nil {
		return nil, znode.WireStat{}, err
	}
	r := resp.(*zkwire.GetChildren2Response)
	return r.Children, r.Stat, nil
}

// Sync makes the server the client is connected to catch up with the
// leader, so that later reads see every write committed before the call.
func (c *Client) Sync(ctx context.Context, path string) error {
	_, err := c.do(ctx, zkwire.OpSync, &zkwire.SyncRequest{Path: c.abs(path)}, path, 0)
	return err
}

// GetEphemerals returns the session's ephemeral nodes whose paths start with
// prefix ("/" for all).
func (c *Client) GetEphemerals(ctx context.Context, prefix string) ([]string, error) {
	resp, err := c.do(ctx, zkwire.OpGetEphemerals, &zkwire.GetEphemeralsRequest{PrefixPath: c.abs(prefix)}, prefix, 0)
	if err != nil {
		return nil, err
	}
	paths := resp.(*zkwire.GetEphemeralsResponse).Ephemerals
	for i, p := range paths {
		paths[i] = c.rel(p)
	}
	return paths, nil
}

// GetAllChildrenNumber returns the number of nodes below path (all levels).
func (c *Client) GetAllChildrenNumber(ctx context.Context, path string) (int, error) {
	resp, err := c.do(ctx, zkwire.OpGetAllChildrenNumber, &zkwire.GetAllChildrenNumberRequest{Path: c.abs(path)}, path, 0)
	if err != nil {
		return 0, err
	}
	return int(resp.(*zkwire.GetAllChildrenNumberResponse).TotalNumber), nil
}

// WhoAmI returns the session's authenticated identities.
func (c *Client) WhoAmI(ctx context.Context) ([]zkwire.ClientInfo, error) {
	resp, err := c.do(ctx, zkwire.OpWhoAmI, nil, "", 0)
	if err != nil {
		return nil, err
	}
	return resp.(*zkwire.WhoAmIResponse).ClientInfo, nil
}

// ---- writes ----

// Create creates a node (create2, or createContainer for ModeContainer) and
// returns its path (with the sequence suffix of a sequential mode) and
// stat. The TTL modes need CreateTTL.
func (c *Client) Create(ctx context.Context, path string, data []byte, acl []znode.ACL, mode zkwire.CreateMode) (string, znode.WireStat, error) {
	op, req, err := c.createReq(path, data, acl, mode, 0)
	if err != nil {
		return "", znode.WireStat{}, err
	}
	return c.create(ctx, op, req, path)
}

// CreateTTL creates a node with a TTL mode (ModePersistentWithTTL,
// ModePersistentSequentialWithTTL): the server deletes it once it has had
// no children and no change for ttl (it needs
// zookeeper.extendedTypesEnabled).
func (c *Client) CreateTTL(ctx context.Context, path string, data []byte, acl []znode.ACL, mode zkwire.CreateMode, ttl time.Duration) (string, znode.WireStat, error) {
	if !mode.TTL() {
		return "", znode.WireStat{}, fmt.Errorf("zkclient: create %s: %v is not a TTL mode", path, mode)
	}
	op, req, err := c.createReq(path, data, acl, mode, ttl)
	if err != nil {
		return "", znode.WireStat{}, err
	}
	return c.create(ctx, op, req, path)
}

func (c *Client) createReq(path string, data []byte, acl []znode.ACL, mode zkwire.CreateMode, ttl time.Duration) (zkwire.OpCode, zkwire.Request, error) {
	switch {
	case mode.TTL():
		if ttl <= 0 {
			return 0, nil, fmt.Errorf("zkclient: create %s: %v needs a positive TTL", path, mode)
		}
		return zkwire.OpCreateTTL, &zkwire.CreateTTLRequest{Path: c.abs(path), Data: data, ACL: acl, Flags: mode, TTL: ttl.Milliseconds()}, nil
	case mode == zkwire.ModeContainer:
		return zkwire.OpCreateContainer, &zkwire.CreateRequest{Path: c.abs(path), Data: data, ACL: acl, Flags: mode}, nil
	case mode >= zkwire.ModePersistent && mode <= zkwire.ModeEphemeralSequential:
		return zkwire.OpCreate2, &zkwire.CreateRequest{Path: c.abs(path), Data: data, ACL: acl, Flags: mode}, nil
	}
	return 0, nil, fmt.Errorf("zkclient: create %s: unknown mode %v", path, mode)
}

func (c *Client) create(ctx context.Context, op zkwire.OpCode, req zkwire.Request, path string) (string, znode.WireStat, error) {
	resp, err := c.do(ctx, op, req, path, 0)
	if err != nil {
		return "", znode.WireStat{}, err
	}
	r := resp.(*zkwire.Create2Response)
	return c.rel(r.Path), r.Stat, nil
}

// Delete deletes a node at version (−1: any).
func (c *Client) Delete(ctx context.Context, path string, version int32) error {
	_, err := c.do(ctx, zkwire.OpDelete, &zkwire.DeleteRequest{Path: c.abs(path), Version: version}, path, 0)
	return err
}

// SetData replaces a node's data at version (−1: any) and returns its new
// stat.
func (c *Client) SetData(ctx context.Context, path string, data []byte, version int32) (znode.WireStat, error) {
	resp, err := c.do(ctx, zkwire.OpSetData, &zkwire.SetDataRequest{Path: c.abs(path), Data: data, Version: version}, path, 0)
	if err != nil {
		return znode.WireStat{}, err
	}
	return resp.(*zkwire.SetDataResponse).Stat, nil
}

// SetACL replaces a node's ACL at ACL version (−1: any) and returns its new
// stat.
func (c *Client) SetACL(ctx context.Context, path string, acl []znode.ACL, aversion int32) (znode.WireStat, error) {
	resp, err := c.do(ctx, zkwire.OpSetACL, &zkwire.SetACLRequest{Path: c.abs(path), ACL: acl, Version: aversion}, path, 0)
	if err != nil {
		return znode.WireStat{}, err
	}
	return resp.(*zkwire.SetACLResponse).Stat, nil
}

// ---- watches and credentials ----

// AddWatch sets a persistent watch (recursive or not) on path; the client
// sets it again on every new connection and session. Its events come on
// Events.
func (c *Client) AddWatch(ctx context.Context, path string, mode zkwire.AddWatchMode) error {
	abs := c.abs(path)
	if _, err := c.do(ctx, zkwire.OpAddWatch, &zkwire.AddWatchRequest{Path: abs, Mode: mode}, path, 0); err != nil {
		return err
	}
	c.mu.Lock()
	c.watches.persistent[abs] = mode
	c.mu.Unlock()
	return nil
}

// RemoveWatches removes the session's watches of the given type on path
// (WatcherAny: all of them, persistent ones included). ZooKeeper answers
// NoWatcher when there is none.
func (c *Client) RemoveWatches(ctx context.Context, path string, typ zkwire.WatcherType) error {
	abs := c.abs(path)
	if _, err := c.do(ctx, zkwire.OpRemoveWatches, &zkwire.RemoveWatchesRequest{Path: abs, Type: typ}, path, 0); err != nil {
		return err
	}
	c.mu.Lock()
	c.watches.remove(abs, typ)
	c.mu.Unlock()
	return nil
}

// CheckWatches asks whether the session has a watch of the given type on
// path: nil if it has, an error matching ErrNoWatcher if not.
func (c *Client) CheckWatches(ctx context.Context, path string, typ zkwire.WatcherType) error {
	_, err := c.do(ctx, zkwire.OpCheckWatches, &zkwire.CheckWatchesRequest{Path: c.abs(path), Type: typ}, path, 0)
	return err
}

// AddAuth adds a credential to the session (addauth) and keeps it for later
// connections. ZooKeeper answers a refused credential with AuthFailed and
// closes the connection: AddAuth then returns an error matching
// ErrAuthFailed and does not keep the credential (the client reconnects
// with the session as it was).
func (c *Client) AddAuth(ctx context.Context, scheme string, cred []byte) error {
	_, err := c.do(ctx, zkwire.OpAuth, &zkwire.AuthPacket{Scheme: scheme, Auth: cred}, "scheme "+scheme, 0)
	if zkwire.CodeOf(err) == zkwire.CodeAuthFailed {
		return fmt.Errorf("%w: scheme %s: %w", ErrAuthFailed, scheme, err)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.auths = append(c.auths, Auth{Scheme: scheme, Cred: append([]byte(nil), cred...)})
	c.mu.Unlock()
	return nil
}

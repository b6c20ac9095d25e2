package exporter

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
)

// wireSession is a multiRead walk's session: a zkclient.Client with the
// FailPending policy, so that a read whose connection dies fails at once and
// the walk retries it (session.go's rules), and whose errors are converted to
// the go-zookeeper vocabulary the walk classifies (convertError): one set of
// rules whichever client read the node.
type wireSession struct {
	c *zkclient.Client
}

// dialWire opens a session on the index-th server of the sorted list (the
// walk spreads its sessions so), whose reply zxids feed tr.
func (w *Walker) dialWire(ctx context.Context, index int, tr *replyTracker) (*wireSession, error) {
	hosts := slices.Clone(w.cfg.Hosts)
	slices.Sort(hosts)
	c, err := zkclient.Dial(ctx, zkclient.Config{
		Hosts:          hosts,
		FirstHost:      index % len(hosts),
		Retry:          zkclient.FailPending,
		Auth:           w.cfg.Auth,
		SessionTimeout: w.cfg.SessionTimeout,
		DialTimeout:    w.cfg.ConnectTimeout,
		Dialer:         w.cfg.Dialer,
		MaxReplyFrame:  w.cfg.MaxBufferSize,
		OnReply:        tr.observe,
		Logger:         w.cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return &wireSession{c: c}, nil
}

// SessionID is the current session's id.
func (s *wireSession) SessionID() int64 { return s.c.SessionID() }

// Server is the server the session is connected to.
func (s *wireSession) Server() string { return s.c.Server() }

// Close ends the session.
func (s *wireSession) Close() { _ = s.c.Close() }

// Sync asks the server to catch up with the leader, as zk.Conn.Sync does.
func (s *wireSession) Sync(path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.c.SessionTimeout())
	defer cancel()
	if err := s.c.Sync(ctx, path); err != nil {
		return "", convertError(err)
	}
	return path, nil
}

// send writes reqs in one write; see zkclient.Client.Send.
func (s *wireSession) send(reqs ...zkclient.Request) []*zkclient.Call { return s.c.Send(reqs...) }

// wait waits for a call's reply, its error converted.
func wait(ctx context.Context, cl *zkclient.Call) (zkwire.Response, error) {
	resp, err := cl.Wait(ctx)
	return resp, convertError(err)
}

// convertError maps a zkclient error to go-zookeeper's of the same meaning:
// connection loss (retried), the client closed, refused credentials, and
// ZooKeeper's own error codes (convertCode). Context errors and others pass
// as they are.
func convertError(err error) error {
	var ze *zkwire.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zkclient.ErrConnectionLoss):
		return fmt.Errorf("%w: %v", zk.ErrConnectionClosed, err)
	case errors.Is(err, zkclient.ErrClosed):
		return zk.ErrClosing
	case errors.Is(err, zkclient.ErrAuthFailed):
		return fmt.Errorf("%w: %v", zk.ErrAuthFailed, err)
	case errors.As(err, &ze):
		return convertCode(ze.Code)
	}
	return err
}

// convertCode maps a ZooKeeper error code to go-zookeeper's error of the
// same meaning.
func convertCode(code zkwire.Code) error {
	switch code {
	case zkwire.CodeOK:
		return nil
	case zkwire.CodeNoNode:
		return zk.ErrNoNode
	case zkwire.CodeNoAuth:
		return zk.ErrNoAuth
	case zkwire.CodeSessionExpired:
		return zk.ErrSessionExpired
	case zkwire.CodeSessionMoved:
		return zk.ErrSessionMoved
	case zkwire.CodeConnectionLoss:
		return zk.ErrConnectionClosed
	case zkwire.CodeAuthFailed:
		return zk.ErrAuthFailed
	case zkwire.CodeBadArguments:
		return zk.ErrBadArguments
	}
	// The "zk: " prefix makes retryable treat it as final, as it does
	// go-zookeeper's own errors.
	return fmt.Errorf("zk: %w", code.Err())
}

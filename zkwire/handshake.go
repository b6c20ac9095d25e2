package zkwire

import (
	"errors"
	"fmt"
	"io"
)

// Errors of ClientHandshake.
var (
	// ErrSessionExpired: the server refused to resume the session asked for
	// (expired, or a wrong password).
	ErrSessionExpired = errors.New("zkwire: session expired")
	// ErrSessionRefused: the server refused to open a new session.
	ErrSessionRefused = errors.New("zkwire: new session refused")
	// ErrReadOnlyServer: the server answered in read-only mode (it is cut off
	// from the quorum).
	ErrReadOnlyServer = errors.New("zkwire: read-only server")
)

// ClientHandshake is a client's side of the connect exchange: it sends req
// (a 16-byte zero password when it has none) on w and reads the server's
// connect response from fr. A server that is behind req.LastZxidSeen closes
// without answering, which fails the read. A response without a session is
// ErrSessionExpired when req resumed one and ErrSessionRefused otherwise; a
// read-only one is returned with ErrReadOnlyServer.
func ClientHandshake(w io.Writer, fr *FrameReader, req ConnectRequest) (ConnectResponse, error) {
	var resp ConnectResponse
	if len(req.Passwd) == 0 {
		req.Passwd = make([]byte, 16)
	}
	if _, err := w.Write(AppendRecordFrame(nil, &req)); err != nil {
		return resp, err
	}
	p, err := fr.Next()
	if err != nil {
		return resp, fmt.Errorf("no connect response: %w", err)
	}
	if resp, err = DecodeConnectResponse(p); err != nil {
		return resp, err
	}
	switch {
	case resp.SessionID == 0 || resp.TimeOut <= 0:
		if req.SessionID != 0 {
			return resp, ErrSessionExpired
		}
		return resp, ErrSessionRefused
	case resp.ReadOnly:
		return resp, ErrReadOnlyServer
	}
	return resp, nil
}

package raftjournal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// The Raft port's handshake: before a connection is routed to raft or to the
// journal RPC, each side proves it holds the cluster secret, without sending it
// (see "Security" in security.go). With mutual TLS the exchange runs inside the
// TLS session. All three messages have fixed sizes, so nothing a peer sends
// before it is authenticated is a length, and nothing is allocated for it.
//
//	listener → dialler   challenge  "ZK2R" | version u8 | flags u8 | nonce_l [32]
//	dialler → listener   hello      proto u8 | nonce_d [32] | HMAC(k, "client" …) [32]
//	listener → dialler   verdict    status u8 | HMAC(k, "server" …) [32]
//
// where HMAC(k, role …) is HMAC-SHA256 under the secret of
// "zk2raft-mux-v1 " + role + nonce_l + nonce_d + proto. flags bit 0 says the
// listener has a secret (a node running Insecure uses the empty key, and says
// so, so that a dialler with a secret refuses it rather than trust it). proto
// is 'R' (raft) or 'J' (the journal RPC). status 0 accepts the dialler; 1
// refuses it (its proof was wrong) and the connection is closed. The dialler
// checks the listener's proof in turn: a node that answers in a member's name
// without the secret is refused.
const (
	handshakeVersion   = 1
	handshakeNonceSize = 32
	handshakeMACSize   = sha256.Size

	challengeSize = 4 + 1 + 1 + handshakeNonceSize
	helloSize     = 1 + handshakeNonceSize + handshakeMACSize
	verdictSize   = 1 + handshakeMACSize

	flagHasSecret = 1
)

var handshakeMagic = [4]byte{'Z', 'K', '2', 'R'}

func handshakeMAC(secret []byte, role string, nonceL, nonceD []byte, proto byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("zk2raft-mux-v1 " + role))
	m.Write(nonceL)
	m.Write(nonceD)
	m.Write([]byte{proto})
	return m.Sum(nil)
}

// errHandshake marks a connection refused during the handshake.
type errHandshake struct{ msg string }

func (e *errHandshake) Error() string { return e.msg }
func (e *errHandshake) Unwrap() error { return ErrUnauthenticated }

// acceptHandshake runs the listener's side on a new connection and returns the
// protocol byte the dialler asked for. Deadlines are the caller's.
func acceptHandshake(c io.ReadWriter, secret []byte) (byte, error) {
	var ch [challengeSize]byte
	copy(ch[:4], handshakeMagic[:])
	ch[4] = handshakeVersion
	if len(secret) > 0 {
		ch[5] = flagHasSecret
	}
	nonceL := ch[6:]
	if _, err := rand.Read(nonceL); err != nil {
		return 0, err
	}
	if _, err := c.Write(ch[:]); err != nil {
		return 0, err
	}
	var hello [helloSize]byte
	if _, err := io.ReadFull(c, hello[:]); err != nil {
		return 0, err
	}
	return checkHello(c, secret, nonceL, hello[:])
}

// checkHello verifies a dialler's hello and answers with the verdict.
func checkHello(w io.Writer, secret, nonceL, hello []byte) (byte, error) {
	proto, nonceD, mac := hello[0], hello[1:1+handshakeNonceSize], hello[1+handshakeNonceSize:]
	var v [verdictSize]byte
	if !hmac.Equal(mac, handshakeMAC(secret, "client", nonceL, nonceD, proto)) {
		v[0] = 1
		_, _ = w.Write(v[:])
		return 0, &errHandshake{"raftjournal: the dialler does not hold the cluster secret"}
	}
	copy(v[1:], handshakeMAC(secret, "server", nonceL, nonceD, proto))
	if _, err := w.Write(v[:]); err != nil {
		return 0, err
	}
	return proto, nil
}

// dialHandshake runs the dialler's side for protocol proto on a connection to
// addr (named in errors). Deadlines are the caller's.
func dialHandshake(c io.ReadWriter, addr string, secret []byte, proto byte) error {
	var ch [challengeSize]byte
	if _, err := io.ReadFull(c, ch[:]); err != nil {
		return fmt.Errorf("raftjournal: %s: reading the handshake: %w", addr, err)
	}
	if [4]byte(ch[:4]) != handshakeMagic || ch[4] != handshakeVersion {
		return &errHandshake{fmt.Sprintf("raftjournal: %s does not speak the journal's Raft-port protocol (version %d): is it a journal node's --raft-addr, and the same zk2raft version?", addr, handshakeVersion)}
	}
	hasSecret := ch[5]&flagHasSecret != 0
	switch {
	case hasSecret && len(secret) == 0:
		return &errHandshake{fmt.Sprintf("raftjournal: %s requires the cluster secret, and none was given", addr)}
	case !hasSecret && len(secret) > 0:
		return &errHandshake{fmt.Sprintf("raftjournal: %s runs without a cluster secret (insecure); refusing to send it cluster traffic", addr)}
	}
	nonceL := ch[6:]
	var hello [helloSize]byte
	hello[0] = proto
	nonceD := hello[1 : 1+handshakeNonceSize]
	if _, err := rand.Read(nonceD); err != nil {
		return err
	}
	copy(hello[1+handshakeNonceSize:], handshakeMAC(secret, "client", nonceL, nonceD, proto))
	if _, err := c.Write(hello[:]); err != nil {
		return fmt.Errorf("raftjournal: %s: handshake: %w", addr, err)
	}
	var v [verdictSize]byte
	if _, err := io.ReadFull(c, v[:]); err != nil {
		return fmt.Errorf("raftjournal: %s: handshake: %w", addr, err)
	}
	if v[0] != 0 {
		return &errHandshake{fmt.Sprintf("raftjournal: %s refused the cluster secret: it is not the cluster's", addr)}
	}
	if !hmac.Equal(v[1:], handshakeMAC(secret, "server", nonceL, nonceD, proto)) {
		return &errHandshake{fmt.Sprintf("raftjournal: %s could not prove it holds the cluster secret", addr)}
	}
	return nil
}

// isHandshakeRefusal reports whether err is a refusal (wrong or missing
// secret, wrong protocol) rather than a network failure: retrying will not help.
func isHandshakeRefusal(err error) bool {
	var h *errHandshake
	return errors.As(err, &h)
}

package zktest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// defaultWordTimeout bounds a four-letter word when ctx has no deadline.
const defaultWordTimeout = 10 * time.Second

// Mode is a server's role as reported by the srvr four-letter word.
type Mode int

// Modes. ModeUnknown is returned with an error when the server did not answer.
const (
	ModeUnknown    Mode = iota
	ModeNotServing      // the JVM answers but has no quorum (or is still loading)
	ModeStandalone
	ModeLeader
	ModeFollower
	ModeObserver
	ModeReadOnly
)

var modeNames = [...]string{"unknown", "not-serving", "standalone", "leader", "follower", "observer", "read-only"}

func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Serving reports whether a server in this mode answers client requests with
// a quorum behind it.
func (m Mode) Serving() bool {
	switch m {
	case ModeStandalone, ModeLeader, ModeFollower, ModeObserver:
		return true
	}
	return false
}

// fourLetterWord dials addr, sends word and returns everything the server
// writes before closing the connection.
func fourLetterWord(ctx context.Context, addr, word string) (string, error) {
	if len(word) != 4 {
		return "", fmt.Errorf("zktest: four-letter word %q is not four bytes", word)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultWordTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("zktest: %s to %s: %w", word, addr, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(conn, word); err != nil {
		return "", fmt.Errorf("zktest: %s to %s: %w", word, addr, err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return string(b), fmt.Errorf("zktest: %s to %s: %w", word, addr, err)
	}
	return string(b), nil
}

// parseMode extracts the mode from srvr output.
func parseMode(srvr string) (Mode, error) {
	if strings.Contains(srvr, "not currently serving requests") {
		return ModeNotServing, nil
	}
	sc := bufio.NewScanner(strings.NewReader(srvr))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "Mode:")
		if !ok {
			continue
		}
		switch strings.TrimSpace(v) {
		case "standalone":
			return ModeStandalone, nil
		case "leader":
			return ModeLeader, nil
		case "follower":
			return ModeFollower, nil
		case "observer":
			return ModeObserver, nil
		case "read-only":
			return ModeReadOnly, nil
		}
		return ModeUnknown, fmt.Errorf("zktest: srvr reports unknown mode %q", strings.TrimSpace(v))
	}
	return ModeUnknown, fmt.Errorf("zktest: srvr answer has no Mode line: %q", srvr)
}

package zkclient

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// maxFourLetterReply bounds what a four-letter word may answer (mntr of a large
// server is a few KiB; hash holds at most 1024 lines).
const maxFourLetterReply = 4 << 20

// FourLetterWord sends a four-letter word ("ruok", "srvr", "mntr", "hash", …) to
// the server at addr and returns its whole answer. ZooKeeper answers and closes.
func FourLetterWord(ctx context.Context, addr, word string) (string, error) {
	if len(word) != 4 {
		return "", fmt.Errorf("zkclient: four-letter word %q is not four letters", word)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("zkclient: %s to %s: %w", word, addr, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, word); err != nil {
		return "", fmt.Errorf("zkclient: %s to %s: %w", word, addr, err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, maxFourLetterReply))
	if err != nil {
		return "", fmt.Errorf("zkclient: %s from %s: %w", word, addr, err)
	}
	s := string(b)
	if strings.Contains(s, "is not executed because it is not in the whitelist") {
		return "", fmt.Errorf("zkclient: %s refused by %s: add it to 4lw.commands.whitelist", word, addr)
	}
	return s, nil
}

// ZxidDigest is one entry of a server's digest log.
type ZxidDigest struct {
	Zxid   int64
	Digest znode.Digest
}

// ParseDigestLog reads the answer to the `hash` four-letter word: one line per
// logged zxid, "hex zxid: signed decimal digest" (DigestCommand). A server logs
// only zxids that are multiples of 128, and only its last 1024 of them.
func ParseDigestLog(s string) ([]ZxidDigest, error) {
	var out []ZxidDigest
	sc := bufio.NewScanner(strings.NewReader(s))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		zx, dg, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("zkclient: hash line %d: %q is not \"zxid: digest\"", line, text)
		}
		zxid, err := strconv.ParseUint(strings.TrimSpace(zx), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("zkclient: hash line %d: zxid %q: %w", line, zx, err)
		}
		d, err := znode.ParseDigest(strings.TrimSpace(dg))
		if err != nil {
			return nil, fmt.Errorf("zkclient: hash line %d: digest %q: %w", line, dg, err)
		}
		out = append(out, ZxidDigest{Zxid: int64(zxid), Digest: d})
	}
	return out, sc.Err()
}

// ServerZxid returns the last zxid a server has processed, from its `srvr` answer
// ("Zxid: 0x…").
func ServerZxid(ctx context.Context, addr string) (int64, error) {
	out, err := FourLetterWord(ctx, addr, "srvr")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Zxid:"); ok {
			z, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(v), "0x"), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("zkclient: srvr from %s: zxid %q: %w", addr, v, err)
			}
			return int64(z), nil
		}
	}
	return 0, fmt.Errorf("zkclient: srvr from %s has no Zxid line", addr)
}

// ZnodeCount asks the servers in turn for their node count (zk_znode_count in
// the answer to `mntr`) and returns the first answer. It counts every node of
// the tree, ZooKeeper's own included, so it is an estimate for progress bars.
func ZnodeCount(ctx context.Context, hosts []string) (int64, error) {
	var lastErr error
	for _, h := range hosts {
		out, err := FourLetterWord(ctx, h, "mntr")
		if err != nil {
			lastErr = err
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "zk_znode_count"); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("zkclient: mntr from %s: zk_znode_count %q: %w", h, v, err)
				}
				return n, nil
			}
		}
		lastErr = fmt.Errorf("zkclient: mntr from %s has no zk_znode_count", h)
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("zkclient: no hosts")
	}
	return 0, lastErr
}

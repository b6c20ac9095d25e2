package zkwire

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Frame size limits, in payload bytes (the 4-byte length prefix excluded).
const (
	// DefaultMaxBuffer is jute.maxbuffer's default, 0xfffff: the largest request
	// frame a ZooKeeper server accepts, and the limit for a server built on
	// zkwire reading client frames.
	DefaultMaxBuffer = 0xfffff

	// DefaultMaxReplyFrame is the default limit for frames read from a server
	// (by a client or a tap). Servers do not limit what they send: a
	// getChildren of a node with ~70k ten-byte names already exceeds 1 MiB.
	DefaultMaxReplyFrame = 64 << 20

	// MaxFrame is the largest length a frame can declare (2^31 − 1): the prefix
	// is a signed jute int.
	MaxFrame = math.MaxInt32
)

// parseLength validates a frame's length prefix against limit.
func parseLength(p []byte, limit int) (int, error) {
	n := binary.BigEndian.Uint32(p)
	if n > MaxFrame || int64(n) > int64(limit) {
		return 0, fmt.Errorf("%w: %d (limit %d)", ErrFrameLength, int32(n), limit)
	}
	return int(n), nil
}

// AppendFrame appends payload with its length prefix.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// BeginFrame appends a placeholder length prefix and returns the offset to
// pass to EndFrame once the payload has been appended after it, so that a
// frame is built without copying its payload.
func BeginFrame(dst []byte) ([]byte, int) {
	return append(dst, 0xff, 0xff, 0xff, 0xff), len(dst)
}

// EndFrame patches the length prefix that BeginFrame left at start.
func EndFrame(dst []byte, start int) []byte {
	n := len(dst) - start - 4
	if n < 0 || n > MaxFrame {
		panic(fmt.Sprintf("zkwire: EndFrame: payload length %d", n))
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst
}

// WriteFrame writes payload with its length prefix in one Write.
func WriteFrame(w io.Writer, payload []byte) error {
	_, err := w.Write(AppendFrame(make([]byte, 0, 4+len(payload)), payload))
	return err
}

// FrameReader reads length-prefixed frames from a stream, reusing one buffer.
type FrameReader struct {
	r     io.Reader
	limit int
	buf   []byte
	hdr   [4]byte
}

// NewFrameReader reads frames of at most limit payload bytes from r (limit ≤ 0
// means DefaultMaxBuffer). Use DefaultMaxBuffer for client frames (a server's
// view) and DefaultMaxReplyFrame or more for server frames.
func NewFrameReader(r io.Reader, limit int) *FrameReader {
	if limit <= 0 {
		limit = DefaultMaxBuffer
	}
	return &FrameReader{r: r, limit: min(limit, MaxFrame)}
}

// Next reads the next frame and returns its payload, which is valid until the
// next call. A stream that ends between frames returns io.EOF; one that ends
// inside a frame returns io.ErrUnexpectedEOF. A length below zero or above the
// limit returns an error wrapping ErrFrameLength, after which the stream is
// out of step and must be closed.
func (fr *FrameReader) Next() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err
	}
	return fr.payload()
}

// NextFirst reads a fresh connection's first message as a server does: if its
// first four bytes are a four-letter word, it returns the word and no frame
// (for stmk, payload holds the 8-byte trace mask that follows); otherwise it
// returns the first frame, as Next.
func (fr *FrameReader) NextFirst() (payload []byte, word FourLetterWord, err error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, 0, err
	}
	if w, ok := DetectFourLetterWord(fr.hdr[:]); ok {
		if w != WordStmk {
			return nil, w, nil
		}
		fr.buf = grow(fr.buf[:0], 8)
		if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
			return nil, w, noEOF(err)
		}
		return fr.buf, w, nil
	}
	p, err := fr.payload()
	return p, 0, err
}

func (fr *FrameReader) payload() ([]byte, error) {
	n, err := parseLength(fr.hdr[:], fr.limit)
	if err != nil {
		return nil, err
	}
	if n <= cap(fr.buf) {
		fr.buf = fr.buf[:n]
		if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
			return nil, noEOF(err)
		}
		return fr.buf, nil
	}
	// Grow with the bytes that actually arrive, so that a peer announcing a
	// large frame and sending nothing costs little memory.
	const step = 64 << 10
	fr.buf = fr.buf[:0]
	for len(fr.buf) < n {
		have := len(fr.buf)
		fr.buf = grow(fr.buf, min(n, max(step, 2*have)))
		if _, err := io.ReadFull(fr.r, fr.buf[have:]); err != nil {
			return nil, noEOF(err)
		}
	}
	return fr.buf, nil
}

// grow returns b extended to length n, reallocating only when needed.
func grow(b []byte, n int) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	nb := make([]byte, n, max(n, 2*cap(b)))
	copy(nb, b)
	return nb
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// FourLetterWord is one of the admin commands a client may send instead of a
// connect request: the first four bytes of the connection, read as a
// big-endian int (FourLetterCommands).
type FourLetterWord uint32

// The four-letter words ZooKeeper 3.8 knows. WordStmk is followed by an
// 8-byte trace mask. WordTelnetClose is the telnet "interrupt process, do"
// sequence (IAC IP IAC DO), which the server answers by closing the
// connection. A known word that is not whitelisted gets a one-line refusal;
// either way the server writes plain text and closes.
const (
	WordConf        FourLetterWord = 'c'<<24 | 'o'<<16 | 'n'<<8 | 'f'
	WordCons        FourLetterWord = 'c'<<24 | 'o'<<16 | 'n'<<8 | 's'
	WordCrst        FourLetterWord = 'c'<<24 | 'r'<<16 | 's'<<8 | 't'
	WordDirs        FourLetterWord = 'd'<<24 | 'i'<<16 | 'r'<<8 | 's'
	WordDump        FourLetterWord = 'd'<<24 | 'u'<<16 | 'm'<<8 | 'p'
	WordEnvi        FourLetterWord = 'e'<<24 | 'n'<<16 | 'v'<<8 | 'i'
	WordGtmk        FourLetterWord = 'g'<<24 | 't'<<16 | 'm'<<8 | 'k'
	WordHash        FourLetterWord = 'h'<<24 | 'a'<<16 | 's'<<8 | 'h'
	WordIsro        FourLetterWord = 'i'<<24 | 's'<<16 | 'r'<<8 | 'o'
	WordMntr        FourLetterWord = 'm'<<24 | 'n'<<16 | 't'<<8 | 'r'
	WordRuok        FourLetterWord = 'r'<<24 | 'u'<<16 | 'o'<<8 | 'k'
	WordSrst        FourLetterWord = 's'<<24 | 'r'<<16 | 's'<<8 | 't'
	WordSrvr        FourLetterWord = 's'<<24 | 'r'<<16 | 'v'<<8 | 'r'
	WordStat        FourLetterWord = 's'<<24 | 't'<<16 | 'a'<<8 | 't'
	WordStmk        FourLetterWord = 's'<<24 | 't'<<16 | 'm'<<8 | 'k'
	WordWchc        FourLetterWord = 'w'<<24 | 'c'<<16 | 'h'<<8 | 'c'
	WordWchp        FourLetterWord = 'w'<<24 | 'c'<<16 | 'h'<<8 | 'p'
	WordWchs        FourLetterWord = 'w'<<24 | 'c'<<16 | 'h'<<8 | 's'
	WordTelnetClose FourLetterWord = 0xfff4fffd
)

var knownWords = map[FourLetterWord]bool{
	WordConf: true, WordCons: true, WordCrst: true, WordDirs: true, WordDump: true, WordEnvi: true,
	WordGtmk: true, WordHash: true, WordIsro: true, WordMntr: true, WordRuok: true, WordSrst: true,
	WordSrvr: true, WordStat: true, WordStmk: true, WordWchc: true, WordWchp: true, WordWchs: true,
	WordTelnetClose: true,
}

// Known reports whether w is a word ZooKeeper 3.8 recognises.
func (w FourLetterWord) Known() bool { return knownWords[w] }

// String returns the word ("ruok"), "telnet close", or its hex value.
func (w FourLetterWord) String() string {
	if w == WordTelnetClose {
		return "telnet close"
	}
	if w.Known() {
		return string([]byte{byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w)})
	}
	return fmt.Sprintf("FourLetterWord(%#08x)", uint32(w))
}

// DetectFourLetterWord reports whether a connection's first four bytes (p
// holds at least four) are a known four-letter word. None collides with a
// valid connect-request length: all are above jute.maxbuffer or negative.
func DetectFourLetterWord(p []byte) (FourLetterWord, bool) {
	if len(p) < 4 {
		return 0, false
	}
	w := FourLetterWord(binary.BigEndian.Uint32(p))
	return w, w.Known()
}

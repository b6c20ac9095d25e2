package datadir

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/snappy"
)

// ZooKeeper's snappy snapshots (zookeeper.snapshot.compression.method=snappy)
// are written through xerial snappy-java's SnappyOutputStream (SnapStream),
// whose stream format is snappy-java's own, not Google's framing format:
//
//	header  byte magic[8] = 0x82 "SNAPPY" 0x00 | int version | int compatibleVersion
//	chunk*  int length | byte block[length]   (a raw snappy block, 32 KiB of input by default)
//
// Integers are big-endian. A chunk length equal to the magic's first four
// bytes read as an int starts another stream's header (concatenated streams,
// which SnappyInputStream accepts). Blocks are decoded with klauspost/compress
// (its xerial package does the same framing but only on whole buffers).

var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const (
	xerialHeaderSize = 16
	// xerialMaxChunk bounds one compressed chunk: snappy-java writes chunks
	// of at most its block size (32 KiB by default, configurable); far more
	// is a corrupt length.
	xerialMaxChunk = 64 << 20
)

var errXerial = errors.New("malformed snappy stream")

// xerialReader decompresses a snappy-java stream.
type xerialReader struct {
	r       io.Reader
	in      int64 // compressed bytes consumed (for error offsets)
	chunk   []byte
	out     []byte // decoded bytes not yet read
	outBuf  []byte
	started bool
	err     error
}

func newXerialReader(r io.Reader) *xerialReader { return &xerialReader{r: r} }

func (x *xerialReader) fail(format string, args ...any) error {
	x.err = fmt.Errorf("%w at compressed offset %d: %s", errXerial, x.in, fmt.Sprintf(format, args...))
	return x.err
}

func (x *xerialReader) readFull(b []byte) (int, error) {
	n, err := io.ReadFull(x.r, b)
	x.in += int64(n)
	return n, err
}

func (x *xerialReader) header(first []byte) error {
	var h [xerialHeaderSize]byte
	copy(h[:], first)
	if n, err := x.readFull(h[len(first):]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return x.fail("stream ends inside its %d-byte header (%d bytes)", xerialHeaderSize, len(first)+n)
		}
		x.err = err
		return err
	}
	if !bytes.Equal(h[:8], xerialMagic) {
		return x.fail("no snappy-java magic header")
	}
	if v := int32(binary.BigEndian.Uint32(h[8:])); v < 1 {
		return x.fail("snappy-java stream version %d", v)
	}
	return nil
}

func (x *xerialReader) Read(p []byte) (int, error) {
	for len(x.out) == 0 {
		if x.err != nil {
			return 0, x.err
		}
		if !x.started {
			x.started = true
			if err := x.header(nil); err != nil {
				return 0, err
			}
		}
		var lb [4]byte
		n, err := x.readFull(lb[:])
		if err == io.EOF {
			x.err = io.EOF
			return 0, io.EOF
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				return 0, x.fail("stream ends inside a chunk length (%d of 4 bytes)", n)
			}
			x.err = err
			return 0, err
		}
		if bytes.Equal(lb[:], xerialMagic[:4]) {
			if err := x.header(lb[:]); err != nil {
				return 0, err
			}
			continue
		}
		size := int32(binary.BigEndian.Uint32(lb[:]))
		if size < 0 || size > xerialMaxChunk {
			return 0, x.fail("chunk length %d out of range", size)
		}
		if cap(x.chunk) < int(size) {
			x.chunk = make([]byte, size)
		}
		x.chunk = x.chunk[:size]
		if got, err := x.readFull(x.chunk); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return 0, x.fail("stream ends %d bytes into a %d-byte chunk", got, size)
			}
			x.err = err
			return 0, err
		}
		dl, err := snappy.DecodedLen(x.chunk)
		if err != nil || dl > xerialMaxChunk {
			return 0, x.fail("chunk of %d bytes does not decode: %v", size, err)
		}
		if cap(x.outBuf) < dl {
			x.outBuf = make([]byte, dl)
		}
		out, err := snappy.Decode(x.outBuf[:dl], x.chunk)
		if err != nil {
			return 0, x.fail("chunk of %d bytes does not decode: %v", size, err)
		}
		x.out = out
	}
	n := copy(p, x.out)
	x.out = x.out[n:]
	return n, nil
}

package raftjournal

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// Fuzz targets for everything the Raft port reads from a peer: the
// handshake (both sides), the journal RPC's request frames (what a node reads)
// and its response frames (what a caller reads). Seeds: testdata/fuzz.

// rw is a connection whose reads come from a fuzz input.
type rw struct {
	io.Reader
	out bytes.Buffer
}

func (c *rw) Write(p []byte) (int, error) { return c.out.Write(p) }

var fuzzSecret = []byte("fuzz-cluster-secret-0123456789")

// FuzzHandshake feeds arbitrary bytes to both sides of the handshake. Neither
// may accept them (the nonces are fresh, so no input can carry a valid
// proof), panic, or read more than the fixed message sizes.
func FuzzHandshake(f *testing.F) {
	f.Add(strangerHello())
	f.Add(append(append([]byte("ZK2R"), handshakeVersion, flagHasSecret), make([]byte, handshakeNonceSize+verdictSize)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		if _, err := acceptHandshake(&rw{Reader: r}, fuzzSecret); err == nil {
			t.Fatal("the listener accepted a dialler without the secret")
		}
		if read := len(in) - r.Len(); read > helloSize {
			t.Fatalf("the listener read %d bytes", read)
		}
		r = bytes.NewReader(in)
		for _, secret := range [][]byte{fuzzSecret, nil} {
			if err := dialHandshake(&rw{Reader: r}, "fuzz", secret, muxJournal); err == nil {
				t.Fatal("the dialler accepted a listener without the secret")
			}
		}
	})
}

// FuzzRPCRequest reads request frames from arbitrary bytes as a node does:
// no panic, and no payload over its method's bound.
func FuzzRPCRequest(f *testing.F) {
	f.Add([]byte{rpcStatus, 0, 0, 0, 0})
	f.Add(append([]byte{rpcRemove, 0, 0, 0, 3}, appendString(nil, "n2")...))
	f.Add(append([]byte{rpcRead, 0, 0, 0, 4}, append(appendString(nil, "/a"), 1)...))
	f.Add([]byte{rpcApply, 0x10, 0, 0, 0})
	f.Add([]byte{rpcReadIndex, 0, 0x20, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			req, err := readRPCRequest(r)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errFrameTooLarge) {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if uint32(len(req.entry)) > maxRequestSize(req.method) || len(req.path) > maxSmallRPCFrame {
				t.Fatalf("a request over its bound: %+v", req)
			}
		}
	})
}

// FuzzRPCResponse reads a response frame from arbitrary bytes as a caller
// does, and decodes it: no panic, no frame over the bound.
func FuzzRPCResponse(f *testing.F) {
	f.Add(append([]byte{0, 0, 0, 0, 1}, 0))
	res := appendResult(nil, &Result{Index: 7, Zxid: 9, Ops: []OpResult{{Kind: OpCreate, Path: "/a"}}, Deleted: []string{"/b"}})
	f.Add(append([]byte{0, 0, 0, 0, byte(len(res))}, res...))
	e := appendError(nil, ErrNotLeader)
	f.Add(append([]byte{1, 0, 0, 0, byte(len(e))}, e...))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &rpcConn{r: bufio.NewReader(bytes.NewReader(in)), w: bufio.NewWriter(io.Discard)}
		resp, status, _, err := c.roundTrip(rpcApply, nil)
		if err != nil {
			return
		}
		if len(resp) > maxRPCFrame {
			t.Fatalf("a %d-byte response", len(resp))
		}
		if status == 0 {
			_, _ = decodeResult(resp)
			return
		}
		d := &decoder{b: resp}
		_ = decodeError(d)
		_ = d.finish()
	})
}

package datadir

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/adler32"
	"io"
	"os"
	"strconv"

	"github.com/klauspost/compress/gzip"

	"github.com/zk2raft/zk2raft/znode"
)

// The snapshot file, drawn where it is read (FileSnap, SnapStream,
// SerializeUtils, DataTree.serialize, ReferenceCountedACLCache):
//
//	header    int magic "ZKSN" | int version 2 | long dbid −1
//	sessions  int count | count × { long id | int timeoutMs }
//	ACLs      int count | count × { long index | int n | n × ACL{int perms | ustring scheme | ustring id} }
//	nodes     { ustring path | buffer data | long aclIndex | StatPersisted } ... until path "/"
//	          (the root's path is "", parents come before children; aclIndex −1 is
//	          world:anyone with every permission, kept out of the cache)
//	seal 1    long Adler32 of every byte before it | ustring "/"
//	[3.6+]    ZxidDigest{long zxid | int version | long digest (version < 2: ustring, hex)}
//	          seal 2: long Adler32 (running on, seal 1 included) | ustring "/"
//	[3.9+]    long lastProcessedZxid | seal 3
//
// StatPersisted is czxid, mzxid, ctime, mtime (long), version, cversion,
// aversion (int), ephemeralOwner, pzxid (long): 60 bytes. The Adler32 runs
// over the uncompressed stream: a gz or snappy file (SnapStream) compresses
// all of the above as one stream.

const (
	snapMagic   = 0x5A4B534E // "ZKSN"
	snapVersion = 2

	snapBufferSize = 1 << 20
	statSize       = 60
)

// SnapshotDigest is the ZxidDigest a snapshot carries: the tree digest
// ZooKeeper had logged when the snapshot finished, and at which zxid. A
// replay that reaches Zxid must have exactly this digest.
type SnapshotDigest struct {
	Zxid    int64        `json:"zxid"`
	Version int32        `json:"version"`
	Digest  znode.Digest `json:"digest"`
}

// SnapshotInfo is what a snapshot says besides its nodes.
type SnapshotInfo struct {
	File     SnapshotFile
	Sessions int
	ACLs     int
	Nodes    int
	// Digest is the snapshot's ZxidDigest; nil when it has none (digests
	// disabled, or a snapshot before 3.6) or an empty one (zxid 0).
	Digest *SnapshotDigest
	// LastProcessedZxid is 3.9's record of the last zxid applied when the
	// snapshot finished; 0 when absent.
	LastProcessedZxid int64
	// Bytes is the size of the uncompressed stream.
	Bytes int64
}

// SnapshotVisitor receives a snapshot's contents in file order. A callback's
// error stops the decoding; DecodeSnapshot returns it wrapped in a
// *FileError naming the record's offset when it matches ErrCorrupt, as is.
type SnapshotVisitor struct {
	Session func(id int64, timeoutMs int32) error
	ACL     func(index int64, acl []znode.ACL) error
	// Node gets the node's path as stored (empty for the root), its data
	// (nil and empty differ), the ACL index and the persisted stat. path and
	// data alias the decoder's buffer: they are valid only during the call.
	Node func(path, data []byte, aclIndex int64, st znode.Stat) error
}

// snapStream reads a snapshot's uncompressed bytes, keeping their Adler32.
type snapStream struct {
	file       string
	compressed bool
	r          *bufio.Reader
	sum        hash.Hash32
	off        int64
	maxLen     int
	scratch    []byte
}

func (s *snapStream) corrupt(off int64, err error, format string, args ...any) error {
	return &FileError{File: s.file, Offset: off, Stream: s.compressed, Reason: fmt.Sprintf(format, args...), Err: err}
}

// take returns the next n bytes, valid until the next call.
func (s *snapStream) take(n int, what string) ([]byte, error) {
	var b []byte
	var err error
	if n <= snapBufferSize/4 {
		b, err = s.r.Peek(n)
		if err == nil {
			_, _ = s.r.Discard(n)
		}
	} else {
		if cap(s.scratch) < n {
			s.scratch = make([]byte, n)
		}
		b = s.scratch[:n]
		var got int
		got, err = io.ReadFull(s.r, b)
		b = b[:got]
	}
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF || errors.Is(err, bufio.ErrBufferFull) {
			if len(b) < n {
				return nil, s.corrupt(s.off, io.ErrUnexpectedEOF, "file ends inside %s (%d of %d bytes)", what, len(b), n)
			}
		} else {
			return nil, s.corrupt(s.off, err, "reading %s: %v", what, err)
		}
	}
	s.sum.Write(b)
	s.off += int64(n)
	return b, nil
}

func (s *snapStream) int32(what string) (int32, error) {
	b, err := s.take(4, what)
	if err != nil {
		return 0, err
	}
	return int32(binary.BigEndian.Uint32(b)), nil
}

func (s *snapStream) int64(what string) (int64, error) {
	b, err := s.take(8, what)
	if err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// buffer reads a jute buffer or ustring: nil for length −1 (null), or a
// fresh slice when keep is set; otherwise a slice valid until the next read.
func (s *snapStream) buffer(what string, keep bool) ([]byte, bool, error) {
	at := s.off
	n, err := s.int32(what + " length")
	if err != nil {
		return nil, false, err
	}
	if n == -1 {
		return nil, true, nil
	}
	if n < -1 || int(n) > s.maxLen {
		return nil, false, s.corrupt(at, nil, "%s length %d out of range (-1..%d)", what, n, s.maxLen)
	}
	b, err := s.take(int(n), what)
	if err != nil {
		return nil, false, err
	}
	if keep {
		b = append(make([]byte, 0, n), b...)
	}
	return b, false, nil
}

func (s *snapStream) ustring(what string) (string, error) {
	at := s.off
	b, null, err := s.buffer(what, false)
	if err != nil {
		return "", err
	}
	if null {
		return "", s.corrupt(at, nil, "%s is null", what)
	}
	return string(b), nil
}

// seal checks a CheckedOutputStream seal: the Adler32 of every byte before
// it, then the string "/".
func (s *snapStream) seal(which int) error {
	want := s.sum.Sum32()
	at := s.off
	got, err := s.int64(fmt.Sprintf("seal %d", which))
	if err != nil {
		return err
	}
	if uint64(got) != uint64(want) {
		return s.corrupt(at, ErrChecksum, "seal %d: Adler32 %#x of the bytes before it does not match the stored %#x", which, want, got)
	}
	at = s.off
	slash, err := s.ustring(fmt.Sprintf("seal %d path", which))
	if err != nil {
		return err
	}
	if slash != "/" {
		return s.corrupt(at, nil, "seal %d ends with %q, not \"/\"", which, slash)
	}
	return nil
}

// atEOF reports whether the stream has no more bytes.
func (s *snapStream) atEOF() (bool, error) {
	_, err := s.r.Peek(1)
	if err == io.EOF {
		return true, nil
	}
	if err != nil {
		return false, s.corrupt(s.off, err, "reading: %v", err)
	}
	return false, nil
}

// openSnapshotStream opens a snapshot file for DecodeSnapshot,
// decompressing it as its name says.
func openSnapshotStream(f SnapshotFile) (io.ReadCloser, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	r, err := Decompress(bufio.NewReaderSize(fh, 256<<10), f.Compression, f.Path)
	if err != nil {
		fh.Close()
		return nil, err
	}
	return readCloser{r, fh}, nil
}

// Decompress returns the uncompressed stream of a snapshot compressed with
// c (named path in errors): gzip (klauspost/compress), or snappy-java's
// stream format (see snappy.go).
func Decompress(r io.Reader, c Compression, path string) (io.Reader, error) {
	switch c {
	case CompressionGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, &FileError{File: path, Offset: 0, Reason: "not a gzip stream: " + err.Error(), Err: err}
		}
		return zr, nil
	case CompressionSnappy:
		return newXerialReader(r), nil
	}
	return r, nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

// ReadSnapshot decodes the snapshot file f, calling v's callbacks in file
// order, and checks its seals. A damaged file is a *FileError naming the
// offset (in the decompressed stream for a compressed file).
func ReadSnapshot(f SnapshotFile, maxLen int, v *SnapshotVisitor) (*SnapshotInfo, error) {
	rc, err := openSnapshotStream(f)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	info, err := DecodeSnapshot(rc, f.Path, f.Compression != CompressionNone, maxLen, v)
	if info != nil {
		info.File = f
	}
	return info, err
}

// DecodeSnapshot decodes an uncompressed snapshot stream (see ReadSnapshot).
// name is the file, for errors; compressed says offsets count decompressed
// bytes. maxLen bounds every string and buffer (0: DefaultMaxRecordBytes).
func DecodeSnapshot(r io.Reader, name string, compressed bool, maxLen int, v *SnapshotVisitor) (*SnapshotInfo, error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxRecordBytes
	}
	s := &snapStream{file: name, compressed: compressed, r: bufio.NewReaderSize(r, snapBufferSize), sum: adler32.New(), maxLen: maxLen}
	info := &SnapshotInfo{}
	if err := decodeSnapshot(s, info, v); err != nil {
		return info, err
	}
	info.Bytes = s.off
	return info, nil
}

func decodeSnapshot(s *snapStream, info *SnapshotInfo, v *SnapshotVisitor) error {
	magic, err := s.int32("magic")
	if err != nil {
		return err
	}
	if uint32(magic) != snapMagic {
		return s.corrupt(0, nil, "magic %#08x is not a snapshot's (ZKSN)", uint32(magic))
	}
	if ver, err := s.int32("version"); err != nil {
		return err
	} else if ver != snapVersion {
		return s.corrupt(4, nil, "snapshot format version %d, this build reads %d", ver, snapVersion)
	}
	if _, err := s.int64("dbid"); err != nil {
		return err
	}

	at := s.off
	count, err := s.int32("session count")
	if err != nil {
		return err
	}
	if count < 0 {
		return s.corrupt(at, nil, "session count %d", count)
	}
	for range count {
		at := s.off
		id, err := s.int64("session id")
		if err != nil {
			return err
		}
		to, err := s.int32("session timeout")
		if err != nil {
			return err
		}
		if v != nil && v.Session != nil {
			if err := v.Session(id, to); err != nil {
				return recordError(s, at, err)
			}
		}
		info.Sessions++
	}

	at = s.off
	count, err = s.int32("ACL cache size")
	if err != nil {
		return err
	}
	if count < 0 {
		return s.corrupt(at, nil, "ACL cache size %d", count)
	}
	for range count {
		at := s.off
		idx, err := s.int64("ACL index")
		if err != nil {
			return err
		}
		vat := s.off
		n, err := s.int32("ACL list length")
		if err != nil {
			return err
		}
		if n < 0 || int(n) > s.maxLen/12 {
			return s.corrupt(vat, nil, "ACL list %d has %d entries", idx, n)
		}
		acl := make([]znode.ACL, 0, n)
		for range n {
			perms, err := s.int32("ACL perms")
			if err != nil {
				return err
			}
			scheme, err := s.ustring("ACL scheme")
			if err != nil {
				return err
			}
			// Kazoo can store an "auth" entry with a null id; ZooKeeper
			// keeps what fixupACL made of it, but read a null as "".
			id, _, err := s.buffer("ACL id", false)
			if err != nil {
				return err
			}
			acl = append(acl, znode.ACL{Perms: znode.Perm(perms), ID: znode.ID{Scheme: scheme, ID: string(id)}})
		}
		if v != nil && v.ACL != nil {
			if err := v.ACL(idx, acl); err != nil {
				return recordError(s, at, err)
			}
		}
		info.ACLs++
	}

	var path, dataBuf []byte
	for {
		at := s.off
		p, null, err := s.buffer("node path", false)
		if err != nil {
			return err
		}
		if null {
			return s.corrupt(at, nil, "node path is null")
		}
		if len(p) == 1 && p[0] == '/' {
			break
		}
		// The path's bytes are overwritten by the next read: keep a copy.
		path = append(path[:0], p...)
		d, null, err := s.buffer("node data", false)
		if err != nil {
			return err
		}
		// So are the data's.
		var data []byte
		switch {
		case null:
		case len(d) == 0:
			data = emptyData // not nil: nil and empty data differ
		default:
			dataBuf = append(dataBuf[:0], d...)
			data = dataBuf[:len(d):len(d)]
		}
		acl, err := s.int64("node ACL index")
		if err != nil {
			return err
		}
		b, err := s.take(statSize, "node stat")
		if err != nil {
			return err
		}
		st := decodeStatPersisted(b)
		if v != nil && v.Node != nil {
			if err := v.Node(path, data, acl, st); err != nil {
				return recordError(s, at, err)
			}
		}
		info.Nodes++
	}
	if err := s.seal(1); err != nil {
		return err
	}

	// The ZxidDigest and its seal, present iff bytes remain (ZooKeeper 3.6+
	// with digests enabled).
	if eof, err := s.atEOF(); err != nil || eof {
		return err
	}
	at = s.off
	dz, err := s.int64("digest zxid")
	if err != nil {
		return err
	}
	dv, err := s.int32("digest version")
	if err != nil {
		return err
	}
	var dg int64
	if dv >= 2 {
		if dg, err = s.int64("digest"); err != nil {
			return err
		}
	} else {
		hexAt := s.off
		b, null, err := s.buffer("digest", false)
		if err != nil {
			return err
		}
		if !null {
			u, perr := strconv.ParseUint(string(b), 16, 64)
			if perr != nil {
				return s.corrupt(hexAt, nil, "digest %q is not hex", b)
			}
			dg = int64(u)
		}
	}
	if err := s.seal(2); err != nil {
		return err
	}
	if dz > 0 {
		info.Digest = &SnapshotDigest{Zxid: dz, Version: dv, Digest: znode.Digest(dg)}
	} else if dz < 0 {
		return s.corrupt(at, nil, "digest zxid %d", dz)
	}

	// 3.9+: lastProcessedZxid and its seal.
	if eof, err := s.atEOF(); err != nil || eof {
		return err
	}
	if info.LastProcessedZxid, err = s.int64("last processed zxid"); err != nil {
		return err
	}
	if err := s.seal(3); err != nil {
		return err
	}
	if eof, err := s.atEOF(); err != nil || !eof {
		if err == nil {
			err = s.corrupt(s.off, nil, "bytes after the last seal")
		}
		return err
	}
	return nil
}

// recordError places a callback's error that reports damage (matches
// ErrCorrupt) at the record it was about; others pass as they are.
func recordError(s *snapStream, at int64, err error) error {
	var fe *FileError
	if errors.Is(err, ErrCorrupt) && !errors.As(err, &fe) {
		return s.corrupt(at, err, "%v", err)
	}
	return err
}

func decodeStatPersisted(b []byte) znode.Stat {
	be := binary.BigEndian
	return znode.Stat{
		Czxid:          int64(be.Uint64(b[0:])),
		Mzxid:          int64(be.Uint64(b[8:])),
		Ctime:          int64(be.Uint64(b[16:])),
		Mtime:          int64(be.Uint64(b[24:])),
		Version:        int32(be.Uint32(b[32:])),
		Cversion:       int32(be.Uint32(b[36:])),
		Aversion:       int32(be.Uint32(b[40:])),
		EphemeralOwner: int64(be.Uint64(b[44:])),
		Pzxid:          int64(be.Uint64(b[52:])),
	}
}

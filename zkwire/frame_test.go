package zkwire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func TestFrameReader(t *testing.T) {
	var stream []byte
	payloads := [][]byte{{}, []byte("a"), bytes.Repeat([]byte("x"), 200<<10), []byte("tail")}
	for _, p := range payloads {
		stream = AppendFrame(stream, p)
	}
	for _, r := range []struct {
		name string
		r    io.Reader
	}{
		{"whole", bytes.NewReader(stream)},
		{"one byte", iotest.OneByteReader(bytes.NewReader(stream))},
		{"half", iotest.HalfReader(bytes.NewReader(stream))},
	} {
		t.Run(r.name, func(t *testing.T) {
			fr := NewFrameReader(r.r, 1<<20)
			for i, want := range payloads {
				got, err := fr.Next()
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
				}
			}
			if _, err := fr.Next(); err != io.EOF {
				t.Fatalf("end: %v", err)
			}
		})
	}
}

func TestFrameReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input []byte
		limit int
		err   error
	}{
		{"negative", []byte{0xff, 0xff, 0xff, 0xff}, 100, ErrFrameLength},
		{"2^31", []byte{0x80, 0, 0, 0}, MaxFrame, ErrFrameLength},
		{"over limit", []byte{0, 0, 0, 101}, 100, ErrFrameLength},
		{"truncated length", []byte{0, 0}, 100, io.ErrUnexpectedEOF},
		{"truncated payload", []byte{0, 0, 0, 5, 1, 2}, 100, io.ErrUnexpectedEOF},
		{"huge claim, no data", []byte{0x7f, 0xff, 0xff, 0xff}, MaxFrame, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := NewFrameReader(bytes.NewReader(tc.input), tc.limit)
			if _, err := fr.Next(); !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
}

func TestFrameReaderNextFirst(t *testing.T) {
	fr := NewFrameReader(bytes.NewReader([]byte("ruok")), 0)
	if p, w, err := fr.NextFirst(); err != nil || w != WordRuok || p != nil {
		t.Fatalf("ruok: %q %v %v", p, w, err)
	}
	fr = NewFrameReader(bytes.NewReader(append([]byte("stmk"), 0, 0, 0, 0, 0, 0, 0, 9)), 0)
	if p, w, err := fr.NextFirst(); err != nil || w != WordStmk || !bytes.Equal(p, []byte{0, 0, 0, 0, 0, 0, 0, 9}) {
		t.Fatalf("stmk: %q %v %v", p, w, err)
	}
	fr = NewFrameReader(bytes.NewReader([]byte("stmk\x00")), 0)
	if _, _, err := fr.NextFirst(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short stmk: %v", err)
	}
	connect := AppendRecordFrame(nil, &ConnectRequest{Passwd: make([]byte, 16), HasReadOnly: true})
	fr = NewFrameReader(bytes.NewReader(connect), 0)
	if p, w, err := fr.NextFirst(); err != nil || w != 0 || len(p) != 45 {
		t.Fatalf("connect: %d bytes, %v, %v", len(p), w, err)
	}
}

func TestBeginEndFrame(t *testing.T) {
	dst := []byte("prefix")
	dst, start := BeginFrame(dst)
	dst = append(dst, "payload"...)
	dst = EndFrame(dst, start)
	if want := append([]byte("prefix"), AppendFrame(nil, []byte("payload"))...); !bytes.Equal(dst, want) {
		t.Fatalf("got %q", dst)
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte("abc")); err != nil || !bytes.Equal(buf.Bytes(), []byte{0, 0, 0, 3, 'a', 'b', 'c'}) {
		t.Fatalf("WriteFrame: %q, %v", buf.Bytes(), err)
	}
}

func TestDetectFourLetterWord(t *testing.T) {
	words := []string{"ruok", "stat", "srvr", "conf", "cons", "crst", "dump", "envi", "gtmk", "stmk",
		"srst", "wchc", "wchp", "wchs", "mntr", "isro", "hash", "dirs"}
	for _, w := range words {
		got, ok := DetectFourLetterWord([]byte(w))
		if !ok || got.String() != w {
			t.Errorf("%s: %v %v", w, got, ok)
		}
		// No word is a length a server would accept.
		if _, err := parseLength([]byte(w), DefaultMaxBuffer); err == nil {
			t.Errorf("%s parses as a frame length", w)
		}
	}
	for _, w := range []string{"icfg", "sysp", "RUOK", "abc"} {
		if _, ok := DetectFourLetterWord([]byte(w)); ok {
			t.Errorf("%q detected", w)
		}
	}
}

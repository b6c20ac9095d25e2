package zkwire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestClientHandshake(t *testing.T) {
	ok := ConnectResponse{TimeOut: 4000, SessionID: 7, Passwd: make([]byte, 16), HasReadOnly: true}
	noSession := ConnectResponse{Passwd: make([]byte, 16), HasReadOnly: true}
	readOnly := ok
	readOnly.ReadOnly = true
	for _, tc := range []struct {
		name    string
		sid     int64
		reply   []byte // what the server sends back
		wantErr error  // nil: success; errAny: some error
	}{
		{"new session", 0, AppendRecordFrame(nil, &ok), nil},
		{"resumed", 7, AppendRecordFrame(nil, &ok), nil},
		{"expired", 7, AppendRecordFrame(nil, &noSession), ErrSessionExpired},
		{"refused", 0, AppendRecordFrame(nil, &noSession), ErrSessionRefused},
		{"read-only", 0, AppendRecordFrame(nil, &readOnly), ErrReadOnlyServer},
		{"closed without answer", 7, nil, io.ErrUnexpectedEOF},
		{"truncated response", 0, AppendRecordFrame(nil, &ok)[:10], io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent bytes.Buffer
			fr := NewFrameReader(bytes.NewReader(tc.reply), DefaultMaxReplyFrame)
			resp, err := ClientHandshake(&sent, fr, ConnectRequest{SessionID: tc.sid, TimeOut: 5000, HasReadOnly: true})
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr == nil && resp.SessionID != 7:
				t.Fatalf("response %+v", resp)
			case tc.wantErr == io.ErrUnexpectedEOF && err == nil:
				t.Fatal("no error")
			case tc.wantErr != nil && tc.wantErr != io.ErrUnexpectedEOF && !errors.Is(err, tc.wantErr):
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			// What went out is one connect request frame, with the 16-byte
			// zero password a client without one sends.
			fr2 := NewFrameReader(&sent, DefaultMaxBuffer)
			p, err := fr2.Next()
			if err != nil {
				t.Fatal(err)
			}
			req, err := DecodeConnectRequest(p)
			if err != nil {
				t.Fatal(err)
			}
			if req.SessionID != tc.sid || len(req.Passwd) != 16 || req.TimeOut != 5000 {
				t.Fatalf("sent %+v", req)
			}
		})
	}
}

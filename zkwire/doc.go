// Package zkwire is ZooKeeper's client wire protocol: jute encoding, framing,
// the connect handshake, request and reply headers, the request and response
// record of every opcode, watch events, error codes and four-letter words, in
// both directions. The same code serves a client (zkclient), a server built
// on it (zkserver), and a tap that decodes both streams of a live connection
// (dualwrite).
//
// It imports znode (for ACL, ID and WireStat) and the standard library only.
// It owns no goroutines and does no I/O beyond reading the io.Reader a
// FrameReader is given and, in ClientHandshake (a client's connect exchange),
// writing the connect request to the io.Writer it is given.
//
// # Jute
//
// All integers are big-endian and signed. A record is its fields in order,
// with no tags:
//
//	int      4 bytes              long    8 bytes
//	boolean  1 byte, 0 or 1       ustring int32 length + UTF-8 bytes, −1 = null
//	buffer   int32 length + bytes, −1 = null (nil), 0 = empty: kept apart
//	vector   int32 count + elements, −1 = null
//
// Decoder reads these from a byte slice without copying it (Buffer copies,
// BufferAlias does not); Encoder appends them to one. Every length is checked
// against the bytes that remain (and Decoder.MaxLen) before anything is
// allocated from it, so a decoder never allocates more than its input size.
//
// # Frames
//
// Every message in both directions is a frame:
//
//	+----------------+---------------------------+
//	| int32 length   | payload (length bytes)    |
//	+----------------+---------------------------+
//
// The length excludes itself and is read as a uint32 that must be below 2^31
// and at most the reader's limit. ZooKeeper servers refuse client frames
// above jute.maxbuffer (DefaultMaxBuffer, 1,048,575 bytes) but do not limit
// what they send: a getChildren reply can exceed 1 MiB, so readers of server
// frames take a larger limit (DefaultMaxReplyFrame).
//
// A connection carries, client to server:
//
//	frame 1    ConnectRequest                           (no header)
//	frame n    RequestHeader{int xid; int type} + request body
//
// and server to client:
//
//	frame 1    ConnectResponse                          (no header)
//	frame n    ReplyHeader{int xid; long zxid; int err} + response body
//
// The connect records, byte by byte (a new session sends sessionId 0 and 16
// zero password bytes):
//
//	ConnectRequest                         ConnectResponse
//	 0 int   protocolVersion (0)            0 int   protocolVersion (0)
//	 4 long  lastZxidSeen                   4 int   timeOut (negotiated, ms)
//	12 int   timeOut (ms)                   8 long  sessionId
//	16 long  sessionId                     16 int   passwd length (16)
//	24 int   passwd length (16)            20 byte passwd[16]
//	28 byte  passwd[16]                    36 bool  readOnly   (optional)
//	44 bool  readOnly   (optional)
//	   = 44 or 45 bytes                       = 36 or 37 bytes
//
// A multi or multiRead request body, and its response body:
//
//	{MultiHeader{int type=op; bool done=0; int err=−1} + op's request}*
//	 MultiHeader{type=−1; done=1; err=−1}
//
//	{MultiHeader{int type=result; bool done=0; int err=code} + result body}*
//	 MultiHeader{type=−1; done=1; err=−1}
//
// where a result body is CreateResponse (type 1), Create2Response (15),
// SetDataResponse (5), GetDataResponse (4), GetChildrenResponse (8), nothing
// (2 delete, 13 check) or ErrorResponse{int err} (−1).
//
// # Decoding rules
//
//   - Key on the opcode, never on the xid. A reply carries no opcode: it is
//     the opcode of the request with the same xid on the same connection.
//     The special xids (−1 notification, −2 ping, −4 auth, −8 setWatches) are
//     conventions of some clients only: Java sends setWatches, and
//     go-zookeeper auth and setWatches, with ordinary xids.
//   - A reply with err ≠ 0 has its body ignored (DecodeResponse returns nil),
//     as the Java client and zetcd do. ZooKeeper's error replies are 16-byte
//     headers, except that a failed sasl carries a null token.
//   - The readOnly byte of both connect records is optional: it is present
//     iff bytes remain. HasReadOnly remembers whether it was there, so that
//     re-encoding is exact. ZooKeeper 3.4–3.8 and 3.9.3+ answer with the byte
//     only when the request had it; 3.9.0–3.9.2 always send it.
//   - A failed multi has ReplyHeader.err 0. Every result is then type −1: the
//     ops before the failing one carry 0, the failing one its code, the ones
//     after it −2 (RuntimeInconsistency). A multiRead reports errors per op
//     the same way.
//   - Inside a multi, create2 is answered as type 1 (no stat) before 3.9;
//     createTTL and createContainer are answered as type 15.
//   - Notifications (xid −1, body WatcherEvent) may arrive at any point,
//     including before the reply to the write that fired them. Their zxid is
//     −1 before ZooKeeper 3.9 and the triggering zxid since.
//   - addWatch's reply body is ErrorResponse{0}: 4 bytes. Ping, auth,
//     setWatches, delete, checkWatches, removeWatches and closeSession replies
//     are header-only. whoAmI, ping and closeSession requests are
//     header-only.
//   - deleteContainer (20) is submitted by ZooKeeper's ContainerManager, not
//     by clients; its body is the raw path bytes.
//
// Decoding is strict so that whatever decodes encodes back to the same bytes
// (the fuzz targets check this): booleans must be 0 or 1; a record must
// fill its payload exactly (ErrTrailingBytes), except the optional readOnly
// byte; a null where ZooKeeper's peers never send one (paths, names, schemes,
// vectors) is ErrMalformed; multi headers must be the ones drawn above.
// Buffers keep null (nil) and empty apart, and so do ReconfigRequest's
// strings (*string), for which the server gives null a meaning. An empty
// vector decodes to nil, and a nil slice encodes as an empty vector, never as
// null, which Java clients do not expect. The Java server is more lenient
// (it reads any non-zero boolean as true and ignores trailing bytes); no
// known client sends such bytes.
//
// # Four-letter words
//
// On a fresh connection a server first tests the four length bytes against
// the known four-letter words (ruok, stat, srvr, conf, cons, crst, dump,
// envi, gtmk, stmk, srst, wchc, wchp, wchs, mntr, isro, hash, dirs) and the
// telnet close sequence 0xfff4fffd. If one matches, the rest of the
// connection is plain text: stmk is followed by an 8-byte trace mask, the
// server writes its answer (or a refusal if the word is not whitelisted) and
// closes. All of them are negative or far above jute.maxbuffer as lengths,
// so detection cannot mistake a connect request. FrameReader.NextFirst does
// this detection.
//
// # Matching replies
//
// A reply carries no opcode: whoever decodes one matches it by xid to the
// request sent on the same connection, with a FIFO per xid so that several
// outstanding −4 auths or −2 pings pair in order (ZooKeeper answers a
// session's requests in order), and decodes the body by that request's
// opcode. zkclient matches its own calls, the tap its clients' requests
// (feeding client bytes before relaying them, so that a request is pending
// before its reply can arrive). The package's tests follow recorded
// connections with a Tracker (tracker_helper_test.go), which does this for
// both streams of a connection and is the oracle of the golden and fuzz
// tests; it has no user outside them, so it is not part of the API.
//
// # Verified against ZooKeeper 3.8
//
// testdata/golden holds both directions of connections to a real ZooKeeper
// 3.8.0 (Debian), recorded by TestLiveGoldenSession with a raw client written
// with this package; `go test -run TestLiveGoldenSession -rewrite` records
// them again and reseeds testdata/fuzz. TestGoldenStreams decodes them with
// the tests' Tracker, re-encodes every frame byte for byte and compares a transcript
// (the .txt files). Besides the rules above, the recordings show: a failed
// auth is err −115 with zxid 0, then a close; an unknown session gets
// timeOut 0, sessionId 0, 16 zero password bytes and a close; a lastZxidSeen
// ahead of the server gets a close with no response; a sasl request to a
// server without SASL gets err 0 and a null token; a check outside a multi
// gets no reply at all (3.8 fails to serialize SetDataResponse with a null
// stat).
package zkwire

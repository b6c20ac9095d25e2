package zkwire

import "github.com/zk2raft/zk2raft/znode"

// Record is any jute record of the client protocol. Encode appends the record;
// Decode reads it, leaving failures in the decoder (see Decoder.Err).
type Record interface {
	Encode(e *Encoder)
	Decode(d *Decoder)
}

// Request is the body of a client request: a Record that follows a
// RequestHeader. DecodeRequest picks the type from the opcode.
type Request interface {
	Record
	isRequest()
}

// Response is the body of a successful reply: a Record that follows a
// ReplyHeader. DecodeResponse picks the type from the request's opcode.
type Response interface {
	Record
	isResponse()
}

// AppendRecord appends r's encoding to dst.
func AppendRecord(dst []byte, r Record) []byte {
	e := Encoder{b: dst}
	r.Encode(&e)
	return e.b
}

// DecodeRecord decodes b into r. All of b must be consumed.
func DecodeRecord(b []byte, r Record) error {
	d := Decoder{b: b}
	r.Decode(&d)
	return d.Finish()
}

// ---- headers and framing records ----

// RequestHeader starts every client frame after the connect request.
type RequestHeader struct {
	Xid int32
	Op  OpCode // the "type" field
}

// RequestHeaderSize is the encoded size of a RequestHeader.
const RequestHeaderSize = 8

func (h *RequestHeader) Encode(e *Encoder) { e.Int32(h.Xid); e.Int32(int32(h.Op)) }
func (h *RequestHeader) Decode(d *Decoder) { h.Xid = d.Int32(); h.Op = OpCode(d.Int32()) }

// ReplyHeader starts every server frame after the connect response.
type ReplyHeader struct {
	Xid  int32
	Zxid int64 // lastProcessedZxid at reply time; −1 in notifications before 3.9
	Err  Code
}

// ReplyHeaderSize is the encoded size of a ReplyHeader.
const ReplyHeaderSize = 16

func (h *ReplyHeader) Encode(e *Encoder) { e.Int32(h.Xid); e.Int64(h.Zxid); e.Int32(int32(h.Err)) }
func (h *ReplyHeader) Decode(d *Decoder) {
	h.Xid = d.Int32()
	h.Zxid = d.Int64()
	h.Err = Code(d.Int32())
}

// MultiHeader precedes each operation of a multi request and each result of a
// multi response, and ends both with {Type: −1, Done: true, Err: −1}.
type MultiHeader struct {
	Type OpCode
	Done bool
	Err  Code
}

func (h *MultiHeader) Encode(e *Encoder) {
	e.Int32(int32(h.Type))
	e.Bool(h.Done)
	e.Int32(int32(h.Err))
}
func (h *MultiHeader) Decode(d *Decoder) {
	h.Type = OpCode(d.Int32())
	h.Done = d.Bool()
	h.Err = Code(d.Int32())
}

// ConnectRequest is a connection's first client frame, without a RequestHeader.
//
// ReadOnly is optional on the wire: clients older than 3.4 (and go-zookeeper)
// end the record before it. HasReadOnly records whether the byte was there, so
// that re-encoding is exact; a 3.4–3.8 or ≥3.9.3 server answers with a
// readOnly byte only if the request had one.
type ConnectRequest struct {
	ProtocolVersion int32
	LastZxidSeen    int64
	TimeOut         int32 // requested session timeout, ms
	SessionID       int64 // 0 for a new session
	Passwd          []byte
	ReadOnly        bool // the client accepts a read-only server
	HasReadOnly     bool // the readOnly byte is present
}

func (r *ConnectRequest) Encode(e *Encoder) {
	e.Int32(r.ProtocolVersion)
	e.Int64(r.LastZxidSeen)
	e.Int32(r.TimeOut)
	e.Int64(r.SessionID)
	e.Buffer(r.Passwd)
	if r.HasReadOnly {
		e.Bool(r.ReadOnly)
	}
}

func (r *ConnectRequest) Decode(d *Decoder) {
	r.ProtocolVersion = d.Int32()
	r.LastZxidSeen = d.Int64()
	r.TimeOut = d.Int32()
	r.SessionID = d.Int64()
	r.Passwd = d.Buffer()
	r.ReadOnly, r.HasReadOnly = false, false
	if d.Err() == nil && d.Remaining() > 0 {
		r.ReadOnly, r.HasReadOnly = d.Bool(), true
	}
}

// ConnectResponse is a connection's first server frame, without a ReplyHeader.
// TimeOut 0 and SessionID 0 mean the session is expired or the password was
// wrong; the server closes the connection after sending it.
type ConnectResponse struct {
	ProtocolVersion int32
	TimeOut         int32 // negotiated session timeout, ms
	SessionID       int64
	Passwd          []byte
	ReadOnly        bool // the server is read-only
	HasReadOnly     bool // the readOnly byte is present
}

func (r *ConnectResponse) Encode(e *Encoder) {
	e.Int32(r.ProtocolVersion)
	e.Int32(r.TimeOut)
	e.Int64(r.SessionID)
	e.Buffer(r.Passwd)
	if r.HasReadOnly {
		e.Bool(r.ReadOnly)
	}
}

func (r *ConnectResponse) Decode(d *Decoder) {
	r.ProtocolVersion = d.Int32()
	r.TimeOut = d.Int32()
	r.SessionID = d.Int64()
	r.Passwd = d.Buffer()
	r.ReadOnly, r.HasReadOnly = false, false
	if d.Err() == nil && d.Remaining() > 0 {
		r.ReadOnly, r.HasReadOnly = d.Bool(), true
	}
}

// WatcherEvent is the body of a notification (xid −1).
type WatcherEvent struct {
	Type  EventType
	State KeeperState
	Path  string // server-absolute: a client's chroot is not stripped
}

func (r *WatcherEvent) Encode(e *Encoder) {
	e.Int32(int32(r.Type))
	e.Int32(int32(r.State))
	e.Ustring(r.Path)
}

func (r *WatcherEvent) Decode(d *Decoder) {
	r.Type = EventType(d.Int32())
	r.State = KeeperState(d.Int32())
	r.Path = d.Ustring()
}

// ---- request records ----

// CreateRequest is the body of create, create2 and createContainer.
type CreateRequest struct {
	Path  string
	Data  []byte // nil (sent as −1) and empty are different
	ACL   []znode.ACL
	Flags CreateMode
}

func (r *CreateRequest) Encode(e *Encoder) {
	e.Ustring(r.Path)
	e.Buffer(r.Data)
	e.ACLs(r.ACL)
	e.Int32(int32(r.Flags))
}

func (r *CreateRequest) Decode(d *Decoder) {
	r.Path = d.Ustring()
	r.Data = d.Buffer()
	r.ACL = d.ACLs()
	r.Flags = CreateMode(d.Int32())
}

// CreateTTLRequest is the body of createTTL (flags 5 or 6).
type CreateTTLRequest struct {
	Path  string
	Data  []byte
	ACL   []znode.ACL
	Flags CreateMode
	TTL   int64 // ms
}

func (r *CreateTTLRequest) Encode(e *Encoder) {
	e.Ustring(r.Path)
	e.Buffer(r.Data)
	e.ACLs(r.ACL)
	e.Int32(int32(r.Flags))
	e.Int64(r.TTL)
}

func (r *CreateTTLRequest) Decode(d *Decoder) {
	r.Path = d.Ustring()
	r.Data = d.Buffer()
	r.ACL = d.ACLs()
	r.Flags = CreateMode(d.Int32())
	r.TTL = d.Int64()
}

// DeleteRequest is the body of delete. Version −1 matches any version.
type DeleteRequest struct {
	Path    string
	Version int32
}

func (r *DeleteRequest) Encode(e *Encoder) { e.Ustring(r.Path); e.Int32(r.Version) }
func (r *DeleteRequest) Decode(d *Decoder) { r.Path = d.Ustring(); r.Version = d.Int32() }

// DeleteContainerRequest is the body of deleteContainer, which ZooKeeper's
// ContainerManager submits internally: the path's UTF-8 bytes with no length
// prefix, filling the rest of the payload.
type DeleteContainerRequest struct {
	Path string
}

func (r *DeleteContainerRequest) Encode(e *Encoder) { e.Raw([]byte(r.Path)) }
func (r *DeleteContainerRequest) Decode(d *Decoder) { r.Path = string(d.Rest()) }

// ExistsRequest is the body of exists.
type ExistsRequest struct {
	Path  string
	Watch bool
}

func (r *ExistsRequest) Encode(e *Encoder) { e.Ustring(r.Path); e.Bool(r.Watch) }
func (r *ExistsRequest) Decode(d *Decoder) { r.Path = d.Ustring(); r.Watch = d.Bool() }

// GetDataRequest is the body of getData.
type GetDataRequest struct {
	Path  string
	Watch bool
}

func (r *GetDataRequest) Encode(e *Encoder) { e.Ustring(r.Path); e.Bool(r.Watch) }
func (r *GetDataRequest) Decode(d *Decoder) { r.Path = d.Ustring(); r.Watch = d.Bool() }

// SetDataRequest is the body of setData. Version −1 matches any version.
type SetDataRequest struct {
	Path    string
	Data    []byte
	Version int32
}

func (r *SetDataRequest) Encode(e *Encoder) { e.Ustring(r.Path); e.Buffer(r.Data); e.Int32(r.Version) }
func (r *SetDataRequest) Decode(d *Decoder) {
	r.Path = d.Ustring()
	r.Data = d.Buffer()
	r.Version = d.Int32()
}

// GetACLRequest is the body of getACL.
type GetACLRequest struct {
	Path string
}

func (r *GetACLRequest) Encode(e *Encoder) { e.Ustring(r.Path) }
func (r *GetACLRequest) Decode(d *Decoder) { r.Path = d.Ustring() }

// SetACLRequest is the body of setACL. Version is the expected aversion.
type SetACLRequest struct {
	Path    string
	ACL     []znode.ACL
	Version int32
}

func (r *SetACLRequest) Encode(e *Encoder) { e.Ustring(r.Path); e.ACLs(r.ACL); e.Int32(r.Version) }
func (r *SetACLRequest) Decode(d *Decoder) {
	r.Path = d.Ustring()
	r.ACL = d.ACLs()
	r.Version = d.Int32()
}

// GetChildrenRequest is the body of getChildren and getChildren2 (the jute
// records GetChildrenRequest and GetChildren2Request are identical).
type GetChildrenRequest struct {
	Path  string
	Watch bool
}

func (r *GetChildrenRequest) Encode(e *Encoder) { e.Ustring(r.Path); e.Bool(r.Watch) }
func (r *GetChildrenRequest) Decode(d *Decoder) { r.Path = d.Ustring(); r.Watch = d.Bool() }

// SyncRequest is the body of sync.
type SyncRequest struct {
	Path string
}

func (r *SyncRequest) Encode(e *Encoder) { e.Ustring(r.Path) }
func (r *SyncRequest) Decode(d *Decoder) { r.Path = d.Ustring() }

// CheckVersionRequest is the body of check, alone or inside a multi.
type CheckVersionRequest struct {
	Path    string
	Version int32
}

func (r *CheckVersionRequest) Encode(e *Encoder) { e.Ustring(r.Path); e.Int32(r.Version) }
func (r *CheckVersionRequest) Decode(d *Decoder) { r.Path = d.Ustring(); r.Version = d.Int32() }

// ReconfigRequest is the body of reconfig. A nil string is sent as null, which
// the server tells apart from empty: an incremental reconfig sends joining
// and leaving servers and a null NewMembers.
type ReconfigRequest struct {
	JoiningServers *string
	LeavingServers *string
	NewMembers     *string
	CurConfigID    int64 // −1: any
}

func (r *ReconfigRequest) Encode(e *Encoder) {
	e.NullableUstring(r.JoiningServers)
	e.NullableUstring(r.LeavingServers)
	e.NullableUstring(r.NewMembers)
	e.Int64(r.CurConfigID)
}

func (r *ReconfigRequest) Decode(d *Decoder) {
	r.JoiningServers = nullable(d)
	r.LeavingServers = nullable(d)
	r.NewMembers = nullable(d)
	r.CurConfigID = d.Int64()
}

func nullable(d *Decoder) *string {
	s, ok := d.NullableUstring()
	if !ok {
		return nil
	}
	return &s
}

// CheckWatchesRequest is the body of checkWatches.
type CheckWatchesRequest struct {
	Path string
	Type WatcherType
}

func (r *CheckWatchesRequest) Encode(e *Encoder) { e.Ustring(r.Path); e.Int32(int32(r.Type)) }
func (r *CheckWatchesRequest) Decode(d *Decoder) {
	r.Path = d.Ustring()
	r.Type = WatcherType(d.Int32())
}

// RemoveWatchesRequest is the body of removeWatches.
type RemoveWatchesRequest struct {
	Path string
	Type WatcherType
}

func (r *RemoveWatchesRequest) Encode(e *Encoder) { e.Ustring(r.Path); e.Int32(int32(r.Type)) }
func (r *RemoveWatchesRequest) Decode(d *Decoder) {
	r.Path = d.Ustring()
	r.Type = WatcherType(d.Int32())
}

// AuthPacket is the body of auth (setAuth). Type is always 0. For the digest
// scheme Auth is "user:password" in clear text.
type AuthPacket struct {
	Type   int32
	Scheme string
	Auth   []byte
}

func (r *AuthPacket) Encode(e *Encoder) { e.Int32(r.Type); e.Ustring(r.Scheme); e.Buffer(r.Auth) }
func (r *AuthPacket) Decode(d *Decoder) {
	r.Type = d.Int32()
	r.Scheme = d.Ustring()
	r.Auth = d.Buffer()
}

// SetWatchesRequest is the body of setWatches, sent after a reconnect to
// re-register one-shot watches; the server fires at once those whose node
// changed after RelativeZxid.
type SetWatchesRequest struct {
	RelativeZxid int64
	DataWatches  []string
	ExistWatches []string
	ChildWatches []string
}

func (r *SetWatchesRequest) Encode(e *Encoder) {
	e.Int64(r.RelativeZxid)
	e.Ustrings(r.DataWatches)
	e.Ustrings(r.ExistWatches)
	e.Ustrings(r.ChildWatches)
}

func (r *SetWatchesRequest) Decode(d *Decoder) {
	r.RelativeZxid = d.Int64()
	r.DataWatches = d.Ustrings()
	r.ExistWatches = d.Ustrings()
	r.ChildWatches = d.Ustrings()
}

// SetWatches2Request is the body of setWatches2: setWatches plus persistent
// and persistent recursive watches (3.6+).
type SetWatches2Request struct {
	RelativeZxid               int64
	DataWatches                []string
	ExistWatches               []string
	ChildWatches               []string
	PersistentWatches          []string
	PersistentRecursiveWatches []string
}

func (r *SetWatches2Request) Encode(e *Encoder) {
	e.Int64(r.RelativeZxid)
	e.Ustrings(r.DataWatches)
	e.Ustrings(r.ExistWatches)
	e.Ustrings(r.ChildWatches)
	e.Ustrings(r.PersistentWatches)
	e.Ustrings(r.PersistentRecursiveWatches)
}

func (r *SetWatches2Request) Decode(d *Decoder) {
	r.RelativeZxid = d.Int64()
	r.DataWatches = d.Ustrings()
	r.ExistWatches = d.Ustrings()
	r.ChildWatches = d.Ustrings()
	r.PersistentWatches = d.Ustrings()
	r.PersistentRecursiveWatches = d.Ustrings()
}

// SASLRequest is the body of sasl (GetSASLRequest): an opaque SASL token.
type SASLRequest struct {
	Token []byte
}

func (r *SASLRequest) Encode(e *Encoder) { e.Buffer(r.Token) }
func (r *SASLRequest) Decode(d *Decoder) { r.Token = d.Buffer() }

// GetEphemeralsRequest is the body of getEphemerals.
type GetEphemeralsRequest struct {
	PrefixPath string
}

func (r *GetEphemeralsRequest) Encode(e *Encoder) { e.Ustring(r.PrefixPath) }
func (r *GetEphemeralsRequest) Decode(d *Decoder) { r.PrefixPath = d.Ustring() }

// GetAllChildrenNumberRequest is the body of getAllChildrenNumber.
type GetAllChildrenNumberRequest struct {
	Path string
}

func (r *GetAllChildrenNumberRequest) Encode(e *Encoder) { e.Ustring(r.Path) }
func (r *GetAllChildrenNumberRequest) Decode(d *Decoder) { r.Path = d.Ustring() }

// AddWatchRequest is the body of addWatch.
type AddWatchRequest struct {
	Path string
	Mode AddWatchMode
}

func (r *AddWatchRequest) Encode(e *Encoder) { e.Ustring(r.Path); e.Int32(int32(r.Mode)) }
func (r *AddWatchRequest) Decode(d *Decoder) { r.Path = d.Ustring(); r.Mode = AddWatchMode(d.Int32()) }

// ---- response records ----

// CreateResponse answers create: the created path (with its sequence suffix).
type CreateResponse struct {
	Path string
}

func (r *CreateResponse) Encode(e *Encoder) { e.Ustring(r.Path) }
func (r *CreateResponse) Decode(d *Decoder) { r.Path = d.Ustring() }

// Create2Response answers create2, createContainer and createTTL.
type Create2Response struct {
	Path string
	Stat znode.WireStat
}

func (r *Create2Response) Encode(e *Encoder) { e.Ustring(r.Path); e.Stat(r.Stat) }
func (r *Create2Response) Decode(d *Decoder) { r.Path = d.Ustring(); r.Stat = d.Stat() }

// ExistsResponse answers exists for a node that exists (a missing node is
// CodeNoNode with no body).
type ExistsResponse struct {
	Stat znode.WireStat
}

func (r *ExistsResponse) Encode(e *Encoder) { e.Stat(r.Stat) }
func (r *ExistsResponse) Decode(d *Decoder) { r.Stat = d.Stat() }

// GetDataResponse answers getData and reconfig (the new /zookeeper/config).
type GetDataResponse struct {
	Data []byte // nil for a node created with null data
	Stat znode.WireStat
}

func (r *GetDataResponse) Encode(e *Encoder) { e.Buffer(r.Data); e.Stat(r.Stat) }
func (r *GetDataResponse) Decode(d *Decoder) { r.Data = d.Buffer(); r.Stat = d.Stat() }

// SetDataResponse answers setData and a top-level check: the node's stat
// after the write.
type SetDataResponse struct {
	Stat znode.WireStat
}

func (r *SetDataResponse) Encode(e *Encoder) { e.Stat(r.Stat) }
func (r *SetDataResponse) Decode(d *Decoder) { r.Stat = d.Stat() }

// GetACLResponse answers getACL.
type GetACLResponse struct {
	ACL  []znode.ACL
	Stat znode.WireStat
}

func (r *GetACLResponse) Encode(e *Encoder) { e.ACLs(r.ACL); e.Stat(r.Stat) }
func (r *GetACLResponse) Decode(d *Decoder) { r.ACL = d.ACLs(); r.Stat = d.Stat() }

// SetACLResponse answers setACL.
type SetACLResponse struct {
	Stat znode.WireStat
}

func (r *SetACLResponse) Encode(e *Encoder) { e.Stat(r.Stat) }
func (r *SetACLResponse) Decode(d *Decoder) { r.Stat = d.Stat() }

// GetChildrenResponse answers getChildren. An empty list decodes to nil and
// nil encodes as an empty list.
type GetChildrenResponse struct {
	Children []string
}

func (r *GetChildrenResponse) Encode(e *Encoder) { e.Ustrings(r.Children) }
func (r *GetChildrenResponse) Decode(d *Decoder) { r.Children = d.Ustrings() }

// GetChildren2Response answers getChildren2.
type GetChildren2Response struct {
	Children []string
	Stat     znode.WireStat
}

func (r *GetChildren2Response) Encode(e *Encoder) { e.Ustrings(r.Children); e.Stat(r.Stat) }
func (r *GetChildren2Response) Decode(d *Decoder) { r.Children = d.Ustrings(); r.Stat = d.Stat() }

// SyncResponse answers sync.
type SyncResponse struct {
	Path string
}

func (r *SyncResponse) Encode(e *Encoder) { e.Ustring(r.Path) }
func (r *SyncResponse) Decode(d *Decoder) { r.Path = d.Ustring() }

// SASLResponse answers sasl (SetSASLResponse). A failure carries a null token
// with a non-zero err, which DecodeResponse ignores like every error body.
type SASLResponse struct {
	Token []byte
}

func (r *SASLResponse) Encode(e *Encoder) { e.Buffer(r.Token) }
func (r *SASLResponse) Decode(d *Decoder) { r.Token = d.Buffer() }

// GetEphemeralsResponse answers getEphemerals.
type GetEphemeralsResponse struct {
	Ephemerals []string
}

func (r *GetEphemeralsResponse) Encode(e *Encoder) { e.Ustrings(r.Ephemerals) }
func (r *GetEphemeralsResponse) Decode(d *Decoder) { r.Ephemerals = d.Ustrings() }

// GetAllChildrenNumberResponse answers getAllChildrenNumber.
type GetAllChildrenNumberResponse struct {
	TotalNumber int32
}

func (r *GetAllChildrenNumberResponse) Encode(e *Encoder) { e.Int32(r.TotalNumber) }
func (r *GetAllChildrenNumberResponse) Decode(d *Decoder) { r.TotalNumber = d.Int32() }

// ErrorResponse answers addWatch (Err is always 0 there: 4 body bytes) and is
// the body of a failed multi sub-result.
type ErrorResponse struct {
	Err Code
}

func (r *ErrorResponse) Encode(e *Encoder) { e.Int32(int32(r.Err)) }
func (r *ErrorResponse) Decode(d *Decoder) { r.Err = Code(d.Int32()) }

// ClientInfo is one identity of the session in a whoAmI reply.
type ClientInfo struct {
	AuthScheme string
	User       string
}

// WhoAmIResponse answers whoAmI.
type WhoAmIResponse struct {
	ClientInfo []ClientInfo
}

func (r *WhoAmIResponse) Encode(e *Encoder) {
	e.VectorLen(len(r.ClientInfo))
	for _, c := range r.ClientInfo {
		e.Ustring(c.AuthScheme)
		e.Ustring(c.User)
	}
}

func (r *WhoAmIResponse) Decode(d *Decoder) {
	r.ClientInfo = nil
	n := d.vector(8)
	if d.Err() != nil || n == 0 {
		return
	}
	r.ClientInfo = make([]ClientInfo, 0, n)
	for range n {
		c := ClientInfo{AuthScheme: d.Ustring(), User: d.Ustring()}
		if d.Err() != nil {
			r.ClientInfo = nil
			return
		}
		r.ClientInfo = append(r.ClientInfo, c)
	}
}

// ---- interface membership ----

func (*CreateRequest) isRequest()               {}
func (*CreateTTLRequest) isRequest()            {}
func (*DeleteRequest) isRequest()               {}
func (*DeleteContainerRequest) isRequest()      {}
func (*ExistsRequest) isRequest()               {}
func (*GetDataRequest) isRequest()              {}
func (*SetDataRequest) isRequest()              {}
func (*GetACLRequest) isRequest()               {}
func (*SetACLRequest) isRequest()               {}
func (*GetChildrenRequest) isRequest()          {}
func (*SyncRequest) isRequest()                 {}
func (*CheckVersionRequest) isRequest()         {}
func (*MultiRequest) isRequest()                {}
func (*ReconfigRequest) isRequest()             {}
func (*CheckWatchesRequest) isRequest()         {}
func (*RemoveWatchesRequest) isRequest()        {}
func (*AuthPacket) isRequest()                  {}
func (*SetWatchesRequest) isRequest()           {}
func (*SetWatches2Request) isRequest()          {}
func (*SASLRequest) isRequest()                 {}
func (*GetEphemeralsRequest) isRequest()        {}
func (*GetAllChildrenNumberRequest) isRequest() {}
func (*AddWatchRequest) isRequest()             {}

func (*CreateResponse) isResponse()               {}
func (*Create2Response) isResponse()              {}
func (*ExistsResponse) isResponse()               {}
func (*GetDataResponse) isResponse()              {}
func (*SetDataResponse) isResponse()              {}
func (*GetACLResponse) isResponse()               {}
func (*SetACLResponse) isResponse()               {}
func (*GetChildrenResponse) isResponse()          {}
func (*GetChildren2Response) isResponse()         {}
func (*SyncResponse) isResponse()                 {}
func (*MultiResponse) isResponse()                {}
func (*SASLResponse) isResponse()                 {}
func (*GetEphemeralsResponse) isResponse()        {}
func (*GetAllChildrenNumberResponse) isResponse() {}
func (*ErrorResponse) isResponse()                {}
func (*WhoAmIResponse) isResponse()               {}

package treegen

import "github.com/zk2raft/zk2raft/znode"

// JuteMaxBuffer is ZooKeeper's default jute.maxbuffer, 0xfffff bytes. The
// server closes the connection of a client whose request frame (everything
// after the 4-byte length) is longer.
const JuteMaxBuffer = 0xfffff

// OneMiBMinus1KiB is the data size of the adversarial profile's
// "with margin" large node: 1,047,552 bytes. Its create request and its
// getData reply (data + 88 bytes) both fit a 1,048,575-byte frame with
// about a kilobyte to spare, so any client at default limits can write it,
// read it and send it on (a proxy adding nothing).
const OneMiBMinus1KiB = 1<<20 - 1<<10

// LargestData is the largest data a plain create (opcode 1 or 19) of path
// with acl can carry when the server's jute.maxbuffer is maxBuffer:
//
//	RequestHeader  xid, type                         8
//	CreateRequest  path   int32 len + bytes          4 + len(path)
//	               data   int32 len + bytes          4 + N
//	               acl    int32 count                4
//	                 each perms + scheme + id       4 + 4+len(scheme) + 4+len(id)
//	               flags  int32                      4
//
// The server accepts frames up to and including maxBuffer bytes
// (NIOServerCnxn.readLength rejects len > maxbuffer). Measured on 3.8.0:
// /exp/big with world:anyone took 1,048,520 bytes and refused 1,048,525.
// The getData reply for such a node is N + 88 bytes, over the default limit
// of the Java client, which is the point of the adversarial node.
func LargestData(path string, acl []znode.ACL, maxBuffer int) int {
	n := maxBuffer - 8 - (4 + len(path)) - 4 - 4 - 4
	for _, a := range acl {
		n -= 4 + 4 + len(a.ID.Scheme) + 4 + len(a.ID.ID)
	}
	return n
}

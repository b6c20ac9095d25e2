package znode

import "fmt"

// EphemeralType says what a raw ephemeralOwner value encodes (EphemeralType.java).
type EphemeralType uint8

// The ephemeral types.
const (
	Persistent EphemeralType = iota // VOID: owner 0
	Ephemeral                       // NORMAL: owner is a session id
	Container                       // owner 0x8000000000000000
	TTL                             // owner 0xFF00_0000_0000_0000 | ttl ms (extended types)
)

func (t EphemeralType) String() string {
	switch t {
	case Persistent:
		return "persistent"
	case Ephemeral:
		return "ephemeral"
	case Container:
		return "container"
	case TTL:
		return "ttl"
	}
	return fmt.Sprintf("EphemeralType(%d)", uint8(t))
}

const (
	// ContainerOwner is the raw ephemeralOwner of every container node.
	ContainerOwner int64 = -1 << 63
	// extendedMask selects the top byte that marks an extended type.
	extendedMask uint64 = 0xFF00_0000_0000_0000
	// featureMask selects the two bytes naming the extended feature (0 = TTL).
	featureMask uint64 = 0x00FF_FF00_0000_0000
	// MaxTTLMillis is the largest TTL the 40-bit field can hold (about 34.8 years).
	MaxTTLMillis int64 = 0x0000_00FF_FFFF_FFFF
)

// EphemeralTypeOf decodes a raw ephemeralOwner. extendedTypes says whether the
// source ensemble ran with zookeeper.extendedTypesEnabled; without it a top byte of
// 0xFF is an ordinary session id (from server id 255).
func EphemeralTypeOf(raw int64, extendedTypes bool) EphemeralType {
	if extendedTypes && uint64(raw)&extendedMask == extendedMask {
		if uint64(raw)&featureMask == 0 {
			return TTL
		}
		return Ephemeral // an unknown extended feature; ZooKeeper throws, we keep the raw value
	}
	switch raw {
	case 0:
		return Persistent
	case ContainerOwner:
		return Container
	}
	return Ephemeral
}

// TTLOwner encodes a TTL in milliseconds as a raw ephemeralOwner.
func TTLOwner(ttlMillis int64) (int64, error) {
	if ttlMillis <= 0 || ttlMillis > MaxTTLMillis {
		return 0, fmt.Errorf("znode: ttl %d ms out of range (1..%d)", ttlMillis, MaxTTLMillis)
	}
	return int64(extendedMask | uint64(ttlMillis)), nil
}

// TTLMillis returns the TTL encoded in a raw TTL owner.
func TTLMillis(raw int64) int64 { return int64(uint64(raw) & uint64(MaxTTLMillis)) }

// ClientEphemeralOwner is the ephemeralOwner a client sees for a raw value: the
// session id for ephemerals and 0 for everything else.
func ClientEphemeralOwner(raw int64, extendedTypes bool) int64 {
	if EphemeralTypeOf(raw, extendedTypes) == Ephemeral {
		return raw
	}
	return 0
}

package zkserver

// superSecret is ZooKeeperServer.superSecret: a session's password is
// java.util.Random(sessionId ^ superSecret).nextBytes(16), so any server can
// check a password from the id alone. The journal hands out and checks
// passwords with the same formula, so a session ZooKeeper created (mirrored
// into the journal during shadow) resumes on the journal with the password
// ZooKeeper gave its client.
const superSecret int64 = 0xB3415C00

// passwordLen is ZooKeeper's session password length.
const passwordLen = 16

// SessionPassword returns ZooKeeper's password for a session id.
func SessionPassword(id int64) []byte {
	r := newJavaRandom(id ^ superSecret)
	b := make([]byte, passwordLen)
	r.nextBytes(b)
	return b
}

// javaRandom is java.util.Random's linear congruential generator (48-bit
// state, multiplier 0x5DEECE66D, increment 0xB), as its documentation
// specifies it.
type javaRandom struct{ seed int64 }

const (
	javaMultiplier = 0x5DEECE66D
	javaAddend     = 0xB
	javaMask       = 1<<48 - 1
)

func newJavaRandom(seed int64) *javaRandom {
	return &javaRandom{seed: (seed ^ javaMultiplier) & javaMask}
}

// next returns the next bits random bits (Random.next).
func (r *javaRandom) next(bits uint) int32 {
	r.seed = (r.seed*javaMultiplier + javaAddend) & javaMask
	return int32(uint64(r.seed) >> (48 - bits))
}

// nextBytes is Random.nextBytes: each int supplies four bytes, low byte first.
func (r *javaRandom) nextBytes(b []byte) {
	for i := 0; i < len(b); {
		rnd := r.next(32)
		for n := min(len(b)-i, 4); n > 0; n-- {
			b[i] = byte(rnd)
			rnd >>= 8
			i++
		}
	}
}

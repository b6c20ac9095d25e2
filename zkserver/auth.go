package zkserver

import (
	"crypto/sha1"
	"encoding/base64"
	"strings"
)

// DigestID is DigestAuthenticationProvider.generateDigest: "user:password"
// becomes "user:" + base64(SHA-1("user:password")), the id digest ACLs and
// --super-digest hold.
func DigestID(userPassword string) string {
	user, _, _ := strings.Cut(userPassword, ":")
	sum := sha1.Sum([]byte(userPassword))
	return user + ":" + base64.StdEncoding.EncodeToString(sum[:])
}

package znode

import (
	"crypto/sha1"
	"encoding/base64"
	"strings"
)

// DigestID is ZooKeeper's DigestAuthenticationProvider.generateDigest: the
// credential "user:password" (what addauth digest sends) becomes the id
// "user:" + base64(SHA-1("user:password")), which digest ACLs and a super
// digest hold.
func DigestID(userPassword string) string {
	user, _, _ := strings.Cut(userPassword, ":")
	sum := sha1.Sum([]byte(userPassword))
	return user + ":" + base64.StdEncoding.EncodeToString(sum[:])
}

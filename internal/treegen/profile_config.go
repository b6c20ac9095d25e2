package treegen

import (
	"encoding/base64"
	"fmt"
	"strconv"
)

// buildConfig lays out a configuration store: /config/<env>/<app>/<section>
// with small keyed values, sometimes one level deeper, some binary, some
// empty or without data, and some edited a few times (version > 0).
func buildConfig(b *builder) {
	budget := b.opts.Nodes
	envs := []string{"prod", "staging", "qa", "dev"}
	sections := []string{"database", "cache", "http", "features", "logging", "queues", "auth", "limits"}
	keys := []string{"host", "port", "timeout", "retries", "enabled", "url", "pool-size", "level", "ttl", "key", "cert", "threshold", "mode", "region"}
	b.create(b.path("config"), spec{})
	for _, env := range envs {
		b.create(b.path("config/"+env), spec{data: fmt.Appendf(nil, "environment=%s", env)})
	}
	value := func(key string) []byte {
		switch b.intn(12) {
		case 0:
			return nil // a key that exists only as a flag
		case 1:
			return []byte{}
		case 2, 3:
			return b.bytes(b.between(4, 64)) // raw binary: keys, serialized protos
		case 4:
			return []byte(base64.StdEncoding.EncodeToString(b.bytes(b.between(16, 48))))
		}
		switch key {
		case "port":
			return []byte(strconv.Itoa(b.between(1024, 65535)))
		case "timeout", "ttl":
			return fmt.Appendf(nil, "%d%s", b.between(1, 600), b.pick([]string{"ms", "s", "m"}))
		case "enabled":
			return []byte(strconv.FormatBool(b.chance(0.5)))
		case "url", "host":
			return fmt.Appendf(nil, "https://%s.%s.internal:%d/", b.word(6), b.word(4), b.between(1024, 65535))
		case "level":
			return []byte(b.pick([]string{"debug", "info", "warn", "error"}))
		}
		return []byte(strconv.Itoa(b.intn(100_000)))
	}
	for a := 0; b.count() < budget; a++ {
		env := envs[a%len(envs)]
		app := b.create(b.path(fmt.Sprintf("config/%s/%s-%d", env, b.word(6), a)), spec{
			data: fmt.Appendf(nil, `{"owner":"team-%s","schema":%d}`, b.word(4), b.between(1, 9)),
		})
		for _, sec := range sections[:b.between(2, len(sections))] {
			s := b.create(app+"/"+sec, spec{})
			parent := s
			if b.chance(0.25) {
				parent = b.create(s+"/"+b.pick([]string{"primary", "replica", "v2", "override"}), spec{})
			}
			for _, k := range keys[:b.between(2, len(keys))] {
				p := b.create(parent+"/"+k, spec{data: value(k)})
				if b.chance(0.25) { // edited a few times since
					for range b.between(1, 3) {
						b.setData(p, value(k))
					}
				}
			}
		}
	}
}

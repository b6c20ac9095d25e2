package zkclient

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseConnectString(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		hosts   []string
		chroot  string
		wantErr string // substring; "" means no error
	}{
		{"one", "127.0.0.1:2181", []string{"127.0.0.1:2181"}, "", ""},
		{"several, spaces", "a:1, b.example.com:2 ,c_d:65535", []string{"a:1", "b.example.com:2", "c_d:65535"}, "", ""},
		{"default port", "zk1,zk2:2182", []string{"zk1:2181", "zk2:2182"}, "", ""},
		{"chroot", "a:1,b:2/app/x", []string{"a:1", "b:2"}, "/app/x", ""},
		{"root chroot is none", "a:1/", []string{"a:1"}, "", ""},
		{"ipv6", "[::1]:2181,[fe80::1]", []string{"[::1]:2181", "[fe80::1]:2181"}, "", ""},
		{"garbage host", "garbage!!host:2181", nil, "", `"garbage!!host:2181"`},
		{"port too big", "a:99999", nil, "", "port"},
		{"port zero", "a:0", nil, "", "port"},
		{"port not a number", "a:http", nil, "", "port"},
		{"signed port", "a:+80", nil, "", "port"},
		{"empty port", "a:", nil, "", "empty port"},
		{"empty host", ":2181", nil, "", "empty host name"},
		{"empty entry", "a:1,,b:2", nil, "", "empty host"},
		{"nothing", "", nil, "", "no hosts"},
		{"only a chroot", "/app", nil, "", "no hosts"},
		{"bad chroot", "a:1/app/", nil, "", "chroot"},
		{"leading hyphen", "-a:1", nil, "", "not a host name"},
		{"ipv4 in brackets", "[127.0.0.1]:1", nil, "", "not an IPv6"},
		{"unclosed bracket", "[::1:2181", nil, "", "unclosed"},
		{"spaces inside", "a b:1", nil, "", "not a host name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := ParseConnectString(tc.in)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalidConnectString) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalidConnectString with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cs.Hosts, tc.hosts) || cs.Chroot != tc.chroot {
				t.Errorf("got %q %q, want %q %q", cs.Hosts, cs.Chroot, tc.hosts, tc.chroot)
			}
		})
	}
}

func TestParseHostsRefusesChroot(t *testing.T) {
	if _, err := ParseHosts("a:1/app"); err == nil || !strings.Contains(err.Error(), "chroot") {
		t.Errorf("ParseHosts with a chroot: %v", err)
	}
	hosts, err := ParseHosts("a:1,b")
	if err != nil || !slices.Equal(hosts, []string{"a:1", "b:2181"}) {
		t.Errorf("ParseHosts: %q %v", hosts, err)
	}
}

func FuzzParseConnectString(f *testing.F) {
	for _, s := range []string{"127.0.0.1:2181", "a:1,b:2/app", "[::1]:2181", "garbage!!host", "a:99999", ":1", "a,,b", "/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := ParseConnectString(s)
		if err != nil {
			return
		}
		// What parses renders to a string that parses to the same.
		again, err := ParseConnectString(cs.String())
		if err != nil || !slices.Equal(again.Hosts, cs.Hosts) || again.Chroot != cs.Chroot {
			t.Fatalf("%q -> %q -> %q, %v", s, cs.String(), again.String(), err)
		}
	})
}

func TestParseAuth(t *testing.T) {
	tests := []struct {
		in      string
		want    Auth
		wantErr bool
	}{
		{"digest:user:password", Auth{"digest", []byte("user:password")}, false},
		{"ip:127.0.0.1", Auth{"ip", []byte("127.0.0.1")}, false},
		{"x:", Auth{"x", []byte{}}, false},
		{"nocolon", Auth{}, true},
		{":cred", Auth{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAuth(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if got.Scheme != tc.want.Scheme || string(got.Cred) != string(tc.want.Cred) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

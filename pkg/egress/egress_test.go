package egress_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/authplane/authplane/pkg/egress"
	"github.com/authplane/authplane/pkg/testenv/testdns"
)

func TestParseHostReadsAddressesAsResolversDo(t *testing.T) {
	cases := []struct {
		host string
		want string // the address; "" for a name
	}{
		{"169.254.169.254", "169.254.169.254"},
		{"169.254.169.254.", "169.254.169.254"},
		{"2852039166", "169.254.169.254"},
		{"0xa9fea9fe", "169.254.169.254"},
		{"0XA9FEA9FE", "169.254.169.254"},
		{"0251.0376.0251.0376", "169.254.169.254"},
		{"0xa9.0xfe.0xa9.0xfe", "169.254.169.254"},
		{"0xa9.254.0251.0xfe", "169.254.169.254"},
		{"169.254.43518", "169.254.169.254"},
		{"169.16689662", "169.254.169.254"},
		{"0xa9.0xfea9fe", "169.254.169.254"},
		{"0251.0xfe.43518", "169.254.169.254"},
		{"00000000251.254.169.254", "169.254.169.254"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"0.0.0.0", "0.0.0.0"},
		{"127.1", "127.0.0.1"},
		{"10.1.2.3", "10.1.2.3"},
		{"::", "::"},
		{"[::]", "::"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"[fd00:ec2::254]", "fd00:ec2::254"},
		{"::ffff:169.254.169.254", "::ffff:169.254.169.254"},
		{"::ffff:a9fe:a9fe", "::ffff:169.254.169.254"},
		{"example.com", ""},
		{"metadata.google.internal", ""},
		{"1.2.3.example", ""},
		{"0x1g", ""},
		{"123.example.com", ""},
		{"verifier-10.internal", ""},
	}
	for _, tc := range cases {
		addr, isIP, err := egress.ParseHost(tc.host)
		if err != nil {
			t.Errorf("%s: %v", tc.host, err)
			continue
		}
		if tc.want == "" {
			if isIP {
				t.Errorf("%s: read as the address %s, want a name", tc.host, addr)
			}
			continue
		}
		if !isIP || addr != netip.MustParseAddr(tc.want) {
			t.Errorf("%s: %v (address: %v), want %s", tc.host, addr, isIP, tc.want)
		}
	}
}

func TestParseHostRefusesNumericHostsThatAreNoAddress(t *testing.T) {
	for _, host := range []string{
		"4294967296",        // over 32 bits
		"0x1a9fea9fe",       // over 32 bits
		"256.1.1.1",         // a byte over 255
		"169.254.65536",     // the last part over 16 bits
		"169.16777216",      // the last part over 24 bits
		"08.1.1.1",          // octal with an 8
		"1.2.3.4.5",         // five parts
		"[::g]", "fe80:::1", // colons but no IPv6 address
		"", "[]",
	} {
		if addr, isIP, err := egress.ParseHost(host); err == nil {
			t.Errorf("%q: %v (address: %v), want an error", host, addr, isIP)
		}
	}
}

func TestCheckHostDecides(t *testing.T) {
	extra, err := egress.ParseNetworks("10.9.0.0/16, 203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	dns := testdns.Start(t)
	p := egress.New(extra, dns.Resolver())
	cases := []struct {
		host    string
		refused bool
	}{
		// link-local, unspecified and cloud metadata, in every form
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"2852039166", true},
		{"0xa9fea9fe", true},
		{"0251.0376.0251.0376", true},
		{"169.254.43518", true},
		{"0xa9.254.0251.0xfe", true},
		{"0.0.0.0", true},
		{"0", true},
		{"0.1.2.3", true},
		{"100.100.100.200", true},
		{"::", true},
		{"0:0:0:0:0:0:0:0", true},
		{"fe80::1", true},
		{"FE80::1", true},
		{"fe80::1%eth0", true},
		{"febf:ffff::1", true},
		{"fd00:ec2::254", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:a9fe:a9fe", true},
		{"0:0:0:0:0:ffff:a9fe:a9fe", true},
		{"::ffff:0.0.0.0", true},
		{"::169.254.169.254", true}, // IPv4-compatible
		{"::a9fe:a9fe", true},
		{"64:ff9b::169.254.169.254", true}, // NAT64
		{"metadata.google.internal", true},
		{"METADATA.Google.Internal", true},
		{"metadata.google.internal.", true},
		{"metadata.goog", true},
		// the operator's networks, in any form too
		{"10.9.1.1", true},
		{"::ffff:10.9.1.1", true},
		{"0x0a090101", true},
		{"203.0.113.7", true},
		// private ranges, loopback and the rest stay allowed
		{"10.1.2.3", false},
		{"0x0a010203", false},
		{"172.16.5.4", false},
		{"192.168.1.1", false},
		{"100.64.0.1", false},
		{"100.100.100.201", false},
		{"fd12:3456::1", false},
		{"fd00:ec2::253", false},
		{"127.0.0.1", false},
		{"127.1", false},
		{"2130706433", false},
		{"::1", false},
		{"localhost", false},
		{"203.0.113.8", false},
		{"169.255.0.1", false},
		{"fec0::1", false},
		{"metadata.google.internal.example.com", false},
		{"metadata", false}, // not resolvable here
	}
	for _, tc := range cases {
		err := p.CheckHost(context.Background(), tc.host)
		if tc.refused != (err != nil) {
			t.Errorf("%s: refused %v (%v), want refused %v", tc.host, err != nil, err, tc.refused)
		}
		if err != nil && !errors.Is(err, egress.ErrDenied) {
			t.Errorf("%s: %v is not ErrDenied", tc.host, err)
		}
	}
}

func TestCheckHostRefusesANameThatResolvesToADeniedAddress(t *testing.T) {
	dns := testdns.Start(t)
	dns.Set("verifier.internal.test", netip.MustParseAddr("10.1.2.3"))
	dns.Set("dual.internal.test", netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd12::1"))
	dns.Set("meta.attacker.test", netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("169.254.169.254"))
	dns.Set("six.attacker.test", netip.MustParseAddr("fd00:ec2::254"))
	dns.Set("mapped.attacker.test", netip.MustParseAddr("::ffff:169.254.169.254"))
	dns.Set("zero.attacker.test", netip.MustParseAddr("0.0.0.0"))
	dns.Set("empty.test")
	p := egress.New(nil, dns.Resolver())
	for _, tc := range []struct {
		host    string
		refused string // what the error says; "" when allowed
	}{
		{"verifier.internal.test", ""},
		{"dual.internal.test", ""},
		{"VERIFIER.internal.test.", ""},
		{"empty.test", ""},
		// does not resolve now: the check at connection time covers it
		{"unknown.test", ""},
		{"meta.attacker.test", "meta.attacker.test resolves to 169.254.169.254, a link-local address"},
		{"six.attacker.test", "six.attacker.test resolves to fd00:ec2::254, a cloud metadata address"},
		{"mapped.attacker.test", "resolves to"},
		{"zero.attacker.test", "zero.attacker.test resolves to 0.0.0.0, an unspecified address"},
	} {
		err := p.CheckHost(context.Background(), tc.host)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s: refused (%v), want allowed", tc.host, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%s: %v, want refused saying %q", tc.host, err, tc.refused)
		}
	}
}

func TestDeniedErrorsSayWhatTheHostIs(t *testing.T) {
	p := egress.New([]netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, nil)
	for host, want := range map[string]string{
		"169.254.169.254":          "169.254.169.254 is a link-local address",
		"0xa9fea9fe":               "0xa9fea9fe (169.254.169.254) is a link-local address",
		"[::]":                     "[::] (::) is an unspecified address",
		"::a9fe:a9fe":              "::a9fe:a9fe is an IPv6 form of 169.254.169.254, a link-local address",
		"metadata.goog":            "metadata.goog is the name of a cloud metadata service",
		"10.9.8.7":                 "10.9.8.7 is in 10.9.0.0/16, a network the operator denies",
		"100.100.100.200":          "100.100.100.200 is a cloud metadata address",
		"metadata.google.internal": "metadata.google.internal is the name of a cloud metadata service",
	} {
		if err := p.CheckHost(context.Background(), host); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", host, err, want)
		}
	}
}

func TestControlRefusesDeniedAddressesAtConnectionTime(t *testing.T) {
	p := egress.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, nil)
	for address, refused := range map[string]bool{
		"169.254.169.254:80":          true,
		"[fe80::1%eth0]:443":          true,
		"[fd00:ec2::254]:80":          true,
		"[::ffff:169.254.169.254]:80": true,
		"0.0.0.0:8080":                true,
		"[::]:8080":                   true,
		"100.100.100.200:80":          true,
		"127.0.0.2:80":                true,
		"not-an-address:80":           true, // unreadable: refused
		"10.1.2.3:8080":               false,
		"127.0.0.1:8080":              false,
		"[::1]:8080":                  false,
		"192.168.1.1:443":             false,
	} {
		err := p.Control("tcp", address, nil)
		if refused != (err != nil) || (err != nil && !errors.Is(err, egress.ErrDenied)) {
			t.Errorf("%s: %v, want refused %v", address, err, refused)
		}
	}
}

// A dialer with the hook refuses before connecting, and the dial error still matches ErrDenied. 0.0.0.0 is
// where Linux reaches the host itself: without the hook this dial would connect to the listener.
func TestADialerWithControlNeverConnectsToADeniedAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	target := net.JoinHostPort("0.0.0.0", strconv.Itoa(port))
	if c, err := (&net.Dialer{}).Dial("tcp", target); err != nil {
		t.Skipf("this system does not connect 0.0.0.0 to the local host (%v): nothing to refuse", err)
	} else {
		c.Close()
	}
	p := egress.New(nil, nil)
	c, err := (&net.Dialer{Control: p.Control}).Dial("tcp", target)
	if err == nil {
		c.Close()
		t.Fatal("the dialer with Control connected to 0.0.0.0")
	}
	if !errors.Is(err, egress.ErrDenied) {
		t.Errorf("dial error %v does not match ErrDenied", err)
	}
}

func TestParseNetworks(t *testing.T) {
	for list, want := range map[string]string{
		"":                        "",
		" , ":                     "",
		"10.20.0.0/16":            "10.20.0.0/16",
		"10.20.3.4/16, fd12::/48": "10.20.0.0/16 fd12::/48",
		"203.0.113.7,2001:db8::1": "203.0.113.7/32 2001:db8::1/128",
		"::ffff:10.0.0.0/104":     "10.0.0.0/8",
		"127.0.0.0/8,":            "127.0.0.0/8",
		"0.0.0.0/0":               "0.0.0.0/0",
	} {
		got, err := egress.ParseNetworks(list)
		if err != nil {
			t.Errorf("%q: %v", list, err)
			continue
		}
		var s []string
		for _, n := range got {
			s = append(s, n.String())
		}
		if strings.Join(s, " ") != want {
			t.Errorf("%q: %v, want %s", list, s, want)
		}
	}
	for _, list := range []string{"10.20.0.0/33", "10.20.0.0/", "example.com", "10.1", "fe80::1%eth0", "10.0.0.0/8,bogus", "2852039166"} {
		if _, err := egress.ParseNetworks(list); err == nil || !strings.Contains(err.Error(), "CIDR") {
			t.Errorf("%q: %v, want an error naming CIDR notation", list, err)
		}
	}
}

func TestNilPolicyIsTheBuiltinOne(t *testing.T) {
	var p *egress.Policy
	if err := p.CheckHost(context.Background(), "0xa9fea9fe"); !errors.Is(err, egress.ErrDenied) {
		t.Errorf("nil policy allowed 0xa9fea9fe: %v", err)
	}
	if err := p.Control("tcp", "10.1.2.3:80", nil); err != nil {
		t.Errorf("nil policy refused 10.1.2.3: %v", err)
	}
	if p.Resolver() != net.DefaultResolver {
		t.Error("nil policy's resolver is not the system's")
	}
}

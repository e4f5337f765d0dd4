// Package egress decides whether the platform may connect to an outbound destination that tenants configure
// (today: external credential verifiers). It refuses the addresses through which a server reaches its own
// infrastructure instead of a customer's service: link-local (169.254.0.0/16, fe80::/10, where clouds serve
// instance metadata and credentials), unspecified (0.0.0.0/8, ::, which Linux connects to the host itself), the
// cloud metadata services' other addresses and names, and the networks the operator adds.
//
// Private ranges stay allowed: verifiers sit on customers' internal networks. Loopback stays allowed too: a
// verifier may run beside the server (a sidecar), and tests run theirs on 127.0.0.1. An operator who wants
// either refused adds it to the policy (AUTHPLANE_EGRESS_DENY_NETWORKS).
//
// A destination is checked twice: when it is configured (CheckHost: its literal form, its name, what the name
// resolves to now) and when a connection is made (Control, a net.Dialer hook that sees the address actually
// dialed), so that a name resolving somewhere else later (DNS rebinding) is refused too.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrDenied matches (errors.Is) every refusal of the policy, including one wrapped in a dial error.
var ErrDenied = errors.New("destination denied by the egress policy")

// DeniedError says which destination was refused and why.
type DeniedError struct {
	// Host is the destination as configured (a name or a numeric form); empty at connection time.
	Host string
	// Addr is the address refused; invalid when a name is refused by itself.
	Addr netip.Addr
	// Resolved tells that Addr is what the name Host resolves to.
	Resolved bool
	// Reason says what the address or name is, e.g. "a link-local address".
	Reason string
}

func (e *DeniedError) Error() string {
	switch {
	case !e.Addr.IsValid():
		return fmt.Sprintf("%s is %s", e.Host, e.Reason)
	case e.Host == "" || e.Host == e.Addr.String():
		return fmt.Sprintf("%s is %s", e.Addr, e.Reason)
	case e.Resolved:
		return fmt.Sprintf("%s resolves to %s, %s", e.Host, e.Addr, e.Reason)
	default: // a numeric form of the address
		return fmt.Sprintf("%s (%s) is %s", e.Host, e.Addr, e.Reason)
	}
}

func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// rule denies a network, saying what it is.
type rule struct {
	network netip.Prefix
	reason  string
}

// builtinRules apply whatever the operator configures.
var builtinRules = []rule{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"},
	// Instance metadata (and its credentials) on AWS, Azure, GCP, Oracle, DigitalOcean and others: 169.254.169.254.
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("100.100.100.200/32"), "a cloud metadata address"}, // Alibaba Cloud
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata address"}, // AWS, over IPv6
}

// metadataNames are cloud metadata services' names, refused before any lookup: where they resolve, they resolve
// to a denied address, but the check at configuration time should not depend on the resolver it runs beside.
var metadataNames = []string{"metadata.google.internal", "metadata.goog"}

// IPv6 prefixes whose addresses carry an IPv4 address in their last 32 bits and reach it: IPv4-compatible
// (::a.b.c.d, deprecated but still parsed and routed by some stacks) and NAT64's well-known prefix (translated by
// the network's gateway). IPv4-mapped addresses (::ffff:a.b.c.d) are unmapped instead.
var (
	ipv4Compatible = netip.MustParsePrefix("::/96")
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
)

// lookupTimeout bounds the lookup of a name at configuration time: an admin waits for the answer, and a name
// that does not resolve in time is checked again at every connection anyway.
const lookupTimeout = 2 * time.Second

// Policy is the set of denied destinations and the resolver names are checked with. A nil *Policy is the
// built-in policy with the system's resolver.
type Policy struct {
	rules    []rule
	resolver *net.Resolver
}

var builtinPolicy = New(nil, nil)

// New is the built-in policy plus the networks the operator denies; resolver (nil: the system's) resolves names
// both when they are checked and when connections are made, so that tests can point names where they want.
func New(denyNetworks []netip.Prefix, resolver *net.Resolver) *Policy {
	p := &Policy{rules: slices.Clone(builtinRules), resolver: resolver}
	for _, n := range denyNetworks {
		p.rules = append(p.rules, rule{n, fmt.Sprintf("in %s, a network the operator denies", n)})
	}
	return p
}

func (p *Policy) orBuiltin() *Policy {
	if p == nil {
		return builtinPolicy
	}
	return p
}

// Resolver is the resolver of the policy's dialers (net.Dialer.Resolver).
func (p *Policy) Resolver() *net.Resolver {
	if p := p.orBuiltin(); p.resolver != nil {
		return p.resolver
	}
	return net.DefaultResolver
}

// CheckAddr refuses a denied address.
func (p *Policy) CheckAddr(addr netip.Addr) error {
	if reason, denied := p.orBuiltin().deniedBy(addr); denied {
		return &DeniedError{Addr: addr, Reason: reason}
	}
	return nil
}

// deniedBy says whether addr is denied, and why.
func (p *Policy) deniedBy(addr netip.Addr) (string, bool) {
	// A zone does not change where an address leads, but netip.Prefix.Contains is false for any zoned address.
	a := addr.WithZone("").Unmap()
	if !a.IsValid() {
		return "not an IP address", true
	}
	if reason, denied := p.match(a); denied {
		return reason, true
	}
	// ::1 is the loopback address, not the IPv4-compatible form of 0.0.0.1.
	if a.Is6() && a != netip.IPv6Loopback() && (ipv4Compatible.Contains(a) || nat64.Contains(a)) {
		b := a.As16()
		v4 := netip.AddrFrom4([4]byte(b[12:]))
		if reason, denied := p.match(v4); denied {
			return fmt.Sprintf("an IPv6 form of %s, %s", v4, reason), true
		}
	}
	return "", false
}

func (p *Policy) match(a netip.Addr) (string, bool) {
	for _, r := range p.rules {
		if r.network.Contains(a) {
			return r.reason, true
		}
	}
	return "", false
}

// CheckHost checks a configured destination's host (a URL's Hostname: a name, an IPv6 literal, or an IPv4
// address in any form resolvers accept): refused when it is a denied address, a metadata service's name, a
// numeric form that is no address, or a name that resolves now to any denied address.
func (p *Policy) CheckHost(ctx context.Context, host string) error {
	p = p.orBuiltin()
	addr, isIP, err := ParseHost(host)
	if err != nil {
		return err
	}
	if isIP {
		if reason, denied := p.deniedBy(addr); denied {
			return &DeniedError{Host: host, Addr: addr, Reason: reason}
		}
		return nil
	}
	if slices.Contains(metadataNames, strings.ToLower(strings.TrimSuffix(host, "."))) {
		return &DeniedError{Host: host, Reason: "the name of a cloud metadata service"}
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := p.Resolver().LookupNetIP(ctx, "ip", host)
	if err != nil {
		// Not refused: a name that does not resolve now (not yet registered, the resolver slow or unreachable)
		// may resolve later, to anything, and Control refuses a denied address at every connection then.
		return nil
	}
	for _, a := range addrs {
		if reason, denied := p.deniedBy(a); denied {
			return &DeniedError{Host: host, Addr: a, Resolved: true, Reason: reason}
		}
	}
	return nil
}

// Control refuses a connection to a denied address. Set as net.Dialer.Control, it runs for every address a name
// resolves to when the connection is made, so a name that resolved elsewhere when it was configured is refused
// too. It sees the address actually dialed: behind a proxy it would see the proxy's, so a client using it must
// not use one. An address it cannot read is refused.
func (p *Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &DeniedError{Host: address, Reason: "not an IP address and port"}
	}
	return p.CheckAddr(ap.Addr())
}

// ParseHost reads a host as resolvers do. An IPv6 literal (brackets optional, a zone allowed) and an IPv4 address
// in any inet_aton form — dotted decimal, one to four parts, each decimal, octal (leading 0) or hexadecimal (0x),
// the last filling the remaining bytes: 2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518 — are
// addresses (isIP true); anything else is a name. A host made only of numeric parts that is no address (a part
// too large, 08, five parts) is an error: resolvers disagree on such hosts (some wrap values around), and no DNS
// name looks like that.
func ParseHost(host string) (addr netip.Addr, isIP bool, err error) {
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" {
		return netip.Addr{}, false, errors.New("the host is empty")
	}
	if strings.Contains(h, ":") { // no name has a colon
		a, err := netip.ParseAddr(h)
		if err != nil {
			return netip.Addr{}, false, fmt.Errorf("%s is not a valid IPv6 address", host)
		}
		return a, true, nil
	}
	parts := strings.Split(strings.TrimSuffix(h, "."), ".")
	if !slices.ContainsFunc(parts, func(s string) bool { return !numberShaped(s) }) {
		a, ok := parseIPv4(parts)
		if !ok {
			return netip.Addr{}, false, fmt.Errorf("%s is a numeric host but not a valid IPv4 address", host)
		}
		return a, true, nil
	}
	return netip.Addr{}, false, nil
}

// numberShaped reports a part that resolvers read as a number: decimal digits, or 0x and hexadecimal digits.
func numberShaped(s string) bool {
	digits, hex := s, false
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		digits, hex = s[2:], true
	}
	if digits == "" {
		return hex // "0x" alone is 0 to inet_aton
	}
	for _, c := range digits {
		if !('0' <= c && c <= '9' || hex && ('a' <= c && c <= 'f' || 'A' <= c && c <= 'F')) {
			return false
		}
	}
	return true
}

// parseIPv4 reads inet_aton's forms: a, a.b (b 24 bits), a.b.c (c 16 bits), a.b.c.d.
func parseIPv4(parts []string) (netip.Addr, bool) {
	if len(parts) < 1 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, part := range parts {
		n, ok := parseNumber(part)
		if !ok {
			return netip.Addr{}, false
		}
		bits := uint(8)
		if i == len(parts)-1 {
			bits = uint(8 * (4 - i)) // the last part fills the bytes left
		}
		if n >= 1<<bits {
			return netip.Addr{}, false
		}
		v = v<<bits | n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseNumber(s string) (uint64, bool) {
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
		if s == "" {
			return 0, true
		}
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	n, err := strconv.ParseUint(s, base, 32)
	return n, err == nil
}

// ParseNetworks reads the operator's comma list of networks to deny: CIDRs (10.20.0.0/16, fd12::/48) or single
// addresses. Blank entries are skipped.
func ParseNetworks(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, field := range strings.Split(list, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		var n netip.Prefix
		if strings.Contains(field, "/") {
			p, err := netip.ParsePrefix(field)
			if err != nil {
				return nil, fmt.Errorf("%q is not a network in CIDR notation (e.g. 10.20.0.0/16 or fd12::/48)", field)
			}
			n = p.Masked()
		} else {
			a, err := netip.ParseAddr(field)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is neither a network in CIDR notation (e.g. 10.20.0.0/16) nor an IP address", field)
			}
			n = netip.PrefixFrom(a, a.BitLen())
		}
		// Addresses are checked unmapped, so an IPv4-mapped network is kept as the IPv4 network it is.
		if n.Addr().Is4In6() && n.Bits() >= 96 {
			n = netip.PrefixFrom(n.Addr().Unmap(), n.Bits()-96)
		}
		out = append(out, n)
	}
	return out, nil
}

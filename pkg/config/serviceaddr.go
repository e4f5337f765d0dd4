package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// ServiceAddr is where the replicas of a service run, as AUTHPLANE_<NAME>_ADDR gives it.
type ServiceAddr struct {
	// Target is a gRPC target resolved by DNS, and again whenever a connection fails: `dns:///host:port`,
	// `dns://resolver-host:53/host:port`, or a single host:port (gRPC reads a plain address as a DNS name). Every
	// address the name resolves to is a replica. Empty when Addrs is set.
	Target string
	// Addrs is a fixed list of two or more replicas (`host1:9090,host2:9090`).
	Addrs []string
}

// ParseServiceAddr reads the value of AUTHPLANE_<NAME>_ADDR: one host:port, a comma-separated list of them, or a
// dns:/// target naming every replica at once.
func ParseServiceAddr(value string) (ServiceAddr, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return ServiceAddr{}, errors.New("no address")
	}
	if scheme, rest, ok := strings.Cut(value, "://"); ok {
		if scheme != "dns" {
			return ServiceAddr{}, fmt.Errorf("%q: the only scheme understood is dns:/// (or give host:port addresses)", value)
		}
		if strings.Contains(value, ",") {
			return ServiceAddr{}, fmt.Errorf("%q: a dns:/// target stands alone; it already names every replica", value)
		}
		authority, hostPort, ok := strings.Cut(rest, "/")
		if !ok {
			return ServiceAddr{}, fmt.Errorf("%q: write dns:///host:port (three slashes), or dns://resolver:53/host:port", value)
		}
		if authority != "" {
			if err := checkHostPort(authority); err != nil {
				return ServiceAddr{}, fmt.Errorf("%q: the DNS server %w", value, err)
			}
		}
		if err := checkHostPort(hostPort); err != nil {
			return ServiceAddr{}, fmt.Errorf("%q: %w", value, err)
		}
		return ServiceAddr{Target: value}, nil
	}
	var addrs []string
	for _, a := range strings.Split(value, ",") {
		a = strings.TrimSpace(a)
		if err := checkHostPort(a); err != nil {
			return ServiceAddr{}, fmt.Errorf("%q: %w", a, err)
		}
		if slices.Contains(addrs, a) {
			return ServiceAddr{}, fmt.Errorf("%q is listed twice", a)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 1 {
		return ServiceAddr{Target: addrs[0]}, nil
	}
	return ServiceAddr{Addrs: addrs}, nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return errors.New("must be host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("has no valid port (%q)", port)
	}
	return nil
}

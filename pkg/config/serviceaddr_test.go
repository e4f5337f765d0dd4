package config

import (
	"slices"
	"strings"
	"testing"
)

func TestParseServiceAddr(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		target  string
		addrs   []string
		wantErr string
	}{
		{name: "one address is a name gRPC resolves", value: "token:9090", target: "token:9090"},
		{name: "a list of replicas", value: "token-1:9090, token-2:9090,10.0.0.7:9090", addrs: []string{"token-1:9090", "token-2:9090", "10.0.0.7:9090"}},
		{name: "IPv6 replicas", value: "[fd00::1]:9090,[fd00::2]:9090", addrs: []string{"[fd00::1]:9090", "[fd00::2]:9090"}},
		{name: "a DNS target", value: "dns:///token.authplane.svc.cluster.local:9090", target: "dns:///token.authplane.svc.cluster.local:9090"},
		{name: "a DNS target with its own resolver", value: "dns://10.0.0.10:53/token:9090", target: "dns://10.0.0.10:53/token:9090"},
		{name: "surrounding spaces", value: "  token:9090 ", target: "token:9090"},
		{name: "no port", value: "token", wantErr: `"token": must be host:port`},
		{name: "no host", value: ":9090", wantErr: `":9090": must be host:port`},
		{name: "a port out of range", value: "token:90900", wantErr: `has no valid port ("90900")`},
		{name: "an empty entry in a list", value: "token-1:9090,,token-2:9090", wantErr: `"": must be host:port`},
		{name: "a replica listed twice", value: "token-1:9090,token-1:9090", wantErr: `"token-1:9090" is listed twice`},
		{name: "a DNS target in a list", value: "dns:///token:9090,token-2:9090", wantErr: "stands alone"},
		{name: "a DNS target with two slashes", value: "dns://token:9090", wantErr: "three slashes"},
		{name: "a DNS target without a port", value: "dns:///token", wantErr: "must be host:port"},
		{name: "another scheme", value: "xds:///token:9090", wantErr: "the only scheme understood is dns:///"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseServiceAddr(tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Target != tc.target || !slices.Equal(got.Addrs, tc.addrs) {
				t.Errorf("got %+v, want target %q addrs %q", got, tc.target, tc.addrs)
			}
		})
	}
}

// TestAMalformedServiceAddressIsRefusedAtStart: the process names the variable and the entry, rather than
// failing its first call to that service.
func TestAMalformedServiceAddressIsRefusedAtStart(t *testing.T) {
	_, err := Parse(nil, func(k string) string {
		return map[string]string{"AUTHPLANE_POOL_ADDR": "pool-1:9090,pool-2"}[k]
	})
	if want := `AUTHPLANE_POOL_ADDR: "pool-2": must be host:port`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

package config

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c *Config)
		wantErr bool
	}{
		{name: "defaults", check: func(t *testing.T, c *Config) {
			if c.HTTPAddr != ":8080" || c.GRPCAddr != ":9090" || c.DatabaseURL != "sqlite:authplane.db" || c.IssuerURL != "http://localhost:8080" {
				t.Errorf("defaults: %+v", c)
			}
			if len(c.Services) != 7 || !c.Runs("gateway") || !c.Runs("token") {
				t.Errorf("services: %v", c.Services)
			}
		}},
		{name: "environment", env: map[string]string{
			"AUTHPLANE_HTTP_ADDR": "127.0.0.1:1", "AUTHPLANE_SERVICES": "token, client", "AUTHPLANE_ISSUER_URL": "https://id.example.com/",
			"AUTHPLANE_TOKEN_ADDR": "token:9090", "AUTHPLANE_ROOT_CLIENT_SECRET": "s",
		}, check: func(t *testing.T, c *Config) {
			if c.HTTPAddr != "127.0.0.1:1" || !slices.Equal(c.Services, []string{"token", "client"}) || c.Runs("gateway") {
				t.Errorf("%+v", c)
			}
			if c.IssuerURL != "https://id.example.com" {
				t.Errorf("the issuer URL keeps a trailing slash: %q", c.IssuerURL)
			}
			if c.Addrs["token"] != "token:9090" || c.RootClientSecret != "s" {
				t.Errorf("%+v", c)
			}
		}},
		{name: "flags win over the environment", args: []string{"--http-addr=:1", "--services=gateway"},
			env: map[string]string{"AUTHPLANE_HTTP_ADDR": ":2", "AUTHPLANE_SERVICES": "token"},
			check: func(t *testing.T, c *Config) {
				if c.HTTPAddr != ":1" || !slices.Equal(c.Services, []string{"gateway"}) {
					t.Errorf("%+v", c)
				}
			}},
		{name: "password hashing bounds", env: map[string]string{
			"AUTHPLANE_PASSWORD_HASHING_MEMORY_MB": "64", "AUTHPLANE_PASSWORD_HASHING_MAX_WAIT": "500ms",
		}, args: []string{"--password-hashing-concurrency=3"}, check: func(t *testing.T, c *Config) {
			h := c.PasswordHashing
			if h.MemoryBudget != 64<<20 || h.MaxConcurrent != 3 || h.MaxWait.Milliseconds() != 500 {
				t.Errorf("%+v", h)
			}
		}},
		{name: "hashing budget too small", env: map[string]string{"AUTHPLANE_PASSWORD_HASHING_MEMORY_MB": "4"}, wantErr: true},
		{name: "malformed hashing wait", env: map[string]string{"AUTHPLANE_PASSWORD_HASHING_MAX_WAIT": "soon"}, wantErr: true},
		{name: "unknown service", args: []string{"--services=gateway,billing"}, wantErr: true},
		{name: "unknown flag", args: []string{"--colour"}, wantErr: true},
		{name: "stray argument", args: []string{"now"}, wantErr: true},
		{name: "egress deny networks from the environment", env: map[string]string{"AUTHPLANE_EGRESS_DENY_NETWORKS": "10.20.0.0/16, fd12::/48"},
			check: func(t *testing.T, c *Config) {
				if got := fmt.Sprint(c.EgressDenyNetworks); got != "[10.20.0.0/16 fd12::/48]" {
					t.Errorf("egress deny networks %s", got)
				}
			}},
		{name: "egress deny networks from the flag", args: []string{"--egress-deny-networks=192.168.7.0/24"},
			env: map[string]string{"AUTHPLANE_EGRESS_DENY_NETWORKS": "10.20.0.0/16"}, check: func(t *testing.T, c *Config) {
				if got := fmt.Sprint(c.EgressDenyNetworks); got != "[192.168.7.0/24]" {
					t.Errorf("egress deny networks %s", got)
				}
			}},
		{name: "no egress deny networks by default", check: func(t *testing.T, c *Config) {
			if len(c.EgressDenyNetworks) != 0 {
				t.Errorf("egress deny networks %v", c.EgressDenyNetworks)
			}
		}},
		{name: "invalid egress deny network", env: map[string]string{"AUTHPLANE_EGRESS_DENY_NETWORKS": "10.20.0.0/16,10.300.0.0/16"},
			wantErr: true},
		{name: "metrics on the HTTP address with tenant labels by default", check: func(t *testing.T, c *Config) {
			if c.MetricsAddr != "" || !c.MetricsTenantLabels {
				t.Errorf("metrics addr %q, tenant labels %v", c.MetricsAddr, c.MetricsTenantLabels)
			}
		}},
		{name: "metrics settings from the environment", env: map[string]string{
			"AUTHPLANE_METRICS_ADDR": "127.0.0.1:9100", "AUTHPLANE_METRICS_TENANT_LABELS": "false",
		}, check: func(t *testing.T, c *Config) {
			if c.MetricsAddr != "127.0.0.1:9100" || c.MetricsTenantLabels {
				t.Errorf("metrics addr %q, tenant labels %v", c.MetricsAddr, c.MetricsTenantLabels)
			}
		}},
		{name: "metrics flags win over the environment", args: []string{"--metrics-addr=:9200", "--metrics-tenant-labels=false"},
			env: map[string]string{"AUTHPLANE_METRICS_ADDR": ":9100", "AUTHPLANE_METRICS_TENANT_LABELS": "true"},
			check: func(t *testing.T, c *Config) {
				if c.MetricsAddr != ":9200" || c.MetricsTenantLabels {
					t.Errorf("metrics addr %q, tenant labels %v", c.MetricsAddr, c.MetricsTenantLabels)
				}
			}},
		{name: "malformed metrics tenant labels", env: map[string]string{"AUTHPLANE_METRICS_TENANT_LABELS": "sometimes"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.args, func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestAnInvalidEgressDenyNetworkNamesTheSettingAndTheValue(t *testing.T) {
	_, err := Parse(nil, func(k string) string {
		return map[string]string{"AUTHPLANE_EGRESS_DENY_NETWORKS": "10.20.0.0/16,10.300.0.0/16"}[k]
	})
	want := `--egress-deny-networks (AUTHPLANE_EGRESS_DENY_NETWORKS): "10.300.0.0/16" is not a network in CIDR notation (e.g. 10.20.0.0/16 or fd12::/48)`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestMasterKey(t *testing.T) {
	key := make([]byte, 32)
	key[0] = 7
	good := base64.StdEncoding.EncodeToString(key)

	t.Run("configured key is used", func(t *testing.T) {
		c := &Config{MasterKeyB64: good}
		k, err := c.MasterKey("")
		if err != nil || k[0] != 7 {
			t.Fatalf("%v %v", k, err)
		}
	})
	t.Run("a key that is not 32 bytes is refused", func(t *testing.T) {
		for _, bad := range []string{"short", base64.StdEncoding.EncodeToString(make([]byte, 16)), "!!!"} {
			if _, err := (&Config{MasterKeyB64: bad}).MasterKey(""); err == nil {
				t.Errorf("accepted %q", bad)
			}
		}
	})
	t.Run("PostgreSQL without a key refuses to start", func(t *testing.T) {
		if _, err := (&Config{}).MasterKey(""); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("SQLite keeps a generated key beside the file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.db")
		k1, err := (&Config{}).MasterKey(path)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path + ".key")
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v", st, err)
		}
		k2, err := (&Config{}).MasterKey(path)
		if err != nil || string(k1) != string(k2) || len(k1) != 32 {
			t.Fatal("the kept key is not reused")
		}
	})
}

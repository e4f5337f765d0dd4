package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
		{name: "no shutdown drain by default", check: func(t *testing.T, c *Config) {
			if c.ShutdownDrain != 0 {
				t.Errorf("shutdown drain %v", c.ShutdownDrain)
			}
		}},
		{name: "shutdown drain from the environment", env: map[string]string{"AUTHPLANE_SHUTDOWN_DRAIN": "5s"}, check: func(t *testing.T, c *Config) {
			if c.ShutdownDrain != 5*time.Second {
				t.Errorf("shutdown drain %v", c.ShutdownDrain)
			}
		}},
		{name: "malformed shutdown drain", env: map[string]string{"AUTHPLANE_SHUTDOWN_DRAIN": "a while"}, wantErr: true},
		{name: "negative shutdown drain", args: []string{"--shutdown-drain=-1s"}, wantErr: true},
		{name: "replica lists kept as given", env: map[string]string{"AUTHPLANE_TOKEN_ADDR": "token-1:9090,token-2:9090", "AUTHPLANE_POOL_ADDR": "dns:///pool:9090"},
			check: func(t *testing.T, c *Config) {
				if c.Addrs["token"] != "token-1:9090,token-2:9090" || c.Addrs["pool"] != "dns:///pool:9090" {
					t.Errorf("addrs %v", c.Addrs)
				}
			}},
		{name: "malformed metrics tenant labels", env: map[string]string{"AUTHPLANE_METRICS_TENANT_LABELS": "sometimes"}, wantErr: true},
		{name: "plaintext listeners and calls, a year of HSTS, by default", check: func(t *testing.T, c *Config) {
			if c.ServesTLS() || c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSCAFile != "" || c.TLSServerName != "" {
				t.Errorf("TLS settings by default: %q %q %q %q", c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile, c.TLSServerName)
			}
			if c.HSTSMaxAge != 365*24*time.Hour {
				t.Errorf("HSTS max-age %s", c.HSTSMaxAge)
			}
		}},
		{name: "TLS settings from the environment", env: map[string]string{
			"AUTHPLANE_TLS_CERT_FILE": "/tls/tls.crt", "AUTHPLANE_TLS_KEY_FILE": "/tls/tls.key", "AUTHPLANE_TLS_CA_FILE": "/tls/ca.crt",
			"AUTHPLANE_TLS_SERVER_NAME": "authplane.internal", "AUTHPLANE_HSTS_MAX_AGE": "0s",
		}, check: func(t *testing.T, c *Config) {
			if !c.ServesTLS() || c.TLSCertFile != "/tls/tls.crt" || c.TLSKeyFile != "/tls/tls.key" || c.TLSCAFile != "/tls/ca.crt" ||
				c.TLSServerName != "authplane.internal" || c.HSTSMaxAge != 0 {
				t.Errorf("%q %q %q %q %s", c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile, c.TLSServerName, c.HSTSMaxAge)
			}
		}},
		{name: "TLS flags win over the environment", args: []string{"--tls-cert-file=a.crt", "--tls-key-file=a.key", "--tls-ca-file=ca.pem", "--hsts-max-age=1h"},
			env: map[string]string{"AUTHPLANE_TLS_CERT_FILE": "b.crt", "AUTHPLANE_TLS_KEY_FILE": "b.key", "AUTHPLANE_TLS_CA_FILE": "other.pem"},
			check: func(t *testing.T, c *Config) {
				if c.TLSCertFile != "a.crt" || c.TLSKeyFile != "a.key" || c.TLSCAFile != "ca.pem" || c.HSTSMaxAge != time.Hour {
					t.Errorf("%q %q %q %s", c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile, c.HSTSMaxAge)
				}
			}},
		{name: "a CA file alone: plaintext listeners, TLS calls", env: map[string]string{"AUTHPLANE_TLS_CA_FILE": "/tls/ca.crt"},
			check: func(t *testing.T, c *Config) {
				if c.ServesTLS() || c.TLSCAFile != "/tls/ca.crt" {
					t.Errorf("serves TLS %v, CA file %q", c.ServesTLS(), c.TLSCAFile)
				}
			}},
		{name: "a certificate without its key", env: map[string]string{"AUTHPLANE_TLS_CERT_FILE": "/tls/tls.crt"}, wantErr: true},
		{name: "a key without its certificate", args: []string{"--tls-key-file=/tls/tls.key"}, wantErr: true},
		{name: "a server name without a CA file", env: map[string]string{"AUTHPLANE_TLS_SERVER_NAME": "authplane.internal"}, wantErr: true},
		{name: "a negative HSTS max-age", args: []string{"--hsts-max-age=-1s"}, wantErr: true},
		{name: "a malformed HSTS max-age", env: map[string]string{"AUTHPLANE_HSTS_MAX_AGE": "a year"}, wantErr: true},
		{name: "no audit stream by default", check: func(t *testing.T, c *Config) {
			if c.AuditNATSURL != "" || c.AuditNATSStream != "AUTHPLANE_AUDIT" {
				t.Errorf("audit NATS URL %q, stream %q", c.AuditNATSURL, c.AuditNATSStream)
			}
		}},
		{name: "audit stream settings from the environment", env: map[string]string{
			"AUTHPLANE_AUDIT_NATS_URL": "nats://audit:secret@nats-1:4222, tls://nats-2:4222", "AUTHPLANE_AUDIT_NATS_STREAM": "AUDIT_EU",
		}, check: func(t *testing.T, c *Config) {
			if c.AuditNATSURL != "nats://audit:secret@nats-1:4222, tls://nats-2:4222" || c.AuditNATSStream != "AUDIT_EU" {
				t.Errorf("audit NATS URL %q, stream %q", c.AuditNATSURL, c.AuditNATSStream)
			}
		}},
		{name: "audit NATS address without a scheme", args: []string{"--audit-nats-url=127.0.0.1:4222"}, check: func(t *testing.T, c *Config) {
			if c.AuditNATSURL != "127.0.0.1:4222" {
				t.Errorf("audit NATS URL %q", c.AuditNATSURL)
			}
		}},
		{name: "audit NATS URL of another scheme", env: map[string]string{"AUTHPLANE_AUDIT_NATS_URL": "http://nats:4222"}, wantErr: true},
		{name: "audit NATS URL without a host", env: map[string]string{"AUTHPLANE_AUDIT_NATS_URL": "nats://"}, wantErr: true},
		{name: "audit stream name with a dot", env: map[string]string{"AUTHPLANE_AUDIT_NATS_STREAM": "audit.events"}, wantErr: true},
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
	write := func(t *testing.T, content string, mode os.FileMode) string {
		path := filepath.Join(t.TempDir(), "master.key")
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("configured key is used", func(t *testing.T) {
		c := &Config{MasterKeyB64: good}
		k, err := c.MasterKey("", false)
		if err != nil || k[0] != 7 {
			t.Fatalf("%v %v", k, err)
		}
	})
	t.Run("a key file is read, its line end ignored", func(t *testing.T) {
		k, err := (&Config{MasterKeyFile: write(t, good+"\n", 0o400)}).MasterKey("", false)
		if err != nil || len(k) != 32 || k[0] != 7 {
			t.Fatalf("%v %v", k, err)
		}
	})
	t.Run("a key that is not 32 bytes is refused", func(t *testing.T) {
		for _, bad := range []string{"short", base64.StdEncoding.EncodeToString(make([]byte, 16)), "!!!"} {
			if _, err := (&Config{MasterKeyB64: bad}).MasterKey("", true); err == nil {
				t.Errorf("accepted %q", bad)
			}
			path := write(t, bad, 0o600)
			_, err := (&Config{MasterKeyFile: path}).MasterKey("", true)
			if want := "the master key file " + path + " (AUTHPLANE_MASTER_KEY_FILE) must hold a master key (base64 of 32 bytes, e.g. `head -c 32 /dev/urandom | base64 > master.key`)"; err == nil || err.Error() != want {
				t.Errorf("key file holding %q: %v", bad, err)
			}
		}
	})
	t.Run("a missing key file is an error naming the setting", func(t *testing.T) {
		_, err := (&Config{MasterKeyFile: filepath.Join(t.TempDir(), "absent")}).MasterKey(filepath.Join(t.TempDir(), "a.db"), true)
		if err == nil || !strings.Contains(err.Error(), "AUTHPLANE_MASTER_KEY_FILE") || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("PostgreSQL without a key refuses to start", func(t *testing.T) {
		if _, err := (&Config{}).MasterKey("", true); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("SQLite keeps a generated key beside a new database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.db")
		k1, err := (&Config{}).MasterKey(path, true)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path + ".key")
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v", st, err)
		}
		k2, err := (&Config{}).MasterKey(path, false)
		if err != nil || string(k1) != string(k2) || len(k1) != 32 {
			t.Fatal("the kept key is not reused")
		}
	})
	t.Run("SQLite makes no key for a database that holds data", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.db")
		_, err := (&Config{}).MasterKey(path, false)
		want := "the master key file " + path + ".key is missing, and " + path + " already holds data sealed under a master key: " +
			"restore the file, or give the key it was set up with in AUTHPLANE_MASTER_KEY or AUTHPLANE_MASTER_KEY_FILE"
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v\nwant %s", err, want)
		}
		if _, err := os.Stat(path + ".key"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a key file was made: %v", err)
		}
	})
}

func TestPreviousMasterKeys(t *testing.T) {
	k := func(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
	file := filepath.Join(t.TempDir(), "previous.keys")
	if err := os.WriteFile(file, []byte(k(3)+"\n"+k(4)+",\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		c     Config
		first []byte // of each key, in order
		err   string
	}{
		{"none", Config{}, nil, ""},
		{"one", Config{PreviousMasterKeysB64: k(1)}, []byte{1}, ""},
		{"a comma list with spaces and an empty entry", Config{PreviousMasterKeysB64: k(1) + " , " + k(2) + ","}, []byte{1, 2}, ""},
		{"a file of keys by line and comma", Config{PreviousMasterKeysFile: file}, []byte{3, 4}, ""},
		{"a short key", Config{PreviousMasterKeysB64: k(1) + "," + base64.StdEncoding.EncodeToString(make([]byte, 16))}, nil,
			"AUTHPLANE_PREVIOUS_MASTER_KEYS: entry 2 of 2 is not the base64 encoding of 32 bytes"},
		{"not base64", Config{PreviousMasterKeysB64: "!!!"}, nil, "AUTHPLANE_PREVIOUS_MASTER_KEYS: entry 1 of 1 is not the base64 encoding of 32 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.PreviousMasterKeys()
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != len(tc.first) {
				t.Fatalf("%d keys, %v; want %d", len(got), err, len(tc.first))
			}
			for i, key := range got {
				if len(key) != 32 || key[0] != tc.first[i] {
					t.Errorf("key %d = %x", i, key)
				}
			}
		})
	}
}

func TestAKeyAndItsFileTogetherAreRefused(t *testing.T) {
	for _, pair := range [][2]string{
		{"AUTHPLANE_MASTER_KEY", "AUTHPLANE_MASTER_KEY_FILE"},
		{"AUTHPLANE_PREVIOUS_MASTER_KEYS", "AUTHPLANE_PREVIOUS_MASTER_KEYS_FILE"},
	} {
		_, err := Parse(nil, func(k string) string { return map[string]string{pair[0]: "x", pair[1]: "/f"}[k] })
		if err == nil || !strings.Contains(err.Error(), "set "+pair[0]+" or "+pair[1]) {
			t.Errorf("%s with %s: %v", pair[0], pair[1], err)
		}
	}
	c, err := Parse([]string{"--master-key-file=/run/secrets/k", "--previous-master-keys-file=/run/secrets/p"}, func(string) string { return "" })
	if err != nil || c.MasterKeyFile != "/run/secrets/k" || c.PreviousMasterKeysFile != "/run/secrets/p" {
		t.Fatalf("flags: %+v %v", c, err)
	}
}

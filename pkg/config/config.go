// Package config reads the process configuration: each setting from its flag, else its AUTHPLANE_ environment
// variable, else its default.
package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authplane/authplane/pkg/audit"
	"github.com/authplane/authplane/pkg/egress"
	"github.com/authplane/authplane/pkg/password"
	"github.com/authplane/authplane/pkg/svc"
)

// Config is what `authplane serve` runs with.
type Config struct {
	HTTPAddr         string
	GRPCAddr         string
	DatabaseURL      string
	IssuerURL        string
	RootClientID     string
	RootClientSecret string
	// MasterKeyB64 is AUTHPLANE_MASTER_KEY as given (base64 of 32 bytes), MasterKeyFile the file
	// AUTHPLANE_MASTER_KEY_FILE names instead; see MasterKey.
	MasterKeyB64, MasterKeyFile string
	// PreviousMasterKeysB64 is AUTHPLANE_PREVIOUS_MASTER_KEYS as given (a comma list), PreviousMasterKeysFile the
	// file AUTHPLANE_PREVIOUS_MASTER_KEYS_FILE names instead; see PreviousMasterKeys.
	PreviousMasterKeysB64, PreviousMasterKeysFile string
	// Services this process runs.
	Services []string
	// Addrs maps a service name to where other processes run it: one host:port, a comma-separated list of replicas,
	// or a dns:/// target resolving to every replica (see ParseServiceAddr; Parse has checked each).
	Addrs map[string]string
	// ShutdownDrain is how long a process told to stop keeps serving while reporting itself not ready (gRPC health
	// NOT_SERVING, /readyz 503), so that balancers move new requests to other replicas before it stops accepting.
	ShutdownDrain time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// PprofAddr, when set, serves net/http/pprof there (keep it on a private interface).
	PprofAddr string
	// AuditRetention is how long audit events are kept.
	AuditRetention time.Duration
	// AuditNATSURL, when set, streams every audit event to NATS JetStream.
	AuditNATSURL string
	// AuditNATSStream names the JetStream stream the audit relay creates when it is missing.
	AuditNATSStream string
	// JWKSMaxAge is how long clients may cache a workspace's key set; a new key is published that long before it
	// signs.
	JWKSMaxAge time.Duration
	// PasswordHashing bounds the password hashing pool (memory budget, concurrency, wait).
	PasswordHashing password.Config
	// EgressDenyNetworks are networks outbound connections (external verifiers) may not reach, besides the
	// built-in link-local, unspecified and cloud-metadata ones.
	EgressDenyNetworks []netip.Prefix
	// MetricsAddr, when set, serves /metrics on a listener of its own instead of the HTTP address.
	MetricsAddr string
	// MetricsTenantLabels keeps the tenant and workspace labels on the token counters; off, their series stay
	// bounded by grant types and error codes whatever the number of tenants.
	MetricsTenantLabels bool
	// TLSCertFile and TLSKeyFile, when set, make the HTTP listener serve HTTPS and the gRPC listener TLS with the
	// pair they hold, read again when the files change.
	TLSCertFile, TLSKeyFile string
	// TLSCAFile, when set, is the CA bundle that verifies the other services' certificates: connections to them
	// use TLS. Without it they stay plaintext.
	TLSCAFile string
	// TLSServerName, when set, is the name the other services' certificates are checked for, instead of the
	// host of each address dialed.
	TLSServerName string
	// HSTSMaxAge is the max-age of the Strict-Transport-Security header of HTTPS responses; 0 sends none.
	HSTSMaxAge time.Duration
}

// ServesTLS reports whether the listeners serve TLS.
func (c *Config) ServesTLS() bool { return c.TLSCertFile != "" }

// Parse reads flags from args and the environment through getenv.
func Parse(args []string, getenv func(string) string) (*Config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c := &Config{Addrs: map[string]string{}}
	var services string
	fs.StringVar(&c.HTTPAddr, "http-addr", env("AUTHPLANE_HTTP_ADDR", ":8080"), "REST facade and data plane address (AUTHPLANE_HTTP_ADDR)")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", env("AUTHPLANE_GRPC_ADDR", ":9090"), "gRPC services address (AUTHPLANE_GRPC_ADDR)")
	fs.StringVar(&c.DatabaseURL, "database-url", env("AUTHPLANE_DATABASE_URL", "sqlite:authplane.db"), "sqlite:PATH or postgres://… (AUTHPLANE_DATABASE_URL)")
	fs.StringVar(&c.IssuerURL, "issuer-url", env("AUTHPLANE_ISSUER_URL", "http://localhost:8080"), "public base URL; issuer = {issuer-url}/{tenant}/{workspace} (AUTHPLANE_ISSUER_URL)")
	fs.StringVar(&services, "services", env("AUTHPLANE_SERVICES", "all"), "comma list of "+strings.Join(svc.All, ",")+" to run here, or all (AUTHPLANE_SERVICES)")
	fs.StringVar(&c.LogLevel, "log-level", env("AUTHPLANE_LOG_LEVEL", "info"), "debug, info, warn or error (AUTHPLANE_LOG_LEVEL)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", env("AUTHPLANE_PPROF_ADDR", ""), "serve net/http/pprof on this address, e.g. 127.0.0.1:6060 (AUTHPLANE_PPROF_ADDR; off by default)")
	var hashMB, hashConcurrency int
	fs.IntVar(&hashMB, "password-hashing-memory-mb", envInt(getenv, "AUTHPLANE_PASSWORD_HASHING_MEMORY_MB", 256), "memory budget of password hashes running at once, MiB (AUTHPLANE_PASSWORD_HASHING_MEMORY_MB)")
	fs.IntVar(&hashConcurrency, "password-hashing-concurrency", envInt(getenv, "AUTHPLANE_PASSWORD_HASHING_CONCURRENCY", runtime.GOMAXPROCS(0)), "password hashes running at once (AUTHPLANE_PASSWORD_HASHING_CONCURRENCY)")
	fs.DurationVar(&c.PasswordHashing.MaxWait, "password-hashing-max-wait", envDuration(getenv, "AUTHPLANE_PASSWORD_HASHING_MAX_WAIT", 2*time.Second), "longest wait for the hashing pool before 503 (AUTHPLANE_PASSWORD_HASHING_MAX_WAIT)")
	fs.StringVar(&c.MasterKeyFile, "master-key-file", env("AUTHPLANE_MASTER_KEY_FILE", ""), "file holding the master key, instead of AUTHPLANE_MASTER_KEY (AUTHPLANE_MASTER_KEY_FILE)")
	fs.StringVar(&c.PreviousMasterKeysFile, "previous-master-keys-file", env("AUTHPLANE_PREVIOUS_MASTER_KEYS_FILE", ""), "file holding earlier master keys still accepted, instead of AUTHPLANE_PREVIOUS_MASTER_KEYS (AUTHPLANE_PREVIOUS_MASTER_KEYS_FILE)")
	var egressDeny string
	fs.StringVar(&egressDeny, "egress-deny-networks", env("AUTHPLANE_EGRESS_DENY_NETWORKS", ""), "comma list of CIDRs external verifiers may not be at, besides link-local, unspecified and cloud-metadata addresses (AUTHPLANE_EGRESS_DENY_NETWORKS)")
	fs.DurationVar(&c.AuditRetention, "audit-retention", envDuration(getenv, "AUTHPLANE_AUDIT_RETENTION", 2160*time.Hour), "how long audit events are kept (AUTHPLANE_AUDIT_RETENTION)")
	fs.StringVar(&c.AuditNATSURL, "audit-nats-url", env("AUTHPLANE_AUDIT_NATS_URL", ""), "stream every audit event to NATS JetStream at this URL, subject authplane.audit.<tenant> (AUTHPLANE_AUDIT_NATS_URL; off by default)")
	fs.StringVar(&c.AuditNATSStream, "audit-nats-stream", env("AUTHPLANE_AUDIT_NATS_STREAM", audit.DefaultStream), "the JetStream stream of the audit events, created when missing (AUTHPLANE_AUDIT_NATS_STREAM)")
	fs.DurationVar(&c.JWKSMaxAge, "jwks-max-age", envDuration(getenv, "AUTHPLANE_JWKS_MAX_AGE", 5*time.Minute), "how long clients may cache a key set; new keys are published that long before they sign (AUTHPLANE_JWKS_MAX_AGE)")
	fs.DurationVar(&c.ShutdownDrain, "shutdown-drain", envDuration(getenv, "AUTHPLANE_SHUTDOWN_DRAIN", 0), "on SIGTERM, report not ready and keep serving this long before stopping, for balancers to move away, e.g. 5s (AUTHPLANE_SHUTDOWN_DRAIN)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env("AUTHPLANE_METRICS_ADDR", ""), "serve /metrics on this address instead of the HTTP address, e.g. 127.0.0.1:9100 (AUTHPLANE_METRICS_ADDR)")
	tenantLabels, err := envBool(getenv, "AUTHPLANE_METRICS_TENANT_LABELS", true)
	if err != nil {
		return nil, err
	}
	fs.BoolVar(&c.MetricsTenantLabels, "metrics-tenant-labels", tenantLabels, "label the token counters by tenant and workspace; false bounds their series for large fleets (AUTHPLANE_METRICS_TENANT_LABELS)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", env("AUTHPLANE_TLS_CERT_FILE", ""), "PEM certificate (chain) the HTTP and gRPC listeners serve TLS with, read again when it changes; with --tls-key-file (AUTHPLANE_TLS_CERT_FILE)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", env("AUTHPLANE_TLS_KEY_FILE", ""), "PEM private key of --tls-cert-file (AUTHPLANE_TLS_KEY_FILE)")
	fs.StringVar(&c.TLSCAFile, "tls-ca-file", env("AUTHPLANE_TLS_CA_FILE", ""), "PEM CA bundle verifying the other services' certificates; set, calls to them use TLS (AUTHPLANE_TLS_CA_FILE)")
	fs.StringVar(&c.TLSServerName, "tls-server-name", env("AUTHPLANE_TLS_SERVER_NAME", ""), "name the other services' certificates must hold, instead of each address's host (AUTHPLANE_TLS_SERVER_NAME)")
	fs.DurationVar(&c.HSTSMaxAge, "hsts-max-age", envDuration(getenv, "AUTHPLANE_HSTS_MAX_AGE", 365*24*time.Hour), "max-age of Strict-Transport-Security on HTTPS responses; 0 sends none (AUTHPLANE_HSTS_MAX_AGE)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if c.AuditRetention < time.Hour {
		return nil, errors.New("--audit-retention (AUTHPLANE_AUDIT_RETENTION) must be at least 1h")
	}
	if c.AuditNATSURL != "" {
		if err := audit.ValidateNATSURL(c.AuditNATSURL); err != nil {
			return nil, fmt.Errorf("--audit-nats-url (AUTHPLANE_AUDIT_NATS_URL): %w", err)
		}
	}
	if err := audit.ValidateStreamName(c.AuditNATSStream); err != nil {
		return nil, fmt.Errorf("--audit-nats-stream (AUTHPLANE_AUDIT_NATS_STREAM): %w", err)
	}
	if c.JWKSMaxAge < time.Second || c.JWKSMaxAge > 24*time.Hour {
		return nil, errors.New("--jwks-max-age (AUTHPLANE_JWKS_MAX_AGE) must be between 1s and 24h")
	}
	if c.ShutdownDrain < 0 || c.ShutdownDrain > 5*time.Minute {
		return nil, errors.New("--shutdown-drain (AUTHPLANE_SHUTDOWN_DRAIN) must be a duration between 0s and 5m")
	}
	if hashMB < 16 || hashConcurrency < 1 || c.PasswordHashing.MaxWait <= 0 {
		return nil, errors.New("password hashing needs a memory budget of at least 16 MiB, a concurrency of at least 1 and a positive maximum wait")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return nil, errors.New("TLS needs both --tls-cert-file (AUTHPLANE_TLS_CERT_FILE) and --tls-key-file (AUTHPLANE_TLS_KEY_FILE)")
	}
	if c.TLSServerName != "" && c.TLSCAFile == "" {
		return nil, errors.New("--tls-server-name (AUTHPLANE_TLS_SERVER_NAME) names the certificates of TLS connections to the other services, which need --tls-ca-file (AUTHPLANE_TLS_CA_FILE)")
	}
	if c.HSTSMaxAge < 0 {
		return nil, errors.New("--hsts-max-age (AUTHPLANE_HSTS_MAX_AGE) must be a duration of 0 or more, e.g. 8760h")
	}
	c.PasswordHashing.MemoryBudget, c.PasswordHashing.MaxConcurrent = int64(hashMB)<<20, hashConcurrency
	c.IssuerURL = strings.TrimRight(c.IssuerURL, "/")
	c.RootClientID = getenv("AUTHPLANE_ROOT_CLIENT_ID")
	c.RootClientSecret = getenv("AUTHPLANE_ROOT_CLIENT_SECRET")
	c.MasterKeyB64 = getenv("AUTHPLANE_MASTER_KEY")
	c.PreviousMasterKeysB64 = getenv("AUTHPLANE_PREVIOUS_MASTER_KEYS")
	if c.MasterKeyB64 != "" && c.MasterKeyFile != "" {
		return nil, errors.New("set AUTHPLANE_MASTER_KEY or AUTHPLANE_MASTER_KEY_FILE (--master-key-file), not both")
	}
	if c.PreviousMasterKeysB64 != "" && c.PreviousMasterKeysFile != "" {
		return nil, errors.New("set AUTHPLANE_PREVIOUS_MASTER_KEYS or AUTHPLANE_PREVIOUS_MASTER_KEYS_FILE (--previous-master-keys-file), not both")
	}
	if c.EgressDenyNetworks, err = egress.ParseNetworks(egressDeny); err != nil {
		return nil, fmt.Errorf("--egress-deny-networks (AUTHPLANE_EGRESS_DENY_NETWORKS): %w", err)
	}
	if c.Services, err = parseServices(services); err != nil {
		return nil, err
	}
	for _, name := range svc.All {
		if name == svc.Gateway {
			continue
		}
		variable := "AUTHPLANE_" + strings.ToUpper(name) + "_ADDR"
		if a := strings.TrimSpace(getenv(variable)); a != "" {
			if _, err := ParseServiceAddr(a); err != nil {
				return nil, fmt.Errorf("%s: %w", variable, err)
			}
			c.Addrs[name] = a
		}
	}
	return c, nil
}

// envInt and envDuration read a default from the environment; a malformed value is kept as the flag's input
// so that flag parsing reports it.
func envInt(getenv func(string) string, name string, def int) int {
	if v := getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		return -1
	}
	return def
}

func envDuration(getenv func(string) string, name string, def time.Duration) time.Duration {
	if v := getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		return -1
	}
	return def
}

// envBool reads a boolean default from the environment; unlike a number, a malformed one cannot be handed to the
// flag for reporting, so it is an error here.
func envBool(getenv func(string) string, name string, def bool) (bool, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s must be true or false, not %q", name, v)
	}
	return b, nil
}

func parseServices(list string) ([]string, error) {
	if strings.TrimSpace(list) == "all" || strings.TrimSpace(list) == "" {
		return slices.Clone(svc.All), nil
	}
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(svc.All, s) {
			return nil, fmt.Errorf("unknown service %q (known: %s)", s, strings.Join(svc.All, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Runs reports whether this process runs service name.
func (c *Config) Runs(name string) bool { return slices.Contains(c.Services, name) }

// IsPostgres reports a PostgreSQL database URL.
func (c *Config) IsPostgres() bool {
	return strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://")
}

// MasterKey returns the 32-byte master key: AUTHPLANE_MASTER_KEY, the file AUTHPLANE_MASTER_KEY_FILE names, or
// with SQLite a key kept beside the database file. That file is created (mode 0600) only for a new database: for
// one that holds data already, a missing key file is an error, since a new key would open nothing it holds.
// PostgreSQL deployments must configure the key: their processes share it.
func (c *Config) MasterKey(sqlitePath string, newDatabase bool) ([]byte, error) {
	const how = "(base64 of 32 bytes, e.g. `head -c 32 /dev/urandom | base64 > master.key`)"
	switch {
	case c.MasterKeyB64 != "":
		k, ok := decodeKey(c.MasterKeyB64)
		if !ok {
			return nil, errors.New("AUTHPLANE_MASTER_KEY must be the base64 encoding of 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)")
		}
		return k, nil
	case c.MasterKeyFile != "":
		b, err := os.ReadFile(c.MasterKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read the master key file (AUTHPLANE_MASTER_KEY_FILE): %w", err)
		}
		k, ok := decodeKey(string(b))
		if !ok {
			return nil, fmt.Errorf("the master key file %s (AUTHPLANE_MASTER_KEY_FILE) must hold a master key %s", c.MasterKeyFile, how)
		}
		return k, nil
	case sqlitePath == "":
		return nil, errors.New("AUTHPLANE_MASTER_KEY or AUTHPLANE_MASTER_KEY_FILE is required with PostgreSQL and by processes without a database " + how + "; refusing to start")
	}
	path := sqlitePath + ".key"
	if b, err := os.ReadFile(path); err == nil {
		k, ok := decodeKey(string(b))
		if !ok {
			return nil, fmt.Errorf("master key file %s is not base64 of 32 bytes", path)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if !newDatabase {
		return nil, fmt.Errorf("the master key file %s is missing, and %s already holds data sealed under a master key: "+
			"restore the file, or give the key it was set up with in AUTHPLANE_MASTER_KEY or AUTHPLANE_MASTER_KEY_FILE", path, sqlitePath)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // another process made it first
			return c.MasterKey(sqlitePath, newDatabase)
		}
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		return nil, err
	}
	return k, nil
}

// PreviousMasterKeys returns the earlier master keys still accepted while stored keys are re-wrapped under the
// current one: AUTHPLANE_PREVIOUS_MASTER_KEYS, or the file AUTHPLANE_PREVIOUS_MASTER_KEYS_FILE names, each a
// list of keys separated by commas or line ends.
func (c *Config) PreviousMasterKeys() ([][]byte, error) {
	list, from := c.PreviousMasterKeysB64, "AUTHPLANE_PREVIOUS_MASTER_KEYS"
	if c.PreviousMasterKeysFile != "" {
		b, err := os.ReadFile(c.PreviousMasterKeysFile)
		if err != nil {
			return nil, fmt.Errorf("read the previous master keys file (AUTHPLANE_PREVIOUS_MASTER_KEYS_FILE): %w", err)
		}
		list, from = string(b), "AUTHPLANE_PREVIOUS_MASTER_KEYS_FILE ("+c.PreviousMasterKeysFile+")"
	}
	var keys [][]byte
	entries := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
	for i, e := range entries {
		if strings.TrimSpace(e) == "" {
			continue
		}
		k, ok := decodeKey(e)
		if !ok {
			return nil, fmt.Errorf("%s: entry %d of %d is not the base64 encoding of 32 bytes", from, i+1, len(entries))
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func decodeKey(s string) ([]byte, bool) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	return k, err == nil && len(k) == 32
}

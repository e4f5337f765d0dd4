// Package testenv starts real authplane processes for tests: the HTTP and gRPC servers on loopback ports, on a
// fresh SQLite file or a fresh PostgreSQL database, with helpers that get tokens the way clients do.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/authplane/authplane/pkg/app"
	"github.com/authplane/authplane/pkg/config"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/keystore"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/testdb"
	"github.com/authplane/authplane/pkg/tlsfiles"
)

// Backend is a database kind a test runs against.
type Backend string

const (
	SQLite   Backend = "sqlite"
	Postgres Backend = "postgres"
)

// ForEachBackend runs fn as a subtest on SQLite and on PostgreSQL. PostgreSQL is skipped when it cannot be
// reached, unless AUTHPLANE_TEST_POSTGRES_REQUIRED is set (as CI does), where that fails the test.
func ForEachBackend(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range []Backend{SQLite, Postgres} {
		t.Run(string(b), func(t *testing.T) { fn(t, b) })
	}
}

// PostgresAdminURL is the server tests create their databases on (AUTHPLANE_TEST_POSTGRES_URL).
func PostgresAdminURL() string { return testdb.PostgresAdminURL() }

// DatabaseURL returns the URL of a fresh, empty database of the backend, dropped when the test ends (see
// testdb.Postgres for when PostgreSQL is skipped).
func DatabaseURL(t testing.TB, b Backend) string {
	t.Helper()
	if b == SQLite {
		return testdb.SQLite(t)
	}
	return testdb.Postgres(t)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Env is one running process (or the entry point of several).
type Env struct {
	HTTPURL      string
	GRPCAddr     string
	GRPC         *grpc.ClientConn
	DatabaseURL  string
	MasterKey    string
	RootClientID string
	RootSecret   string
	HTTP         *http.Client
	Stop         func()

	// MetricsURL is the base URL of the metrics listener when AUTHPLANE_METRICS_ADDR is set (WithEnv), else "".
	MetricsURL string
}

type options struct {
	backend     Backend
	databaseURL string
	masterKey   string
	services    []string
	addrs       map[string]string
	logOut      io.Writer
	httpLn      net.Listener
	grpcLn      net.Listener
	issuer      string
	rootSecret  string
	extraEnv    map[string]string
	resolver    *net.Resolver
	keyBeside   bool
	spans       sdktrace.SpanProcessor
	tls         TLS
}

// Option configures Start.
type Option func(*options)

// WithBackend picks the database kind (default SQLite).
func WithBackend(b Backend) Option { return func(o *options) { o.backend = b } }

// WithDatabase shares a database URL (and master key) with another process of the same test.
func WithDatabase(url, masterKey string) Option {
	return func(o *options) { o.databaseURL, o.masterKey = url, masterKey }
}

// WithKeyBesideDatabase leaves AUTHPLANE_MASTER_KEY unset, so that a SQLite process keeps its master key in a
// file beside the database (PATH.key), as a deployment without the variable does; Env.MasterKey is then "".
func WithKeyBesideDatabase() Option { return func(o *options) { o.keyBeside = true } }

// WithServices runs only the named services; addrs says where the others run (service name → gRPC address).
func WithServices(services []string, addrs map[string]string) Option {
	return func(o *options) { o.services, o.addrs = services, addrs }
}

// WithListeners serves on listeners the test made (to know every process's address before any starts).
func WithListeners(httpLn, grpcLn net.Listener) Option {
	return func(o *options) { o.httpLn, o.grpcLn = httpLn, grpcLn }
}

// WithIssuer sets the public base URL (default: this process's HTTP address).
func WithIssuer(url string) Option { return func(o *options) { o.issuer = url } }

// WithRootSecret sets the operator client's secret (processes of one deployment share it).
func WithRootSecret(secret string) Option { return func(o *options) { o.rootSecret = secret } }

// WithEnv adds configuration variables (AUTHPLANE_…) for the process.
func WithEnv(vars map[string]string) Option { return func(o *options) { o.extraEnv = vars } }

// WithResolver resolves external verifiers' names with r (e.g. a testdns.Server's), when they are checked and
// when connections are made.
func WithResolver(r *net.Resolver) Option { return func(o *options) { o.resolver = r } }

// WithSpanProcessor traces the process into p (e.g. a tracetest.SpanRecorder shared by a test's processes).
func WithSpanProcessor(p sdktrace.SpanProcessor) Option { return func(o *options) { o.spans = p } }

// TLS is the TLS a process serves and trusts: AUTHPLANE_TLS_CERT_FILE, AUTHPLANE_TLS_KEY_FILE, AUTHPLANE_TLS_CA_FILE
// and AUTHPLANE_TLS_SERVER_NAME. Empty fields are left unset.
type TLS struct {
	CertFile, KeyFile, CAFile, ServerName string
}

// WithTLS configures the process's TLS. When it serves TLS, Env.HTTPURL is https and the default issuer with it;
// Env.HTTP and Env.GRPC trust the CA file, and expect the process's certificate to hold its loopback address.
func WithTLS(c TLS) Option { return func(o *options) { o.tls = c } }

// WithLog sends the server's JSON log to w (default: discarded unless AUTHPLANE_TEST_LOG is set).
func WithLog(w io.Writer) Option { return func(o *options) { o.logOut = w } }

// Start runs a process with every service (or those of WithServices) on loopback ports until the test ends.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	o := options{backend: SQLite, logOut: io.Discard}
	if os.Getenv("AUTHPLANE_TEST_LOG") != "" {
		o.logOut = os.Stderr
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.databaseURL == "" {
		o.databaseURL = DatabaseURL(t, o.backend)
	}
	if o.masterKey == "" && !o.keyBeside {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		o.masterKey = base64.StdEncoding.EncodeToString(k)
	}
	httpLn, grpcLn := o.httpLn, o.grpcLn
	if httpLn == nil {
		httpLn, grpcLn = Listen(t), Listen(t)
	}
	scheme, clientTLS, grpcCreds := "http", (*tls.Config)(nil), insecure.NewCredentials()
	if o.tls.CAFile != "" {
		pool, err := tlsfiles.Pool(o.tls.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		clientTLS = tlsfiles.ClientConfig(pool, "") // the test reaches the process at its loopback address
	}
	if o.tls.CertFile != "" {
		scheme = "https"
		grpcCreds = credentials.NewTLS(clientTLS)
	}
	env := &Env{
		HTTPURL: scheme + "://" + httpLn.Addr().String(), GRPCAddr: grpcLn.Addr().String(),
		DatabaseURL: o.databaseURL, MasterKey: o.masterKey,
		RootClientID: "root-operator", RootSecret: o.rootSecret,
		HTTP: &http.Client{Timeout: 30 * time.Second},
	}
	if clientTLS != nil {
		env.HTTP.Transport = &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}
	}
	if o.issuer == "" {
		o.issuer = env.HTTPURL
	}
	if env.RootSecret == "" {
		env.RootSecret = "root-secret-" + randomHex(16)
	}
	vars := map[string]string{
		"AUTHPLANE_DATABASE_URL":       o.databaseURL,
		"AUTHPLANE_ISSUER_URL":         o.issuer,
		"AUTHPLANE_ROOT_CLIENT_ID":     env.RootClientID,
		"AUTHPLANE_ROOT_CLIENT_SECRET": env.RootSecret,
	}
	if o.masterKey != "" {
		vars["AUTHPLANE_MASTER_KEY"] = o.masterKey
	}
	if len(o.services) > 0 {
		vars["AUTHPLANE_SERVICES"] = strings.Join(o.services, ",")
	}
	for k, v := range map[string]string{"AUTHPLANE_TLS_CERT_FILE": o.tls.CertFile, "AUTHPLANE_TLS_KEY_FILE": o.tls.KeyFile,
		"AUTHPLANE_TLS_CA_FILE": o.tls.CAFile, "AUTHPLANE_TLS_SERVER_NAME": o.tls.ServerName} {
		if v != "" {
			vars[k] = v
		}
	}
	for k, v := range o.extraEnv {
		vars[k] = v
	}
	for name, addr := range o.addrs {
		vars["AUTHPLANE_"+strings.ToUpper(name)+"_ADDR"] = addr
	}
	cfg, err := config.Parse(nil, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.NewJSONHandler(o.logOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
		app.WithEgressResolver(o.resolver), app.WithSpanProcessor(o.spans))
	if err != nil {
		cancel()
		t.Fatalf("start authplane: %v", err)
	}
	if addr := a.MetricsAddr(); addr != "" {
		env.MetricsURL = "http://" + addr
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, httpLn, grpcLn) }()
	env.GRPC, err = grpc.NewClient(env.GRPCAddr, grpc.WithTransportCredentials(grpcCreds))
	if err != nil {
		t.Fatal(err)
	}
	var stopped bool
	env.Stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = env.GRPC.Close()
		env.HTTP.CloseIdleConnections() // an HTTP/2 connection left open holds the shutdown for a second
		cancel()
		<-done
	}
	t.Cleanup(env.Stop)
	return env
}

// Listen opens a loopback listener on a free port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// WithToken returns ctx carrying a bearer token for gRPC calls.
func WithToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// Issuer returns the issuer URL of a workspace.
func (e *Env) Issuer(tenant, server string) string { return e.HTTPURL + "/" + tenant + "/" + server }

// Token gets a client_credentials access token with golang.org/x/oauth2 (client_secret_basic).
func (e *Env) Token(t testing.TB, tenant, server, clientID, secret string, scopes ...string) string {
	t.Helper()
	cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, Scopes: scopes,
		TokenURL: e.Issuer(tenant, server) + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.HTTP)
	tok, err := cfg.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials token for %s at %s/%s: %v", clientID, tenant, server, err)
	}
	return tok.AccessToken
}

// RootToken is the operator's token.
func (e *Env) RootToken(t testing.TB) string {
	return e.Token(t, "root", "admin", e.RootClientID, e.RootSecret)
}

// Internal returns ctx carrying the platform's internal credential, minted from the process's master key as its
// own services do: for tests of the internal plane.
func (e *Env) Internal(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	master, err := base64.StdEncoding.DecodeString(e.MasterKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := secrets.NewKeyring(master)
	if err != nil {
		t.Fatal(err)
	}
	return internalcall.New(k, "test").Outgoing(ctx)
}

// Keyring returns the keyring of the data keys stored in the process's database, opened with its master key as
// the process did: what its client secrets are hashed and its external verifiers' secrets derived with.
func (e *Env) Keyring(t testing.TB) *secrets.Keyring {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(e.MasterKey)
	if err != nil {
		t.Fatal(err)
	}
	m, err := secrets.NewMasterKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(context.Background(), e.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	k, err := keystore.Open(context.Background(), d, keystore.MasterKeys{Current: m}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Package app assembles a process from its configuration: the services it runs (registered on its gRPC server
// and on an in-process connection), connections to the services other processes run, the gateway, health,
// metrics, and graceful shutdown.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/audit"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/config"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/egress"
	"github.com/authplane/authplane/pkg/inproc"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/keystore"
	"github.com/authplane/authplane/pkg/metrics"
	"github.com/authplane/authplane/pkg/requestid"
	"github.com/authplane/authplane/pkg/scopes"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/telemetry"
	"github.com/authplane/authplane/pkg/tlsfiles"
	"github.com/authplane/authplane/services/client"
	"github.com/authplane/authplane/services/gateway"
	"github.com/authplane/authplane/services/pool"
	"github.com/authplane/authplane/services/schema"
	"github.com/authplane/authplane/services/tenant"
	"github.com/authplane/authplane/services/token"
	"github.com/authplane/authplane/services/workspace"
)

// App is one configured process.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	db       *db.DB
	metrics  *metrics.Metrics
	tracing  *telemetry.Tracing
	grpc     *grpc.Server
	health   *health.Server
	http     *http.Server
	remotes  []*grpc.ClientConn
	cancel   context.CancelFunc
	services []string

	// tlsCert is the certificate both listeners serve when AUTHPLANE_TLS_CERT_FILE is set (nil otherwise).
	tlsCert *tlsfiles.Certificate
	// relayDone is closed when the audit relay has stopped (nil when the process runs none).
	relayDone chan struct{}
	// draining is set once the process is told to stop: /readyz answers 503 while in-flight requests finish.
	draining atomic.Bool

	// metricsHTTP serves /metrics on metricsLn when AUTHPLANE_METRICS_ADDR is set (nil otherwise).
	metricsHTTP *http.Server
	metricsLn   net.Listener
}

// constructors build each gRPC service by name.
var constructors = map[string]func(context.Context, svc.Deps) (svc.Service, error){
	svc.Tenant:    func(ctx context.Context, d svc.Deps) (svc.Service, error) { return tenant.New(ctx, d) },
	svc.Workspace: func(ctx context.Context, d svc.Deps) (svc.Service, error) { return workspace.New(ctx, d) },
	svc.Pool:      func(ctx context.Context, d svc.Deps) (svc.Service, error) { return pool.New(ctx, d) },
	svc.Schema:    func(ctx context.Context, d svc.Deps) (svc.Service, error) { return schema.New(ctx, d) },
	svc.Client:    func(ctx context.Context, d svc.Deps) (svc.Service, error) { return client.New(ctx, d) },
	svc.Token:     func(ctx context.Context, d svc.Deps) (svc.Service, error) { return token.New(ctx, d) },
}

// Option adjusts how New builds the process, beyond its configuration.
type Option func(*options)

type options struct {
	resolver *net.Resolver
	spans    sdktrace.SpanProcessor
}

// WithEgressResolver resolves the names of tenant-configured destinations (external verifiers) with r instead of
// the system's resolver, both when they are checked and when connections are made (tests point names with it).
func WithEgressResolver(r *net.Resolver) Option { return func(o *options) { o.resolver = r } }

// WithSpanProcessor traces the process into p instead of the exporter the environment configures, and traces it
// even when none is (tests record the spans of several processes so).
func WithSpanProcessor(p sdktrace.SpanProcessor) Option { return func(o *options) { o.spans = p } }

// New builds the process: opens the database and migrates the tables of the services it runs.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (*App, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var metricsOpts []metrics.Option
	if !cfg.MetricsTenantLabels {
		metricsOpts = append(metricsOpts, metrics.WithoutTenantLabels())
	}
	// Every line logged with a request's context carries its id (and its trace, when traced).
	log = slog.New(requestid.LogHandler(log.Handler()))
	a := &App{cfg: cfg, log: log, metrics: metrics.New(metricsOpts...), services: cfg.Services}
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	ok := false
	defer func() {
		if !ok {
			a.close()
		}
	}()

	// The certificate and the CA bundle are read first: a deployment that asked for TLS and cannot have it
	// must not start, and says so before anything else is opened.
	if cfg.ServesTLS() {
		var err error
		if a.tlsCert, err = tlsfiles.Load(cfg.TLSCertFile, cfg.TLSKeyFile, log); err != nil {
			return nil, fmt.Errorf("--tls-cert-file and --tls-key-file (AUTHPLANE_TLS_CERT_FILE, AUTHPLANE_TLS_KEY_FILE): %w", err)
		}
		log.Info("TLS certificate loaded", tlsfiles.Attrs(a.tlsCert.Leaf())...)
	}
	transport := insecure.NewCredentials()
	if cfg.TLSCAFile != "" {
		pool, err := tlsfiles.Pool(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca-file (AUTHPLANE_TLS_CA_FILE): %w", err)
		}
		transport = credentials.NewTLS(tlsfiles.ClientConfig(pool, cfg.TLSServerName))
	}

	var grpcServices []string
	for _, name := range cfg.Services {
		if name != svc.Gateway {
			grpcServices = append(grpcServices, name)
		}
	}
	deps := svc.Deps{Log: log, Metrics: a.metrics, IssuerURL: cfg.IssuerURL,
		RootClientID: cfg.RootClientID, RootClientSecret: cfg.RootClientSecret, PasswordHashing: cfg.PasswordHashing,
		JWKSMaxAge: cfg.JWKSMaxAge,
		Egress:     egress.New(cfg.EgressDenyNetworks, o.resolver)}

	tracing, err := telemetry.Setup(ctx, cfg.Services, os.Getenv, o.spans)
	if err != nil {
		return nil, err
	}
	a.tracing = tracing
	if len(grpcServices) > 0 {
		d, err := db.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, err
		}
		a.db, deps.DB = d, d
		if tracing.Enabled() {
			if err := d.Trace(tracing.TracerProvider()); err != nil {
				return nil, fmt.Errorf("trace the database: %w", err)
			}
		}
		if d.Dialect == db.Postgres {
			deps.Bus = changes.NewPostgres(bgCtx, cfg.DatabaseURL, log)
		}
	}
	if deps.Bus == nil {
		deps.Bus = changes.NewMemory()
	}
	// Every process holds the master key: it mints the internal credential of its calls to the other services
	// under a key derived from it, and checks theirs. A process with a database proves at start that the master
	// key opens the data keys stored there, and refuses to start otherwise; their keyring hashes client secrets
	// and refresh tokens, seals signing keys, and derives external verifiers' signing secrets.
	masters, err := MasterKeys(ctx, cfg, a.db, true)
	if err != nil {
		return nil, err
	}
	if a.db != nil {
		if deps.Keyring, err = keystore.Open(ctx, a.db, masters, token.OpensNewestSigningKey); err != nil {
			return nil, err
		}
	}
	previous := make([]*secrets.Keyring, len(masters.Previous))
	for i, m := range masters.Previous {
		previous[i] = m.DerivedKeyring()
	}
	deps.Internal = internalcall.New(masters.Current.DerivedKeyring(), strings.Join(cfg.Services, ","), previous...)
	// The platform's calls on behalf of a request carry its actor and source, for the callee's audit events.
	deps.Internal.OnOutgoing(audit.Forward)
	if a.db != nil { // after the keystore, which tells a new database from one holding data by its tables
		if deps.Audit, err = audit.Open(ctx, a.db, cfg.AuditNATSURL != ""); err != nil {
			return nil, err
		}
		deps.AuditRetention = cfg.AuditRetention
	}
	// Every process with a database and the setting runs a relay of the audit outbox: it is woken by the events
	// its own services write, and leases keep the relays of several processes from publishing a row twice.
	var relay *audit.Relay
	if deps.Audit != nil && cfg.AuditNATSURL != "" {
		relay, err = deps.Audit.NewRelay(audit.RelayConfig{URL: cfg.AuditNATSURL, Stream: cfg.AuditNATSStream,
			MaxAge: cfg.AuditRetention, Name: "authplane " + strings.Join(cfg.Services, ","), Logger: log, Metrics: a.metrics})
		if err != nil {
			return nil, err
		}
		a.metrics.AuditStream()
	}

	// Calls to a service run here stay in the process; the others go over gRPC. The same interceptors apply
	// either way, so authorization cannot differ between them.
	var verifier *authz.Verifier
	authorize := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return verifier.UnaryInterceptor()(ctx, req, info, h)
	}
	// The request id and the trace travel with every call, remote or in-process, in its metadata; the stats
	// handlers (nil when tracing is off) make the calls' spans.
	interceptors := []grpc.UnaryServerInterceptor{requestid.UnaryServerInterceptor, recoverPanics(log), observeRPCs(log, a.metrics),
		classifyErrors, rejectMalformedText, authorize}
	if deps.Audit != nil {
		// After authorization, which established the caller the events name.
		interceptors = append(interceptors, deps.Audit.Interceptor(log))
	}
	clientStats, serverStats := tracing.ClientHandler(), tracing.ServerHandler()
	local := inproc.New(chain(interceptors...), inproc.WithClientInterceptor(requestid.UnaryClientInterceptor),
		inproc.WithStatsHandlers(clientStats, serverStats))
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(transport),
		grpc.WithChainUnaryInterceptor(requestid.UnaryClientInterceptor)}
	if clientStats != nil {
		dialOpts = append(dialOpts, grpc.WithStatsHandler(clientStats))
	}
	conns := map[string]grpc.ClientConnInterface{}
	for _, name := range svc.All {
		if name == svc.Gateway {
			continue
		}
		switch {
		case cfg.Runs(name):
			conns[name] = local
		case cfg.Addrs[name] != "":
			cc, err := dialService(name, cfg.Addrs[name], append(dialOpts,
				grpc.WithChainUnaryInterceptor(reportUnavailable(log, name, cfg.Addrs[name]))))
			if err != nil {
				return nil, fmt.Errorf("connect to the %s service at %s: %w", name, cfg.Addrs[name], err)
			}
			a.remotes = append(a.remotes, cc)
			conns[name] = cc
		default:
			conns[name] = missingConn(name)
		}
	}
	deps.Conns = svc.Conns{Tenant: conns[svc.Tenant], Workspace: conns[svc.Workspace], Pool: conns[svc.Pool],
		Schema: conns[svc.Schema], Client: conns[svc.Client], Token: conns[svc.Token]}
	tokens := tokenv1.NewTokenServiceClient(deps.Conns.Token)
	verifier = authz.NewVerifier(cfg.IssuerURL, jwksSource(tokens), deps.Bus,
		authz.WithRevocations(revocationSource(tokens, deps.Internal)),
		authz.WithClients(clientSource(clientv1.NewClientServiceClient(deps.Conns.Client), deps.Internal)),
		authz.WithInternal(deps.Internal))
	deps.Verifier = verifier

	serverOpts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(interceptors...), grpc.MaxRecvMsgSize(4 << 20),
		grpc.KeepaliveEnforcementPolicy(serverKeepalive), grpc.KeepaliveParams(serverConnectionAge)}
	if serverStats != nil {
		serverOpts = append(serverOpts, grpc.StatsHandler(serverStats))
	}
	if a.tlsCert != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(a.tlsCert.ServerConfig())))
	}
	a.grpc = grpc.NewServer(serverOpts...)
	a.health = health.NewServer()
	healthpb.RegisterHealthServer(a.grpc, a.health)
	reflection.Register(a.grpc)
	for _, name := range grpcServices {
		construct, ok := constructors[name]
		if !ok {
			continue
		}
		s, err := construct(ctx, deps)
		if err != nil {
			return nil, fmt.Errorf("start the %s service: %w", name, err)
		}
		s.Register(a.grpc)
		s.Register(local)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeStatus(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", a.ready)
	if cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", a.metrics.Handler())
	} else {
		// A listener of its own keeps the scrape endpoint off the public address (and reachable when the
		// public listener is saturated).
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("listen for metrics on %s: %w", cfg.MetricsAddr, err)
		}
		a.metricsLn = ln
		metricsMux := http.NewServeMux()
		metricsMux.Handle("GET /metrics", a.metrics.Handler())
		a.metricsHTTP = &http.Server{Handler: metricsMux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	}
	if cfg.Runs(svc.Gateway) {
		g, err := gateway.New(ctx, deps)
		if err != nil {
			return nil, err
		}
		mux.Handle("/", g.Handler(log, a.metrics, tracing))
	}
	var handler http.Handler = mux
	if a.tlsCert != nil && cfg.HSTSMaxAge > 0 {
		handler = strictTransportSecurity(mux, cfg.HSTSMaxAge)
	}
	a.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if a.tlsCert != nil {
		a.http.TLSConfig = a.tlsCert.ServerConfig() // ServeTLS offers HTTP/2 and HTTP/1.1 on it
	}
	if relay != nil {
		a.relayDone = make(chan struct{})
		go func() { defer close(a.relayDone); relay.Run(bgCtx) }()
	}
	ok = true
	return a, nil
}

// jwksSource reads a workspace's public keys from the token service.
func jwksSource(tokens tokenv1.TokenServiceClient) authz.KeySource {
	return func(ctx context.Context, tenantID, serverID string) (*jose.JSONWebKeySet, error) {
		resp, err := tokens.GetJWKS(ctx, &tokenv1.GetJWKSRequest{TenantId: tenantID, ServerId: serverID})
		if err != nil {
			return nil, err
		}
		raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
		if err != nil {
			return nil, err
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(raw, &set); err != nil {
			return nil, err
		}
		return &set, nil
	}
}

// revocationSource reads a tenant's denylist from the token service.
func revocationSource(tokens tokenv1.TokenServiceClient, internal *internalcall.Authority) authz.RevocationSource {
	return func(ctx context.Context, tenantID string) (*authz.Denylist, error) {
		resp, err := tokens.ListRevokedTokens(internal.Outgoing(ctx), &tokenv1.ListRevokedTokensRequest{TenantId: tenantID})
		if err != nil {
			return nil, err
		}
		d := &authz.Denylist{
			Tokens:   make([]authz.RevokedToken, len(resp.Revoked)),
			Sessions: make([]authz.RevokedToken, len(resp.EndedSessions)),
		}
		for i, r := range resp.Revoked {
			d.Tokens[i] = authz.RevokedToken{JTI: r.Jti, Expiry: r.ExpiresAt.AsTime()}
		}
		for i, r := range resp.EndedSessions {
			d.Sessions[i] = authz.RevokedToken{JTI: r.SessionId, Expiry: r.ExpiresAt.AsTime()}
		}
		return d, nil
	}
}

// clientSource reads what a client may hold now from the client service.
func clientSource(clients clientv1.ClientServiceClient, internal *internalcall.Authority) authz.ClientSource {
	return func(ctx context.Context, tenantID, clientID string) (*authz.ClientAccess, error) {
		ac, err := clients.GetClientAccess(internal.Outgoing(ctx), &clientv1.GetClientAccessRequest{TenantId: tenantID, ClientId: clientID})
		if status.Code(err) == codes.NotFound {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &authz.ClientAccess{
			Registered: ac.GetClient().GetCreatedAt().AsTime().UnixMicro(),
			Scopes:     scopes.NewRule(ac.GetClient().GetScopes(), ac.GetTokenPolicy().GetAllowedScopes()),
		}, nil
	}
}

func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		writeStatus(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	if a.db != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := a.db.Ping(ctx); err != nil {
			writeStatus(w, http.StatusServiceUnavailable, "database unreachable")
			return
		}
	}
	writeStatus(w, http.StatusOK, "ready")
}

// strictTransportSecurity asks browsers to reach this host, and its subdomains, over HTTPS only for maxAge: on
// every response of the HTTPS listener. Behind a proxy that terminates TLS the process serves plain HTTP and sends
// no such header; the proxy, which owns the HTTPS connection, sets it.
func strictTransportSecurity(next http.Handler, maxAge time.Duration) http.Handler {
	value := fmt.Sprintf("max-age=%d; includeSubDomains", int64(maxAge/time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", value)
		next.ServeHTTP(w, r)
	})
}

func writeStatus(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": msg})
}

// MetricsAddr is the address of the metrics listener, or "" when /metrics is on the HTTP listener.
func (a *App) MetricsAddr() string {
	if a.metricsLn == nil {
		return ""
	}
	return a.metricsLn.Addr().String()
}

// Serve serves HTTP and gRPC on the given listeners (and metrics on their own, when configured) until ctx ends, then
// shuts down gracefully: it reports itself not ready (gRPC health NOT_SERVING, /readyz 503) and keeps serving for
// AUTHPLANE_SHUTDOWN_DRAIN, so that balancers move to other replicas, then stops accepting, lets in-flight
// requests finish (up to 20 s), and closes the database.
func (a *App) Serve(ctx context.Context, httpLn, grpcLn net.Listener) error {
	for _, name := range a.services {
		a.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	errc := make(chan error, 3)
	go func() {
		serve := a.http.Serve
		if a.tlsCert != nil {
			serve = func(ln net.Listener) error { return a.http.ServeTLS(ln, "", "") } // the certificate is in TLSConfig
		}
		if err := serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	if a.metricsHTTP != nil {
		go func() {
			if err := a.metricsHTTP.Serve(a.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
	}
	go func() {
		if err := a.grpc.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("grpc: %w", err)
		}
	}()
	a.log.Info("serving", "http", httpLn.Addr().String(), "grpc", grpcLn.Addr().String(), "metrics", a.MetricsAddr(),
		"services", strings.Join(a.services, ","), "issuer_url", a.cfg.IssuerURL,
		"tls", a.tlsCert != nil, "tls_to_services", a.cfg.TLSCAFile != "")
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	a.shutdown()
	return err
}

func (a *App) shutdown() {
	// Not ready first: the other processes' health checks take this replica out of their rotation (gRPC clients
	// move at once; HTTP load balancers at their next /readyz probe, which the drain waits for).
	a.draining.Store(true)
	a.health.Shutdown()
	if d := a.cfg.ShutdownDrain; d > 0 {
		a.log.Info("shutting down: reporting not ready, still serving", "drain", d.String())
		time.Sleep(d)
	}
	a.log.Info("shutting down: finishing in-flight requests")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { a.grpc.GracefulStop(); close(done) }()
	_ = a.http.Shutdown(ctx)
	if a.metricsHTTP != nil {
		_ = a.metricsHTTP.Shutdown(ctx)
	}
	select {
	case <-done:
	case <-ctx.Done():
		a.grpc.Stop()
	}
	a.close()
	a.log.Info("stopped")
}

func (a *App) close() {
	a.cancel()
	if a.relayDone != nil {
		<-a.relayDone // it settles the batch in flight with the database, closed below
	}
	if a.metricsLn != nil {
		_ = a.metricsLn.Close() // already closed after Shutdown; not yet when New fails
	}
	for _, cc := range a.remotes {
		_ = cc.Close()
	}
	if a.db != nil {
		_ = a.db.Close()
	}
	// The spans of the last requests are still buffered: send them, but do not hang on an unreachable collector.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.tracing.Shutdown(ctx); err != nil {
		a.log.Warn("traces not all sent", "error", err)
	}
}

// missingConn stands for a service that neither runs here nor has an address: calls fail with a clear message.
type missingConn string

func (m missingConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return status.Errorf(codes.Unavailable, "the %s service is not run by this process and AUTHPLANE_%s_ADDR is not set", string(m), strings.ToUpper(string(m)))
}

func (m missingConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, m.Invoke(context.Background(), "", nil, nil)
}

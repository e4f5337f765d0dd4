package app

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/health" // the client side of the health check the service config asks for
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	schemav1 "github.com/authplane/authplane/gen/go/authplane/schema/v1"
	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/config"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/svc"
)

// serviceDescs are the gRPC services behind each service name, for the retry policy of its connection.
var serviceDescs = map[string]*grpc.ServiceDesc{
	svc.Tenant: &tenantv1.TenantService_ServiceDesc, svc.Workspace: &workspacev1.WorkspaceService_ServiceDesc,
	svc.Pool: &poolv1.PoolService_ServiceDesc, svc.Schema: &schemav1.SchemaService_ServiceDesc,
	svc.Client: &clientv1.ClientService_ServiceDesc, svc.Token: &tokenv1.TokenService_ServiceDesc,
}

// safeToRetry reports whether a call that failed Unavailable may be sent again, to another replica: the reads
// (Get…, List…, and the checks that change nothing). Any other call may have taken effect on the replica that
// failed under it (a user created, a wrong password counted towards lockout, a refresh token rotated, whose second
// presentation would read as reuse and end the session), so it fails with that replica and its caller decides.
func safeToRetry(method string) bool {
	switch method {
	case "Introspect", "PoolExists", "AuthenticateClient":
		return true
	}
	return strings.HasPrefix(method, "Get") || strings.HasPrefix(method, "List")
}

// Reconnection to a replica that went away: quick at first, then every 5 s at most (gRPC's default grows to
// 2 min), so that a restarted replica is back in the rotation within seconds.
var reconnectBackoff = backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second}

// Keepalive pings find a replica whose host vanished without closing its connections (a node lost, a network
// cut): without them such a connection would look open until TCP gave up, minutes later.
var (
	clientKeepalive = keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}
	serverKeepalive = keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}
)

// serverConnectionAge ends every connection to a replica gracefully after about two minutes (GOAWAY: calls in
// flight finish, the next ones go on a new connection). A client resolves its dns:/// name again when a connection
// ends, so replicas added by scaling out get their share within minutes rather than when some connection fails.
var serverConnectionAge = keepalive.ServerParameters{MaxConnectionAge: 2 * time.Minute, MaxConnectionAgeGrace: 30 * time.Second}

// serviceConfig is the gRPC service config of the connection to a service: round robin over every replica whose
// health check (the grpc.health.v1 status of the service's name) answers SERVING, so that a replica stopping
// (NOT_SERVING) or unreachable gets no new calls; reads sent again on Unavailable, within a budget.
func serviceConfig(name string) string {
	type methodName struct {
		Service string `json:"service"`
		Method  string `json:"method"`
	}
	type retryPolicy struct {
		MaxAttempts          int      `json:"maxAttempts"`
		InitialBackoff       string   `json:"initialBackoff"`
		MaxBackoff           string   `json:"maxBackoff"`
		BackoffMultiplier    float64  `json:"backoffMultiplier"`
		RetryableStatusCodes []string `json:"retryableStatusCodes"`
	}
	type methodConfig struct {
		Name        []methodName `json:"name"`
		RetryPolicy retryPolicy  `json:"retryPolicy"`
	}
	cfg := map[string]any{
		"loadBalancingConfig": []map[string]any{{"round_robin": map[string]any{}}},
		"healthCheckConfig":   map[string]string{"serviceName": name},
		// Retries stop while more than about one call in ten fails on a connection: a service down on every
		// replica then fails fast instead of tripling its load.
		"retryThrottling": map[string]float64{"maxTokens": 10, "tokenRatio": 0.1},
	}
	if desc := serviceDescs[name]; desc != nil {
		var reads []methodName
		for _, m := range desc.Methods {
			if safeToRetry(m.MethodName) {
				reads = append(reads, methodName{Service: desc.ServiceName, Method: m.MethodName})
			}
		}
		cfg["methodConfig"] = []methodConfig{{Name: reads, RetryPolicy: retryPolicy{
			MaxAttempts: 3, InitialBackoff: "0.05s", MaxBackoff: "0.5s", BackoffMultiplier: 2,
			RetryableStatusCodes: []string{"UNAVAILABLE"},
		}}}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		panic(err) // built from constants
	}
	return string(raw)
}

// dialService connects to the replicas of a service as AUTHPLANE_<NAME>_ADDR names them: a dns:/// target (or a
// single host:port, which gRPC resolves by DNS too) re-resolved when a connection fails, or a fixed list given to a
// resolver of this connection alone.
func dialService(name, value string, opts []grpc.DialOption) (*grpc.ClientConn, error) {
	addr, err := config.ParseServiceAddr(value)
	if err != nil {
		return nil, err
	}
	opts = append(slices.Clip(opts),
		grpc.WithDefaultServiceConfig(serviceConfig(name)),
		// A DNS TXT record may not change how the platform balances or retries its calls.
		grpc.WithDisableServiceConfig(),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnectBackoff, MinConnectTimeout: 5 * time.Second}),
		grpc.WithKeepaliveParams(clientKeepalive),
		grpc.WithChainUnaryInterceptor(retryClientCredentials),
	)
	target := addr.Target
	if len(addr.Addrs) > 0 {
		r := manual.NewBuilderWithScheme("authplane-replicas")
		endpoints := make([]resolver.Endpoint, len(addr.Addrs))
		for i, a := range addr.Addrs {
			endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}}
		}
		r.InitialState(resolver.State{Endpoints: endpoints})
		opts = append(opts, grpc.WithResolvers(r))
		target = r.Scheme() + ":///" + name
	}
	return grpc.NewClient(target, opts...)
}

// retryClientCredentials sends a client_credentials token request that failed Unavailable again: issuing that
// token stores nothing, so a second attempt cannot act twice, and a token request in flight on a replica that
// stopped still gets its token. The other grants are not sent again (see safeToRetry): a password grant counts a
// wrong password, a refresh rotates the token, a code is spent.
func retryClientCredentials(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if tr, ok := req.(*tokenv1.TokenRequest); !ok || method != tokenv1.TokenService_Token_FullMethodName || tr.GetGrantType() != platform.GrantClientCredentials {
		return err
	}
	wait := 50 * time.Millisecond
	for attempt := 2; attempt <= 3 && status.Code(err) == codes.Unavailable; attempt++ {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
		err = invoker(ctx, method, req, reply, cc, opts...)
	}
	return err
}

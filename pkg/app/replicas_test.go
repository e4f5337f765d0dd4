package app_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
)

// TestReplicasShareTheLoadAndAGracefulStopLosesNothing runs two token and two pool replicas on PostgreSQL behind
// one gateway, which is given both addresses of each. Under a load of client_credentials and password grants,
// both replicas of each serve; a token replica told to stop (with a drain period) reports itself not ready and
// stops getting calls while it still serves; then it and a pool replica (with none) stop gracefully; and not one
// request fails. (TestReplicasSurviveAKill, in cmd/authplane, kills processes instead.)
func TestReplicasShareTheLoadAndAGracefulStopLosesNothing(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, testenv.Postgres)
	const masterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	type process struct {
		name     string
		services []string
		env      map[string]string
		httpLn   net.Listener
		grpcLn   net.Listener
	}
	procs := []*process{
		{name: "core", services: []string{svc.Tenant, svc.Workspace, svc.Schema, svc.Client}},
		{name: "pool-1", services: []string{svc.Pool}},
		{name: "pool-2", services: []string{svc.Pool}},
		// Ten seconds of drain: long enough to watch, whatever the machine's load.
		{name: "token-1", services: []string{svc.Token}, env: map[string]string{"AUTHPLANE_SHUTDOWN_DRAIN": "10s"}},
		{name: "token-2", services: []string{svc.Token}},
		{name: "gateway", services: []string{svc.Gateway}},
	}
	replicas := map[string][]string{} // service → every replica's gRPC address
	for _, p := range procs {
		p.httpLn, p.grpcLn = testenv.Listen(t), testenv.Listen(t)
		for _, s := range p.services {
			replicas[s] = append(replicas[s], p.grpcLn.Addr().String())
		}
	}
	addrs := map[string]string{}
	for s, list := range replicas {
		addrs[s] = strings.Join(list, ",")
	}
	issuer := "http://" + procs[len(procs)-1].httpLn.Addr().String()
	envs := map[string]*testenv.Env{}
	for _, p := range procs {
		envs[p.name] = testenv.Start(t, testenv.WithDatabase(dbURL, masterKey), testenv.WithServices(p.services, addrs),
			testenv.WithListeners(p.httpLn, p.grpcLn), testenv.WithIssuer(issuer), testenv.WithRootSecret("replicas-root-secret"),
			testenv.WithEnv(p.env))
	}
	gateway := envs["gateway"]
	iss := gateway.NewIssuance(t, "acme")

	load := testenv.StartLoad(t, 4, func(_, seq int) error {
		resp, err := gateway.HTTP.Do(iss.TokenRequest(gateway.HTTPURL, seq%2 == 1))
		if err != nil {
			return err
		}
		return testenv.CheckTokenResponse(resp)
	})
	tokenCalls := func(name string) float64 {
		return testenv.Counter(t, gateway.HTTP, envs[name].HTTPURL+"/metrics", "authplane_grpc_requests_total",
			map[string]string{"method": "/authplane.token.v1.TokenService/Token"})
	}
	passwordChecks := func(name string) float64 {
		return testenv.Counter(t, gateway.HTTP, envs[name].HTTPURL+"/metrics", "authplane_grpc_requests_total",
			map[string]string{"method": "/authplane.pool.v1.PoolService/AuthenticatePassword"})
	}
	// Round robin: every replica gets calls (each connection sees its replicas' health SERVING first).
	waitFor(t, func() bool {
		return tokenCalls("token-1") > 0 && tokenCalls("token-2") > 0 && passwordChecks("pool-1") > 0 && passwordChecks("pool-2") > 0
	})

	// token-1 is told to stop: not ready at once, on gRPC and on /readyz, while it drains.
	token1 := envs["token-1"]
	health := healthClient(t, token1.GRPCAddr)
	stopped := make(chan struct{})
	go func() { token1.Stop(); close(stopped) }()
	waitFor(t, func() bool {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc.Token})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
	})
	if code, status := readiness(t, token1.HTTPURL); code != http.StatusServiceUnavailable || status != "shutting down" {
		t.Errorf("/readyz of a draining replica: %d %q, want 503 \"shutting down\"", code, status)
	}
	// The gateway's health check takes it out of the rotation while it still serves: once the load has gone on a
	// while, token-1 gets no more calls.
	load.WaitForSuccesses(30)
	before := tokenCalls("token-1")
	load.WaitForSuccesses(30)
	if after := tokenCalls("token-1"); after != before {
		t.Errorf("a draining replica still gets calls: %v, then %v", before, after)
	}
	t.Logf("token-1 served %v token requests before it drained", before)
	if code, status := readiness(t, token1.HTTPURL); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz later in the drain: %d %q", code, status)
	}
	<-stopped

	envs["pool-1"].Stop() // no drain: gRPC's GOAWAY moves its callers
	load.WaitForSuccesses(40)

	results := load.Stop()
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("request %d of worker %d failed: %v", r.Seq, r.Worker, r.Err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed while replicas stopped gracefully, want none", failed, len(results))
	}
	t.Logf("%d requests; token-2 served %v token requests, pool-2 %v password checks", len(results), tokenCalls("token-2"), passwordChecks("pool-2"))
}

func healthClient(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func readiness(t *testing.T, baseURL string) (int, string) {
	t.Helper()
	resp, err := http.Get(baseURL + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Status
}

package app_test

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/testenv"
)

// revokeToken revokes tok at {issuer}/oauth2/revoke of tenant/server, authenticating as client id (Basic).
func revokeToken(t *testing.T, env *testenv.Env, tenant, server, id, secret, tok string) {
	t.Helper()
	req, _ := http.NewRequest("POST", env.Issuer(tenant, server)+"/oauth2/revoke",
		strings.NewReader(url.Values{"token": {tok}, "token_type_hint": {"access_token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke at %s/%s: status %d", tenant, server, resp.StatusCode)
	}
}

// planeCall calls one RPC of a plane as tok, over REST (env's gateway) and over gRPC (cc), and returns the HTTP
// status and the gRPC code.
type planeCall func(t *testing.T, env *testenv.Env, cc *grpc.ClientConn, tok string) (int, codes.Code)

func adminCall(tenant string) planeCall {
	return func(t *testing.T, env *testenv.Env, cc *grpc.ClientConn, tok string) (int, codes.Code) {
		t.Helper()
		code := env.CallJSON(t, "GET", "/api/admin/"+tenant+"/servers", tok, nil, nil)
		_, err := workspacev1.NewWorkspaceServiceClient(cc).ListServers(testenv.WithToken(context.Background(), tok),
			&workspacev1.ListServersRequest{TenantId: tenant})
		return code, status.Code(err)
	}
}

func identityCall(tenant string) planeCall {
	return func(t *testing.T, env *testenv.Env, cc *grpc.ClientConn, tok string) (int, codes.Code) {
		t.Helper()
		code := env.CallJSON(t, "GET", "/api/identity/"+tenant+"/system/pools", tok, nil, nil)
		_, err := poolv1.NewPoolServiceClient(cc).ListPools(testenv.WithToken(context.Background(), tok),
			&poolv1.ListPoolsRequest{TenantId: tenant})
		return code, status.Code(err)
	}
}

func operatorCall(t *testing.T, env *testenv.Env, cc *grpc.ClientConn, tok string) (int, codes.Code) {
	t.Helper()
	code := env.CallJSON(t, "GET", "/api/admin/tenants", tok, nil, nil)
	_, err := tenantv1.NewTenantServiceClient(cc).ListTenants(testenv.WithToken(context.Background(), tok), &tenantv1.ListTenantsRequest{})
	return code, status.Code(err)
}

func mustOpen(t *testing.T, env *testenv.Env, cc *grpc.ClientConn, call planeCall, tok, what string) {
	t.Helper()
	if code, grpcCode := call(t, env, cc, tok); code != http.StatusOK || grpcCode != codes.OK {
		t.Fatalf("%s: REST %d, gRPC %s; want 200 and OK", what, code, grpcCode)
	}
}

func isRefused(t *testing.T, env *testenv.Env, cc *grpc.ClientConn, call planeCall, tok string) bool {
	t.Helper()
	code, grpcCode := call(t, env, cc, tok)
	return code == http.StatusUnauthorized && grpcCode == codes.Unauthenticated
}

// revocationLoads is how many times this process served or asked for a denylist (ListRevokedTokens calls).
func revocationLoads(t *testing.T, env *testenv.Env) int {
	t.Helper()
	resp, err := env.HTTP.Get(env.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "authplane_grpc_requests_total{") && strings.Contains(line, "/ListRevokedTokens\"") {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			n += int(v)
		}
	}
	return n
}

func TestRevokedTokensNoLongerOpenTheirPlane(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		acme := env.NewTenant(t, "acme")
		admin := adminCall("acme")

		mustOpen(t, env, env.GRPC, admin, acme.AdminToken, "a fresh admin token")
		loads := revocationLoads(t, env)
		for i := 0; i < 20; i++ {
			mustOpen(t, env, env.GRPC, admin, acme.AdminToken, "the admin token again")
		}
		if n := revocationLoads(t, env); n != loads {
			t.Fatalf("steady-state requests loaded the denylist %d more times, want 0", n-loads)
		}

		second := env.Token(t, "acme", "admin", acme.AdminID, acme.AdminSecret)
		mustOpen(t, env, env.GRPC, admin, second, "a second admin token")
		revokeToken(t, env, "acme", "admin", acme.AdminID, acme.AdminSecret, acme.AdminToken)
		if !isRefused(t, env, env.GRPC, admin, acme.AdminToken) {
			t.Fatal("the revoked admin token still opens the admin plane")
		}
		mustOpen(t, env, env.GRPC, admin, second, "the admin token nobody revoked")

		// The identity plane: a system token revoked by its own client.
		sysID, sysSecret := env.CreateClient(t, "acme", second, map[string]any{
			"authorization_server_id": "system", "grant_types": []string{"client_credentials"}, "scopes": []string{"identity"},
		})
		sys := env.Token(t, "acme", "system", sysID, sysSecret)
		identity := identityCall("acme")
		mustOpen(t, env, env.GRPC, identity, sys, "a fresh system token")
		revokeToken(t, env, "acme", "system", sysID, sysSecret, sys)
		if !isRefused(t, env, env.GRPC, identity, sys) {
			t.Fatal("the revoked system token still opens the identity plane")
		}
		mustOpen(t, env, env.GRPC, identity, acme.SystemToken, "another system token")

		// The operator plane.
		root := env.RootToken(t)
		mustOpen(t, env, env.GRPC, operatorCall, root, "a fresh operator token")
		revokeToken(t, env, "root", "admin", env.RootClientID, env.RootSecret, root)
		if !isRefused(t, env, env.GRPC, operatorCall, root) {
			t.Fatal("the revoked operator token still opens the operator plane")
		}
		mustOpen(t, env, env.GRPC, operatorCall, env.RootToken(t), "a new operator token")
	})
}

// TestRevocationReachesTheOtherProcessesInterceptors revokes a token through one process; another process,
// sharing the PostgreSQL database, refuses it on its own admin plane.
func TestRevocationReachesTheOtherProcessesInterceptors(t *testing.T) {
	first := testenv.Start(t, testenv.WithBackend(testenv.Postgres))
	second := testenv.Start(t, testenv.WithDatabase(first.DatabaseURL, first.MasterKey), testenv.WithIssuer(first.HTTPURL),
		testenv.WithRootSecret(first.RootSecret))
	acme := first.NewTenant(t, "acme")
	admin := adminCall("acme")
	other := first.Token(t, "acme", "admin", acme.AdminID, acme.AdminSecret)
	mustOpen(t, second, second.GRPC, admin, acme.AdminToken, "the admin token in the second process") // warms its denylist

	revokeToken(t, first, "acme", "admin", acme.AdminID, acme.AdminSecret, acme.AdminToken)
	waitFor(t, func() bool { return isRefused(t, second, second.GRPC, admin, acme.AdminToken) })
	mustOpen(t, second, second.GRPC, admin, other, "the admin token nobody revoked, in the second process")
	if !isRefused(t, first, first.GRPC, admin, acme.AdminToken) {
		t.Fatal("the revoking process admits the revoked token")
	}
}

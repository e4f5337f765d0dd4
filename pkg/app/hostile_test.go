package app_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
)

// TestTextThatIsNotUTF8OrHoldsNULIsRefused: a NUL byte or invalid UTF-8 anywhere a caller puts text (a JSON
// string, a path segment, a query value, a form parameter, Basic credentials, a gRPC field) is a 400
// (invalid_request on the OAuth endpoints, InvalidArgument over gRPC) on both databases, never a 500 from
// PostgreSQL, and nothing is written; the same when the gateway runs in a process of its own and can only reach
// the services over gRPC.
func TestTextThatIsNotUTF8OrHoldsNULIsRefused(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		t.Run("one process", func(t *testing.T) {
			env := testenv.Start(t, testenv.WithBackend(b))
			checkHostileText(t, env, env.GRPC)
		})
		t.Run("the gateway in a process of its own", func(t *testing.T) {
			dbURL, masterKey, rootSecret := testenv.DatabaseURL(t, b), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "hostile-root-secret"
			svcHTTP, svcGRPC, gwHTTP, gwGRPC := testenv.Listen(t), testenv.Listen(t), testenv.Listen(t), testenv.Listen(t)
			services := []string{svc.Tenant, svc.Workspace, svc.Pool, svc.Schema, svc.Client, svc.Token}
			addrs := map[string]string{}
			for _, name := range services {
				addrs[name] = svcGRPC.Addr().String()
			}
			issuer := "http://" + gwHTTP.Addr().String()
			backend := testenv.Start(t, testenv.WithDatabase(dbURL, masterKey), testenv.WithServices(services, nil),
				testenv.WithListeners(svcHTTP, svcGRPC), testenv.WithIssuer(issuer), testenv.WithRootSecret(rootSecret))
			gateway := testenv.Start(t, testenv.WithDatabase(dbURL, masterKey), testenv.WithServices([]string{svc.Gateway}, addrs),
				testenv.WithListeners(gwHTTP, gwGRPC), testenv.WithIssuer(issuer), testenv.WithRootSecret(rootSecret))
			checkHostileText(t, gateway, backend.GRPC)
		})
	})
}

// checkHostileText sends hostile text to env's HTTP server and to the gRPC services at services.
func checkHostileText(t *testing.T, env *testenv.Env, services *grpc.ClientConn) {
	acme := env.NewTenant(t, "acme")
	admin := acme.AdminToken
	mustStatus(t, restCall(env, "POST", "/api/admin/acme/servers", admin, map[string]any{"id": "shop", "name": "Shop",
		"grant_types": []string{"password", "client_credentials"}}), 201, "workspace")
	mustStatus(t, restCall(env, "POST", "/api/identity/acme/system/pools", acme.SystemToken, map[string]any{"id": "people",
		"name": "People", "authentication_mechanisms": []string{"password"}}), 201, "pool")
	mustStatus(t, restCall(env, "POST", "/api/identity/acme/system/pools/people/users", acme.SystemToken, map[string]any{
		"status": "active", "identifiers": []map[string]string{{"type": "email", "identifier": "jane@example.com"}},
		"credentials": []map[string]string{{"type": "password", "password": "S3cure-pass!word"}}}), 201, "user")
	mustStatus(t, restCall(env, "POST", "/api/admin/acme/servers/shop/idps/identity_pool", admin, map[string]any{
		"name": "People", "identity_pool_id": "people"}), 201, "idp")
	appID, appSecret := env.CreateClient(t, "acme", admin, map[string]any{"authorization_server_id": "shop",
		"client_name": "app", "grant_types": []string{"password", "client_credentials"}})
	basic := "Basic " + basicValue(appID, appSecret)
	bearer := "Bearer " + admin
	sys := "Bearer " + acme.SystemToken
	form, js := "application/x-www-form-urlencoded", "application/json"

	rest := []struct {
		name, method, path, auth, contentType, body string
		field                                       string // details.field, when the answer names one
	}{
		{"NUL in a client name", "POST", "/api/admin/acme/clients", bearer, js,
			`{"authorization_server_id":"shop","client_name":"nul\u0000name","grant_types":["client_credentials"]}`, "client.client_name"},
		{"NUL in a workspace name", "POST", "/api/admin/acme/servers", bearer, js,
			`{"id":"nulws","name":"nul\u0000ws","grant_types":["client_credentials"]}`, "server.name"},
		{"NUL in a verify identifier", "POST", "/api/identity/acme/system/pools/people/user/password/verify", sys, js,
			`{"identifier":"jane@example.com\u0000","password":"x"}`, "identifier"},
		{"NUL in a page_token query value", "GET", "/api/admin/acme/servers?page_token=%00", bearer, "", "", "page_token"},
		{"invalid UTF-8 in a JSON body", "POST", "/api/identity/acme/system/pools/people/user/password/verify", sys, js,
			"{\"identifier\":\"\xff\xfe@example.com\",\"password\":\"x\"}", ""},
		{"invalid UTF-8 in a query value", "GET", "/api/admin/acme/servers?page_token=%ff", bearer, "", "", "page_token"},
		{"invalid UTF-8 in an admin path segment", "GET", "/api/admin/acme/clients/%ff", bearer, "", "", "path"},
		{"NUL in an admin path segment", "DELETE", "/api/admin/acme/servers/shop%00", bearer, "", "", "path"},
		{"invalid UTF-8 in the workspace of the JWKS", "GET", "/acme/%ff/.well-known/jwks.json", "", "", "", "path"},
		{"invalid UTF-8 in the tenant of the discovery document", "GET", "/%ff/shop/.well-known/openid-configuration", "", "", "", "path"},
		{"invalid UTF-8 in the RFC 8414 metadata path", "GET", "/.well-known/oauth-authorization-server/acme/%ff", "", "", "", "path"},
	}
	for _, tc := range rest {
		t.Run("REST "+tc.name, func(t *testing.T) {
			a := rawCall(t, env, tc.method, tc.path, tc.auth, tc.contentType, tc.body)
			details, _ := a.body["details"].(map[string]any)
			if a.status != 400 || a.body["error_code"] != "invalid_input" || a.body["status_code"] != float64(400) {
				t.Fatalf("%s, want the contract's 400 invalid_input", a)
			}
			if tc.field != "" && details["field"] != tc.field {
				t.Fatalf("details %v, want field %q", details, tc.field)
			}
			if msg, _ := a.body["error"].(string); !strings.Contains(msg, "UTF-8") {
				t.Fatalf("error %q does not say what is wrong", msg)
			}
		})
	}

	token := []struct {
		name, path, auth, contentType, body string
	}{
		{"the token endpoint of workspace %ff", "/acme/%ff/oauth2/token", basic, form, "grant_type=client_credentials"},
		{"a NUL in a username", "/acme/shop/oauth2/token", basic, form, "grant_type=password&username=jane%40example.com%00&password=x"},
		{"invalid UTF-8 in a password", "/acme/shop/oauth2/token", basic, form, "grant_type=password&username=jane%40example.com&password=%ff"},
		{"a NUL in a JSON parameter", "/acme/shop/oauth2/token", basic, js, `{"grant_type":"client_credentials","scope":"a\u0000"}`},
		{"invalid UTF-8 in a JSON body", "/acme/shop/oauth2/token", basic, js, "{\"grant_type\":\"client_credentials\",\"scope\":\"\xff\"}"},
		{"invalid UTF-8 in a query value", "/acme/shop/oauth2/token?x=%ff", basic, form, "grant_type=client_credentials"},
		{"a NUL in Basic credentials", "/acme/shop/oauth2/token", "Basic " + basicValue(appID+"\x00", appSecret), form, "grant_type=client_credentials"},
		{"a NUL in the token to introspect", "/acme/shop/oauth2/introspect", basic, form, "token=abc%00"},
		{"invalid UTF-8 in the token to revoke", "/acme/shop/oauth2/revoke", basic, form, "token=%ff"},
	}
	for _, tc := range token {
		t.Run("OAuth "+tc.name, func(t *testing.T) {
			a := rawCall(t, env, "POST", tc.path, tc.auth, tc.contentType, tc.body)
			if a.status != 400 || a.body["error"] != "invalid_request" {
				t.Fatalf("%s, want 400 invalid_request", a)
			}
			if d, _ := a.body["error_description"].(string); !strings.Contains(d, "UTF-8") {
				t.Fatalf("error_description %q does not say what is wrong", d)
			}
		})
	}

	// Over gRPC, straight to the services: a NUL byte (a Go client cannot even send invalid UTF-8 in a string
	// field: the protobuf encoder refuses it).
	ctx := testenv.WithToken(context.Background(), admin)
	sysCtx := testenv.WithToken(context.Background(), acme.SystemToken)
	clients := clientv1.NewClientServiceClient(services)
	servers := workspacev1.NewWorkspaceServiceClient(services)
	pools := poolv1.NewPoolServiceClient(services)
	tokens := tokenv1.NewTokenServiceClient(services)
	grpcCases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"NUL in a client name", func() error {
			_, err := clients.CreateClient(ctx, &clientv1.CreateClientRequest{TenantId: "acme", Client: &clientv1.Client{
				AuthorizationServerId: "shop", ClientName: "nul\x00grpc"}})
			return err
		}, "client.client_name"},
		{"NUL in a workspace name", func() error {
			_, err := servers.CreateServer(ctx, &workspacev1.CreateServerRequest{TenantId: "acme", Server: &workspacev1.Server{
				Id: "nulgrpc", Name: "nul\x00grpc"}})
			return err
		}, "server.name"},
		{"NUL in a verify identifier", func() error {
			_, err := pools.VerifyPassword(sysCtx, &poolv1.VerifyPasswordRequest{TenantId: "acme", PoolId: "people",
				Identifier: "jane@example.com\x00", Password: "x"})
			return err
		}, "identifier"},
		{"NUL in a page token", func() error {
			_, err := servers.ListServers(ctx, &workspacev1.ListServersRequest{TenantId: "acme", PageToken: "\x00"})
			return err
		}, "page_token"},
		{"NUL in a token request, no credentials needed", func() error {
			_, err := tokens.Token(context.Background(), &tokenv1.TokenRequest{TenantId: "acme", ServerId: "shop",
				GrantType: "password", ClientId: appID, ClientSecret: appSecret, Username: "jane\x00", Password: "x"})
			return err
		}, "username"},
		{"NUL in the workspace of a public RPC", func() error {
			_, err := tokens.GetJWKS(context.Background(), &tokenv1.GetJWKSRequest{TenantId: "acme", ServerId: "shop\x00"})
			return err
		}, "server_id"},
	}
	for _, tc := range grpcCases {
		t.Run("gRPC "+tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.InvalidArgument || fieldOf(err) != tc.field {
				t.Fatalf("%v (field %q), want InvalidArgument naming %q", err, fieldOf(err), tc.field)
			}
		})
	}

	t.Run("nothing was written", func(t *testing.T) {
		var list struct {
			Clients []struct {
				ClientName string `json:"client_name"`
			} `json:"clients"`
		}
		env.CallJSON(t, "GET", "/api/admin/acme/servers/shop/clients", admin, nil, &list)
		for _, c := range list.Clients {
			if strings.HasPrefix(c.ClientName, "nul") {
				t.Errorf("client %q was stored", c.ClientName)
			}
		}
		for _, id := range []string{"nulws", "nulgrpc"} {
			if code := env.CallJSON(t, "GET", "/api/admin/acme/servers/"+id, admin, nil, nil); code != http.StatusNotFound {
				t.Errorf("GET /servers/%s: %d, want 404", id, code)
			}
		}
		if code := env.CallJSON(t, "GET", "/api/admin/acme/servers/shop", admin, nil, nil); code != http.StatusOK {
			t.Errorf("GET /servers/shop: %d, want 200 (the refused DELETE must not have deleted it)", code)
		}
		// The refused logins were never checked: jane's password still works, and the client too.
		login := url.Values{"grant_type": {"password"}, "username": {"jane@example.com"}, "password": {"S3cure-pass!word"}}
		mustStatus(t, tokenCall(env, "acme", "shop", appID, appSecret, login), 200, "jane's login")
	})
}

// rawCall sends a body as given (bytes that are not UTF-8 included) and decodes the JSON answer.
func rawCall(t *testing.T, env *testenv.Env, method, path, auth, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, env.HTTPURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	a := do(env, req)
	if a.status == 0 {
		t.Fatalf("%s %s: %s", method, path, a.raw)
	}
	return a
}

// fieldOf reads the field an InvalidArgument status names.
func fieldOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Metadata["field"]
		}
	}
	return ""
}

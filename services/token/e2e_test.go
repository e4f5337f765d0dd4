package token_test

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/testenv"
)

// These tests run the whole process (testenv): the token service with the real workspace and client services,
// reached over gRPC and through the gateway's HTTP data plane, on SQLite and PostgreSQL.

type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

// postToken sends a client_credentials request with client_secret_post and returns the status and answer.
func postToken(t *testing.T, env *testenv.Env, tenant, server, clientID, secret, scope string) (int, tokenAnswer) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}}
	if scope != "" {
		form.Set("scope", scope)
	}
	resp, err := env.HTTP.PostForm(env.Issuer(tenant, server)+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out tokenAnswer
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("token answer %q: %v", raw, err)
	}
	return resp.StatusCode, out
}

// verifyHTTP checks a token against the workspace's JWKS as served over HTTP and returns its claims.
func verifyHTTP(t *testing.T, env *testenv.Env, tenant, server, tok string) map[string]any {
	t.Helper()
	resp, err := env.HTTP.Get(env.Issuer(tenant, server) + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := parsed.Headers[0].ExtraHeaders[jose.HeaderType]; typ != "at+jwt" || len(set.Key(parsed.Headers[0].KeyID)) != 1 {
		t.Fatalf("typ %v, kid %q not in the JWKS", typ, parsed.Headers[0].KeyID)
	}
	var claims map[string]any
	if err := parsed.Claims(&set, &claims); err != nil {
		t.Fatalf("token does not verify against %s/%s: %v", tenant, server, err)
	}
	return claims
}

func tokenReason(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return st.Code().String()
}

func TestClientCredentialsThroughTheRunningServer(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		admin := env.AdminToken(t, "acme")
		call := func(method, path string, body any, out any) int {
			return env.CallJSON(t, method, "/api/admin/acme"+path, admin, body, out)
		}
		if code := call("POST", "/servers", map[string]any{"id": "shop", "grant_types": []string{"client_credentials", "password"}, "access_token_ttl": "900s"}, nil); code != 201 {
			t.Fatalf("create server: %d", code)
		}
		if code := call("POST", "/scopes", map[string]any{"authorization_server_id": "shop", "name": "orders.read"}, nil); code != 201 {
			t.Fatalf("create scope: %d", code)
		}
		if code := call("POST", "/token-policies", map[string]any{"id": "webhooks", "access_token_ttl": "600s", "allowed_scopes": []string{"*:webhooks/**"}}, nil); code != 201 {
			t.Fatalf("create policy: %d", code)
		}
		id, secret := env.CreateClient(t, "acme", admin, map[string]any{
			"authorization_server_id": "shop", "grant_types": []string{"client_credentials"}, "scopes": []string{"orders.read"},
		})
		hookID, hookSecret := env.CreateClient(t, "acme", admin, map[string]any{
			"authorization_server_id": "shop", "grant_types": []string{"client_credentials"}, "token_policy_id": "webhooks",
			"audience": []string{"https://hooks.example"},
		})

		// Over HTTP (x/oauth2 with Basic, and client_secret_post) and over gRPC.
		claims := verifyHTTP(t, env, "acme", "shop", env.Token(t, "acme", "shop", id, secret))
		if claims["iss"] != env.Issuer("acme", "shop") || claims["sub"] != id || claims["scope"] != "orders.read" || claims["tid"] != "acme" || claims["aid"] != "shop" {
			t.Fatalf("claims %v", claims)
		}
		code, ans := postToken(t, env, "acme", "shop", hookID, hookSecret, "orders:webhooks/a/b")
		if code != 200 || ans.Scope != "orders:webhooks/a/b" || ans.ExpiresIn != 600 || ans.TokenType != "Bearer" || ans.RefreshToken != "" {
			t.Fatalf("policy scope: %d %+v", code, ans)
		}
		if aud := verifyHTTP(t, env, "acme", "shop", ans.AccessToken)["aud"].([]any); len(aud) != 1 || aud[0] != "https://hooks.example" {
			t.Fatalf("aud %v", aud)
		}
		tokens := tokenv1.NewTokenServiceClient(env.GRPC)
		resp, err := tokens.Token(context.Background(), &tokenv1.TokenRequest{
			TenantId: "acme", ServerId: "shop", GrantType: "client_credentials", ClientId: id, ClientSecret: secret,
		})
		if err != nil || resp.ExpiresIn != 900 || resp.Scope != "orders.read" {
			t.Fatalf("over gRPC: %v %v", resp, err)
		}
		verifyHTTP(t, env, "acme", "shop", resp.AccessToken)

		refusals := []struct {
			name, client, secret, scope string
			wantStatus                  int
			wantError                   string
		}{
			{"wrong secret", id, "wrong", "", 401, "invalid_client"},
			{"undefined scope without a policy", id, secret, "orders.write", 400, "invalid_scope"},
			{"a pattern star does not cross a slash", hookID, hookSecret, "a/b:webhooks/x", 400, "invalid_scope"},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				code, ans := postToken(t, env, "acme", "shop", tc.client, tc.secret, tc.scope)
				if code != tc.wantStatus || ans.Error != tc.wantError {
					t.Fatalf("got %d %q, want %d %q", code, ans.Error, tc.wantStatus, tc.wantError)
				}
			})
		}
		_, err = tokens.Token(context.Background(), &tokenv1.TokenRequest{
			TenantId: "acme", ServerId: "shop", GrantType: "password", ClientId: id, ClientSecret: secret, Username: "u", Password: "p",
		})
		if status.Code(err) != codes.InvalidArgument || tokenReason(err) != "unauthorized_client" {
			t.Fatalf("password grant for a client without it: %v", err)
		}
		if _, err := tokens.GetJWKS(context.Background(), &tokenv1.GetJWKSRequest{TenantId: "acme", ServerId: "nope"}); status.Code(err) != codes.NotFound {
			t.Fatalf("JWKS of an unknown workspace: %v", err)
		}
	})
}

func TestChangesReachTheCachedTokenPathAtOnce(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		admin := env.AdminToken(t, "acme")
		call := func(method, path string, body any, out any) int {
			return env.CallJSON(t, method, "/api/admin/acme"+path, admin, body, out)
		}
		if code := call("POST", "/servers", map[string]any{"id": "shop", "grant_types": []string{"client_credentials"}}, nil); code != 201 {
			t.Fatalf("create server: %d", code)
		}
		if code := call("POST", "/token-policies", map[string]any{"id": "p", "allowed_scopes": []string{"extra.*"}}, nil); code != 201 {
			t.Fatalf("create policy: %d", code)
		}
		id, secret := env.CreateClient(t, "acme", admin, map[string]any{
			"authorization_server_id": "shop", "grant_types": []string{"client_credentials"}, "token_policy_id": "p",
		})
		expect := func(step, client, sec, scope string, wantStatus int, wantError string) tokenAnswer {
			t.Helper()
			code, ans := postToken(t, env, "acme", "shop", client, sec, scope)
			if code != wantStatus || ans.Error != wantError {
				t.Fatalf("%s: got %d %q, want %d %q", step, code, ans.Error, wantStatus, wantError)
			}
			return ans
		}
		for i := 0; i < 3; i++ { // warm every cache
			expect("warm", id, secret, "extra.a", 200, "")
		}

		var rotated struct {
			ClientSecret string `json:"client_secret"`
		}
		if code := call("POST", "/clients/"+id+"/rotate-secret", map[string]any{}, &rotated); code != 200 || rotated.ClientSecret == "" {
			t.Fatalf("rotate: %d", code)
		}
		expect("old secret right after rotation", id, secret, "extra.a", 401, "invalid_client")
		expect("new secret", id, rotated.ClientSecret, "extra.a", 200, "")

		if code := call("PUT", "/token-policies/p", map[string]any{"allowed_scopes": []string{"other.*"}}, nil); code != 200 {
			t.Fatalf("update policy: %d", code)
		}
		expect("scope the policy no longer allows", id, rotated.ClientSecret, "extra.a", 400, "invalid_scope")
		expect("scope the policy now allows", id, rotated.ClientSecret, "other.a", 200, "")

		if code := call("PUT", "/servers/shop", map[string]any{"grant_types": []string{"password"}}, nil); code != 200 {
			t.Fatalf("update server: %d", code)
		}
		expect("grant disabled on the workspace", id, rotated.ClientSecret, "other.a", 400, "unauthorized_client")
		if code := call("PUT", "/servers/shop", map[string]any{"grant_types": []string{"client_credentials"}}, nil); code != 200 {
			t.Fatalf("update server: %d", code)
		}
		last := expect("grant enabled again", id, rotated.ClientSecret, "other.a", 200, "")

		if code := call("DELETE", "/clients/"+id, nil, nil); code != 200 && code != 204 {
			t.Fatalf("delete client: %d", code)
		}
		expect("deleted client", id, rotated.ClientSecret, "other.a", 401, "invalid_client")

		// Deleting the workspace deletes its keys: its tokens stop verifying on the admin side too.
		oldKid := kidOf(t, last.AccessToken)
		if code := call("DELETE", "/servers/shop", nil, nil); code != 200 && code != 204 {
			t.Fatalf("delete server: %d", code)
		}
		resp, err := env.HTTP.Get(env.Issuer("acme", "shop") + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("JWKS of a deleted workspace: %d", resp.StatusCode)
		}
		if code := call("POST", "/servers", map[string]any{"id": "shop", "grant_types": []string{"client_credentials"}}, nil); code != 201 {
			t.Fatalf("re-create server: %d", code)
		}
		id2, secret2 := env.CreateClient(t, "acme", admin, map[string]any{"authorization_server_id": "shop", "grant_types": []string{"client_credentials"}})
		if kid := kidOf(t, env.Token(t, "acme", "shop", id2, secret2)); kid == oldKid {
			t.Fatal("a re-created workspace signs with the deleted workspace's key")
		}
	})
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Headers[0].KeyID
}

func TestTenantDeletionRemovesItsKeys(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		env.AdminToken(t, "acme") // signs with (and so creates) the admin workspace's key
		if code := env.CallJSON(t, "DELETE", "/api/admin/tenants/acme", env.RootToken(t), nil, nil); code != 200 && code != 204 {
			t.Fatalf("delete tenant: %d", code)
		}
		store, err := db.Open(context.Background(), env.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		var rows int64
		if err := store.Table("token_signing_keys").Where("tenant_id = ?", "acme").Count(&rows).Error; err != nil || rows != 0 {
			t.Fatalf("%d signing keys of the deleted tenant remain (%v)", rows, err)
		}
		resp, err := env.HTTP.Get(env.Issuer("acme", "admin") + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("JWKS of a deleted tenant: %d", resp.StatusCode)
		}
		_, err = tokenv1.NewTokenServiceClient(env.GRPC).DeleteTenantData(context.Background(), &tokenv1.DeleteTenantDataRequest{TenantId: "acme"})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("DeleteTenantData without a token: %v", err)
		}
		_, err = tokenv1.NewTokenServiceClient(env.GRPC).DeleteTenantData(testenv.WithToken(context.Background(), env.RootToken(t)), &tokenv1.DeleteTenantDataRequest{TenantId: "acme"})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("DeleteTenantData with the operator's token: %v, want PermissionDenied (it is internal)", err)
		}
		_, err = tokenv1.NewTokenServiceClient(env.GRPC).DeleteTenantData(env.Internal(t, context.Background()), &tokenv1.DeleteTenantDataRequest{TenantId: "acme"})
		if err != nil {
			t.Fatalf("DeleteTenantData with the internal credential: %v", err)
		}
	})
}

package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/testenv"
)

// TestClientCredentialsWithRealClients runs the foundation flow with the clients users run: x/oauth2 for tokens
// (each client authentication method set explicitly) and go-oidc for discovery and signature verification.
func TestClientCredentialsWithRealClients(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		acme := env.NewTenant(t, "acme")
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, env.HTTP)

		var ws map[string]any
		if code := env.CallJSON(t, "POST", "/api/admin/acme/servers", acme.AdminToken, map[string]any{
			"id": "shop", "name": "Shop", "grant_types": []string{"client_credentials"}, "access_token_ttl": "600s",
		}, &ws); code != http.StatusCreated {
			t.Fatalf("create workspace: %d %v", code, ws)
		}
		if code := env.CallJSON(t, "POST", "/api/admin/acme/scopes", acme.AdminToken, map[string]any{
			"authorization_server_id": "shop", "name": "orders.read",
		}, nil); code != http.StatusCreated {
			t.Fatalf("create scope: %d", code)
		}
		id, secret := env.CreateClient(t, "acme", acme.AdminToken, map[string]any{
			"authorization_server_id": "shop", "client_name": "backend",
			"grant_types": []string{"client_credentials"}, "scopes": []string{"orders.read"},
		})
		issuer := env.Issuer("acme", "shop")
		provider, err := oidc.NewProvider(ctx, issuer)
		if err != nil {
			t.Fatalf("OIDC discovery: %v", err)
		}
		verifier := provider.Verifier(&oidc.Config{ClientID: id, SupportedSigningAlgs: []string{"ES256"}})

		styles := []struct {
			name  string
			style oauth2.AuthStyle
		}{
			{"client_secret_basic", oauth2.AuthStyleInHeader},
			{"client_secret_post", oauth2.AuthStyleInParams},
		}
		for _, s := range styles {
			t.Run(s.name, func(t *testing.T) {
				cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: provider.Endpoint().TokenURL,
					AuthStyle: s.style, Scopes: []string{"orders.read"}}
				tok, err := cfg.Token(ctx)
				if err != nil {
					t.Fatalf("token: %v", err)
				}
				if tok.RefreshToken != "" {
					t.Error("client_credentials must not return a refresh token")
				}
				if got := tok.Extra("scope"); got != "orders.read" {
					t.Errorf("scope = %v", got)
				}
				idt, err := verifier.Verify(ctx, tok.AccessToken)
				if err != nil {
					t.Fatalf("go-oidc cannot verify the access token: %v", err)
				}
				var claims struct {
					ClientID string `json:"client_id"`
					TID      string `json:"tid"`
					AID      string `json:"aid"`
					Scope    string `json:"scope"`
					JTI      string `json:"jti"`
				}
				if err := idt.Claims(&claims); err != nil {
					t.Fatal(err)
				}
				if idt.Subject != id || claims.ClientID != id || claims.TID != "acme" || claims.AID != "shop" || claims.Scope != "orders.read" || claims.JTI == "" {
					t.Errorf("claims: sub=%s %+v", idt.Subject, claims)
				}
				if d := idt.Expiry.Sub(idt.IssuedAt).Seconds(); d != 600 {
					t.Errorf("lifetime %vs, want the workspace's 600s", d)
				}
				header := decodeSegment(t, tok.AccessToken, 0)
				if header["typ"] != "at+jwt" || header["alg"] != "ES256" || header["kid"] == "" {
					t.Errorf("header %v", header)
				}
			})
		}

		t.Run("wrong secret is invalid_client with WWW-Authenticate", func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}}
			req, _ := http.NewRequest("POST", provider.Endpoint().TokenURL, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(id, "wrong")
			resp, err := env.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != 401 || body["error"] != "invalid_client" || resp.Header.Get("WWW-Authenticate") == "" ||
				resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("status %d body %v headers %v", resp.StatusCode, body, resp.Header)
			}
		})

		t.Run("a token from another workspace does not verify here", func(t *testing.T) {
			if _, err := verifier.Verify(ctx, acme.AdminToken); err == nil {
				t.Fatal("an admin-workspace token verified against the shop workspace")
			}
		})
	})
}

func decodeSegment(t *testing.T, jwt string, i int) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPlanesAgreeOverRESTAndGRPC checks every kind of token against the operator, admin and identity planes
// through both faces: the HTTP status and the gRPC code must say the same.
func TestPlanesAgreeOverRESTAndGRPC(t *testing.T) {
	env := testenv.Start(t)
	acme := env.NewTenant(t, "acme")
	globex := env.NewTenant(t, "globex")
	root := env.RootToken(t)

	tenants := tenantv1.NewTenantServiceClient(env.GRPC)
	workspaces := workspacev1.NewWorkspaceServiceClient(env.GRPC)
	clients := clientv1.NewClientServiceClient(env.GRPC)
	type call struct {
		rest string
		grpc func(ctx context.Context) error
	}
	listTenants := call{"/api/admin/tenants", func(ctx context.Context) error {
		_, err := tenants.ListTenants(ctx, &tenantv1.ListTenantsRequest{})
		return err
	}}
	listAcmeServers := call{"/api/admin/acme/servers", func(ctx context.Context) error {
		_, err := workspaces.ListServers(ctx, &workspacev1.ListServersRequest{TenantId: "acme"})
		return err
	}}
	listAcmeClients := call{"/api/admin/acme/servers/admin/clients", func(ctx context.Context) error {
		_, err := clients.ListClients(ctx, &clientv1.ListClientsRequest{TenantId: "acme", ServerId: "admin"})
		return err
	}}
	tests := []struct {
		name  string
		token string
		call  call
		http  int
		code  codes.Code
	}{
		{"operator lists tenants", root, listTenants, 200, codes.OK},
		{"no token at the operator API", "", listTenants, 401, codes.Unauthenticated},
		{"garbage token", "x.y.z", listTenants, 401, codes.Unauthenticated},
		{"tenant admin at the operator API", acme.AdminToken, listTenants, 403, codes.PermissionDenied},
		{"tenant admin reads its workspaces", acme.AdminToken, listAcmeServers, 200, codes.OK},
		{"tenant admin reads its clients", acme.AdminToken, listAcmeClients, 200, codes.OK},
		{"operator at a tenant's admin plane", root, listAcmeServers, 403, codes.PermissionDenied},
		{"another tenant's admin", globex.AdminToken, listAcmeServers, 403, codes.PermissionDenied},
		{"system-workspace token at the admin plane", acme.SystemToken, listAcmeClients, 403, codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := env.CallJSON(t, "GET", tc.call.rest, tc.token, nil, nil); got != tc.http {
				t.Errorf("REST status %d, want %d", got, tc.http)
			}
			ctx := context.Background()
			if tc.token != "" {
				ctx = testenv.WithToken(ctx, tc.token)
			}
			if got := status.Code(tc.call.grpc(ctx)); got != tc.code {
				t.Errorf("gRPC code %v, want %v", got, tc.code)
			}
		})
	}
}

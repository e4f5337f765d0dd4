package token

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/platform"
)

func ccRequest(clientID, secret, scope string) *tokenv1.TokenRequest {
	return &tokenv1.TokenRequest{
		TenantId: "acme", ServerId: "orders", GrantType: "client_credentials", ClientId: clientID, ClientSecret: secret,
		ClientAuthMethod: tokenv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC, Scope: scope,
	}
}

// oauthError returns the OAuth error code and HTTP status an error renders as.
func oauthError(t *testing.T, err error) (string, int) {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got a token")
	}
	d := apierr.Describe(err)
	return d.ErrorCode, d.HTTPStatus
}

// jwks returns the workspace's public keys as go-jose reads them.
func jwks(t *testing.T, s *Service, tenant, server string) *jose.JSONWebKeySet {
	t.Helper()
	resp, err := s.GetJWKS(context.Background(), &tokenv1.GetJWKSRequest{TenantId: tenant, ServerId: server})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"keys": resp.Keys})
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("JWKS does not parse: %v", err)
	}
	return &set
}

// verify checks an access token's header and signature against the workspace's JWKS and returns its claims.
func verify(t *testing.T, s *Service, tenant, server, tok string) map[string]any {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("token does not parse: %v", err)
	}
	h := parsed.Headers[0]
	if h.Algorithm != "ES256" || h.ExtraHeaders[jose.HeaderType] != "at+jwt" || h.KeyID == "" {
		t.Fatalf("header: alg %q typ %v kid %q", h.Algorithm, h.ExtraHeaders[jose.HeaderType], h.KeyID)
	}
	var claims map[string]any
	if err := parsed.Claims(jwks(t, s, tenant, server), &claims); err != nil {
		t.Fatalf("signature does not verify against the JWKS: %v", err)
	}
	return claims
}

func TestClientCredentialsIssuesVerifiableAccessToken(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newHarness(t, url)
		ctx := context.Background()
		before := time.Now().Unix()
		resp, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", ""))
		if err != nil {
			t.Fatal(err)
		}
		if resp.TokenType != "Bearer" || resp.ExpiresIn != 3600 || resp.Scope != "orders.read orders.write" || resp.RefreshToken != "" {
			t.Fatalf("response: %+v", resp)
		}
		claims := verify(t, h.svc, "acme", "orders", resp.AccessToken)
		var names []string
		for k := range claims {
			names = append(names, k)
		}
		sort.Strings(names)
		if got := strings.Join(names, " "); got != "aid aud client_id exp iat iss jti scope sub tid" {
			t.Fatalf("claims are %s", got)
		}
		want := map[string]any{
			"iss": "http://localhost:8080/acme/orders", "sub": "cli-1", "client_id": "cli-1",
			"scope": "orders.read orders.write", "tid": "acme", "aid": "orders",
		}
		for k, v := range want {
			if claims[k] != v {
				t.Errorf("claim %s = %v, want %v", k, claims[k], v)
			}
		}
		if aud, _ := claims["aud"].([]any); len(aud) != 1 || aud[0] != "cli-1" {
			t.Errorf("aud = %v, want [cli-1]", claims["aud"])
		}
		iat := int64(claims["iat"].(float64))
		if iat < before || iat > time.Now().Unix() || int64(claims["exp"].(float64)) != iat+3600 {
			t.Errorf("iat %v exp %v", claims["iat"], claims["exp"])
		}
		second, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", ""))
		if err != nil {
			t.Fatal(err)
		}
		if verify(t, h.svc, "acme", "orders", second.AccessToken)["jti"] == claims["jti"] {
			t.Error("two tokens share a jti")
		}
	})
}

func TestClientCredentialsScopesAndLifetimes(t *testing.T) {
	h := newHarness(t, sqliteURL(t))
	h.clients.putPolicy(&clientv1.TokenPolicy{
		Id: "webhooks", TenantId: "acme", AccessTokenTtl: durationpb.New(10 * time.Minute),
		AllowedScopes: []string{"*:webhooks/**", "reports.*"},
	})
	h.clients.put(&clientv1.Client{
		ClientId: "hooks", TenantId: "acme", AuthorizationServerId: "orders", GrantTypes: []string{"client_credentials"},
		Scopes: []string{"orders.read"}, Audience: []string{"https://api.example", "https://other.example"},
		TokenPolicyId: "webhooks", ClientSecret: proto.String("hooks-secret"),
	})
	h.clients.put(&clientv1.Client{
		ClientId: "bare", TenantId: "acme", AuthorizationServerId: "orders", GrantTypes: []string{"client_credentials"},
		ClientSecret: proto.String("bare-secret"),
	})
	tests := []struct {
		name, client, secret, scope string
		wantScope                   string
		wantTTL                     int64
		wantErr                     string
	}{
		{"no scope gives the registered scopes", "cli-1", "secret-1", "", "orders.read orders.write", 3600, ""},
		{"a registered scope", "cli-1", "secret-1", "orders.write", "orders.write", 3600, ""},
		{"scopes echo the request's order", "cli-1", "secret-1", "orders.write orders.read", "orders.write orders.read", 3600, ""},
		{"an unregistered scope", "cli-1", "secret-1", "orders.read admin", "", 0, "invalid_scope"},
		{"a scope of the workspace the client lacks", "cli-1", "secret-1", "openid", "", 0, "invalid_scope"},
		{"a policy pattern grants an undefined scope", "hooks", "hooks-secret", "orders:webhooks/a/b", "orders:webhooks/a/b", 600, ""},
		{"registered and pattern scopes together", "hooks", "hooks-secret", "orders.read reports.daily", "orders.read reports.daily", 600, ""},
		{"a single star does not cross a slash", "hooks", "hooks-secret", "reports.daily/raw", "", 0, "invalid_scope"},
		{"the policy lifetime applies without scope", "hooks", "hooks-secret", "", "orders.read", 600, ""},
		{"a client without scopes gets an empty scope", "bare", "bare-secret", "", "", 3600, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.svc.Token(context.Background(), ccRequest(tc.client, tc.secret, tc.scope))
			if tc.wantErr != "" {
				if code, _ := oauthError(t, err); code != tc.wantErr {
					t.Fatalf("error %q, want %q", code, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Scope != tc.wantScope || resp.ExpiresIn != tc.wantTTL {
				t.Fatalf("scope %q expires_in %d, want %q %d", resp.Scope, resp.ExpiresIn, tc.wantScope, tc.wantTTL)
			}
			claims := verify(t, h.svc, "acme", "orders", resp.AccessToken)
			if claims["scope"] != tc.wantScope {
				t.Errorf("scope claim %v", claims["scope"])
			}
			if exp, iat := claims["exp"].(float64), claims["iat"].(float64); int64(exp-iat) != tc.wantTTL {
				t.Errorf("exp-iat = %v", exp-iat)
			}
			if tc.client == "hooks" {
				if aud, _ := claims["aud"].([]any); len(aud) != 2 || aud[0] != "https://api.example" {
					t.Errorf("aud = %v", claims["aud"])
				}
			}
		})
	}
}

func TestTokenRequestErrorsComeInOrder(t *testing.T) {
	h := newHarness(t, sqliteURL(t))
	h.ws.put(&workspacev1.ServerMetadata{
		TenantId: "acme", ServerId: "narrow", GrantTypes: []string{"password"}, AccessTokenTtl: durationpb.New(time.Hour),
	})
	h.clients.put(&clientv1.Client{
		ClientId: "narrow-cli", TenantId: "acme", AuthorizationServerId: "narrow",
		GrantTypes: []string{"client_credentials", "password"}, ClientSecret: proto.String("s"),
	})
	h.clients.put(&clientv1.Client{
		ClientId: "pw-cli", TenantId: "acme", AuthorizationServerId: "orders",
		GrantTypes: []string{"password", "refresh_token"}, ClientSecret: proto.String("s"),
	})
	h.clients.put(&clientv1.Client{
		ClientId: "public", TenantId: "acme", AuthorizationServerId: "orders", TokenEndpointAuthMethod: "none",
		GrantTypes: []string{"client_credentials"},
	})
	with := func(mut func(r *tokenv1.TokenRequest)) *tokenv1.TokenRequest {
		r := ccRequest("cli-1", "secret-1", "")
		mut(r)
		return r
	}
	tests := []struct {
		name     string
		req      *tokenv1.TokenRequest
		wantCode string
		wantHTTP int
	}{
		{"missing grant_type", with(func(r *tokenv1.TokenRequest) { r.GrantType = ""; r.ClientSecret = "bad" }), "invalid_request", 400},
		{"unknown grant_type before client authentication", with(func(r *tokenv1.TokenRequest) { r.GrantType = "implicit"; r.ClientSecret = "bad" }), "unsupported_grant_type", 400},
		{"wrong secret", with(func(r *tokenv1.TokenRequest) { r.ClientSecret = "bad" }), "invalid_client", 401},
		{"no secret", with(func(r *tokenv1.TokenRequest) { r.ClientSecret = "" }), "invalid_client", 401},
		{"unknown client", with(func(r *tokenv1.TokenRequest) { r.ClientId = "nobody" }), "invalid_client", 401},
		{"no client id", with(func(r *tokenv1.TokenRequest) { r.ClientId = "" }), "invalid_client", 401},
		{"client id with a slash", with(func(r *tokenv1.TokenRequest) { r.ClientId = "cli-1/x" }), "invalid_client", 401},
		{"client of another workspace", with(func(r *tokenv1.TokenRequest) { r.ServerId = "narrow" }), "invalid_client", 401},
		{"client lacks the grant", with(func(r *tokenv1.TokenRequest) { r.GrantType = "password" }), "unauthorized_client", 400},
		{"client lacks refresh_token", with(func(r *tokenv1.TokenRequest) { r.GrantType = "refresh_token" }), "unauthorized_client", 400},
		{"workspace lacks the grant", &tokenv1.TokenRequest{TenantId: "acme", ServerId: "narrow", GrantType: "client_credentials", ClientId: "narrow-cli", ClientSecret: "s"}, "unauthorized_client", 400},
		{"password grant without identity sources", &tokenv1.TokenRequest{TenantId: "acme", ServerId: "orders", GrantType: "password", ClientId: "pw-cli", ClientSecret: "s", Username: "u", Password: "p"}, "invalid_grant", 400},
		{"password grant without a username", &tokenv1.TokenRequest{TenantId: "acme", ServerId: "orders", GrantType: "password", ClientId: "pw-cli", ClientSecret: "s", Password: "p"}, "invalid_request", 400},
		{"refresh_token grant with an unknown token", &tokenv1.TokenRequest{TenantId: "acme", ServerId: "orders", GrantType: "refresh_token", ClientId: "pw-cli", ClientSecret: "s", RefreshToken: "x"}, "invalid_grant", 400},
		{"refresh_token grant without a token", &tokenv1.TokenRequest{TenantId: "acme", ServerId: "orders", GrantType: "refresh_token", ClientId: "pw-cli", ClientSecret: "s"}, "invalid_request", 400},
		{"public client cannot use client_credentials", &tokenv1.TokenRequest{TenantId: "acme", ServerId: "orders", GrantType: "client_credentials", ClientId: "public", ClientAuthMethod: tokenv1.ClientAuthMethod_CLIENT_AUTH_METHOD_NONE}, "unauthorized_client", 400},
		{"scope not allowed", with(func(r *tokenv1.TokenRequest) { r.Scope = "orders.delete" }), "invalid_scope", 400},
		{"unknown workspace", with(func(r *tokenv1.TokenRequest) { r.ServerId = "nope" }), "not_found", 404},
		{"unknown tenant", with(func(r *tokenv1.TokenRequest) { r.TenantId = "nope" }), "not_found", 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.svc.Token(context.Background(), tc.req)
			code, httpStatus := oauthError(t, err)
			if code != tc.wantCode || httpStatus != tc.wantHTTP {
				t.Fatalf("got %s (%d), want %s (%d): %v", code, httpStatus, tc.wantCode, tc.wantHTTP, err)
			}
		})
	}
}

func TestRotatedSecretIsRefusedAtOnceThoughTheOldOneWasCached(t *testing.T) {
	h := newHarness(t, sqliteURL(t))
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", "")); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.clients.calls.Load(); n != 1 {
		t.Fatalf("the client service was asked %d times for three requests, want 1 (cached)", n)
	}
	// A wrong secret misses the cache and is refused, without evicting the good entry.
	if _, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-2", "")); err == nil {
		t.Fatal("an unknown secret was accepted")
	}
	calls := h.clients.calls.Load()
	if _, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", "")); err != nil || h.clients.calls.Load() != calls {
		t.Fatalf("the cached authentication was lost after a wrong secret (err %v)", err)
	}

	// Rotate as the client service does: change, then announce.
	h.clients.put(&clientv1.Client{
		ClientId: "cli-1", TenantId: "acme", AuthorizationServerId: "orders", GrantTypes: []string{"client_credentials"},
		Scopes: []string{"orders.read", "orders.write"}, ClientSecret: proto.String("secret-2"),
	})
	h.bus.Publish(ctx, changes.Clients, changes.Key("acme", "cli-1"))
	if code, _ := oauthError(t, second(h.svc.Token(ctx, ccRequest("cli-1", "secret-1", "")))); code != "invalid_client" {
		t.Fatalf("the old secret gave %s after rotation, want invalid_client", code)
	}
	if _, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-2", "")); err != nil {
		t.Fatalf("the new secret: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestCachedDecisionsFollowAnnouncedChanges(t *testing.T) {
	h := newHarness(t, sqliteURL(t))
	ctx := context.Background()
	h.clients.putPolicy(&clientv1.TokenPolicy{Id: "p", TenantId: "acme", AllowedScopes: []string{"extra.*"}})
	h.clients.put(&clientv1.Client{
		ClientId: "cli-2", TenantId: "acme", AuthorizationServerId: "orders", GrantTypes: []string{"client_credentials"},
		TokenPolicyId: "p", ClientSecret: proto.String("s2"),
	})
	req := func(scope string) *tokenv1.TokenRequest { r := ccRequest("cli-2", "s2", scope); return r }
	if _, err := h.svc.Token(ctx, req("extra.one")); err != nil {
		t.Fatal(err)
	}

	// The policy narrows: announced on the policies topic, keyed by the policy.
	h.clients.putPolicy(&clientv1.TokenPolicy{Id: "p", TenantId: "acme", AllowedScopes: []string{"other.*"}})
	h.bus.Publish(ctx, changes.Policies, changes.Key("acme", "p"))
	if code, _ := oauthError(t, second(h.svc.Token(ctx, req("extra.one")))); code != "invalid_scope" {
		t.Fatalf("after the policy change: %s, want invalid_scope", code)
	}

	// The workspace stops offering client_credentials.
	h.ws.put(&workspacev1.ServerMetadata{TenantId: "acme", ServerId: "orders", GrantTypes: []string{"password"}, AccessTokenTtl: durationpb.New(time.Hour)})
	h.bus.Publish(ctx, changes.Servers, changes.Key("acme", "orders"))
	if code, _ := oauthError(t, second(h.svc.Token(ctx, req("other.x")))); code != "unauthorized_client" {
		t.Fatalf("after the workspace change: %s, want unauthorized_client", code)
	}

	// A workspace created after a request found it missing is seen as soon as it is announced.
	newReq := &tokenv1.TokenRequest{TenantId: "acme", ServerId: "late", GrantType: "client_credentials", ClientId: "late-cli", ClientSecret: "s"}
	if code, _ := oauthError(t, second(h.svc.Token(ctx, newReq))); code != "not_found" {
		t.Fatalf("unknown workspace: %s", code)
	}
	h.ws.put(&workspacev1.ServerMetadata{TenantId: "acme", ServerId: "late", GrantTypes: []string{"client_credentials"}, AccessTokenTtl: durationpb.New(time.Hour)})
	h.clients.put(&clientv1.Client{ClientId: "late-cli", TenantId: "acme", AuthorizationServerId: "late", GrantTypes: []string{"client_credentials"}, ClientSecret: proto.String("s")})
	h.bus.Publish(ctx, changes.Servers, changes.Key("acme", "late"))
	if _, err := h.svc.Token(ctx, newReq); err != nil {
		t.Fatalf("after the workspace was announced: %v", err)
	}

	// The client is deleted: its tenant-wide announcement drops it too.
	h.clients.mu.Lock()
	delete(h.clients.clients, "acme/late-cli")
	h.clients.mu.Unlock()
	h.bus.Publish(ctx, changes.Clients, changes.TenantKey("acme"))
	if code, _ := oauthError(t, second(h.svc.Token(ctx, newReq))); code != "invalid_client" {
		t.Fatalf("after the client was deleted: %s, want invalid_client", code)
	}
}

func TestWarmIssuanceTouchesNoDatabaseAndNoOtherService(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newHarness(t, url)
		ctx := context.Background()
		if _, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", "")); err != nil {
			t.Fatal(err)
		}
		queries := countQueries(t, h.db)
		wsCalls, clientCalls := h.ws.calls.Load(), h.clients.calls.Load()
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					if _, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", "orders.read")); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if n := queries.n.Load(); n != 0 {
			t.Errorf("200 warm token requests ran %d database statements, want 0", n)
		}
		if h.ws.calls.Load() != wsCalls || h.clients.calls.Load() != clientCalls {
			t.Errorf("warm token requests called other services: workspace %d→%d, client %d→%d",
				wsCalls, h.ws.calls.Load(), clientCalls, h.clients.calls.Load())
		}
		// The counter does see statements: a cold workspace's first token reads and writes its key.
		h.ws.put(&workspacev1.ServerMetadata{TenantId: "acme", ServerId: "cold", GrantTypes: []string{"client_credentials"}, AccessTokenTtl: durationpb.New(time.Hour)})
		h.clients.put(&clientv1.Client{ClientId: "cold-cli", TenantId: "acme", AuthorizationServerId: "cold", GrantTypes: []string{"client_credentials"}, ClientSecret: proto.String("s")})
		if _, err := h.svc.Token(ctx, &tokenv1.TokenRequest{TenantId: "acme", ServerId: "cold", GrantType: "client_credentials", ClientId: "cold-cli", ClientSecret: "s"}); err != nil {
			t.Fatal(err)
		}
		if queries.n.Load() == 0 {
			t.Error("the query counter saw no statement for a cold workspace")
		}
	})
}

func TestSealedKeyOpensOnlyForItsOwnWorkspace(t *testing.T) {
	keyring := newKeyring(t)
	row, err := newKeyRow(keyring, "acme", "orders", "uid-1", 1, algES256, stateCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openKey(keyring, row); err != nil {
		t.Fatalf("a key does not open for its own workspace: %v", err)
	}
	if strings.Contains(string(row.SealedPrivateJWK), `"d"`) {
		t.Fatal("the private key is stored in the clear")
	}
	moved := func(mut func(r *keyRow)) *keyRow { c := *row; mut(&c); return &c }
	tests := []struct {
		name string
		row  *keyRow
	}{
		{"another workspace of the tenant", moved(func(r *keyRow) { r.ServerID = "billing" })},
		{"the same workspace name in another tenant", moved(func(r *keyRow) { r.TenantID = "evil" })},
		{"another kid", moved(func(r *keyRow) { r.KID = "other" })},
		{"another incarnation of the workspace", moved(func(r *keyRow) { r.ServerUID = "uid-2" })},
		{"a key of no incarnation", moved(func(r *keyRow) { r.ServerUID = "" })},
		{"boundary shift between tenant and workspace", moved(func(r *keyRow) { r.TenantID, r.ServerID = "acme\x00orders", "" })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := openKey(keyring, tc.row); err == nil {
				t.Fatal("a sealed key opened for another workspace")
			}
		})
	}
	t.Run("another master key", func(t *testing.T) {
		if _, err := openKey(newKeyring(t), row); err == nil {
			t.Fatal("a sealed key opened under another master key")
		}
	})
}

func TestConcurrentKeyCreationEndsWithOneKey(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		// Two token services on one database, as two processes would be.
		a := newHarness(t, url)
		b := &harness{db: a.db, bus: changes.NewMemory(), ws: a.ws, clients: a.clients}
		deps := a.deps
		deps.DB, deps.Bus = openDB(t, url), b.bus
		var err error
		if b.svc, err = New(context.Background(), deps); err != nil {
			t.Fatal(err)
		}
		kids := make(chan string, 16)
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			s := a.svc
			if i%2 == 1 {
				s = b.svc
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := s.GetJWKS(context.Background(), &tokenv1.GetJWKSRequest{TenantId: "acme", ServerId: "orders"})
				if err != nil {
					t.Error(err)
					return
				}
				if len(resp.Keys) != 2 {
					t.Errorf("%d keys, want the current and the next", len(resp.Keys))
					return
				}
				kids <- resp.Keys[0].Kid + " " + resp.Keys[1].Kid
			}()
		}
		wg.Wait()
		close(kids)
		seen := map[string]bool{}
		for k := range kids {
			seen[k] = true
		}
		var rows int64
		if err := a.db.Table("token_signing_keys").Count(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(seen) != 1 || rows != 2 {
			t.Fatalf("%d key sets served, %d rows stored; want one pair", len(seen), rows)
		}
		// And a token signed by one verifies with the other's JWKS.
		resp, err := b.svc.Token(context.Background(), ccRequest("cli-1", "secret-1", ""))
		if err != nil {
			t.Fatal(err)
		}
		verify(t, a.svc, "acme", "orders", resp.AccessToken)
	})
}

func TestJWKS(t *testing.T) {
	h := newHarness(t, sqliteURL(t))
	ctx := context.Background()
	resp, err := h.svc.GetJWKS(ctx, &tokenv1.GetJWKSRequest{TenantId: "acme", ServerId: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Keys) != 2 {
		t.Fatalf("%d keys, want the current and the next", len(resp.Keys))
	}
	k := resp.Keys[0]
	if k.Kty != "EC" || k.Crv != "P-256" || k.Alg != "ES256" || k.Use != "sig" || k.Kid == "" || k.X == "" || k.Y == "" {
		t.Fatalf("key %+v", k)
	}
	raw, _ := json.Marshal(k)
	if strings.Contains(string(raw), `"d"`) {
		t.Fatal("the JWKS holds private material")
	}
	for _, tc := range []struct{ name, tenant, server string }{
		{"unknown workspace", "acme", "nope"},
		{"unknown tenant", "nope", "orders"},
		{"empty workspace", "acme", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.svc.GetJWKS(ctx, &tokenv1.GetJWKSRequest{TenantId: tc.tenant, ServerId: tc.server})
			if d := apierr.Describe(err); err == nil || d.HTTPStatus != http.StatusNotFound {
				t.Fatalf("got %v, want 404", err)
			}
		})
	}
	var rows int64
	h.db.Table("token_signing_keys").Count(&rows)
	if rows != 2 {
		t.Fatalf("%d keys stored, want 2 (the workspace's current and next; none for unknown workspaces)", rows)
	}
}

func TestDeletedKeysStopVerifyingAtOnce(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newHarness(t, url)
		ctx := context.Background()
		source := func(ctx context.Context, tenant, server string) (*jose.JSONWebKeySet, error) {
			resp, err := h.svc.GetJWKS(ctx, &tokenv1.GetJWKSRequest{TenantId: tenant, ServerId: server})
			if err != nil {
				return nil, err
			}
			raw, _ := json.Marshal(map[string]any{"keys": resp.Keys})
			var set jose.JSONWebKeySet
			return &set, json.Unmarshal(raw, &set)
		}
		verifier := authz.NewVerifier(issuerBase, source, h.bus)
		issue := func() string {
			resp, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", ""))
			if err != nil {
				t.Fatal(err)
			}
			return resp.AccessToken
		}
		old := issue()
		if _, err := verifier.Verify(ctx, old); err != nil {
			t.Fatalf("a fresh token does not verify: %v", err)
		}
		oldKid := jwks(t, h.svc, "acme", "orders").Keys[0].KeyID

		if _, err := h.svc.DeleteServerKeys(ctx, &tokenv1.DeleteServerKeysRequest{TenantId: "acme", ServerId: "orders"}); err != nil {
			t.Fatal(err)
		}
		if _, err := verifier.Verify(ctx, old); err == nil {
			t.Fatal("a token signed with a deleted key still verifies")
		}
		fresh := issue()
		if kid := jwks(t, h.svc, "acme", "orders").Keys[0].KeyID; kid == oldKid {
			t.Fatal("the deleted key is still served")
		}
		if _, err := verifier.Verify(ctx, fresh); err != nil {
			t.Fatalf("a token of the new key does not verify: %v", err)
		}

		// The tenant goes: its workspaces first (announced), then its keys.
		h.ws.mu.Lock()
		clear(h.ws.servers)
		h.ws.mu.Unlock()
		h.bus.Publish(ctx, changes.Servers, changes.TenantKey("acme"))
		if _, err := h.svc.DeleteTenantData(ctx, &tokenv1.DeleteTenantDataRequest{TenantId: "acme"}); err != nil {
			t.Fatal(err)
		}
		if _, err := verifier.Verify(ctx, fresh); err == nil {
			t.Fatal("a token of a deleted tenant still verifies")
		}
		var rows int64
		h.db.Table("token_signing_keys").Where("tenant_id = ?", "acme").Count(&rows)
		if rows != 0 {
			t.Fatalf("%d keys left after the tenant's data was deleted", rows)
		}
		if _, err := h.svc.DeleteTenantData(ctx, &tokenv1.DeleteTenantDataRequest{TenantId: platform.RootTenant}); err == nil {
			t.Fatal("the root tenant's keys were deletable")
		}
	})
}

func TestTokenMetrics(t *testing.T) {
	h := newHarness(t, sqliteURL(t))
	ctx := context.Background()
	_, _ = h.svc.Token(ctx, ccRequest("cli-1", "secret-1", ""))
	_, _ = h.svc.Token(ctx, ccRequest("cli-1", "wrong", ""))
	_, _ = h.svc.Token(ctx, &tokenv1.TokenRequest{TenantId: "junk", ServerId: "junk", GrantType: "client_credentials"})
	families, err := h.deps.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			if v := m.GetCounter().GetValue(); v > 0 {
				got[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
			}
		}
	}
	if got["authplane_tokens_issued_total{client_credentials,acme,orders}"] != 1 {
		t.Errorf("issued counter missing: %v", got)
	}
	if got["authplane_token_errors_total{invalid_client,acme,orders}"] != 1 {
		t.Errorf("error counter missing: %v", got)
	}
	for k := range got {
		if strings.Contains(k, "junk") {
			t.Errorf("a request for an unknown workspace created series %s", k)
		}
	}
}

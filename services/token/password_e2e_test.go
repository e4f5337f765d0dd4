package token_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/testenv"
)

// These tests drive the resource owner password grant, ID tokens and userinfo through the whole process
// (testenv), with real identity pools and, in external_e2e_test.go, external verifiers.

const (
	ropcWS       = "pool-demo-workspace"
	ropcPool     = "pool-demo-identity-pool"
	janePassword = "S3cure-pass!word"
)

// ropcWorld is a tenant with a workspace whose identity source is a pool holding jane, and its clients.
type ropcWorld struct {
	env               *testenv.Env
	tn                *testenv.Tenant
	jane              string // user id
	appID, appSecret  string // confidential: password + refresh_token, openid profile email phone offline_access
	pubID             string // public: password + refresh_token, openid offline_access
	ccID, ccSecret    string // client_credentials only
	bareID, bareScret string // password only, scope profile (no openid)
}

func (w *ropcWorld) issuer() string { return w.env.Issuer(w.tn.ID, ropcWS) }

// call is CallJSON that fails the test unless the status is want.
func call(t *testing.T, env *testenv.Env, method, path, token string, body, out any, want int) {
	t.Helper()
	if code := env.CallJSON(t, method, path, token, body, out); code != want {
		t.Fatalf("%s %s: status %d, want %d", method, path, code, want)
	}
}

func newROPCWorld(t *testing.T, env *testenv.Env, tenant string) *ropcWorld {
	t.Helper()
	w := &ropcWorld{env: env, tn: env.NewTenant(t, tenant)}
	ad, id := "/api/admin/"+tenant, "/api/identity/"+tenant+"/system"
	call(t, env, "POST", ad+"/servers", w.tn.AdminToken, map[string]any{"id": ropcWS, "name": "Pool demo",
		"grant_types": []string{"password", "refresh_token", "client_credentials"}, "id_token_ttl": "600s"}, nil, http.StatusCreated)
	call(t, env, "POST", id+"/schemas", w.tn.SystemToken, map[string]any{"id": "pool-demo-schema", "name": "Demo user",
		"schema": map[string]any{"type": "object", "properties": map[string]any{
			"given_name": map[string]any{"type": "string"}, "family_name": map[string]any{"type": "string"}}}}, nil, http.StatusCreated)
	call(t, env, "POST", id+"/pools", w.tn.SystemToken, map[string]any{"id": ropcPool, "name": "Demo pool",
		"payload_schema_id": "pool-demo-schema", "authentication_mechanisms": []string{"password"}}, nil, http.StatusCreated)
	w.jane = w.createUser(t, "active", "jane@example.com", janePassword, map[string]any{"given_name": "Jane", "family_name": "Doe"})
	var idp struct{ ID string }
	call(t, env, "POST", ad+"/servers/"+ropcWS+"/idps/identity_pool", w.tn.AdminToken,
		map[string]any{"name": "Demo pool", "identity_pool_id": ropcPool}, &idp, http.StatusCreated)
	w.appID, w.appSecret = env.CreateClient(t, tenant, w.tn.AdminToken, map[string]any{"authorization_server_id": ropcWS,
		"client_name": "demo app", "grant_types": []string{"password", "refresh_token"}, "token_endpoint_auth_method": "client_secret_basic",
		"scopes": []string{"openid", "profile", "email", "phone", "offline_access"}})
	w.pubID, _ = env.CreateClient(t, tenant, w.tn.AdminToken, map[string]any{"authorization_server_id": ropcWS,
		"client_name": "mobile", "grant_types": []string{"password", "refresh_token"}, "token_endpoint_auth_method": "none",
		"scopes": []string{"openid", "offline_access"}})
	w.ccID, w.ccSecret = env.CreateClient(t, tenant, w.tn.AdminToken, map[string]any{"authorization_server_id": ropcWS,
		"client_name": "cc only", "grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_basic"})
	w.bareID, w.bareScret = env.CreateClient(t, tenant, w.tn.AdminToken, map[string]any{"authorization_server_id": ropcWS,
		"client_name": "no openid", "grant_types": []string{"password"}, "token_endpoint_auth_method": "client_secret_post",
		"scopes": []string{"profile"}})
	return w
}

// createUser adds a user to the pool and returns its id.
func (w *ropcWorld) createUser(t *testing.T, status, email, password string, payload map[string]any) string {
	t.Helper()
	var u struct{ ID string }
	call(t, w.env, "POST", "/api/identity/"+w.tn.ID+"/system/pools/"+ropcPool+"/users", w.tn.SystemToken, map[string]any{
		"status": status, "identifiers": []map[string]string{{"type": "email", "identifier": email}},
		"credentials": []map[string]string{{"type": "password", "password": password}}, "payload": payload,
	}, &u, http.StatusCreated)
	return u.ID
}

// pwAnswer is a token endpoint answer, success or error.
type pwAnswer struct {
	status       int
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// passwordGrant posts a password grant form; with a secret the client authenticates with Basic, else it sends
// client_id alone (a public client).
func passwordGrant(t *testing.T, w *ropcWorld, clientID, secret string, form url.Values) pwAnswer {
	t.Helper()
	form.Set("grant_type", "password")
	if secret == "" {
		form.Set("client_id", clientID)
	}
	req, _ := http.NewRequest("POST", w.issuer()+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := w.env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := pwAnswer{status: resp.StatusCode}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("token endpoint answered %d %q", resp.StatusCode, raw)
	}
	if a.status == http.StatusOK && !strings.Contains(resp.Header.Get("Cache-Control"), "no-store") {
		t.Errorf("token response without Cache-Control: no-store")
	}
	return a
}

func login(user, password, scope string) url.Values {
	v := url.Values{"username": {user}, "password": {password}}
	if scope != "" {
		v.Set("scope", scope)
	}
	return v
}

// accessClaims verifies an access token against the workspace's JWKS and returns its claims.
func accessClaims(t *testing.T, w *ropcWorld, tok string) map[string]any {
	t.Helper()
	return verifiedClaims(t, w.env, w.tn.ID, ropcWS, tok)
}

// verifiedClaims verifies an access token against a workspace's JWKS and returns its claims.
func verifiedClaims(t *testing.T, env *testenv.Env, tenant, ws, tok string) map[string]any {
	t.Helper()
	var set jose.JSONWebKeySet
	call(t, env, "GET", "/"+tenant+"/"+ws+"/.well-known/jwks.json", "", nil, &set, http.StatusOK)
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	if typ := parsed.Headers[0].ExtraHeaders[jose.HeaderType]; typ != "at+jwt" {
		t.Errorf("access token typ %v, want at+jwt", typ)
	}
	var claims map[string]any
	if err := parsed.Claims(&set, &claims); err != nil {
		t.Fatalf("access token does not verify against the JWKS: %v", err)
	}
	return claims
}

// idTokenVerifier is go-oidc's verifier for the workspace, from its discovery document.
func idTokenVerifier(t *testing.T, w *ropcWorld, clientID string) *oidc.IDTokenVerifier {
	t.Helper()
	return idTokenVerifierAt(t, w.env, w.tn.ID, ropcWS, clientID)
}

func idTokenVerifierAt(t *testing.T, env *testenv.Env, tenant, ws, clientID string) *oidc.IDTokenVerifier {
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), env.HTTP)
	p, err := oidc.NewProvider(ctx, env.Issuer(tenant, ws))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return p.Verifier(&oidc.Config{ClientID: clientID})
}

// userinfo calls GET {issuer}/userinfo with a Bearer token and returns the status, the claims and the response.
func userinfo(t *testing.T, w *ropcWorld, method, tok string) (int, map[string]any, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest(method, w.issuer()+"/userinfo", nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := w.env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp
}

func TestPasswordGrant(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		w := newROPCWorld(t, env, "acme")

		t.Run("golang.org/x/oauth2 gets access, refresh and ID tokens", func(t *testing.T) {
			cfg := oauth2.Config{ClientID: w.appID, ClientSecret: w.appSecret, Scopes: []string{"openid", "profile", "email", "offline_access"},
				Endpoint: oauth2.Endpoint{TokenURL: w.issuer() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
			ctx := context.WithValue(context.Background(), oauth2.HTTPClient, env.HTTP)
			tok, err := cfg.PasswordCredentialsToken(ctx, "jane@example.com", janePassword)
			if err != nil {
				t.Fatal(err)
			}
			if tok.RefreshToken == "" || tok.Extra("id_token") == nil || tok.Extra("scope") != "openid profile email offline_access" {
				t.Fatalf("refresh token %q, id_token %v, scope %v", tok.RefreshToken, tok.Extra("id_token") != nil, tok.Extra("scope"))
			}
			c := accessClaims(t, w, tok.AccessToken)
			if c["sub"] != w.jane || c["client_id"] != w.appID || c["tid"] != "acme" || c["aid"] != ropcWS || c["iss"] != w.issuer() || c["idp"] == nil {
				t.Errorf("access token claims %v", c)
			}
			if _, ok := c["extra_info"]; ok {
				t.Errorf("a pool user's access token has extra_info: %v", c)
			}

			idt, err := idTokenVerifier(t, w, w.appID).Verify(ctx, tok.Extra("id_token").(string))
			if err != nil {
				t.Fatalf("go-oidc refuses the ID token: %v", err)
			}
			var ic map[string]any
			if err := idt.Claims(&ic); err != nil {
				t.Fatal(err)
			}
			if idt.Subject != w.jane || ic["given_name"] != "Jane" || ic["family_name"] != "Doe" || ic["name"] != "Jane Doe" ||
				ic["email"] != "jane@example.com" || ic["email_verified"] != false {
				t.Errorf("ID token claims %v", ic)
			}
			if at, ok := ic["auth_time"].(float64); !ok || at <= 0 || idt.Expiry.Sub(idt.IssuedAt).Seconds() != 600 {
				t.Errorf("auth_time %v, lifetime %v (want the workspace's id_token_ttl, 600s)", ic["auth_time"], idt.Expiry.Sub(idt.IssuedAt))
			}
			if _, ok := ic["phone_number"]; ok {
				t.Errorf("phone claims without the phone scope: %v", ic)
			}
			raw, _ := jwt.ParseSigned(tok.Extra("id_token").(string), []jose.SignatureAlgorithm{jose.ES256})
			if typ := raw.Headers[0].ExtraHeaders[jose.HeaderType]; typ != "JWT" {
				t.Errorf("ID token typ %v, want JWT", typ)
			}
		})

		t.Run("scopes are granted as for client_credentials", func(t *testing.T) {
			a := passwordGrant(t, w, w.appID, w.appSecret, login("jane@example.com", janePassword, ""))
			if a.status != 200 || a.Scope != "openid profile email phone offline_access" || a.IDToken == "" {
				t.Errorf("no scope requested: %d %q id_token=%v", a.status, a.Scope, a.IDToken != "")
			}
			a = passwordGrant(t, w, w.appID, w.appSecret, login("jane@example.com", janePassword, "email"))
			if a.status != 200 || a.Scope != "email" || a.IDToken != "" {
				t.Errorf("scope email: %d %q, an ID token without openid: %v", a.status, a.Scope, a.IDToken != "")
			}
			a = passwordGrant(t, w, w.appID, w.appSecret, login("jane@example.com", janePassword, "openid orders.delete"))
			if a.status != 400 || a.Error != "invalid_scope" {
				t.Errorf("a scope the client lacks: %d %s", a.status, a.Error)
			}
		})

		t.Run("the answer never tells which users exist", func(t *testing.T) {
			w.createUser(t, "inactive", "sleepy@example.com", janePassword, map[string]any{"given_name": "Sleepy"})
			cases := []struct{ name, user, password string }{
				{"wrong password", "jane@example.com", "wrong-password-1"},
				{"unknown user", "nobody@example.com", "wrong-password-1"},
				{"inactive user, right password", "sleepy@example.com", janePassword},
				{"identifier of another type", "+14155550100", janePassword},
			}
			var first pwAnswer
			for i, c := range cases {
				a := passwordGrant(t, w, w.appID, w.appSecret, login(c.user, c.password, ""))
				if a.status != 400 || a.Error != "invalid_grant" || a.AccessToken != "" {
					t.Errorf("%s: %d %s", c.name, a.status, a.Error)
				}
				if i == 0 {
					first = a
				} else if a.Description != first.Description {
					t.Errorf("%s: description %q differs from %q", c.name, a.Description, first.Description)
				}
			}
			for _, c := range []struct{ name, user, password string }{{"no password", "jane@example.com", ""}, {"no username", "", "x"}} {
				if a := passwordGrant(t, w, w.appID, w.appSecret, login(c.user, c.password, "")); a.status != 400 || a.Error != "invalid_request" {
					t.Errorf("%s: %d %s, want invalid_request", c.name, a.status, a.Error)
				}
			}
		})

		t.Run("lockout through the grant", func(t *testing.T) {
			target := w.createUser(t, "active", "target@example.com", "Corr3ct-horse-battery", map[string]any{"given_name": "T"})
			var wrong pwAnswer
			for i := range 11 {
				wrong = passwordGrant(t, w, w.appID, w.appSecret, login("target@example.com", "guess-"+string(rune('a'+i)), ""))
			}
			a := passwordGrant(t, w, w.appID, w.appSecret, login("target@example.com", "Corr3ct-horse-battery", ""))
			if a.status != 400 || a.Error != "invalid_grant" || a.Description != wrong.Description {
				t.Errorf("locked user with the right password: %d %s %q (a wrong guess said %q)", a.status, a.Error, a.Description, wrong.Description)
			}
			var v struct{ Result string }
			call(t, env, "POST", "/api/identity/acme/system/pools/"+ropcPool+"/user/password/verify", w.tn.SystemToken,
				map[string]string{"identifier": "target@example.com", "password": "Corr3ct-horse-battery"}, &v, http.StatusOK)
			if v.Result != "account_locked" {
				t.Errorf("verify API after the grant's failures: %q, want account_locked", v.Result)
			}
			if a := passwordGrant(t, w, w.appID, w.appSecret, login("jane@example.com", janePassword, "")); a.status != 200 {
				t.Errorf("another user is refused: %d %s", a.status, a.Error)
			}
			call(t, env, "POST", "/api/identity/acme/system/pools/"+ropcPool+"/users/"+target+"/unlock", w.tn.SystemToken, map[string]any{}, nil, http.StatusOK)
			if a := passwordGrant(t, w, w.appID, w.appSecret, login("target@example.com", "Corr3ct-horse-battery", "")); a.status != 200 {
				t.Errorf("unlocked user is refused: %d %s", a.status, a.Error)
			}
		})

		t.Run("a public client authenticates with client_id alone", func(t *testing.T) {
			a := passwordGrant(t, w, w.pubID, "", login("jane@example.com", janePassword, "openid offline_access"))
			if a.status != 200 || a.AccessToken == "" || a.IDToken == "" || a.RefreshToken == "" {
				t.Fatalf("public client: %d %s", a.status, a.Error)
			}
			if _, err := idTokenVerifier(t, w, w.pubID).Verify(context.Background(), a.IDToken); err != nil {
				t.Errorf("public client's ID token: %v", err)
			}
		})

		t.Run("clients and requests the grant refuses", func(t *testing.T) {
			if a := passwordGrant(t, w, w.ccID, w.ccSecret, login("jane@example.com", janePassword, "")); a.status != 400 || a.Error != "unauthorized_client" {
				t.Errorf("client without the password grant: %d %s", a.status, a.Error)
			}
			if a := passwordGrant(t, w, w.appID, "wrong", login("jane@example.com", janePassword, "")); a.status != 401 || a.Error != "invalid_client" {
				t.Errorf("wrong client secret: %d %s", a.status, a.Error)
			}
			form := login("jane@example.com", janePassword, "")
			form.Set("client_secret", w.bareScret)
			form.Set("client_id", w.bareID)
			if a := passwordGrant(t, w, w.bareID, w.bareScret, form); a.status != 400 || a.Error != "invalid_request" {
				t.Errorf("Basic and client_secret together: %d %s", a.status, a.Error)
			}
		})

		t.Run("a client without refresh_token gets no refresh token", func(t *testing.T) {
			req, _ := http.NewRequest("POST", w.issuer()+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"password"},
				"client_id": {w.bareID}, "client_secret": {w.bareScret}, "user_name": {"jane@example.com"}, "password": {janePassword}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := env.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var a pwAnswer
			_ = json.NewDecoder(resp.Body).Decode(&a)
			if resp.StatusCode != 200 || a.RefreshToken != "" || a.IDToken != "" || a.Scope != "profile" {
				t.Errorf("user_name with client_secret_post: %d %s, refresh %q, id_token %v, scope %q", resp.StatusCode, a.Error, a.RefreshToken, a.IDToken != "", a.Scope)
			}
		})

		t.Run("discovery lists the password grant and the userinfo endpoint", func(t *testing.T) {
			var d struct {
				Grants   []string `json:"grant_types_supported"`
				Userinfo string   `json:"userinfo_endpoint"`
				Algs     []string `json:"id_token_signing_alg_values_supported"`
			}
			call(t, env, "GET", "/acme/"+ropcWS+"/.well-known/openid-configuration", "", nil, &d, http.StatusOK)
			if !strings.Contains(strings.Join(d.Grants, " "), "password") || d.Userinfo != w.issuer()+"/userinfo" || len(d.Algs) == 0 || d.Algs[0] != "ES256" {
				t.Errorf("discovery: %+v", d)
			}
		})

		t.Run("userinfo", func(t *testing.T) {
			a := passwordGrant(t, w, w.appID, w.appSecret, login("jane@example.com", janePassword, "openid profile email"))
			code, out, _ := userinfo(t, w, "GET", a.AccessToken)
			if code != 200 || out["sub"] != w.jane || out["email"] != "jane@example.com" || out["given_name"] != "Jane" || out["name"] != "Jane Doe" {
				t.Errorf("GET userinfo: %d %v", code, out)
			}
			// Pool users' claims are read fresh.
			call(t, env, "PUT", "/api/identity/acme/system/pools/"+ropcPool+"/users/"+w.jane, w.tn.SystemToken,
				map[string]any{"payload": map[string]any{"given_name": "Janet", "family_name": "Doe"}}, nil, http.StatusOK)
			if code, out, _ := userinfo(t, w, "POST", a.AccessToken); code != 200 || out["given_name"] != "Janet" {
				t.Errorf("POST userinfo after a change of the user: %d %v", code, out)
			}
			// The form parameter access_token works as well (RFC 6750 section 2.2).
			resp, err := env.HTTP.PostForm(w.issuer()+"/userinfo", url.Values{"access_token": {a.AccessToken}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("userinfo with the token in the body: %d", resp.StatusCode)
			}

			b := passwordGrant(t, w, w.appID, w.appSecret, login("jane@example.com", janePassword, "openid"))
			if code, out, _ := userinfo(t, w, "GET", b.AccessToken); code != 200 || out["sub"] != w.jane || out["email"] != nil || out["given_name"] != nil {
				t.Errorf("openid alone releases only sub: %d %v", code, out)
			}

			noOpenID := passwordGrant(t, w, w.appID, w.appSecret, login("jane@example.com", janePassword, "email"))
			code, out, resp = userinfo(t, w, "GET", noOpenID.AccessToken)
			if code != 403 || out["error"] != "insufficient_scope" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
				t.Errorf("token without openid: %d %v %q", code, out, resp.Header.Get("WWW-Authenticate"))
			}
			for name, tok := range map[string]string{"garbage": "garbage", "an ID token": a.IDToken, "another workspace's token": w.tn.SystemToken} {
				code, out, resp := userinfo(t, w, "GET", tok)
				if code != 401 || out["error"] != "invalid_token" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `Bearer`) ||
					!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
					t.Errorf("%s: %d %v %q", name, code, out, resp.Header.Get("WWW-Authenticate"))
				}
			}
			if code, _, resp := userinfo(t, w, "GET", ""); code != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("no token: %d %q", code, resp.Header.Get("WWW-Authenticate"))
			}
			if code, _, _ := userinfo(t, w, "DELETE", a.AccessToken); code != 405 {
				t.Errorf("DELETE userinfo: %d", code)
			}

			// Revoked tokens are refused; so is a token of a deleted user.
			if code, _ := revoke(t, env, "acme", ropcWS, basic(w.appID, w.appSecret), b.AccessToken); code != 200 {
				t.Fatalf("revoke: %d", code)
			}
			if code, _, _ := userinfo(t, w, "GET", b.AccessToken); code != 401 {
				t.Errorf("revoked token: %d", code)
			}
			gone := w.createUser(t, "active", "gone@example.com", janePassword, map[string]any{"given_name": "Gone"})
			c := passwordGrant(t, w, w.appID, w.appSecret, login("gone@example.com", janePassword, "openid"))
			call(t, env, "DELETE", "/api/identity/acme/system/pools/"+ropcPool+"/users/"+gone, w.tn.SystemToken, nil, nil, http.StatusNoContent)
			if code, out, _ := userinfo(t, w, "GET", c.AccessToken); code != 401 || out["error"] != "invalid_token" {
				t.Errorf("deleted user's token: %d %v", code, out)
			}

			// The same over gRPC, with the token in the request or in the metadata.
			tokens := tokenv1.NewTokenServiceClient(env.GRPC)
			info, err := tokens.GetUserInfo(context.Background(), &tokenv1.GetUserInfoRequest{TenantId: "acme", ServerId: ropcWS, AccessToken: a.AccessToken})
			if err != nil || info.GetClaims().AsMap()["sub"] != w.jane {
				t.Errorf("gRPC GetUserInfo: %v %v", info, err)
			}
			info, err = tokens.GetUserInfo(testenv.WithToken(context.Background(), a.AccessToken), &tokenv1.GetUserInfoRequest{TenantId: "acme", ServerId: ropcWS})
			if err != nil || info.GetClaims().AsMap()["email"] != "jane@example.com" {
				t.Errorf("gRPC GetUserInfo with metadata: %v %v", info, err)
			}
		})
	})
}

package token_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/testenv"
)

// cred is how a test authenticates at the introspection and revocation endpoints.
type cred struct {
	basicID, basicSecret string // client_secret_basic
	postID, postSecret   string // client_secret_post
	bearer               string
}

func basic(id, secret string) cred { return cred{basicID: id, basicSecret: secret} }
func post(id, secret string) cred  { return cred{postID: id, postSecret: secret} }
func bearer(tok string) cred       { return cred{bearer: tok} }

// tokenManagement posts form to {issuer}/oauth2/{endpoint} and returns the status, the decoded JSON answer (if
// any) and the response.
func tokenManagement(t *testing.T, env *testenv.Env, tenant, server, endpoint string, c cred, form url.Values) (int, map[string]any, *http.Response) {
	t.Helper()
	if c.postID != "" {
		form.Set("client_id", c.postID)
		form.Set("client_secret", c.postSecret)
	}
	req, err := http.NewRequest("POST", env.Issuer(tenant, server)+"/oauth2/"+endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	switch {
	case c.basicID != "":
		req.SetBasicAuth(url.QueryEscape(c.basicID), url.QueryEscape(c.basicSecret))
	case c.bearer != "":
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s answer %q: %v", endpoint, raw, err)
		}
	}
	return resp.StatusCode, out, resp
}

func introspect(t *testing.T, env *testenv.Env, tenant, server string, c cred, tok string) (int, map[string]any) {
	t.Helper()
	code, out, resp := tokenManagement(t, env, tenant, server, "introspect", c, url.Values{"token": {tok}})
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("introspection headers: %v", resp.Header)
	}
	return code, out
}

func revoke(t *testing.T, env *testenv.Env, tenant, server string, c cred, tok string) (int, map[string]any) {
	t.Helper()
	code, out, resp := tokenManagement(t, env, tenant, server, "revoke", c, url.Values{"token": {tok}, "token_type_hint": {"access_token"}})
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("revocation headers: %v", resp.Header)
	}
	return code, out
}

// active tells an active introspection answer from `{"active":false}` and fails on anything else.
func active(t *testing.T, code int, out map[string]any) bool {
	t.Helper()
	if code != 200 {
		t.Fatalf("introspection: %d %v", code, out)
	}
	if out["active"] == false {
		if len(out) != 1 {
			t.Fatalf("an inactive answer says more than active: %v", out)
		}
		return false
	}
	return out["active"] == true
}

// isActive introspects tok as c and reports whether it is active.
func isActive(t *testing.T, env *testenv.Env, tenant, server string, c cred, tok string) bool {
	t.Helper()
	code, out := introspect(t, env, tenant, server, c, tok)
	return active(t, code, out)
}

func TestIntrospectionAndRevocationThroughTheRunningServer(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		admin := env.AdminToken(t, "acme")
		call := func(tenant, token, method, path string, body any) {
			t.Helper()
			if code := env.CallJSON(t, method, "/api/admin/"+tenant+path, token, body, nil); code/100 != 2 {
				t.Fatalf("%s %s: %d", method, path, code)
			}
		}
		for _, ws := range []string{"shop", "other"} {
			call("acme", admin, "POST", "/servers", map[string]any{"id": ws, "grant_types": []string{"client_credentials", "refresh_token"}})
			call("acme", admin, "POST", "/scopes", map[string]any{"authorization_server_id": ws, "name": "orders.read"})
		}
		call("acme", admin, "POST", "/token-policies", map[string]any{"id": "short", "access_token_ttl": "1s"})
		client := func(tenant, token, ws string, scopes []string, extra map[string]any) (string, string) {
			body := map[string]any{"authorization_server_id": ws, "grant_types": []string{"client_credentials"}, "scopes": scopes}
			for k, v := range extra {
				body[k] = v
			}
			return env.CreateClient(t, tenant, token, body)
		}
		appID, appSecret := client("acme", admin, "shop", []string{"orders.read"}, nil)
		peerID, peerSecret := client("acme", admin, "shop", []string{"orders.read"}, nil)
		rsID, rsSecret := client("acme", admin, "shop", []string{"orders.read", "introspect_tokens"}, nil)
		shortID, shortSecret := client("acme", admin, "shop", []string{"orders.read"}, map[string]any{"token_policy_id": "short"})
		otherID, otherSecret := client("acme", admin, "other", []string{"orders.read"}, nil)
		publicID, _ := client("acme", admin, "shop", nil, map[string]any{"grant_types": []string{"refresh_token"}, "token_endpoint_auth_method": "none"})
		globex := env.AdminToken(t, "globex")
		call("globex", globex, "POST", "/servers", map[string]any{"id": "shop", "grant_types": []string{"client_credentials"}})
		globexID, globexSecret := client("globex", globex, "shop", nil, nil)

		appTok := env.Token(t, "acme", "shop", appID, appSecret)
		peerTok := env.Token(t, "acme", "shop", peerID, peerSecret)
		rsTok := env.Token(t, "acme", "shop", rsID, rsSecret, "introspect_tokens")
		shortTok := env.Token(t, "acme", "shop", shortID, shortSecret)
		otherTok := env.Token(t, "acme", "other", otherID, otherSecret)
		globexTok := env.Token(t, "globex", "shop", globexID, globexSecret)
		app, rs := basic(appID, appSecret), basic(rsID, rsSecret)

		code, out := introspect(t, env, "acme", "shop", app, appTok)
		if !active(t, code, out) {
			t.Fatalf("a client's own token is inactive: %v", out)
		}
		want := map[string]any{
			"sub": appID, "client_id": appID, "scope": "orders.read", "iss": env.Issuer("acme", "shop"),
			"token_type": "Bearer", "tid": "acme", "aid": "shop",
		}
		for k, v := range want {
			if out[k] != v {
				t.Errorf("%s = %v, want %v", k, out[k], v)
			}
		}
		if aud, _ := out["aud"].([]any); len(aud) != 1 || aud[0] != appID {
			t.Errorf("aud = %v", out["aud"])
		}
		exp, _ := out["exp"].(float64)
		iat, _ := out["iat"].(float64)
		if jti, _ := out["jti"].(string); jti == "" || exp-iat != 3600 || time.Since(time.Unix(int64(iat), 0)) > time.Minute {
			t.Errorf("jti %v exp %v iat %v", out["jti"], exp, iat)
		}

		// Expiry is read from the token: wait until the short one is past it.
		time.Sleep(2100 * time.Millisecond)

		tampered := []byte(appTok)
		tampered[len(tampered)-5] ^= 0x01
		// The same signature over claims with more scope.
		parts := strings.Split(appTok, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.Replace(string(payload), `"scope":"orders.read"`, `"scope":"orders.read introspect_tokens"`, 1)
		if forged == string(payload) {
			t.Fatalf("payload %s", payload)
		}
		forgedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
		cases := []struct {
			name   string
			caller cred
			token  string
			active bool
		}{
			{"own token, client_secret_post", post(appID, appSecret), appTok, true},
			{"another client's token by a client with introspect_tokens", rs, peerTok, true},
			{"a Bearer token with introspect_tokens", bearer(rsTok), appTok, true},
			{"another client's token by a client without introspect_tokens", app, peerTok, false},
			{"a token of another workspace of the tenant", rs, otherTok, false},
			{"a token of the same workspace id in another tenant", rs, globexTok, false},
			{"a tampered signature", rs, string(tampered), false},
			{"a tampered payload", rs, forgedPayload, false},
			// Every check of an access token allows the same 30 s of clock skew (the verifier's unit tests cover
			// tokens beyond it).
			{"a token expired within the verifiers' leeway", rs, shortTok, true},
			{"garbage", rs, "not-a-token", false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				code, out := introspect(t, env, "acme", "shop", tc.caller, tc.token)
				if got := active(t, code, out); got != tc.active {
					t.Fatalf("active = %v, want %v (%v)", got, tc.active, out)
				}
			})
		}

		refusals := []struct {
			name       string
			caller     cred
			form       url.Values
			wantStatus int
			wantError  string
		}{
			{"no authentication", cred{}, url.Values{"token": {appTok}}, 401, "invalid_client"},
			{"a wrong secret", basic(appID, "wrong"), url.Values{"token": {appTok}}, 401, "invalid_client"},
			{"a client of another workspace", basic(otherID, otherSecret), url.Values{"token": {appTok}}, 401, "invalid_client"},
			{"a Bearer token of another workspace", bearer(otherTok), url.Values{"token": {appTok}}, 401, "invalid_token"},
			{"a Bearer token without introspect_tokens", bearer(appTok), url.Values{"token": {appTok}}, 403, "insufficient_scope"},
			{"no token", app, url.Values{}, 400, "invalid_request"},
		}
		for _, endpoint := range []string{"introspect", "revoke"} {
			t.Run(endpoint+" by a public client", func(t *testing.T) {
				code, out, _ := tokenManagement(t, env, "acme", "shop", endpoint, cred{}, url.Values{"token": {appTok}, "client_id": {publicID}})
				want := map[string]int{"introspect": 401, "revoke": 200}[endpoint] // it may revoke its own tokens only
				if code != want {
					t.Fatalf("got %d %v, want %d", code, out, want)
				}
			})
		}
		for _, tc := range refusals {
			for _, endpoint := range []string{"introspect", "revoke"} {
				t.Run(endpoint+" with "+tc.name, func(t *testing.T) {
					code, out, resp := tokenManagement(t, env, "acme", "shop", endpoint, tc.caller, tc.form)
					if code != tc.wantStatus || out["error"] != tc.wantError {
						t.Fatalf("got %d %v, want %d %s", code, out, tc.wantStatus, tc.wantError)
					}
					if resp.Header.Get("Cache-Control") != "no-store" || (code == 401 && resp.Header.Get("WWW-Authenticate") == "") {
						t.Fatalf("headers %v", resp.Header)
					}
				})
			}
		}

		// Revocation: any token answers 200; a token the caller may see stops being active at once.
		for _, tok := range []string{"garbage", forgedPayload, otherTok, globexTok} {
			if code, out := revoke(t, env, "acme", "shop", app, tok); code != 200 || out != nil {
				t.Fatalf("revoking %.20q: %d %v", tok, code, out)
			}
		}
		if code, _ := revoke(t, env, "acme", "shop", app, peerTok); code != 200 {
			t.Fatalf("revoking another client's token: %d", code)
		}
		if !isActive(t, env, "acme", "shop", rs, peerTok) {
			t.Fatal("a client without introspect_tokens revoked another client's token")
		}
		if code, _ := revoke(t, env, "acme", "shop", post(appID, appSecret), appTok); code != 200 {
			t.Fatalf("revoke: %d", code)
		}
		for name, c := range map[string]cred{"the client itself": app, "a client with introspect_tokens": rs, "a Bearer token": bearer(rsTok)} {
			if isActive(t, env, "acme", "shop", c, appTok) {
				t.Fatalf("a revoked token is active to %s", name)
			}
		}
		if code, _ := revoke(t, env, "acme", "shop", app, appTok); code != 200 {
			t.Fatalf("revoking twice: %d", code)
		}
		// introspect_tokens lets a caller read other clients' tokens, not revoke them (RFC 7009 section 2.1).
		for name, c := range map[string]cred{"a client with introspect_tokens": rs, "a Bearer token with introspect_tokens": bearer(rsTok)} {
			if code, _ := revoke(t, env, "acme", "shop", c, peerTok); code != 200 {
				t.Fatalf("revoke by %s: %d", name, code)
			}
			if !isActive(t, env, "acme", "shop", rs, peerTok) {
				t.Fatalf("%s revoked another client's token", name)
			}
		}
		if code, _ := revoke(t, env, "acme", "shop", post(peerID, peerSecret), peerTok); code != 200 {
			t.Fatalf("revoke by its own client: %d", code)
		}
		if isActive(t, env, "acme", "shop", rs, peerTok) {
			t.Fatal("a token revoked by its own client is still active")
		}
		if !isActive(t, env, "acme", "shop", rs, rsTok) {
			t.Fatal("revocations reached a token nobody revoked")
		}
		// A revoked token no longer authenticates a caller either.
		if code, _ := revoke(t, env, "acme", "shop", rs, rsTok); code != 200 {
			t.Fatalf("revoke: %d", code)
		}
		if code, out := introspect(t, env, "acme", "shop", bearer(rsTok), otherTok); code != 401 || out["error"] != "invalid_token" {
			t.Fatalf("a revoked Bearer token: %d %v", code, out)
		}

		// Over gRPC, with the caller's credentials in the request or its Bearer token in metadata.
		tokens := tokenv1.NewTokenServiceClient(env.GRPC)
		fresh := env.Token(t, "acme", "shop", appID, appSecret)
		resp, err := tokens.Introspect(context.Background(), &tokenv1.IntrospectRequest{
			TenantId: "acme", ServerId: "shop", Token: fresh,
			Caller: &tokenv1.CallerCredentials{ClientId: appID, ClientSecret: appSecret},
		})
		if err != nil || !resp.Active || resp.ClientId != appID {
			t.Fatalf("introspection over gRPC: %v %v", resp, err)
		}
		rsTok2 := env.Token(t, "acme", "shop", rsID, rsSecret, "introspect_tokens")
		resp, err = tokens.Introspect(testenv.WithToken(context.Background(), rsTok2), &tokenv1.IntrospectRequest{TenantId: "acme", ServerId: "shop", Token: fresh})
		if err != nil || !resp.Active {
			t.Fatalf("introspection over gRPC with a Bearer token: %v %v", resp, err)
		}
	})
}

func TestRevocationReachesEveryProcessAtOnce(t *testing.T) {
	// Two processes share a PostgreSQL database; the change bus carries the revocation between them.
	env := testenv.Start(t, testenv.WithBackend(testenv.Postgres))
	second := testenv.Start(t, testenv.WithDatabase(env.DatabaseURL, env.MasterKey), testenv.WithIssuer(env.HTTPURL),
		testenv.WithRootSecret(env.RootSecret))
	admin := env.AdminToken(t, "acme")
	if code := env.CallJSON(t, "POST", "/api/admin/acme/servers", admin, map[string]any{"id": "shop", "grant_types": []string{"client_credentials"}}, nil); code != 201 {
		t.Fatalf("create server: %d", code)
	}
	id, secret := env.CreateClient(t, "acme", admin, map[string]any{"authorization_server_id": "shop", "grant_types": []string{"client_credentials"}})
	tok := env.Token(t, "acme", "shop", id, secret)
	if !isActive(t, second, "acme", "shop", basic(id, secret), tok) { // warms the second process's denylist
		t.Fatal("a fresh token is inactive in the second process")
	}
	if code, _ := revoke(t, env, "acme", "shop", basic(id, secret), tok); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	deadline := time.Now().Add(15 * time.Second) // generous: CI runs packages in parallel under -race
	for isActive(t, second, "acme", "shop", basic(id, secret), tok) {
		if time.Now().After(deadline) {
			t.Fatal("the second process still sees the revoked token as active")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

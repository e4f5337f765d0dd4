package token_test

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/authplane/authplane/pkg/testenv"
)

// These tests drive refresh tokens through the whole process (testenv): issued by the password grant, rotated by
// the refresh_token grant, revoked at the revocation endpoint, on SQLite and PostgreSQL.

const (
	rtWS       = "rt-workspace"
	rtPassword = "S3cure-pass!word"
)

// refreshWorld is a tenant with a workspace whose identity pool holds one user, and clients of it.
type refreshWorld struct {
	env              *testenv.Env
	tn               *testenv.Tenant
	appID, appSecret string // password + refresh_token
	app2ID, app2Sec  string // password + refresh_token, token policy with 1s refresh tokens
	pubID            string // public: password + refresh_token
	ccID, ccSecret   string // client_credentials only
}

func rtCall(t *testing.T, env *testenv.Env, method, path, token string, body any, want int) {
	t.Helper()
	if code := env.CallJSON(t, method, path, token, body, nil); code != want {
		t.Fatalf("%s %s: status %d, want %d", method, path, code, want)
	}
}

func newRefreshWorld(t *testing.T, env *testenv.Env, tenant string) *refreshWorld {
	t.Helper()
	w := &refreshWorld{env: env, tn: env.NewTenant(t, tenant)}
	ad, id := "/api/admin/"+tenant, "/api/identity/"+tenant+"/system"
	rtCall(t, env, "POST", ad+"/servers", w.tn.AdminToken, map[string]any{"id": rtWS, "name": "Refresh",
		"grant_types": []string{"password", "refresh_token", "client_credentials"}}, http.StatusCreated)
	rtCall(t, env, "POST", id+"/pools", w.tn.SystemToken, map[string]any{"id": "people", "name": "People",
		"authentication_mechanisms": []string{"password"}}, http.StatusCreated)
	rtCall(t, env, "POST", id+"/pools/people/users", w.tn.SystemToken, map[string]any{"status": "active",
		"identifiers": []map[string]any{{"type": "email", "identifier": "jane@example.com"}},
		"credentials": []map[string]any{{"type": "password", "password": rtPassword}},
		"payload":     map[string]any{"given_name": "Jane"}}, http.StatusCreated)
	rtCall(t, env, "POST", ad+"/servers/"+rtWS+"/idps/identity_pool", w.tn.AdminToken,
		map[string]any{"name": "People", "identity_pool_id": "people"}, http.StatusCreated)
	rtCall(t, env, "POST", ad+"/token-policies", w.tn.AdminToken, map[string]any{"id": "brief", "title": "Brief",
		"refresh_token_ttl": "1s"}, http.StatusCreated)
	pw := func(name, method string, extra map[string]any) map[string]any {
		c := map[string]any{"authorization_server_id": rtWS, "client_name": name,
			"grant_types": []string{"password", "refresh_token"}, "token_endpoint_auth_method": method,
			"scopes": []string{"openid", "profile", "offline_access"}}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	w.appID, w.appSecret = env.CreateClient(t, tenant, w.tn.AdminToken, pw("app", "client_secret_basic", nil))
	w.app2ID, w.app2Sec = env.CreateClient(t, tenant, w.tn.AdminToken, pw("brief app", "client_secret_basic", map[string]any{"token_policy_id": "brief"}))
	w.pubID, _ = env.CreateClient(t, tenant, w.tn.AdminToken, pw("mobile", "none", nil))
	w.ccID, w.ccSecret = env.CreateClient(t, tenant, w.tn.AdminToken, map[string]any{"authorization_server_id": rtWS,
		"client_name": "cc", "grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_basic"})
	return w
}

// token posts form to the token endpoint as c (a public client sends its id in form).
func (w *refreshWorld) token(t *testing.T, c cred, form url.Values) (int, map[string]any) {
	t.Helper()
	code, out, _ := tokenManagement(t, w.env, w.tn.ID, rtWS, "token", c, form)
	return code, out
}

// login runs the password grant and returns its refresh token.
func (w *refreshWorld) login(t *testing.T, c cred, form url.Values) string {
	t.Helper()
	form.Set("grant_type", "password")
	form.Set("username", "jane@example.com")
	form.Set("password", rtPassword)
	form.Set("scope", "openid profile offline_access")
	code, out := w.token(t, c, form)
	rt, _ := out["refresh_token"].(string)
	if code != http.StatusOK || rt == "" {
		t.Fatalf("password grant: %d %v", code, out)
	}
	return rt
}

func (w *refreshWorld) refresh(t *testing.T, c cred, rt string, form url.Values) (int, map[string]any) {
	t.Helper()
	form.Set("grant_type", "refresh_token")
	form.Set("refresh_token", rt)
	return w.token(t, c, form)
}

// refreshed asserts a successful refresh and returns the rotated refresh token.
func (w *refreshWorld) refreshed(t *testing.T, c cred, rt string) string {
	t.Helper()
	code, out := w.refresh(t, c, rt, url.Values{})
	next, _ := out["refresh_token"].(string)
	if code != http.StatusOK || next == "" || next == rt {
		t.Fatalf("refresh: %d %v", code, out)
	}
	return next
}

// refused asserts a refresh answered 400 invalid_grant.
func (w *refreshWorld) refused(t *testing.T, what string, c cred, rt string) {
	t.Helper()
	code, out := w.refresh(t, c, rt, url.Values{})
	if code != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("%s: %d %v, want 400 invalid_grant", what, code, out)
	}
}

func TestRefreshTokensThroughTheRunningServer(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		w := newRefreshWorld(t, env, "acme")
		app := basic(w.appID, w.appSecret)

		t.Run("rotation re-issues the user's tokens", func(t *testing.T) {
			rt := w.login(t, app, url.Values{})
			code, out := w.refresh(t, app, rt, url.Values{})
			if code != http.StatusOK || out["refresh_token"] == rt || out["id_token"] == nil || out["scope"] != "openid profile offline_access" {
				t.Fatalf("refresh: %d %v", code, out)
			}
			claims := verifyHTTP(t, env, "acme", rtWS, out["access_token"].(string))
			if claims["client_id"] != w.appID || claims["sub"] == w.appID || claims["sub"] == "" {
				t.Fatalf("refreshed access token claims: %v", claims)
			}
			code, out = w.refresh(t, app, out["refresh_token"].(string), url.Values{"scope": {"openid"}})
			if code != http.StatusOK || out["scope"] != "openid" {
				t.Fatalf("narrowed refresh: %d %v", code, out)
			}
			code, out = w.refresh(t, app, out["refresh_token"].(string), url.Values{"scope": {"openid email"}})
			if code != http.StatusBadRequest || out["error"] != "invalid_scope" {
				t.Fatalf("widening refresh: %d %v", code, out)
			}
		})

		t.Run("reuse revokes the chain, the newest token too", func(t *testing.T) {
			rt1 := w.login(t, app, url.Values{})
			rt2 := w.refreshed(t, app, rt1)
			w.refused(t, "reusing the rotated token", app, rt1)
			w.refused(t, "the newest token after the reuse", app, rt2)
		})

		t.Run("concurrent uses of one token: exactly one succeeds", func(t *testing.T) {
			rt := w.login(t, app, url.Values{})
			const n = 12
			codes := make(chan int, n)
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, _ := w.refresh(t, app, rt, url.Values{})
					codes <- code
				}()
			}
			wg.Wait()
			close(codes)
			ok := 0
			for code := range codes {
				switch code {
				case http.StatusOK:
					ok++
				case http.StatusBadRequest:
				default:
					t.Fatalf("a concurrent use answered %d", code)
				}
			}
			if ok != 1 {
				t.Fatalf("%d of %d concurrent uses succeeded, want 1", ok, n)
			}
		})

		t.Run("revocation with and without hint", func(t *testing.T) {
			for _, hint := range []string{"refresh_token", "", "access_token"} {
				rt := w.login(t, app, url.Values{})
				next := w.refreshed(t, app, rt)
				form := url.Values{"token": {next}}
				if hint != "" {
					form.Set("token_type_hint", hint)
				}
				// Another client's revocation is answered 200 and changes nothing.
				if code, _, _ := tokenManagement(t, env, "acme", rtWS, "revoke", post(w.pubID, ""), url.Values{"token": {next}}); code != http.StatusOK {
					t.Fatalf("foreign revocation: %d", code)
				}
				next = w.refreshed(t, app, next)
				form.Set("token", next)
				if code, _, _ := tokenManagement(t, env, "acme", rtWS, "revoke", app, form); code != http.StatusOK {
					t.Fatalf("hint %q: revocation %d", hint, code)
				}
				w.refused(t, "hint "+hint+": a revoked refresh token", app, next)
			}
			if code, _, _ := tokenManagement(t, env, "acme", rtWS, "revoke", app, url.Values{"token": {"never-issued"}, "token_type_hint": {"refresh_token"}}); code != http.StatusOK {
				t.Fatalf("unknown refresh token: revocation %d", code)
			}
		})

		t.Run("a public client refreshes and revokes its own", func(t *testing.T) {
			pub := post(w.pubID, "")
			rt := w.login(t, pub, url.Values{})
			rt = w.refreshed(t, pub, rt)
			if code, _, _ := tokenManagement(t, env, "acme", rtWS, "revoke", pub, url.Values{"token": {rt}}); code != http.StatusOK {
				t.Fatalf("revocation %d", code)
			}
			w.refused(t, "revoked by the public client", pub, rt)
		})

		t.Run("another client's token is refused and not spent", func(t *testing.T) {
			rt := w.login(t, app, url.Values{})
			w.refused(t, "presented by the public client", post(w.pubID, ""), rt)
			w.refused(t, "presented by the other confidential client", basic(w.app2ID, w.app2Sec), rt)
			w.refreshed(t, app, rt)
		})

		t.Run("expiry after the token policy's lifetime", func(t *testing.T) {
			brief := basic(w.app2ID, w.app2Sec)
			rt := w.login(t, brief, url.Values{})
			time.Sleep(1100 * time.Millisecond)
			w.refused(t, "after 1s", brief, rt)
		})

		t.Run("client_credentials never gets a refresh token", func(t *testing.T) {
			code, out := w.token(t, basic(w.ccID, w.ccSecret), url.Values{"grant_type": {"client_credentials"}})
			if code != http.StatusOK || out["refresh_token"] != nil {
				t.Fatalf("client_credentials: %d %v", code, out)
			}
			code, out = w.refresh(t, basic(w.ccID, w.ccSecret), "anything", url.Values{})
			if code != http.StatusBadRequest || out["error"] != "unauthorized_client" {
				t.Fatalf("refresh grant of a client without it: %d %v", code, out)
			}
		})

		t.Run("a client registered again under a deleted client's id inherits no token", func(t *testing.T) {
			spec := map[string]any{"client_id": "reborn", "authorization_server_id": rtWS, "client_name": "reborn",
				"grant_types": []string{"password", "refresh_token"}, "token_endpoint_auth_method": "none",
				"scopes": []string{"openid", "profile", "offline_access"}}
			env.CreateClient(t, "acme", w.tn.AdminToken, spec)
			rt := w.login(t, post("reborn", ""), url.Values{})
			rtCall(t, env, "DELETE", "/api/admin/acme/clients/reborn", w.tn.AdminToken, nil, http.StatusNoContent)
			env.CreateClient(t, "acme", w.tn.AdminToken, spec)
			w.refused(t, "the first client's token", post("reborn", ""), rt)
		})
	})
}

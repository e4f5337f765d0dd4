package token_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authplane/authplane/pkg/testenv"
)

// verifierLog records the calls external verifiers received, in order.
type verifierLog struct {
	mu    sync.Mutex
	calls []verifierCall
}

type verifierCall struct {
	name string
	at   time.Time
	body map[string]any
}

func (l *verifierLog) add(name string, body map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, verifierCall{name: name, at: time.Now(), body: body})
}

// take returns and forgets the calls so far.
func (l *verifierLog) take() []verifierCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.calls
	l.calls = nil
	return c
}

func names(calls []verifierCall) string {
	var n []string
	for _, c := range calls {
		n = append(n, c.name)
	}
	return strings.Join(n, ",")
}

// verifiers starts stand-ins of customers' credential APIs. accept checks the signature with the secret of the
// workspace named in the body (set once the idp is created) and accepts ext-user/ext-pass with a sub and
// extraInfo, plain-user/plain-pass with an empty answer.
type verifiers struct {
	log                                  *verifierLog
	reject, slow, accept, redirect, huge *httptest.Server
	mu                                   sync.Mutex
	secrets                              map[string]string // workspace → signing secret of its accept idp
}

func startVerifiers(t *testing.T) *verifiers {
	v := &verifiers{log: &verifierLog{}, secrets: map[string]string{}}
	record := func(name string, r *http.Request) ([]byte, map[string]any) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s verifier: body %q (%v), content type %q", name, raw, err, r.Header.Get("Content-Type"))
		}
		v.log.add(name, body)
		return raw, body
	}
	v.reject = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("reject", r)
		http.Error(w, `{"error":"bad credentials"}`, http.StatusUnauthorized)
	}))
	v.slow = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("slow", r)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		_, _ = w.Write([]byte(`{"sub":"too-late"}`))
	}))
	v.accept = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, body := record("accept", r)
		v.mu.Lock()
		secret := v.secrets[body["workspace_id"].(string)]
		v.mu.Unlock()
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(raw)
		if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); secret == "" || !hmac.Equal([]byte(r.Header.Get("X-Authplane-Signature")), []byte(want)) {
			t.Errorf("accept verifier: signature %q does not match the body", r.Header.Get("X-Authplane-Signature"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case body["username"] == "ext-user" && body["password"] == "ext-pass":
			_, _ = w.Write([]byte(`{"sub":"ext-123","extraInfo":{"plan":"gold","customer":42}}`))
		case body["username"] == "plain-user" && body["password"] == "plain-pass":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	v.redirect = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("redirect", r)
		http.Redirect(w, r, v.accept.URL+"/verify", http.StatusTemporaryRedirect)
	}))
	v.huge = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("huge", r)
		_, _ = w.Write([]byte(`{"sub":"huge","extraInfo":{"pad":"` + strings.Repeat("x", 100<<10) + `"}}`))
	}))
	for _, s := range []*httptest.Server{v.reject, v.slow, v.accept, v.redirect, v.huge} {
		t.Cleanup(s.Close)
	}
	return v
}

func TestExternalVerifiers(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		tn := env.NewTenant(t, "acme")
		v := startVerifiers(t)
		ad := "/api/admin/acme"
		addExternal := func(ws, name string, srv *httptest.Server, timeout string, order int) (id, secret string) {
			var idp struct {
				ID            string `json:"id"`
				SigningSecret string `json:"signing_secret"`
			}
			call(t, env, "POST", ad+"/servers/"+ws+"/idps/external", tn.AdminToken, map[string]any{
				"name": name, "url": srv.URL + "/verify", "timeout": timeout, "display_order": order}, &idp, http.StatusCreated)
			if idp.ID == "" || idp.SigningSecret == "" {
				t.Fatalf("external idp %s: id %q, signing secret given: %v", name, idp.ID, idp.SigningSecret != "")
			}
			return idp.ID, idp.SigningSecret
		}
		newWorkspace := func(id string) (clientID, secret string) {
			call(t, env, "POST", ad+"/servers", tn.AdminToken, map[string]any{"id": id, "name": id, "grant_types": []string{"password"}}, nil, http.StatusCreated)
			return env.CreateClient(t, "acme", tn.AdminToken, map[string]any{"authorization_server_id": id, "client_name": "partner app",
				"grant_types": []string{"password"}, "token_endpoint_auth_method": "client_secret_post", "scopes": []string{"openid", "profile"}})
		}
		grant := func(ws, clientID, secret string, form url.Values) pwAnswer {
			t.Helper()
			form.Set("grant_type", "password")
			form.Set("client_id", clientID)
			form.Set("client_secret", secret)
			resp, err := env.HTTP.PostForm(env.Issuer("acme", ws)+"/oauth2/token", form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			a := pwAnswer{status: resp.StatusCode}
			_ = json.NewDecoder(resp.Body).Decode(&a)
			return a
		}
		claimsOf := func(ws, tok string) map[string]any {
			t.Helper()
			return verifiedClaims(t, env, "acme", ws, tok)
		}

		// partner: a refusing verifier, a slow one cut at 1 s, then one that accepts.
		pID, pSecret := newWorkspace("partner")
		addExternal("partner", "legacy-a", v.reject, "2s", 1)
		addExternal("partner", "legacy-slow", v.slow, "1s", 2)
		acceptID, acceptSecret := addExternal("partner", "legacy-c", v.accept, "2s", 3)
		v.mu.Lock()
		v.secrets["partner"] = acceptSecret
		v.mu.Unlock()

		t.Run("verifiers are tried in order, a refusal and a timeout fall through, the first yes wins", func(t *testing.T) {
			start := time.Now()
			a := grant("partner", pID, pSecret, url.Values{"user_name": {"ext-user"}, "password": {"ext-pass"}, "device": {"kiosk-7"}, "scope": {"openid"}})
			elapsed := time.Since(start)
			if a.status != 200 {
				t.Fatalf("grant: %d %s %s", a.status, a.Error, a.Description)
			}
			if elapsed < time.Second || elapsed > 5*time.Second {
				t.Errorf("the request took %v; the slow verifier's timeout is 1s", elapsed)
			}
			calls := v.log.take()
			if names(calls) != "reject,slow,accept" {
				t.Fatalf("calls %q, want reject,slow,accept", names(calls))
			}
			if gap := calls[2].at.Sub(calls[1].at); gap < 900*time.Millisecond {
				t.Errorf("the next verifier was called %v after the slow one; want after its 1s timeout", gap)
			}
			body := calls[2].body
			for k, want := range map[string]any{"username": "ext-user", "password": "ext-pass", "device": "kiosk-7", "grant_type": "password",
				"scope": "openid", "client_id": pID, "tenant_id": "acme", "workspace_id": "partner"} {
				if body[k] != want {
					t.Errorf("verifier body %s = %v, want %v", k, body[k], want)
				}
			}
			for _, k := range []string{"client_secret", "user_name"} {
				if _, ok := body[k]; ok {
					t.Errorf("verifier body has %s", k)
				}
			}
			for _, c := range calls {
				raw, _ := json.Marshal(c.body)
				if strings.Contains(string(raw), pSecret) {
					t.Errorf("the client secret reached verifier %s", c.name)
				}
			}
			c := claimsOf("partner", a.AccessToken)
			extra, _ := c["extra_info"].(map[string]any)
			if c["sub"] != "ext-123" || c["idp"] != acceptID || extra["plan"] != "gold" || extra["customer"] != float64(42) {
				t.Errorf("access token claims %v", c)
			}
			idt := idTokenVerifierAt(t, env, "acme", "partner", pID)
			if _, err := idt.Verify(context.Background(), a.IDToken); err != nil {
				t.Errorf("ID token of an external user: %v", err)
			}
			req, _ := http.NewRequest("GET", env.Issuer("acme", "partner")+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+a.AccessToken)
			resp, err := env.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var info map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&info)
			if extra, _ := info["extra_info"].(map[string]any); resp.StatusCode != 200 || info["sub"] != "ext-123" || extra["plan"] != "gold" {
				t.Errorf("userinfo of an external user: %d %v", resp.StatusCode, info)
			}
		})

		t.Run("no verifier accepts: the same invalid_grant as a wrong password", func(t *testing.T) {
			a := grant("partner", pID, pSecret, url.Values{"username": {"ext-user"}, "password": {"wrong"}})
			if a.status != 400 || a.Error != "invalid_grant" || a.Description != "the username or password is incorrect" {
				t.Errorf("%d %s %q", a.status, a.Error, a.Description)
			}
			if n := names(v.log.take()); n != "reject,slow,accept" {
				t.Errorf("calls %q", n)
			}
		})

		// partner2: redirects and oversized answers are refusals; the username is the subject when the
		// verifier names none. A pool linked first answers before any verifier.
		p2ID, p2Secret := newWorkspace("partner2")
		addExternal("partner2", "redirects", v.redirect, "2s", 1)
		addExternal("partner2", "huge", v.huge, "2s", 2)
		_, accept2Secret := addExternal("partner2", "accepts", v.accept, "2s", 3)
		v.mu.Lock()
		v.secrets["partner2"] = accept2Secret
		v.mu.Unlock()

		t.Run("a redirect or an oversized answer is no yes; without sub the username is the subject", func(t *testing.T) {
			a := grant("partner2", p2ID, p2Secret, url.Values{"username": {"plain-user"}, "password": {"plain-pass"}})
			if a.status != 200 {
				t.Fatalf("grant: %d %s", a.status, a.Error)
			}
			if n := names(v.log.take()); n != "redirect,huge,accept" {
				t.Errorf("calls %q, want redirect,huge,accept (the redirect not followed)", n)
			}
			c := claimsOf("partner2", a.AccessToken)
			if _, ok := c["extra_info"]; c["sub"] != "plain-user" || ok {
				t.Errorf("claims %v", c)
			}
		})

		t.Run("a pool linked first answers before the verifiers", func(t *testing.T) {
			call(t, env, "POST", "/api/identity/acme/system/pools", tn.SystemToken, map[string]any{"id": "customers", "name": "Customers",
				"authentication_mechanisms": []string{"password"}}, nil, http.StatusCreated)
			var u struct{ ID string }
			call(t, env, "POST", "/api/identity/acme/system/pools/customers/users", tn.SystemToken, map[string]any{"status": "active",
				"identifiers": []map[string]string{{"type": "uid", "identifier": "ann"}},
				"credentials": []map[string]string{{"type": "password", "password": "Ann-s3cret-pass"}}}, &u, http.StatusCreated)
			var idp struct{ ID string }
			call(t, env, "POST", ad+"/servers/partner2/idps/identity_pool", tn.AdminToken,
				map[string]any{"name": "Customers", "identity_pool_id": "customers", "display_order": 0}, &idp, http.StatusCreated)
			a := grant("partner2", p2ID, p2Secret, url.Values{"username": {"ann"}, "password": {"Ann-s3cret-pass"}})
			if a.status != 200 {
				t.Fatalf("grant: %d %s", a.status, a.Error)
			}
			if c := claimsOf("partner2", a.AccessToken); c["sub"] != u.ID || c["idp"] != idp.ID {
				t.Errorf("claims %v, want sub %s idp %s", c, u.ID, idp.ID)
			}
			if n := names(v.log.take()); n != "" {
				t.Errorf("verifiers called: %q", n)
			}
			// The pool refuses a wrong password; the verifiers are asked next.
			a = grant("partner2", p2ID, p2Secret, url.Values{"username": {"ann"}, "password": {"wrong"}})
			if a.status != 400 || a.Error != "invalid_grant" {
				t.Errorf("wrong password: %d %s", a.status, a.Error)
			}
			if n := names(v.log.take()); n != "redirect,huge,accept" {
				t.Errorf("calls %q after the pool refused", n)
			}
		})
	})
}

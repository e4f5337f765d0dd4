package token_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/authplane/authplane/pkg/testenv"
)

// These tests drive browser sign-in through the whole process with the clients apps use: golang.org/x/oauth2
// builds the authorization URL with PKCE and exchanges the code, go-oidc verifies the ID token (nonce, at_hash),
// and a cookie-keeping HTTP client plays the browser, submitting the hosted page's form as a browser would.

const browserCallback = "http://127.0.0.1:9/callback" // never reached: the browser stops at the redirect

type browserWorld struct {
	*ropcWorld
	webID, webSecret string // untrusted confidential app: authorization_code + refresh_token
	spaID            string // trusted public app: authorization_code
}

func newBrowserWorld(t *testing.T, env *testenv.Env, tenant string) *browserWorld {
	t.Helper()
	w := &browserWorld{ropcWorld: newROPCWorld(t, env, tenant)}
	call(t, env, "PUT", "/api/admin/"+tenant+"/servers/"+ropcWS, w.tn.AdminToken, map[string]any{
		"grant_types":  []string{"password", "refresh_token", "client_credentials", "authorization_code"},
		"display_name": "Acme Sign-in", "primary_color": "#0a7d33",
	}, nil, http.StatusOK)
	w.webID, w.webSecret = env.CreateClient(t, tenant, w.tn.AdminToken, map[string]any{"authorization_server_id": ropcWS,
		"client_name": "Web app", "grant_types": []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method": "client_secret_basic", "scopes": []string{"openid", "profile", "email", "offline_access"},
		"redirect_uris": []string{browserCallback}, "post_logout_redirect_uris": []string{"http://127.0.0.1:9/bye"}})
	w.spaID, _ = env.CreateClient(t, tenant, w.tn.AdminToken, map[string]any{"authorization_server_id": ropcWS,
		"client_name": "SPA", "grant_types": []string{"authorization_code"}, "token_endpoint_auth_method": "none",
		"scopes": []string{"openid", "email"}, "redirect_uris": []string{browserCallback}, "trusted": true,
		"allowed_origins": []string{"http://localhost:5173"}})
	return w
}

// browser is a cookie-keeping client that follows redirects within the server and stops at the app's callback.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T, env *testenv.Env) *browser {
	jar, _ := cookiejar.New(nil)
	server, _ := url.Parse(env.HTTPURL)
	return &browser{t: t, client: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host != server.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

// page is an answer the browser got.
type page struct {
	status   int
	header   http.Header
	body     string
	location *url.URL // where it was sent, when the answer was a redirect away from the server
	form     map[string]string
	action   string
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := &page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
		p.location, _ = resp.Request.URL.Parse(loc)
	}
	p.form, p.action = parseForm(string(raw))
	if p.action != "" {
		a, _ := resp.Request.URL.Parse(p.action)
		p.action = a.String()
	}
	return p
}

func (b *browser) get(u string) *page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

// submit posts the page's form with fields set (and a button's name=value).
func (b *browser) submit(p *page, fields map[string]string) *page {
	b.t.Helper()
	if p.action == "" {
		b.t.Fatalf("no form on the page (status %d): %s", p.status, p.body)
	}
	v := url.Values{}
	for k, val := range p.form {
		v.Set(k, val)
	}
	for k, val := range fields {
		v.Set(k, val)
	}
	req, _ := http.NewRequest(http.MethodPost, p.action, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// parseForm reads the first form's action and its hidden inputs.
func parseForm(body string) (map[string]string, string) {
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		return nil, ""
	}
	fields, action := map[string]string{}, ""
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attr := map[string]string{}
			for _, a := range n.Attr {
				attr[a.Key] = a.Val
			}
			switch {
			case n.Data == "form" && action == "":
				action = attr["action"]
			case n.Data == "input" && attr["type"] == "hidden":
				fields[attr["name"]] = attr["value"]
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return fields, action
}

// oauthConfig is an app's x/oauth2 configuration against the workspace.
func (w *browserWorld) oauthConfig(clientID, secret string, scopes ...string) *oauth2.Config {
	iss := w.issuer()
	style := oauth2.AuthStyleInHeader
	if secret == "" {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: clientID, ClientSecret: secret, RedirectURL: browserCallback, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: iss + "/oauth2/authorize", TokenURL: iss + "/oauth2/token", AuthStyle: style}}
}

// signIn starts an authorization request and signs jane in on the hosted page, returning where the browser lands.
func (w *browserWorld) signIn(t *testing.T, b *browser, authURL, password string) *page {
	t.Helper()
	p := b.get(authURL)
	if p.status != http.StatusOK || !strings.Contains(p.body, `autocomplete="current-password"`) {
		t.Fatalf("authorize: status %d, want the sign-in page: %s", p.status, p.body)
	}
	return b.submit(p, map[string]string{"username": "jane@example.com", "password": password})
}

func callbackParams(t *testing.T, p *page) url.Values {
	t.Helper()
	if p.location == nil || !strings.HasPrefix(p.location.String(), browserCallback) {
		t.Fatalf("not redirected to the callback: status %d, location %v, body %s", p.status, p.location, p.body)
	}
	return p.location.Query()
}

func TestBrowserSignIn(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, backend testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(backend))
		w := newBrowserWorld(t, env, "browser-"+string(backend))
		ctx := context.Background()
		provider, err := oidc.NewProvider(ctx, w.issuer())
		if err != nil {
			t.Fatal(err)
		}
		web := w.oauthConfig(w.webID, w.webSecret, "openid", "profile", "email", "offline_access")
		b := newBrowser(t, env)

		// The untrusted web app: sign-in page, then consent, then the code.
		verifier, nonce := oauth2.GenerateVerifier(), "n-"+oauth2.GenerateVerifier()[:16]
		authURL := web.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
		consent := w.signIn(t, b, authURL, janePassword)
		if consent.status != http.StatusOK || !strings.Contains(consent.body, "Web app wants access") || !strings.Contains(consent.body, "See your email address") {
			t.Fatalf("after sign-in: status %d, want the consent page: %s", consent.status, consent.body)
		}
		q := callbackParams(t, b.submit(consent, map[string]string{"decision": "allow"}))
		if q.Get("state") != "st-1" || q.Get("iss") != w.issuer() || q.Get("code") == "" {
			t.Fatalf("authorization response %v: want code, state st-1 and iss %s", q, w.issuer())
		}
		tok, err := web.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken == "" {
			t.Error("no refresh token for a client with the refresh_token grant")
		}
		rawID, _ := tok.Extra("id_token").(string)
		idt, err := provider.Verifier(&oidc.Config{ClientID: w.webID}).Verify(ctx, rawID)
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Sid      string `json:"sid"`
			AuthTime int64  `json:"auth_time"`
			Email    string `json:"email"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if idt.Nonce != nonce || claims.Sid == "" || claims.AuthTime == 0 || claims.Email != "jane@example.com" || idt.Subject != w.jane {
			t.Fatalf("ID token nonce %q sid %q auth_time %d email %q sub %q", idt.Nonce, claims.Sid, claims.AuthTime, claims.Email, idt.Subject)
		}
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Fatalf("at_hash: %v", err)
		}
		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil || ui.Subject != w.jane {
			t.Fatalf("userinfo %v, %v", ui, err)
		}

		// The code is single use: a second exchange is refused and ends what the first issued.
		if _, err := web.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("second exchange: %v, want invalid_grant", err)
		}
		if active := w.introspect(t, tok.AccessToken); active {
			t.Error("access token of a replayed code is still active")
		}
		if _, err := web.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Error("refresh token of a replayed code still works")
		}

		// Consent is remembered: the same app again signs in without any page.
		verifier = oauth2.GenerateVerifier()
		q = callbackParams(t, b.get(web.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier))))
		tok, err = web.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}

		// Single sign-on: a second (trusted) app gets a code without the form.
		spa := w.oauthConfig(w.spaID, "", "openid", "email")
		spaVerifier := oauth2.GenerateVerifier()
		q = callbackParams(t, b.get(spa.AuthCodeURL("spa", oauth2.S256ChallengeOption(spaVerifier), oauth2.SetAuthURLParam("prompt", "none"))))
		spaTok, err := spa.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(spaVerifier))
		if err != nil {
			t.Fatal(err)
		}
		if spaTok.RefreshToken != "" {
			t.Error("refresh token for a client without the refresh_token grant")
		}

		// The sessions API lists the browser session and the apps'; ending the browser session signs out both.
		var list struct {
			Sessions []struct{ ID, Kind, ClientID string } `json:"sessions"`
		}
		sessionsPath := "/api/identity/" + w.tn.ID + "/system/pools/" + ropcPool + "/users/" + w.jane + "/sessions"
		call(t, env, "GET", sessionsPath, w.tn.SystemToken, nil, &list, http.StatusOK)
		var browserSID string
		kinds := map[string]int{}
		for _, s := range list.Sessions {
			kinds[s.Kind]++
			if s.Kind == "browser" {
				browserSID = s.ID
			}
		}
		if kinds["browser"] != 1 || kinds["token"] < 2 {
			t.Fatalf("sessions %+v: want one browser session and the apps' sessions", list.Sessions)
		}
		call(t, env, "DELETE", sessionsPath+"/"+browserSID, w.tn.SystemToken, nil, nil, http.StatusNoContent)
		for name, at := range map[string]string{"web": tok.AccessToken, "spa": spaTok.AccessToken} {
			if w.introspect(t, at) {
				t.Errorf("%s access token still active after the browser session ended", name)
			}
		}
		q = callbackParams(t, b.get(spa.AuthCodeURL("again", oauth2.S256ChallengeOption(spaVerifier), oauth2.SetAuthURLParam("prompt", "none"))))
		if q.Get("error") != "login_required" || q.Get("state") != "again" || q.Get("iss") != w.issuer() {
			t.Fatalf("prompt=none after the session ended: %v, want login_required with state and iss", q)
		}

		// Logout (RP-initiated) ends the session of both apps and returns to a registered URI with state.
		verifier = oauth2.GenerateVerifier()
		q = callbackParams(t, w.signIn(t, b, web.AuthCodeURL("st-3", oauth2.S256ChallengeOption(verifier)), janePassword))
		tok, err = web.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		q = callbackParams(t, b.get(spa.AuthCodeURL("spa2", oauth2.S256ChallengeOption(spaVerifier))))
		spaTok, err = spa.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(spaVerifier))
		if err != nil {
			t.Fatal(err)
		}
		idHint, _ := tok.Extra("id_token").(string)
		out := b.get(w.issuer() + "/oauth2/logout?" + url.Values{"id_token_hint": {idHint},
			"post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}, "state": {"bye-state"}}.Encode())
		if out.location == nil || out.location.String() != "http://127.0.0.1:9/bye?state=bye-state" {
			t.Fatalf("logout: status %d location %v", out.status, out.location)
		}
		for name, at := range map[string]string{"web": tok.AccessToken, "spa": spaTok.AccessToken} {
			if w.introspect(t, at) {
				t.Errorf("%s access token still active after logout", name)
			}
		}
		if p := b.get(spa.AuthCodeURL("x", oauth2.S256ChallengeOption(spaVerifier))); !strings.Contains(p.body, `autocomplete="current-password"`) {
			t.Fatalf("after logout the SPA got in without the form: status %d location %v", p.status, p.location)
		}
	})
}

// introspect reports whether an access token is active, asked by the web app.
func (w *browserWorld) introspect(t *testing.T, token string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.issuer()+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(w.webID, w.webSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspection: status %d %s", resp.StatusCode, raw)
	}
	return strings.Contains(string(raw), `"active":true`)
}

// userinfoStatus is the status of the userinfo endpoint for an access token.
func (w *browserWorld) userinfoStatus(t *testing.T, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, w.issuer()+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// varying are the parts of a sign-in page that differ per request (request id, CSRF token, style nonce).
var varying = regexp.MustCompile(`(value|nonce)="[^"]*"`)

func TestBrowserSignInAttacks(t *testing.T) {
	env := testenv.Start(t)
	w := newBrowserWorld(t, env, "attacks")
	ctx := context.Background()
	web := w.oauthConfig(w.webID, w.webSecret, "openid", "email")
	spa := w.oauthConfig(w.spaID, "", "openid", "email")
	verifier := oauth2.GenerateVerifier()
	challenge := oauth2.S256ChallengeOption(verifier)

	t.Run("open redirect: an unregistered redirect URI is an error page, never a redirect", func(t *testing.T) {
		for _, cb := range []string{"https://evil.example/cb", browserCallback + "/../evil", browserCallback + "?x=1", ""} {
			c := *spa
			c.RedirectURL = cb
			if cb == "" {
				c.RedirectURL = "http://127.0.0.1:9/other"
			}
			p := newBrowser(t, env).get(c.AuthCodeURL("s", challenge))
			if p.status != http.StatusBadRequest || p.location != nil || p.header.Get("Location") != "" {
				t.Errorf("redirect_uri %q: status %d location %v, want a 400 page", c.RedirectURL, p.status, p.location)
			}
		}
		p := newBrowser(t, env).get(w.issuer() + "/oauth2/authorize?" + url.Values{"client_id": {"no-such-client"},
			"redirect_uri": {"https://evil.example/cb"}, "response_type": {"code"}}.Encode())
		if p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
			t.Errorf("unknown client: status %d, want a 400 page", p.status)
		}
	})

	t.Run("PKCE downgrade: plain and a missing challenge are refused", func(t *testing.T) {
		for name, opts := range map[string][]oauth2.AuthCodeOption{
			"missing":                           nil,
			"plain":                             {oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain")},
			"method missing (plain by default)": {oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43))},
		} {
			q := callbackParams(t, newBrowser(t, env).get(spa.AuthCodeURL("s", opts...)))
			if q.Get("error") != "invalid_request" || q.Get("iss") != w.issuer() || q.Get("state") != "s" {
				t.Errorf("%s: %v, want invalid_request with iss and state", name, q)
			}
		}
	})

	b := newBrowser(t, env)
	first := b.get(spa.AuthCodeURL("s", challenge))

	t.Run("a missing or forged CSRF token is refused", func(t *testing.T) {
		for name, csrf := range map[string]string{"missing": "", "forged": "Zm9yZ2VkLWNzcmYtdG9rZW4tb2YtMzItYnl0ZXMteHh4"} {
			p := b.submit(first, map[string]string{"username": "jane@example.com", "password": janePassword, "csrf_token": csrf})
			if p.status != http.StatusForbidden || p.location != nil {
				t.Errorf("%s CSRF token: status %d location %v, want 403", name, p.status, p.location)
			}
		}
		// Another browser (no binding cookie) submitting this browser's form, token and all.
		p := newBrowser(t, env).submit(first, map[string]string{"username": "jane@example.com", "password": janePassword})
		if p.status != http.StatusForbidden || p.location != nil {
			t.Errorf("form from another browser: status %d, want 403", p.status)
		}
	})

	t.Run("the page cannot be framed and runs no script", func(t *testing.T) {
		csp := first.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("Content-Security-Policy %q", csp)
		}
		if first.header.Get("X-Frame-Options") != "DENY" || first.header.Get("Cache-Control") != "no-store" {
			t.Errorf("X-Frame-Options %q Cache-Control %q", first.header.Get("X-Frame-Options"), first.header.Get("Cache-Control"))
		}
		if strings.Contains(first.body, "<script") || !strings.Contains(first.body, `for="username"`) || !strings.Contains(first.body, `autocomplete="username"`) {
			t.Error("the sign-in page has a script, or unlabelled fields")
		}
	})

	t.Run("a wrong password and an unknown user show the same page", func(t *testing.T) {
		wrong := b.submit(first, map[string]string{"username": "jane@example.com", "password": "wrong-password"})
		unknown := b.submit(wrong, map[string]string{"username": "nobody@example.com", "password": "wrong-password"})
		norm := func(p *page) string {
			return strings.ReplaceAll(varying.ReplaceAllString(p.body, ""), "nobody@example.com", "jane@example.com")
		}
		if wrong.status != http.StatusOK || norm(wrong) != norm(unknown) || !strings.Contains(wrong.body, "The username or password is incorrect.") {
			t.Errorf("wrong password (%d) and unknown user (%d) pages differ:\n%s\n---\n%s", wrong.status, unknown.status, wrong.body, unknown.body)
		}
	})

	var code string
	t.Run("sign-in", func(t *testing.T) {
		code = callbackParams(t, b.submit(first, map[string]string{"username": "jane@example.com", "password": janePassword})).Get("code")
	})

	t.Run("a code is refused to another client, another redirect URI and a wrong verifier, and stays good", func(t *testing.T) {
		if _, err := web.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
			t.Error("another client exchanged the code")
		}
		other := *spa
		other.RedirectURL = "http://127.0.0.1:9/other"
		if _, err := other.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
			t.Error("the code was exchanged with another redirect URI")
		}
		if _, err := spa.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
			t.Error("the code was exchanged with a wrong verifier")
		}
		if _, err := spa.Exchange(ctx, code); err == nil {
			t.Error("the code was exchanged without a verifier")
		}
		if _, err := spa.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err != nil {
			t.Errorf("the rightful exchange after the attempts: %v", err)
		}
	})

	t.Run("a login form flood locks the user out, with the same message", func(t *testing.T) {
		fb := newBrowser(t, env)
		p := fb.get(spa.AuthCodeURL("flood", challenge, oauth2.SetAuthURLParam("prompt", "login")))
		for range 10 {
			p = fb.submit(p, map[string]string{"username": "jane@example.com", "password": "guess"})
		}
		p = fb.submit(p, map[string]string{"username": "jane@example.com", "password": janePassword})
		if p.status != http.StatusOK || p.location != nil || !strings.Contains(p.body, "The username or password is incorrect.") {
			t.Fatalf("right password after 10 failures: status %d location %v, want the same refusal", p.status, p.location)
		}
		call(t, env, "POST", "/api/identity/"+w.tn.ID+"/system/pools/"+ropcPool+"/users/"+w.jane+"/unlock", w.tn.SystemToken, nil, nil, http.StatusOK)

		// A flood of submissions for unknown users, all at once: each is refused with the one message, or told to
		// come back when the bounded hashing pool is full (503); none gets in, none tells more.
		p = fb.get(spa.AuthCodeURL("flood2", challenge, oauth2.SetAuthURLParam("prompt", "login")))
		answers := make(chan *page, 32)
		for i := range cap(answers) {
			go func() {
				answers <- fb.submit(p, map[string]string{"username": fmt.Sprintf("nobody-%d@example.com", i), "password": "guess"})
			}()
		}
		for range cap(answers) {
			a := <-answers
			refused := a.status == http.StatusOK && strings.Contains(a.body, "The username or password is incorrect.")
			busy := a.status == http.StatusServiceUnavailable && strings.Contains(a.body, "temporarily_unavailable")
			if a.location != nil || !(refused || busy) {
				t.Errorf("flooded submission: status %d location %v: %s", a.status, a.location, a.body)
			}
		}
		p = fb.submit(p, map[string]string{"username": "jane@example.com", "password": janePassword})
		if callbackParams(t, p).Get("code") == "" {
			t.Error("no sign-in after the flood")
		}
	})

	t.Run("CORS answers only the allowed origins", func(t *testing.T) {
		for origin, want := range map[string]string{"http://localhost:5173": "http://localhost:5173", "https://evil.example": ""} {
			req, _ := http.NewRequest(http.MethodOptions, w.issuer()+"/oauth2/token", nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
				t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want %q", origin, got, want)
			}
			req, _ = http.NewRequest(http.MethodGet, w.issuer()+"/.well-known/openid-configuration", nil)
			req.Header.Set("Origin", origin)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want || resp.StatusCode != http.StatusOK {
				t.Errorf("discovery from %s: status %d, Access-Control-Allow-Origin %q, want %q", origin, resp.StatusCode, got, want)
			}
		}
	})
}

func TestBrowserSignInPromptsConsentAndLogout(t *testing.T) {
	env := testenv.Start(t)
	w := newBrowserWorld(t, env, "prompts")
	ctx := context.Background()
	web := w.oauthConfig(w.webID, w.webSecret, "openid", "email")
	spa := w.oauthConfig(w.spaID, "", "openid", "email")
	verifier := oauth2.GenerateVerifier()
	challenge := oauth2.S256ChallengeOption(verifier)
	b := newBrowser(t, env)
	callbackParams(t, w.signIn(t, b, spa.AuthCodeURL("s", challenge), janePassword))
	sessions := func() (browser, token int) {
		var list struct {
			Sessions []struct{ Kind string } `json:"sessions"`
		}
		call(t, env, "GET", "/api/identity/"+w.tn.ID+"/system/pools/"+ropcPool+"/users/"+w.jane+"/sessions", w.tn.SystemToken, nil, &list, http.StatusOK)
		for _, s := range list.Sessions {
			if s.Kind == "browser" {
				browser++
			} else {
				token++
			}
		}
		return
	}

	t.Run("prompt=login and max_age=0 show the form to a signed-in browser, which stays one session", func(t *testing.T) {
		for _, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0")} {
			q := callbackParams(t, w.signIn(t, b, spa.AuthCodeURL("s", challenge, opt), janePassword))
			if q.Get("code") == "" {
				t.Fatalf("no code after signing in again: %v", q)
			}
		}
		if n, _ := sessions(); n != 1 {
			t.Fatalf("%d browser sessions after signing in again as the same user, want 1", n)
		}
	})

	t.Run("other response types are refused by redirect", func(t *testing.T) {
		q := callbackParams(t, b.get(spa.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("response_type", "token"))))
		if q.Get("error") != "unsupported_response_type" || q.Get("state") != "s" {
			t.Fatalf("%v, want unsupported_response_type", q)
		}
	})

	t.Run("denied consent sends access_denied", func(t *testing.T) {
		p := b.get(web.AuthCodeURL("deny", challenge))
		q := callbackParams(t, b.submit(p, map[string]string{"decision": "deny"}))
		if q.Get("error") != "access_denied" || q.Get("state") != "deny" || q.Get("iss") != w.issuer() {
			t.Fatalf("%v, want access_denied with state and iss", q)
		}
	})

	t.Run("the identity plane lists a consent and revoking it asks again and ends the app's session", func(t *testing.T) {
		p := b.get(web.AuthCodeURL("allow", challenge))
		q := callbackParams(t, b.submit(p, map[string]string{"decision": "allow"}))
		tok, err := web.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		consents := "/api/identity/" + w.tn.ID + "/system/pools/" + ropcPool + "/users/" + w.jane + "/consents"
		var list struct {
			Consents []struct {
				ClientID string   `json:"client_id"`
				Scopes   []string `json:"scopes"`
			} `json:"consents"`
		}
		call(t, env, "GET", consents, w.tn.SystemToken, nil, &list, http.StatusOK)
		if len(list.Consents) != 1 || list.Consents[0].ClientID != w.webID || strings.Join(list.Consents[0].Scopes, " ") != "openid email" {
			t.Fatalf("consents %+v, want the web app's openid email", list.Consents)
		}
		call(t, env, "DELETE", consents+"/"+w.webID, w.tn.SystemToken, nil, nil, http.StatusNoContent)
		call(t, env, "DELETE", consents+"/"+w.webID, w.tn.SystemToken, nil, nil, http.StatusNotFound)
		if w.introspect(t, tok.AccessToken) {
			t.Error("the app's access token is still active after its consent was revoked")
		}
		if q := callbackParams(t, b.get(web.AuthCodeURL("x", challenge, oauth2.SetAuthURLParam("prompt", "none")))); q.Get("error") != "consent_required" {
			t.Fatalf("after revoking the consent: %v, want consent_required", q)
		}
		if q := callbackParams(t, b.get(spa.AuthCodeURL("spa", challenge, oauth2.SetAuthURLParam("prompt", "none")))); q.Get("code") == "" {
			t.Fatalf("the browser session ended with another app's consent: %v", q)
		}
	})

	t.Run("a deleted client's consent is gone with it", func(t *testing.T) {
		p := b.get(web.AuthCodeURL("allow", challenge))
		callbackParams(t, b.submit(p, map[string]string{"decision": "allow"}))
		q := callbackParams(t, b.get(web.AuthCodeURL("again", challenge, oauth2.SetAuthURLParam("prompt", "none"))))
		if q.Get("code") == "" {
			t.Fatalf("consent not remembered: %v", q)
		}
		call(t, env, "DELETE", "/api/admin/"+w.tn.ID+"/clients/"+w.webID, w.tn.AdminToken, nil, nil, http.StatusNoContent)
		call(t, env, "POST", "/api/admin/"+w.tn.ID+"/clients", w.tn.AdminToken, map[string]any{"client_id": w.webID,
			"authorization_server_id": ropcWS, "client_name": "Web app", "grant_types": []string{"authorization_code"},
			"scopes": []string{"openid", "email"}, "redirect_uris": []string{browserCallback}}, nil, http.StatusCreated)
		q = callbackParams(t, b.get(web.AuthCodeURL("after", challenge, oauth2.SetAuthURLParam("prompt", "none"))))
		if q.Get("error") != "consent_required" {
			t.Fatalf("after the client was deleted and registered again: %v, want consent_required", q)
		}
		// The browser session outlives the deleted client it was started for.
		if q := callbackParams(t, b.get(spa.AuthCodeURL("spa", challenge, oauth2.SetAuthURLParam("prompt", "none")))); q.Get("code") == "" {
			t.Fatalf("SSO after deleting another client: %v", q)
		}
	})

	t.Run("logout to an unregistered URI is an error page and signs nobody out", func(t *testing.T) {
		p := b.get(w.issuer() + "/oauth2/logout?" + url.Values{"client_id": {w.spaID}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode())
		if p.status != http.StatusBadRequest || p.location != nil {
			t.Fatalf("status %d location %v, want a 400 page", p.status, p.location)
		}
		if q := callbackParams(t, b.get(spa.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("prompt", "none")))); q.Get("code") == "" {
			t.Fatalf("signed out by a refused logout: %v", q)
		}
	})

	t.Run("a user made inactive is signed out of the browser", func(t *testing.T) {
		call(t, env, "PUT", "/api/identity/"+w.tn.ID+"/system/pools/"+ropcPool+"/users/"+w.jane, w.tn.SystemToken,
			map[string]any{"status": "inactive"}, nil, http.StatusOK)
		q := callbackParams(t, b.get(spa.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("prompt", "none"))))
		if q.Get("error") != "login_required" {
			t.Fatalf("%v, want login_required", q)
		}
		if n, _ := sessions(); n != 0 {
			t.Fatalf("%d live browser sessions of an inactive user", n)
		}
		call(t, env, "PUT", "/api/identity/"+w.tn.ID+"/system/pools/"+ropcPool+"/users/"+w.jane, w.tn.SystemToken,
			map[string]any{"status": "active"}, nil, http.StatusOK)
	})

	t.Run("logout without a redirect shows the signed-out page and clears the cookie", func(t *testing.T) {
		callbackParams(t, w.signIn(t, b, spa.AuthCodeURL("s", challenge), janePassword))
		p := b.get(w.issuer() + "/oauth2/logout")
		if p.status != http.StatusOK || !strings.Contains(p.body, "You are signed out.") {
			t.Fatalf("status %d: %s", p.status, p.body)
		}
		if n, _ := sessions(); n != 0 {
			t.Fatalf("%d browser sessions after logout", n)
		}
		if _, err := spa.Exchange(ctx, "not-a-code", oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("an unknown code was exchanged")
		}
	})

	t.Run("logout by id_token_hint alone, from a browser without the cookie, ends the session", func(t *testing.T) {
		q := callbackParams(t, w.signIn(t, b, spa.AuthCodeURL("s", challenge), janePassword))
		tok, err := spa.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		hint, _ := tok.Extra("id_token").(string)
		forged := hint[:len(hint)-4] + "AAAA"
		if p := newBrowser(t, env).get(w.issuer() + "/oauth2/logout?id_token_hint=" + url.QueryEscape(forged)); p.status != http.StatusBadRequest {
			t.Fatalf("logout with a forged hint: status %d, want 400", p.status)
		}
		if n, _ := sessions(); n != 1 {
			t.Fatalf("%d browser sessions after a forged hint, want 1", n)
		}
		if p := newBrowser(t, env).get(w.issuer() + "/oauth2/logout?id_token_hint=" + url.QueryEscape(hint)); p.status != http.StatusOK {
			t.Fatalf("logout with the hint: status %d", p.status)
		}
		if n, _ := sessions(); n != 0 {
			t.Fatalf("%d browser sessions after logout by hint, want 0", n)
		}
		if code := w.userinfoStatus(t, tok.AccessToken); code != http.StatusUnauthorized {
			t.Errorf("userinfo with the app's access token after logout by hint: %d, want 401", code)
		}
	})

	t.Run("invalid UTF-8 or a NUL byte is a 400 page", func(t *testing.T) {
		for _, u := range []string{
			env.HTTPURL + "/" + w.tn.ID + "/%ff/oauth2/authorize?client_id=x",
			w.issuer() + "/oauth2/authorize?client_id=" + w.spaID + "&state=%ff",
			w.issuer() + "/oauth2/authorize?client_id=" + w.spaID + "&state=a%00b",
			w.issuer() + "/login?request=%ff",
			w.issuer() + "/oauth2/logout?state=%ff",
		} {
			if p := b.get(u); p.status != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400", u, p.status)
			}
		}
	})

	t.Run("an unknown workspace is a 404 page", func(t *testing.T) {
		p := b.get(env.HTTPURL + "/" + w.tn.ID + "/no-such-ws/oauth2/authorize?client_id=x")
		if p.status != http.StatusNotFound || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
			t.Fatalf("status %d content type %q", p.status, p.header.Get("Content-Type"))
		}
	})
}

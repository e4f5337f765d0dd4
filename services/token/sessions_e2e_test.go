package token_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/testenv"
)

// These tests drive login sessions through the whole process (testenv) on SQLite and PostgreSQL, with
// golang.org/x/oauth2 as the client of the password and refresh grants: the sid of a login's tokens, every cause
// that ends a session and what an ended session then refuses, the lockout that ends none, the absolute
// session_ttl, and the identity plane's sessions API over REST and gRPC.

const (
	sessWS       = "sessions"
	sessPool     = "people"
	sessPassword = "Sess1on-passphrase!"
)

// sessScopes is what the session tests' clients are registered with and ask for.
var sessScopes = []string{"openid", "profile", "offline_access"}

// cheapHashing keeps user creation and logins fast; production pools hash at 19 MiB, t=2.
var cheapHashing = map[string]any{"hashing_method": "argon2id", "argon2": map[string]any{"memory_kib": 8192, "iterations": 1, "parallelism": 1}}

// sessionWorld is a tenant with workspace sessWS, whose identity source is pool sessPool (lockout after 3 failed
// checks), two confidential clients with the password and refresh grants, and a resource server that may
// introspect every token of the workspace.
type sessionWorld struct {
	env              *testenv.Env
	tn               *testenv.Tenant
	app, other       *oauth2.Config
	rsID, rsSecret   string
	users            int
	ctx              context.Context // carries env's HTTP client for golang.org/x/oauth2
	tokens           tokenv1.TokenServiceClient
	identity, admins string // REST prefixes of the identity and admin planes
}

func newSessionWorld(t *testing.T, env *testenv.Env, tenant string) *sessionWorld {
	t.Helper()
	w := &sessionWorld{env: env, tn: env.NewTenant(t, tenant),
		ctx:    context.WithValue(context.Background(), oauth2.HTTPClient, env.HTTP),
		tokens: tokenv1.NewTokenServiceClient(env.GRPC), identity: "/api/identity/" + tenant + "/system", admins: "/api/admin/" + tenant}
	call(t, env, "POST", w.admins+"/servers", w.tn.AdminToken, map[string]any{"id": sessWS, "name": "Sessions",
		"grant_types": []string{"password", "refresh_token", "client_credentials"}}, nil, http.StatusCreated)
	call(t, env, "POST", w.identity+"/pools", w.tn.SystemToken, map[string]any{"id": sessPool, "name": "People",
		"authentication_mechanisms": []string{"password"}, "password_settings": cheapHashing,
		"lockout_policy": map[string]any{"max_attempts": 3, "block_duration": "3600s"}}, nil, http.StatusCreated)
	w.linkPool(t, sessWS, sessPool, 0)
	w.app = w.passwordClient(t, sessWS, map[string]any{"client_name": "app"})
	w.other = w.passwordClient(t, sessWS, map[string]any{"client_name": "other app"})
	w.rsID, w.rsSecret = env.CreateClient(t, tenant, w.tn.AdminToken, map[string]any{"authorization_server_id": sessWS,
		"client_name": "resource server", "grant_types": []string{"client_credentials"}, "scopes": []string{"introspect_tokens"}})
	return w
}

// linkPool makes a pool an identity source of a workspace and returns the source's id.
func (w *sessionWorld) linkPool(t *testing.T, ws, pool string, order int) string {
	t.Helper()
	var idp struct{ ID string }
	call(t, w.env, "POST", w.admins+"/servers/"+ws+"/idps/identity_pool", w.tn.AdminToken,
		map[string]any{"name": pool, "identity_pool_id": pool, "display_order": order}, &idp, http.StatusCreated)
	return idp.ID
}

// passwordClient registers a confidential client of ws with the password and refresh grants (fields in extra
// override the defaults) and returns it as golang.org/x/oauth2 sees it.
func (w *sessionWorld) passwordClient(t *testing.T, ws string, extra map[string]any) *oauth2.Config {
	t.Helper()
	spec := map[string]any{"authorization_server_id": ws, "grant_types": []string{"password", "refresh_token"},
		"token_endpoint_auth_method": "client_secret_basic", "scopes": sessScopes}
	for k, v := range extra {
		spec[k] = v
	}
	id, secret := w.env.CreateClient(t, w.tn.ID, w.tn.AdminToken, spec)
	return &oauth2.Config{ClientID: id, ClientSecret: secret, Scopes: sessScopes,
		Endpoint: oauth2.Endpoint{TokenURL: w.env.Issuer(w.tn.ID, ws) + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

// newUser adds an active user with password sessPassword to pool and returns its id and email.
func (w *sessionWorld) newUser(t *testing.T, pool string) (id, email string) {
	t.Helper()
	w.users++
	email = fmt.Sprintf("user%d@example.com", w.users)
	var u struct{ ID string }
	call(t, w.env, "POST", w.identity+"/pools/"+pool+"/users", w.tn.SystemToken, map[string]any{"status": "active",
		"identifiers": []map[string]string{{"type": "email", "identifier": email}},
		"credentials": []map[string]string{{"type": "password", "password": sessPassword}},
		"payload":     map[string]any{"given_name": "User"}}, &u, http.StatusCreated)
	return u.ID, email
}

// loginSession is what a client holds of one login: the session's id (its tokens' sid), the newest refresh
// token, the refresh tokens spent by rotation, and every access token issued in it.
type loginSession struct {
	cfg     *oauth2.Config
	ws      string
	sid     string
	refresh string
	spent   []string
	access  []string
}

// login runs the password grant as cfg, a client of ws, and returns the session it started.
func (w *sessionWorld) login(t *testing.T, cfg *oauth2.Config, ws, email string) *loginSession {
	t.Helper()
	tok, err := cfg.PasswordCredentialsToken(w.ctx, email, sessPassword)
	if err != nil {
		t.Fatalf("password grant for %s: %v", email, err)
	}
	if tok.RefreshToken == "" {
		t.Fatalf("password grant for %s: no refresh token", email)
	}
	s := &loginSession{cfg: cfg, ws: ws, refresh: tok.RefreshToken, access: []string{tok.AccessToken}}
	s.sid = w.sidOf(t, ws, tok.AccessToken)
	return s
}

// sidOf verifies an access token of ws against the workspace's JWKS and returns its sid.
func (w *sessionWorld) sidOf(t *testing.T, ws, accessToken string) string {
	t.Helper()
	sid, _ := verifiedClaims(t, w.env, w.tn.ID, ws, accessToken)["sid"].(string)
	if sid == "" {
		t.Fatal("a password-grant access token carries no sid")
	}
	return sid
}

// refreshWith presents a refresh token through golang.org/x/oauth2's TokenSource.
func (w *sessionWorld) refreshWith(cfg *oauth2.Config, refreshToken string) (*oauth2.Token, error) {
	return cfg.TokenSource(w.ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// refreshed rotates s's refresh token, which must succeed within the same session, and returns the new tokens.
func (w *sessionWorld) refreshed(t *testing.T, s *loginSession, what string) *oauth2.Token {
	t.Helper()
	tok, err := w.refreshWith(s.cfg, s.refresh)
	if err != nil {
		t.Fatalf("%s: refresh: %v", what, err)
	}
	if sid := w.sidOf(t, s.ws, tok.AccessToken); sid != s.sid {
		t.Fatalf("%s: a refresh moved the tokens from session %s to %s", what, s.sid, sid)
	}
	if tok.RefreshToken == "" || tok.RefreshToken == s.refresh {
		t.Fatalf("%s: a refresh did not rotate the refresh token", what)
	}
	s.spent = append(s.spent, s.refresh)
	s.refresh = tok.RefreshToken
	s.access = append(s.access, tok.AccessToken)
	return tok
}

// isInvalidGrant reports a token endpoint answer of 400 invalid_grant.
func isInvalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.Response.StatusCode == http.StatusBadRequest && re.ErrorCode == "invalid_grant"
}

// userinfoStatus is the status of GET {issuer}/userinfo with accessToken.
func (w *sessionWorld) userinfoStatus(t *testing.T, ws, accessToken string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", w.env.Issuer(w.tn.ID, ws)+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := w.env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// mustLive checks that s goes on: every access token issued in it is active at introspection and opens
// userinfo, and its refresh token rotates.
func (w *sessionWorld) mustLive(t *testing.T, s *loginSession, what string) {
	t.Helper()
	for i, at := range s.access {
		if !isActive(t, w.env, w.tn.ID, s.ws, basic(w.rsID, w.rsSecret), at) {
			t.Errorf("%s: access token %d of the session is inactive", what, i)
		}
		if code := w.userinfoStatus(t, s.ws, at); code != http.StatusOK {
			t.Errorf("%s: access token %d of the session at userinfo: %d, want 200", what, i, code)
		}
	}
	w.refreshed(t, s, what)
}

// mustBeEnded checks that s has ended: every access token issued in it is inactive at introspection (HTTP and
// gRPC) and 401 at userinfo, and its refresh token introspects inactive for its own client and gets 400
// invalid_grant.
func (w *sessionWorld) mustBeEnded(t *testing.T, s *loginSession, what string) {
	t.Helper()
	// The access tokens first: a refresh would itself end a session whose user changed, and so hide a cause
	// that failed to end it.
	for i, at := range s.access {
		if isActive(t, w.env, w.tn.ID, s.ws, basic(w.rsID, w.rsSecret), at) {
			t.Errorf("%s: access token %d of the ended session is active", what, i)
		}
		resp, err := w.tokens.Introspect(context.Background(), &tokenv1.IntrospectRequest{TenantId: w.tn.ID, ServerId: s.ws, Token: at,
			Caller: &tokenv1.CallerCredentials{ClientId: w.rsID, ClientSecret: w.rsSecret}})
		if err != nil || resp.Active {
			t.Errorf("%s: access token %d of the ended session over gRPC introspection: %v %v", what, i, resp, err)
		}
		if code := w.userinfoStatus(t, s.ws, at); code != http.StatusUnauthorized {
			t.Errorf("%s: access token %d of the ended session at userinfo: %d, want 401", what, i, code)
		}
	}
	if isActive(t, w.env, w.tn.ID, s.ws, basic(s.cfg.ClientID, s.cfg.ClientSecret), s.refresh) {
		t.Errorf("%s: the ended session's refresh token introspects active for its client", what)
	}
	if _, err := w.refreshWith(s.cfg, s.refresh); !isInvalidGrant(err) {
		t.Errorf("%s: refresh of the ended session: %v, want 400 invalid_grant", what, err)
	}
}

// sessionJSON is an entry of the sessions list as REST shows it.
type sessionJSON struct {
	ID                    string `json:"id"`
	ClientID              string `json:"client_id"`
	AuthorizationServerID string `json:"authorization_server_id"`
	CreatedAt             string `json:"created_at"`
	ExpiresAt             string `json:"expires_at"`
	LastUsedAt            string `json:"last_used_at"`
}

type sessionsPage struct {
	Sessions      []sessionJSON `json:"sessions"`
	NextPageToken string        `json:"next_page_token"`
}

func (w *sessionWorld) sessionsPath(pool, user string) string {
	return w.identity + "/pools/" + pool + "/users/" + user + "/sessions"
}

// sessions lists every live session of a user in one page.
func (w *sessionWorld) sessions(t *testing.T, pool, user string) map[string]sessionJSON {
	t.Helper()
	var page sessionsPage
	call(t, w.env, "GET", w.sessionsPath(pool, user)+"?page_size=100", w.tn.SystemToken, nil, &page, http.StatusOK)
	out := map[string]sessionJSON{}
	for _, s := range page.Sessions {
		out[s.ID] = s
	}
	return out
}

func rfc3339(t *testing.T, field, v string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Fatalf("%s %q is not RFC 3339: %v", field, v, err)
	}
	return ts
}

func TestLoginSessions(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		w := newSessionWorld(t, env, "acme")

		t.Run("a login's access and ID tokens carry the sid the sessions list shows", func(t *testing.T) {
			user, email := w.newUser(t, sessPool)
			before := time.Now().Unix()
			tok, err := w.app.PasswordCredentialsToken(w.ctx, email, sessPassword)
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now().Unix()
			verifier := idTokenVerifierAt(t, env, "acme", sessWS, w.app.ClientID)
			type idClaims struct {
				SID      string `json:"sid"`
				AuthTime int64  `json:"auth_time"`
			}
			idOf := func(tok *oauth2.Token) idClaims {
				t.Helper()
				raw, _ := tok.Extra("id_token").(string)
				idt, err := verifier.Verify(w.ctx, raw)
				if err != nil {
					t.Fatalf("go-oidc refuses the ID token: %v", err)
				}
				var c idClaims
				if err := idt.Claims(&c); err != nil {
					t.Fatal(err)
				}
				return c
			}
			sid := w.sidOf(t, sessWS, tok.AccessToken)
			first := idOf(tok)
			if first.SID != sid || first.AuthTime < before || first.AuthTime > after {
				t.Fatalf("ID token sid %q auth_time %d; want the access token's sid %q and the login's time (%d to %d)",
					first.SID, first.AuthTime, sid, before, after)
			}
			listed := w.sessions(t, sessPool, user)
			if s, ok := listed[sid]; len(listed) != 1 || !ok || s.ClientID != w.app.ClientID || s.AuthorizationServerID != sessWS {
				t.Fatalf("sessions of the user: %+v, want one: %s of client %s in %s", listed, sid, w.app.ClientID, sessWS)
			}

			refreshed, err := w.refreshWith(w.app, tok.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			again := idOf(refreshed)
			if got := w.sidOf(t, sessWS, refreshed.AccessToken); got != sid || again.SID != sid || again.AuthTime != first.AuthTime {
				t.Fatalf("after a refresh: access sid %q, ID token sid %q auth_time %d; want sid %q, auth_time %d (the login's)",
					got, again.SID, again.AuthTime, sid, first.AuthTime)
			}
			second := w.login(t, w.app, sessWS, email)
			if second.sid == sid {
				t.Fatal("two logins share a session")
			}
			if listed := w.sessions(t, sessPool, user); len(listed) != 2 {
				t.Fatalf("after a second login the user has %d sessions, want 2", len(listed))
			}
		})

		// bystander is a session of another user and client, which no cause below may touch.
		_, bystanderEmail := w.newUser(t, sessPool)
		bystander := w.login(t, w.other, sessWS, bystanderEmail)

		doomed := 0
		causes := []struct {
			name string
			// ownClient: the session is of a client of its own (which the cause may delete), else of w.app.
			ownClient bool
			end       func(t *testing.T, user string, s *loginSession)
			// userGone: the user no longer exists afterwards. userEnds: every session of the user ends;
			// clientEnds: every session of the session's client ends.
			userGone, userEnds, clientEnds bool
		}{
			{name: "the user is set inactive", userEnds: true, end: func(t *testing.T, user string, _ *loginSession) {
				call(t, env, "PUT", w.identity+"/pools/"+sessPool+"/users/"+user, w.tn.SystemToken, map[string]any{"status": "inactive"}, nil, http.StatusOK)
			}},
			{name: "the user is deleted", userGone: true, userEnds: true, end: func(t *testing.T, user string, _ *loginSession) {
				call(t, env, "DELETE", w.identity+"/pools/"+sessPool+"/users/"+user, w.tn.SystemToken, nil, nil, http.StatusNoContent)
			}},
			{name: "the user's password is set through the API", userEnds: true, end: func(t *testing.T, user string, _ *loginSession) {
				if code := env.CallJSON(t, "POST", w.identity+"/pools/"+sessPool+"/users/"+user+"/password", w.tn.SystemToken,
					map[string]string{"password": "An0ther-passphrase!"}, nil); code/100 != 2 {
					t.Fatalf("set password: %d", code)
				}
			}},
			{name: "an admin ends the session", end: func(t *testing.T, user string, s *loginSession) {
				call(t, env, "DELETE", w.sessionsPath(sessPool, user)+"/"+s.sid, w.tn.SystemToken, nil, nil, http.StatusNoContent)
			}},
			{name: "an admin ends all the user's sessions", userEnds: true, end: func(t *testing.T, user string, _ *loginSession) {
				call(t, env, "DELETE", w.sessionsPath(sessPool, user), w.tn.SystemToken, nil, nil, http.StatusNoContent)
			}},
			{name: "a spent refresh token is presented again", end: func(t *testing.T, _ string, s *loginSession) {
				if _, err := w.refreshWith(s.cfg, s.spent[0]); !isInvalidGrant(err) {
					t.Fatalf("reuse of a spent refresh token: %v, want 400 invalid_grant", err)
				}
			}},
			{name: "its client revokes its refresh token", end: func(t *testing.T, _ string, s *loginSession) {
				code, out, _ := tokenManagement(t, env, "acme", sessWS, "revoke", basic(s.cfg.ClientID, s.cfg.ClientSecret),
					url.Values{"token": {s.refresh}, "token_type_hint": {"refresh_token"}})
				if code != http.StatusOK {
					t.Fatalf("revoke: %d %v", code, out)
				}
			}},
			{name: "its client is deleted", ownClient: true, clientEnds: true, end: func(t *testing.T, _ string, s *loginSession) {
				call(t, env, "DELETE", w.admins+"/clients/"+s.cfg.ClientID, w.tn.AdminToken, nil, nil, http.StatusNoContent)
				// Registered again under the same id, the client can present the old refresh tokens, which must
				// belong to nobody now. Its sessions share s.cfg.
				again := w.passwordClient(t, sessWS, map[string]any{"client_id": s.cfg.ClientID, "client_name": "doomed again"})
				s.cfg.ClientSecret = again.ClientSecret
			}},
		}
		for _, c := range causes {
			t.Run("a session ends when "+c.name, func(t *testing.T) {
				user, email := w.newUser(t, sessPool)
				cfg := w.app
				if c.ownClient {
					doomed++
					cfg = w.passwordClient(t, sessWS, map[string]any{"client_id": fmt.Sprintf("doomed-%d", doomed), "client_name": "doomed"})
				}
				// The target has two access tokens and a spent refresh token when the cause strikes; the others
				// share its user, its client, or neither.
				target := w.login(t, cfg, sessWS, email)
				w.mustLive(t, target, "the session before the cause")
				twin := w.login(t, cfg, sessWS, email)
				sibling := w.login(t, w.other, sessWS, email)
				_, neighbourEmail := w.newUser(t, sessPool)
				neighbour := w.login(t, cfg, sessWS, neighbourEmail)

				c.end(t, user, target)

				w.mustBeEnded(t, target, "the session")
				type expectation struct {
					what string
					s    *loginSession
					ends bool
				}
				others := []expectation{
					{"the user's other session with the same client", twin, c.userEnds || c.clientEnds},
					{"the user's session with another client", sibling, c.userEnds},
					{"another user's session with the same client", neighbour, c.clientEnds},
					{"another user's session with another client", bystander, false},
				}
				for _, o := range others {
					if o.ends {
						w.mustBeEnded(t, o.s, o.what)
					} else {
						w.mustLive(t, o.s, o.what)
					}
				}
				if c.userGone {
					if code := env.CallJSON(t, "GET", w.sessionsPath(sessPool, user), w.tn.SystemToken, nil, nil); code != http.StatusNotFound {
						t.Errorf("sessions of the deleted user: %d, want 404", code)
					}
					return
				}
				listed := w.sessions(t, sessPool, user)
				for _, o := range []expectation{{"the session", target, true}, others[0], others[1]} {
					if _, ok := listed[o.s.sid]; ok == o.ends {
						t.Errorf("%s listed: %v, want %v", o.what, ok, !o.ends)
					}
				}
			})
		}

		t.Run("a session ends when its pool is deleted", func(t *testing.T) {
			call(t, env, "POST", w.identity+"/pools", w.tn.SystemToken, map[string]any{"id": "visitors", "name": "Visitors",
				"authentication_mechanisms": []string{"password"}, "password_settings": cheapHashing}, nil, http.StatusCreated)
			idp := w.linkPool(t, sessWS, "visitors", 1)
			_, email := w.newUser(t, "visitors")
			visitor := w.login(t, w.app, sessWS, email)
			w.mustLive(t, visitor, "before the pool's deletion")
			call(t, env, "DELETE", w.identity+"/pools/visitors", w.tn.SystemToken, nil, nil, http.StatusNoContent)
			w.mustBeEnded(t, visitor, "the session of a user of the deleted pool")
			w.mustLive(t, bystander, "a session of another pool's user")
			call(t, env, "DELETE", w.admins+"/servers/"+sessWS+"/idps/"+idp, w.tn.AdminToken, nil, nil, http.StatusNoContent)
		})

		t.Run("a lockout refuses new logins but ends no session", func(t *testing.T) {
			user, email := w.newUser(t, sessPool)
			s := w.login(t, w.app, sessWS, email)
			for i := range 3 {
				if _, err := w.app.PasswordCredentialsToken(w.ctx, email, fmt.Sprintf("wrong-guess-%d", i)); !isInvalidGrant(err) {
					t.Fatalf("wrong guess %d: %v, want invalid_grant", i, err)
				}
			}
			if _, err := w.app.PasswordCredentialsToken(w.ctx, email, sessPassword); !isInvalidGrant(err) {
				t.Fatalf("login of the locked user with the right password: %v, want invalid_grant", err)
			}
			w.mustLive(t, s, "the locked user's session")
			if _, ok := w.sessions(t, sessPool, user)[s.sid]; !ok {
				t.Error("the locked user's session is no longer listed")
			}
			// The refusal was the lockout: lifted, the same login succeeds.
			call(t, env, "POST", w.identity+"/pools/"+sessPool+"/users/"+user+"/unlock", w.tn.SystemToken, map[string]any{}, nil, http.StatusOK)
			w.login(t, w.app, sessWS, email)
			w.mustLive(t, s, "the session after the unlock")
		})

		t.Run("no token outlives the session_ttl", func(t *testing.T) {
			const ttl = 3 * time.Second
			call(t, env, "POST", w.admins+"/servers", w.tn.AdminToken, map[string]any{"id": "brief", "name": "Brief sessions",
				"grant_types": []string{"password", "refresh_token"}, "access_token_ttl": "3600s", "refresh_token_ttl": "3600s",
				"session_ttl": "3s"}, nil, http.StatusCreated)
			w.linkPool(t, "brief", sessPool, 0)
			cfg := w.passwordClient(t, "brief", nil)
			user, email := w.newUser(t, sessPool)
			tok, err := cfg.PasswordCredentialsToken(w.ctx, email, sessPassword)
			if err != nil {
				t.Fatal(err)
			}
			sid := w.sidOf(t, "brief", tok.AccessToken)
			listed, ok := w.sessions(t, sessPool, user)[sid]
			if !ok {
				t.Fatal("the session is not listed")
			}
			end := rfc3339(t, "expires_at", listed.ExpiresAt)
			if got := end.Sub(rfc3339(t, "created_at", listed.CreatedAt)); got != ttl {
				t.Fatalf("the session lasts %v, want the workspace's session_ttl %v", got, ttl)
			}
			// Every token of the session ends with it, exactly: the 3600s lifetimes would reach far beyond.
			checkCapped := func(tok *oauth2.Token, what string) {
				t.Helper()
				c := verifiedClaims(t, env, "acme", "brief", tok.AccessToken)
				exp, _ := c["exp"].(float64)
				iat, _ := c["iat"].(float64)
				if int64(exp) != end.Unix() || tok.ExpiresIn != int64(exp-iat) {
					t.Errorf("%s: access token exp %d, expires_in %d (iat %d); want exp %d, the session's end",
						what, int64(exp), tok.ExpiresIn, int64(iat), end.Unix())
				}
				code, out := introspect(t, env, "acme", "brief", basic(cfg.ClientID, cfg.ClientSecret), tok.RefreshToken)
				refreshExp, _ := out["exp"].(float64)
				if !active(t, code, out) || int64(refreshExp) != end.Unix() {
					t.Errorf("%s: refresh token active %v until %d; want active until %d, the session's end", what, out["active"], int64(refreshExp), end.Unix())
				}
			}
			checkCapped(tok, "the login")
			// Refreshes through the session, up to a margin before its end wide enough for a slow machine.
			for refreshes := 1; refreshes == 1 || time.Until(end) > time.Second; refreshes++ {
				if tok, err = w.refreshWith(cfg, tok.RefreshToken); err != nil {
					t.Fatalf("refresh %v before the session's end: %v", time.Until(end), err)
				}
				checkCapped(tok, fmt.Sprintf("refresh %d", refreshes))
				time.Sleep(200 * time.Millisecond)
			}
			time.Sleep(time.Until(end) + 50*time.Millisecond)
			if _, err := w.refreshWith(cfg, tok.RefreshToken); !isInvalidGrant(err) {
				t.Fatalf("refresh after the session's end (the refresh token's own lifetime is 1h): %v, want 400 invalid_grant", err)
			}
			if _, ok := w.sessions(t, sessPool, user)[sid]; ok {
				t.Error("the session is listed after its end")
			}
		})

		t.Run("the sessions API", func(t *testing.T) {
			user, email := w.newUser(t, sessPool)
			all := []*loginSession{w.login(t, w.app, sessWS, email), w.login(t, w.app, sessWS, email), w.login(t, w.other, sessWS, email)}
			byID := map[string]*loginSession{}
			for _, s := range all {
				byID[s.sid] = s
			}
			path := w.sessionsPath(sessPool, user)

			t.Run("page_size=1 walks every session once", func(t *testing.T) {
				seen := map[string]bool{}
				token, pages := "", 0
				for {
					q := url.Values{"page_size": {"1"}}
					if token != "" {
						q.Set("page_token", token)
					}
					var page sessionsPage
					call(t, env, "GET", path+"?"+q.Encode(), w.tn.SystemToken, nil, &page, http.StatusOK)
					if pages++; pages > len(all)+1 {
						t.Fatalf("more than %d pages", len(all)+1)
					}
					if len(page.Sessions) > 1 {
						t.Fatalf("page_size=1 answered %d sessions", len(page.Sessions))
					}
					for _, s := range page.Sessions {
						if seen[s.ID] || byID[s.ID] == nil {
							t.Fatalf("session %s listed twice or not the user's", s.ID)
						}
						seen[s.ID] = true
					}
					if token = page.NextPageToken; token == "" {
						break
					}
				}
				if len(seen) != len(all) {
					t.Fatalf("the walk saw %d sessions, want %d", len(seen), len(all))
				}
			})

			t.Run("each entry tells the session and never a token or secret", func(t *testing.T) {
				req, _ := http.NewRequest("GET", env.HTTPURL+path, nil)
				req.Header.Set("Authorization", "Bearer "+w.tn.SystemToken)
				resp, err := env.HTTP.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body := string(raw)
				secrets := []string{w.app.ClientSecret, w.other.ClientSecret, sessPassword}
				for _, s := range all {
					secrets = append(secrets, s.refresh)
					secrets = append(secrets, s.access...)
				}
				for _, secret := range secrets {
					if strings.Contains(body, secret) {
						t.Fatalf("the sessions list shows a token or secret: %s", body)
					}
				}
				var fields struct {
					Sessions []map[string]any `json:"sessions"`
				}
				call(t, env, "GET", path, w.tn.SystemToken, nil, &fields, http.StatusOK)
				// The contract's fields, and kind (token or browser); never a token or a secret.
				want := []string{"authorization_server_id", "client_id", "created_at", "expires_at", "id", "kind", "last_used_at"}
				for _, s := range fields.Sessions {
					var keys []string
					for k := range s {
						keys = append(keys, k)
					}
					slices.Sort(keys)
					if !slices.Equal(keys, want) {
						t.Fatalf("a session entry has fields %v, want %v", keys, want)
					}
				}
				listed := w.sessions(t, sessPool, user)
				for sid, s := range byID {
					l, ok := listed[sid]
					if !ok || l.ClientID != s.cfg.ClientID || l.AuthorizationServerID != sessWS {
						t.Fatalf("session %s listed as %+v, want client %s in %s", sid, l, s.cfg.ClientID, sessWS)
					}
					created := rfc3339(t, "created_at", l.CreatedAt)
					if end := rfc3339(t, "expires_at", l.ExpiresAt); end.Sub(created) != 90*24*time.Hour {
						t.Errorf("session %s lasts %v, want the default session_ttl of 90 days", sid, end.Sub(created))
					}
					if used := rfc3339(t, "last_used_at", l.LastUsedAt); used.Before(created) {
						t.Errorf("session %s last used %v, before its creation %v", sid, used, created)
					}
				}
				before := rfc3339(t, "last_used_at", listed[all[0].sid].LastUsedAt)
				w.refreshed(t, all[0], "a listed session")
				if after := rfc3339(t, "last_used_at", w.sessions(t, sessPool, user)[all[0].sid].LastUsedAt); !after.After(before) {
					t.Errorf("last_used_at after a refresh %v, want after %v", after, before)
				}
			})

			t.Run("unknown users and sessions are 404", func(t *testing.T) {
				otherUser, otherEmail := w.newUser(t, sessPool)
				foreign := w.login(t, w.app, sessWS, otherEmail)
				notFound := []struct{ name, method, path string }{
					{"list of an unknown user", "GET", w.sessionsPath(sessPool, "no-such-user")},
					{"end one of an unknown user", "DELETE", w.sessionsPath(sessPool, "no-such-user") + "/" + all[0].sid},
					{"end all of an unknown user", "DELETE", w.sessionsPath(sessPool, "no-such-user")},
					{"list in an unknown pool", "GET", w.sessionsPath("no-such-pool", user)},
					{"an unknown session", "DELETE", path + "/no-such-session"},
					{"another user's session", "DELETE", path + "/" + foreign.sid},
				}
				for _, c := range notFound {
					var e struct {
						StatusCode int    `json:"status_code"`
						ErrorCode  string `json:"error_code"`
					}
					if code := env.CallJSON(t, c.method, c.path, w.tn.SystemToken, nil, &e); code != http.StatusNotFound || e.StatusCode != 404 || e.ErrorCode != "not_found" {
						t.Errorf("%s: %d %+v, want 404 not_found", c.name, code, e)
					}
				}
				w.mustLive(t, foreign, "the session addressed under another user")
				if _, ok := w.sessions(t, sessPool, otherUser)[foreign.sid]; !ok {
					t.Error("the session addressed under another user is no longer listed")
				}
			})

			t.Run("only the identity plane opens it", func(t *testing.T) {
				callers := []struct {
					name, token string
					want        int
				}{
					{"no token", "", http.StatusUnauthorized},
					{"an admin-workspace token", w.tn.AdminToken, http.StatusForbidden},
					{"a session's own access token", all[0].access[0], http.StatusForbidden},
				}
				requests := []struct{ method, path string }{{"GET", path}, {"DELETE", path + "/" + all[0].sid}, {"DELETE", path}}
				for _, c := range callers {
					for _, r := range requests {
						if code := env.CallJSON(t, r.method, r.path, c.token, nil, nil); code != c.want {
							t.Errorf("%s %s with %s: %d, want %d", r.method, r.path, c.name, code, c.want)
						}
					}
				}
				w.mustLive(t, all[0], "a session after refused attempts to end it")
			})

			t.Run("over gRPC", func(t *testing.T) {
				sys := testenv.WithToken(context.Background(), w.tn.SystemToken)
				resp, err := w.tokens.ListUserSessions(sys, &tokenv1.ListUserSessionsRequest{TenantId: "acme", PoolId: sessPool, UserId: user})
				if err != nil || len(resp.Sessions) != len(all) {
					t.Fatalf("ListUserSessions: %v %v", resp, err)
				}
				for _, s := range resp.Sessions {
					if byID[s.Id] == nil || s.ClientId != byID[s.Id].cfg.ClientID || s.AuthorizationServerId != sessWS {
						t.Fatalf("listed over gRPC: %v", s)
					}
				}
				refusals := []struct {
					name string
					ctx  context.Context
					want codes.Code
				}{
					{"no token", context.Background(), codes.Unauthenticated},
					{"an admin-workspace token", testenv.WithToken(context.Background(), w.tn.AdminToken), codes.PermissionDenied},
				}
				for _, r := range refusals {
					_, err := w.tokens.ListUserSessions(r.ctx, &tokenv1.ListUserSessionsRequest{TenantId: "acme", PoolId: sessPool, UserId: user})
					if status.Code(err) != r.want {
						t.Errorf("ListUserSessions with %s: %v, want %s", r.name, err, r.want)
					}
					_, err = w.tokens.DeleteUserSessions(r.ctx, &tokenv1.DeleteUserSessionsRequest{TenantId: "acme", PoolId: sessPool, UserId: user})
					if status.Code(err) != r.want {
						t.Errorf("DeleteUserSessions with %s: %v, want %s", r.name, err, r.want)
					}
				}
				_, err = w.tokens.DeleteUserSession(sys, &tokenv1.DeleteUserSessionRequest{TenantId: "acme", PoolId: sessPool, UserId: user, SessionId: "no-such-session"})
				if status.Code(err) != codes.NotFound {
					t.Errorf("DeleteUserSession of an unknown session: %v, want NotFound", err)
				}
				if _, err := w.tokens.DeleteUserSession(sys, &tokenv1.DeleteUserSessionRequest{TenantId: "acme", PoolId: sessPool, UserId: user, SessionId: all[0].sid}); err != nil {
					t.Fatal(err)
				}
				w.mustBeEnded(t, all[0], "the session ended over gRPC")
				w.mustLive(t, all[1], "the user's other session")
				if _, err := w.tokens.DeleteUserSessions(sys, &tokenv1.DeleteUserSessionsRequest{TenantId: "acme", PoolId: sessPool, UserId: user}); err != nil {
					t.Fatal(err)
				}
				for _, s := range all[1:] {
					w.mustBeEnded(t, s, "a session after all were ended over gRPC")
				}
				var page sessionsPage
				call(t, env, "GET", path, w.tn.SystemToken, nil, &page, http.StatusOK)
				if len(page.Sessions) != 0 || page.NextPageToken != "" {
					t.Fatalf("sessions after all ended: %+v", page)
				}
			})
		})
	})
}

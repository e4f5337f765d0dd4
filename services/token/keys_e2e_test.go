package token_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/authplane/authplane/pkg/testenv"
)

// These tests drive the signing keys' life through real processes: the keys API, on-demand and scheduled
// rotation, revocation, a change of algorithm, each algorithm checked by two independent JOSE libraries (go-oidc on
// go-jose, and lestrrat-go/jwx), and the rotation schedule shared by two processes on PostgreSQL.

// keysMaxAge is the JWKS cache period the tests run with: short, so scheduled rotations come quickly.
const keysMaxAge = 2 * time.Second

type keyJSON struct {
	Kid         string         `json:"kid"`
	Alg         string         `json:"alg"`
	State       string         `json:"state"`
	PublicJWK   map[string]any `json:"public_jwk"`
	CreatedAt   string         `json:"created_at"`
	ActivatedAt *string        `json:"activated_at"`
	RetiredAt   *string        `json:"retired_at"`
}

// keysOf lists a workspace's keys through the admin API, by state (revoked ones included).
func keysOf(t *testing.T, env *testenv.Env, tenant, ws, admin string) map[string][]keyJSON {
	t.Helper()
	var out struct{ Keys []keyJSON }
	call(t, env, "GET", "/api/admin/"+tenant+"/servers/"+ws+"/keys", admin, nil, &out, http.StatusOK)
	byState := map[string][]keyJSON{}
	for _, k := range out.Keys {
		if strings.Contains(fmt.Sprint(k.PublicJWK), `"d"`) || k.PublicJWK["d"] != nil || k.PublicJWK["p"] != nil {
			t.Fatalf("the keys API shows private material: %v", k.PublicJWK)
		}
		byState[k.State] = append(byState[k.State], k)
	}
	return byState
}

// jwksKids reads a workspace's JWKS over HTTP, with its Cache-Control.
func jwksKids(t *testing.T, env *testenv.Env, tenant, ws string) (map[string]string, string) {
	t.Helper()
	resp, err := env.HTTP.Get(env.Issuer(tenant, ws) + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kid, Alg, Kty string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	kids := map[string]string{}
	for _, k := range set.Keys {
		kids[k.Kid] = k.Alg
	}
	return kids, resp.Header.Get("Cache-Control")
}

// ccToken gets a client_credentials token with golang.org/x/oauth2.
func ccToken(t *testing.T, env *testenv.Env, tenant, ws, id, secret string) string {
	t.Helper()
	cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: env.Issuer(tenant, ws) + "/oauth2/token",
		AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cfg.Token(context.WithValue(context.Background(), oauth2.HTTPClient, env.HTTP))
	if err != nil {
		t.Fatalf("client_credentials at %s/%s: %v", tenant, ws, err)
	}
	return tok.AccessToken
}

// keyOf reads a JWT's header kid and alg.
func keyOf(t *testing.T, tok string) (kid, alg string) {
	t.Helper()
	var h struct{ Kid, Alg string }
	head, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil || json.Unmarshal(raw, &h) != nil {
		t.Fatalf("header of %.20s…: %v", tok, err)
	}
	return h.Kid, h.Alg
}

// verifiesWithJWX checks an access token against the workspace's published JWKS with lestrrat-go/jwx, a library
// independent of the server's own go-jose.
func verifiesWithJWX(t *testing.T, env *testenv.Env, tenant, ws, tok string) error {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), env.Issuer(tenant, ws)+"/.well-known/jwks.json", jwk.WithHTTPClient(env.HTTP))
	if err != nil {
		t.Fatal(err)
	}
	_, err = jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithIssuer(env.Issuer(tenant, ws)), jwt.WithValidate(true))
	return err
}

func TestSigningKeysLife(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b), testenv.WithEnv(map[string]string{"AUTHPLANE_JWKS_MAX_AGE": keysMaxAge.String()}))
		w := newSessionWorld(t, env, "keys")
		admin := w.tn.AdminToken
		svc, svcSecret := env.CreateClient(t, "keys", admin, map[string]any{"authorization_server_id": sessWS,
			"client_name": "service", "grant_types": []string{"client_credentials"}})

		// A fresh workspace: a current and a next key, both published, with how long they may be cached.
		k := keysOf(t, env, "keys", sessWS, admin)
		if len(k["current"]) != 1 || len(k["next"]) != 1 || k["current"][0].Alg != "ES256" || k["current"][0].ActivatedAt == nil {
			t.Fatalf("keys of a fresh workspace: %+v", k)
		}
		first, next := k["current"][0].Kid, k["next"][0].Kid
		kids, cacheControl := jwksKids(t, env, "keys", sessWS)
		if len(kids) != 2 || kids[first] == "" || kids[next] == "" || cacheControl != "public, max-age=2" {
			t.Fatalf("JWKS %v, Cache-Control %q", kids, cacheControl)
		}
		before := ccToken(t, env, "keys", sessWS, svc, svcSecret)
		if kid, _ := keyOf(t, before); kid != first {
			t.Fatalf("signed by %s, want the current key %s", kid, first)
		}

		// On demand: the next key signs, the old one retires but still verifies the tokens it signed.
		var rotated keyJSON
		call(t, env, "POST", "/api/admin/keys/servers/"+sessWS+"/keys/rotate", admin, map[string]any{}, &rotated, http.StatusOK)
		if rotated.Kid != next || rotated.State != "current" {
			t.Fatalf("rotate answered %+v, want the former next key %s as current", rotated, next)
		}
		k = keysOf(t, env, "keys", sessWS, admin)
		if len(k["retired"]) != 1 || k["retired"][0].Kid != first || k["retired"][0].RetiredAt == nil || len(k["next"]) != 1 {
			t.Fatalf("after rotation: %+v", k)
		}
		after := ccToken(t, env, "keys", sessWS, svc, svcSecret)
		if kid, _ := keyOf(t, after); kid != next {
			t.Fatalf("after rotation signed by %s, want %s", kid, next)
		}
		for name, tok := range map[string]string{"before": before, "after": after} {
			if !w.active(t, tok) {
				t.Fatalf("the token issued %s the rotation is not active", name)
			}
			if err := verifiesWithJWX(t, env, "keys", sessWS, tok); err != nil {
				t.Fatalf("jwx refuses the token issued %s the rotation: %v", name, err)
			}
		}
		// The admin plane's own keys rotate too, and an admin token signed before still opens it.
		call(t, env, "POST", "/api/admin/keys/servers/admin/keys/rotate", admin, map[string]any{}, nil, http.StatusOK)
		call(t, env, "GET", "/api/admin/keys/servers", admin, nil, nil, http.StatusOK)

		// Revoking the retired key refuses what it signed, at once, everywhere; other tokens stand.
		call(t, env, "POST", "/api/admin/keys/servers/"+sessWS+"/keys/"+first+"/revoke", admin, map[string]any{}, nil, http.StatusOK)
		if w.active(t, before) {
			t.Fatal("a token of a revoked key is still active")
		}
		if kids, _ := jwksKids(t, env, "keys", sessWS); kids[first] != "" {
			t.Fatalf("the JWKS still publishes the revoked key: %v", kids)
		}
		if !w.active(t, after) {
			t.Fatal("revoking a retired key refused a token of the current one")
		}
		call(t, env, "POST", "/api/admin/keys/servers/"+sessWS+"/keys/"+first+"/revoke", admin, map[string]any{}, nil, http.StatusNotFound)
		call(t, env, "POST", "/api/admin/keys/servers/"+sessWS+"/keys/nope/revoke", admin, map[string]any{}, nil, http.StatusNotFound)

		// Revoking the current key under load: the next key takes over and no token request fails.
		var failures, issued atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cfg := clientcredentials.Config{ClientID: svc, ClientSecret: svcSecret, TokenURL: env.Issuer("keys", sessWS) + "/oauth2/token",
					AuthStyle: oauth2.AuthStyleInHeader}
				ctx := context.WithValue(context.Background(), oauth2.HTTPClient, env.HTTP)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := cfg.Token(ctx); err != nil {
						failures.Add(1)
					}
					issued.Add(1)
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		k = keysOf(t, env, "keys", sessWS, admin)
		current, successor := k["current"][0].Kid, k["next"][0].Kid
		call(t, env, "POST", "/api/admin/keys/servers/"+sessWS+"/keys/"+current+"/revoke", admin, map[string]any{}, nil, http.StatusOK)
		fresh := ccToken(t, env, "keys", sessWS, svc, svcSecret)
		time.Sleep(200 * time.Millisecond)
		close(stop)
		wg.Wait()
		if failures.Load() != 0 || issued.Load() == 0 {
			t.Fatalf("%d of %d token requests failed while the current key was revoked", failures.Load(), issued.Load())
		}
		if kid, _ := keyOf(t, fresh); kid != successor {
			t.Fatalf("after revoking the current key, tokens are signed by %s, want the former next key %s", kid, successor)
		}
		if w.active(t, after) {
			t.Fatal("a token of the revoked current key is still active")
		}
		if !w.active(t, fresh) {
			t.Fatal("a token of the new current key is not active")
		}

		// A change of algorithm is a rotation: a next key of the new algorithm is published at once and signs
		// once clients may have fetched it (one cache period, then the schedule's tick).
		call(t, env, "PUT", "/api/admin/keys/servers/"+sessWS, admin, map[string]any{"signing_alg": "EdDSA"}, nil, http.StatusOK)
		k = keysOf(t, env, "keys", sessWS, admin)
		if len(k["next"]) != 1 || k["next"][0].Alg != "EdDSA" || k["current"][0].Alg != "ES256" {
			t.Fatalf("right after the change of algorithm: %+v", k)
		}
		es256 := ccToken(t, env, "keys", sessWS, svc, svcSecret)
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, alg := keyOf(t, ccToken(t, env, "keys", sessWS, svc, svcSecret)); alg == "EdDSA" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("tokens are still not EdDSA-signed: %+v", keysOf(t, env, "keys", sessWS, admin))
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !w.active(t, es256) {
			t.Fatal("an ES256 token issued before the change stopped verifying")
		}
		var discovery struct {
			Algs []string `json:"id_token_signing_alg_values_supported"`
		}
		resp, err := env.HTTP.Get(env.Issuer("keys", sessWS) + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&discovery)
		resp.Body.Close()
		if len(discovery.Algs) != 1 || discovery.Algs[0] != "EdDSA" {
			t.Fatalf("discovery lists %v, want [EdDSA]", discovery.Algs)
		}

		// The schedule: a short rotation period rotates by itself.
		call(t, env, "PUT", "/api/admin/keys/servers/"+sessWS, admin, map[string]any{"key_rotation_period": "10s"}, nil, http.StatusOK)
		was := keysOf(t, env, "keys", sessWS, admin)["current"][0].Kid
		deadline = time.Now().Add(45 * time.Second)
		for keysOf(t, env, "keys", sessWS, admin)["current"][0].Kid == was {
			if time.Now().After(deadline) {
				t.Fatal("the key did not rotate on its schedule")
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
}

// active asks the resource server's introspection whether a token of sessWS is active.
func (w *sessionWorld) active(t *testing.T, tok string) bool {
	t.Helper()
	return isActive(t, w.env, w.tn.ID, sessWS, basic(w.rsID, w.rsSecret), tok)
}

func TestEachSigningAlgorithmVerifiesWithTwoLibraries(t *testing.T) {
	env := testenv.Start(t)
	w := newSessionWorld(t, env, "algs")
	_, email := w.newUser(t, sessPool)
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			ws := "ws-" + strings.ToLower(alg)
			call(t, env, "POST", w.admins+"/servers", w.tn.AdminToken, map[string]any{"id": ws, "signing_alg": alg,
				"grant_types": []string{"password", "refresh_token"}}, nil, http.StatusCreated)
			w.linkPool(t, ws, sessPool, 0)
			cfg := w.passwordClient(t, ws, nil)
			tok, err := cfg.PasswordCredentialsToken(w.ctx, email, sessPassword)
			if err != nil {
				t.Fatal(err)
			}
			if _, got := keyOf(t, tok.AccessToken); got != alg {
				t.Fatalf("access token signed with %s, want %s", got, alg)
			}
			// go-oidc, as a relying party does: discovery, then the ID token against the JWKS.
			ctx := oidc.ClientContext(w.ctx, env.HTTP)
			provider, err := oidc.NewProvider(ctx, env.Issuer(w.tn.ID, ws))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tok.Extra("id_token").(string)
			if _, err := provider.Verifier(&oidc.Config{ClientID: cfg.ClientID, SupportedSigningAlgs: []string{alg}}).Verify(ctx, raw); err != nil {
				t.Fatalf("go-oidc refuses the %s ID token: %v", alg, err)
			}
			// jwx, as a resource server does: the access token against the JWKS.
			if err := verifiesWithJWX(t, env, w.tn.ID, ws, tok.AccessToken); err != nil {
				t.Fatalf("jwx refuses the %s access token: %v", alg, err)
			}
			k := keysOf(t, env, w.tn.ID, ws, w.tn.AdminToken)
			if k["current"][0].Alg != alg || k["next"][0].Alg != alg {
				t.Fatalf("keys %+v", k)
			}
			if alg == "RS256" {
				if n, _ := k["current"][0].PublicJWK["n"].(string); len(n) < 342 { // base64url of 256 bytes
					t.Fatalf("RSA modulus of %d base64 characters: under 2048 bits", len(n))
				}
			}
		})
	}
	var bad map[string]any
	if code := env.CallJSON(t, "POST", w.admins+"/servers", w.tn.AdminToken, map[string]any{"id": "ws-hs", "signing_alg": "HS256"}, &bad); code != 400 {
		t.Fatalf("signing_alg HS256: %d %v, want 400", code, bad)
	}
}

// TestScheduledRotationHappensOnceAcrossProcesses: two processes on one PostgreSQL database both run the rotation
// schedule; each due rotation happens exactly once, and both switch to the new key.
func TestScheduledRotationHappensOnceAcrossProcesses(t *testing.T) {
	vars := map[string]string{"AUTHPLANE_JWKS_MAX_AGE": keysMaxAge.String()}
	a := testenv.Start(t, testenv.WithBackend(testenv.Postgres), testenv.WithEnv(vars))
	b := testenv.Start(t, testenv.WithDatabase(a.DatabaseURL, a.MasterKey), testenv.WithIssuer(a.HTTPURL),
		testenv.WithRootSecret(a.RootSecret), testenv.WithEnv(vars))
	tn := a.NewTenant(t, "sched")
	var created map[string]any
	if code := a.CallJSON(t, "POST", "/api/admin/sched/servers", tn.AdminToken, map[string]any{"id": "ws", "key_rotation_period": "10s"}, &created); code != http.StatusCreated {
		t.Fatalf("create workspace: %d %v", code, created)
	}
	id, secret := a.CreateClient(t, "sched", tn.AdminToken, map[string]any{"authorization_server_id": "ws", "client_name": "svc"})
	ccToken(t, a, "sched", "ws", id, secret) // makes the keys
	ccToken(t, b, "sched", "ws", id, secret)
	start := keysOf(t, a, "sched", "ws", tn.AdminToken)["current"][0].Kid

	// Wait for two scheduled rotations.
	deadline := time.Now().Add(60 * time.Second)
	for len(keysOf(t, a, "sched", "ws", tn.AdminToken)["retired"]) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than two rotations in 60 s: %+v", keysOf(t, a, "sched", "ws", tn.AdminToken))
		}
		time.Sleep(time.Second)
	}
	k := keysOf(t, a, "sched", "ws", tn.AdminToken)
	if len(k["current"]) != 1 || len(k["next"]) != 1 {
		t.Fatalf("keys after rotations: %+v", k)
	}
	// Exactly once per due time: the retired keys retired at least one period apart, never twice at once.
	retired := k["retired"]
	times := make([]time.Time, 0, len(retired))
	for _, r := range retired {
		at, err := time.Parse(time.RFC3339Nano, *r.RetiredAt)
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, at)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i-1].Sub(times[i]); gap < 9*time.Second {
			t.Fatalf("two rotations %s apart: a due rotation ran twice (%+v)", gap, retired)
		}
	}
	if retired[len(retired)-1].Kid != start {
		t.Fatalf("the first key retired is %s, want %s", retired[len(retired)-1].Kid, start)
	}
	// Both processes sign with the current key within a bounded time.
	want := k["current"][0].Kid
	for _, env := range []*testenv.Env{a, b} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			if kid, _ := keyOf(t, ccToken(t, env, "sched", "ws", id, secret)); kid == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a process does not sign with the current key %s", want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

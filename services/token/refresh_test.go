package token

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/changes"
)

// These tests start refresh chains directly (as the password grant does) and use them through the token
// endpoint's RPC, against stand-ins of the other services and a real database.

// newRefreshHarness adds to newHarness a confidential client app-1 and a public client mob-1 with the password and
// refresh_token grants, and app-2 with a token policy whose refresh tokens live a minute.
func newRefreshHarness(t testing.TB, url string) *harness {
	h := newHarness(t, url)
	for _, c := range []*clientv1.Client{
		{ClientId: "app-1", ClientSecret: proto.String("secret-app-1"), TokenEndpointAuthMethod: "client_secret_basic"},
		{ClientId: "app-2", ClientSecret: proto.String("secret-app-2"), TokenEndpointAuthMethod: "client_secret_basic", TokenPolicyId: "short"},
		{ClientId: "mob-1", TokenEndpointAuthMethod: "none"},
	} {
		c.TenantId, c.AuthorizationServerId = "acme", "orders"
		c.GrantTypes = []string{"password", "refresh_token"}
		c.Scopes = []string{"openid", "profile", "orders.read", "orders.write"}
		h.clients.put(c)
	}
	h.clients.putPolicy(&clientv1.TokenPolicy{Id: "short", TenantId: "acme", RefreshTokenTtl: durationpb.New(time.Minute)})
	return h
}

// startChain issues the first refresh token of a session for a client, as the password grant does.
func startChain(t testing.TB, h *harness, clientID, secret, scope string) string {
	t.Helper()
	ctx := context.Background()
	ws, err := h.svc.workspace(ctx, "acme", "orders")
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.svc.authenticate(ctx, ws, clientID, secret)
	if err != nil {
		t.Fatal(err)
	}
	l := &login{
		Subject: "user-1", Scope: scope, IdpID: "pool-src", AuthTime: h.svc.now().Unix(),
		Claims: map[string]any{"given_name": "Jane"}, ExtraInfo: map[string]any{"tier": "gold"},
	}
	g := &grant{req: &tokenv1.TokenRequest{}, ws: ws, client: c}
	now := h.svc.now()
	sess := h.svc.newSession(g, &workspacev1.IdentitySource{Id: "pool-src", Method: methodExternal}, l, now)
	tok, first, err := h.svc.firstRefreshToken(g, sess, l, now)
	if err != nil {
		t.Fatal(err)
	}
	sess.AccessExpiresAt = now.Add(time.Hour).UnixMicro()
	if err := h.svc.store.insertSession(ctx, sess, first); err != nil {
		t.Fatal(err)
	}
	return tok
}

func refreshRequest(clientID, secret, rt, scope string) *tokenv1.TokenRequest {
	return &tokenv1.TokenRequest{
		TenantId: "acme", ServerId: "orders", GrantType: "refresh_token", ClientId: clientID, ClientSecret: secret,
		RefreshToken: rt, Scope: scope,
	}
}

func refresh(h *harness, clientID, secret, rt string) (*tokenv1.TokenResponse, error) {
	return h.svc.Token(context.Background(), refreshRequest(clientID, secret, rt, ""))
}

// mustFail asserts an OAuth error code.
func mustFail(t *testing.T, what string, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %s", what, code)
	}
	if got, _ := oauthError(t, err); got != code {
		t.Fatalf("%s: error %q (%v), want %s", what, got, err, code)
	}
}

func TestRefreshRotatesAndReissuesTheSession(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newRefreshHarness(t, url)
		rt := startChain(t, h, "app-1", "secret-app-1", "openid orders.read")
		resp, err := refresh(h, "app-1", "secret-app-1", rt)
		if err != nil {
			t.Fatal(err)
		}
		if resp.RefreshToken == "" || resp.RefreshToken == rt {
			t.Fatalf("refresh token not rotated: %q", resp.RefreshToken)
		}
		if resp.Scope != "openid orders.read" || resp.IdToken == "" {
			t.Fatalf("scope %q, id token %q", resp.Scope, resp.IdToken)
		}
		claims := verify(t, h.svc, "acme", "orders", resp.AccessToken)
		if claims["sub"] != "user-1" || claims["idp"] != "pool-src" || claims["client_id"] != "app-1" {
			t.Fatalf("claims of the refreshed access token: %v", claims)
		}
		if extra, _ := claims["extra_info"].(map[string]any); extra["tier"] != "gold" {
			t.Fatalf("extra_info lost across the refresh: %v", claims)
		}
		// The successor rotates again.
		resp2, err := refresh(h, "app-1", "secret-app-1", resp.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if resp2.RefreshToken == resp.RefreshToken {
			t.Fatal("second refresh did not rotate")
		}
	})
}

func TestReusingARotatedRefreshTokenRevokesTheWholeChain(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newRefreshHarness(t, url)
		rt1 := startChain(t, h, "app-1", "secret-app-1", "orders.read")
		r2, err := refresh(h, "app-1", "secret-app-1", rt1)
		if err != nil {
			t.Fatal(err)
		}
		r3, err := refresh(h, "app-1", "secret-app-1", r2.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		_, err = refresh(h, "app-1", "secret-app-1", rt1)
		mustFail(t, "reuse of the first token", err, "invalid_grant")
		_, err = refresh(h, "app-1", "secret-app-1", r3.RefreshToken)
		mustFail(t, "the newest token after reuse", err, "invalid_grant")
		// Another chain of the same client is untouched.
		other := startChain(t, h, "app-1", "secret-app-1", "orders.read")
		if _, err := refresh(h, "app-1", "secret-app-1", other); err != nil {
			t.Fatalf("another chain: %v", err)
		}
	})
}

func TestConcurrentUsesOfOneRefreshTokenSucceedOnce(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newRefreshHarness(t, url)
		rt := startChain(t, h, "app-1", "secret-app-1", "orders.read")
		if _, err := h.svc.Token(context.Background(), ccRequest("cli-1", "secret-1", "")); err != nil {
			t.Fatal(err) // warm the signer and client caches so the uses race on the database
		}
		const n = 16
		var wg sync.WaitGroup
		results := make(chan error, n)
		start := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := refresh(h, "app-1", "secret-app-1", rt)
				results <- err
			}()
		}
		close(start)
		wg.Wait()
		close(results)
		ok := 0
		for err := range results {
			if err == nil {
				ok++
				continue
			}
			mustFail(t, "a concurrent use", err, "invalid_grant")
		}
		if ok != 1 {
			t.Fatalf("%d of %d concurrent uses succeeded, want exactly 1", ok, n)
		}
	})
}

func TestRefreshTokenRefusals(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newRefreshHarness(t, url)
		ctx := context.Background()
		rt := startChain(t, h, "app-1", "secret-app-1", "openid orders.read")
		cases := []struct {
			name string
			req  *tokenv1.TokenRequest
			code string
		}{
			{"another client's token", refreshRequest("mob-1", "", rt, ""), "invalid_grant"},
			{"unknown token", refreshRequest("app-1", "secret-app-1", "never-issued", ""), "invalid_grant"},
			{"a JWT instead", refreshRequest("app-1", "secret-app-1", "a.b.c", ""), "invalid_grant"},
			{"no token", refreshRequest("app-1", "secret-app-1", "", ""), "invalid_request"},
			{"scope wider than granted", refreshRequest("app-1", "secret-app-1", rt, "orders.read orders.write"), "invalid_scope"},
			{"client without the grant", refreshRequest("cli-1", "secret-1", rt, ""), "unauthorized_client"},
			{"wrong client secret", refreshRequest("app-1", "wrong", rt, ""), "invalid_client"},
		}
		for _, tc := range cases {
			_, err := h.svc.Token(ctx, tc.req)
			mustFail(t, tc.name, err, tc.code)
		}
		// None of the refusals spent the token; a narrower scope is granted for this access token only.
		resp, err := h.svc.Token(ctx, refreshRequest("app-1", "secret-app-1", rt, "orders.read"))
		if err != nil {
			t.Fatalf("after the refusals: %v", err)
		}
		if resp.Scope != "orders.read" || resp.IdToken != "" {
			t.Fatalf("narrowed refresh: scope %q, id token %q", resp.Scope, resp.IdToken)
		}
		resp, err = refresh(h, "app-1", "secret-app-1", resp.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Scope != "openid orders.read" {
			t.Fatalf("the successor lost the granted scope: %q", resp.Scope)
		}
	})
}

func TestRefreshTokensExpireAfterThePolicyOrWorkspaceLifetime(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newRefreshHarness(t, url)
		now := time.Now()
		h.svc.now = func() time.Time { return now }
		short := startChain(t, h, "app-2", "secret-app-2", "orders.read") // policy: one minute
		long := startChain(t, h, "app-1", "secret-app-1", "orders.read")  // workspace default
		now = now.Add(59 * time.Second)
		resp, err := refresh(h, "app-2", "secret-app-2", short)
		if err != nil {
			t.Fatalf("before the policy lifetime: %v", err)
		}
		now = now.Add(61 * time.Second)
		_, err = refresh(h, "app-2", "secret-app-2", resp.RefreshToken)
		mustFail(t, "after the policy lifetime", err, "invalid_grant")
		if _, err := refresh(h, "app-1", "secret-app-1", long); err != nil {
			t.Fatalf("workspace lifetime: %v", err)
		}
	})
}

func TestRevokingARefreshTokenRevokesItsChain(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newRefreshHarness(t, url)
		ctx := context.Background()
		revoke := func(c *tokenv1.CallerCredentials, tok, hint string) {
			t.Helper()
			if _, err := h.svc.Revoke(ctx, &tokenv1.RevokeRequest{TenantId: "acme", ServerId: "orders", Token: tok, TokenTypeHint: hint, Caller: c}); err != nil {
				t.Fatalf("revoke: %v", err)
			}
		}
		app := &tokenv1.CallerCredentials{ClientId: "app-1", ClientSecret: "secret-app-1"}
		for _, hint := range []string{"refresh_token", "", "access_token"} {
			rt := startChain(t, h, "app-1", "secret-app-1", "orders.read")
			next, err := refresh(h, "app-1", "secret-app-1", rt)
			if err != nil {
				t.Fatal(err)
			}
			// Another client may not revoke it: an answer of 200 and no effect.
			revoke(&tokenv1.CallerCredentials{ClientId: "mob-1"}, next.RefreshToken, hint)
			// Revoking the spent first token revokes the chain, its newest token too.
			revoke(app, rt, hint)
			_, err = refresh(h, "app-1", "secret-app-1", next.RefreshToken)
			mustFail(t, "hint "+hint+": refresh after revocation", err, "invalid_grant")
		}
		mine := startChain(t, h, "mob-1", "", "orders.read")
		revoke(&tokenv1.CallerCredentials{ClientId: "mob-1"}, mine, "")
		_, err := refresh(h, "mob-1", "", mine)
		mustFail(t, "a public client revoked its own token", err, "invalid_grant")
		revoke(app, "never-issued", "refresh_token") // unknown tokens are no error
	})
}

func TestRefreshTokensDieWithTheirWorkspaceClientIncarnationAndTenant(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newRefreshHarness(t, url)
		ctx := context.Background()
		rt := startChain(t, h, "app-1", "secret-app-1", "orders.read")
		if _, err := h.svc.DeleteServerKeys(ctx, &tokenv1.DeleteServerKeysRequest{TenantId: "acme", ServerId: "orders"}); err != nil {
			t.Fatal(err)
		}
		_, err := refresh(h, "app-1", "secret-app-1", rt)
		mustFail(t, "after the workspace's deletion", err, "invalid_grant")

		mine := startChain(t, h, "app-1", "secret-app-1", "orders.read")
		theirs := startChain(t, h, "mob-1", "", "orders.read")
		if _, err := h.svc.DeleteClientTokens(ctx, &tokenv1.DeleteClientTokensRequest{TenantId: "acme", ClientId: "app-1"}); err != nil {
			t.Fatal(err)
		}
		_, err = refresh(h, "app-1", "secret-app-1", mine)
		mustFail(t, "after the client's deletion", err, "invalid_grant")
		if _, err := refresh(h, "mob-1", "", theirs); err != nil {
			t.Fatalf("another client's token after the deletion: %v", err)
		}

		rt = startChain(t, h, "app-1", "secret-app-1", "orders.read")
		if _, err := h.svc.DeleteTenantData(ctx, &tokenv1.DeleteTenantDataRequest{TenantId: "acme"}); err != nil {
			t.Fatal(err)
		}
		_, err = refresh(h, "app-1", "secret-app-1", rt)
		mustFail(t, "after the tenant's deletion", err, "invalid_grant")

		var n int64
		if err := h.db.Model(&refreshRow{}).Count(&n).Error; err != nil || n != 0 {
			t.Fatalf("refresh rows left: %d (%v)", n, err)
		}
		if err := h.db.Model(&sessionRow{}).Count(&n).Error; err != nil || n != 0 {
			t.Fatalf("session rows left: %d (%v)", n, err)
		}

		// A workspace deleted and created again under the same id is another incarnation.
		rt = startChain(t, h, "app-1", "secret-app-1", "orders.read")
		md, err := h.ws.GetServerMetadata(ctx, &workspacev1.GetServerMetadataRequest{TenantId: "acme", ServerId: "orders"})
		if err != nil {
			t.Fatal(err)
		}
		md.Uid = "orders-2"
		h.ws.put(md)
		h.bus.Publish(ctx, changes.Servers, changes.Key("acme", "orders"))
		_, err = refresh(h, "app-1", "secret-app-1", rt)
		mustFail(t, "in another incarnation of the workspace", err, "invalid_grant")
	})
}

func TestNarrowScope(t *testing.T) {
	allowed := func(sc string) bool { return sc != "orders.write" }
	tests := []struct {
		name, granted, requested, want string
		wantErr                        bool
	}{
		{"none requested: the grant's", "openid orders.read", "", "openid orders.read", false},
		{"a subset", "openid orders.read", "orders.read", "orders.read", false},
		{"separators normalised", "openid orders.read", " orders.read \t openid", "orders.read openid", false},
		{"wider than granted", "orders.read", "orders.read openid", "", true},
		{"none requested: a scope no longer allowed is left out", "orders.read orders.write", "", "orders.read", false},
		{"a requested scope no longer allowed", "orders.read orders.write", "orders.write", "", true},
		{"nothing left of the grant", "orders.write", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := narrowScope(tc.granted, tc.requested, allowed)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestRefreshDropsScopesTheClientLost(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newRefreshHarness(t, url)
		rt := startChain(t, h, "app-1", "secret-app-1", "orders.read orders.write")
		c := &clientv1.Client{
			ClientId: "app-1", ClientSecret: proto.String("secret-app-1"), TokenEndpointAuthMethod: "client_secret_basic",
			TenantId: "acme", AuthorizationServerId: "orders", GrantTypes: []string{"password", "refresh_token"},
			Scopes: []string{"orders.read"},
		}
		h.clients.put(c)
		h.bus.Publish(context.Background(), changes.Clients, changes.Key("acme", "app-1"))
		resp, err := refresh(h, "app-1", "secret-app-1", rt)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Scope != "orders.read" {
			t.Fatalf("scope after the client lost orders.write: %q", resp.Scope)
		}
	})
}

package token

import (
	"context"
	neturl "net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/protobuf/types/known/durationpb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/testdb"
)

// BenchmarkIssueClientCredentials measures one client_credentials token through the service's Token method with
// warm caches: what a token costs the token service itself, without HTTP or gRPC.
func BenchmarkIssueClientCredentials(b *testing.B) {
	h := newHarness(b, sqliteURL(b))
	ctx := context.Background()
	req := ccRequest("cli-1", "secret-1", "orders.read")
	if _, err := h.svc.Token(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.svc.Token(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRefreshGrant measures refresh-token rotations through the service's Token method, each goroutine
// rotating its own session's token as each app instance would: the rotation's transaction and the signature, with
// warm caches, on each database.
func BenchmarkRefreshGrant(b *testing.B) {
	for name, url := range map[string]func(testing.TB) string{"sqlite": sqliteURL, "postgres": testdb.Postgres} {
		b.Run(name, func(b *testing.B) {
			h := newRefreshHarness(b, url(b))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				b.StopTimer()
				rt := startChain(b, h, "app-1", "secret-app-1", "orders.read")
				b.StartTimer()
				for pb.Next() {
					resp, err := h.svc.Token(ctx, refreshRequest("app-1", "secret-app-1", rt, ""))
					if err != nil {
						b.Error(err)
						return
					}
					rt = resp.RefreshToken
				}
			})
		})
	}
}

// BenchmarkAuthorizationCodeExchange measures code exchanges through the service's Token method with warm caches:
// the code's lookup, the browser session's, the claim of the code with the app session's insert in one
// transaction, and the access and ID tokens' signatures. No password is hashed: the sign-in did that once. The
// codes are issued before the timer starts (as the authorization endpoint would, in the same browser session).
func BenchmarkAuthorizationCodeExchange(b *testing.B) {
	for name, url := range map[string]func(testing.TB) string{"sqlite": sqliteURL, "postgres": testdb.Postgres} {
		b.Run(name, func(b *testing.B) {
			h := newHarness(b, url(b))
			ctx := context.Background()
			h.ws.put(&workspacev1.ServerMetadata{
				TenantId: "acme", ServerId: "orders", Uid: "orders-1", Type: "regular",
				GrantTypes:     []string{"authorization_code", "refresh_token"},
				AccessTokenTtl: durationpb.New(time.Hour), Scopes: []string{"openid", "orders.read"},
			})
			h.clients.put(&clientv1.Client{
				ClientId: "web-1", TenantId: "acme", AuthorizationServerId: "orders", GrantTypes: []string{"authorization_code"},
				TokenEndpointAuthMethod: "none", Scopes: []string{"openid", "orders.read"}, RedirectUris: []string{"https://app.example/cb"},
			})
			ws, err := h.svc.workspace(ctx, "acme", "orders")
			if err != nil {
				b.Fatal(err)
			}
			client, err := h.svc.browserClientOf(ctx, ws, "web-1")
			if err != nil || client == nil {
				b.Fatal(client, err)
			}
			now := h.svc.now()
			sess, _, err := h.svc.startBrowserSession(ctx, ws, client, "", &login{Subject: "user-1", IdpID: "ext", AuthTime: now.Unix()}, now)
			if err != nil {
				b.Fatal(err)
			}
			verifier := oauth2.GenerateVerifier()
			codes := make(chan string, b.N)
			for range b.N {
				resp, err := h.svc.issueCode(ctx, ws, &authRequestRow{ClientID: "web-1", RedirectURI: "https://app.example/cb",
					Scope: "openid orders.read", CodeChallenge: oauth2.S256ChallengeFromVerifier(verifier), Nonce: "n"}, sess, h.svc.now())
				if err != nil {
					b.Fatal(err)
				}
				u, _ := neturl.Parse(resp.GetRedirectTo())
				codes <- u.Query().Get("code")
			}
			close(codes)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, err := h.svc.Token(ctx, &tokenv1.TokenRequest{TenantId: "acme", ServerId: "orders", GrantType: "authorization_code",
						ClientId: "web-1", ClientAuthMethod: tokenv1.ClientAuthMethod_CLIENT_AUTH_METHOD_NONE,
						Parameters: map[string]string{"code": <-codes, "redirect_uri": "https://app.example/cb", "code_verifier": verifier}})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

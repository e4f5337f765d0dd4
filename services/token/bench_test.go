package token

import (
	"context"
	"testing"

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

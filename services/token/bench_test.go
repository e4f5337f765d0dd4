package token

import (
	"context"
	"testing"
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

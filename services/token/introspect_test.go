package token

import (
	"context"
	"testing"
	"time"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/db"
)

func introspectAs(h *harness, tok string) (*tokenv1.IntrospectResponse, error) {
	return h.svc.Introspect(context.Background(), &tokenv1.IntrospectRequest{
		TenantId: "acme", ServerId: "orders", Token: tok,
		Caller: &tokenv1.CallerCredentials{ClientId: "cli-1", ClientSecret: "secret-1"},
	})
}

func TestWarmIntrospectionTouchesNoDatabaseAndNoOtherService(t *testing.T) {
	h := newHarness(t, sqliteURL(t))
	ctx := context.Background()
	resp, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", ""))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := introspectAs(h, resp.AccessToken); err != nil || !r.Active {
		t.Fatalf("%v %v", r, err)
	}
	queries := countQueries(t, h.db)
	wsCalls, clientCalls := h.ws.calls.Load(), h.clients.calls.Load()
	for i := 0; i < 50; i++ {
		if r, err := introspectAs(h, resp.AccessToken); err != nil || !r.Active {
			t.Fatalf("%v %v", r, err)
		}
	}
	if n := queries.n.Load(); n != 0 {
		t.Errorf("50 warm introspections ran %d database statements, want 0", n)
	}
	if h.ws.calls.Load() != wsCalls || h.clients.calls.Load() != clientCalls {
		t.Error("warm introspections called other services")
	}
}

func TestRevocationPrunesExpiredRows(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newHarness(t, url)
		ctx := context.Background()
		past := time.Now().Add(-time.Minute).UnixMicro()
		if err := h.svc.store.revoke(ctx, &revocationRow{TenantID: "acme", JTI: "expired", ServerID: "orders",
			TokenType: tokenTypeAccess, ClientID: "cli-1", ExpiresAt: past, RevokedAt: past}); err != nil {
			t.Fatal(err)
		}
		resp, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", ""))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.svc.Revoke(ctx, &tokenv1.RevokeRequest{TenantId: "acme", ServerId: "orders", Token: resp.AccessToken,
			Caller: &tokenv1.CallerCredentials{ClientId: "cli-1", ClientSecret: "secret-1"}}); err != nil {
			t.Fatal(err)
		}
		var rows []revocationRow
		if err := db.Tenant(h.db.DB, "acme").Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].JTI == "expired" || rows[0].TokenType != tokenTypeAccess || rows[0].ClientID != "cli-1" {
			t.Fatalf("revocations after pruning: %+v", rows)
		}
		if r, err := introspectAs(h, resp.AccessToken); err != nil || r.Active {
			t.Fatalf("the revoked token: %v %v", r, err)
		}
	})
}

func TestListRevokedTokensServesTheCachedDenylist(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newHarness(t, url)
		ctx := context.Background()
		list := func(tenant string) []*tokenv1.RevokedToken {
			t.Helper()
			resp, err := h.svc.ListRevokedTokens(ctx, &tokenv1.ListRevokedTokensRequest{TenantId: tenant})
			if err != nil {
				t.Fatal(err)
			}
			return resp.Revoked
		}
		if got := list("acme"); len(got) != 0 {
			t.Fatalf("before any revocation: %v", got)
		}
		past := time.Now().Add(-time.Minute).UnixMicro()
		if err := h.svc.store.revoke(ctx, &revocationRow{TenantID: "acme", JTI: "expired", ServerID: "orders",
			TokenType: tokenTypeAccess, ClientID: "cli-1", ExpiresAt: past, RevokedAt: past}); err != nil {
			t.Fatal(err)
		}
		resp, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", ""))
		if err != nil {
			t.Fatal(err)
		}
		info, err := introspectAs(h, resp.AccessToken)
		if err != nil || !info.Active {
			t.Fatalf("%v %v", info, err)
		}
		if _, err := h.svc.Revoke(ctx, &tokenv1.RevokeRequest{TenantId: "acme", ServerId: "orders", Token: resp.AccessToken,
			Caller: &tokenv1.CallerCredentials{ClientId: "cli-1", ClientSecret: "secret-1"}}); err != nil {
			t.Fatal(err)
		}
		got := list("acme")
		// Listed until the verifiers' leeway after its expiry has passed too.
		if len(got) != 1 || got[0].Jti != info.Jti || got[0].ExpiresAt.AsTime().Unix() != info.Exp+30 {
			t.Fatalf("revoked = %v, want jti %s expiring at %d", got, info.Jti, info.Exp+30)
		}
		if other := list("globex"); len(other) != 0 {
			t.Fatalf("another tenant's list: %v", other)
		}

		queries := countQueries(t, h.db)
		for i := 0; i < 20; i++ {
			list("acme")
		}
		if n := queries.n.Load(); n != 0 {
			t.Errorf("20 warm lists ran %d database statements, want 0", n)
		}
		// A token that expired since the denylist was loaded (leeway included) leaves the list without a reload.
		h.svc.now = func() time.Time { return time.Unix(info.Exp, 0).Add(29 * time.Second) }
		if got := list("acme"); len(got) != 1 {
			t.Fatalf("within the leeway after expiry: %v, want it still listed", got)
		}
		h.svc.now = func() time.Time { return time.Unix(info.Exp, 0).Add(31 * time.Second) }
		if got := list("acme"); len(got) != 0 {
			t.Fatalf("after expiry and leeway: %v", got)
		}

		for _, bad := range []string{"", "acme/orders"} {
			if _, err := h.svc.ListRevokedTokens(ctx, &tokenv1.ListRevokedTokensRequest{TenantId: bad}); err == nil {
				t.Errorf("tenant %q: no error", bad)
			}
		}
	})
}

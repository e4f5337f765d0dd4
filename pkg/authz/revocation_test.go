package authz

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/changes"
)

// denylistServer is a RevocationSource over per-tenant revoked jtis; it counts its calls.
type denylistServer struct {
	mu       sync.Mutex
	revoked  map[string][]RevokedToken // tenant -> revoked tokens
	sessions map[string][]RevokedToken // tenant -> ended sessions
	err      error
	calls    map[string]int
}

func (d *denylistServer) source(_ context.Context, tenantID string) (*Denylist, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls[tenantID]++
	if d.err != nil {
		return nil, d.err
	}
	return &Denylist{
		Tokens:   append([]RevokedToken(nil), d.revoked[tenantID]...),
		Sessions: append([]RevokedToken(nil), d.sessions[tenantID]...),
	}, nil
}

// endSession adds a session to its tenant's denylist without announcing it.
func (d *denylistServer) endSession(tenant, sid string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sessions[tenant] = append(d.sessions[tenant], RevokedToken{JTI: sid, Expiry: time.Now().Add(time.Hour)})
}

// revoke adds a token to its tenant's denylist without announcing it.
func (d *denylistServer) revoke(c *Claims) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.revoked[c.TenantID] = append(d.revoked[c.TenantID], RevokedToken{JTI: c.JTI, Expiry: time.Unix(c.Expiry, 0)})
}

func (d *denylistServer) fail(err error) { d.mu.Lock(); d.err = err; d.mu.Unlock() }

func (d *denylistServer) callsFor(tenant string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[tenant]
}

// newRevocationFixture is a verifier that checks revocations against a fake denylist source.
func newRevocationFixture(t *testing.T) (*fixture, *denylistServer) {
	t.Helper()
	f := newFixture(t)
	d := &denylistServer{revoked: map[string][]RevokedToken{}, sessions: map[string][]RevokedToken{}, calls: map[string]int{}}
	f.v = NewVerifier(testBase, f.keys.source, f.bus, WithRevocations(d.source))
	f.v.now = f.clock.Now
	f.v.redrop = time.Hour // tests that want the second drop say so
	return f, d
}

func TestRevokedTokenIsRefused(t *testing.T) {
	f, d := newRevocationFixture(t)
	revoked, kept := f.token("acme", "ws1", "a"), f.token("acme", "ws1", "b")
	c := f.mustVerify(revoked)
	if c.JTI == "" {
		t.Fatal("claims without jti")
	}
	f.mustVerify(kept)

	d.revoke(c)
	f.bus.Publish(context.Background(), changes.Revocations, changes.Key("acme", "ws1"))
	f.mustRefuse(revoked) // a verified-token cache hit, refused all the same
	f.v.verified.InvalidateAll()
	f.mustRefuse(revoked) // and a fresh verification
	f.mustVerify(kept)
	if _, err := f.v.Authorize(withBearer(context.Background(), revoked), workspacev1.WorkspaceService_ListServers_FullMethodName,
		&workspacev1.ListServersRequest{TenantId: "acme"}); status.Code(err) != unauth {
		t.Fatalf("Authorize with a revoked token: %v, want Unauthenticated", err)
	}
}

func TestDenylistIsLoadedOncePerTenant(t *testing.T) {
	f, d := newRevocationFixture(t)
	raw := f.token("acme", "ws1", "a")
	for i := 0; i < 5; i++ {
		f.mustVerify(raw) // the first verifies the signature, the others hit the verified-token cache
	}
	f.mustVerify(f.token("acme", "ws2", "a")) // another workspace of the tenant shares its denylist
	if n := d.callsFor("acme"); n != 1 {
		t.Fatalf("denylist loads = %d, want 1", n)
	}
	f.mustVerify(f.token("globex", "ws1", "a"))
	if n := d.callsFor("globex"); n != 1 {
		t.Fatalf("denylist loads for globex = %d, want 1", n)
	}
}

func TestAnnouncementsReloadTheDenylist(t *testing.T) {
	cases := []struct {
		name   string
		topic  string
		key    string
		reload bool
	}{
		{"a revocation in the tenant", changes.Revocations, changes.Key("acme", "ws1"), true},
		{"a revocation in another workspace of the tenant", changes.Revocations, changes.Key("acme", "other"), true},
		{"a revocation anywhere (announcements missed)", changes.Revocations, "*", true},
		{"the tenant changed", changes.Tenants, changes.TenantKey("acme"), true},
		{"everything", changes.Tenants, "*", true},
		{"a revocation in another tenant", changes.Revocations, changes.Key("globex", "ws1"), false},
		{"a revocation in a tenant whose id extends this one", changes.Revocations, changes.Key("acme2", "ws1"), false},
		{"another tenant changed", changes.Tenants, changes.TenantKey("globex"), false},
		{"another topic", changes.Clients, changes.Key("acme", "ws1"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, d := newRevocationFixture(t)
			raw := f.token("acme", "ws1", "a")
			c := f.mustVerify(raw)
			d.revoke(c)
			f.bus.Publish(context.Background(), tc.topic, tc.key)
			_, err := f.verify(raw)
			want := 1
			if tc.reload {
				want = 2
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("after the announcement the revoked token verifies: %v", err)
				}
			} else if err != nil {
				t.Fatalf("an unrelated announcement changed the answer: %v", err)
			}
			if n := d.callsFor("acme"); n != want {
				t.Fatalf("denylist loads = %d, want %d", n, want)
			}
		})
	}
}

// A source that served its list before hearing the announcement itself is asked again a moment later.
func TestDenylistIsDroppedAgainAfterAnnouncement(t *testing.T) {
	f, d := newRevocationFixture(t)
	f.v.redrop = 20 * time.Millisecond
	raw := f.token("acme", "ws1", "a")
	c := f.mustVerify(raw)
	f.bus.Publish(context.Background(), changes.Revocations, changes.Key("acme", "ws1"))
	f.mustVerify(raw) // reloaded from a source that has not seen the revocation yet
	d.revoke(c)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := f.verify(raw); errors.Is(err, ErrInvalidToken) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second drop never came")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := d.callsFor("acme"); n != 3 {
		t.Fatalf("denylist loads = %d, want 3", n)
	}
}

func TestDenylistFailureRefusesWithoutCaching(t *testing.T) {
	f, d := newRevocationFixture(t)
	raw := f.token("acme", "ws1", "a")
	d.fail(errors.New("token service down"))
	if _, err := f.verify(raw); !errors.Is(err, ErrRevocationUnknown) {
		t.Fatalf("Verify = %v, want ErrRevocationUnknown", err)
	}
	_, err := f.v.Authorize(withBearer(context.Background(), raw), workspacev1.WorkspaceService_ListServers_FullMethodName,
		&workspacev1.ListServersRequest{TenantId: "acme"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Authorize while the denylist is unknown: %v, want Unavailable (the token was not judged)", err)
	}
	d.fail(nil)
	f.mustVerify(raw)
	if n := d.callsFor("acme"); n != 3 {
		t.Fatalf("denylist loads = %d, want 3 (failures are not cached)", n)
	}
}

func TestVerifierWithoutRevocationSourceAdmitsEveryValidToken(t *testing.T) {
	f := newFixture(t)
	raw := f.token("acme", "ws1", "a")
	f.mustVerify(raw)
	f.bus.Publish(context.Background(), changes.Revocations, changes.Key("acme", "ws1"))
	f.mustVerify(raw)
}

func TestTokensOfAnEndedSessionAreRefused(t *testing.T) {
	f, d := newRevocationFixture(t)
	session := func(sid string) string {
		c := f.claims("acme", "ws1", "openid")
		c["sid"] = sid
		c["jti"] = "jti-" + sid
		return sign(t, f.key, "at+jwt", c)
	}
	ended, other, none := session("s1"), session("s2"), f.token("acme", "ws1", "openid")
	if c := f.mustVerify(ended); c.SessionID != "s1" {
		t.Fatalf("sid = %q, want s1", c.SessionID)
	}
	d.endSession("acme", "s1")
	d.endSession("globex", "s2") // the same sid in another tenant ends nothing here
	f.bus.Publish(context.Background(), changes.Revocations, changes.TenantKey("acme"))
	f.mustRefuse(ended)
	f.mustVerify(other)
	f.mustVerify(none)
}

package authz

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/secrets"
)

const testBase = "https://auth.example.com"

// clock is the verifier's time, moved by the tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// keyServer is a KeySource over per-workspace key sets; it counts its calls.
type keyServer struct {
	mu       sync.Mutex
	sets     map[string][]jose.JSONWebKey // tenant/server -> public keys
	fallback []jose.JSONWebKey            // for workspaces without their own set
	err      error
	calls    map[string]int
}

func (k *keyServer) source(_ context.Context, tenantID, serverID string) (*jose.JSONWebKeySet, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id := tenantID + "/" + serverID
	k.calls[id]++
	if k.err != nil {
		return nil, k.err
	}
	keys, ok := k.sets[id]
	if !ok {
		keys = k.fallback
	}
	return &jose.JSONWebKeySet{Keys: slices.Clone(keys)}, nil
}

func (k *keyServer) set(workspace string, keys ...signingKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sets[workspace] = nil
	for _, sk := range keys {
		k.sets[workspace] = append(k.sets[workspace], sk.public())
	}
}

func (k *keyServer) fail(err error) { k.mu.Lock(); k.err = err; k.mu.Unlock() }

func (k *keyServer) total() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, c := range k.calls {
		n += c
	}
	return n
}

func (k *keyServer) callsFor(workspace string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls[workspace]
}

type signingKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

func newKey(t testing.TB, kid string) signingKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, priv: priv}
}

func (k signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: string(jose.ES256), Use: "sig"}
}

// fixture is a verifier over a key server with one key for every workspace (unless a test says otherwise).
type fixture struct {
	t        *testing.T
	clock    *clock
	keys     *keyServer
	key      signingKey
	bus      *changes.Bus
	internal *internalcall.Authority
	v        *Verifier
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: &clock{now: time.Unix(1_900_000_000, 0)}, key: newKey(t, "k1"), bus: changes.NewMemory()}
	f.keys = &keyServer{sets: map[string][]jose.JSONWebKey{}, calls: map[string]int{}, fallback: []jose.JSONWebKey{f.key.public()}}
	k, err := secrets.NewKeyring(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f.internal = internalcall.New(k, "test")
	f.v = NewVerifier(testBase+"/", f.keys.source, f.bus, WithInternal(f.internal)) // a trailing slash on the base must not matter
	f.v.now = f.clock.Now
	return f
}

// claims returns the claims of a valid access token of tenant/server, as the token service issues them.
func (f *fixture) claims(tenant, server string, scopes string) map[string]any {
	now := f.clock.Now()
	return map[string]any{
		"iss": testBase + "/" + tenant + "/" + server, "sub": "client-1", "aud": []string{"api"},
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": base64.RawURLEncoding.EncodeToString([]byte(now.String() + scopes)),
		"tid": tenant, "aid": server, "client_id": "client-1", "scope": scopes,
	}
}

// sign makes a compact JWS of claims with key, typ and alg ES256.
func sign(t testing.TB, key signingKey, typ string, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	sk := jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key.priv, KeyID: key.kid}}
	if key.kid == "" {
		sk.Key = key.priv
	}
	signer, err := jose.NewSigner(sk, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (f *fixture) token(tenant, server, scopes string) string {
	return sign(f.t, f.key, "at+jwt", f.claims(tenant, server, scopes))
}

func (f *fixture) verify(raw string) (*Claims, error) { return f.v.Verify(context.Background(), raw) }

func (f *fixture) mustVerify(raw string) *Claims {
	f.t.Helper()
	c, err := f.verify(raw)
	if err != nil {
		f.t.Fatalf("Verify: %v", err)
	}
	return c
}

func (f *fixture) mustRefuse(raw string) {
	f.t.Helper()
	if c, err := f.verify(raw); !errors.Is(err, ErrInvalidToken) {
		f.t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", c, err)
	}
}

func b64json(t testing.TB, v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func TestVerifyValidToken(t *testing.T) {
	f := newFixture(t)
	c := f.mustVerify(f.token("acme", "ws1", "openid read:things"))
	want := Claims{
		Issuer: testBase + "/acme/ws1", Subject: "client-1", TenantID: "acme", ServerID: "ws1", ClientID: "client-1",
		Scopes: []string{"openid", "read:things"}, Expiry: f.clock.Now().Add(5 * time.Minute).Unix(),
	}
	if c.Issuer != want.Issuer || c.Subject != want.Subject || c.TenantID != want.TenantID || c.ServerID != want.ServerID ||
		c.ClientID != want.ClientID || !slices.Equal(c.Scopes, want.Scopes) || c.Expiry != want.Expiry {
		t.Fatalf("claims = %+v, want %+v", *c, want)
	}
	if !c.HasScope("read:things") || c.HasScope("read") || c.HasScope("") {
		t.Fatal("HasScope does not match whole scopes")
	}
	if f.keys.callsFor("acme/ws1") != 1 {
		t.Fatalf("key source calls = %v, want one for acme/ws1", f.keys.calls)
	}
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	other := newKey(t, "k1") // same kid, other private key
	cases := []struct {
		name  string
		token func(f *fixture) string
		valid bool
	}{
		{"valid", func(f *fixture) string { return f.token("acme", "ws1", "a") }, true},
		{"typ in upper case", func(f *fixture) string { return sign(t, f.key, "AT+JWT", f.claims("acme", "ws1", "a")) }, true},
		{"expired within the 30 s leeway", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			c["exp"] = f.clock.Now().Add(-10 * time.Second).Unix()
			return sign(t, f.key, "at+jwt", c)
		}, true},
		{"expired", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			c["iat"] = f.clock.Now().Add(-time.Hour).Unix()
			c["exp"] = f.clock.Now().Add(-time.Minute).Unix()
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"no exp", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			delete(c, "exp")
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"not yet valid", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			c["nbf"] = f.clock.Now().Add(time.Hour).Unix()
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"issued in the future", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			c["iat"] = f.clock.Now().Add(time.Hour).Unix()
			c["exp"] = f.clock.Now().Add(2 * time.Hour).Unix()
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"ID token (typ JWT)", func(f *fixture) string { return sign(t, f.key, "JWT", f.claims("acme", "ws1", "openid")) }, false},
		{"no typ", func(f *fixture) string { return sign(t, f.key, "", f.claims("acme", "ws1", "a")) }, false},
		{"typ of a logout token", func(f *fixture) string { return sign(t, f.key, "logout+jwt", f.claims("acme", "ws1", "a")) }, false},
		{"issuer of another host", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			c["iss"] = "https://evil.example.com/acme/ws1"
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"issuer with a trailing slash", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			c["iss"] = testBase + "/acme/ws1/"
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"no issuer", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			delete(c, "iss")
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"tid not the issuer's tenant", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			c["tid"] = "globex"
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"aid not the issuer's workspace", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			c["aid"] = "admin"
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"issuer of another workspace", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			c["iss"] = testBase + "/acme/admin"
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"no tid", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			delete(c, "tid")
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"no aid", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			delete(c, "aid")
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"tid with a slash", func(f *fixture) string {
			c := f.claims("acme", "ws1", "a")
			c["tid"], c["aid"] = "acme/ws1", "x"
			c["iss"] = testBase + "/acme/ws1/x"
			return sign(t, f.key, "at+jwt", c)
		}, false},
		{"signed by another key with the same kid", func(f *fixture) string {
			return sign(t, other, "at+jwt", f.claims("acme", "ws1", "a"))
		}, false},
		{"signed by a key without kid", func(f *fixture) string {
			return sign(t, signingKey{priv: f.key.priv}, "at+jwt", f.claims("acme", "ws1", "a"))
		}, false},
		{"tampered payload", func(f *fixture) string {
			parts := strings.Split(f.token("acme", "ws1", "a"), ".")
			return parts[0] + "." + b64json(t, f.claims("acme", "ws1", "manage_configuration")) + "." + parts[2]
		}, false},
		{"alg none", func(f *fixture) string {
			h := b64json(t, map[string]string{"alg": "none", "typ": "at+jwt", "kid": "k1"})
			return h + "." + b64json(t, f.claims("acme", "ws1", "a")) + "."
		}, false},
		{"HS256 keyed with the public key", func(f *fixture) string {
			pub, err := x509.MarshalPKIXPublicKey(&f.key.priv.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: pub, KeyID: "k1"}},
				(&jose.SignerOptions{}).WithType("at+jwt"))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := jwt.Signed(signer).Claims(f.claims("acme", "ws1", "a")).Serialize()
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}, false},
		{"garbage", func(*fixture) string { return "not.a.jwt" }, false},
		{"empty", func(*fixture) string { return "" }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			raw := tc.token(f)
			if tc.valid {
				f.mustVerify(raw)
			} else {
				f.mustRefuse(raw)
			}
			// Asking twice gives the same answer (the verified-token cache must not turn a refusal into a pass).
			if _, err := f.verify(raw); (err == nil) != tc.valid {
				t.Fatalf("second Verify error = %v", err)
			}
		})
	}
}

func TestTokensAreCheckedAgainstTheirOwnWorkspaceKeys(t *testing.T) {
	f := newFixture(t)
	globex := newKey(t, "g1")
	f.keys.set("globex/ws1", globex)
	// A token naming acme, signed with globex's key: acme's keys must be used, so it fails.
	f.mustRefuse(sign(t, globex, "at+jwt", f.claims("acme", "ws1", "a")))
	f.mustVerify(sign(t, globex, "at+jwt", f.claims("globex", "ws1", "a")))
	if f.keys.callsFor("acme/ws1") == 0 || f.keys.callsFor("globex/ws1") != 1 {
		t.Fatalf("key source calls = %v", f.keys.calls)
	}
}

func TestUnknownKidRefetchesAtMostOncePerWindow(t *testing.T) {
	f := newFixture(t)
	f.keys.set("acme/ws1", f.key)
	f.mustVerify(f.token("acme", "ws1", "a"))
	if n := f.keys.total(); n != 1 {
		t.Fatalf("calls after the first token = %d, want 1", n)
	}

	stranger := newKey(t, "k-unknown")
	f.mustRefuse(sign(t, stranger, "at+jwt", f.claims("acme", "ws1", "a")))
	if n := f.keys.total(); n != 2 {
		t.Fatalf("calls after an unknown kid = %d, want 2 (one refetch)", n)
	}
	for i, kid := range []string{"k-unknown", "k-other", "k-third"} {
		f.clock.Advance(time.Second)
		f.mustRefuse(sign(t, newKey(t, kid), "at+jwt", f.claims("acme", "ws1", "b")))
		if n := f.keys.total(); n != 2 {
			t.Fatalf("unknown kid #%d within the window made the total %d calls, want still 2", i+2, n)
		}
	}
	// A known kid is still served from the cache meanwhile.
	f.mustVerify(f.token("acme", "ws1", "c"))
	if n := f.keys.total(); n != 2 {
		t.Fatalf("known kid made %d calls, want 2", n)
	}
	// The window is per workspace.
	f.mustRefuse(sign(t, stranger, "at+jwt", f.claims("acme", "ws2", "a")))
	if n := f.keys.callsFor("acme/ws2"); n != 2 {
		t.Fatalf("unknown kid on another workspace made %d calls for it, want 2 (load and refetch)", n)
	}
	// After the window, one more refetch is allowed.
	f.clock.Advance(5 * time.Second)
	f.mustRefuse(sign(t, stranger, "at+jwt", f.claims("acme", "ws1", "d")))
	if n := f.keys.callsFor("acme/ws1"); n != 3 {
		t.Fatalf("calls for acme/ws1 after the window = %d, want 3", n)
	}
}

func TestNewKeyIsPickedUpByRefetch(t *testing.T) {
	f := newFixture(t)
	f.keys.set("acme/ws1", f.key)
	f.mustVerify(f.token("acme", "ws1", "a"))

	rotated := newKey(t, "k2")
	f.keys.set("acme/ws1", f.key, rotated) // the token service added a key without an announcement reaching us
	f.mustVerify(sign(t, rotated, "at+jwt", f.claims("acme", "ws1", "b")))
	f.mustVerify(sign(t, rotated, "at+jwt", f.claims("acme", "ws1", "c")))
	if n := f.keys.callsFor("acme/ws1"); n != 2 {
		t.Fatalf("calls = %d, want 2 (first load, one refetch for the new kid)", n)
	}
}

func TestKeySourceErrorsAreNotCached(t *testing.T) {
	f := newFixture(t)
	f.keys.fail(errors.New("token service down"))
	raw := f.token("acme", "ws1", "a")
	f.mustRefuse(raw)
	f.keys.fail(nil)
	f.mustVerify(raw)
	if n := f.keys.total(); n < 2 {
		t.Fatalf("calls = %d: the failure was cached", n)
	}
}

// A key source that cannot answer now leaves the token unjudged (Unavailable: retry); one that answers with an
// error of its own (an unknown workspace) makes it invalid (Unauthenticated).
func TestKeySourceOutageIsUnavailableNotUnauthenticated(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		wantErr  error
		wantCode codes.Code
	}{
		{"unavailable", status.Error(codes.Unavailable, "database unreachable"), ErrKeysUnavailable, codes.Unavailable},
		{"deadline exceeded", status.Error(codes.DeadlineExceeded, "slow"), ErrKeysUnavailable, codes.Unavailable},
		{"not found", status.Error(codes.NotFound, "no such workspace"), ErrInvalidToken, codes.Unauthenticated},
		{"plain error", errors.New("broken"), ErrInvalidToken, codes.Unauthenticated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.keys.fail(tc.err)
			raw := f.token("acme", "ws1", "a")
			if _, err := f.verify(raw); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
			}
			_, err := f.v.Authorize(withBearer(context.Background(), raw), workspacev1.WorkspaceService_ListServers_FullMethodName,
				&workspacev1.ListServersRequest{TenantId: "acme"})
			if status.Code(err) != tc.wantCode {
				t.Fatalf("Authorize = %v, want %s", err, tc.wantCode)
			}
		})
	}
}

func TestVerifiedTokenCacheSkipsTheKeySource(t *testing.T) {
	f := newFixture(t)
	raw := f.token("acme", "ws1", "a")
	first := f.mustVerify(raw)
	f.keys.fail(errors.New("must not be called"))
	f.v.keys.InvalidateAll() // only the verified-token cache can answer now
	again := f.mustVerify(raw)
	if again.ClientID != first.ClientID || again.Expiry != first.Expiry {
		t.Fatalf("cached claims = %+v, want %+v", again, first)
	}
	if n := f.keys.total(); n != 1 {
		t.Fatalf("calls = %d, want 1", n)
	}
	// Another token of the same workspace is not in that cache.
	f.mustRefuse(f.token("acme", "ws1", "b"))

	// A cached token expires by the same rule as a fresh one: accepted within the leeway, refused after it.
	f.clock.Advance(5*time.Minute + 20*time.Second)
	f.mustVerify(raw)
	f.clock.Advance(11 * time.Second)
	f.mustRefuse(raw)
}

func TestAnnouncementsDropCachedKeys(t *testing.T) {
	cases := []struct {
		name   string
		topic  string
		key    string
		reload bool
	}{
		{"keys of the workspace", changes.Keys, changes.Key("acme", "ws1"), true},
		{"keys of another workspace of the tenant", changes.Keys, changes.Key("acme", "ws2"), true},
		{"the tenant", changes.Tenants, changes.TenantKey("acme"), true},
		{"everything", changes.Keys, "*", true},
		{"keys of another tenant", changes.Keys, changes.Key("globex", "ws1"), false},
		{"keys of a tenant whose id extends this one", changes.Keys, changes.Key("acme2", "ws1"), false},
		{"another topic", changes.Servers, changes.Key("acme", "ws1"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			raw := f.token("acme", "ws1", "a")
			f.mustVerify(raw)
			f.bus.Publish(context.Background(), tc.topic, tc.key)
			f.mustVerify(raw)
			want := 1
			if tc.reload {
				want = 2
			}
			if n := f.keys.callsFor("acme/ws1"); n != want {
				t.Fatalf("calls = %d, want %d", n, want)
			}
		})
	}
}

func TestDeletedKeyIsRefusedAfterAnnouncement(t *testing.T) {
	f := newFixture(t)
	f.keys.set("acme/ws1", f.key)
	raw := f.token("acme", "ws1", "a")
	f.mustVerify(raw)

	f.keys.set("acme/ws1", newKey(t, "k2")) // k1 deleted
	f.bus.Publish(context.Background(), changes.Keys, changes.Key("acme", "ws1"))
	f.mustRefuse(raw)
}

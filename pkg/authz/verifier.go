package authz

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authplane/authplane/pkg/cache"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/platform"
)

// KeySource returns the public signing keys of a workspace (the token service's JWKS).
type KeySource func(ctx context.Context, tenantID, serverID string) (*jose.JSONWebKeySet, error)

// SignatureAlgorithms the token service may sign with.
var SignatureAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256, jose.EdDSA}

// expiryLeeway tolerates clock skew between the issuing and the verifying process.
const expiryLeeway = 30 * time.Second

// ErrInvalidToken is returned for any token that does not verify or was revoked; callers answer 401 without detail.
var ErrInvalidToken = errors.New("invalid access token")

// ErrRevocationUnknown is returned for a token whose tenant's revocations cannot be read now: the token is refused
// (it may be revoked), and the next request tries again.
var ErrRevocationUnknown = errors.New("access token revocation status unknown")

// ErrKeysUnavailable is returned for a token whose workspace's keys cannot be read now (the key source answered
// Unavailable or DeadlineExceeded): the token is refused without being judged, and the next request tries again.
var ErrKeysUnavailable = errors.New("access token signing keys unavailable")

// RevokedToken is an access token revoked before it expired.
type RevokedToken struct {
	JTI    string
	Expiry time.Time
}

// RevocationSource returns a tenant's revoked, unexpired access tokens (the token service's denylist).
type RevocationSource func(ctx context.Context, tenantID string) ([]RevokedToken, error)

const (
	// revocationTTL bounds how long a missed revocation announcement leaves a revoked token admitted.
	revocationTTL = 30 * time.Second
	// revocationLoadTimeout bounds a denylist load, which runs detached from the request that started it because
	// concurrent requests of the tenant wait on it.
	revocationLoadTimeout = 5 * time.Second
	// revocationRedrop is when a tenant's denylist is dropped a second time after an announcement: the source may
	// have served a list it had not yet dropped itself (a token service in another process that hears the
	// announcement later, or one in this process whose subscriber runs after ours).
	revocationRedrop = 2 * time.Second
)

// Option configures a Verifier.
type Option func(*Verifier)

// WithRevocations makes the verifier refuse revoked tokens. Each tenant's denylist is loaded once from source,
// held in memory, and reloaded when the bus announces a revocation in the tenant.
func WithRevocations(source RevocationSource) Option {
	return func(v *Verifier) { v.revocations = source }
}

// Verifier checks access tokens against the issuing workspace's cached public keys. In steady state a
// verification costs one signature check (or none, for a token seen before) and no I/O.
type Verifier struct {
	issuerBase string
	source     KeySource
	keys       *cache.Cache[*jose.JSONWebKeySet] // tenant/server -> keys
	verified   *cache.Cache[*Claims]             // tenant/token -> claims
	now        func() time.Time

	revocations RevocationSource
	denylists   *cache.Cache[denylist] // tenant -> revoked jtis
	redrop      time.Duration

	mu        sync.Mutex
	refetched map[string]time.Time // when a key set was last reloaded for an unknown kid
}

// denylist is a tenant's revoked jtis.
type denylist map[string]struct{}

// NewVerifier makes a verifier for tokens whose issuer is `{issuerBase}/{tenant}/{server}`, dropping cached keys
// when the bus announces a key change.
func NewVerifier(issuerBase string, source KeySource, bus *changes.Bus, opts ...Option) *Verifier {
	v := &Verifier{
		issuerBase: strings.TrimRight(issuerBase, "/"),
		source:     source,
		keys:       cache.New[*jose.JSONWebKeySet](10*time.Minute, 10_000),
		verified:   cache.New[*Claims](time.Minute, 50_000),
		now:        time.Now,
		refetched:  map[string]time.Time{},
		denylists:  cache.New[denylist](revocationTTL, 10_000),
		redrop:     revocationRedrop,
	}
	for _, opt := range opts {
		opt(v)
	}
	if bus != nil {
		bus.Subscribe(changes.Keys, v.forget)
		bus.Subscribe(changes.Tenants, v.forget)
		if v.revocations != nil {
			bus.Subscribe(changes.Revocations, v.forgetRevocations)
			bus.Subscribe(changes.Tenants, v.forgetRevocations)
		}
	}
	return v
}

// forgetRevocations drops the denylist of the key's tenant (`tenant/…`), or every one for `*`, now and once more
// a moment later.
func (v *Verifier) forgetRevocations(key string) {
	drop := func() {
		tenant, _, _ := strings.Cut(key, "/")
		if changes.IsEverything(key) || tenant == "" {
			v.denylists.InvalidateAll()
			return
		}
		v.denylists.Invalidate(tenant)
	}
	drop()
	time.AfterFunc(v.redrop, drop)
}

func (v *Verifier) forget(key string) {
	if changes.IsEverything(key) {
		v.keys.InvalidateAll()
		v.verified.InvalidateAll()
		return
	}
	tenant, _, _ := strings.Cut(key, "/")
	v.keys.InvalidatePrefix(tenant + "/")
	v.verified.InvalidatePrefix(tenant + "/")
}

type tokenClaims struct {
	jwt.Claims
	TenantID string `json:"tid"`
	ServerID string `json:"aid"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// Verify returns the claims of a valid, unexpired access token issued by one of this platform's workspaces.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	tok, err := jwt.ParseSigned(raw, SignatureAlgorithms)
	if err != nil || len(tok.Headers) != 1 {
		return nil, ErrInvalidToken
	}
	if typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") {
		return nil, ErrInvalidToken // an ID token or a foreign JWT is not an access token
	}
	var unverified tokenClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, ErrInvalidToken
	}
	if unverified.TenantID == "" || unverified.ServerID == "" || strings.Contains(unverified.TenantID, "/") {
		return nil, ErrInvalidToken
	}
	cacheKey := unverified.TenantID + "/" + raw
	if c, ok := v.verified.Peek(cacheKey); ok {
		if v.now().Add(-expiryLeeway).After(time.Unix(c.Expiry, 0)) { // the same rule as a fresh verification
			return nil, ErrInvalidToken
		}
		if err := v.checkRevoked(ctx, c); err != nil {
			return nil, err
		}
		return c, nil
	}
	keySet, err := v.keySet(ctx, unverified.TenantID, unverified.ServerID, tok.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	var verified tokenClaims
	if err := tok.Claims(keySet, &verified); err != nil {
		return nil, ErrInvalidToken
	}
	expected := platform.Issuer(v.issuerBase, verified.TenantID, verified.ServerID)
	if err := verified.ValidateWithLeeway(jwt.Expected{Issuer: expected, Time: v.now()}, expiryLeeway); err != nil {
		return nil, ErrInvalidToken
	}
	if verified.Expiry == nil {
		return nil, ErrInvalidToken
	}
	c := &Claims{
		Issuer: verified.Issuer, Subject: verified.Subject, TenantID: verified.TenantID, ServerID: verified.ServerID,
		ClientID: verified.ClientID, Scopes: strings.Fields(verified.Scope), Expiry: verified.Expiry.Time().Unix(),
		JTI: verified.ID,
	}
	// The cache holds what the signature proves; revocation is checked on every use, cached or not.
	_, _ = v.verified.Get(ctx, cacheKey, func(context.Context) (*Claims, error) { return c, nil })
	if err := v.checkRevoked(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkRevoked refuses a token on its tenant's denylist (ErrInvalidToken), and any token while the denylist cannot
// be loaded (ErrRevocationUnknown; the failure is not cached).
func (v *Verifier) checkRevoked(ctx context.Context, c *Claims) error {
	if v.revocations == nil {
		return nil
	}
	tenant := c.TenantID
	set, err := v.denylists.Get(ctx, tenant, func(ctx context.Context) (denylist, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revocationLoadTimeout)
		defer cancel()
		revoked, err := v.revocations(ctx, tenant)
		if err != nil {
			return nil, err
		}
		set := make(denylist, len(revoked))
		for _, r := range revoked {
			set[r.JTI] = struct{}{}
		}
		return set, nil
	})
	if err != nil {
		return ErrRevocationUnknown
	}
	if _, revoked := set[c.JTI]; revoked {
		return ErrInvalidToken
	}
	return nil
}

// keySet returns the workspace's keys, reloading once (at most every few seconds) when kid is not among them,
// so a new key is picked up at once without letting junk kids hammer the key source.
func (v *Verifier) keySet(ctx context.Context, tenantID, serverID, kid string) (*jose.JSONWebKeySet, error) {
	key := tenantID + "/" + serverID
	load := func(ctx context.Context) (*jose.JSONWebKeySet, error) { return v.source(ctx, tenantID, serverID) }
	ks, err := v.keys.Get(ctx, key, load)
	if err != nil {
		return nil, keyLoadFailure(err)
	}
	if len(ks.Key(kid)) > 0 {
		return ks, nil
	}
	v.mu.Lock()
	recent := v.now().Sub(v.refetched[key]) < 5*time.Second
	if !recent {
		v.refetched[key] = v.now()
	}
	v.mu.Unlock()
	if recent {
		return nil, ErrInvalidToken
	}
	v.keys.Invalidate(key)
	if ks, err = v.keys.Get(ctx, key, load); err != nil {
		return nil, keyLoadFailure(err)
	}
	if len(ks.Key(kid)) == 0 {
		return nil, ErrInvalidToken
	}
	return ks, nil
}

// keyLoadFailure tells a key source that cannot answer now (an outage: retry) from one that answered no (an
// unknown workspace: the token is invalid).
func keyLoadFailure(err error) error {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return ErrKeysUnavailable
	}
	return ErrInvalidToken
}

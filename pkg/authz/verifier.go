package authz

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

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

// ErrInvalidToken is returned for any token that does not verify; callers answer 401 without detail.
var ErrInvalidToken = errors.New("invalid access token")

// Verifier checks access tokens against the issuing workspace's cached public keys. In steady state a
// verification costs one signature check (or none, for a token seen before) and no I/O.
type Verifier struct {
	issuerBase string
	source     KeySource
	keys       *cache.Cache[*jose.JSONWebKeySet] // tenant/server -> keys
	verified   *cache.Cache[*Claims]             // tenant/token -> claims
	now        func() time.Time

	mu        sync.Mutex
	refetched map[string]time.Time // when a key set was last reloaded for an unknown kid
}

// NewVerifier makes a verifier for tokens whose issuer is `{issuerBase}/{tenant}/{server}`, dropping cached keys
// when the bus announces a key change.
func NewVerifier(issuerBase string, source KeySource, bus *changes.Bus) *Verifier {
	v := &Verifier{
		issuerBase: strings.TrimRight(issuerBase, "/"),
		source:     source,
		keys:       cache.New[*jose.JSONWebKeySet](10*time.Minute, 10_000),
		verified:   cache.New[*Claims](time.Minute, 50_000),
		now:        time.Now,
		refetched:  map[string]time.Time{},
	}
	if bus != nil {
		bus.Subscribe(changes.Keys, v.forget)
		bus.Subscribe(changes.Tenants, v.forget)
	}
	return v
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
		if !v.now().Add(-expiryLeeway).After(time.Unix(c.Expiry, 0)) { // the same rule as a fresh verification
			return c, nil
		}
		return nil, ErrInvalidToken
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
	}
	_, _ = v.verified.Get(ctx, cacheKey, func(context.Context) (*Claims, error) { return c, nil })
	return c, nil
}

// keySet returns the workspace's keys, reloading once (at most every few seconds) when kid is not among them,
// so a new key is picked up at once without letting junk kids hammer the key source.
func (v *Verifier) keySet(ctx context.Context, tenantID, serverID, kid string) (*jose.JSONWebKeySet, error) {
	key := tenantID + "/" + serverID
	load := func(ctx context.Context) (*jose.JSONWebKeySet, error) { return v.source(ctx, tenantID, serverID) }
	ks, err := v.keys.Get(ctx, key, load)
	if err != nil {
		return nil, ErrInvalidToken
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
	if ks, err = v.keys.Get(ctx, key, load); err != nil || len(ks.Key(kid)) == 0 {
		return nil, ErrInvalidToken
	}
	return ks, nil
}

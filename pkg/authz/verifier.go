package authz

import (
	"context"
	"encoding/json"
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
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/scopes"
)

// KeySource returns the public signing keys of a workspace (the token service's JWKS).
type KeySource func(ctx context.Context, tenantID, serverID string) (*jose.JSONWebKeySet, error)

// SignatureAlgorithms the token service may sign with.
var SignatureAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256, jose.EdDSA}

// AccessTokenType is the JOSE `typ` of access tokens (RFC 9068); ID tokens are `JWT`, so neither passes for the
// other.
const AccessTokenType = "at+jwt"

// ExpiryLeeway tolerates clock skew between the issuing and the verifying process.
const ExpiryLeeway = 30 * time.Second

// ErrInvalidToken is returned for any token that does not verify or was revoked; callers answer 401 without detail.
var ErrInvalidToken = errors.New("invalid access token")

// ErrRevocationUnknown is returned for a token whose revocation status cannot be read now (its tenant's denylist
// or its client's registration): the token is refused, since it may be revoked, and the next request tries again.
var ErrRevocationUnknown = errors.New("access token revocation status unknown")

// ErrKeysUnavailable is returned for a token whose workspace's keys cannot be read now (the key source answered
// Unavailable or DeadlineExceeded): the token is refused without being judged, and the next request tries again.
var ErrKeysUnavailable = errors.New("access token signing keys unavailable")

// RevokedToken is a denylist entry: a revoked access token (by jti) or an ended session (by sid), until Expiry,
// when every token it could refuse has expired anyway.
type RevokedToken struct {
	JTI    string
	Expiry time.Time
}

// Denylist is what a tenant's revocations deny.
type Denylist struct {
	Tokens   []RevokedToken // by jti
	Sessions []RevokedToken // by sid
}

// RevocationSource returns a tenant's denylist (the token service's).
type RevocationSource func(ctx context.Context, tenantID string) (*Denylist, error)

// ClientAccess is what a client may hold now.
type ClientAccess struct {
	// Registered is when the client was registered (Unix microseconds), its incarnation: a token of another
	// incarnation belongs to an earlier client of the same id, deleted since.
	Registered int64
	// Scopes decides which scopes the client may still be granted.
	Scopes *scopes.Rule
}

// ClientSource returns a client's access, or nil when the client does not exist.
type ClientSource func(ctx context.Context, tenantID, clientID string) (*ClientAccess, error)

const (
	// revocationTTL bounds how long a missed announcement (of a revocation, or of a change of a client) leaves a
	// refused token admitted.
	revocationTTL = 30 * time.Second
	// revocationLoadTimeout bounds a denylist or client load, which runs detached from the request that started
	// it because concurrent requests wait on it.
	revocationLoadTimeout = 5 * time.Second
	// revocationRedrop is when a tenant's denylist is dropped a second time after an announcement: the source may
	// have served a list it had not yet dropped itself (a token service in another process that hears the
	// announcement later, or one in this process whose subscriber runs after ours).
	revocationRedrop = 2 * time.Second
)

// Option configures a Verifier.
type Option func(*Verifier)

// WithRevocations makes the verifier refuse revoked tokens and the tokens of ended sessions. Each tenant's
// denylist is loaded once from source, held in memory, and reloaded when the bus announces a revocation in the
// tenant.
func WithRevocations(source RevocationSource) Option {
	return func(v *Verifier) { v.revocations = source }
}

// WithClients makes the verifier refuse a token whose client was deleted, registered again since the token was
// issued, or may no longer be granted one of the token's scopes. Each client's access is loaded once, held in
// memory, and reloaded when the bus announces a change of the client or of a token policy of its tenant.
func WithClients(source ClientSource) Option {
	return func(v *Verifier) { v.clients = source }
}

// WithInternal lets the platform's internal credential (minted by its own processes) through every plane, and
// alone through the internal one.
func WithInternal(a *internalcall.Authority) Option {
	return func(v *Verifier) { v.internal = a }
}

// Verifier checks access tokens against the issuing workspace's cached public keys, its tenant's denylist and
// its client's current registration. In steady state a verification costs one signature check (or none, for a
// token seen before), two map lookups and no I/O. The authorization interceptor, introspection and userinfo all
// use it, so they agree on every token.
type Verifier struct {
	issuerBase string
	source     KeySource
	keys       *cache.Cache[*jose.JSONWebKeySet] // tenant/server -> keys
	verified   *cache.Cache[*Claims]             // tenant/token -> claims
	now        func() time.Time

	revocations RevocationSource
	denylists   *cache.Cache[*denylist] // tenant -> revoked jtis and sids
	redrop      time.Duration

	clients      ClientSource
	clientAccess *cache.Cache[*ClientAccess] // tenant/client -> access (nil: the client does not exist)

	internal *internalcall.Authority

	mu        sync.Mutex
	refetched map[string]time.Time // when a key set was last reloaded for an unknown kid
}

// denylist is a tenant's revoked jtis and ended sessions.
type denylist struct {
	tokens, sessions map[string]struct{}
}

// NewVerifier makes a verifier for tokens whose issuer is `{issuerBase}/{tenant}/{server}`, dropping cached keys
// when the bus announces a key change.
func NewVerifier(issuerBase string, source KeySource, bus *changes.Bus, opts ...Option) *Verifier {
	v := &Verifier{
		issuerBase:   strings.TrimRight(issuerBase, "/"),
		source:       source,
		keys:         cache.New[*jose.JSONWebKeySet](10*time.Minute, 10_000),
		verified:     cache.New[*Claims](time.Minute, 50_000),
		now:          time.Now,
		refetched:    map[string]time.Time{},
		denylists:    cache.New[*denylist](revocationTTL, 10_000),
		redrop:       revocationRedrop,
		clientAccess: cache.New[*ClientAccess](revocationTTL, 100_000),
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
		if v.clients != nil {
			bus.Subscribe(changes.Clients, v.forgetClient)
			bus.Subscribe(changes.Policies, func(key string) { dropTenantOf(v.clientAccess, key) })
			bus.Subscribe(changes.Tenants, func(key string) { dropTenantOf(v.clientAccess, key) })
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

// forgetClient drops the access of client `tenant/client`, of a whole tenant (`tenant/`), or of everyone (`*`).
func (v *Verifier) forgetClient(key string) {
	if tenant, client, ok := strings.Cut(key, "/"); ok && client != "" {
		v.clientAccess.Invalidate(tenant + "/" + client)
		return
	}
	dropTenantOf(v.clientAccess, key)
}

// dropTenantOf drops every entry of the key's tenant (a key `tenant/…`), or everything for `*`.
func dropTenantOf[V any](c *cache.Cache[V], key string) {
	tenant, _, _ := strings.Cut(key, "/")
	if changes.IsEverything(key) || tenant == "" {
		c.InvalidateAll()
		return
	}
	c.InvalidatePrefix(tenant + "/")
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

// verifiedClaims is what a signature check reads: the claims, and the registered ones only validation needs.
type verifiedClaims struct {
	Claims
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
}

// Verify returns the claims of a valid, unexpired access token issued by one of this platform's workspaces,
// neither revoked nor of an ended session, whose client still exists and may still hold its scopes.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	tok, err := jwt.ParseSigned(raw, SignatureAlgorithms)
	if err != nil || len(tok.Headers) != 1 {
		return nil, ErrInvalidToken
	}
	if typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, AccessTokenType) {
		return nil, ErrInvalidToken // an ID token or a foreign JWT is not an access token
	}
	var unverified Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, ErrInvalidToken
	}
	if unverified.TenantID == "" || unverified.ServerID == "" || strings.Contains(unverified.TenantID, "/") {
		return nil, ErrInvalidToken
	}
	cacheKey := unverified.TenantID + "/" + raw
	if c, ok := v.verified.Peek(cacheKey); ok {
		if v.now().Add(-ExpiryLeeway).After(time.Unix(c.Expiry, 0)) { // the same rule as a fresh verification
			return nil, ErrInvalidToken
		}
		if err := v.checkStanding(ctx, c); err != nil {
			return nil, err
		}
		return c, nil
	}
	keySet, err := v.keySet(ctx, unverified.TenantID, unverified.ServerID, tok.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	var vc verifiedClaims
	if err := tok.Claims(keySet, &vc); err != nil {
		return nil, ErrInvalidToken
	}
	if err := v.validate(&vc); err != nil {
		return nil, err
	}
	c := &vc.Claims
	c.Scopes = strings.Fields(c.Scope)
	// The cache holds what the signature proves; revocation and the client are checked on every use.
	_, _ = v.verified.Get(ctx, cacheKey, func(context.Context) (*Claims, error) { return c, nil })
	if err := v.checkStanding(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// validate applies the time and issuer rules (RFC 9068 section 4) with the clock-skew leeway.
func (v *Verifier) validate(c *verifiedClaims) error {
	now := v.now()
	switch {
	case c.Issuer != platform.Issuer(v.issuerBase, c.TenantID, c.ServerID),
		c.Expiry == 0 || now.Add(-ExpiryLeeway).After(time.Unix(c.Expiry, 0)),
		c.IssuedAt != 0 && time.Unix(c.IssuedAt, 0).After(now.Add(ExpiryLeeway)),
		c.NotBefore != nil && c.NotBefore.Time().After(now.Add(ExpiryLeeway)):
		return ErrInvalidToken
	}
	return nil
}

// checkStanding refuses a token on its tenant's denylist (by jti or sid) or whose client no longer stands behind
// it (ErrInvalidToken), and any token while either cannot be read (ErrRevocationUnknown; failures are not cached).
func (v *Verifier) checkStanding(ctx context.Context, c *Claims) error {
	if err := v.checkRevoked(ctx, c); err != nil {
		return err
	}
	return v.checkClient(ctx, c)
}

func (v *Verifier) checkRevoked(ctx context.Context, c *Claims) error {
	if v.revocations == nil {
		return nil
	}
	tenant := c.TenantID
	set, err := v.denylists.Get(ctx, tenant, func(ctx context.Context) (*denylist, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revocationLoadTimeout)
		defer cancel()
		list, err := v.revocations(ctx, tenant)
		if err != nil {
			return nil, err
		}
		set := &denylist{tokens: make(map[string]struct{}, len(list.Tokens)), sessions: make(map[string]struct{}, len(list.Sessions))}
		for _, r := range list.Tokens {
			set.tokens[r.JTI] = struct{}{}
		}
		for _, r := range list.Sessions {
			set.sessions[r.JTI] = struct{}{}
		}
		return set, nil
	})
	if err != nil {
		return ErrRevocationUnknown
	}
	if _, revoked := set.tokens[c.JTI]; revoked {
		return ErrInvalidToken
	}
	if c.SessionID != "" {
		if _, ended := set.sessions[c.SessionID]; ended {
			return ErrInvalidToken
		}
	}
	return nil
}

func (v *Verifier) checkClient(ctx context.Context, c *Claims) error {
	if v.clients == nil {
		return nil
	}
	if !platform.ValidClientID(c.ClientID) {
		return ErrInvalidToken
	}
	tenant, client := c.TenantID, c.ClientID
	access, err := v.clientAccess.Get(ctx, tenant+"/"+client, func(ctx context.Context) (*ClientAccess, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revocationLoadTimeout)
		defer cancel()
		return v.clients(ctx, tenant, client)
	})
	switch {
	case err != nil:
		return ErrRevocationUnknown
	case access == nil, // deleted
		issuedToEarlierClient(c, access.Registered),
		!access.Scopes.AllowsAll(c.Scope): // carries a scope the client has lost
		return ErrInvalidToken
	}
	return nil
}

// issuedToEarlierClient reports a token of another registration of its client id than the one registered now
// (Unix microseconds). A token that names no incarnation (issued before tokens carried one) is told by its iat,
// which cannot tell a registration in the second of its issuance.
func issuedToEarlierClient(c *Claims, registered int64) bool {
	if c.ClientIncarnation != 0 {
		return c.ClientIncarnation != registered
	}
	return c.IssuedAt < registered/int64(time.Second/time.Microsecond)
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

// Audience is the `aud` claim: encoded as a list, read from a list or a single string (RFC 7519 section 4.1.3).
type Audience []string

// UnmarshalJSON accepts a string or a list of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
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

package token

import (
	"context"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/platform"
)

// The token service reaches the identity plane (the pool service) as a client of each tenant's system workspace:
// it mints itself a short access token there, signed with that workspace's key like any token of it, so the
// callee's authorization interceptor applies the identity plane's rule to it as to every other caller.
const (
	tokenServiceSubject = "authplane:token-service"
	systemTokenTTL      = 5 * time.Minute
	// systemTokenMargin: a cached token is replaced this long before it expires, so no call carries one that
	// expires in flight.
	systemTokenMargin = time.Minute
)

type systemToken struct {
	raw     string
	renewAt time.Time
}

// systemTokens caches each tenant's self-minted identity token.
type systemTokens struct {
	mu     sync.Mutex
	tokens map[string]systemToken // tenant
}

func newSystemTokens() *systemTokens { return &systemTokens{tokens: map[string]systemToken{}} }

// drop forgets a tenant's token (`tenant/…` or `tenant`), or every one for `*`: after a key change of its system
// workspace the token no longer verifies.
func (t *systemTokens) drop(key string) {
	tenant, _, _ := strings.Cut(key, "/")
	t.mu.Lock()
	defer t.mu.Unlock()
	if changes.IsEverything(key) || tenant == "" {
		clear(t.tokens)
		return
	}
	delete(t.tokens, tenant)
}

// systemToken returns a token of the tenant's system workspace with scope identity, minting one when none is
// cached or the cached one is close to expiry. Concurrent first uses may each mint one; signing is cheap and the
// last one stays.
func (s *Service) systemToken(ctx context.Context, tenantID string) (string, error) {
	now := s.now()
	s.sysTokens.mu.Lock()
	cached, ok := s.sysTokens.tokens[tenantID]
	s.sysTokens.mu.Unlock()
	if ok && now.Before(cached.renewAt) {
		return cached.raw, nil
	}
	ws, err := s.workspace(ctx, tenantID, platform.SystemServer)
	if err != nil {
		return "", err
	}
	g := &grant{ws: ws, client: &authClient{id: tokenServiceSubject, audience: []string{tokenServiceSubject}}}
	raw, err := s.issueAccessToken(ctx, g, tokenServiceSubject, platform.ScopeIdentity, systemTokenTTL)
	if err != nil {
		return "", err
	}
	s.sysTokens.mu.Lock()
	s.sysTokens.tokens[tenantID] = systemToken{raw: raw, renewAt: now.Add(systemTokenTTL - systemTokenMargin)}
	s.sysTokens.mu.Unlock()
	return raw, nil
}

// asSystem returns a context for calling the identity plane of a tenant with the service's own token (and
// nothing of the incoming call's metadata).
func (s *Service) asSystem(ctx context.Context, tenantID string) (context.Context, error) {
	tok, err := s.systemToken(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+tok)), nil
}

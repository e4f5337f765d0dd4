package token

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/platform"
)

// Refresh tokens are opaque: 256 random bits in base64url (no `.`, so never mistaken for a JWT), stored only as
// the keyring's keyed hash, so a copy of the database reveals none.

// tokenTypeRefresh is the token_type_hint of refresh tokens.
const tokenTypeRefresh = "refresh_token"

// defaultRefreshTTL applies when neither the client's token policy nor the workspace sets a lifetime.
const defaultRefreshTTL = 30 * 24 * time.Hour

// refreshTTL is the client's token policy refresh token lifetime, else the workspace's.
func (s *Service) refreshTTL(g *grant) time.Duration {
	if g.client.policyRefreshTTL > 0 {
		return g.client.policyRefreshTTL
	}
	if ttl := g.ws.md.GetRefreshTokenTtl().AsDuration(); ttl >= time.Second {
		return ttl
	}
	return defaultRefreshTTL
}

// refreshHash is the stored name of a refresh token.
func (s *Service) refreshHash(tok string) string { return s.keyring.HashSecret(tok) }

// DeleteClientTokens ends every session of a client and deletes its refresh tokens, which the client service calls
// before deleting the client. Its access tokens are refused from then on by every verifier, which finds the client
// gone.
func (s *Service) DeleteClientTokens(ctx context.Context, req *tokenv1.DeleteClientTokensRequest) (*emptypb.Empty, error) {
	if req.TenantId == "" {
		return nil, apierr.Field("tenant_id", "tenant_id is required")
	}
	if !platform.ValidClientID(req.ClientId) {
		return nil, apierr.Field("client_id", "invalid client id")
	}
	ended, err := s.store.endClientSessions(ctx, req.TenantId, req.ClientId, db.Now())
	if err != nil {
		return nil, apierr.Wrap(err, "end the client's sessions")
	}
	if ended {
		s.sessionsEnded(ctx, req.TenantId, "")
	}
	return &emptypb.Empty{}, nil
}

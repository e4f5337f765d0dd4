package token

import (
	"context"
	"time"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
)

// clientCredentials is the client_credentials grant (RFC 6749 section 4.4): a token for the client itself,
// never a refresh token.
func (s *Service) clientCredentials(ctx context.Context, g *grant) (*tokenv1.TokenResponse, error) {
	if g.client.public {
		return nil, apierr.OAuth("unauthorized_client", "a public client cannot use the client_credentials grant")
	}
	scope, err := grantedScope(g)
	if err != nil {
		return nil, err
	}
	ttl := s.accessTTL(g)
	now := s.now()
	tok, err := s.issueAccessToken(ctx, g, &authz.Claims{Subject: g.client.id, Scope: scope}, now, now.Add(ttl))
	if err != nil {
		return nil, err
	}
	return &tokenv1.TokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), Scope: scope}, nil
}

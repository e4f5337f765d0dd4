package token

import (
	"context"
	"strings"
	"time"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
)

// clientCredentials is the client_credentials grant (RFC 6749 section 4.4): a token for the client itself,
// never a refresh token.
func (s *Service) clientCredentials(ctx context.Context, g *grant) (*tokenv1.TokenResponse, error) {
	if g.client.public {
		return nil, apierr.OAuth("unauthorized_client", "a public client cannot use the client_credentials grant")
	}
	scope := g.client.defaults
	if requested := strings.Fields(g.req.Scope); len(requested) > 0 {
		for _, sc := range requested {
			if !g.client.scopes.allows(sc) {
				return nil, apierr.OAuth("invalid_scope", "scope "+quote(sc)+" is not allowed for this client")
			}
		}
		// Granted exactly as requested (order and all), with the separators normalised to single spaces.
		scope = strings.Join(requested, " ")
	}
	ttl := s.accessTTL(g)
	tok, err := s.issueAccessToken(ctx, g, g.client.id, scope, ttl)
	if err != nil {
		return nil, err
	}
	return &tokenv1.TokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), Scope: scope}, nil
}

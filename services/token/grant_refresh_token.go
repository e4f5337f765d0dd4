package token

import (
	"context"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
)

// refreshTokenGrant is the refresh token grant (RFC 6749 section 6). It is reached only by an authenticated
// client allowed to use it; refresh tokens arrive with the password grant.
func (s *Service) refreshTokenGrant(ctx context.Context, g *grant) (*tokenv1.TokenResponse, error) {
	return nil, apierr.OAuth("unsupported_grant_type", "the refresh_token grant is not available yet")
}

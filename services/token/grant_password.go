package token

import (
	"context"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
)

// passwordGrant is the resource owner password credentials grant (RFC 6749 section 4.3). It is reached only by
// an authenticated client allowed to use it; issuing arrives with the identity plane.
func (s *Service) passwordGrant(ctx context.Context, g *grant) (*tokenv1.TokenResponse, error) {
	return nil, apierr.OAuth("unsupported_grant_type", "the password grant is not available yet")
}

package token

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

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
	if g.req.Scope != "" {
		n := 0
		for sc := range strings.FieldsSeq(g.req.Scope) {
			if !g.client.scopes.allows(sc) {
				return nil, apierr.OAuth("invalid_scope", "scope "+quote(sc)+" is not allowed for this client")
			}
			n++
		}
		// Granted exactly as requested (order and all), with the separators normalised to single spaces.
		if n > 0 {
			scope = normalizeScope(g.req.Scope)
		}
	}
	ttl := s.accessTTL(g)
	tok, err := s.issueAccessToken(ctx, g, g.client.id, scope, ttl)
	if err != nil {
		return nil, err
	}
	return &tokenv1.TokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), Scope: scope}, nil
}

// normalizeScope joins the scopes of a space-separated list with single spaces, as strings.Fields splits them; a
// list already in that form (ASCII, one space between scopes, none around) is returned as it is.
func normalizeScope(scope string) string {
	prevSpace := true // so a leading space is not normal
	for i := 0; i < len(scope); i++ {
		switch c := scope[i]; {
		case c >= utf8.RuneSelf || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r':
			return strings.Join(strings.Fields(scope), " ")
		case c == ' ':
			if prevSpace {
				return strings.Join(strings.Fields(scope), " ")
			}
			prevSpace = true
		default:
			prevSpace = false
		}
	}
	if prevSpace {
		return strings.Join(strings.Fields(scope), " ")
	}
	return scope
}

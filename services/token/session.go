package token

import (
	"context"
	"strings"
	"time"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/platform"
)

// session is what a password grant established about the end-user: enough to issue the same access and ID
// token claims again later (the refresh grant stores it, as JSON, with each refresh token).
type session struct {
	// Subject is the user id of a pool user, or the verifier's `sub` (else the username) for an external one.
	Subject string `json:"sub"`
	// Scope is the granted scope, space-separated.
	Scope string `json:"scope"`
	// IdpID is the identity source that accepted the credentials (the tokens' `idp` claim).
	IdpID string `json:"idp"`
	// AuthTime is when the user authenticated (Unix seconds), the ID token's auth_time.
	AuthTime int64 `json:"auth_time"`
	// Claims are the user's profile claims (given_name, email, phone_number, …) as read at authentication; the
	// ID token carries those the granted scope allows.
	Claims map[string]any `json:"claims,omitempty"`
	// ExtraInfo is an external verifier's extraInfo, the access token's extra_info.
	ExtraInfo map[string]any `json:"extra_info,omitempty"`
}

// hasScope reports whether scope is among the session's granted scopes.
func (sess *session) hasScope(scope string) bool { return hasScope(sess.Scope, scope) }

// hasScope reports whether a space-separated scope list holds scope.
func hasScope(list, scope string) bool {
	for have := range strings.FieldsSeq(list) {
		if have == scope {
			return true
		}
	}
	return false
}

// issueForSession issues the access token of a session, and its ID token when `openid` is granted. It issues no
// refresh token: the password grant adds a new one, the refresh grant its rotated one.
func (s *Service) issueForSession(ctx context.Context, g *grant, sess *session) (*tokenv1.TokenResponse, error) {
	ttl := s.accessTTL(g)
	at, err := s.issueAccessTokenWith(ctx, g, &accessClaims{
		Subject: sess.Subject, Scope: sess.Scope, IdentitySource: sess.IdpID, ExtraInfo: sess.ExtraInfo,
	}, ttl)
	if err != nil {
		return nil, err
	}
	resp := &tokenv1.TokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), Scope: sess.Scope}
	if sess.hasScope("openid") {
		if resp.IdToken, err = s.issueIDToken(ctx, g, sess); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// allowsRefresh reports whether a password grant of g's client gets a refresh token: the client has the
// refresh_token grant and the workspace enables it.
func (g *grant) allowsRefresh() bool {
	return g.client.allowsGrant(platform.GrantRefreshToken) && g.ws.allowsGrant(platform.GrantRefreshToken)
}

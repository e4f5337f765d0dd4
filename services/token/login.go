package token

import (
	"context"
	"strings"
	"time"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/platform"
)

// login is what a password grant established about the end-user: enough to issue the same access and ID token
// claims again later (stored, as JSON, with each refresh token of the session).
type login struct {
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

// hasScope reports whether scope is among the login's granted scopes.
func (l *login) hasScope(scope string) bool { return hasScope(l.Scope, scope) }

// hasScope reports whether a space-separated scope list holds scope.
func hasScope(list, scope string) bool {
	for have := range strings.FieldsSeq(list) {
		if have == scope {
			return true
		}
	}
	return false
}

// issueForLogin issues the access token of a session, expiring at accessExp, and its ID token when `openid` is
// granted. It issues no refresh token: the password grant adds a new one, the refresh grant its rotated one.
func (s *Service) issueForLogin(ctx context.Context, g *grant, l *login, sid string, now, accessExp time.Time) (*tokenv1.TokenResponse, error) {
	at, err := s.issueAccessToken(ctx, g, &authz.Claims{
		Subject: l.Subject, Scope: l.Scope, SessionID: sid, IdentitySource: l.IdpID, ExtraInfo: l.ExtraInfo,
	}, now, accessExp)
	if err != nil {
		return nil, err
	}
	resp := &tokenv1.TokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: expiresIn(accessExp, now), Scope: l.Scope}
	if l.hasScope("openid") {
		if resp.IdToken, err = s.issueIDToken(ctx, g, l, sid); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// expiresIn is the token response's expires_in: whole seconds from now to exp.
func expiresIn(exp, now time.Time) int64 { return exp.Unix() - now.Unix() }

// allowsRefresh reports whether a password grant of g's client gets a refresh token: the client has the
// refresh_token grant and the workspace enables it.
func (g *grant) allowsRefresh() bool {
	return g.client.allowsGrant(platform.GrantRefreshToken) && g.ws.allowsGrant(platform.GrantRefreshToken)
}

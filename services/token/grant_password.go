package token

import (
	"context"
	"strings"
	"time"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
)

// maxUsernameBytes bounds a username: longer ones name no user and are not sent anywhere.
const maxUsernameBytes = 1024

// errBadCredentials is the one answer to credentials no source accepted, whatever the reason (unknown user, wrong
// password, locked or inactive user), so the answer does not tell which users exist.
func errBadCredentials() *apierr.Error {
	return apierr.OAuth("invalid_grant", "the username or password is incorrect")
}

// passwordGrant is the resource owner password credentials grant (RFC 6749 section 4.3): the workspace's
// identity sources are tried in order, the first to accept the credentials names the user, and the tokens carry
// the scope granted as for client_credentials. A refresh token comes with them when the client and the workspace
// both allow the refresh_token grant.
func (s *Service) passwordGrant(ctx context.Context, g *grant) (*tokenv1.TokenResponse, error) {
	username, password := g.req.Username, g.req.Password
	if username == "" {
		return nil, apierr.OAuth("invalid_request", "username is required")
	}
	if password == "" {
		return nil, apierr.OAuth("invalid_request", "password is required")
	}
	scope, err := grantedScope(g)
	if err != nil {
		return nil, err
	}
	if len(username) > maxUsernameBytes || strings.ContainsRune(username, 0) {
		return nil, errBadCredentials()
	}
	src, user, err := s.authenticateUser(ctx, g, username, password)
	if err != nil {
		return nil, err
	}
	if user == nil {
		return nil, errBadCredentials()
	}
	now := s.now()
	l := &login{
		Subject: user.subject, Scope: scope, IdpID: src.GetId(), AuthTime: now.Unix(),
		Claims: user.claims, ExtraInfo: user.extraInfo,
	}
	sess := s.newSession(g, src, l, now)
	accessExp := minTime(now.Add(s.accessTTL(g)), time.UnixMicro(sess.ExpiresAt))
	sess.AccessExpiresAt = accessExp.UnixMicro()
	var refresh string
	var first *refreshRow
	if g.allowsRefresh() {
		if refresh, first, err = s.firstRefreshToken(g, sess, l, now); err != nil {
			return nil, err
		}
	}
	if err := s.store.insertSession(ctx, sess, first); err != nil {
		return nil, apierr.Wrap(err, "store session")
	}
	s.pruneSessions(ctx, g.ws.tenantID, now)
	resp, err := s.issueForLogin(ctx, g, l, sess.ID, now, accessExp)
	if err != nil {
		return nil, err
	}
	resp.RefreshToken = refresh
	return resp, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

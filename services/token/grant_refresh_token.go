package token

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/secrets"
)

// errRefreshGrant is the one answer for every refresh token that cannot be used, so none tells more.
func errRefreshGrant() *apierr.Error {
	return apierr.OAuth("invalid_grant", "the refresh token is invalid, expired or revoked")
}

// refreshTokenGrant is the refresh token grant (RFC 6749 section 6). It is reached only by an authenticated
// client allowed to use it. Each use rotates the token: the presented one is spent and a successor in the same
// session is returned; a spent token presented again ends the session (OAuth 2.0 Security BCP section 4.14.2),
// and with it every access token issued in it. A refresh of a pool user's session re-checks the user: one made
// inactive, deleted or given a new password since ends the session.
func (s *Service) refreshTokenGrant(ctx context.Context, g *grant) (*tokenv1.TokenResponse, error) {
	presented := g.req.RefreshToken
	if presented == "" {
		return nil, apierr.OAuth("invalid_request", "refresh_token is required")
	}
	if len(presented) > maxTokenBytes {
		return nil, errRefreshGrant()
	}
	// Signing happens after the rotation commits: load the signer first, so that a failure to load it does not
	// spend the token.
	if _, err := s.workspaceKeys(ctx, g.ws); err != nil {
		return nil, err
	}
	next := secrets.Random(32)
	now := s.now()
	var scope string
	r, err := s.store.rotateRefresh(ctx, &refreshUse{
		tenantID: g.ws.tenantID, hash: s.refreshHash(presented),
		serverID: g.ws.serverID, serverUID: g.ws.uid, clientID: g.client.id, clientCreated: g.client.created,
		now: now.UnixMicro(), accessExpires: now.Add(s.accessTTL(g)).UnixMicro(), refreshExpires: now.Add(s.refreshTTL(g)).UnixMicro(),
		accept: func(r *refreshRow) error {
			var err error
			scope, err = narrowScope(r.Scope, g.req.Scope, g.client.scopes.Allows)
			return err
		},
		next: func(r *refreshRow, expires int64) *refreshRow {
			// The successor keeps the grant's scope (RFC 6749 section 6), whatever this request narrowed.
			return &refreshRow{
				TenantID: r.TenantID, TokenHash: s.refreshHash(next), ServerID: r.ServerID, ServerUID: r.ServerUID,
				ClientID: r.ClientID, ClientCreated: r.ClientCreated, SessionID: r.SessionID, Scope: r.Scope, Login: r.Login,
				IssuedAt: now.UnixMicro(), ExpiresAt: expires,
			}
		},
	})
	if err != nil {
		var e *apierr.Error
		switch {
		case errors.Is(err, errRefreshInvalid):
			return nil, errRefreshGrant()
		case errors.Is(err, errRefreshReused):
			s.log.WarnContext(ctx, "spent refresh token presented again: session ended", "tenant", g.ws.tenantID,
				"server", g.ws.serverID, "client", g.client.id, "session", r.cur.SessionID)
			s.sessionsEnded(ctx, g.ws.tenantID, g.ws.serverID)
			return nil, errRefreshGrant()
		case errors.As(err, &e):
			return nil, e
		}
		return nil, apierr.Wrap(err, "rotate refresh token")
	}
	var l login
	if err := json.Unmarshal([]byte(r.cur.Login), &l); err != nil {
		return nil, apierr.Wrap(err, "decode refresh token login")
	}
	l.Scope = scope
	if r.session.PoolID != "" {
		st, err := s.userState(ctx, g.ws.tenantID, r.session.PoolID, r.session.Subject)
		if err != nil {
			return nil, err
		}
		if !st.mayContinue(&r.session) {
			if err := s.endSessions(ctx, g.ws.tenantID, endUserChanged, "id = ?", r.session.ID); err != nil {
				return nil, err
			}
			return nil, errRefreshGrant()
		}
		l.Claims = st.claims // the ID token tells what the user is now
	}
	resp, err := s.issueForLogin(ctx, g, &l, r.session.ID, now, time.UnixMicro(r.accessExpires))
	if err != nil {
		return nil, err
	}
	resp.RefreshToken = next
	return resp, nil
}

// narrowScope is the scope of a refresh: the granted scope when the request names none, else the requested one,
// which may only drop scopes (RFC 6749 section 6). A scope the client may no longer use (its registration or token
// policy changed since) is left out of a scope taken from the grant, and refused when requested.
func narrowScope(granted, requested string, allowed func(string) bool) (string, error) {
	if strings.TrimSpace(requested) == "" {
		kept := make([]string, 0, 8)
		for sc := range strings.FieldsSeq(granted) {
			if allowed(sc) {
				kept = append(kept, sc)
			}
		}
		if len(kept) == 0 && granted != "" {
			return "", apierr.OAuth("invalid_scope", "none of the refresh token's scopes is allowed for this client any more")
		}
		return strings.Join(kept, " "), nil
	}
	for sc := range strings.FieldsSeq(requested) {
		if !hasScope(granted, sc) {
			return "", apierr.OAuth("invalid_scope", "scope "+quote(sc)+" was not granted to the refresh token")
		}
		if !allowed(sc) {
			return "", apierr.OAuth("invalid_scope", "scope "+quote(sc)+" is not allowed for this client")
		}
	}
	return normalizeScope(requested), nil
}

package token

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"time"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/secrets"
)

// codeVerifierPattern is a PKCE code verifier (RFC 7636 section 4.1).
var codeVerifierPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// errCodeGrant is the one answer for every code that cannot be exchanged, so none tells more.
func errCodeGrant() *apierr.Error {
	return apierr.OAuth("invalid_grant", "the authorization code is invalid, expired, already used, or was issued to another client or redirect URI")
}

// pkceMatches checks a code verifier against an S256 challenge (RFC 7636 section 4.6).
func pkceMatches(verifier, challenge string) bool {
	if !codeVerifierPattern.MatchString(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// authorizationCodeGrant exchanges an authorization code (RFC 6749 section 4.1.3) of an authenticated client: the
// code must be unused, unexpired (60 s), the client's, issued for this redirect_uri, and the code_verifier must
// match its PKCE challenge. The exchange starts an app session under the browser session that signed the user
// in; a second use of the code ends that app session, and with it every token the first use issued. No password
// is hashed here: the sign-in page did that.
func (s *Service) authorizationCodeGrant(ctx context.Context, g *grant) (*tokenv1.TokenResponse, error) {
	p := g.req.GetParameters()
	code, redirectURI, verifier := p["code"], p["redirect_uri"], p["code_verifier"]
	switch {
	case code == "":
		return nil, apierr.OAuth("invalid_request", "code is required")
	case redirectURI == "":
		return nil, apierr.OAuth("invalid_request", "redirect_uri is required")
	case verifier == "":
		return nil, apierr.OAuth("invalid_request", "code_verifier is required (PKCE)")
	case len(code) > maxTokenBytes:
		return nil, errCodeGrant()
	}
	// Signing happens after the code is spent: load the signer first, so that a failure to load it spends nothing.
	if _, err := s.workspaceKeys(ctx, g.ws); err != nil {
		return nil, err
	}
	now := s.now()
	row, err := s.store.code(ctx, g.ws.tenantID, s.keyring.HashSecret(code))
	if db.IsNotFound(err) {
		return nil, errCodeGrant()
	}
	if err != nil {
		return nil, apierr.Wrap(err, "read authorization code")
	}
	// Another client's or another redirect URI's code, or a wrong verifier, is refused without spending it: whoever
	// presents it does not hold it legitimately, and must not be able to spoil it for the client that does.
	if row.ServerID != g.ws.serverID || row.ClientID != g.client.id || row.RedirectURI != redirectURI {
		return nil, errCodeGrant()
	}
	if row.UsedAt != 0 {
		return nil, s.codeReused(ctx, row)
	}
	if row.ExpiresAt <= now.UnixMicro() || !pkceMatches(verifier, row.CodeChallenge) {
		return nil, errCodeGrant()
	}
	browser, err := s.store.liveSession(ctx, g.ws.tenantID, row.BrowserSessionID, now.UnixMicro())
	if db.IsNotFound(err) {
		return nil, errCodeGrant() // signed out since
	}
	if err != nil {
		return nil, apierr.Wrap(err, "read browser session")
	}
	var l login
	if err := json.Unmarshal([]byte(browser.Login), &l); err != nil {
		return nil, apierr.Wrap(err, "decode login")
	}
	l.Scope, l.AuthTime = row.Scope, browser.AuthTime
	if browser.PoolID != "" {
		st, err := s.userState(ctx, g.ws.tenantID, browser.PoolID, browser.Subject)
		if err != nil {
			return nil, err
		}
		if !st.mayContinue(browser) {
			return nil, errCodeGrant()
		}
		l.Claims = st.claims // as the user is now
	}
	sess := &sessionRow{
		TenantID: g.ws.tenantID, ID: secrets.NewID(), ServerID: g.ws.serverID, ClientID: g.client.id,
		PoolID: browser.PoolID, Subject: browser.Subject, ParentID: browser.ID,
		CreatedAt: now.UnixMicro(), LastUsedAt: now.UnixMicro(),
		// No app session outlives the browser session that signed it in.
		ExpiresAt: min(now.Add(g.ws.sessionTTL()).UnixMicro(), browser.ExpiresAt),
	}
	accessExp := minTime(now.Add(s.accessTTL(g)), time.UnixMicro(sess.ExpiresAt))
	sess.AccessExpiresAt = accessExp.UnixMicro()
	var refresh string
	var first *refreshRow
	if g.allowsRefresh() {
		if refresh, first, err = s.firstRefreshToken(g, sess, &l, now); err != nil {
			return nil, err
		}
	}
	if err := s.store.redeemCode(ctx, row, sess, first, now.UnixMicro()); err != nil {
		if errors.Is(err, errCodeSpent) {
			// A concurrent exchange won: this one is the second use.
			if row, err := s.store.code(ctx, g.ws.tenantID, row.CodeHash); err == nil && row.UsedAt != 0 {
				return nil, s.codeReused(ctx, row)
			}
			return nil, errCodeGrant()
		}
		return nil, apierr.Wrap(err, "redeem authorization code")
	}
	at, err := s.issueAccessToken(ctx, g, &authz.Claims{
		Subject: l.Subject, Scope: l.Scope, SessionID: sess.ID, IdentitySource: l.IdpID, ExtraInfo: l.ExtraInfo,
	}, now, accessExp)
	if err != nil {
		return nil, err
	}
	resp := &tokenv1.TokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: expiresIn(accessExp, now), Scope: l.Scope, RefreshToken: refresh}
	if l.hasScope("openid") {
		if resp.IdToken, err = s.issueIDTokenWith(ctx, g, &l, sess.ID, idTokenExtras{nonce: row.Nonce, accessToken: at}); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// codeReused ends what the first exchange of a code issued (RFC 6749 section 4.1.2): its app session, so its
// refresh token stops working and its access tokens are refused at once.
func (s *Service) codeReused(ctx context.Context, row *authCodeRow) error {
	if row.SessionID != "" {
		if err := s.endSessions(ctx, row.TenantID, endCodeReuse, "id = ?", row.SessionID); err != nil {
			return err
		}
		s.log.Warn("authorization code used twice: the session of its first use ended", "tenant", row.TenantID,
			"server", row.ServerID, "client", row.ClientID, "session", row.SessionID)
	}
	return errCodeGrant()
}

package token

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/platform"
)

// maxTokenBytes bounds a presented token: anything longer is no token of ours, and is not parsed.
const maxTokenBytes = 8 << 10

// tokenTypeAccess names access tokens in the revocation table.
const tokenTypeAccess = "access_token"

// activeAccessToken returns the claims of raw when it is an active access token of ws, by the one verifier every
// plane uses (signature, issuer, expiry with its leeway, denylist, client standing), and issued by ws itself. ok
// is false for any other token; err is set only when the answer cannot be known now.
func (s *Service) activeAccessToken(ctx context.Context, ws *workspaceInfo, raw string) (c *authz.Claims, ok bool, err error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, false, nil
	}
	c, err = s.verifier.Verify(ctx, raw)
	switch {
	case errors.Is(err, authz.ErrRevocationUnknown):
		return nil, false, apierr.OAuth("temporarily_unavailable", "the token's revocation status cannot be read now; try again")
	case err != nil:
		return nil, false, nil
	case c.TenantID != ws.tenantID || c.ServerID != ws.serverID || c.JTI == "":
		return nil, false, nil
	}
	return c, true, nil
}

// caller is who calls the introspection or revocation endpoint.
type caller struct {
	clientID string
	// anyToken: the caller may introspect every access token of the workspace, not only those issued to
	// clientID. It grants nothing at the revocation endpoint (RFC 7009 section 2.1).
	anyToken bool
}

func (c *caller) maySee(t *authz.Claims) bool { return c.anyToken || t.ClientID == c.clientID }

// authenticateCaller authenticates a client of ws (the token endpoint's cached path) or a Bearer access token of
// ws carrying introspect_tokens. A gRPC caller may send its Bearer token as metadata instead. A public client
// (no secret) is accepted only where allowPublic: its id proves nothing, which is enough to revoke its own
// tokens (RFC 7009 section 5) but not to read them (RFC 7662 section 2.1).
func (s *Service) authenticateCaller(ctx context.Context, ws *workspaceInfo, cred *tokenv1.CallerCredentials, allowPublic bool) (*caller, error) {
	bearer := cred.GetBearerToken()
	if bearer == "" && cred.GetClientId() == "" {
		bearer = authz.BearerToken(ctx)
	}
	switch {
	case cred.GetClientId() != "" && bearer != "":
		return nil, apierr.OAuth("invalid_request", "use one authentication method, not client credentials and a Bearer token together")
	case cred.GetClientId() != "":
		c, err := s.authenticate(ctx, ws, cred.GetClientId(), cred.GetClientSecret())
		if err != nil {
			return nil, err
		}
		if c.public {
			if !allowPublic {
				return nil, apierr.OAuth("invalid_client", "a public client cannot authenticate here")
			}
			return &caller{clientID: c.id}, nil // its own tokens only, whatever its scopes
		}
		return &caller{clientID: c.id, anyToken: c.scopes.Allows(platform.ScopeIntrospectTokens)}, nil
	case bearer != "":
		claims, ok, err := s.activeAccessToken(ctx, ws, bearer)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, apierr.OAuth("invalid_token", "the Bearer token is not an active access token of this authorization server")
		}
		if !claims.HasScope(platform.ScopeIntrospectTokens) {
			return nil, apierr.OAuth("insufficient_scope", "the Bearer token lacks scope "+platform.ScopeIntrospectTokens)
		}
		return &caller{clientID: claims.ClientID, anyToken: true}, nil
	}
	return nil, apierr.OAuth("invalid_client", "client authentication is required")
}

// Introspect answers RFC 7662 introspection: an access token of the workspace the caller may see, or a refresh
// token of the caller's own.
func (s *Service) Introspect(ctx context.Context, req *tokenv1.IntrospectRequest) (*tokenv1.IntrospectResponse, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	who, err := s.authenticateCaller(ctx, ws, req.Caller, false)
	if err != nil {
		return nil, err
	}
	if req.Token == "" {
		return nil, apierr.OAuth("invalid_request", "token is required")
	}
	// A refresh token is opaque and an access token a JWT, so the token's form decides whatever the hint says.
	if isRefreshTokenShaped(req.Token) {
		return s.introspectRefreshToken(ctx, ws, who, req.Token)
	}
	c, ok, err := s.activeAccessToken(ctx, ws, req.Token)
	if err != nil {
		return nil, err
	}
	if !ok || !who.maySee(c) {
		return &tokenv1.IntrospectResponse{}, nil
	}
	return &tokenv1.IntrospectResponse{
		Active: true, Sub: c.Subject, ClientId: c.ClientID, Scope: c.Scope, Exp: c.Expiry, Iat: c.IssuedAt,
		Iss: c.Issuer, TokenType: "Bearer", Aud: c.Audience, Jti: c.JTI, Tid: c.TenantID, Aid: c.ServerID,
	}, nil
}

// isRefreshTokenShaped reports an opaque token (no `.`), which can only be a refresh token of ours.
func isRefreshTokenShaped(tok string) bool { return !strings.Contains(tok, ".") }

// introspectRefreshToken answers for a refresh token: active only for the client it was issued to, while it is
// unused, unexpired and its session lives. Nobody else learns anything of it, introspect_tokens or not: a refresh
// token is its client's secret, and no resource server is meant to see one.
func (s *Service) introspectRefreshToken(ctx context.Context, ws *workspaceInfo, who *caller, raw string) (*tokenv1.IntrospectResponse, error) {
	if len(raw) > maxTokenBytes {
		return &tokenv1.IntrospectResponse{}, nil
	}
	tok, sess, err := s.store.refreshSession(ctx, ws.tenantID, s.refreshHash(raw))
	if db.IsNotFound(err) {
		return &tokenv1.IntrospectResponse{}, nil
	}
	if err != nil {
		return nil, apierr.Wrap(err, "read refresh token")
	}
	now := s.now().UnixMicro()
	if tok.ClientID != who.clientID || tok.ServerID != ws.serverID || tok.ServerUID != ws.uid || tok.UsedAt != 0 ||
		tok.ExpiresAt <= now || sess.EndedAt != 0 || sess.ExpiresAt <= now {
		return &tokenv1.IntrospectResponse{}, nil
	}
	var l login
	if err := json.Unmarshal([]byte(tok.Login), &l); err != nil {
		return nil, apierr.Wrap(err, "decode refresh token login")
	}
	return &tokenv1.IntrospectResponse{
		Active: true, TokenType: tokenTypeRefresh, Sub: l.Subject, ClientId: tok.ClientID, Scope: tok.Scope,
		Exp: tok.ExpiresAt / 1e6, Iat: tok.IssuedAt / 1e6, Iss: ws.issuer, Tid: ws.tenantID, Aid: ws.serverID,
	}, nil
}

// Revoke answers RFC 7009 revocation: success for any token, but only a token issued to the authenticated client
// is revoked (section 2.1). An access token is denied from now until it expires, in every process at once; a
// refresh token ends its session, with every access token issued in it.
func (s *Service) Revoke(ctx context.Context, req *tokenv1.RevokeRequest) (*emptypb.Empty, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	who, err := s.authenticateCaller(ctx, ws, req.Caller, true)
	if err != nil {
		return nil, err
	}
	if req.Token == "" {
		return nil, apierr.OAuth("invalid_request", "token is required")
	}
	if isRefreshTokenShaped(req.Token) {
		return &emptypb.Empty{}, s.revokeRefreshToken(ctx, ws, who, req.Token)
	}
	c, ok, err := s.activeAccessToken(ctx, ws, req.Token)
	if err != nil {
		return nil, err
	}
	if !ok || c.ClientID != who.clientID {
		return &emptypb.Empty{}, nil // RFC 7009 section 2.2: an invalid, unknown or foreign token is no error
	}
	now := db.Now()
	row := &revocationRow{
		TenantID: ws.tenantID, JTI: c.JTI, ServerID: ws.serverID, TokenType: tokenTypeAccess, ClientID: c.ClientID,
		ExpiresAt: time.Unix(c.Expiry, 0).Add(authz.ExpiryLeeway).UnixMicro(), RevokedAt: now,
	}
	if err := s.store.revoke(ctx, row); err != nil {
		return nil, apierr.Wrap(err, "revoke token")
	}
	s.bus.Publish(ctx, changes.Revocations, changes.Key(ws.tenantID, ws.serverID))
	// Rows of expired tokens deny nothing: each revocation clears its tenant's.
	if err := s.store.pruneRevocations(ctx, ws.tenantID, now); err != nil {
		s.log.WarnContext(ctx, "pruning expired revocations", "tenant", ws.tenantID, "error", err)
	}
	return &emptypb.Empty{}, nil
}

// revokeRefreshToken ends the session of raw when it is a refresh token of ws issued to the caller (RFC 7009
// section 2.1: the whole grant, its access tokens included).
func (s *Service) revokeRefreshToken(ctx context.Context, ws *workspaceInfo, who *caller, raw string) error {
	if len(raw) > maxTokenBytes {
		return nil
	}
	tok, _, err := s.store.refreshSession(ctx, ws.tenantID, s.refreshHash(raw))
	if db.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return apierr.Wrap(err, "read refresh token")
	}
	if tok.ServerID != ws.serverID || tok.ServerUID != ws.uid || tok.ClientID != who.clientID {
		return nil
	}
	return s.endSessions(ctx, ws.tenantID, endRevoked, "id = ?", tok.SessionID)
}

// denylist is a tenant's revoked access tokens and ended sessions as loaded, with their expiry (Unix
// microseconds).
type denylist struct {
	tokens, sessions map[string]int64
}

// denylist returns the tenant's denylist, held in memory and reloaded when the bus announces a revocation.
func (s *Service) denylist(ctx context.Context, tenantID string) (*denylist, error) {
	return s.revoked.Get(ctx, tenantID+"/", func(ctx context.Context) (*denylist, error) {
		ctx, cancel := detached(ctx)
		defer cancel()
		now := db.Now()
		rows, err := s.store.listRevocations(ctx, tenantID, now)
		if err != nil {
			return nil, apierr.Wrap(err, "read revocations")
		}
		ended, err := s.store.endedSessions(ctx, tenantID, now)
		if err != nil {
			return nil, apierr.Wrap(err, "read ended sessions")
		}
		d := &denylist{tokens: make(map[string]int64, len(rows)), sessions: make(map[string]int64, len(ended))}
		for _, r := range rows {
			d.tokens[r.JTI] = r.ExpiresAt
		}
		for _, r := range ended {
			// An access token is accepted up to the verifier's leeway after its exp.
			d.sessions[r.ID] = r.AccessExpiresAt + authz.ExpiryLeeway.Microseconds()
		}
		return d, nil
	})
}

// ListRevokedTokens serves the tenant's cached denylist to the verifiers of every process, less the entries that
// expired since it was loaded.
func (s *Service) ListRevokedTokens(ctx context.Context, req *tokenv1.ListRevokedTokensRequest) (*tokenv1.ListRevokedTokensResponse, error) {
	if req.TenantId == "" || strings.Contains(req.TenantId, "/") {
		return nil, apierr.Field("tenant_id", "invalid tenant id")
	}
	d, err := s.denylist(ctx, req.TenantId)
	if err != nil {
		return nil, err
	}
	now := s.now().UnixMicro()
	resp := &tokenv1.ListRevokedTokensResponse{
		Revoked:       make([]*tokenv1.RevokedToken, 0, len(d.tokens)),
		EndedSessions: make([]*tokenv1.EndedSession, 0, len(d.sessions)),
	}
	for jti, exp := range d.tokens {
		if exp > now {
			resp.Revoked = append(resp.Revoked, &tokenv1.RevokedToken{Jti: jti, ExpiresAt: timestamppb.New(time.UnixMicro(exp))})
		}
	}
	for sid, exp := range d.sessions {
		if exp > now {
			resp.EndedSessions = append(resp.EndedSessions, &tokenv1.EndedSession{SessionId: sid, ExpiresAt: timestamppb.New(time.UnixMicro(exp))})
		}
	}
	return resp, nil
}

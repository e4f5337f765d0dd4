package token

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
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

// presentedClaims are the claims of a presented access token. aud may be a string or a list (jwt.Audience).
type presentedClaims struct {
	Issuer   string       `json:"iss"`
	Subject  string       `json:"sub"`
	Audience jwt.Audience `json:"aud"`
	Expiry   int64        `json:"exp"`
	IssuedAt int64        `json:"iat"`
	ID       string       `json:"jti"`
	ClientID string       `json:"client_id"`
	Scope    string       `json:"scope"`
	TenantID string       `json:"tid"`
	ServerID string       `json:"aid"`
	// Of tokens issued to a user (see accessClaims).
	IdentitySource string         `json:"idp"`
	ExtraInfo      map[string]any `json:"extra_info"`
}

func (c *presentedClaims) hasScope(scope string) bool {
	return slices.Contains(strings.Fields(c.Scope), scope)
}

// activeAccessToken returns the claims of raw when it is an active access token of ws: signed by a key of ws's
// current incarnation, issued by exactly ws's issuer, unexpired and not revoked. ok is false for any other
// token; err is set only when the answer cannot be known (keys or revocations could not be read).
func (s *Service) activeAccessToken(ctx context.Context, ws *workspaceInfo, raw string) (c *presentedClaims, ok bool, err error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, false, nil
	}
	tok, err := jwt.ParseSigned(raw, signingAlgorithms)
	if err != nil || len(tok.Headers) != 1 {
		return nil, false, nil
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, accessTokenType) || h.KeyID == "" {
		return nil, false, nil // an ID token or a foreign JWT is not an access token
	}
	keys, err := s.workspaceKeys(ctx, ws)
	if err != nil {
		return nil, false, err
	}
	candidates := keys.verify.Key(h.KeyID)
	if len(candidates) != 1 {
		return nil, false, nil
	}
	var claims presentedClaims
	if err := tok.Claims(candidates[0].Key, &claims); err != nil {
		return nil, false, nil
	}
	now := s.now().Unix()
	if claims.Issuer != ws.issuer || claims.TenantID != ws.tenantID || claims.ServerID != ws.serverID ||
		claims.ID == "" || claims.Expiry <= now {
		return nil, false, nil
	}
	revoked, err := s.isRevoked(ctx, ws.tenantID, claims.ID)
	if err != nil || revoked {
		return nil, false, err
	}
	return &claims, true, nil
}

// caller is who calls the introspection or revocation endpoint.
type caller struct {
	clientID string
	// anyToken: the caller may see every token of the workspace, not only those issued to clientID.
	anyToken bool
}

func (c *caller) maySee(t *presentedClaims) bool { return c.anyToken || t.ClientID == c.clientID }

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
		return &caller{clientID: c.id, anyToken: c.scopes.allows(platform.ScopeIntrospectTokens)}, nil
	case bearer != "":
		claims, ok, err := s.activeAccessToken(ctx, ws, bearer)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, apierr.OAuth("invalid_token", "the Bearer token is not an active access token of this authorization server")
		}
		if !claims.hasScope(platform.ScopeIntrospectTokens) {
			return nil, apierr.OAuth("insufficient_scope", "the Bearer token lacks scope "+platform.ScopeIntrospectTokens)
		}
		return &caller{clientID: claims.ClientID, anyToken: true}, nil
	}
	return nil, apierr.OAuth("invalid_client", "client authentication is required")
}

// Introspect answers RFC 7662 introspection for access tokens.
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
	c, ok, err := s.activeAccessToken(ctx, ws, req.Token)
	if err != nil {
		return nil, err
	}
	if !ok || !who.maySee(c) {
		return &tokenv1.IntrospectResponse{}, nil
	}
	return &tokenv1.IntrospectResponse{
		Active: true, Sub: c.Subject, ClientId: c.ClientID, Scope: c.Scope, Exp: c.Expiry, Iat: c.IssuedAt,
		Iss: c.Issuer, TokenType: "Bearer", Aud: c.Audience, Jti: c.ID, Tid: c.TenantID, Aid: c.ServerID,
	}, nil
}

// Revoke answers RFC 7009 revocation: success for any token; an active access token of the workspace the caller
// may see is denied from now until it expires, in every process at once, and a refresh token revokes its chain.
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
	// A refresh token is opaque and an access token a JWT, so the token's form decides whatever the hint says
	// (RFC 7009 section 2.1 lets the server look beyond the hint).
	if !strings.Contains(req.Token, ".") {
		if _, err := s.revokeRefreshToken(ctx, ws, who, req.Token); err != nil {
			return nil, err
		}
		return &emptypb.Empty{}, nil
	}
	c, ok, err := s.activeAccessToken(ctx, ws, req.Token)
	if err != nil {
		return nil, err
	}
	if !ok || !who.maySee(c) {
		return &emptypb.Empty{}, nil // RFC 7009 section 2.2: an invalid or unknown token is no error
	}
	now := db.Now()
	row := &revocationRow{
		TenantID: ws.tenantID, JTI: c.ID, ServerID: ws.serverID, TokenType: tokenTypeAccess, ClientID: c.ClientID,
		ExpiresAt: time.Unix(c.Expiry, 0).UnixMicro(), RevokedAt: now,
	}
	if err := s.store.revoke(ctx, row); err != nil {
		return nil, apierr.Wrap(err, "revoke token")
	}
	s.bus.Publish(ctx, changes.Revocations, changes.Key(ws.tenantID, ws.serverID))
	// Rows of expired tokens deny nothing: each revocation clears its tenant's.
	if err := s.store.pruneRevocations(ctx, ws.tenantID, now); err != nil {
		s.log.Warn("pruning expired revocations", "tenant", ws.tenantID, "error", err)
	}
	return &emptypb.Empty{}, nil
}

// revocations is a tenant's denylist as loaded: the jtis of revoked tokens not yet expired, with their expiry
// (Unix microseconds).
type revocations map[string]int64

// denylist returns the tenant's denylist, held in memory and reloaded when the bus announces a revocation.
func (s *Service) denylist(ctx context.Context, tenantID string) (revocations, error) {
	return s.revoked.Get(ctx, tenantID+"/", func(ctx context.Context) (revocations, error) {
		ctx, cancel := detached(ctx)
		defer cancel()
		rows, err := s.store.listRevocations(ctx, tenantID, db.Now())
		if err != nil {
			return nil, apierr.Wrap(err, "read revocations")
		}
		set := make(revocations, len(rows))
		for _, r := range rows {
			set[r.JTI] = r.ExpiresAt
		}
		return set, nil
	})
}

// isRevoked consults the tenant's denylist.
func (s *Service) isRevoked(ctx context.Context, tenantID, jti string) (bool, error) {
	set, err := s.denylist(ctx, tenantID)
	if err != nil {
		return false, err
	}
	_, revoked := set[jti]
	return revoked, nil
}

// ListRevokedTokens serves the tenant's cached denylist to the authorization interceptors of every process, less
// the tokens that expired since it was loaded.
func (s *Service) ListRevokedTokens(ctx context.Context, req *tokenv1.ListRevokedTokensRequest) (*tokenv1.ListRevokedTokensResponse, error) {
	if req.TenantId == "" || strings.Contains(req.TenantId, "/") {
		return nil, apierr.Field("tenant_id", "invalid tenant id")
	}
	set, err := s.denylist(ctx, req.TenantId)
	if err != nil {
		return nil, err
	}
	now := s.now().UnixMicro()
	resp := &tokenv1.ListRevokedTokensResponse{Revoked: make([]*tokenv1.RevokedToken, 0, len(set))}
	for jti, exp := range set {
		if exp > now {
			resp.Revoked = append(resp.Revoked, &tokenv1.RevokedToken{Jti: jti, ExpiresAt: timestamppb.New(time.UnixMicro(exp))})
		}
	}
	return resp, nil
}

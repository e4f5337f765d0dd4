package token

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/secrets"
)

// Refresh tokens are opaque: 256 random bits in base64url (no `.`, so never mistaken for a JWT), stored only as
// the keyring's keyed hash, so a copy of the database reveals none.

// tokenTypeRefresh is the token_type_hint of refresh tokens.
const tokenTypeRefresh = "refresh_token"

// defaultRefreshTTL applies when neither the client's token policy nor the workspace sets a lifetime.
const defaultRefreshTTL = 30 * 24 * time.Hour

// refreshTTL is the client's token policy refresh token lifetime, else the workspace's.
func (s *Service) refreshTTL(g *grant) time.Duration {
	if g.client.policyRefreshTTL > 0 {
		return g.client.policyRefreshTTL
	}
	if ttl := g.ws.md.GetRefreshTokenTtl().AsDuration(); ttl >= time.Second {
		return ttl
	}
	return defaultRefreshTTL
}

// refreshHash is the stored name of a refresh token.
func (s *Service) refreshHash(tok string) string { return s.keyring.HashSecret(tok) }

// issueRefreshToken starts a new chain of refresh tokens for sess and returns its first token, or "" when the
// client or the workspace does not allow the refresh_token grant.
func (s *Service) issueRefreshToken(ctx context.Context, g *grant, sess *session) (string, error) {
	if !g.client.allowsGrant(platform.GrantRefreshToken) || !g.ws.allowsGrant(platform.GrantRefreshToken) {
		return "", nil
	}
	raw, err := json.Marshal(sess)
	if err != nil {
		return "", apierr.Wrap(err, "encode session")
	}
	now := s.now()
	tok := secrets.Random(32)
	chain := &chainRow{
		TenantID: g.ws.tenantID, ChainID: secrets.Random(16), ServerID: g.ws.serverID, ClientID: g.client.id,
		ExpiresAt: now.Add(s.refreshTTL(g)).UnixMicro(),
	}
	row := &refreshRow{
		TenantID: g.ws.tenantID, TokenHash: s.refreshHash(tok), ServerID: g.ws.serverID, ServerUID: g.ws.uid,
		ClientID: g.client.id, ClientCreated: g.client.created, ChainID: chain.ChainID, Scope: sess.Scope, Session: string(raw),
		IssuedAt: now.UnixMicro(), ExpiresAt: chain.ExpiresAt,
	}
	if err := s.store.insertChain(ctx, chain, row); err != nil {
		return "", apierr.Wrap(err, "store refresh token")
	}
	// Expired tokens deny nothing: each new chain clears its tenant's.
	if err := s.store.pruneRefresh(ctx, g.ws.tenantID, now.UnixMicro()); err != nil {
		s.log.Warn("pruning expired refresh tokens", "tenant", g.ws.tenantID, "error", err)
	}
	return tok, nil
}

// revokeRefreshToken revokes the chain of raw when it is a refresh token of ws the caller may see (RFC 7009
// section 2.1: the whole grant). found reports whether raw is a refresh token of the tenant at all.
func (s *Service) revokeRefreshToken(ctx context.Context, ws *workspaceInfo, who *caller, raw string) (found bool, err error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return false, nil
	}
	found, err = s.store.revokeRefreshChain(ctx, ws.tenantID, s.refreshHash(raw), func(r *refreshRow) bool {
		return r.ServerID == ws.serverID && r.ServerUID == ws.uid && (who.anyToken || r.ClientID == who.clientID)
	}, s.now().UnixMicro())
	if err != nil {
		return found, apierr.Wrap(err, "revoke refresh token")
	}
	return found, nil
}

// DeleteClientTokens deletes the refresh tokens of a client, which the client service calls before deleting it.
func (s *Service) DeleteClientTokens(ctx context.Context, req *tokenv1.DeleteClientTokensRequest) (*emptypb.Empty, error) {
	if req.TenantId == "" {
		return nil, apierr.Field("tenant_id", "tenant_id is required")
	}
	if !platform.ValidClientID(req.ClientId) {
		return nil, apierr.Field("client_id", "invalid client id")
	}
	if err := s.store.deleteClientRefresh(ctx, req.TenantId, req.ClientId); err != nil {
		return nil, apierr.Wrap(err, "delete refresh tokens")
	}
	return &emptypb.Empty{}, nil
}

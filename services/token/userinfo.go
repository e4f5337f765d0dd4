package token

import (
	"context"

	"google.golang.org/protobuf/types/known/structpb"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
)

// GetUserInfo answers the OpenID Connect UserInfo endpoint (Core section 5.3) for an active access token of the
// workspace with scope openid: `sub`, and the claims the token's scope releases. A pool user's claims are read
// fresh from the pool service; an external user's are the token's own (extra_info).
func (s *Service) GetUserInfo(ctx context.Context, req *tokenv1.GetUserInfoRequest) (*tokenv1.UserInfo, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	raw := req.AccessToken
	if raw == "" {
		raw = authz.BearerToken(ctx)
	}
	if raw == "" {
		return nil, apierr.OAuth("invalid_token", "a Bearer access token is required")
	}
	c, ok, err := s.activeAccessToken(ctx, ws, raw)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierr.OAuth("invalid_token", "the access token is not an active access token of this authorization server")
	}
	if !c.HasScope("openid") {
		return nil, apierr.OAuth("insufficient_scope", "the access token lacks scope openid")
	}
	claims := map[string]any{}
	if src := identitySource(ws, c.IdentitySource); src != nil && src.GetMethod() == methodIdentityPool {
		st, err := s.userState(ctx, ws.tenantID, src.GetIdentityPoolId(), c.Subject)
		if err != nil {
			return nil, err
		}
		if !st.exists {
			return nil, apierr.OAuth("invalid_token", "the token's user no longer exists")
		}
		claims = releasedClaims(st.claims, c.Scope)
	}
	claims["sub"] = c.Subject
	if len(c.ExtraInfo) > 0 {
		claims["extra_info"] = c.ExtraInfo
	}
	st, err := structpb.NewStruct(claims)
	if err != nil {
		return nil, apierr.Wrap(err, "encode user claims")
	}
	return &tokenv1.UserInfo{Claims: st}, nil
}

// identitySource finds a source of the workspace by id; nil when it is gone (the token's user is then known by
// its subject alone).
func identitySource(ws *workspaceInfo, id string) *workspacev1.IdentitySource {
	if id == "" {
		return nil
	}
	for _, src := range ws.md.GetIdentitySources() {
		if src.GetId() == id {
			return src
		}
	}
	return nil
}

package token

import (
	"context"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/platform"
)

// The consents of the hosted consent page, as the identity plane sees them.

func (s *Service) ListUserConsents(ctx context.Context, req *tokenv1.ListUserConsentsRequest) (*tokenv1.ListUserConsentsResponse, error) {
	if err := s.requireUser(ctx, req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "consents/"+req.TenantId+"/"+req.PoolId+"/"+req.UserId,
		func(after string, limit int) ([]consentRow, error) {
			return s.store.userConsents(ctx, req.TenantId, req.PoolId, req.UserId, after, limit)
		}, func(r *consentRow) string { return r.ClientID })
	if err != nil {
		return nil, apierr.Wrap(err, "list consents")
	}
	resp := &tokenv1.ListUserConsentsResponse{Consents: make([]*tokenv1.Consent, 0, len(rows)), NextPageToken: next}
	for _, r := range rows {
		resp.Consents = append(resp.Consents, &tokenv1.Consent{
			ClientId: r.ClientID, AuthorizationServerId: r.ServerID, Scopes: strings.Fields(r.Scope),
			GrantedAt: timestamppb.New(time.UnixMicro(r.GrantedAt)),
		})
	}
	return resp, nil
}

// DeleteUserConsent revokes a consent. The user's sessions of that client end with it (its tokens were issued on
// the strength of the consent); the browser session, which other apps share, goes on.
func (s *Service) DeleteUserConsent(ctx context.Context, req *tokenv1.DeleteUserConsentRequest) (*emptypb.Empty, error) {
	if err := s.requireUser(ctx, req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	if !platform.ValidClientID(req.ClientId) {
		return nil, apierr.Field("client_id", "invalid client id")
	}
	found, err := s.store.deleteConsent(ctx, req.TenantId, req.PoolId, req.UserId, req.ClientId)
	if err != nil {
		return nil, apierr.Wrap(err, "delete consent")
	}
	if !found {
		return nil, apierr.NotFound("no consent of user %q to client %q", req.UserId, req.ClientId)
	}
	if err := s.endSessions(ctx, req.TenantId, endConsentRevoked, "client_id = ? AND pool_id = ? AND subject = ? AND browser_hash = ''",
		req.ClientId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

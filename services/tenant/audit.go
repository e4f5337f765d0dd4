package tenant

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/audit"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/platform"
)

// The audit API: a tenant's trail on its admin plane, the operator's own on the operator's.

func (s *Service) ListAuditEvents(ctx context.Context, req *tenantv1.ListAuditEventsRequest) (*tenantv1.ListAuditEventsResponse, error) {
	if req.TenantId == "" || req.TenantId == platform.RootTenant {
		return nil, apierr.Field("tenant_id", "invalid tenant id")
	}
	return s.listAudit(ctx, req.TenantId, req.PageSize, req.PageToken, audit.Filter{
		Action: req.Action, Actor: req.Actor, ResourceType: req.ResourceType, ResourceID: req.ResourceId,
		Since: timeOf(req.Since), Until: timeOf(req.Until),
	})
}

func (s *Service) ListOperatorAuditEvents(ctx context.Context, req *tenantv1.ListOperatorAuditEventsRequest) (*tenantv1.ListAuditEventsResponse, error) {
	return s.listAudit(ctx, platform.RootTenant, req.PageSize, req.PageToken, audit.Filter{
		Action: req.Action, Actor: req.Actor, ResourceType: req.ResourceType, ResourceID: req.ResourceId,
		Since: timeOf(req.Since), Until: timeOf(req.Until),
	})
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// listAudit pages a trail newest first: the page token is the last event id of the previous page (keyset, so a
// page costs the same at any depth and events written meanwhile never shift it). The filter is part of the token's
// scope, so a token is refused for another filter.
func (s *Service) listAudit(ctx context.Context, tenantID string, size int32, token string, f audit.Filter) (*tenantv1.ListAuditEventsResponse, error) {
	scope := "audit/" + tenantID + "/" + f.Action + "/" + f.Actor + "/" + f.ResourceType + "/" + f.ResourceID + "/" +
		f.Since.String() + "/" + f.Until.String()
	events, next, err := paging.Page(token, size, scope, func(after string, limit int) ([]audit.Event, error) {
		return s.audit.List(ctx, tenantID, f, after, limit)
	}, func(e *audit.Event) string { return e.ID })
	if err != nil {
		return nil, apierr.Wrap(err, "list audit events")
	}
	resp := &tenantv1.ListAuditEventsResponse{AuditEvents: make([]*tenantv1.AuditEvent, 0, len(events)), NextPageToken: next}
	for _, e := range events {
		resp.AuditEvents = append(resp.AuditEvents, &tenantv1.AuditEvent{
			Id: e.ID, Time: timestamppb.New(e.Time), TenantId: e.TenantID,
			Actor:         &tenantv1.AuditActor{AuthorizationServerId: e.Actor.ServerID, ClientId: e.Actor.ClientID, Sub: e.Actor.Subject},
			Action:        e.Action,
			Resource:      &tenantv1.AuditResource{Type: e.Resource.Type, Id: e.Resource.ID},
			Outcome:       e.Outcome,
			RequestId:     e.RequestID,
			SourceAddress: e.SourceAddress,
			ChangedFields: e.ChangedFields,
		})
	}
	return resp, nil
}

// purgeBatch bounds one purge step: a backlog is deleted in steps, never in one long transaction.
const purgeBatch = 1000

// keepRetention deletes events older than the retention period, in bounded steps, until ctx ends. Every tenant
// service process runs it; deleting an event twice is harmless.
func (s *Service) keepRetention(ctx context.Context, retention time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Minute + time.Duration(rand.Int64N(int64(10*time.Second)))):
		}
		for {
			n, err := s.audit.Purge(ctx, time.Now().Add(-retention), purgeBatch)
			if err != nil {
				s.log.Warn("purging audit events", "error", err)
				break
			}
			if n < purgeBatch {
				break
			}
		}
	}
}

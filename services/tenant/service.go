// Package tenant is the tenant service: the platform operator's API. Creating a tenant provisions it across the
// services that own its parts (workspaces, admin client); deleting one removes it from all of them.
package tenant

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gorm.io/gorm"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	schemav1 "github.com/authplane/authplane/gen/go/authplane/schema/v1"
	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/audit"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/svc"
)

// Service implements authplane.tenant.v1.TenantService.
type Service struct {
	tenantv1.UnimplementedTenantServiceServer
	store      store
	bus        *changes.Bus
	log        *slog.Logger
	workspaces workspacev1.WorkspaceServiceClient
	clients    clientv1.ClientServiceClient
	tokens     tokenv1.TokenServiceClient
	pools      poolv1.PoolServiceClient
	schemas    schemav1.SchemaServiceClient
	internal   *internalcall.Authority
	audit      *audit.Log
}

// New migrates the tenant table and records the reserved root tenant.
func New(ctx context.Context, d svc.Deps) (*Service, error) {
	if err := d.DB.Migrate(ctx, "tenant", migrations); err != nil {
		return nil, err
	}
	s := &Service{
		store: store{db: d.DB}, bus: d.Bus, log: d.Log,
		workspaces: workspacev1.NewWorkspaceServiceClient(d.Conns.Workspace),
		clients:    clientv1.NewClientServiceClient(d.Conns.Client),
		tokens:     tokenv1.NewTokenServiceClient(d.Conns.Token),
		pools:      poolv1.NewPoolServiceClient(d.Conns.Pool),
		schemas:    schemav1.NewSchemaServiceClient(d.Conns.Schema),
		internal:   d.Internal,
		audit:      d.Audit,
	}
	if d.AuditRetention > 0 {
		go s.keepRetention(ctx, d.AuditRetention)
	}
	now := db.Now()
	root := &tenantRow{ID: platform.RootTenant, Name: "Platform operator", State: stateActive, CreatedAt: now, UpdatedAt: now}
	if err := s.store.ensure(ctx, root); err != nil {
		return nil, apierr.Wrap(err, "record the root tenant")
	}
	return s, nil
}

// Register adds the service to a gRPC server or in-process connection.
func (s *Service) Register(r grpc.ServiceRegistrar) { tenantv1.RegisterTenantServiceServer(r, s) }

func (s *Service) CreateTenant(ctx context.Context, req *tenantv1.CreateTenantRequest) (*tenantv1.CreateTenantResponse, error) {
	in := req.GetTenant()
	if in == nil {
		return nil, apierr.Field("tenant", "a tenant is required")
	}
	if !platform.ValidTenantID(in.Id) {
		return nil, apierr.Field("id", "tenant id must match ^[a-z][a-z0-9-]{1,62}$ and not be reserved")
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = in.Id
	}
	if len(name) > 200 {
		return nil, apierr.Field("name", "name is longer than 200 characters")
	}
	now := db.Now()
	row := &tenantRow{ID: in.Id, Name: name, State: stateProvisioning, CreatedAt: now, UpdatedAt: now}
	// The primary key decides between concurrent creations of one id: the loser gets 409 and provisions nothing.
	if err := s.store.insert(ctx, row); err != nil {
		if db.IsUniqueViolation(err) {
			return nil, apierr.AlreadyExists("tenant %q already exists", in.Id)
		}
		return nil, apierr.Wrap(err, "create tenant")
	}
	admin, err := s.provision(ctx, row.ID)
	if err != nil {
		s.undo(ctx, row.ID)
		return nil, err
	}
	row.State, row.UpdatedAt = stateActive, db.Now()
	if err := s.store.update(ctx, row, s.operatorChange(ctx, row.ID, "id", "name")); err != nil {
		s.undo(ctx, row.ID)
		return nil, apierr.Wrap(err, "activate tenant")
	}
	return &tenantv1.CreateTenantResponse{
		Tenant:      toProto(row),
		AdminClient: &tenantv1.TenantAdminClient{ClientId: admin.ClientId, ClientSecret: admin.GetClientSecret()},
	}, nil
}

// provision asks each owning service for the tenant's parts, as the platform (internal calls).
func (s *Service) provision(ctx context.Context, tenantID string) (*clientv1.Client, error) {
	fwd := s.internal.Outgoing(ctx)
	if _, err := s.workspaces.ProvisionTenant(fwd, &workspacev1.ProvisionTenantRequest{TenantId: tenantID}); err != nil {
		return nil, err
	}
	return s.clients.CreateTenantAdminClient(fwd, &clientv1.CreateTenantAdminClientRequest{TenantId: tenantID})
}

// undo removes whatever a failed creation made, so nothing half-made remains. The tenant row goes last and in
// any case: its id must be free again for a retry.
func (s *Service) undo(ctx context.Context, tenantID string) {
	ctx = context.WithoutCancel(ctx)
	if err := s.deleteEverywhere(ctx, tenantID); err != nil {
		s.log.ErrorContext(ctx, "cleaning up a failed tenant creation", "tenant", tenantID, "error", err)
	}
	if err := s.store.delete(ctx, tenantID, nil); err != nil {
		s.log.ErrorContext(ctx, "cleaning up a failed tenant creation", "tenant", tenantID, "error", err)
	}
}

// deleteEverywhere asks every service to remove the tenant's data. Each call is idempotent and each is tried
// even when another fails, so a failed deletion can simply be retried.
func (s *Service) deleteEverywhere(ctx context.Context, tenantID string) error {
	fwd := s.internal.Outgoing(ctx)
	var errs []error
	call := func(_ any, err error) { errs = append(errs, err) }
	call(s.pools.DeleteTenantData(fwd, &poolv1.DeleteTenantDataRequest{TenantId: tenantID}))
	call(s.schemas.DeleteTenantData(fwd, &schemav1.DeleteTenantDataRequest{TenantId: tenantID}))
	call(s.clients.DeleteTenantData(fwd, &clientv1.DeleteTenantDataRequest{TenantId: tenantID}))
	call(s.tokens.DeleteTenantData(fwd, &tokenv1.DeleteTenantDataRequest{TenantId: tenantID}))
	call(s.workspaces.DeleteTenantData(fwd, &workspacev1.DeleteTenantDataRequest{TenantId: tenantID}))
	for _, err := range errs {
		if err != nil {
			return err // the first failure; the others were logged by their services
		}
	}
	return nil
}

func (s *Service) GetTenant(ctx context.Context, req *tenantv1.GetTenantRequest) (*tenantv1.Tenant, error) {
	row, err := s.get(ctx, req.TenantId)
	if err != nil {
		return nil, err
	}
	return toProto(row), nil
}

func (s *Service) get(ctx context.Context, id string) (*tenantRow, error) {
	row, err := s.store.get(ctx, id)
	if db.IsNotFound(err) {
		return nil, apierr.NotFound("tenant %q not found", id)
	}
	if err != nil {
		return nil, apierr.Wrap(err, "get tenant")
	}
	return row, nil
}

func (s *Service) ListTenants(ctx context.Context, req *tenantv1.ListTenantsRequest) (*tenantv1.ListTenantsResponse, error) {
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "tenants",
		func(after string, limit int) ([]tenantRow, error) { return s.store.list(ctx, after, limit) },
		func(r *tenantRow) string { return r.ID })
	if err != nil {
		return nil, apierr.Wrap(err, "list tenants")
	}
	resp := &tenantv1.ListTenantsResponse{Tenants: []*tenantv1.Tenant{}, NextPageToken: next}
	for i := range rows {
		resp.Tenants = append(resp.Tenants, toProto(&rows[i]))
	}
	return resp, nil
}

func (s *Service) UpdateTenant(ctx context.Context, req *tenantv1.UpdateTenantRequest) (*tenantv1.Tenant, error) {
	if req.Tenant == nil {
		return nil, apierr.Field("tenant", "a tenant is required")
	}
	row, err := s.get(ctx, req.TenantId)
	if err != nil {
		return nil, err
	}
	mask := req.GetUpdateMask().GetPaths()
	if len(mask) == 0 || slices.Contains(mask, "name") {
		name := strings.TrimSpace(req.Tenant.Name)
		if name == "" || len(name) > 200 {
			return nil, apierr.Field("name", "name must be 1 to 200 characters")
		}
		row.Name = name
	}
	row.UpdatedAt = db.Now()
	if err := s.store.update(ctx, row, s.operatorChange(ctx, row.ID, mask...)); err != nil {
		return nil, apierr.Wrap(err, "update tenant")
	}
	return toProto(row), nil
}

func (s *Service) DeleteTenant(ctx context.Context, req *tenantv1.DeleteTenantRequest) (*emptypb.Empty, error) {
	if req.TenantId == platform.RootTenant {
		return nil, apierr.Field("tenant_id", "the root tenant cannot be deleted")
	}
	// A tenant left `provisioning` by a crash is invisible elsewhere but can be deleted here.
	if _, err := s.store.getAny(ctx, req.TenantId); db.IsNotFound(err) {
		return nil, apierr.NotFound("tenant %q not found", req.TenantId)
	} else if err != nil {
		return nil, apierr.Wrap(err, "get tenant")
	}
	if err := s.deleteEverywhere(ctx, req.TenantId); err != nil {
		return nil, err
	}
	if err := s.store.delete(ctx, req.TenantId, func(tx *gorm.DB) error {
		// The tenant's trail goes with it: a tenant created again under the same id starts a trail of its own.
		if err := s.audit.DeleteTenant(tx, req.TenantId); err != nil {
			return err
		}
		return s.operatorChange(ctx, req.TenantId)(tx)
	}); err != nil {
		return nil, apierr.Wrap(err, "delete tenant")
	}
	s.bus.Publish(ctx, changes.Tenants, changes.TenantKey(req.TenantId))
	return &emptypb.Empty{}, nil
}

// operatorChange records a change of tenant id on the operator's own trail (tenant root).
func (s *Service) operatorChange(ctx context.Context, id string, changed ...string) func(*gorm.DB) error {
	return func(tx *gorm.DB) error {
		return s.audit.Change(ctx, tx, platform.RootTenant, audit.Resource{Type: "tenant", ID: id}, changed...)
	}
}

func toProto(r *tenantRow) *tenantv1.Tenant {
	return &tenantv1.Tenant{
		Id: r.ID, Name: r.Name,
		CreatedAt: timestamppb.New(time.UnixMicro(r.CreatedAt)), UpdatedAt: timestamppb.New(time.UnixMicro(r.UpdatedAt)),
	}
}

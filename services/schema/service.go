// Package schema is the schema service: the JSON Schema documents that identity pools validate user payloads and
// metadata against. Documents are checked with a JSON Schema validator when they are written; the pool service
// compiles and caches them for validation and drops its copy when this service announces a change.
package schema

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	schemav1 "github.com/authplane/authplane/gen/go/authplane/schema/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/docschema"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/svc"
)

// Service implements authplane.schema.v1.SchemaService.
type Service struct {
	schemav1.UnimplementedSchemaServiceServer
	store store
	bus   *changes.Bus
	pools poolv1.PoolServiceClient
}

// New migrates the service's table.
func New(ctx context.Context, d svc.Deps) (*Service, error) {
	if err := d.DB.Migrate(ctx, "schema", migrations); err != nil {
		return nil, err
	}
	return &Service{store: store{db: d.DB}, bus: d.Bus, pools: poolv1.NewPoolServiceClient(d.Conns.Pool)}, nil
}

// Register adds the service to a gRPC server or in-process connection.
func (s *Service) Register(r grpc.ServiceRegistrar) { schemav1.RegisterSchemaServiceServer(r, s) }

func (s *Service) changed(ctx context.Context, tenantID, id string) {
	s.bus.Publish(ctx, changes.Schemas, changes.Key(tenantID, id))
}

func (s *Service) CreateSchema(ctx context.Context, req *schemav1.CreateSchemaRequest) (*schemav1.Schema, error) {
	in := req.GetSchema()
	if in == nil {
		return nil, apierr.Field("schema", "a schema is required")
	}
	id, err := platform.NewResourceID(in.Id)
	if err != nil {
		return nil, err
	}
	now := db.Now()
	row := &schemaRow{TenantID: req.TenantId, ID: id, CreatedAt: now, UpdatedAt: now}
	if err := apply(row, in, nil); err != nil {
		return nil, err
	}
	if err := s.store.create(ctx, row); err != nil {
		if db.IsUniqueViolation(err) {
			return nil, apierr.AlreadyExists("schema %q already exists", id)
		}
		return nil, apierr.Wrap(err, "create schema")
	}
	s.changed(ctx, row.TenantID, row.ID)
	return toProto(row)
}

// apply copies the fields named by mask (all when mask is nil) onto row and checks the result.
func apply(row *schemaRow, in *schemav1.Schema, mask *fieldmaskpb.FieldMask) error {
	set := func(field string) bool {
		return mask == nil || slices.ContainsFunc(mask.Paths, func(p string) bool {
			return p == field || strings.HasPrefix(p, field+".")
		})
	}
	if set("name") {
		row.Name = strings.TrimSpace(in.Name)
	}
	if row.Name == "" {
		row.Name = row.ID
	}
	if len(row.Name) > 200 {
		return apierr.Field("name", "name is longer than 200 characters")
	}
	if set("description") {
		if len(in.Description) > 2000 {
			return apierr.Field("description", "description is longer than 2000 characters")
		}
		row.Description = in.Description
	}
	if set("schema") {
		if in.Schema == nil {
			return apierr.Field("schema", "schema (a JSON Schema document) is required")
		}
		doc := in.Schema.AsMap()
		if _, err := docschema.Compile(doc); err != nil {
			return violation("schema", err)
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			return apierr.Field("schema", "the schema cannot be encoded as JSON")
		}
		row.Document = string(raw)
	}
	return nil
}

// violation turns a docschema error into a 400 naming the field under prefix.
func violation(prefix string, err error) error {
	if v, ok := err.(*docschema.Violation); ok {
		field := prefix
		if v.Field != "" {
			field += "." + v.Field
		}
		return apierr.Field(field, "%s: %s", field, v.Message)
	}
	return apierr.Field(prefix, "%s: %v", prefix, err)
}

func (s *Service) GetSchema(ctx context.Context, req *schemav1.GetSchemaRequest) (*schemav1.Schema, error) {
	row, err := s.get(ctx, req.TenantId, req.SchemaId)
	if err != nil {
		return nil, err
	}
	return toProto(row)
}

func (s *Service) get(ctx context.Context, tenantID, id string) (*schemaRow, error) {
	row, err := s.store.get(ctx, tenantID, id)
	if db.IsNotFound(err) {
		return nil, apierr.NotFound("schema %q not found", id)
	}
	if err != nil {
		return nil, apierr.Wrap(err, "get schema")
	}
	return row, nil
}

func (s *Service) ListSchemas(ctx context.Context, req *schemav1.ListSchemasRequest) (*schemav1.ListSchemasResponse, error) {
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "schemas/"+req.TenantId,
		func(after string, limit int) ([]schemaRow, error) {
			return s.store.list(ctx, req.TenantId, after, limit)
		},
		func(r *schemaRow) string { return r.ID })
	if err != nil {
		return nil, apierr.Wrap(err, "list schemas")
	}
	resp := &schemav1.ListSchemasResponse{Schemas: []*schemav1.Schema{}, NextPageToken: next}
	for i := range rows {
		p, err := toProto(&rows[i])
		if err != nil {
			return nil, err
		}
		resp.Schemas = append(resp.Schemas, p)
	}
	return resp, nil
}

func (s *Service) UpdateSchema(ctx context.Context, req *schemav1.UpdateSchemaRequest) (*schemav1.Schema, error) {
	if req.Schema == nil {
		return nil, apierr.Field("schema", "a schema is required")
	}
	row, err := s.get(ctx, req.TenantId, req.SchemaId)
	if err != nil {
		return nil, err
	}
	if err := apply(row, req.Schema, req.UpdateMask); err != nil {
		return nil, err
	}
	row.UpdatedAt = db.Now()
	n, err := s.store.update(ctx, row)
	if err != nil {
		return nil, apierr.Wrap(err, "update schema")
	}
	if n == 0 {
		return nil, apierr.NotFound("schema %q not found", req.SchemaId)
	}
	s.changed(ctx, row.TenantID, row.ID)
	return toProto(row)
}

func (s *Service) DeleteSchema(ctx context.Context, req *schemav1.DeleteSchemaRequest) (*emptypb.Empty, error) {
	if _, err := s.get(ctx, req.TenantId, req.SchemaId); err != nil {
		return nil, err
	}
	// The pool service owns which pools use which schema; it is asked on the caller's behalf.
	used, err := s.pools.ListPools(authz.ForwardCaller(ctx), &poolv1.ListPoolsRequest{
		TenantId: req.TenantId, SchemaId: req.SchemaId, PageSize: 1})
	if err != nil {
		return nil, err
	}
	if len(used.Pools) > 0 {
		return nil, apierr.AlreadyExists("schema %q is in use by pool %q", req.SchemaId, used.Pools[0].Id)
	}
	if _, err := s.store.delete(ctx, req.TenantId, req.SchemaId); err != nil {
		return nil, apierr.Wrap(err, "delete schema")
	}
	s.changed(ctx, req.TenantId, req.SchemaId)
	return &emptypb.Empty{}, nil
}

func (s *Service) DeleteTenantData(ctx context.Context, req *schemav1.DeleteTenantDataRequest) (*emptypb.Empty, error) {
	if req.TenantId == "" || req.TenantId == platform.RootTenant {
		return nil, apierr.Field("tenant_id", "invalid tenant id")
	}
	if err := s.store.deleteTenant(ctx, req.TenantId); err != nil {
		return nil, apierr.Wrap(err, "delete schemas")
	}
	s.bus.Publish(ctx, changes.Schemas, changes.TenantKey(req.TenantId))
	return &emptypb.Empty{}, nil
}

func toProto(r *schemaRow) (*schemav1.Schema, error) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.Document), &doc); err != nil {
		return nil, apierr.Wrap(err, "decode stored schema")
	}
	st, err := structpb.NewStruct(doc)
	if err != nil {
		return nil, apierr.Wrap(err, "convert stored schema")
	}
	return &schemav1.Schema{
		Id: r.ID, TenantId: r.TenantID, Name: r.Name, Description: r.Description, Schema: st,
		CreatedAt: timestamppb.New(time.UnixMicro(r.CreatedAt)),
		UpdatedAt: timestamppb.New(time.UnixMicro(r.UpdatedAt)),
	}, nil
}

// Package pool is the pool service: identity pools and their users, identifiers and passwords. Passwords are
// hashed in a bounded pool (package password); every password check, whatever the path, goes through one
// function that applies the pool's lockout.
package pool

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	schemav1 "github.com/authplane/authplane/gen/go/authplane/schema/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/cache"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/docschema"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/password"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/svc"
)

// Service implements authplane.pool.v1.PoolService.
type Service struct {
	poolv1.UnimplementedPoolServiceServer
	store   store
	bus     *changes.Bus
	log     *slog.Logger
	schemas schemav1.SchemaServiceClient
	// tokens ends the sessions of users made inactive, deleted or given a new password.
	tokens   tokenv1.TokenServiceClient
	internal *internalcall.Authority
	hasher   *password.Hasher
	// pools caches pool settings (read by every password check); compiled caches compiled schemas. Both drop
	// an entry the moment its owner announces a change.
	pools    *cache.Cache[*poolConfig]
	compiled *cache.Cache[*docschema.Schema]
}

// poolConfig is a pool with its decoded settings.
type poolConfig struct {
	row      *poolRow
	settings settings
}

// New migrates the service's tables and starts its hashing pool.
func New(ctx context.Context, d svc.Deps) (*Service, error) {
	return NewWithHasher(ctx, d, password.NewHasher(d.PasswordHashing))
}

// NewWithHasher is New with a given hashing pool.
func NewWithHasher(ctx context.Context, d svc.Deps, hasher *password.Hasher) (*Service, error) {
	if err := d.DB.Migrate(ctx, "pool", migrations); err != nil {
		return nil, err
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	if d.Metrics != nil {
		if err := registerHashingMetrics(d.Metrics.Registry, hasher); err != nil {
			return nil, err
		}
	}
	s := &Service{
		store: store{db: d.DB}, bus: d.Bus, log: log, hasher: hasher,
		schemas:  schemav1.NewSchemaServiceClient(d.Conns.Schema),
		tokens:   tokenv1.NewTokenServiceClient(d.Conns.Token),
		internal: d.Internal,
		pools:    cache.New[*poolConfig](10*time.Minute, 0),
		compiled: cache.New[*docschema.Schema](10*time.Minute, 10_000),
	}
	d.Bus.Subscribe(changes.Pools, invalidator(s.pools))
	d.Bus.Subscribe(changes.Schemas, invalidator(s.compiled))
	return s, nil
}

// registerHashingMetrics exports the computations of the hashing pool as authplane_password_hashes_total by
// operation: "hash" (new and upgraded hashes) and "verify" (password checks, the stand-in checks of unknown,
// locked and password-less users included).
func registerHashingMetrics(r prometheus.Registerer, hasher *password.Hasher) error {
	for op, count := range map[string]func(password.Stats) uint64{
		"hash":   func(s password.Stats) uint64 { return s.Hashes },
		"verify": func(s password.Stats) uint64 { return s.Verifications },
	} {
		c := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authplane_password_hashes_total", Help: "Password hash computations run, by operation.",
			ConstLabels: prometheus.Labels{"operation": op},
		}, func() float64 { return float64(count(hasher.Stats())) })
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func invalidator[V any](c *cache.Cache[V]) func(string) {
	return func(key string) {
		switch {
		case changes.IsEverything(key):
			c.InvalidateAll()
		case strings.HasSuffix(key, "/"):
			c.InvalidatePrefix(key)
		default:
			c.Invalidate(key)
		}
	}
}

// Register adds the service to a gRPC server or in-process connection.
func (s *Service) Register(r grpc.ServiceRegistrar) { poolv1.RegisterPoolServiceServer(r, s) }

func (s *Service) changed(ctx context.Context, tenantID, poolID string) {
	s.bus.Publish(ctx, changes.Pools, changes.Key(tenantID, poolID))
}

// userChanged announces a change of a user (its status, password, identifiers or profile), which the token
// service's cache of session users drops.
func (s *Service) userChanged(ctx context.Context, tenantID, poolID, userID string) {
	s.bus.Publish(ctx, changes.Users, tenantID+"/"+poolID+"/"+userID)
}

// endSessions asks the token service to end the sessions of a user (every user of the pool when userID is ""),
// after the change that ends them is committed. Should that call fail, the change stands and the caller gets
// Unavailable: a retry of the same request ends them then, and until it does each refresh re-checks the user.
func (s *Service) endSessions(ctx context.Context, tenantID, poolID, userID string) error {
	_, err := s.tokens.EndUserSessions(s.internal.Outgoing(ctx), &tokenv1.EndUserSessionsRequest{TenantId: tenantID, PoolId: poolID, UserId: userID})
	if err != nil {
		s.log.ErrorContext(ctx, "sessions not ended", "tenant", tenantID, "pool", poolID, "user", userID, "error", err)
		return apierr.Unavailable("the change is saved, but the user's sessions could not be ended now: retry the request")
	}
	return nil
}

// pool returns a pool's settings, from the cache when it holds them.
func (s *Service) pool(ctx context.Context, tenantID, id string) (*poolConfig, error) {
	if id == "" {
		return nil, apierr.Field("pool_id", "pool_id is required")
	}
	return s.pools.Get(ctx, changes.Key(tenantID, id), func(ctx context.Context) (*poolConfig, error) {
		row, err := s.store.getPool(ctx, tenantID, id)
		if db.IsNotFound(err) {
			return nil, apierr.NotFound("pool %q not found", id)
		}
		if err != nil {
			return nil, apierr.Wrap(err, "get pool")
		}
		st, err := decodeSettings(row.Settings)
		if err != nil {
			return nil, apierr.Wrap(err, "decode pool settings")
		}
		return &poolConfig{row: row, settings: st}, nil
	})
}

// schema returns a compiled schema, asking the schema service on the caller's behalf on a cache miss.
func (s *Service) schema(ctx context.Context, tenantID, id string) (*docschema.Schema, error) {
	return s.compiled.Get(ctx, changes.Key(tenantID, id), func(ctx context.Context) (*docschema.Schema, error) {
		sc, err := s.schemas.GetSchema(authz.ForwardCaller(ctx), &schemav1.GetSchemaRequest{TenantId: tenantID, SchemaId: id})
		if err != nil {
			return nil, err
		}
		compiled, err := docschema.Compile(sc.GetSchema().AsMap())
		if err != nil {
			return nil, apierr.Wrap(err, "compile stored schema "+id)
		}
		return compiled, nil
	})
}

// checkSchemaRef checks that a pool's schema reference names an existing schema.
func (s *Service) checkSchemaRef(ctx context.Context, field, tenantID, id string) error {
	if id == "" {
		return nil
	}
	if _, err := s.schema(ctx, tenantID, id); err != nil {
		if apierr.Describe(err).HTTPStatus == 404 {
			return apierr.Field(field, "schema %q does not exist", id)
		}
		return err
	}
	return nil
}

func (s *Service) CreatePool(ctx context.Context, req *poolv1.CreatePoolRequest) (*poolv1.Pool, error) {
	in := req.GetPool()
	if in == nil {
		return nil, apierr.Field("pool", "a pool is required")
	}
	id, err := platform.NewResourceID(in.Id)
	if err != nil {
		return nil, err
	}
	now := db.Now()
	row := &poolRow{TenantID: req.TenantId, ID: id, CreatedAt: now, UpdatedAt: now}
	st := defaultSettings()
	if err := s.applyPool(ctx, row, &st, in, mask{all: true}); err != nil {
		return nil, err
	}
	if err := s.store.createPool(ctx, row); err != nil {
		if db.IsUniqueViolation(err) {
			return nil, apierr.AlreadyExists("pool %q already exists", id)
		}
		return nil, apierr.Wrap(err, "create pool")
	}
	s.changed(ctx, row.TenantID, row.ID)
	return poolToProto(row, &st), nil
}

// applyPool copies what an update touches (everything on create) onto row and st, checking every value.
func (s *Service) applyPool(ctx context.Context, row *poolRow, st *settings, in *poolv1.Pool, m mask) error {
	if m.has("name") {
		row.Name = strings.TrimSpace(in.Name)
	}
	if row.Name == "" {
		row.Name = row.ID
	}
	if len(row.Name) > 200 {
		return apierr.Field("name", "name is longer than 200 characters")
	}
	if m.has("description") {
		if len(in.Description) > 2000 {
			return apierr.Field("description", "description is longer than 2000 characters")
		}
		row.Description = in.Description
	}
	if m.has("payload_schema_id") {
		if err := s.checkSchemaRef(ctx, "payload_schema_id", row.TenantID, in.PayloadSchemaId); err != nil {
			return err
		}
		row.PayloadSchemaID = in.PayloadSchemaId
	}
	if m.has("metadata_schema_id") {
		if err := s.checkSchemaRef(ctx, "metadata_schema_id", row.TenantID, in.MetadataSchemaId); err != nil {
			return err
		}
		row.MetadataSchemaID = in.MetadataSchemaId
	}
	if err := applySettings(st, in, m, s.hasher.Limits()); err != nil {
		return err
	}
	row.Settings = st.encode()
	return nil
}

func (s *Service) GetPool(ctx context.Context, req *poolv1.GetPoolRequest) (*poolv1.Pool, error) {
	pc, err := s.pool(ctx, req.TenantId, req.PoolId)
	if err != nil {
		return nil, err
	}
	return poolToProto(pc.row, &pc.settings), nil
}

// PoolExists answers from the same cache as every password check; an id that is not a valid one names no pool.
func (s *Service) PoolExists(ctx context.Context, req *poolv1.PoolExistsRequest) (*poolv1.PoolExistsResponse, error) {
	if !platform.ValidResourceID(req.PoolId) {
		return &poolv1.PoolExistsResponse{}, nil
	}
	_, err := s.pool(ctx, req.TenantId, req.PoolId)
	if e := (*apierr.Error)(nil); errors.As(err, &e) && e.Kind == apierr.KindNotFound {
		return &poolv1.PoolExistsResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	return &poolv1.PoolExistsResponse{Exists: true}, nil
}

func (s *Service) ListPools(ctx context.Context, req *poolv1.ListPoolsRequest) (*poolv1.ListPoolsResponse, error) {
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "pools/"+req.TenantId+"/"+req.SchemaId,
		func(after string, limit int) ([]poolRow, error) {
			return s.store.listPools(ctx, req.TenantId, req.SchemaId, after, limit)
		}, func(r *poolRow) string { return r.ID })
	if err != nil {
		return nil, apierr.Wrap(err, "list pools")
	}
	resp := &poolv1.ListPoolsResponse{Pools: []*poolv1.Pool{}, NextPageToken: next}
	for i := range rows {
		st, err := decodeSettings(rows[i].Settings)
		if err != nil {
			return nil, apierr.Wrap(err, "decode pool settings")
		}
		resp.Pools = append(resp.Pools, poolToProto(&rows[i], &st))
	}
	return resp, nil
}

func (s *Service) UpdatePool(ctx context.Context, req *poolv1.UpdatePoolRequest) (*poolv1.Pool, error) {
	if req.Pool == nil {
		return nil, apierr.Field("pool", "a pool is required")
	}
	row, err := s.store.getPool(ctx, req.TenantId, req.PoolId)
	if db.IsNotFound(err) {
		return nil, apierr.NotFound("pool %q not found", req.PoolId)
	}
	if err != nil {
		return nil, apierr.Wrap(err, "get pool")
	}
	st, err := decodeSettings(row.Settings)
	if err != nil {
		return nil, apierr.Wrap(err, "decode pool settings")
	}
	if err := s.applyPool(ctx, row, &st, req.Pool, newMask(req.UpdateMask)); err != nil {
		return nil, err
	}
	row.UpdatedAt = db.Now()
	n, err := s.store.updatePool(ctx, row)
	if err != nil {
		return nil, apierr.Wrap(err, "update pool")
	}
	if n == 0 {
		return nil, apierr.NotFound("pool %q not found", req.PoolId)
	}
	s.changed(ctx, row.TenantID, row.ID)
	return poolToProto(row, &st), nil
}

func (s *Service) DeletePool(ctx context.Context, req *poolv1.DeletePoolRequest) (*emptypb.Empty, error) {
	n, err := s.store.deletePool(ctx, req.TenantId, req.PoolId)
	if err != nil {
		return nil, apierr.Wrap(err, "delete pool")
	}
	if n == 0 {
		return nil, apierr.NotFound("pool %q not found", req.PoolId)
	}
	s.changed(ctx, req.TenantId, req.PoolId)
	s.bus.Publish(ctx, changes.Users, changes.Key(req.TenantId, req.PoolId))
	if err := s.endSessions(ctx, req.TenantId, req.PoolId, ""); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) DeleteTenantData(ctx context.Context, req *poolv1.DeleteTenantDataRequest) (*emptypb.Empty, error) {
	if req.TenantId == "" || req.TenantId == platform.RootTenant {
		return nil, apierr.Field("tenant_id", "invalid tenant id")
	}
	if err := s.store.deleteTenant(ctx, req.TenantId); err != nil {
		return nil, apierr.Wrap(err, "delete pools")
	}
	s.bus.Publish(ctx, changes.Pools, changes.TenantKey(req.TenantId))
	return &emptypb.Empty{}, nil
}

func poolToProto(r *poolRow, st *settings) *poolv1.Pool {
	p := &poolv1.Pool{
		Id: r.ID, TenantId: r.TenantID, Name: r.Name, Description: r.Description,
		PayloadSchemaId: r.PayloadSchemaID, MetadataSchemaId: r.MetadataSchemaID,
		CreatedAt: timestamppb.New(time.UnixMicro(r.CreatedAt)),
		UpdatedAt: timestamppb.New(time.UnixMicro(r.UpdatedAt)),
	}
	st.toProto(p)
	return p
}

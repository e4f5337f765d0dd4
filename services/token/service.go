// Package token is the token service: it issues access tokens at every workspace's token endpoint, introspects
// and revokes them, and owns the workspaces' signing keys. Issuing is the hot path: in steady state a token request reads only memory (client
// authentications, workspace metadata and signers are cached and dropped when the change bus announces a
// change), so it costs one HMAC, one JSON encoding and one signature.
package token

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/cache"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/metrics"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/svc"
)

const (
	// cacheTTL bounds how long a cached entry can outlive a missed invalidation (a lost cross-process
	// announcement); it costs one reload per entry and period.
	cacheTTL = 10 * time.Minute
	// loadTimeout bounds a cache load, which runs detached from the request that triggered it because concurrent
	// requests for the same key wait on it.
	loadTimeout = 10 * time.Second
	// revocationTTL is shorter: a revocation missed by another process must not stay unseen for long.
	revocationTTL = 30 * time.Second
	// userStateTTL bounds how long a missed announcement of a user's change leaves its sessions refreshing.
	userStateTTL = time.Minute
)

// Service implements authplane.token.v1.TokenService.
type Service struct {
	tokenv1.UnimplementedTokenServiceServer
	store         store
	bus           *changes.Bus
	log           *slog.Logger
	keyring       *secrets.Keyring
	metrics       *metrics.Metrics
	issuerBase    string
	clientAPI     clientv1.ClientServiceClient
	workspaceAPI  workspacev1.WorkspaceServiceClient
	keys          *cache.Cache[*workspaceKeys] // tenant/server
	workspaces    *cache.Cache[*workspaceInfo] // tenant/server
	clients       *cache.Cache[*authClient]    // tenant/client/server/secret-hash (clientKeys)
	clientKeys    *clientKeys
	revoked       *cache.Cache[*denylist] // tenant/
	now           func() time.Time
	grantHandlers map[string]grantHandler
	// verifier is the one access-token check of every plane, which introspection and userinfo use too.
	verifier *authz.Verifier
	// internal is the credential of calls to the other services.
	internal *internalcall.Authority
	// The password grant's identity sources: pools through the pool service, and external verifiers over HTTP.
	poolAPI   poolv1.PoolServiceClient
	verifiers *http.Client
	// users caches the pool users of sessions (tenant/pool/user), dropped when the pool service announces a change.
	users *cache.Cache[*userState]
	// jwksMaxAge is how long clients may cache a key set: a next key is published that long before it signs.
	jwksMaxAge time.Duration
	// pruned is when each tenant's dead sessions were last pruned by this process.
	pruneMu sync.Mutex
	pruned  map[string]time.Time
}

// New migrates the service's table and subscribes its caches to the change bus.
func New(ctx context.Context, d svc.Deps) (*Service, error) {
	if d.DB == nil || d.Bus == nil || d.Keyring == nil || d.Verifier == nil || d.Internal == nil {
		return nil, errors.New("token service needs a database, a change bus, a keyring, a verifier and the internal credential")
	}
	if err := d.DB.Migrate(ctx, "token", migrations); err != nil {
		return nil, err
	}
	s := &Service{
		store: store{db: d.DB}, bus: d.Bus, log: d.Log, keyring: d.Keyring, metrics: d.Metrics,
		issuerBase:   d.IssuerURL,
		clientAPI:    clientv1.NewClientServiceClient(d.Conns.Client),
		workspaceAPI: workspacev1.NewWorkspaceServiceClient(d.Conns.Workspace),
		keys:         cache.New[*workspaceKeys](cacheTTL, 0),
		workspaces:   cache.New[*workspaceInfo](cacheTTL, 0),
		clients:      cache.New[*authClient](cacheTTL, 0),
		clientKeys:   newClientKeys(),
		revoked:      cache.New[*denylist](revocationTTL, 0),
		now:          time.Now,
		verifier:     d.Verifier,
		internal:     d.Internal,
		poolAPI:      poolv1.NewPoolServiceClient(d.Conns.Pool),
		verifiers:    newVerifierClient(d.Egress),
		users:        cache.New[*userState](userStateTTL, 0),
		pruned:       map[string]time.Time{},
		jwksMaxAge:   d.JWKSMaxAge,
	}
	if s.jwksMaxAge <= 0 {
		s.jwksMaxAge = defaultJWKSMaxAge
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.store.rotator = newRotator(&s.store)
	go s.keepSchedule(ctx)
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	s.grantHandlers = map[string]grantHandler{
		platform.GrantClientCredentials: s.clientCredentials,
		platform.GrantPassword:          s.passwordGrant,
		platform.GrantRefreshToken:      s.refreshTokenGrant,
		platform.GrantAuthorizationCode: s.authorizationCodeGrant,
	}
	d.Bus.Subscribe(changes.Keys, func(key string) { dropWorkspaceKey(s.keys, key) })
	d.Bus.Subscribe(changes.Servers, func(key string) { dropWorkspaceKey(s.workspaces, key) })
	d.Bus.Subscribe(changes.Clients, s.dropClient)
	d.Bus.Subscribe(changes.Policies, func(key string) { dropTenant(s.clients, key) })
	d.Bus.Subscribe(changes.Revocations, func(key string) { dropTenant(s.revoked, key) })
	d.Bus.Subscribe(changes.Users, func(key string) { dropUser(s.users, key) })
	d.Bus.Subscribe(changes.Tenants, func(key string) {
		dropTenant(s.keys, key)
		dropTenant(s.workspaces, key)
		dropTenant(s.clients, key)
		dropTenant(s.revoked, key)
		dropTenant(s.users, key)
	})
	return s, nil
}

// Register adds the service to a gRPC server or in-process connection.
func (s *Service) Register(r grpc.ServiceRegistrar) { tokenv1.RegisterTokenServiceServer(r, s) }

// dropWorkspaceKey handles a change key `tenant/server` (one workspace), `tenant/` (a tenant) or `*`.
func dropWorkspaceKey[V any](c *cache.Cache[V], key string) {
	if tenant, server, ok := strings.Cut(key, "/"); ok && server != "" {
		c.Invalidate(tenant + "/" + server)
		return
	}
	dropTenant(c, key)
}

// dropTenant drops every entry of the key's tenant (a key `tenant/…` or `tenant`), or everything for `*`.
func dropTenant[V any](c *cache.Cache[V], key string) {
	tenant, _, _ := strings.Cut(key, "/")
	if changes.IsEverything(key) || tenant == "" {
		c.InvalidateAll()
		return
	}
	c.InvalidatePrefix(tenant + "/")
}

// dropUser handles a change of user `tenant/pool/user`, of a pool `tenant/pool`, of a tenant or `*`.
func dropUser(c *cache.Cache[*userState], key string) {
	tenant, rest, _ := strings.Cut(key, "/")
	if pool, user, ok := strings.Cut(rest, "/"); ok && user != "" {
		c.Invalidate(userKey(tenant, pool, user))
		return
	}
	if rest != "" {
		c.InvalidatePrefix(tenant + "/" + rest + "/")
		return
	}
	dropTenant(c, key)
}

// dropClient handles a change of client `tenant/client` (every cached authentication of it), of a tenant or `*`.
func (s *Service) dropClient(key string) {
	if tenant, client, ok := strings.Cut(key, "/"); ok && client != "" {
		// Client ids never contain `/`, so this prefix names exactly one client.
		s.clients.InvalidatePrefix(tenant + "/" + client + "/")
		return
	}
	dropTenant(s.clients, key)
}

// detached gives a cache load its own deadline: the request that started it may end before others waiting on it.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
}

// workspaceInfo is a workspace's metadata with what the hot path derives from it.
type workspaceInfo struct {
	tenantID, serverID string
	key                string // tenant/server, the key of its entries in the workspace and key caches
	missing            bool   // the workspace does not exist (cached too, so junk URLs cost no remote call)
	uid                string // the incarnation: keys of any other are never used
	issuer             string
	grants             []string
	accessTTL          time.Duration
	md                 *workspacev1.ServerMetadata
}

func (w *workspaceInfo) allowsGrant(g string) bool { return slices.Contains(w.grants, g) }

// workspace returns a workspace's cached metadata, or NotFound.
func (s *Service) workspace(ctx context.Context, tenantID, serverID string) (*workspaceInfo, error) {
	if tenantID == "" || serverID == "" || strings.Contains(tenantID, "/") || strings.Contains(serverID, "/") {
		return nil, apierr.NotFound("authorization server %q not found", serverID)
	}
	w, err := s.workspaces.Get(ctx, tenantID+"/"+serverID, func(ctx context.Context) (*workspaceInfo, error) {
		ctx, cancel := detached(ctx)
		defer cancel()
		md, err := s.workspaceAPI.GetServerMetadata(s.internal.Outgoing(ctx), &workspacev1.GetServerMetadataRequest{TenantId: tenantID, ServerId: serverID})
		if status.Code(err) == codes.NotFound {
			return &workspaceInfo{tenantID: tenantID, serverID: serverID, missing: true}, nil
		}
		if err != nil {
			return nil, remoteFailure(err, "read workspace metadata")
		}
		return &workspaceInfo{
			tenantID: tenantID, serverID: serverID, key: tenantID + "/" + serverID, md: md, uid: md.Uid,
			issuer:    platform.Issuer(s.issuerBase, tenantID, serverID),
			grants:    md.GrantTypes,
			accessTTL: md.GetAccessTokenTtl().AsDuration(),
		}, nil
	})
	if err != nil {
		return nil, err
	}
	if w.missing {
		return nil, apierr.NotFound("authorization server %q not found", serverID)
	}
	return w, nil
}

// remoteFailure is an unexpected failure of another service: temporarily_unavailable when it cannot be reached,
// server_error otherwise (the cause is logged, never shown).
func remoteFailure(err error, what string) *apierr.Error {
	code := "server_error"
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		code = "temporarily_unavailable"
	}
	e := apierr.OAuth(code, what+" failed")
	e.Cause = err
	return e
}

func (s *Service) GetJWKS(ctx context.Context, req *tokenv1.GetJWKSRequest) (*tokenv1.JWKS, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	keys, err := s.workspaceKeys(ctx, ws)
	if err != nil {
		return nil, err
	}
	return &tokenv1.JWKS{Keys: keys.public, MaxAgeSeconds: int32(s.jwksMaxAge / time.Second)}, nil
}

func (s *Service) DeleteServerKeys(ctx context.Context, req *tokenv1.DeleteServerKeysRequest) (*emptypb.Empty, error) {
	if req.ServerId == "" {
		return nil, apierr.Field("server_id", "server_id is required")
	}
	if err := s.store.deleteServerKeys(ctx, req.TenantId, req.ServerId); err != nil {
		return nil, apierr.Wrap(err, "delete signing keys")
	}
	s.bus.Publish(ctx, changes.Keys, changes.Key(req.TenantId, req.ServerId))
	return &emptypb.Empty{}, nil
}

func (s *Service) DeleteTenantData(ctx context.Context, req *tokenv1.DeleteTenantDataRequest) (*emptypb.Empty, error) {
	if req.TenantId == "" || req.TenantId == platform.RootTenant || strings.Contains(req.TenantId, "/") {
		return nil, apierr.Field("tenant_id", "invalid tenant id")
	}
	if err := s.store.deleteTenantKeys(ctx, req.TenantId); err != nil {
		return nil, apierr.Wrap(err, "delete signing keys")
	}
	s.bus.Publish(ctx, changes.Keys, changes.TenantKey(req.TenantId))
	return &emptypb.Empty{}, nil
}

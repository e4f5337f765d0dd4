// Package workspace is the workspace service: authorization servers ("servers" in REST), their scopes, and
// their identity sources (identity pools and external credential verifiers, for the password grant).
package workspace

import (
	"context"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/egress"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/svc"
)

// Workspace types.
const (
	TypeAdmin   = "admin"
	TypeSystem  = "system"
	TypeRegular = "regular"
)

var (
	defaultGrants     = []string{platform.GrantClientCredentials, platform.GrantRefreshToken}
	defaultAccessTTL  = time.Hour
	defaultRefreshTTL = 720 * time.Hour
	defaultIDTokenTTL = time.Hour
	defaultSessionTTL = 90 * 24 * time.Hour
	defaultRotation   = 30 * 24 * time.Hour
	// minRotation: a shorter period is no use. Whatever the period, a next key signs only once it has been
	// published for one JWKS cache period (the token service waits for that).
	minRotation      = 10 * time.Second
	signingAlgs      = []string{"ES256", "EdDSA", "RS256"}
	maxTTL           = 3650 * 24 * time.Hour
	scopeNamePattern = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,128}$`)
)

// Service implements authplane.workspace.v1.WorkspaceService.
type Service struct {
	workspacev1.UnimplementedWorkspaceServiceServer
	store   store
	bus     *changes.Bus
	issuer  string
	clients clientv1.ClientServiceClient
	tokens  tokenv1.TokenServiceClient
	pools   poolv1.PoolServiceClient
	// keyring derives external verifiers' signing secrets (nil in processes without a master key: creating an
	// external source then fails).
	keyring  *secrets.Keyring
	internal *internalcall.Authority
	// egress refuses external verifier URLs at link-local, unspecified or cloud-metadata addresses.
	egress *egress.Policy
}

// New migrates the service's tables and ensures the root tenant's admin workspace exists.
func New(ctx context.Context, d svc.Deps) (*Service, error) {
	if err := d.DB.Migrate(ctx, "workspace", migrations); err != nil {
		return nil, err
	}
	s := &Service{
		store: store{db: d.DB}, bus: d.Bus, issuer: d.IssuerURL,
		clients:  clientv1.NewClientServiceClient(d.Conns.Client),
		tokens:   tokenv1.NewTokenServiceClient(d.Conns.Token),
		pools:    poolv1.NewPoolServiceClient(d.Conns.Pool),
		keyring:  d.Keyring,
		internal: d.Internal,
		egress:   d.Egress,
	}
	if err := s.store.backfillUIDs(ctx, secrets.NewID); err != nil {
		return nil, apierr.Wrap(err, "assign workspace uids")
	}
	// The operator's workspace: its only scope is manage_tenants.
	root := s.builtin(platform.RootTenant, platform.AdminServer)
	scopes := s.scopeRows(root, []string{platform.ScopeManageTenants})
	if err := s.store.ensureServer(ctx, root, scopes); err != nil {
		return nil, apierr.Wrap(err, "provision the root tenant")
	}
	return s, nil
}

// Register adds the service to a gRPC server or in-process connection.
func (s *Service) Register(r grpc.ServiceRegistrar) { workspacev1.RegisterWorkspaceServiceServer(r, s) }

func (s *Service) builtin(tenantID, id string) *serverRow {
	now := db.Now()
	return &serverRow{
		TenantID: tenantID, ID: id, UID: secrets.NewID(), Name: strings.ToUpper(id[:1]) + id[1:], Type: id,
		GrantTypes:       platform.GrantClientCredentials,
		AccessTokenTTLMs: defaultAccessTTL.Milliseconds(), RefreshTokenTTLMs: defaultRefreshTTL.Milliseconds(),
		IDTokenTTLMs: defaultIDTokenTTL.Milliseconds(), SessionTTLMs: defaultSessionTTL.Milliseconds(),
		SigningAlg: signingAlgs[0], KeyRotationMs: defaultRotation.Milliseconds(),
		CreatedAt: now, UpdatedAt: now,
	}
}

// scopeRows are the predefined scopes of a workspace: the standard ones plus extra.
func (s *Service) scopeRows(server *serverRow, extra []string) []scopeRow {
	names := append(slices.Clone(platform.StandardScopes), extra...)
	rows := make([]scopeRow, 0, len(names))
	for _, n := range names {
		rows = append(rows, scopeRow{TenantID: server.TenantID, ID: secrets.NewID(), ServerID: server.ID, Name: n,
			Description: "predefined", System: true, CreatedAt: server.CreatedAt})
	}
	return rows
}

func (s *Service) changed(ctx context.Context, tenantID, serverID string) {
	s.bus.Publish(ctx, changes.Servers, changes.Key(tenantID, serverID))
}

// incarnationEnded announces that the signing keys of the workspaces under key are void: a key the token service
// made while the deletion was under way (for the incarnation being deleted) may sit in a verifier's cache, and
// must not verify once the workspace is gone or re-created under the same id.
func (s *Service) incarnationEnded(ctx context.Context, key string) {
	s.bus.Publish(ctx, changes.Keys, key)
}

func (s *Service) ProvisionTenant(ctx context.Context, req *workspacev1.ProvisionTenantRequest) (*emptypb.Empty, error) {
	if !platform.ValidTenantID(req.TenantId) {
		return nil, apierr.Field("tenant_id", "invalid tenant id")
	}
	for _, id := range []string{platform.AdminServer, platform.SystemServer} {
		row := s.builtin(req.TenantId, id)
		if err := s.store.ensureServer(ctx, row, s.scopeRows(row, platform.PlaneScopes[id])); err != nil {
			return nil, apierr.Wrap(err, "provision workspaces")
		}
		s.changed(ctx, req.TenantId, id)
	}
	s.incarnationEnded(ctx, changes.TenantKey(req.TenantId)) // a tenant of this id may have existed before
	return &emptypb.Empty{}, nil
}

func (s *Service) DeleteTenantData(ctx context.Context, req *workspacev1.DeleteTenantDataRequest) (*emptypb.Empty, error) {
	if req.TenantId == "" || req.TenantId == platform.RootTenant {
		return nil, apierr.Field("tenant_id", "invalid tenant id")
	}
	if err := s.store.deleteTenant(ctx, req.TenantId); err != nil {
		return nil, apierr.Wrap(err, "delete workspaces")
	}
	s.bus.Publish(ctx, changes.Servers, changes.TenantKey(req.TenantId))
	s.incarnationEnded(ctx, changes.TenantKey(req.TenantId))
	return &emptypb.Empty{}, nil
}

func (s *Service) CreateServer(ctx context.Context, req *workspacev1.CreateServerRequest) (*workspacev1.Server, error) {
	in := req.GetServer()
	if in == nil {
		return nil, apierr.Field("server", "a server is required")
	}
	id, err := platform.NewResourceID(in.Id)
	if err != nil {
		return nil, err
	}
	now := db.Now()
	row := &serverRow{TenantID: req.TenantId, ID: id, UID: secrets.NewID(), Type: TypeRegular, CreatedAt: now, UpdatedAt: now}
	if err := applyServer(row, in, nil); err != nil {
		return nil, err
	}
	if err := s.store.createServer(ctx, row, s.scopeRows(row, nil)); err != nil {
		if db.IsUniqueViolation(err) {
			return nil, apierr.AlreadyExists("server %q already exists", id)
		}
		return nil, apierr.Wrap(err, "create server")
	}
	s.changed(ctx, row.TenantID, row.ID)
	s.incarnationEnded(ctx, changes.Key(row.TenantID, row.ID)) // whatever was cached under this id was another incarnation's
	return s.toProto(row), nil
}

// applyServer copies the mutable fields named by mask (all when mask is empty) onto row, with defaults and checks.
func applyServer(row *serverRow, in *workspacev1.Server, mask []string) error {
	set := func(field string) bool { return len(mask) == 0 || slices.Contains(mask, field) }
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
		row.Description = in.Description
	}
	if err := applyBranding(row, in, set); err != nil {
		return err
	}
	if set("grant_types") {
		grants := in.GrantTypes
		if len(grants) == 0 {
			grants = defaultGrants
		}
		for _, g := range grants {
			if !platform.IsSupportedGrant(g) {
				return apierr.Field("grant_types", "unsupported grant type %q (supported: %s)", g, strings.Join(platform.SupportedGrants, ", "))
			}
		}
		row.GrantTypes = strings.Join(dedupe(grants), " ")
	}
	ttls := []struct {
		field string
		in    *durationpb.Duration
		def   time.Duration
		out   *int64
	}{
		{"access_token_ttl", in.AccessTokenTtl, defaultAccessTTL, &row.AccessTokenTTLMs},
		{"refresh_token_ttl", in.RefreshTokenTtl, defaultRefreshTTL, &row.RefreshTokenTTLMs},
		{"id_token_ttl", in.IdTokenTtl, defaultIDTokenTTL, &row.IDTokenTTLMs},
		{"session_ttl", in.SessionTtl, defaultSessionTTL, &row.SessionTTLMs},
	}
	if set("signing_alg") {
		row.SigningAlg = in.SigningAlg
		if row.SigningAlg == "" {
			row.SigningAlg = signingAlgs[0]
		}
		if !slices.Contains(signingAlgs, row.SigningAlg) {
			return apierr.Field("signing_alg", "signing_alg must be one of %s", strings.Join(signingAlgs, ", "))
		}
	}
	if set("key_rotation_period") {
		d := defaultRotation
		if in.KeyRotationPeriod != nil {
			if err := in.KeyRotationPeriod.CheckValid(); err != nil {
				return apierr.Field("key_rotation_period", "key_rotation_period is not a valid duration")
			}
			d = in.KeyRotationPeriod.AsDuration()
		}
		if d < minRotation || d > maxTTL {
			return apierr.Field("key_rotation_period", "key_rotation_period must be between %s and %s", minRotation, maxTTL)
		}
		row.KeyRotationMs = d.Milliseconds()
	}
	for _, t := range ttls {
		if !set(t.field) {
			continue
		}
		d := t.def
		if t.in != nil {
			if err := t.in.CheckValid(); err != nil {
				return apierr.Field(t.field, "%s is not a valid duration", t.field)
			}
			d = t.in.AsDuration()
		}
		if d < time.Second || d > maxTTL {
			return apierr.Field(t.field, "%s must be between 1s and %s", t.field, maxTTL)
		}
		*t.out = d.Milliseconds()
	}
	return nil
}

// primaryColorPattern is the sign-in page's accent colour: it goes into the page's style sheet, so nothing but
// `#rrggbb` is accepted.
var primaryColorPattern = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// applyBranding sets what the hosted sign-in page shows. The logo is loaded by the user's browser from the
// sign-in page, whose Content-Security-Policy names its origin: https, or http on a loopback host (development).
func applyBranding(row *serverRow, in *workspacev1.Server, set func(string) bool) error {
	if set("display_name") {
		row.DisplayName = strings.TrimSpace(in.DisplayName)
		if utf8.RuneCountInString(row.DisplayName) > 200 || strings.ContainsAny(row.DisplayName, "\x00\r\n") {
			return apierr.Field("display_name", "display_name must be one line of at most 200 characters")
		}
	}
	if set("logo_url") {
		row.LogoURL = in.LogoUrl
		if row.LogoURL != "" {
			u, err := url.Parse(row.LogoURL)
			switch {
			case err != nil || len(row.LogoURL) > 2048 || u.Host == "" || u.User != nil || u.Fragment != "":
				return apierr.Field("logo_url", "logo_url must be an absolute https URL without user information or fragment")
			case u.Scheme == "https":
			case u.Scheme == "http" && platform.IsLoopbackHost(u.Hostname()):
			default:
				return apierr.Field("logo_url", "logo_url must be https (or http on a loopback host)")
			}
		}
	}
	if set("primary_color") {
		row.PrimaryColor = strings.ToLower(in.PrimaryColor)
		if row.PrimaryColor != "" && !primaryColorPattern.MatchString(row.PrimaryColor) {
			return apierr.Field("primary_color", "primary_color must be #rrggbb")
		}
	}
	return nil
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (s *Service) GetServer(ctx context.Context, req *workspacev1.GetServerRequest) (*workspacev1.Server, error) {
	row, err := s.server(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	return s.toProto(row), nil
}

func (s *Service) server(ctx context.Context, tenantID, id string) (*serverRow, error) {
	row, err := s.store.getServer(ctx, tenantID, id)
	if db.IsNotFound(err) {
		return nil, apierr.NotFound("server %q not found", id)
	}
	if err != nil {
		return nil, apierr.Wrap(err, "get server")
	}
	return row, nil
}

func (s *Service) ListServers(ctx context.Context, req *workspacev1.ListServersRequest) (*workspacev1.ListServersResponse, error) {
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "servers/"+req.TenantId,
		func(after string, limit int) ([]serverRow, error) {
			return s.store.listServers(ctx, req.TenantId, after, limit)
		}, func(r *serverRow) string { return r.ID })
	if err != nil {
		return nil, apierr.Wrap(err, "list servers")
	}
	resp := &workspacev1.ListServersResponse{Servers: []*workspacev1.Server{}, NextPageToken: next}
	for i := range rows {
		resp.Servers = append(resp.Servers, s.toProto(&rows[i]))
	}
	return resp, nil
}

func (s *Service) UpdateServer(ctx context.Context, req *workspacev1.UpdateServerRequest) (*workspacev1.Server, error) {
	if req.Server == nil {
		return nil, apierr.Field("server", "a server is required")
	}
	row, err := s.server(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	if err := applyServer(row, req.Server, req.GetUpdateMask().GetPaths()); err != nil {
		return nil, err
	}
	row.UpdatedAt = db.Now()
	if err := s.store.updateServer(ctx, row); err != nil {
		return nil, apierr.Wrap(err, "update server")
	}
	s.changed(ctx, row.TenantID, row.ID)
	return s.toProto(row), nil
}

func (s *Service) DeleteServer(ctx context.Context, req *workspacev1.DeleteServerRequest) (*emptypb.Empty, error) {
	if req.ServerId == platform.AdminServer || req.ServerId == platform.SystemServer {
		return nil, apierr.Field("server_id", "the built-in %s workspace cannot be deleted", req.ServerId)
	}
	if _, err := s.server(ctx, req.TenantId, req.ServerId); err != nil {
		return nil, err
	}
	// Clients and keys first: should this fail half-way, the workspace still exists and the delete can be retried.
	fwd := s.internal.Outgoing(ctx)
	if _, err := s.clients.DeleteServerClients(fwd, &clientv1.DeleteServerClientsRequest{TenantId: req.TenantId, ServerId: req.ServerId}); err != nil {
		return nil, err
	}
	if _, err := s.tokens.DeleteServerKeys(fwd, &tokenv1.DeleteServerKeysRequest{TenantId: req.TenantId, ServerId: req.ServerId}); err != nil {
		return nil, err
	}
	if _, err := s.store.deleteServer(ctx, req.TenantId, req.ServerId); err != nil {
		return nil, apierr.Wrap(err, "delete server")
	}
	s.changed(ctx, req.TenantId, req.ServerId)
	s.incarnationEnded(ctx, changes.Key(req.TenantId, req.ServerId))
	return &emptypb.Empty{}, nil
}

func (s *Service) CreateScope(ctx context.Context, req *workspacev1.CreateScopeRequest) (*workspacev1.Scope, error) {
	in := req.GetScope()
	if in == nil {
		return nil, apierr.Field("scope", "a scope is required")
	}
	if in.AuthorizationServerId == "" {
		return nil, apierr.Field("authorization_server_id", "authorization_server_id is required")
	}
	if !scopeNamePattern.MatchString(in.Name) {
		return nil, apierr.Field("name", "scope name must match ^[A-Za-z0-9._:/-]{1,128}$")
	}
	if platform.ReservedScopes[in.Name] {
		return nil, apierr.Field("name", "%q is reserved for the platform's own workspaces", in.Name)
	}
	if _, err := s.server(ctx, req.TenantId, in.AuthorizationServerId); err != nil {
		return nil, err
	}
	row := &scopeRow{TenantID: req.TenantId, ID: secrets.NewID(), ServerID: in.AuthorizationServerId, Name: in.Name,
		Description: in.Description, CreatedAt: db.Now()}
	if err := s.store.createScope(ctx, row); err != nil {
		if db.IsUniqueViolation(err) {
			return nil, apierr.AlreadyExists("scope %q already exists in server %q", in.Name, in.AuthorizationServerId)
		}
		return nil, apierr.Wrap(err, "create scope")
	}
	s.changed(ctx, row.TenantID, row.ServerID)
	return scopeToProto(row), nil
}

func (s *Service) GetScope(ctx context.Context, req *workspacev1.GetScopeRequest) (*workspacev1.Scope, error) {
	row, err := s.store.getScope(ctx, req.TenantId, req.ScopeId)
	if db.IsNotFound(err) {
		return nil, apierr.NotFound("scope %q not found", req.ScopeId)
	}
	if err != nil {
		return nil, apierr.Wrap(err, "get scope")
	}
	return scopeToProto(row), nil
}

func (s *Service) ListScopes(ctx context.Context, req *workspacev1.ListScopesRequest) (*workspacev1.ListScopesResponse, error) {
	if _, err := s.server(ctx, req.TenantId, req.ServerId); err != nil {
		return nil, err
	}
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "scopes/"+req.TenantId+"/"+req.ServerId,
		func(after string, limit int) ([]scopeRow, error) {
			return s.store.listScopes(ctx, req.TenantId, req.ServerId, after, limit)
		}, func(r *scopeRow) string { return r.Name })
	if err != nil {
		return nil, apierr.Wrap(err, "list scopes")
	}
	resp := &workspacev1.ListScopesResponse{Scopes: []*workspacev1.Scope{}, NextPageToken: next}
	for i := range rows {
		resp.Scopes = append(resp.Scopes, scopeToProto(&rows[i]))
	}
	return resp, nil
}

func (s *Service) DeleteScope(ctx context.Context, req *workspacev1.DeleteScopeRequest) (*emptypb.Empty, error) {
	row, err := s.store.getScope(ctx, req.TenantId, req.ScopeId)
	if db.IsNotFound(err) {
		return nil, apierr.NotFound("scope %q not found", req.ScopeId)
	}
	if err != nil {
		return nil, apierr.Wrap(err, "get scope")
	}
	if row.System {
		return nil, apierr.Field("scope_id", "the predefined scope %q cannot be deleted", row.Name)
	}
	if _, err := s.store.deleteScope(ctx, req.TenantId, req.ScopeId); err != nil {
		return nil, apierr.Wrap(err, "delete scope")
	}
	s.changed(ctx, row.TenantID, row.ServerID)
	return &emptypb.Empty{}, nil
}

func (s *Service) GetServerMetadata(ctx context.Context, req *workspacev1.GetServerMetadataRequest) (*workspacev1.ServerMetadata, error) {
	row, err := s.server(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	scopes, err := s.store.listScopes(ctx, req.TenantId, req.ServerId, "", 0)
	if err != nil {
		return nil, apierr.Wrap(err, "list scopes")
	}
	md := &workspacev1.ServerMetadata{
		TenantId: row.TenantID, ServerId: row.ID, Uid: row.UID, Type: row.Type, GrantTypes: row.grants(),
		AccessTokenTtl:    durationpb.New(time.Duration(row.AccessTokenTTLMs) * time.Millisecond),
		RefreshTokenTtl:   durationpb.New(time.Duration(row.RefreshTokenTTLMs) * time.Millisecond),
		IdTokenTtl:        durationpb.New(time.Duration(row.IDTokenTTLMs) * time.Millisecond),
		SessionTtl:        durationpb.New(time.Duration(row.SessionTTLMs) * time.Millisecond),
		SigningAlg:        row.SigningAlg,
		KeyRotationPeriod: durationpb.New(time.Duration(row.KeyRotationMs) * time.Millisecond),
		DisplayName:       row.DisplayName, LogoUrl: row.LogoURL, PrimaryColor: row.PrimaryColor,
	}
	if md.DisplayName == "" {
		md.DisplayName = row.Name
	}
	for _, sc := range scopes {
		md.Scopes = append(md.Scopes, sc.Name)
	}
	if md.IdentitySources, err = s.identitySources(ctx, req.TenantId, req.ServerId); err != nil {
		return nil, err
	}
	return md, nil
}

func (s *Service) toProto(r *serverRow) *workspacev1.Server {
	return &workspacev1.Server{
		Id: r.ID, Uid: r.UID, TenantId: r.TenantID, Name: r.Name, Description: r.Description, Type: r.Type,
		GrantTypes:        r.grants(),
		AccessTokenTtl:    durationpb.New(time.Duration(r.AccessTokenTTLMs) * time.Millisecond),
		RefreshTokenTtl:   durationpb.New(time.Duration(r.RefreshTokenTTLMs) * time.Millisecond),
		IdTokenTtl:        durationpb.New(time.Duration(r.IDTokenTTLMs) * time.Millisecond),
		SessionTtl:        durationpb.New(time.Duration(r.SessionTTLMs) * time.Millisecond),
		SigningAlg:        r.SigningAlg,
		KeyRotationPeriod: durationpb.New(time.Duration(r.KeyRotationMs) * time.Millisecond),
		DisplayName:       r.DisplayName, LogoUrl: r.LogoURL, PrimaryColor: r.PrimaryColor,
		IssuerUrl: platform.Issuer(s.issuer, r.TenantID, r.ID),
		CreatedAt: timestamppb.New(time.UnixMicro(r.CreatedAt)),
		UpdatedAt: timestamppb.New(time.UnixMicro(r.UpdatedAt)),
	}
}

func scopeToProto(r *scopeRow) *workspacev1.Scope {
	return &workspacev1.Scope{
		Id: r.ID, TenantId: r.TenantID, AuthorizationServerId: r.ServerID, Name: r.Name, Description: r.Description,
		System: r.System, CreatedAt: timestamppb.New(time.UnixMicro(r.CreatedAt)),
	}
}

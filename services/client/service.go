// Package client is the client service: OAuth clients, their secrets, and the token policies they share.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/svc"
)

// DefaultRootClientID is the operator client's id when the configuration names none.
const DefaultRootClientID = "root-operator"

// Limits on client and policy fields.
const (
	maxName         = 200
	maxDescription  = 1000
	maxListLen      = 100
	maxAudience     = 512
	maxRedirectURI  = 2048
	maxScopePattern = 256
	maxTTL          = 3650 * 24 * time.Hour
)

var (
	defaultGrants = []string{platform.GrantClientCredentials}
	authMethods   = []string{platform.AuthSecretBasic, platform.AuthSecretPost, platform.AuthNone}
	// errInvalidClient is the one answer to every failed client authentication, so that callers learn nothing
	// about which part was wrong.
	errInvalidClient = apierr.OAuth("invalid_client", "client authentication failed")
)

// stderr receives the generated operator secret (a variable so tests can capture it).
var stderr io.Writer = os.Stderr

// Service implements authplane.client.v1.ClientService.
type Service struct {
	clientv1.UnimplementedClientServiceServer
	store      store
	bus        *changes.Bus
	keyring    *secrets.Keyring
	workspaces workspacev1.WorkspaceServiceClient
	tokens     tokenv1.TokenServiceClient
	internal   *internalcall.Authority
	// dummyHash is compared against when a client is unknown, so that both failures cost the same.
	dummyHash string
}

// New migrates the service's tables and ensures the platform operator's client exists.
func New(ctx context.Context, d svc.Deps) (*Service, error) {
	if d.Keyring == nil {
		return nil, fmt.Errorf("client service: a keyring is required")
	}
	if err := d.DB.Migrate(ctx, "client", migrations); err != nil {
		return nil, err
	}
	s := &Service{
		store: store{db: d.DB}, bus: d.Bus, keyring: d.Keyring,
		workspaces: workspacev1.NewWorkspaceServiceClient(d.Conns.Workspace),
		tokens:     tokenv1.NewTokenServiceClient(d.Conns.Token),
		internal:   d.Internal,
		dummyHash:  d.Keyring.HashSecret(secrets.NewSecret()),
	}
	if err := s.ensureRootClient(ctx, d.RootClientID, d.RootClientSecret); err != nil {
		return nil, err
	}
	return s, nil
}

// Register adds the service to a gRPC server or in-process connection.
func (s *Service) Register(r grpc.ServiceRegistrar) { clientv1.RegisterClientServiceServer(r, s) }

// ensureRootClient provisions the operator's client in root/admin. A configured secret is the source of truth: its
// hash replaces a stored one that differs. Without one, a secret is generated when the client is first created and
// printed once. The row is inserted directly: root/admin may not exist yet when this service starts in its own
// process, and the client is only usable once it does.
func (s *Service) ensureRootClient(ctx context.Context, id, secret string) error {
	if id == "" {
		id = DefaultRootClientID
	}
	if !platform.ValidClientID(id) {
		return fmt.Errorf("root client id %q: use 1 to 128 characters from [A-Za-z0-9._~-]", id)
	}
	generated := secret == ""
	if generated {
		secret = secrets.NewSecret()
	}
	now := db.Now()
	row := &clientRow{
		TenantID: platform.RootTenant, ClientID: id, ServerID: platform.AdminServer, Name: "Platform operator",
		GrantTypes: stringList{platform.GrantClientCredentials}, AuthMethod: platform.AuthSecretBasic,
		Scopes: stringList{platform.ScopeManageTenants}, SecretHash: s.keyring.HashSecret(secret),
		CreatedAt: now, UpdatedAt: now,
	}
	inserted, err := s.store.ensureClient(ctx, row)
	if err != nil {
		return fmt.Errorf("provision the root client: %w", err)
	}
	if inserted {
		if generated {
			fmt.Fprintf(stderr, "\n"+
				"==================================================================\n"+
				"  Platform operator client created (shown only this once):\n"+
				"    AUTHPLANE_ROOT_CLIENT_ID=%s\n"+
				"    AUTHPLANE_ROOT_CLIENT_SECRET=%s\n"+
				"  Token: POST /%s/%s/oauth2/token (client_credentials)\n"+
				"==================================================================\n\n",
				id, secret, platform.RootTenant, platform.AdminServer)
		}
		s.changed(ctx, platform.RootTenant, id)
		return nil
	}
	if generated {
		return nil
	}
	existing, err := s.store.getClient(ctx, platform.RootTenant, id)
	if err != nil {
		return fmt.Errorf("read the root client: %w", err)
	}
	if s.keyring.VerifySecret(secret, existing.SecretHash) {
		return nil
	}
	if _, err := s.store.setSecretHash(ctx, platform.RootTenant, id, row.SecretHash, now); err != nil {
		return fmt.Errorf("update the root client's secret: %w", err)
	}
	s.changed(ctx, platform.RootTenant, id)
	return nil
}

func (s *Service) changed(ctx context.Context, tenantID, clientID string) {
	s.bus.Publish(ctx, changes.Clients, changes.Key(tenantID, clientID))
}

func (s *Service) policyChanged(ctx context.Context, tenantID, id string) {
	s.bus.Publish(ctx, changes.Policies, changes.Key(tenantID, id))
}

// --- clients ---

func (s *Service) CreateClient(ctx context.Context, req *clientv1.CreateClientRequest) (*clientv1.Client, error) {
	in := req.GetClient()
	if in == nil {
		return nil, apierr.Field("client", "a client is required")
	}
	id := in.ClientId
	if id == "" {
		id = secrets.NewID()
	} else if !platform.ValidClientID(id) {
		return nil, apierr.Field("client_id", "client_id must be 1 to 128 characters from [A-Za-z0-9._~-]")
	}
	if in.AuthorizationServerId == "" {
		return nil, apierr.Field("authorization_server_id", "authorization_server_id is required")
	}
	md, err := s.clientServer(ctx, req.TenantId, in.AuthorizationServerId)
	if err != nil {
		return nil, err
	}
	now := db.Now()
	row := &clientRow{TenantID: req.TenantId, ClientID: id, ServerID: in.AuthorizationServerId, CreatedAt: now, UpdatedAt: now}
	if err := applyClient(row, in, nil, md); err != nil {
		return nil, err
	}
	secret := s.provisionSecret(row)
	if err := s.store.createClient(ctx, row); err != nil {
		switch {
		case err == errPolicyMissing:
			return nil, apierr.Field("token_policy_id", "token policy %q not found", row.TokenPolicyID)
		case db.IsUniqueViolation(err):
			return nil, apierr.AlreadyExists("client %q already exists", id)
		}
		return nil, apierr.Wrap(err, "create client")
	}
	s.changed(ctx, row.TenantID, row.ClientID)
	return withSecret(clientToProto(row), secret), nil
}

// provisionSecret gives a confidential client without a secret a new one and returns it ("" when none was made);
// a public client loses any secret it had.
func (s *Service) provisionSecret(row *clientRow) string {
	if row.AuthMethod == platform.AuthNone {
		row.SecretHash = ""
		return ""
	}
	if row.SecretHash != "" {
		return ""
	}
	secret := secrets.NewSecret()
	row.SecretHash = s.keyring.HashSecret(secret)
	return secret
}

func withSecret(c *clientv1.Client, secret string) *clientv1.Client {
	if secret != "" {
		c.ClientSecret = &secret
	}
	return c
}

// errServerNotFound is returned by serverMetadata for an unknown workspace.
var errServerNotFound = errors.New("authorization server not found")

// serverMetadata fetches a workspace's grant types and scope names (errServerNotFound when it does not exist).
func (s *Service) serverMetadata(ctx context.Context, tenantID, serverID string) (*workspacev1.ServerMetadata, error) {
	md, err := s.workspaces.GetServerMetadata(s.internal.Outgoing(ctx), &workspacev1.GetServerMetadataRequest{TenantId: tenantID, ServerId: serverID})
	if status.Code(err) == codes.NotFound {
		return nil, errServerNotFound
	}
	return md, err
}

// clientServer is serverMetadata for a client's workspace: an unknown one is bad input naming the field.
func (s *Service) clientServer(ctx context.Context, tenantID, serverID string) (*workspacev1.ServerMetadata, error) {
	md, err := s.serverMetadata(ctx, tenantID, serverID)
	if err == errServerNotFound {
		return nil, apierr.Field("authorization_server_id", "authorization server %q not found", serverID)
	}
	return md, err
}

// applyClient copies the mutable fields named by mask (all when mask is empty) onto row, with defaults, and checks
// the result against the workspace md.
func applyClient(row *clientRow, in *clientv1.Client, mask []string, md *workspacev1.ServerMetadata) error {
	set := func(field string) bool { return len(mask) == 0 || slices.Contains(mask, field) }
	for _, f := range mask {
		// The fixed identifiers may be named (a PATCH body that echoes them yields them); UpdateClient has checked
		// that they are unchanged.
		if !slices.Contains(mutableClientFields, f) && f != "client_id" && f != "authorization_server_id" {
			return apierr.Field("update_mask", "%q is not a field that can be updated (updatable: %s)", f, strings.Join(mutableClientFields, ", "))
		}
	}
	if set("client_name") {
		row.Name = strings.TrimSpace(in.ClientName)
		if utf8.RuneCountInString(row.Name) > maxName {
			return apierr.Field("client_name", "client_name is longer than %d characters", maxName)
		}
	}
	if set("description") {
		row.Description = in.Description
		if utf8.RuneCountInString(row.Description) > maxDescription {
			return apierr.Field("description", "description is longer than %d characters", maxDescription)
		}
	}
	if set("token_endpoint_auth_method") {
		m := in.TokenEndpointAuthMethod
		if m == "" {
			m = platform.AuthSecretBasic
		}
		if !slices.Contains(authMethods, m) {
			return apierr.Field("token_endpoint_auth_method", "token_endpoint_auth_method must be one of %s", strings.Join(authMethods, ", "))
		}
		row.AuthMethod = m
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
		row.GrantTypes = dedupe(grants)
	}
	if set("scopes") {
		if len(in.Scopes) > maxListLen {
			return apierr.Field("scopes", "at most %d scopes", maxListLen)
		}
		row.Scopes = dedupe(in.Scopes)
	}
	if set("audience") {
		if len(in.Audience) > maxListLen {
			return apierr.Field("audience", "at most %d audiences", maxListLen)
		}
		for _, a := range in.Audience {
			if strings.TrimSpace(a) == "" || len(a) > maxAudience {
				return apierr.Field("audience", "each audience must be a non-blank string of at most %d characters", maxAudience)
			}
		}
		row.Audience = dedupe(in.Audience)
	}
	if set("token_policy_id") {
		row.TokenPolicyID = in.TokenPolicyId
	}
	if set("redirect_uris") {
		if len(in.RedirectUris) > maxListLen {
			return apierr.Field("redirect_uris", "at most %d redirect URIs", maxListLen)
		}
		for _, u := range in.RedirectUris {
			if err := checkRedirectURI("redirect_uris", u); err != nil {
				return err
			}
		}
		row.RedirectURIs = dedupe(in.RedirectUris)
	}
	if set("post_logout_redirect_uris") {
		if len(in.PostLogoutRedirectUris) > maxListLen {
			return apierr.Field("post_logout_redirect_uris", "at most %d post-logout redirect URIs", maxListLen)
		}
		for _, u := range in.PostLogoutRedirectUris {
			if err := checkRedirectURI("post_logout_redirect_uris", u); err != nil {
				return err
			}
		}
		row.PostLogoutRedirectURIs = dedupe(in.PostLogoutRedirectUris)
	}
	if set("allowed_origins") {
		if len(in.AllowedOrigins) > maxListLen {
			return apierr.Field("allowed_origins", "at most %d origins", maxListLen)
		}
		for _, o := range in.AllowedOrigins {
			if err := checkOrigin(o); err != nil {
				return err
			}
		}
		row.AllowedOrigins = dedupe(in.AllowedOrigins)
	}
	if set("trusted") {
		row.Trusted = in.Trusted
	}
	// Checks of the whole, whichever fields changed: the workspace may have changed since.
	for _, g := range row.GrantTypes {
		if !slices.Contains(md.GrantTypes, g) {
			return apierr.Field("grant_types", "grant type %q is not enabled on authorization server %q", g, md.ServerId)
		}
	}
	if slices.Contains(row.GrantTypes, platform.GrantAuthorizationCode) && len(row.RedirectURIs) == 0 {
		return apierr.Field("redirect_uris", "a client with the authorization_code grant needs at least one redirect URI")
	}
	if row.AuthMethod == platform.AuthNone && slices.Contains(row.GrantTypes, platform.GrantClientCredentials) {
		return apierr.Field("grant_types", "a public client (token_endpoint_auth_method none) cannot use client_credentials")
	}
	for _, sc := range row.Scopes {
		if !slices.Contains(md.Scopes, sc) {
			return apierr.Field("scopes", "scope %q is not defined in authorization server %q", sc, md.ServerId)
		}
	}
	return nil
}

// mutableClientFields are the fields UpdateClient may change (the workspace and the secret are fixed).
var mutableClientFields = []string{
	"client_name", "description", "grant_types", "token_endpoint_auth_method", "scopes", "audience",
	"token_policy_id", "redirect_uris", "post_logout_redirect_uris", "allowed_origins", "trusted",
}

// checkRedirectURI accepts an absolute URI without a fragment (RFC 6749 §3.1.2) that a browser may be sent to
// with an authorization code or after logout (field names the list): `https` with a host; `http` only on a loopback
// host (RFC 8252 §7.3: the code never crosses a network in clear); or a private-use scheme of a native app, named
// after a reverse domain (RFC 8252 §7.1: `com.example.app:/cb`), which also keeps out `javascript:` and `data:`.
func checkRedirectURI(field, raw string) error {
	if raw == "" || len(raw) > maxRedirectURI {
		return apierr.Field(field, "each URI must be 1 to %d characters", maxRedirectURI)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return apierr.Field(field, "%q is not an absolute URI", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return apierr.Field(field, "%q must not contain a fragment", raw)
	}
	if u.User != nil {
		return apierr.Field(field, "%q must not contain user information", raw)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return apierr.Field(field, "%q has no host", raw)
		}
	case "http":
		if u.Host == "" {
			return apierr.Field(field, "%q has no host", raw)
		}
		if !platform.IsLoopbackHost(u.Hostname()) {
			return apierr.Field(field, "%q: http is allowed only on a loopback host (127.0.0.1, [::1], localhost); use https", raw)
		}
	default:
		if !strings.Contains(u.Scheme, ".") {
			return apierr.Field(field, "%q: a native app's scheme must be a reverse domain name such as com.example.app (RFC 8252)", raw)
		}
	}
	return nil
}

// checkOrigin accepts a browser origin as browsers send it: `scheme://host[:port]` without path, query or
// trailing slash, https or http on a loopback host.
func checkOrigin(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || len(raw) > maxRedirectURI || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" ||
		u.Fragment != "" || strings.HasSuffix(raw, "/") || strings.Contains(raw, "*") {
		return apierr.Field("allowed_origins", "%q is not an origin (scheme://host[:port])", raw)
	}
	if raw != strings.ToLower(u.Scheme)+"://"+strings.ToLower(u.Host) {
		return apierr.Field("allowed_origins", "%q: write the origin in lower case, as browsers send it", raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && platform.IsLoopbackHost(u.Hostname()):
	default:
		return apierr.Field("allowed_origins", "%q: an origin must be https, or http on a loopback host", raw)
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

func (s *Service) client(ctx context.Context, tenantID, clientID string) (*clientRow, error) {
	row, err := s.store.getClient(ctx, tenantID, clientID)
	if db.IsNotFound(err) {
		return nil, apierr.NotFound("client %q not found", clientID)
	}
	if err != nil {
		return nil, apierr.Wrap(err, "get client")
	}
	return row, nil
}

func (s *Service) GetClient(ctx context.Context, req *clientv1.GetClientRequest) (*clientv1.Client, error) {
	row, err := s.client(ctx, req.TenantId, req.ClientId)
	if err != nil {
		return nil, err
	}
	return clientToProto(row), nil
}

// ListClients lists a workspace's clients, or every client of the tenant when no workspace is named.
func (s *Service) ListClients(ctx context.Context, req *clientv1.ListClientsRequest) (*clientv1.ListClientsResponse, error) {
	if req.ServerId != "" {
		if _, err := s.serverMetadata(ctx, req.TenantId, req.ServerId); err == errServerNotFound {
			return nil, apierr.NotFound("authorization server %q not found", req.ServerId)
		} else if err != nil {
			return nil, err
		}
	}
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "clients/"+req.TenantId+"/"+req.ServerId,
		func(after string, limit int) ([]clientRow, error) {
			return s.store.listClients(ctx, req.TenantId, req.ServerId, after, limit)
		}, func(r *clientRow) string { return r.ClientID })
	if err != nil {
		return nil, apierr.Wrap(err, "list clients")
	}
	resp := &clientv1.ListClientsResponse{Clients: []*clientv1.Client{}, NextPageToken: next}
	for i := range rows {
		resp.Clients = append(resp.Clients, clientToProto(&rows[i]))
	}
	return resp, nil
}

func (s *Service) UpdateClient(ctx context.Context, req *clientv1.UpdateClientRequest) (*clientv1.Client, error) {
	in := req.GetClient()
	if in == nil {
		return nil, apierr.Field("client", "a client is required")
	}
	row, err := s.client(ctx, req.TenantId, req.ClientId)
	if err != nil {
		return nil, err
	}
	if in.ClientId != "" && in.ClientId != row.ClientID {
		return nil, apierr.Field("client_id", "client_id cannot be changed")
	}
	if in.AuthorizationServerId != "" && in.AuthorizationServerId != row.ServerID {
		return nil, apierr.Field("authorization_server_id", "a client cannot move to another authorization server")
	}
	md, err := s.clientServer(ctx, row.TenantID, row.ServerID)
	if err != nil {
		return nil, err
	}
	if err := applyClient(row, in, req.GetUpdateMask().GetPaths(), md); err != nil {
		return nil, err
	}
	// A client turned confidential gets its first secret here, shown once as at creation.
	secret := s.provisionSecret(row)
	row.UpdatedAt = db.Now()
	if err := s.store.updateClient(ctx, row); err != nil {
		switch {
		case err == errPolicyMissing:
			return nil, apierr.Field("token_policy_id", "token policy %q not found", row.TokenPolicyID)
		case db.IsNotFound(err):
			return nil, apierr.NotFound("client %q not found", req.ClientId)
		}
		return nil, apierr.Wrap(err, "update client")
	}
	s.changed(ctx, row.TenantID, row.ClientID)
	return withSecret(clientToProto(row), secret), nil
}

func (s *Service) DeleteClient(ctx context.Context, req *clientv1.DeleteClientRequest) (*emptypb.Empty, error) {
	if _, err := s.client(ctx, req.TenantId, req.ClientId); err != nil {
		return nil, err
	}
	// Its refresh tokens first: should this fail, the client still exists and the delete can be retried.
	if _, err := s.tokens.DeleteClientTokens(s.internal.Outgoing(ctx), &tokenv1.DeleteClientTokensRequest{TenantId: req.TenantId, ClientId: req.ClientId}); err != nil {
		return nil, err
	}
	deleted, err := s.store.deleteClient(ctx, req.TenantId, req.ClientId)
	if err != nil {
		return nil, apierr.Wrap(err, "delete client")
	}
	if !deleted {
		return nil, apierr.NotFound("client %q not found", req.ClientId)
	}
	s.changed(ctx, req.TenantId, req.ClientId)
	return &emptypb.Empty{}, nil
}

func (s *Service) RotateClientSecret(ctx context.Context, req *clientv1.RotateClientSecretRequest) (*clientv1.RotateClientSecretResponse, error) {
	row, err := s.client(ctx, req.TenantId, req.ClientId)
	if err != nil {
		return nil, err
	}
	if row.AuthMethod == platform.AuthNone {
		return nil, apierr.Field("client_id", "client %q is a public client and has no secret", req.ClientId)
	}
	secret := secrets.NewSecret()
	ok, err := s.store.setSecretHash(ctx, req.TenantId, req.ClientId, s.keyring.HashSecret(secret), db.Now())
	if err != nil {
		return nil, apierr.Wrap(err, "rotate client secret")
	}
	if !ok {
		return nil, apierr.NotFound("client %q not found", req.ClientId)
	}
	s.changed(ctx, req.TenantId, req.ClientId)
	return &clientv1.RotateClientSecretResponse{ClientSecret: secret}, nil
}

func (s *Service) AuthenticateClient(ctx context.Context, req *clientv1.AuthenticateClientRequest) (*clientv1.AuthenticatedClient, error) {
	row, err := s.store.getClient(ctx, req.TenantId, req.ClientId)
	if err != nil && !db.IsNotFound(err) {
		return nil, apierr.Wrap(err, "authenticate client")
	}
	if err != nil || req.ClientId == "" || row.ServerID != req.ServerId {
		s.keyring.VerifySecret(req.ClientSecret, s.dummyHash)
		return nil, errInvalidClient
	}
	if row.AuthMethod == platform.AuthNone {
		if req.ClientSecret != "" {
			return nil, errInvalidClient
		}
	} else if req.ClientSecret == "" || row.SecretHash == "" || !s.keyring.VerifySecret(req.ClientSecret, row.SecretHash) {
		return nil, errInvalidClient
	}
	return s.withPolicy(ctx, row)
}

// GetClientAccess serves access-token verifiers: the client with its token policy, NotFound once deleted.
func (s *Service) GetClientAccess(ctx context.Context, req *clientv1.GetClientAccessRequest) (*clientv1.AuthenticatedClient, error) {
	row, err := s.client(ctx, req.TenantId, req.ClientId)
	if err != nil {
		return nil, err
	}
	return s.withPolicy(ctx, row)
}

// withPolicy is the client with its token policy; a policy gone missing grants nothing extra.
func (s *Service) withPolicy(ctx context.Context, row *clientRow) (*clientv1.AuthenticatedClient, error) {
	out := &clientv1.AuthenticatedClient{Client: clientToProto(row)}
	if row.TokenPolicyID != "" {
		p, err := s.store.getPolicy(ctx, row.TenantID, row.TokenPolicyID)
		switch {
		case err == nil:
			out.TokenPolicy = policyToProto(p)
		case !db.IsNotFound(err):
			return nil, apierr.Wrap(err, "get token policy")
		}
	}
	return out, nil
}

func (s *Service) CreateTenantAdminClient(ctx context.Context, req *clientv1.CreateTenantAdminClientRequest) (*clientv1.Client, error) {
	if !platform.ValidTenantID(req.TenantId) {
		return nil, apierr.Field("tenant_id", "invalid tenant id")
	}
	now := db.Now()
	row := &clientRow{
		TenantID: req.TenantId, ClientID: secrets.NewID(), ServerID: platform.AdminServer, Name: "Admin client",
		GrantTypes: stringList{platform.GrantClientCredentials}, AuthMethod: platform.AuthSecretBasic,
		Scopes:    stringList{platform.ScopeManageConfiguration, platform.ScopeReadConfiguration},
		CreatedAt: now, UpdatedAt: now,
	}
	secret := s.provisionSecret(row)
	if err := s.store.createClient(ctx, row); err != nil {
		return nil, apierr.Wrap(err, "create admin client")
	}
	s.changed(ctx, row.TenantID, row.ClientID)
	return withSecret(clientToProto(row), secret), nil
}

func (s *Service) DeleteTenantData(ctx context.Context, req *clientv1.DeleteTenantDataRequest) (*emptypb.Empty, error) {
	if req.TenantId == "" || req.TenantId == platform.RootTenant {
		return nil, apierr.Field("tenant_id", "invalid tenant id")
	}
	if err := s.store.deleteTenant(ctx, req.TenantId); err != nil {
		return nil, apierr.Wrap(err, "delete clients")
	}
	s.bus.Publish(ctx, changes.Clients, changes.TenantKey(req.TenantId))
	s.bus.Publish(ctx, changes.Policies, changes.TenantKey(req.TenantId))
	return &emptypb.Empty{}, nil
}

func (s *Service) DeleteServerClients(ctx context.Context, req *clientv1.DeleteServerClientsRequest) (*emptypb.Empty, error) {
	if req.ServerId == "" {
		return nil, apierr.Field("server_id", "server_id is required")
	}
	if req.ServerId == platform.AdminServer || req.ServerId == platform.SystemServer {
		// Built-in workspaces lose their clients only with their tenant (DeleteTenantData).
		return nil, apierr.Field("server_id", "the clients of the built-in %s workspace cannot be deleted in bulk", req.ServerId)
	}
	ids, err := s.store.deleteServerClients(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, apierr.Wrap(err, "delete clients")
	}
	for _, id := range ids {
		s.changed(ctx, req.TenantId, id)
	}
	return &emptypb.Empty{}, nil
}

func clientToProto(r *clientRow) *clientv1.Client {
	audience := []string(r.Audience)
	if len(audience) == 0 {
		audience = []string{r.ClientID}
	}
	return &clientv1.Client{
		ClientId: r.ClientID, TenantId: r.TenantID, AuthorizationServerId: r.ServerID, ClientName: r.Name,
		Description: r.Description, GrantTypes: nonNil(r.GrantTypes), TokenEndpointAuthMethod: r.AuthMethod,
		Scopes: nonNil(r.Scopes), Audience: audience, TokenPolicyId: r.TokenPolicyID,
		RedirectUris: nonNil(r.RedirectURIs), PostLogoutRedirectUris: nonNil(r.PostLogoutRedirectURIs),
		AllowedOrigins: nonNil(r.AllowedOrigins), Trusted: r.Trusted,
		CreatedAt: timestamppb.New(time.UnixMicro(r.CreatedAt)),
		UpdatedAt: timestamppb.New(time.UnixMicro(r.UpdatedAt)),
	}
}

func nonNil(l stringList) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// ListAllowedOrigins is the union of the allowed_origins of a workspace's clients: the gateway answers CORS for
// these origins, and for no other, at the workspace's endpoints.
func (s *Service) ListAllowedOrigins(ctx context.Context, req *clientv1.ListAllowedOriginsRequest) (*clientv1.ListAllowedOriginsResponse, error) {
	if req.TenantId == "" || req.ServerId == "" {
		return nil, apierr.Field("server_id", "tenant_id and server_id are required")
	}
	lists, err := s.store.serverOrigins(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, apierr.Wrap(err, "list allowed origins")
	}
	var origins []string
	for _, l := range lists {
		origins = append(origins, l...)
	}
	slices.Sort(origins)
	return &clientv1.ListAllowedOriginsResponse{Origins: slices.Compact(origins)}, nil
}

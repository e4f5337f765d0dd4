package workspace

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/secrets"
)

// Identity source methods.
const (
	MethodIdentityPool = "identity_pool"
	MethodExternal     = "external"
)

var (
	defaultVerifierTimeout = 2 * time.Second
	minVerifierTimeout     = 100 * time.Millisecond
	maxVerifierTimeout     = 30 * time.Second
)

const (
	maxIdpNameLen = 200
	maxURLLen     = 2048
)

func (s *Service) CreateIdentityPoolIdp(ctx context.Context, req *workspacev1.CreateIdentityPoolIdpRequest) (*workspacev1.Idp, error) {
	in := req.GetIdp()
	row, err := newIdp(req.TenantId, req.ServerId, in, MethodIdentityPool)
	if err != nil {
		return nil, err
	}
	if in.Url != "" || in.Timeout != nil {
		return nil, apierr.Field(firstSet(in.Url != "", "url", "timeout"), "url and timeout belong to external sources; an identity_pool source has identity_pool_id")
	}
	if in.IdentityPoolId == "" {
		return nil, apierr.Field("identity_pool_id", "identity_pool_id is required")
	}
	if !platform.ValidResourceID(in.IdentityPoolId) {
		return nil, apierr.Field("identity_pool_id", "identity_pool_id must match ^[a-z0-9][a-z0-9_-]{0,62}$")
	}
	row.IdentityPoolID = in.IdentityPoolId
	if _, err := s.server(ctx, req.TenantId, req.ServerId); err != nil {
		return nil, err
	}
	// The pool service applies its own rule to the caller's admin token: existence is all it tells.
	found, err := s.pools.PoolExists(s.internal.Outgoing(ctx), &poolv1.PoolExistsRequest{TenantId: req.TenantId, PoolId: in.IdentityPoolId})
	if err != nil {
		return nil, err
	}
	if !found.Exists {
		return nil, apierr.Field("identity_pool_id", "identity_pool_id %q names no identity pool of this tenant", in.IdentityPoolId)
	}
	if err := s.createIdp(ctx, row); err != nil {
		return nil, err
	}
	return idpToProto(row), nil
}

func (s *Service) CreateExternalIdp(ctx context.Context, req *workspacev1.CreateExternalIdpRequest) (*workspacev1.Idp, error) {
	in := req.GetIdp()
	row, err := newIdp(req.TenantId, req.ServerId, in, MethodExternal)
	if err != nil {
		return nil, err
	}
	if in.IdentityPoolId != "" {
		return nil, apierr.Field("identity_pool_id", "identity_pool_id belongs to identity_pool sources; an external source has url and timeout")
	}
	verifier, err := verifierURL(in.Url)
	if err != nil {
		return nil, err
	}
	row.URL = in.Url
	timeout := defaultVerifierTimeout
	if in.Timeout != nil {
		if err := in.Timeout.CheckValid(); err != nil {
			return nil, apierr.Field("timeout", "timeout is not a valid duration")
		}
		timeout = in.Timeout.AsDuration()
	}
	if timeout < minVerifierTimeout || timeout > maxVerifierTimeout {
		return nil, apierr.Field("timeout", "timeout must be between %s and %s", minVerifierTimeout, maxVerifierTimeout)
	}
	row.TimeoutMs = timeout.Milliseconds()
	// Last of the input checks, as it may wait for a name to resolve. The token service checks every address again
	// when it connects; this refuses early, with a clear answer, what is already known to be denied.
	if err := s.egress.CheckHost(ctx, verifier.Hostname()); err != nil {
		return nil, apierr.Field("url", "url is not an allowed destination: %v", err)
	}
	if s.keyring == nil {
		return nil, apierr.Wrap(errors.New("the workspace service has no keyring (master key)"), "derive the signing secret")
	}
	if _, err := s.server(ctx, req.TenantId, req.ServerId); err != nil {
		return nil, err
	}
	if err := s.createIdp(ctx, row); err != nil {
		return nil, err
	}
	out := idpToProto(row)
	// Derived, not stored: the token service derives the same secret to sign its calls to the verifier.
	secret := s.keyring.DeriveSecret(secrets.PurposeExternalIdp, row.TenantID, row.ServerID, row.ID)
	out.SigningSecret = &secret
	return out, nil
}

// newIdp checks the fields every identity source has and returns its row, without the method's own fields.
func newIdp(tenantID, serverID string, in *workspacev1.Idp, method string) (*idpRow, error) {
	if in == nil {
		return nil, apierr.Field("idp", "an idp is required")
	}
	if in.Method != "" && in.Method != method {
		return nil, apierr.Field("method", "method is %q on this route (it is set by the route, not the body)", method)
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		return nil, apierr.Field("name", "name is required")
	}
	if utf8.RuneCountInString(name) > maxIdpNameLen {
		return nil, apierr.Field("name", "name is longer than %d characters", maxIdpNameLen)
	}
	if in.DisplayOrder < 0 {
		return nil, apierr.Field("display_order", "display_order must be 0 or more")
	}
	return &idpRow{TenantID: tenantID, ID: secrets.NewID(), ServerID: serverID, Name: name, Method: method,
		DisplayOrder: int64(in.DisplayOrder), CreatedAt: db.Now()}, nil
}

// verifierURL checks an external verifier's URL: absolute http or https with a host, and no credentials in it
// (they would be stored and listed in clear; the signature authenticates the caller instead). Where it points is
// the egress policy's to decide.
func verifierURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, apierr.Field("url", "url is required")
	}
	if len(raw) > maxURLLen {
		return nil, apierr.Field("url", "url is longer than %d characters", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, apierr.Field("url", "url must be an absolute http or https URL (e.g. https://verifier.example.com/verify)")
	}
	if u.User != nil {
		return nil, apierr.Field("url", "url must not carry credentials")
	}
	if u.Fragment != "" {
		return nil, apierr.Field("url", "url must not have a fragment")
	}
	return u, nil
}

func firstSet(first bool, a, b string) string {
	if first {
		return a
	}
	return b
}

// createIdp stores an identity source and tells the data plane's caches of its workspace.
func (s *Service) createIdp(ctx context.Context, row *idpRow) error {
	if err := s.store.createIdp(ctx, row); err != nil {
		if errors.Is(err, errNoServer) { // deleted since it was read
			return apierr.NotFound("server %q not found", row.ServerID)
		}
		return apierr.Wrap(err, "create idp")
	}
	s.changed(ctx, row.TenantID, row.ServerID)
	return nil
}

func (s *Service) ListIdps(ctx context.Context, req *workspacev1.ListIdpsRequest) (*workspacev1.ListIdpsResponse, error) {
	if _, err := s.server(ctx, req.TenantId, req.ServerId); err != nil {
		return nil, err
	}
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "idps/"+req.TenantId+"/"+req.ServerId,
		func(after string, limit int) ([]idpRow, error) {
			if after == "" {
				return s.store.listIdps(ctx, req.TenantId, req.ServerId, nil, limit)
			}
			k, ok := parseIdpKey(after)
			if !ok {
				return nil, apierr.Field("page_token", "page_token is not valid for this list")
			}
			return s.store.listIdps(ctx, req.TenantId, req.ServerId, &k, limit)
		}, func(r *idpRow) string { return r.key().String() })
	if err != nil {
		return nil, apierr.Wrap(err, "list idps")
	}
	resp := &workspacev1.ListIdpsResponse{Idps: []*workspacev1.Idp{}, NextPageToken: next}
	for i := range rows {
		resp.Idps = append(resp.Idps, idpToProto(&rows[i]))
	}
	return resp, nil
}

func (s *Service) GetIdp(ctx context.Context, req *workspacev1.GetIdpRequest) (*workspacev1.Idp, error) {
	if _, err := s.server(ctx, req.TenantId, req.ServerId); err != nil {
		return nil, err
	}
	row, err := s.store.getIdp(ctx, req.TenantId, req.ServerId, req.IdpId)
	if db.IsNotFound(err) {
		return nil, apierr.NotFound("idp %q not found", req.IdpId)
	}
	if err != nil {
		return nil, apierr.Wrap(err, "get idp")
	}
	return idpToProto(row), nil
}

func (s *Service) DeleteIdp(ctx context.Context, req *workspacev1.DeleteIdpRequest) (*emptypb.Empty, error) {
	if _, err := s.server(ctx, req.TenantId, req.ServerId); err != nil {
		return nil, err
	}
	deleted, err := s.store.deleteIdp(ctx, req.TenantId, req.ServerId, req.IdpId)
	if err != nil {
		return nil, apierr.Wrap(err, "delete idp")
	}
	if !deleted {
		return nil, apierr.NotFound("idp %q not found", req.IdpId)
	}
	s.changed(ctx, req.TenantId, req.ServerId)
	return &emptypb.Empty{}, nil
}

// identitySources are a workspace's sources as the data plane sees them, in the order they are tried.
func (s *Service) identitySources(ctx context.Context, tenantID, serverID string) ([]*workspacev1.IdentitySource, error) {
	rows, err := s.store.listIdps(ctx, tenantID, serverID, nil, 0)
	if err != nil {
		return nil, apierr.Wrap(err, "list idps")
	}
	out := make([]*workspacev1.IdentitySource, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		src := &workspacev1.IdentitySource{Id: r.ID, Method: r.Method, IdentityPoolId: r.IdentityPoolID, Url: r.URL}
		if r.Method == MethodExternal {
			src.Timeout = durationpb.New(time.Duration(r.TimeoutMs) * time.Millisecond)
		}
		out = append(out, src)
	}
	return out, nil
}

func idpToProto(r *idpRow) *workspacev1.Idp {
	out := &workspacev1.Idp{
		Id: r.ID, TenantId: r.TenantID, AuthorizationServerId: r.ServerID, Name: r.Name, Method: r.Method,
		DisplayOrder: int32(r.DisplayOrder), IdentityPoolId: r.IdentityPoolID, Url: r.URL,
		CreatedAt: timestamppb.New(time.UnixMicro(r.CreatedAt)),
	}
	if r.Method == MethodExternal {
		out.Timeout = durationpb.New(time.Duration(r.TimeoutMs) * time.Millisecond)
	}
	return out
}

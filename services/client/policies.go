package client

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/platform"
)

// mutablePolicyFields are the fields UpdateTokenPolicy may change.
var mutablePolicyFields = []string{"title", "access_token_ttl", "refresh_token_ttl", "allowed_scopes"}

func (s *Service) CreateTokenPolicy(ctx context.Context, req *clientv1.CreateTokenPolicyRequest) (*clientv1.TokenPolicy, error) {
	in := req.GetTokenPolicy()
	if in == nil {
		return nil, apierr.Field("token_policy", "a token policy is required")
	}
	id, err := platform.NewResourceID(in.Id)
	if err != nil {
		return nil, err
	}
	now := db.Now()
	row := &policyRow{TenantID: req.TenantId, ID: id, CreatedAt: now, UpdatedAt: now}
	if err := applyPolicy(row, in, nil); err != nil {
		return nil, err
	}
	if err := s.store.createPolicy(ctx, row); err != nil {
		if db.IsUniqueViolation(err) {
			return nil, apierr.AlreadyExists("token policy %q already exists", id)
		}
		return nil, apierr.Wrap(err, "create token policy")
	}
	s.policyChanged(ctx, row.TenantID, row.ID)
	return policyToProto(row), nil
}

// applyPolicy copies the mutable fields named by mask (all when mask is empty) onto row, with checks.
func applyPolicy(row *policyRow, in *clientv1.TokenPolicy, mask []string) error {
	for _, f := range mask {
		if !slices.Contains(mutablePolicyFields, f) && f != "id" { // id: checked unchanged by UpdateTokenPolicy
			return apierr.Field("update_mask", "%q is not a field that can be updated (updatable: %s)", f, strings.Join(mutablePolicyFields, ", "))
		}
	}
	set := func(field string) bool { return len(mask) == 0 || slices.Contains(mask, field) }
	if set("title") {
		row.Title = strings.TrimSpace(in.Title)
		if utf8.RuneCountInString(row.Title) > maxName {
			return apierr.Field("title", "title is longer than %d characters", maxName)
		}
	}
	ttls := []struct {
		field string
		in    *durationpb.Duration
		out   *int64
	}{
		{"access_token_ttl", in.AccessTokenTtl, &row.AccessTokenTTLMs},
		{"refresh_token_ttl", in.RefreshTokenTtl, &row.RefreshTokenTTLMs},
	}
	for _, t := range ttls {
		if !set(t.field) {
			continue
		}
		*t.out = 0 // unset: the workspace's lifetime applies
		if t.in == nil {
			continue
		}
		if err := t.in.CheckValid(); err != nil {
			return apierr.Field(t.field, "%s is not a valid duration", t.field)
		}
		d := t.in.AsDuration()
		if d < time.Second || d > maxTTL {
			return apierr.Field(t.field, "%s must be between 1s and %s", t.field, maxTTL)
		}
		*t.out = d.Milliseconds()
	}
	if set("allowed_scopes") {
		if len(in.AllowedScopes) > maxListLen {
			return apierr.Field("allowed_scopes", "at most %d scope patterns", maxListLen)
		}
		for _, p := range in.AllowedScopes {
			if err := checkScopePattern(p); err != nil {
				return err
			}
		}
		row.AllowedScopes = dedupe(in.AllowedScopes)
	}
	return nil
}

// checkScopePattern accepts a scope token (RFC 6749 §3.3: printable ASCII but space, `"` and `\`) in which `*`
// stands for any run of characters but `/` and `**` for any run; three stars in a row mean nothing more and are
// refused as a likely mistake.
func checkScopePattern(p string) error {
	if p == "" || len(p) > maxScopePattern {
		return apierr.Field("allowed_scopes", "each scope pattern must be 1 to %d characters", maxScopePattern)
	}
	for _, c := range []byte(p) {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return apierr.Field("allowed_scopes", "scope pattern %q has a character a scope cannot contain", p)
		}
	}
	if strings.Contains(p, "***") {
		return apierr.Field("allowed_scopes", "scope pattern %q: use * (within a segment) or ** (across segments)", p)
	}
	return nil
}

func (s *Service) policy(ctx context.Context, tenantID, id string) (*policyRow, error) {
	row, err := s.store.getPolicy(ctx, tenantID, id)
	if db.IsNotFound(err) {
		return nil, apierr.NotFound("token policy %q not found", id)
	}
	if err != nil {
		return nil, apierr.Wrap(err, "get token policy")
	}
	return row, nil
}

func (s *Service) GetTokenPolicy(ctx context.Context, req *clientv1.GetTokenPolicyRequest) (*clientv1.TokenPolicy, error) {
	row, err := s.policy(ctx, req.TenantId, req.TokenPolicyId)
	if err != nil {
		return nil, err
	}
	return policyToProto(row), nil
}

func (s *Service) ListTokenPolicies(ctx context.Context, req *clientv1.ListTokenPoliciesRequest) (*clientv1.ListTokenPoliciesResponse, error) {
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "token-policies/"+req.TenantId,
		func(after string, limit int) ([]policyRow, error) {
			return s.store.listPolicies(ctx, req.TenantId, after, limit)
		}, func(r *policyRow) string { return r.ID })
	if err != nil {
		return nil, apierr.Wrap(err, "list token policies")
	}
	resp := &clientv1.ListTokenPoliciesResponse{TokenPolicies: []*clientv1.TokenPolicy{}, NextPageToken: next}
	for i := range rows {
		resp.TokenPolicies = append(resp.TokenPolicies, policyToProto(&rows[i]))
	}
	return resp, nil
}

func (s *Service) UpdateTokenPolicy(ctx context.Context, req *clientv1.UpdateTokenPolicyRequest) (*clientv1.TokenPolicy, error) {
	in := req.GetTokenPolicy()
	if in == nil {
		return nil, apierr.Field("token_policy", "a token policy is required")
	}
	row, err := s.policy(ctx, req.TenantId, req.TokenPolicyId)
	if err != nil {
		return nil, err
	}
	if in.Id != "" && in.Id != row.ID {
		return nil, apierr.Field("id", "id cannot be changed")
	}
	if err := applyPolicy(row, in, req.GetUpdateMask().GetPaths()); err != nil {
		return nil, err
	}
	row.UpdatedAt = db.Now()
	if err := s.store.updatePolicy(ctx, row); err != nil {
		if db.IsNotFound(err) {
			return nil, apierr.NotFound("token policy %q not found", req.TokenPolicyId)
		}
		return nil, apierr.Wrap(err, "update token policy")
	}
	s.policyChanged(ctx, row.TenantID, row.ID)
	return policyToProto(row), nil
}

// DeleteTokenPolicy refuses (409) while a client refers to the policy, rather than silently changing what those
// clients may request.
func (s *Service) DeleteTokenPolicy(ctx context.Context, req *clientv1.DeleteTokenPolicyRequest) (*emptypb.Empty, error) {
	err := s.store.deletePolicy(ctx, req.TenantId, req.TokenPolicyId)
	switch {
	case err == errPolicyInUse:
		return nil, apierr.AlreadyExists("token policy %q is used by clients; change them first", req.TokenPolicyId)
	case db.IsNotFound(err):
		return nil, apierr.NotFound("token policy %q not found", req.TokenPolicyId)
	case err != nil:
		return nil, apierr.Wrap(err, "delete token policy")
	}
	s.policyChanged(ctx, req.TenantId, req.TokenPolicyId)
	return &emptypb.Empty{}, nil
}

func policyToProto(r *policyRow) *clientv1.TokenPolicy {
	p := &clientv1.TokenPolicy{
		Id: r.ID, TenantId: r.TenantID, Title: r.Title, AllowedScopes: nonNil(r.AllowedScopes),
		CreatedAt: timestamppb.New(time.UnixMicro(r.CreatedAt)),
		UpdatedAt: timestamppb.New(time.UnixMicro(r.UpdatedAt)),
	}
	if r.AccessTokenTTLMs > 0 {
		p.AccessTokenTtl = durationpb.New(time.Duration(r.AccessTokenTTLMs) * time.Millisecond)
	}
	if r.RefreshTokenTTLMs > 0 {
		p.RefreshTokenTtl = durationpb.New(time.Duration(r.RefreshTokenTTLMs) * time.Millisecond)
	}
	return p
}

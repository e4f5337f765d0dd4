package authz

import (
	"context"
	"errors"
	"strings"

	accessv1 "github.com/authplane/authplane/gen/go/authplane/access/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/platform"
	"google.golang.org/grpc"
)

// UnaryInterceptor enforces each RPC's declared plane. A method without a plane is refused.
func (v *Verifier) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := v.Authorize(ctx, info.FullMethod, req)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Authorize applies the plane rule of fullMethod to the caller in ctx and returns ctx with the caller's claims.
func (v *Verifier) Authorize(ctx context.Context, fullMethod string, req any) (context.Context, error) {
	// A call in this process (pkg/inproc) inherits the context of the call that made it: who the callee's caller is
	// comes from its own credentials alone.
	ctx = context.WithValue(context.WithValue(ctx, claimsKey{}, (*Claims)(nil)), internalKey{}, "")
	if strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") {
		return ctx, nil // probes carry no token
	}
	plane := PlaneOf(fullMethod)
	switch plane {
	case accessv1.Plane_PLANE_PUBLIC:
		return ctx, nil
	case accessv1.Plane_PLANE_UNSPECIFIED:
		return ctx, apierr.PermissionDenied("method %s is not open to callers", fullMethod)
	}
	raw := BearerToken(ctx)
	if raw == "" {
		return ctx, apierr.Unauthenticated("a bearer access token is required")
	}
	// The platform's own processes open every plane; nothing else opens the internal one.
	if caller, ok := v.internal.Verify(raw); ok {
		return withInternalCaller(ctx, caller), nil
	}
	if plane == accessv1.Plane_PLANE_INTERNAL {
		return ctx, apierr.PermissionDenied("method %s is internal to the platform", fullMethod)
	}
	c, err := v.Verify(ctx, raw)
	if errors.Is(err, ErrRevocationUnknown) || errors.Is(err, ErrKeysUnavailable) {
		// The token was not judged: what it needs cannot be read now (the database is unreachable). A 401 would
		// tell the client to drop a token that may be good.
		return ctx, apierr.Unavailable("the access token cannot be checked now; try again shortly")
	}
	if err != nil {
		return ctx, apierr.Unauthenticated("the access token is invalid, expired or revoked")
	}
	if err := allow(plane, c, req); err != nil {
		return ctx, err
	}
	return WithClaims(ctx, c), nil
}

func allow(plane accessv1.Plane, c *Claims, req any) error {
	if plane == accessv1.Plane_PLANE_OPERATOR {
		if c.TenantID == platform.RootTenant && c.ServerID == platform.AdminServer && c.HasScope(platform.ScopeManageTenants) {
			return nil
		}
		return apierr.PermissionDenied("this operation needs the platform operator's token (scope %s)", platform.ScopeManageTenants)
	}
	tenant, ok := requestTenant(req)
	if !ok || tenant == "" || tenant != c.TenantID || tenant == platform.RootTenant {
		return apierr.PermissionDenied("the token is not valid for this tenant")
	}
	switch plane {
	case accessv1.Plane_PLANE_ADMIN_READ, accessv1.Plane_PLANE_ADMIN_WRITE:
		if c.ServerID != platform.AdminServer {
			return apierr.PermissionDenied("the admin API needs a token of the tenant's admin workspace")
		}
		if c.HasScope(platform.ScopeManageConfiguration) {
			return nil
		}
		if plane == accessv1.Plane_PLANE_ADMIN_READ && c.HasScope(platform.ScopeReadConfiguration) {
			return nil
		}
		return apierr.PermissionDenied("the token lacks scope %s", platform.ScopeManageConfiguration)
	case accessv1.Plane_PLANE_IDENTITY:
		if c.ServerID != platform.SystemServer {
			return apierr.PermissionDenied("the identity API needs a token of the tenant's system workspace")
		}
		if c.HasScope(platform.ScopeIdentity) {
			return nil
		}
		return apierr.PermissionDenied("the token lacks scope %s", platform.ScopeIdentity)
	}
	return apierr.PermissionDenied("unknown plane")
}

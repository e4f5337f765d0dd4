package pool_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	"github.com/authplane/authplane/pkg/testenv"
)

func TestPoolExistsAnswersThePlatformOnly(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		e.pool(t, "customers", nil)
		e.pool(t, "gone", nil)
		e.mustCall(t, 204, "DELETE", "/pools/gone", nil)
		other := e.NewTenant(t, "other")

		internal := e.Internal(t, t.Context())
		cases := []struct {
			name   string
			poolID string
			exists bool
		}{
			{"existing pool", "customers", true},
			{"deleted pool", "gone", false},
			{"never created", "nobody", false},
			{"empty id", "", false},
			{"not a valid id", "Not/Valid", false},
		}
		for _, tc := range cases {
			resp, err := e.pools.PoolExists(internal, &poolv1.PoolExistsRequest{TenantId: "acme", PoolId: tc.poolID})
			if err != nil || resp.Exists != tc.exists {
				t.Errorf("%s: PoolExists = %v, %v; want %v", tc.name, resp, err, tc.exists)
			}
		}

		refused := []struct {
			name  string
			token string
			code  codes.Code
		}{
			{"the tenant's admin token", e.tenant.AdminToken, codes.PermissionDenied},
			{"another tenant's admin token", other.AdminToken, codes.PermissionDenied},
			{"the tenant's identity-plane token", e.tenant.SystemToken, codes.PermissionDenied},
			{"no token", "", codes.Unauthenticated},
		}
		for _, tc := range refused {
			ctx := t.Context()
			if tc.token != "" {
				ctx = testenv.WithToken(ctx, tc.token)
			}
			_, err := e.pools.PoolExists(ctx, &poolv1.PoolExistsRequest{TenantId: "acme", PoolId: "customers"})
			if status.Code(err) != tc.code {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			}
		}
	})
}

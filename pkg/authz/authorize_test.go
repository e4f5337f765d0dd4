package authz

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	accessv1 "github.com/authplane/authplane/gen/go/authplane/access/v1"
	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	schemav1 "github.com/authplane/authplane/gen/go/authplane/schema/v1"
	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/inproc"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/secrets"
)

const (
	ok     = codes.OK
	unauth = codes.Unauthenticated
	denied = codes.PermissionDenied
)

func withBearer(ctx context.Context, tok string) context.Context {
	if tok == "" {
		return ctx
	}
	return metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+tok))
}

func TestPlaneOf(t *testing.T) {
	cases := []struct {
		method string
		want   accessv1.Plane
	}{
		{tenantv1.TenantService_ListTenants_FullMethodName, accessv1.Plane_PLANE_OPERATOR},
		{tenantv1.TenantService_CreateTenant_FullMethodName, accessv1.Plane_PLANE_OPERATOR},
		{workspacev1.WorkspaceService_ProvisionTenant_FullMethodName, accessv1.Plane_PLANE_INTERNAL},
		{workspacev1.WorkspaceService_ListServers_FullMethodName, accessv1.Plane_PLANE_ADMIN_READ},
		{clientv1.ClientService_GetClient_FullMethodName, accessv1.Plane_PLANE_ADMIN_READ},
		{workspacev1.WorkspaceService_CreateServer_FullMethodName, accessv1.Plane_PLANE_ADMIN_WRITE},
		{tokenv1.TokenService_DeleteServerKeys_FullMethodName, accessv1.Plane_PLANE_INTERNAL},
		{tokenv1.TokenService_ListUserSessions_FullMethodName, accessv1.Plane_PLANE_IDENTITY},
		{poolv1.PoolService_CreateUser_FullMethodName, accessv1.Plane_PLANE_IDENTITY},
		{schemav1.SchemaService_ListSchemas_FullMethodName, accessv1.Plane_PLANE_IDENTITY},
		{tokenv1.TokenService_Token_FullMethodName, accessv1.Plane_PLANE_PUBLIC},
		{tokenv1.TokenService_ListRevokedTokens_FullMethodName, accessv1.Plane_PLANE_INTERNAL},
		{workspacev1.WorkspaceService_GetServerMetadata_FullMethodName, accessv1.Plane_PLANE_INTERNAL},
		{clientv1.ClientService_AuthenticateClient_FullMethodName, accessv1.Plane_PLANE_INTERNAL},
		{clientv1.ClientService_DeleteTenantData_FullMethodName, accessv1.Plane_PLANE_INTERNAL},
		{poolv1.PoolService_PoolExists_FullMethodName, accessv1.Plane_PLANE_INTERNAL},
		{"/authplane.tenant.v1.TenantService/Nope", accessv1.Plane_PLANE_UNSPECIFIED},
		{"/authplane.nope.v1.NopeService/ListTenants", accessv1.Plane_PLANE_UNSPECIFIED},
		{"/authplane.tenant.v1.Tenant/Id", accessv1.Plane_PLANE_UNSPECIFIED}, // a message, not a service
		{"/grpc.health.v1.Health/Check", accessv1.Plane_PLANE_UNSPECIFIED},
		{"authplane.tenant.v1.TenantService.ListTenants", accessv1.Plane_PLANE_UNSPECIFIED},
		{"", accessv1.Plane_PLANE_UNSPECIFIED},
	}
	for _, tc := range cases {
		for i := 0; i < 2; i++ { // the second lookup is served from the memo
			if got := PlaneOf(tc.method); got != tc.want {
				t.Errorf("PlaneOf(%q) #%d = %s, want %s", tc.method, i+1, got, tc.want)
			}
		}
	}
}

// Every RPC of every service declares a plane: a missing one would be refused at run time.
func TestEveryRPCDeclaresAPlane(t *testing.T) {
	descs := map[string][]string{}
	for _, sd := range []struct {
		name    string
		methods []string
	}{
		{tenantv1.TenantService_ServiceDesc.ServiceName, methodNames(tenantv1.TenantService_ServiceDesc.Methods)},
		{workspacev1.WorkspaceService_ServiceDesc.ServiceName, methodNames(workspacev1.WorkspaceService_ServiceDesc.Methods)},
		{clientv1.ClientService_ServiceDesc.ServiceName, methodNames(clientv1.ClientService_ServiceDesc.Methods)},
		{poolv1.PoolService_ServiceDesc.ServiceName, methodNames(poolv1.PoolService_ServiceDesc.Methods)},
		{schemav1.SchemaService_ServiceDesc.ServiceName, methodNames(schemav1.SchemaService_ServiceDesc.Methods)},
		{tokenv1.TokenService_ServiceDesc.ServiceName, methodNames(tokenv1.TokenService_ServiceDesc.Methods)},
	} {
		descs[sd.name] = sd.methods
	}
	for svc, methods := range descs {
		if len(methods) == 0 {
			t.Errorf("%s has no methods", svc)
		}
		for _, m := range methods {
			if p := PlaneOf("/" + svc + "/" + m); p == accessv1.Plane_PLANE_UNSPECIFIED {
				t.Errorf("/%s/%s declares no plane", svc, m)
			}
		}
	}
}

func TestAuthorizeEveryPlane(t *testing.T) {
	f := newFixture(t)
	tokens := map[string]string{
		"none":    "",
		"garbage": "not-a-jwt",
		"expired": func() string {
			c := f.claims("acme", "admin", "manage_configuration")
			c["iat"], c["exp"] = f.clock.Now().Add(-2*time.Hour).Unix(), f.clock.Now().Add(-time.Hour).Unix()
			return sign(t, f.key, "at+jwt", c)
		}(),
		"root operator":                        f.token("root", "admin", "manage_tenants"),
		"root admin without manage_tenants":    f.token("root", "admin", "manage_configuration read_configuration"),
		"root system with manage_tenants":      f.token("root", "system", "manage_tenants"),
		"tenant admin":                         f.token("acme", "admin", "manage_configuration"),
		"tenant admin read-only":               f.token("acme", "admin", "read_configuration"),
		"tenant admin with no plane scope":     f.token("acme", "admin", "openid"),
		"tenant admin claiming manage_tenants": f.token("acme", "admin", "manage_tenants manage_configuration"),
		"tenant system with identity":          f.token("acme", "system", "identity"),
		"tenant system without identity":       f.token("acme", "system", "openid"),
		// A regular workspace must not open a plane even with scopes named like the planes'.
		"regular workspace":   f.token("acme", "ws1", "manage_tenants manage_configuration read_configuration identity"),
		"other tenant admin":  f.token("globex", "admin", "manage_configuration read_configuration"),
		"other tenant system": f.token("globex", "system", "identity"),
		"platform credential": f.internal.Token(),
		"another platform's credential": func() string {
			k, err := secrets.NewKeyring(bytes.Repeat([]byte{9}, 32))
			if err != nil {
				t.Fatal(err)
			}
			return internalcall.New(k, "token").Token()
		}(),
	}
	type call struct {
		method string
		req    proto.Message
	}
	planes := map[string]call{
		"operator":    {tenantv1.TenantService_ListTenants_FullMethodName, &tenantv1.ListTenantsRequest{}},
		"admin read":  {workspacev1.WorkspaceService_ListServers_FullMethodName, &workspacev1.ListServersRequest{TenantId: "acme"}},
		"admin write": {workspacev1.WorkspaceService_CreateServer_FullMethodName, &workspacev1.CreateServerRequest{TenantId: "acme", Server: &workspacev1.Server{Id: "ws9"}}},
		"identity":    {poolv1.PoolService_ListPools_FullMethodName, &poolv1.ListPoolsRequest{TenantId: "acme"}},
		"public":      {tokenv1.TokenService_GetJWKS_FullMethodName, &tokenv1.GetJWKSRequest{TenantId: "acme", ServerId: "ws1"}},
		"unspecified": {"/authplane.workspace.v1.WorkspaceService/Undeclared", &workspacev1.ListServersRequest{TenantId: "acme"}},
		"internal":    {clientv1.ClientService_DeleteTenantData_FullMethodName, &clientv1.DeleteTenantDataRequest{TenantId: "acme"}},
	}
	cases := []struct {
		token                                                                string
		operator, adminRead, adminWrite, identity, public, unspecd, internal codes.Code
	}{
		{"none", unauth, unauth, unauth, unauth, ok, denied, unauth},
		{"garbage", unauth, unauth, unauth, unauth, ok, denied, denied},
		{"expired", unauth, unauth, unauth, unauth, ok, denied, denied},
		{"root operator", ok, denied, denied, denied, ok, denied, denied},
		{"root admin without manage_tenants", denied, denied, denied, denied, ok, denied, denied},
		{"root system with manage_tenants", denied, denied, denied, denied, ok, denied, denied},
		{"tenant admin", denied, ok, ok, denied, ok, denied, denied},
		{"tenant admin read-only", denied, ok, denied, denied, ok, denied, denied},
		{"tenant admin with no plane scope", denied, denied, denied, denied, ok, denied, denied},
		{"tenant admin claiming manage_tenants", denied, ok, ok, denied, ok, denied, denied},
		{"tenant system with identity", denied, denied, denied, ok, ok, denied, denied},
		{"tenant system without identity", denied, denied, denied, denied, ok, denied, denied},
		{"regular workspace", denied, denied, denied, denied, ok, denied, denied},
		{"other tenant admin", denied, denied, denied, denied, ok, denied, denied},
		{"other tenant system", denied, denied, denied, denied, ok, denied, denied},
		// The platform's own processes open every plane; their credential opens the internal one, alone.
		{"platform credential", ok, ok, ok, ok, ok, denied, ok},
		{"another platform's credential", unauth, unauth, unauth, unauth, ok, denied, denied},
	}
	for _, tc := range cases {
		raw, known := tokens[tc.token]
		if !known {
			t.Fatalf("no token %q", tc.token)
		}
		for plane, want := range map[string]codes.Code{
			"operator": tc.operator, "admin read": tc.adminRead, "admin write": tc.adminWrite,
			"identity": tc.identity, "public": tc.public, "unspecified": tc.unspecd, "internal": tc.internal,
		} {
			t.Run(tc.token+" on "+plane, func(t *testing.T) {
				c := planes[plane]
				ctx, err := f.v.Authorize(withBearer(context.Background(), raw), c.method, c.req)
				if got := status.Code(err); got != want {
					t.Fatalf("Authorize(%s) = %s (%v), want %s", c.method, got, err, want)
				}
				claims, has := FromContext(ctx)
				_, internal := InternalCaller(ctx)
				switch {
				case internal != (want == ok && tc.token == "platform credential" && plane != "public"):
					t.Fatalf("internal caller in context = %v", internal)
				case internal:
				case want == ok && plane != "public":
					if !has || claims.ClientID != "client-1" {
						t.Fatalf("claims in context = %+v, %v; want the caller's", claims, has)
					}
				case has:
					t.Fatalf("claims in context after %s on %s plane", want, plane)
				}
			})
		}
	}
}

func TestAuthorizeChecksTheRequestTenant(t *testing.T) {
	f := newFixture(t)
	admin := f.token("acme", "admin", "manage_configuration")
	root := f.token("root", "admin", "manage_tenants manage_configuration")
	rootAdmin := f.token("root", "admin", "manage_configuration")
	cases := []struct {
		name   string
		token  string
		method string
		req    any
		want   codes.Code
	}{
		{"own tenant", admin, workspacev1.WorkspaceService_GetServer_FullMethodName, &workspacev1.GetServerRequest{TenantId: "acme", ServerId: "ws1"}, ok},
		{"another tenant", admin, workspacev1.WorkspaceService_GetServer_FullMethodName, &workspacev1.GetServerRequest{TenantId: "globex", ServerId: "ws1"}, denied},
		{"tenant id differing in case", admin, workspacev1.WorkspaceService_GetServer_FullMethodName, &workspacev1.GetServerRequest{TenantId: "ACME"}, denied},
		{"empty tenant id", admin, workspacev1.WorkspaceService_GetServer_FullMethodName, &workspacev1.GetServerRequest{}, denied},
		{"request without a tenant_id field", admin, workspacev1.WorkspaceService_ListServers_FullMethodName, &tenantv1.ListTenantsRequest{}, denied},
		{"request that is not a proto message", admin, workspacev1.WorkspaceService_ListServers_FullMethodName, "acme", denied},
		{"root tenant on the admin plane", rootAdmin, workspacev1.WorkspaceService_ListServers_FullMethodName, &workspacev1.ListServersRequest{TenantId: "root"}, denied},
		{"operator on another tenant's admin plane", root, workspacev1.WorkspaceService_ListServers_FullMethodName, &workspacev1.ListServersRequest{TenantId: "acme"}, denied},
		{"operator plane with a tenant in the request", root, tenantv1.TenantService_GetTenant_FullMethodName, &tenantv1.GetTenantRequest{TenantId: "acme"}, ok},
		{"tenant admin on an operator RPC naming its own tenant", admin, tenantv1.TenantService_GetTenant_FullMethodName, &tenantv1.GetTenantRequest{TenantId: "acme"}, denied},
		{"operator on an internal RPC", root, workspacev1.WorkspaceService_ProvisionTenant_FullMethodName, &workspacev1.ProvisionTenantRequest{TenantId: "acme"}, denied},
		{"tenant admin on an internal RPC of its own tenant", admin, clientv1.ClientService_DeleteTenantData_FullMethodName, &clientv1.DeleteTenantDataRequest{TenantId: "acme"}, denied},
		{"tenant admin deleting its own tenant", admin, tenantv1.TenantService_DeleteTenant_FullMethodName, &tenantv1.DeleteTenantRequest{TenantId: "acme"}, denied},
		{"health probe without a token", "", "/grpc.health.v1.Health/Check", nil, ok},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.v.Authorize(withBearer(context.Background(), tc.token), tc.method, tc.req)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("Authorize = %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	cases := []struct {
		header []string
		want   string
	}{
		{nil, ""},
		{[]string{"Bearer abc"}, "abc"},
		{[]string{"bearer abc"}, "abc"},
		{[]string{"BEARER  abc "}, "abc"},
		{[]string{"Basic YTpi"}, ""},
		{[]string{"Bearer "}, ""},
		{[]string{"Bearerabc"}, ""},
		{[]string{"Basic YTpi", "Bearer second"}, "second"},
	}
	for _, tc := range cases {
		ctx := context.Background()
		if tc.header != nil {
			md := metadata.MD{}
			for _, h := range tc.header {
				md.Append("authorization", h)
			}
			ctx = metadata.NewIncomingContext(ctx, md)
		}
		if got := BearerToken(ctx); got != tc.want {
			t.Errorf("BearerToken(%q) = %q, want %q", tc.header, got, tc.want)
		}
	}
}

func TestForwardCaller(t *testing.T) {
	in := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer tok", "x-other", "1"))
	out, _ := metadata.FromOutgoingContext(ForwardCaller(in))
	if got := out.Get("authorization"); len(got) != 1 || got[0] != "Bearer tok" {
		t.Fatalf("forwarded authorization = %q, want Bearer tok", got)
	}
	if got := out.Get("x-other"); len(got) != 0 {
		t.Fatalf("forwarded other metadata: %q", got)
	}
	out, _ = metadata.FromOutgoingContext(ForwardCaller(context.Background()))
	if got := out.Get("authorization"); len(got) != 0 {
		t.Fatalf("authorization forwarded without a caller: %q", got)
	}
}

// fakeWorkspaces records the caller the interceptor let through.
type fakeWorkspaces struct {
	workspacev1.UnimplementedWorkspaceServiceServer
	caller *Claims
}

func (f *fakeWorkspaces) ListServers(ctx context.Context, _ *workspacev1.ListServersRequest) (*workspacev1.ListServersResponse, error) {
	f.caller, _ = FromContext(ctx)
	return &workspacev1.ListServersResponse{}, nil
}

func TestUnaryInterceptorGuardsGeneratedClients(t *testing.T) {
	f := newFixture(t)
	conn := inproc.New(f.v.UnaryInterceptor())
	fake := &fakeWorkspaces{}
	workspacev1.RegisterWorkspaceServiceServer(conn, fake)
	client := workspacev1.NewWorkspaceServiceClient(conn)
	admin := f.token("acme", "admin", "read_configuration")

	cases := []struct {
		name   string
		token  string
		tenant string
		want   codes.Code
	}{
		{"no token", "", "acme", unauth},
		{"other tenant", admin, "globex", denied},
		{"own tenant", admin, "acme", ok},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake.caller = nil
			ctx := context.Background()
			if tc.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.token)
			}
			_, err := client.ListServers(ctx, &workspacev1.ListServersRequest{TenantId: tc.tenant})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("ListServers = %s (%v), want %s", got, err, tc.want)
			}
			if (fake.caller != nil) != (tc.want == ok) {
				t.Fatalf("handler ran with caller %+v, want it to run only when allowed", fake.caller)
			}
			if tc.want == ok && (fake.caller.TenantID != "acme" || fake.caller.ServerID != "admin") {
				t.Fatalf("caller = %+v", fake.caller)
			}
		})
	}
}

func methodNames(ms []grpc.MethodDesc) []string {
	var names []string
	for _, m := range ms {
		names = append(names, m.MethodName)
	}
	return names
}

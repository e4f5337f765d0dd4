package inproc_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/inproc"
)

// fakeTenants is a TenantService whose GetTenant behaves according to the requested tenant id and remembers
// what it saw.
type fakeTenants struct {
	tenantv1.UnimplementedTenantServiceServer

	mu       sync.Mutex
	incoming metadata.MD
	outgoing metadata.MD
	req      *tenantv1.GetTenantRequest
	resp     *tenantv1.Tenant
}

func (f *fakeTenants) GetTenant(ctx context.Context, req *tenantv1.GetTenantRequest) (*tenantv1.Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.incoming, _ = metadata.FromIncomingContext(ctx)
	f.outgoing, _ = metadata.FromOutgoingContext(ctx)
	f.req = req
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-served-by", "fake", "x-tenant", req.GetTenantId()))
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-second", "2"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t"))
	switch req.GetTenantId() {
	case "missing":
		return nil, apierr.NotFound("tenant %s not found", req.GetTenantId())
	case "bad":
		return nil, apierr.Field("tenant_id", "tenant_id is malformed")
	case "plain":
		return nil, errors.New("a plain error")
	case "busy":
		return nil, status.Error(codes.Unavailable, "try later")
	}
	req.TenantId = "mutated-by-server" // must not reach the caller's request
	f.resp = &tenantv1.Tenant{Id: "acme", Name: "Acme"}
	return f.resp, nil
}

// recording is an interceptor that records the methods it saw and can refuse calls.
type recording struct {
	mu      sync.Mutex
	methods []string
	refuse  bool
}

func (r *recording) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	r.mu.Lock()
	r.methods = append(r.methods, info.FullMethod)
	refuse := r.refuse
	r.mu.Unlock()
	if refuse {
		return nil, status.Error(codes.PermissionDenied, "refused by interceptor")
	}
	return h(ctx, req)
}

func setup(t *testing.T) (*inproc.Conn, *fakeTenants, *recording, tenantv1.TenantServiceClient) {
	t.Helper()
	rec := &recording{}
	conn := inproc.New(rec.intercept)
	fake := &fakeTenants{}
	tenantv1.RegisterTenantServiceServer(conn, fake)
	return conn, fake, rec, tenantv1.NewTenantServiceClient(conn)
}

func TestCallReachesTheServiceThroughTheInterceptor(t *testing.T) {
	conn, fake, rec, client := setup(t)

	got, err := client.GetTenant(context.Background(), &tenantv1.GetTenantRequest{TenantId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetId() != "acme" || got.GetName() != "Acme" {
		t.Fatalf("response = %v", got)
	}
	if len(rec.methods) != 1 || rec.methods[0] != tenantv1.TenantService_GetTenant_FullMethodName {
		t.Fatalf("interceptor saw %q, want exactly the GetTenant call", rec.methods)
	}
	if fake.req == nil {
		t.Fatal("handler not called")
	}
	if !conn.Has(tenantv1.TenantService_GetTenant_FullMethodName) || !conn.Has(tenantv1.TenantService_DeleteTenant_FullMethodName) {
		t.Error("Has does not report registered methods")
	}
	if conn.Has("/authplane.tenant.v1.TenantService/Nope") || conn.Has("/other.Service/GetTenant") {
		t.Error("Has reports methods that are not registered")
	}
}

func TestInterceptorCanRefuseTheCall(t *testing.T) {
	_, fake, rec, client := setup(t)
	rec.refuse = true
	_, err := client.GetTenant(context.Background(), &tenantv1.GetTenantRequest{TenantId: "acme"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("error = %v, want PermissionDenied from the interceptor", err)
	}
	if fake.req != nil {
		t.Fatal("the handler ran although the interceptor refused the call")
	}
}

func TestNilInterceptorCallsTheHandlerDirectly(t *testing.T) {
	conn := inproc.New(nil)
	tenantv1.RegisterTenantServiceServer(conn, &fakeTenants{})
	got, err := tenantv1.NewTenantServiceClient(conn).GetTenant(context.Background(), &tenantv1.GetTenantRequest{TenantId: "acme"})
	if err != nil || got.GetId() != "acme" {
		t.Fatalf("GetTenant = %v, %v", got, err)
	}
}

func TestOutgoingMetadataArrivesAsIncoming(t *testing.T) {
	_, fake, _, client := setup(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer tok", "X-Request-Id", "r1")
	ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", "r2")
	if _, err := client.GetTenant(ctx, &tenantv1.GetTenantRequest{TenantId: "acme"}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"authorization": {"Bearer tok"}, "x-request-id": {"r1", "r2"}}
	for k, v := range want {
		if got := fake.incoming.Get(k); !slices.Equal(got, v) {
			t.Errorf("incoming %s = %q, want %q", k, got, v)
		}
	}
	// The caller's outgoing metadata must not leak into calls the handler makes onward.
	if len(fake.outgoing) != 0 {
		t.Errorf("handler's outgoing metadata = %v, want none", fake.outgoing)
	}
}

func TestNoMetadataMeansEmptyIncoming(t *testing.T) {
	_, fake, _, client := setup(t)
	if _, err := client.GetTenant(context.Background(), &tenantv1.GetTenantRequest{TenantId: "acme"}); err != nil {
		t.Fatal(err)
	}
	if got := fake.incoming.Get("authorization"); len(got) != 0 {
		t.Fatalf("incoming authorization = %q without any sent", got)
	}
}

func TestErrorsKeepTheirStatus(t *testing.T) {
	cases := []struct {
		tenant    string
		code      codes.Code
		field     string
		errorCode string
	}{
		{"missing", codes.NotFound, "", "not_found"},
		{"bad", codes.InvalidArgument, "tenant_id", "invalid_input"},
		{"busy", codes.Unavailable, "", "unavailable"},
		{"plain", codes.Unknown, "", "internal"},
	}
	for _, tc := range cases {
		t.Run(tc.tenant, func(t *testing.T) {
			_, _, _, client := setup(t)
			_, err := client.GetTenant(context.Background(), &tenantv1.GetTenantRequest{TenantId: tc.tenant})
			st, ok := status.FromError(err)
			if !ok || st.Code() != tc.code {
				t.Fatalf("error = %v, want a status with code %s", err, tc.code)
			}
			d := apierr.Describe(err)
			if d.Field != tc.field || d.ErrorCode != tc.errorCode {
				t.Fatalf("Describe = %+v, want field %q error_code %q", d, tc.field, tc.errorCode)
			}
		})
	}
}

func TestRequestAndResponseAreCopies(t *testing.T) {
	_, fake, _, client := setup(t)
	req := &tenantv1.GetTenantRequest{TenantId: "acme"}
	got, err := client.GetTenant(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if req.GetTenantId() != "acme" {
		t.Errorf("the handler's change to its request reached the caller's: %q", req.GetTenantId())
	}
	if fake.req == req {
		t.Error("the handler received the caller's request object itself")
	}
	if got == fake.resp {
		t.Fatal("the caller received the handler's response object itself")
	}
	got.Name = "changed by caller"
	if fake.resp.GetName() != "Acme" {
		t.Errorf("the caller's change to its response reached the handler's object: %q", fake.resp.GetName())
	}
}

func TestUnknownMethodIsUnimplemented(t *testing.T) {
	conn, _, rec, client := setup(t)
	cases := []struct {
		name string
		call func() error
	}{
		{"method not registered anywhere", func() error {
			return conn.Invoke(context.Background(), "/authplane.nope.v1.Nope/Get", &emptypb.Empty{}, &emptypb.Empty{})
		}},
		{"unregistered method of a registered service", func() error {
			return conn.Invoke(context.Background(), "/authplane.tenant.v1.TenantService/Nope", &emptypb.Empty{}, &emptypb.Empty{})
		}},
		{"registered but not implemented by the server", func() error {
			_, err := client.ListTenants(context.Background(), &tenantv1.ListTenantsRequest{})
			return err
		}},
		{"streaming", func() error {
			_, err := conn.NewStream(context.Background(), &grpc.StreamDesc{}, "/x.Y/Z")
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); status.Code(err) != codes.Unimplemented {
				t.Fatalf("error = %v, want Unimplemented", err)
			}
		})
	}
	// Only the registered ListTenants passed through the interceptor.
	if len(rec.methods) != 1 || rec.methods[0] != tenantv1.TenantService_ListTenants_FullMethodName {
		t.Errorf("interceptor saw %q", rec.methods)
	}
}

func TestNonProtoMessagesAreRefused(t *testing.T) {
	conn, _, _, _ := setup(t)
	err := conn.Invoke(context.Background(), tenantv1.TenantService_GetTenant_FullMethodName, "not a message", &tenantv1.Tenant{})
	if status.Code(err) != codes.Internal {
		t.Fatalf("error = %v, want Internal", err)
	}
}

func TestHeaderAndTrailerCallOptions(t *testing.T) {
	cases := []struct {
		name   string
		tenant string
	}{
		{"on success", "acme"},
		{"on error", "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, client := setup(t)
			var header, trailer metadata.MD
			_, _ = client.GetTenant(context.Background(), &tenantv1.GetTenantRequest{TenantId: tc.tenant},
				grpc.Header(&header), grpc.Trailer(&trailer))
			if got := header.Get("x-served-by"); len(got) != 1 || got[0] != "fake" {
				t.Errorf("header x-served-by = %q, want fake", got)
			}
			if got := header.Get("x-tenant"); len(got) != 1 || got[0] != tc.tenant {
				t.Errorf("header x-tenant = %q, want %s", got, tc.tenant)
			}
			if got := header.Get("x-second"); len(got) != 1 || got[0] != "2" {
				t.Errorf("header from a second SetHeader = %q, want 2", got)
			}
			if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "t" {
				t.Errorf("trailer = %q, want t", got)
			}
		})
	}
}

func TestGRPCHealthServiceInProcess(t *testing.T) {
	rec := &recording{}
	conn := inproc.New(rec.intercept)
	hs := health.NewServer()
	hs.SetServingStatus("authplane", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(conn, hs)
	client := healthpb.NewHealthClient(conn)

	cases := []struct {
		service string
		want    healthpb.HealthCheckResponse_ServingStatus
		code    codes.Code
	}{
		{"", healthpb.HealthCheckResponse_SERVING, codes.OK},
		{"authplane", healthpb.HealthCheckResponse_SERVING, codes.OK},
		{"unknown", 0, codes.NotFound},
	}
	for _, tc := range cases {
		resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: tc.service})
		if status.Code(err) != tc.code {
			t.Fatalf("Check(%q) error = %v, want %s", tc.service, err, tc.code)
		}
		if err == nil && resp.GetStatus() != tc.want {
			t.Fatalf("Check(%q) = %s, want %s", tc.service, resp.GetStatus(), tc.want)
		}
	}
	if len(rec.methods) != len(cases) || rec.methods[0] != healthpb.Health_Check_FullMethodName {
		t.Errorf("interceptor saw %q", rec.methods)
	}
}

// TestClientInterceptorRunsBeforeTheCall: a client interceptor sees the method and its metadata reaches the
// server, as on a gRPC connection; one that answers itself keeps the call from the service.
func TestClientInterceptorRunsBeforeTheCall(t *testing.T) {
	var methods []string
	conn := inproc.New(nil, inproc.WithClientInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		methods = append(methods, method)
		if req.(*tenantv1.GetTenantRequest).GetTenantId() == "refused-by-client" {
			return status.Error(codes.Canceled, "not sent")
		}
		return invoke(metadata.AppendToOutgoingContext(ctx, "x-added", "by-client"), method, req, reply, cc, opts...)
	}))
	fake := &fakeTenants{}
	tenantv1.RegisterTenantServiceServer(conn, fake)
	client := tenantv1.NewTenantServiceClient(conn)
	if _, err := client.GetTenant(context.Background(), &tenantv1.GetTenantRequest{TenantId: "acme"}); err != nil {
		t.Fatal(err)
	}
	if got := fake.incoming.Get("x-added"); !slices.Equal(got, []string{"by-client"}) {
		t.Errorf("the server saw x-added %q, want the client interceptor's", got)
	}
	fake.req = nil
	if _, err := client.GetTenant(context.Background(), &tenantv1.GetTenantRequest{TenantId: "refused-by-client"}); status.Code(err) != codes.Canceled {
		t.Errorf("error %v, want the interceptor's", err)
	}
	if fake.req != nil {
		t.Error("the service was called although the client interceptor answered")
	}
	if want := []string{tenantv1.TenantService_GetTenant_FullMethodName, tenantv1.TenantService_GetTenant_FullMethodName}; !slices.Equal(methods, want) {
		t.Errorf("interceptor saw %q, want %q", methods, want)
	}
}

package token

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
)

// serveGRPC serves the harness's token service on a real gRPC server behind the authorization interceptor, with
// the verifier reading the service's own JWKS, and returns a client.
func serveGRPC(t *testing.T, h *harness) tokenv1.TokenServiceClient {
	t.Helper()
	srv := grpc.NewServer(grpc.UnaryInterceptor(h.deps.Verifier.UnaryInterceptor()))
	h.svc.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return tokenv1.NewTokenServiceClient(conn)
}

func oauthReason(err error) (codes.Code, string, string) {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), info.Domain, info.Reason
		}
	}
	return st.Code(), "", ""
}

func TestTokenServiceOverGRPC(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newHarness(t, url)
		h.ws.put(&workspacev1.ServerMetadata{
			TenantId: "acme", ServerId: "admin", Type: "admin", GrantTypes: []string{"client_credentials"},
			AccessTokenTtl: durationpb.New(time.Hour), Scopes: []string{"manage_configuration", "read_configuration"},
		})
		h.clients.put(&clientv1.Client{
			ClientId: "acme-admin", TenantId: "acme", AuthorizationServerId: "admin", GrantTypes: []string{"client_credentials"},
			Scopes: []string{"manage_configuration"}, ClientSecret: proto.String("admin-secret"),
		})
		h.ws.put(&workspacev1.ServerMetadata{
			TenantId: "other", ServerId: "admin", Type: "admin", GrantTypes: []string{"client_credentials"},
			AccessTokenTtl: durationpb.New(time.Hour),
		})
		h.clients.put(&clientv1.Client{
			ClientId: "other-admin", TenantId: "other", AuthorizationServerId: "admin", GrantTypes: []string{"client_credentials"},
			Scopes: []string{"manage_configuration"}, ClientSecret: proto.String("other-secret"),
		})
		cli := serveGRPC(t, h)
		ctx := context.Background()

		resp, err := cli.Token(ctx, ccRequest("cli-1", "secret-1", "orders.read"))
		if err != nil {
			t.Fatal(err)
		}
		if claims := verify(t, h.svc, "acme", "orders", resp.AccessToken); claims["scope"] != "orders.read" {
			t.Fatalf("claims %v", claims)
		}

		_, err = cli.Token(ctx, ccRequest("cli-1", "wrong", ""))
		if code, domain, reason := oauthReason(err); code != codes.Unauthenticated || domain != apierr.DomainOAuth || reason != "invalid_client" {
			t.Fatalf("wrong secret over gRPC: %v %s %s", code, domain, reason)
		}
		if d := apierr.Describe(err); d.HTTPStatus != 401 || !d.OAuth || d.ErrorCode != "invalid_client" {
			t.Fatalf("described as %+v", d)
		}

		jwksResp, err := cli.GetJWKS(ctx, &tokenv1.GetJWKSRequest{TenantId: "acme", ServerId: "orders"})
		if err != nil || len(jwksResp.Keys) != 2 || jwksResp.MaxAgeSeconds != 300 { // the current and the next key
			t.Fatalf("JWKS over gRPC: %v %v", jwksResp, err)
		}
		if _, err := cli.GetJWKS(ctx, &tokenv1.GetJWKSRequest{TenantId: "acme", ServerId: "nope"}); status.Code(err) != codes.NotFound {
			t.Fatalf("JWKS of an unknown workspace: %v", err)
		}

		token := func(tenant, client, secret string) context.Context {
			r, err := cli.Token(ctx, &tokenv1.TokenRequest{TenantId: tenant, ServerId: "admin", GrantType: "client_credentials", ClientId: client, ClientSecret: secret})
			if err != nil {
				t.Fatal(err)
			}
			return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.AccessToken)
		}
		del := &tokenv1.DeleteServerKeysRequest{TenantId: "acme", ServerId: "orders"}
		if _, err := cli.DeleteServerKeys(ctx, del); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("DeleteServerKeys without a token: %v", err)
		}
		dataPlane := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+resp.AccessToken)
		if _, err := cli.DeleteServerKeys(dataPlane, del); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("DeleteServerKeys with a data-plane token: %v", err)
		}
		if _, err := cli.DeleteServerKeys(token("other", "other-admin", "other-secret"), del); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("DeleteServerKeys with another tenant's admin token: %v", err)
		}
		if _, err := cli.DeleteTenantData(token("acme", "acme-admin", "admin-secret"), &tokenv1.DeleteTenantDataRequest{TenantId: "acme"}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("DeleteTenantData with a tenant admin token: %v", err)
		}
		if _, err := cli.DeleteServerKeys(token("acme", "acme-admin", "admin-secret"), del); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("DeleteServerKeys with the tenant's admin token: %v", err)
		}
		if _, err := cli.DeleteServerKeys(h.deps.Internal.Outgoing(ctx), del); err != nil {
			t.Fatalf("DeleteServerKeys with the platform's internal credential: %v", err)
		}
		after, err := cli.GetJWKS(ctx, &tokenv1.GetJWKSRequest{TenantId: "acme", ServerId: "orders"})
		if err != nil || len(after.Keys) != 2 || after.Keys[0].Kid == jwksResp.Keys[0].Kid || after.Keys[1].Kid == jwksResp.Keys[1].Kid {
			t.Fatalf("after deleting the keys: %v %v", after, err)
		}
	})
}

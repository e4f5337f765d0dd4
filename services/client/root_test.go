package client_test

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/inproc"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
	"github.com/authplane/authplane/services/client"
)

// rootAuth authenticates the operator client at root/admin.
func rootAuth(t *testing.T, s *client.Service, id, secret string) error {
	t.Helper()
	_, err := s.AuthenticateClient(context.Background(), &clientv1.AuthenticateClientRequest{
		TenantId: "root", ServerId: "admin", ClientId: id, ClientSecret: secret})
	return err
}

func TestRootClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		database, err := db.Open(context.Background(), testenv.DatabaseURL(t, b))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { database.Close() })
		kr, _ := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
		deps := func(id, secret string) svc.Deps {
			return svc.Deps{DB: database, Bus: changes.NewMemory(), Keyring: kr, Conns: svc.Conns{Workspace: inproc.New(nil)},
				RootClientID: id, RootClientSecret: secret}
		}
		var out bytes.Buffer
		defer client.SetStderr(&out)()
		ctx := context.Background()

		t.Run("a configured secret is used and printed nowhere", func(t *testing.T) {
			s, err := client.New(ctx, deps("ops", "first-secret"))
			if err != nil {
				t.Fatal(err)
			}
			if err := rootAuth(t, s, "ops", "first-secret"); err != nil {
				t.Fatal(err)
			}
			if out.Len() != 0 {
				t.Fatalf("printed %q", out.String())
			}
			c, err := s.GetClient(ctx, &clientv1.GetClientRequest{TenantId: "root", ClientId: "ops"})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Scopes, []string{"manage_tenants"}) || !slices.Equal(c.GrantTypes, []string{"client_credentials"}) ||
				c.AuthorizationServerId != "admin" || c.TokenEndpointAuthMethod != "client_secret_basic" {
				t.Fatalf("unexpected operator client %v", c)
			}
		})

		t.Run("a changed configured secret replaces the stored one", func(t *testing.T) {
			s, err := client.New(ctx, deps("ops", "second-secret"))
			if err != nil {
				t.Fatal(err)
			}
			if err := rootAuth(t, s, "ops", "first-secret"); err == nil {
				t.Fatal("the previous secret still works")
			}
			if err := rootAuth(t, s, "ops", "second-secret"); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("without a secret one is generated and printed once", func(t *testing.T) {
			s, err := client.New(ctx, deps("", ""))
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`AUTHPLANE_ROOT_CLIENT_ID=(\S+)\s+AUTHPLANE_ROOT_CLIENT_SECRET=(\S+)`).FindStringSubmatch(out.String())
			if m == nil || m[1] != client.DefaultRootClientID {
				t.Fatalf("no credentials printed: %q", out.String())
			}
			if err := rootAuth(t, s, m[1], m[2]); err != nil {
				t.Fatalf("the printed secret does not work: %v", err)
			}
			out.Reset()
			s, err = client.New(ctx, deps("", ""))
			if err != nil {
				t.Fatal(err)
			}
			if out.Len() != 0 {
				t.Fatalf("printed again on the next start: %q", out.String())
			}
			if err := rootAuth(t, s, m[1], m[2]); err != nil {
				t.Fatalf("the secret changed on restart: %v", err)
			}
		})

		t.Run("concurrent starts create one client and print at most once", func(t *testing.T) {
			out.Reset()
			errs := make(chan error, 4)
			for range 4 {
				go func() { _, err := client.New(ctx, deps("concurrent", "")); errs <- err }()
			}
			for range 4 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if n := strings.Count(out.String(), "AUTHPLANE_ROOT_CLIENT_SECRET="); n != 1 {
				t.Fatalf("printed %d times", n)
			}
		})
	})
}

func TestCreateTenantAdminClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		if _, err := e.clients.CreateTenantAdminClient(e.internal(t), &clientv1.CreateTenantAdminClientRequest{TenantId: "Bad"}); grpcstatus.Code(err) != codes.InvalidArgument {
			t.Fatalf("bad tenant id: %v", err)
		}
		c, err := e.clients.CreateTenantAdminClient(e.internal(t), &clientv1.CreateTenantAdminClientRequest{TenantId: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		if c.AuthorizationServerId != "admin" || c.ClientName != "Admin client" || c.GetClientSecret() == "" ||
			!slices.Equal(c.Scopes, []string{"manage_configuration", "read_configuration"}) {
			t.Fatalf("unexpected admin client %v", c)
		}
		if _, err := e.clients.AuthenticateClient(e.internal(t), &clientv1.AuthenticateClientRequest{TenantId: "acme",
			ServerId: "admin", ClientId: c.ClientId, ClientSecret: c.GetClientSecret()}); err != nil {
			t.Fatal(err)
		}
	})
}

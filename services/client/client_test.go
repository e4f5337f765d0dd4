package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
)

// fieldOf returns the field an InvalidArgument error names.
func fieldOf(err error) string {
	var e *apierr.Error
	if errors.As(err, &e) {
		return e.Field
	}
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Metadata["field"]
		}
	}
	return ""
}

// oauthCode returns the RFC 6749 error code an error carries.
func oauthCode(err error) string {
	var e *apierr.Error
	if errors.As(err, &e) {
		return e.OAuthCode
	}
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == apierr.DomainOAuth {
			return info.Reason
		}
	}
	return ""
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

// setUpWorkspace creates workspace "apps" in tenant with the given grants and a scope orders.read.
func setUpWorkspace(t *testing.T, e *env, ctx context.Context, tenant string, grants ...string) {
	t.Helper()
	if _, err := e.ws.CreateServer(ctx, &workspacev1.CreateServerRequest{TenantId: tenant,
		Server: &workspacev1.Server{Id: "apps", Name: "Apps", GrantTypes: grants}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ws.CreateScope(ctx, &workspacev1.CreateScopeRequest{TenantId: tenant,
		Scope: &workspacev1.Scope{AuthorizationServerId: "apps", Name: "orders.read"}}); err != nil {
		t.Fatal(err)
	}
}

func TestCreateClientValidation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		e.tenant(t, "acme")
		ctx := e.admin(t, "acme")
		setUpWorkspace(t, e, ctx, "acme", "client_credentials", "refresh_token")
		if _, err := e.clients.CreateTokenPolicy(ctx, &clientv1.CreateTokenPolicyRequest{TenantId: "acme",
			TokenPolicy: &clientv1.TokenPolicy{Id: "webhooks"}}); err != nil {
			t.Fatal(err)
		}
		long := strings.Repeat("x", 201)
		tests := []struct {
			name  string
			in    *clientv1.Client
			code  codes.Code
			field string
		}{
			{"defaults are a confidential client_credentials client", &clientv1.Client{AuthorizationServerId: "apps"}, codes.OK, ""},
			{"defined scope and existing policy", &clientv1.Client{AuthorizationServerId: "apps", Scopes: []string{"orders.read", "openid"}, TokenPolicyId: "webhooks"}, codes.OK, ""},
			{"caller-chosen id in the unreserved alphabet", &clientv1.Client{ClientId: "My.app_1~x-y", AuthorizationServerId: "apps"}, codes.OK, ""},
			{"native app redirect URI", &clientv1.Client{AuthorizationServerId: "apps", RedirectUris: []string{"https://app.example/cb", "com.example.app:/cb"}}, codes.OK, ""},
			{"undefined scope", &clientv1.Client{AuthorizationServerId: "apps", Scopes: []string{"no.such.scope"}}, codes.InvalidArgument, "scopes"},
			{"scope of another workspace", &clientv1.Client{AuthorizationServerId: "apps", Scopes: []string{"manage_configuration"}}, codes.InvalidArgument, "scopes"},
			{"grant not enabled on the workspace", &clientv1.Client{AuthorizationServerId: "apps", GrantTypes: []string{"password"}}, codes.InvalidArgument, "grant_types"},
			{"unsupported grant", &clientv1.Client{AuthorizationServerId: "apps", GrantTypes: []string{"implicit"}}, codes.InvalidArgument, "grant_types"},
			{"unknown workspace", &clientv1.Client{AuthorizationServerId: "no-such-ws"}, codes.InvalidArgument, "authorization_server_id"},
			{"missing workspace", &clientv1.Client{}, codes.InvalidArgument, "authorization_server_id"},
			{"unknown auth method", &clientv1.Client{AuthorizationServerId: "apps", TokenEndpointAuthMethod: "private_key_jwt"}, codes.InvalidArgument, "token_endpoint_auth_method"},
			{"public client with client_credentials", &clientv1.Client{AuthorizationServerId: "apps", TokenEndpointAuthMethod: "none"}, codes.InvalidArgument, "grant_types"},
			{"client id outside the alphabet", &clientv1.Client{ClientId: "a b", AuthorizationServerId: "apps"}, codes.InvalidArgument, "client_id"},
			{"relative redirect URI", &clientv1.Client{AuthorizationServerId: "apps", RedirectUris: []string{"/cb"}}, codes.InvalidArgument, "redirect_uris"},
			{"redirect URI with a fragment", &clientv1.Client{AuthorizationServerId: "apps", RedirectUris: []string{"https://a.example/cb#x"}}, codes.InvalidArgument, "redirect_uris"},
			{"loopback http redirect URI", &clientv1.Client{AuthorizationServerId: "apps", RedirectUris: []string{"http://127.0.0.1:8123/cb", "http://[::1]/cb", "http://localhost/cb"}}, codes.OK, ""},
			{"http redirect URI off loopback", &clientv1.Client{AuthorizationServerId: "apps", RedirectUris: []string{"http://app.example/cb"}}, codes.InvalidArgument, "redirect_uris"},
			{"javascript redirect URI", &clientv1.Client{AuthorizationServerId: "apps", RedirectUris: []string{"javascript:alert(1)"}}, codes.InvalidArgument, "redirect_uris"},
			{"private-use scheme that is no reverse domain", &clientv1.Client{AuthorizationServerId: "apps", RedirectUris: []string{"myapp:/cb"}}, codes.InvalidArgument, "redirect_uris"},
			{"redirect URI with user information", &clientv1.Client{AuthorizationServerId: "apps", RedirectUris: []string{"https://evil@a.example/cb"}}, codes.InvalidArgument, "redirect_uris"},
			{"post-logout URI off loopback over http", &clientv1.Client{AuthorizationServerId: "apps", PostLogoutRedirectUris: []string{"http://app.example/bye"}}, codes.InvalidArgument, "post_logout_redirect_uris"},
			{"allowed origin with a path", &clientv1.Client{AuthorizationServerId: "apps", AllowedOrigins: []string{"https://app.example/"}}, codes.InvalidArgument, "allowed_origins"},
			{"allowed origin wildcard", &clientv1.Client{AuthorizationServerId: "apps", AllowedOrigins: []string{"https://*.example"}}, codes.InvalidArgument, "allowed_origins"},
			{"allowed origin in upper case", &clientv1.Client{AuthorizationServerId: "apps", AllowedOrigins: []string{"https://App.example"}}, codes.InvalidArgument, "allowed_origins"},
			{"allowed origins", &clientv1.Client{AuthorizationServerId: "apps", AllowedOrigins: []string{"https://app.example", "http://localhost:3000"}}, codes.OK, ""},
			{"name too long", &clientv1.Client{AuthorizationServerId: "apps", ClientName: long}, codes.InvalidArgument, "client_name"},
			{"blank audience", &clientv1.Client{AuthorizationServerId: "apps", Audience: []string{" "}}, codes.InvalidArgument, "audience"},
			{"unknown token policy", &clientv1.Client{AuthorizationServerId: "apps", TokenPolicyId: "nope"}, codes.InvalidArgument, "token_policy_id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, err := e.clients.CreateClient(ctx, &clientv1.CreateClientRequest{TenantId: "acme", Client: tt.in})
				wantCode(t, err, tt.code)
				if tt.code != codes.OK {
					if got := fieldOf(err); got != tt.field {
						t.Fatalf("error names field %q, want %q (%v)", got, tt.field, err)
					}
					return
				}
				if c.GetClientSecret() == "" || c.TokenEndpointAuthMethod != "client_secret_basic" ||
					!slices.Equal(c.GrantTypes, []string{"client_credentials"}) || !slices.Equal(c.Audience, []string{c.ClientId}) {
					t.Fatalf("unexpected client %v", c)
				}
				if tt.in.ClientId != "" && c.ClientId != tt.in.ClientId {
					t.Fatalf("client id %q, want %q", c.ClientId, tt.in.ClientId)
				}
			})
		}
	})
}

func TestDuplicateClientIDIsAlreadyExists(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		e.tenant(t, "acme")
		e.tenant(t, "globex")
		req := &clientv1.CreateClientRequest{TenantId: "acme", Client: &clientv1.Client{ClientId: "backend", AuthorizationServerId: "admin"}}
		if _, err := e.clients.CreateClient(e.admin(t, "acme"), req); err != nil {
			t.Fatal(err)
		}
		_, err := e.clients.CreateClient(e.admin(t, "acme"), req)
		wantCode(t, err, codes.AlreadyExists)
		// The same id in another tenant is another client.
		req.TenantId = "globex"
		if _, err := e.clients.CreateClient(e.admin(t, "globex"), req); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSecretIsShownOnlyAtCreateAndRotate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		e.tenant(t, "acme")
		ctx := e.admin(t, "acme")
		setUpWorkspace(t, e, ctx, "acme", "client_credentials")
		created, err := e.clients.CreateClient(ctx, &clientv1.CreateClientRequest{TenantId: "acme",
			Client: &clientv1.Client{AuthorizationServerId: "apps", Scopes: []string{"orders.read"}}})
		if err != nil {
			t.Fatal(err)
		}
		secret := created.GetClientSecret()
		if len(secret) < 43 {
			t.Fatalf("secret %q is shorter than 256 bits in base64url", secret)
		}
		auth := func(secret string) error {
			_, err := e.clients.AuthenticateClient(e.internal(t), &clientv1.AuthenticateClientRequest{
				TenantId: "acme", ServerId: "apps", ClientId: created.ClientId, ClientSecret: secret})
			return err
		}
		if err := auth(secret); err != nil {
			t.Fatalf("the new secret does not authenticate: %v", err)
		}

		got, err := e.clients.GetClient(ctx, &clientv1.GetClientRequest{TenantId: "acme", ClientId: created.ClientId})
		if err != nil {
			t.Fatal(err)
		}
		list, err := e.clients.ListClients(ctx, &clientv1.ListClientsRequest{TenantId: "acme", ServerId: "apps"})
		if err != nil {
			t.Fatal(err)
		}
		updated, err := e.clients.UpdateClient(ctx, &clientv1.UpdateClientRequest{TenantId: "acme", ClientId: created.ClientId,
			Client: &clientv1.Client{ClientName: "renamed"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"client_name"}}})
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]*clientv1.Client{"get": got, "list": list.Clients[0], "update": updated} {
			if c.ClientSecret != nil || strings.Contains(c.String(), secret) || strings.Contains(c.String(), "hmac") {
				t.Errorf("%s shows the secret or its hash: %v", name, c)
			}
		}

		rotated, err := e.clients.RotateClientSecret(ctx, &clientv1.RotateClientSecretRequest{TenantId: "acme", ClientId: created.ClientId})
		if err != nil {
			t.Fatal(err)
		}
		if rotated.ClientSecret == "" || rotated.ClientSecret == secret {
			t.Fatalf("rotation returned %q", rotated.ClientSecret)
		}
		if err := auth(secret); oauthCode(err) != "invalid_client" {
			t.Fatalf("the old secret still works after rotation: %v", err)
		}
		if err := auth(rotated.ClientSecret); err != nil {
			t.Fatalf("the rotated secret does not authenticate: %v", err)
		}
	})
}

func TestAuthenticateClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		e.tenant(t, "acme")
		e.tenant(t, "globex")
		ctx := e.admin(t, "acme")
		setUpWorkspace(t, e, ctx, "acme", "client_credentials", "password", "refresh_token")
		if _, err := e.clients.CreateTokenPolicy(ctx, &clientv1.CreateTokenPolicyRequest{TenantId: "acme",
			TokenPolicy: &clientv1.TokenPolicy{Id: "webhooks", AccessTokenTtl: durationpb.New(10 * time.Minute), AllowedScopes: []string{"*:webhooks/**"}}}); err != nil {
			t.Fatal(err)
		}
		conf, err := e.clients.CreateClient(ctx, &clientv1.CreateClientRequest{TenantId: "acme",
			Client: &clientv1.Client{AuthorizationServerId: "apps", TokenPolicyId: "webhooks"}})
		if err != nil {
			t.Fatal(err)
		}
		pub, err := e.clients.CreateClient(ctx, &clientv1.CreateClientRequest{TenantId: "acme",
			Client: &clientv1.Client{AuthorizationServerId: "apps", TokenEndpointAuthMethod: "none", GrantTypes: []string{"password", "refresh_token"}}})
		if err != nil {
			t.Fatal(err)
		}
		if pub.ClientSecret != nil {
			t.Fatalf("a public client got a secret")
		}
		_, err = e.clients.RotateClientSecret(ctx, &clientv1.RotateClientSecretRequest{TenantId: "acme", ClientId: pub.ClientId})
		wantCode(t, err, codes.InvalidArgument)

		tests := []struct {
			name                    string
			tenant, server, id, sec string
			ok                      bool
		}{
			{"confidential with its secret", "acme", "apps", conf.ClientId, conf.GetClientSecret(), true},
			{"public without a secret", "acme", "apps", pub.ClientId, "", true},
			{"wrong secret", "acme", "apps", conf.ClientId, conf.GetClientSecret() + "x", false},
			{"confidential without a secret", "acme", "apps", conf.ClientId, "", false},
			{"public with a secret", "acme", "apps", pub.ClientId, "anything", false},
			{"another workspace of the tenant", "acme", "admin", conf.ClientId, conf.GetClientSecret(), false},
			{"another tenant", "globex", "apps", conf.ClientId, conf.GetClientSecret(), false},
			{"unknown client", "acme", "apps", "nobody", "secret", false},
			{"empty client id", "acme", "apps", "", "", false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := e.clients.AuthenticateClient(e.internal(t), &clientv1.AuthenticateClientRequest{
					TenantId: tt.tenant, ServerId: tt.server, ClientId: tt.id, ClientSecret: tt.sec})
				if !tt.ok {
					wantCode(t, err, codes.Unauthenticated)
					if oauthCode(err) != "invalid_client" || status.Convert(err).Message() != "client authentication failed" {
						t.Fatalf("failure is not the one invalid_client answer: %v", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got.Client.ClientId != tt.id || got.Client.ClientSecret != nil {
					t.Fatalf("unexpected client %v", got.Client)
				}
				if tt.id == conf.ClientId && (got.TokenPolicy.GetId() != "webhooks" || got.TokenPolicy.AccessTokenTtl.AsDuration() != 10*time.Minute) {
					t.Fatalf("token policy missing or wrong: %v", got.TokenPolicy)
				}
			})
		}
	})
}

func TestTenantIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		e.tenant(t, "acme")
		e.tenant(t, "globex")
		c, err := e.clients.CreateClient(e.admin(t, "acme"), &clientv1.CreateClientRequest{TenantId: "acme",
			Client: &clientv1.Client{AuthorizationServerId: "admin"}})
		if err != nil {
			t.Fatal(err)
		}
		g := e.admin(t, "globex")
		calls := map[string]func() error{
			"get": func() error {
				_, err := e.clients.GetClient(g, &clientv1.GetClientRequest{TenantId: "globex", ClientId: c.ClientId})
				return err
			},
			"update": func() error {
				_, err := e.clients.UpdateClient(g, &clientv1.UpdateClientRequest{TenantId: "globex", ClientId: c.ClientId, Client: &clientv1.Client{}})
				return err
			},
			"rotate": func() error {
				_, err := e.clients.RotateClientSecret(g, &clientv1.RotateClientSecretRequest{TenantId: "globex", ClientId: c.ClientId})
				return err
			},
			"delete": func() error {
				_, err := e.clients.DeleteClient(g, &clientv1.DeleteClientRequest{TenantId: "globex", ClientId: c.ClientId})
				return err
			},
		}
		for name, call := range calls {
			t.Run(name, func(t *testing.T) { wantCode(t, call(), codes.NotFound) })
		}
		_, err = e.clients.GetClient(g, &clientv1.GetClientRequest{TenantId: "acme", ClientId: c.ClientId})
		wantCode(t, err, codes.PermissionDenied)
		list, err := e.clients.ListClients(g, &clientv1.ListClientsRequest{TenantId: "globex", ServerId: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		for _, lc := range list.Clients {
			if lc.ClientId == c.ClientId {
				t.Fatalf("globex lists acme's client")
			}
		}
		if _, err := e.clients.GetClient(e.admin(t, "acme"), &clientv1.GetClientRequest{TenantId: "acme", ClientId: c.ClientId}); err != nil {
			t.Fatalf("acme lost its client: %v", err)
		}
	})
}

func TestUpdateClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		e.tenant(t, "acme")
		ctx := e.admin(t, "acme")
		setUpWorkspace(t, e, ctx, "acme", "client_credentials", "password", "refresh_token")
		c, err := e.clients.CreateClient(ctx, &clientv1.CreateClientRequest{TenantId: "acme", Client: &clientv1.Client{
			AuthorizationServerId: "apps", ClientName: "app", Description: "d", GrantTypes: []string{"password"},
			Scopes: []string{"orders.read"}, Audience: []string{"https://api.example"}}})
		if err != nil {
			t.Fatal(err)
		}
		update := func(in *clientv1.Client, paths ...string) (*clientv1.Client, error) {
			req := &clientv1.UpdateClientRequest{TenantId: "acme", ClientId: c.ClientId, Client: in}
			if len(paths) > 0 {
				req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
			}
			return e.clients.UpdateClient(ctx, req)
		}

		got, err := update(&clientv1.Client{ClientName: "renamed", Description: "ignored", ClientId: c.ClientId, AuthorizationServerId: "apps"},
			"client_name", "client_id", "authorization_server_id")
		if err != nil {
			t.Fatal(err)
		}
		if got.ClientName != "renamed" || got.Description != "d" || !slices.Equal(got.Scopes, []string{"orders.read"}) {
			t.Fatalf("a masked update changed other fields: %v", got)
		}

		t.Run("invalid changes are refused and nothing is written", func(t *testing.T) {
			for _, tt := range []struct {
				in    *clientv1.Client
				paths []string
				field string
			}{
				{&clientv1.Client{Scopes: []string{"no.such.scope"}}, []string{"scopes"}, "scopes"},
				{&clientv1.Client{GrantTypes: []string{"implicit"}}, []string{"grant_types"}, "grant_types"},
				{&clientv1.Client{AuthorizationServerId: "admin"}, nil, "authorization_server_id"},
				{&clientv1.Client{ClientSecret: nil}, []string{"client_secret"}, "update_mask"},
				{&clientv1.Client{ClientId: "other"}, []string{"client_id"}, "client_id"},
				{&clientv1.Client{TokenPolicyId: "nope"}, []string{"token_policy_id"}, "token_policy_id"},
			} {
				_, err := update(tt.in, tt.paths...)
				wantCode(t, err, codes.InvalidArgument)
				if fieldOf(err) != tt.field {
					t.Fatalf("error names %q, want %q: %v", fieldOf(err), tt.field, err)
				}
			}
			now, _ := e.clients.GetClient(ctx, &clientv1.GetClientRequest{TenantId: "acme", ClientId: c.ClientId})
			if now.ClientName != "renamed" || !slices.Equal(now.Scopes, []string{"orders.read"}) {
				t.Fatalf("a refused update wrote: %v", now)
			}
		})

		t.Run("an empty mask replaces every mutable field", func(t *testing.T) {
			got, err := update(&clientv1.Client{ClientName: "full", AuthorizationServerId: "apps", ClientId: c.ClientId})
			if err != nil {
				t.Fatal(err)
			}
			if got.ClientName != "full" || got.Description != "" || len(got.Scopes) != 0 ||
				!slices.Equal(got.GrantTypes, []string{"client_credentials"}) || !slices.Equal(got.Audience, []string{c.ClientId}) {
				t.Fatalf("unexpected client after a full update: %v", got)
			}
		})

		t.Run("public and back: the secret goes, and a new one is shown once", func(t *testing.T) {
			pub, err := update(&clientv1.Client{TokenEndpointAuthMethod: "none", GrantTypes: []string{"password"}},
				"token_endpoint_auth_method", "grant_types")
			if err != nil {
				t.Fatal(err)
			}
			if pub.ClientSecret != nil {
				t.Fatal("a public client shows a secret")
			}
			if _, err := e.clients.AuthenticateClient(e.internal(t), &clientv1.AuthenticateClientRequest{
				TenantId: "acme", ServerId: "apps", ClientId: c.ClientId, ClientSecret: c.GetClientSecret()}); err == nil {
				t.Fatal("the old secret of a client made public still authenticates")
			}
			conf, err := update(&clientv1.Client{TokenEndpointAuthMethod: "client_secret_post"}, "token_endpoint_auth_method")
			if err != nil {
				t.Fatal(err)
			}
			if conf.GetClientSecret() == "" {
				t.Fatal("a client made confidential got no secret")
			}
			if _, err := e.clients.AuthenticateClient(e.internal(t), &clientv1.AuthenticateClientRequest{
				TenantId: "acme", ServerId: "apps", ClientId: c.ClientId, ClientSecret: conf.GetClientSecret()}); err != nil {
				t.Fatalf("the new secret does not authenticate: %v", err)
			}
		})
	})
}

func TestListAndDeleteClients(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		e.tenant(t, "acme")
		ctx := e.admin(t, "acme")
		setUpWorkspace(t, e, ctx, "acme", "client_credentials")
		var want []string
		for i := range 5 {
			id := fmt.Sprintf("c%d", i)
			want = append(want, id)
			if _, err := e.clients.CreateClient(ctx, &clientv1.CreateClientRequest{TenantId: "acme",
				Client: &clientv1.Client{ClientId: id, AuthorizationServerId: "apps"}}); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		token := ""
		for {
			page, err := e.clients.ListClients(ctx, &clientv1.ListClientsRequest{TenantId: "acme", ServerId: "apps", PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page.Clients {
				got = append(got, c.ClientId)
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("paged list %v, want %v", got, want)
		}
		_, err := e.clients.ListClients(ctx, &clientv1.ListClientsRequest{TenantId: "acme", ServerId: "nope"})
		wantCode(t, err, codes.NotFound)
		_, err = e.clients.ListClients(ctx, &clientv1.ListClientsRequest{TenantId: "acme", ServerId: "admin", PageToken: "garbage"})
		wantCode(t, err, codes.InvalidArgument)

		if _, err := e.clients.DeleteClient(ctx, &clientv1.DeleteClientRequest{TenantId: "acme", ClientId: "c0"}); err != nil {
			t.Fatal(err)
		}
		_, err = e.clients.DeleteClient(ctx, &clientv1.DeleteClientRequest{TenantId: "acme", ClientId: "c0"})
		wantCode(t, err, codes.NotFound)

		if _, err := e.clients.DeleteServerClients(e.internal(t), &clientv1.DeleteServerClientsRequest{TenantId: "acme", ServerId: "apps"}); err != nil {
			t.Fatal(err)
		}
		page, err := e.clients.ListClients(ctx, &clientv1.ListClientsRequest{TenantId: "acme", ServerId: "apps"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Clients) != 0 {
			t.Fatalf("after DeleteServerClients: %v", page.Clients)
		}
		_, err = e.clients.DeleteServerClients(e.internal(t), &clientv1.DeleteServerClientsRequest{TenantId: "acme", ServerId: "admin"})
		wantCode(t, err, codes.InvalidArgument)
		admins, err := e.clients.ListClients(ctx, &clientv1.ListClientsRequest{TenantId: "acme", ServerId: "admin"})
		if err != nil || len(admins.Clients) != 1 {
			t.Fatalf("the admin workspace's client should remain: %v %v", admins, err)
		}
	})
}

func TestTokenPolicies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		e.tenant(t, "acme")
		ctx := e.admin(t, "acme")
		create := func(p *clientv1.TokenPolicy) (*clientv1.TokenPolicy, error) {
			return e.clients.CreateTokenPolicy(ctx, &clientv1.CreateTokenPolicyRequest{TenantId: "acme", TokenPolicy: p})
		}
		p, err := create(&clientv1.TokenPolicy{Id: "webhooks", Title: "Webhooks", AccessTokenTtl: durationpb.New(600 * time.Second),
			RefreshTokenTtl: durationpb.New(7776000 * time.Second), AllowedScopes: []string{"*:webhooks/**"}})
		if err != nil {
			t.Fatal(err)
		}
		if p.AccessTokenTtl.AsDuration() != 10*time.Minute || !slices.Equal(p.AllowedScopes, []string{"*:webhooks/**"}) {
			t.Fatalf("unexpected policy %v", p)
		}

		t.Run("validation", func(t *testing.T) {
			for _, tt := range []struct {
				name  string
				in    *clientv1.TokenPolicy
				code  codes.Code
				field string
			}{
				{"generated id", &clientv1.TokenPolicy{Title: "x"}, codes.OK, ""},
				{"duplicate id", &clientv1.TokenPolicy{Id: "webhooks"}, codes.AlreadyExists, ""},
				{"negative lifetime", &clientv1.TokenPolicy{Id: "neg", AccessTokenTtl: durationpb.New(-5 * time.Second)}, codes.InvalidArgument, "access_token_ttl"},
				{"lifetime too long", &clientv1.TokenPolicy{Id: "long", RefreshTokenTtl: durationpb.New(100 * 365 * 24 * time.Hour)}, codes.InvalidArgument, "refresh_token_ttl"},
				{"bad id", &clientv1.TokenPolicy{Id: "Bad Id"}, codes.InvalidArgument, "id"},
				{"pattern with a space", &clientv1.TokenPolicy{Id: "sp", AllowedScopes: []string{"a b"}}, codes.InvalidArgument, "allowed_scopes"},
				{"empty pattern", &clientv1.TokenPolicy{Id: "em", AllowedScopes: []string{""}}, codes.InvalidArgument, "allowed_scopes"},
				{"three stars", &clientv1.TokenPolicy{Id: "st", AllowedScopes: []string{"a/***"}}, codes.InvalidArgument, "allowed_scopes"},
			} {
				t.Run(tt.name, func(t *testing.T) {
					_, err := create(tt.in)
					wantCode(t, err, tt.code)
					if tt.field != "" && fieldOf(err) != tt.field {
						t.Fatalf("error names %q, want %q", fieldOf(err), tt.field)
					}
				})
			}
		})

		got, err := e.clients.UpdateTokenPolicy(ctx, &clientv1.UpdateTokenPolicyRequest{TenantId: "acme", TokenPolicyId: "webhooks",
			TokenPolicy: &clientv1.TokenPolicy{Id: "webhooks", Title: "Webhooks", AccessTokenTtl: durationpb.New(300 * time.Second), AllowedScopes: []string{"*:webhooks/**"}}})
		if err != nil {
			t.Fatal(err)
		}
		if got.AccessTokenTtl.AsDuration() != 5*time.Minute || got.RefreshTokenTtl != nil {
			t.Fatalf("a full update should set access and clear refresh: %v", got)
		}
		_, err = e.clients.UpdateTokenPolicy(ctx, &clientv1.UpdateTokenPolicyRequest{TenantId: "acme", TokenPolicyId: "webhooks",
			TokenPolicy: &clientv1.TokenPolicy{Id: "other"}})
		wantCode(t, err, codes.InvalidArgument)

		list, err := e.clients.ListTokenPolicies(ctx, &clientv1.ListTokenPoliciesRequest{TenantId: "acme", PageSize: 1})
		if err != nil || len(list.TokenPolicies) != 1 || list.NextPageToken == "" {
			t.Fatalf("first page of policies: %v %v", list, err)
		}

		c, err := e.clients.CreateClient(ctx, &clientv1.CreateClientRequest{TenantId: "acme",
			Client: &clientv1.Client{AuthorizationServerId: "admin", TokenPolicyId: "webhooks"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.clients.DeleteTokenPolicy(ctx, &clientv1.DeleteTokenPolicyRequest{TenantId: "acme", TokenPolicyId: "webhooks"})
		wantCode(t, err, codes.AlreadyExists)
		if _, err := e.clients.DeleteClient(ctx, &clientv1.DeleteClientRequest{TenantId: "acme", ClientId: c.ClientId}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.clients.DeleteTokenPolicy(ctx, &clientv1.DeleteTokenPolicyRequest{TenantId: "acme", TokenPolicyId: "webhooks"}); err != nil {
			t.Fatal(err)
		}
		_, err = e.clients.GetTokenPolicy(ctx, &clientv1.GetTokenPolicyRequest{TenantId: "acme", TokenPolicyId: "webhooks"})
		wantCode(t, err, codes.NotFound)
	})
}

func TestDeleteTenantData(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		e.tenant(t, "acme")
		ctx := e.admin(t, "acme")
		c, err := e.clients.CreateClient(ctx, &clientv1.CreateClientRequest{TenantId: "acme", Client: &clientv1.Client{AuthorizationServerId: "admin"}})
		if err != nil {
			t.Fatal(err)
		}
		// Internal: no caller but the platform itself may wipe a tenant's clients.
		for name, c := range map[string]struct {
			ctx  context.Context
			want codes.Code
		}{
			"no token":                 {context.Background(), codes.Unauthenticated},
			"the operator's token":     {e.operator(t), codes.PermissionDenied},
			"the tenant's admin token": {ctx, codes.PermissionDenied},
		} {
			_, err := e.clients.DeleteTenantData(c.ctx, &clientv1.DeleteTenantDataRequest{TenantId: "acme"})
			if status.Code(err) != c.want {
				t.Fatalf("DeleteTenantData with %s: %v, want %s", name, err, c.want)
			}
		}
		if _, err := e.clients.AuthenticateClient(e.internal(t), &clientv1.AuthenticateClientRequest{TenantId: "acme",
			ServerId: "admin", ClientId: c.ClientId, ClientSecret: c.GetClientSecret()}); err != nil {
			t.Fatalf("the tenant's clients were touched by a refused call: %v", err)
		}
		if _, err := e.clients.DeleteTenantData(e.internal(t), &clientv1.DeleteTenantDataRequest{TenantId: "acme"}); err != nil {
			t.Fatal(err)
		}
		_, err = e.clients.AuthenticateClient(e.internal(t), &clientv1.AuthenticateClientRequest{TenantId: "acme",
			ServerId: "admin", ClientId: c.ClientId, ClientSecret: c.GetClientSecret()})
		wantCode(t, err, codes.Unauthenticated)
		_, err = e.clients.DeleteTenantData(e.internal(t), &clientv1.DeleteTenantDataRequest{TenantId: "root"})
		wantCode(t, err, codes.InvalidArgument)
	})
}

package app_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	accessv1 "github.com/authplane/authplane/gen/go/authplane/access/v1"
	_ "github.com/authplane/authplane/gen/go/authplane/client/v1"
	_ "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	_ "github.com/authplane/authplane/gen/go/authplane/schema/v1"
	_ "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	_ "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/testenv"
)

// These tests follow the token lifecycle onto the planes: a client's deletion, narrowing and registration again
// reach its admin-plane tokens at once; the internal plane answers only the platform's own credential; and ends
// of sessions and clients reach the verifiers of another process.

// mustCall is CallJSON that fails the test unless the status is want.
func mustCall(t *testing.T, env *testenv.Env, method, path, token string, body, out any, want int) {
	t.Helper()
	if code := env.CallJSON(t, method, path, token, body, out); code != want {
		t.Fatalf("%s %s: status %d, want %d", method, path, code, want)
	}
}

// adminClient registers a client of the tenant's admin workspace under id with the given scopes and returns its
// secret.
func adminClient(t *testing.T, env *testenv.Env, tn *testenv.Tenant, id string, scopes ...string) string {
	t.Helper()
	_, secret := env.CreateClient(t, tn.ID, tn.AdminToken, map[string]any{"client_id": id, "authorization_server_id": "admin",
		"client_name": id, "grant_types": []string{"client_credentials"}, "scopes": scopes})
	return secret
}

// adminWrite tries to create workspace id (id-rest over REST, id-grpc over gRPC) with tok and returns the HTTP
// status and the gRPC code.
func adminWrite(t *testing.T, env *testenv.Env, tenant, tok, id string) (int, codes.Code) {
	t.Helper()
	code := env.CallJSON(t, "POST", "/api/admin/"+tenant+"/servers", tok, map[string]any{"id": id + "-rest", "grant_types": []string{"client_credentials"}}, nil)
	_, err := workspacev1.NewWorkspaceServiceClient(env.GRPC).CreateServer(testenv.WithToken(context.Background(), tok),
		&workspacev1.CreateServerRequest{TenantId: tenant, Server: &workspacev1.Server{Id: id + "-grpc", GrantTypes: []string{"client_credentials"}}})
	return code, status.Code(err)
}

// untilNextSecond waits for the start of the next whole second, so that what follows, if quick, happens within
// one second: token times (iat) have a resolution of one second.
func untilNextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now))
}

func TestClientChangesReachItsAdminTokensAtOnce(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		acme := env.NewTenant(t, "acme")
		read := adminCall("acme")

		t.Run("narrowed to read_configuration, its earlier tokens with manage_configuration no longer write", func(t *testing.T) {
			secret := adminClient(t, env, acme, "deputy", "manage_configuration", "read_configuration")
			full := env.Token(t, "acme", "admin", "deputy", secret)
			readOnly := env.Token(t, "acme", "admin", "deputy", secret, "read_configuration")
			if code, grpcCode := adminWrite(t, env, "acme", full, "before-narrowing"); code != http.StatusCreated || grpcCode != codes.OK {
				t.Fatalf("a write before the narrowing: REST %d, gRPC %s", code, grpcCode)
			}
			mustOpen(t, env, env.GRPC, read, readOnly, "a read-only token before the narrowing")

			mustCall(t, env, "PUT", "/api/admin/acme/clients/deputy", acme.AdminToken, map[string]any{"scopes": []string{"read_configuration"}}, nil, http.StatusOK)

			code, grpcCode := adminWrite(t, env, "acme", full, "after-narrowing")
			if (code != http.StatusUnauthorized && code != http.StatusForbidden) ||
				(grpcCode != codes.Unauthenticated && grpcCode != codes.PermissionDenied) {
				t.Fatalf("a write with the earlier manage_configuration token: REST %d, gRPC %s; want 401/403, Unauthenticated/PermissionDenied", code, grpcCode)
			}
			for _, id := range []string{"after-narrowing-rest", "after-narrowing-grpc"} {
				mustCall(t, env, "GET", "/api/admin/acme/servers/"+id, acme.AdminToken, nil, nil, http.StatusNotFound)
			}
			mustOpen(t, env, env.GRPC, read, readOnly, "the earlier read-only token after the narrowing")
			fresh := env.Token(t, "acme", "admin", "deputy", secret)
			mustOpen(t, env, env.GRPC, read, fresh, "a token of the narrowed client")
			if code, grpcCode := adminWrite(t, env, "acme", fresh, "by-narrowed-client"); code != http.StatusForbidden || grpcCode != codes.PermissionDenied {
				t.Fatalf("a write with a token of the narrowed client: REST %d, gRPC %s; want 403, PermissionDenied", code, grpcCode)
			}
		})

		t.Run("deleted, its token is refused at once, and registered again under its id it does not revive it", func(t *testing.T) {
			secret := adminClient(t, env, acme, "phoenix", "manage_configuration", "read_configuration")
			// Issued, deleted and registered again within one second: the old token must still be told from
			// the new client's.
			untilNextSecond()
			tok := env.Token(t, "acme", "admin", "phoenix", secret)
			mustOpen(t, env, env.GRPC, read, tok, "the client's token") // its standing is cached now
			mustCall(t, env, "DELETE", "/api/admin/acme/clients/phoenix", acme.AdminToken, nil, nil, http.StatusNoContent)
			if !isRefused(t, env, env.GRPC, read, tok) {
				t.Fatal("the deleted client's token still opens the admin plane (want REST 401, gRPC Unauthenticated)")
			}
			again := adminClient(t, env, acme, "phoenix", "manage_configuration", "read_configuration")
			if !isRefused(t, env, env.GRPC, read, tok) {
				t.Fatal("the deleted client's token opens the admin plane again once its id is registered again")
			}
			if code, grpcCode := adminWrite(t, env, "acme", tok, "by-old-phoenix"); code != http.StatusUnauthorized || grpcCode != codes.Unauthenticated {
				t.Fatalf("a write with the old token: REST %d, gRPC %s; want 401, Unauthenticated", code, grpcCode)
			}
			mustOpen(t, env, env.GRPC, read, env.Token(t, "acme", "admin", "phoenix", again), "a token of the client registered again")
		})
	})
}

// internalMethods lists every RPC of the platform's protos whose plane is PLANE_INTERNAL.
func internalMethods(t *testing.T) []protoreflect.MethodDescriptor {
	t.Helper()
	var out []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(f.Package()), "authplane.") {
			return true
		}
		for i := 0; i < f.Services().Len(); i++ {
			methods := f.Services().Get(i).Methods()
			for j := 0; j < methods.Len(); j++ {
				m := methods.Get(j)
				if proto.GetExtension(m.Options(), accessv1.E_Plane).(accessv1.Plane) == accessv1.Plane_PLANE_INTERNAL {
					out = append(out, m)
				}
			}
		}
		return true
	})
	return out
}

func fullName(m protoreflect.MethodDescriptor) string {
	return "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
}

// invoke calls m on env's gRPC server with a request naming tenant, its other fields empty unless args fills
// them, and returns the error.
func invoke(t *testing.T, ctx context.Context, env *testenv.Env, m protoreflect.MethodDescriptor, tenant string, args func(protoreflect.Message)) error {
	t.Helper()
	in, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
	if err != nil {
		t.Fatal(err)
	}
	out, err := protoregistry.GlobalTypes.FindMessageByName(m.Output().FullName())
	if err != nil {
		t.Fatal(err)
	}
	req := in.New()
	if f := m.Input().Fields().ByName("tenant_id"); f != nil {
		req.Set(f, protoreflect.ValueOfString(tenant))
	}
	if args != nil {
		args(req)
	}
	return env.GRPC.Invoke(ctx, fullName(m), req.Interface(), out.New().Interface())
}

// setStrings sets string fields of a request by name.
func setStrings(fields map[string]string) func(protoreflect.Message) {
	return func(m protoreflect.Message) {
		for name, v := range fields {
			m.Set(m.Descriptor().Fields().ByName(protoreflect.Name(name)), protoreflect.ValueOfString(v))
		}
	}
}

// foreignInternal is the internal credential of a platform with another master key.
func foreignInternal(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	k, err := secrets.NewKeyring(master)
	if err != nil {
		t.Fatal(err)
	}
	return internalcall.New(k, "intruder").Outgoing(ctx)
}

func TestInternalPlaneAnswersOnlyThePlatform(t *testing.T) {
	methods := internalMethods(t)
	names := map[string]bool{}
	for _, m := range methods {
		names[fullName(m)] = true
		if proto.HasExtension(m.Options(), annotations.E_Http) {
			t.Errorf("internal RPC %s has a REST route", fullName(m))
		}
	}
	// The contract's internal calls, so that a broken enumeration cannot pass by finding nothing.
	for _, want := range []string{
		"/authplane.workspace.v1.WorkspaceService/GetServerMetadata", "/authplane.workspace.v1.WorkspaceService/ProvisionTenant",
		"/authplane.client.v1.ClientService/AuthenticateClient", "/authplane.client.v1.ClientService/GetClientAccess",
		"/authplane.client.v1.ClientService/DeleteServerClients", "/authplane.token.v1.TokenService/ListRevokedTokens",
		"/authplane.token.v1.TokenService/EndUserSessions", "/authplane.pool.v1.PoolService/PoolExists",
	} {
		if !names[want] {
			t.Errorf("%s is not on the internal plane", want)
		}
	}

	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		acme := env.NewTenant(t, "acme")
		mustCall(t, env, "POST", "/api/admin/acme/servers", acme.AdminToken, map[string]any{"id": "shop", "grant_types": []string{"client_credentials"}}, nil, http.StatusCreated)
		bg := context.Background()
		refused := []struct {
			name string
			ctx  context.Context
			want codes.Code
		}{
			{"no token", bg, codes.Unauthenticated},
			{"a tenant admin token", testenv.WithToken(bg, acme.AdminToken), codes.PermissionDenied},
			{"a tenant system token", testenv.WithToken(bg, acme.SystemToken), codes.PermissionDenied},
			{"the operator token", testenv.WithToken(bg, env.RootToken(t)), codes.PermissionDenied},
			{"the internal credential of another master key", foreignInternal(t, bg), codes.PermissionDenied},
		}
		// Lookups whose handlers refuse made-up arguments themselves get real ones, so that with the internal
		// credential they answer, and without it only the caller can be why they refuse.
		realArgs := map[string]func(protoreflect.Message){
			"/authplane.client.v1.ClientService/AuthenticateClient": setStrings(map[string]string{
				"server_id": "admin", "client_id": acme.AdminID, "client_secret": acme.AdminSecret}),
		}
		for _, m := range methods {
			t.Run(string(m.Parent().Name())+"."+string(m.Name()), func(t *testing.T) {
				args := realArgs[fullName(m)]
				for _, r := range refused {
					if err := invoke(t, r.ctx, env, m, "acme", args); status.Code(err) != r.want {
						t.Errorf("%s: %v, want %s", r.name, err, r.want)
					}
				}
				// The platform's own credential passes the plane: on a tenant that does not exist, so that the
				// fan-out RPCs touch nothing, unless the RPC is a lookup with real arguments.
				tenant := "ghost"
				if args != nil {
					tenant = "acme"
				}
				if err := invoke(t, env.Internal(t, bg), env, m, tenant, args); status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unauthenticated {
					t.Errorf("the internal credential: %v", err)
				}
			})
		}

		t.Run("GetServerMetadata shows nothing without the credential", func(t *testing.T) {
			workspaces := workspacev1.NewWorkspaceServiceClient(env.GRPC)
			req := &workspacev1.GetServerMetadataRequest{TenantId: "acme", ServerId: "shop"}
			md, err := workspaces.GetServerMetadata(env.Internal(t, bg), req)
			if err != nil || md.GetUid() == "" || md.GetServerId() != "shop" {
				t.Fatalf("with the internal credential: %v %v", md, err)
			}
			for _, r := range refused {
				got, err := workspaces.GetServerMetadata(r.ctx, req)
				st := status.Convert(err)
				if got != nil || st.Code() != r.want || strings.Contains(prototext.Format(st.Proto()), md.GetUid()) {
					t.Errorf("%s: answer %v, status %v", r.name, got, prototext.Format(st.Proto()))
				}
			}
		})
	})
}

// TestSessionAndClientEndsReachAnotherProcess: two processes share a PostgreSQL database. A user made inactive
// through the first ends the user's session in the second's introspection and userinfo; a client deleted
// through the first has its admin token refused by the second's admin plane.
func TestSessionAndClientEndsReachAnotherProcess(t *testing.T) {
	a := testenv.Start(t, testenv.WithBackend(testenv.Postgres))
	b := testenv.Start(t, testenv.WithDatabase(a.DatabaseURL, a.MasterKey), testenv.WithIssuer(a.HTTPURL), testenv.WithRootSecret(a.RootSecret))
	acme := a.NewTenant(t, "acme")
	identity := "/api/identity/acme/system"
	mustCall(t, a, "POST", "/api/admin/acme/servers", acme.AdminToken, map[string]any{"id": "shop",
		"grant_types": []string{"password", "refresh_token", "client_credentials"}}, nil, http.StatusCreated)
	mustCall(t, a, "POST", identity+"/pools", acme.SystemToken, map[string]any{"id": "people", "authentication_mechanisms": []string{"password"},
		"password_settings": map[string]any{"hashing_method": "argon2id", "argon2": map[string]any{"memory_kib": 8192, "iterations": 1, "parallelism": 1}}},
		nil, http.StatusCreated)
	mustCall(t, a, "POST", "/api/admin/acme/servers/shop/idps/identity_pool", acme.AdminToken, map[string]any{"name": "People", "identity_pool_id": "people"}, nil, http.StatusCreated)
	var user struct{ ID string }
	mustCall(t, a, "POST", identity+"/pools/people/users", acme.SystemToken, map[string]any{"status": "active",
		"identifiers": []map[string]string{{"type": "email", "identifier": "jane@example.com"}},
		"credentials": []map[string]string{{"type": "password", "password": "Jane-passphrase-1"}}}, &user, http.StatusCreated)
	appID, appSecret := a.CreateClient(t, "acme", acme.AdminToken, map[string]any{"authorization_server_id": "shop",
		"grant_types": []string{"password", "refresh_token"}, "scopes": []string{"openid", "offline_access"}})
	rsID, rsSecret := a.CreateClient(t, "acme", acme.AdminToken, map[string]any{"authorization_server_id": "shop",
		"grant_types": []string{"client_credentials"}, "scopes": []string{"introspect_tokens"}})

	cfg := oauth2.Config{ClientID: appID, ClientSecret: appSecret, Scopes: []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{TokenURL: a.Issuer("acme", "shop") + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, err := cfg.PasswordCredentialsToken(context.WithValue(context.Background(), oauth2.HTTPClient, a.HTTP), "jane@example.com", "Jane-passphrase-1")
	if err != nil {
		t.Fatal(err)
	}
	introspectionSays := func(env *testenv.Env) bool {
		t.Helper()
		req, _ := http.NewRequest("POST", env.Issuer("acme", "shop")+"/oauth2/introspect", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(rsID, rsSecret)
		var out struct{ Active bool }
		resp, err := env.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("introspection: %d", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out.Active
	}
	userinfo := func(env *testenv.Env) int {
		t.Helper()
		req, _ := http.NewRequest("GET", env.Issuer("acme", "shop")+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		r, err := env.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	// Both processes hold the token's standing in memory before the change.
	for _, env := range []*testenv.Env{a, b} {
		if !introspectionSays(env) || userinfo(env) != http.StatusOK {
			t.Fatal("the fresh session's access token is refused")
		}
	}
	mustCall(t, a, "PUT", identity+"/pools/people/users/"+user.ID, acme.SystemToken, map[string]any{"status": "inactive"}, nil, http.StatusOK)
	waitFor(t, func() bool { return !introspectionSays(b) && userinfo(b) == http.StatusUnauthorized })

	deputy := adminClient(t, a, acme, "deputy", "manage_configuration", "read_configuration")
	dtok := a.Token(t, "acme", "admin", "deputy", deputy)
	read := adminCall("acme")
	mustOpen(t, b, b.GRPC, read, dtok, "the deputy's token in the second process")
	mustCall(t, a, "DELETE", "/api/admin/acme/clients/deputy", acme.AdminToken, nil, nil, http.StatusNoContent)
	waitFor(t, func() bool { return isRefused(t, b, b.GRPC, read, dtok) })
}

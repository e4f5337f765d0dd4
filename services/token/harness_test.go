package token

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"gorm.io/gorm"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/inproc"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/metrics"
	"github.com/authplane/authplane/pkg/scopes"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testdb"
)

// These unit tests run the token service against stand-ins of the workspace and client services (registered on
// an in-process connection, so the calls are the same generated clients) and a real database.

const issuerBase = "http://localhost:8080"

type fakeWorkspaces struct {
	workspacev1.UnimplementedWorkspaceServiceServer
	mu      sync.Mutex
	servers map[string]*workspacev1.ServerMetadata // tenant/server
	calls   atomic.Int64
}

func (f *fakeWorkspaces) put(md *workspacev1.ServerMetadata) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers[md.TenantId+"/"+md.ServerId] = md
}

func (f *fakeWorkspaces) GetServerMetadata(_ context.Context, req *workspacev1.GetServerMetadataRequest) (*workspacev1.ServerMetadata, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	md, ok := f.servers[req.TenantId+"/"+req.ServerId]
	if !ok {
		return nil, apierr.NotFound("server %q not found", req.ServerId)
	}
	return proto.Clone(md).(*workspacev1.ServerMetadata), nil
}

type fakeClients struct {
	clientv1.UnimplementedClientServiceServer
	mu       sync.Mutex
	clients  map[string]*clientv1.Client // tenant/client, with the secret in ClientSecret
	policies map[string]*clientv1.TokenPolicy
	calls    atomic.Int64
}

func (f *fakeClients) put(c *clientv1.Client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clients[c.TenantId+"/"+c.ClientId] = c
}

func (f *fakeClients) putPolicy(p *clientv1.TokenPolicy) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.policies[p.TenantId+"/"+p.Id] = p
}

func (f *fakeClients) AuthenticateClient(_ context.Context, req *clientv1.AuthenticateClientRequest) (*clientv1.AuthenticatedClient, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clients[req.TenantId+"/"+req.ClientId]
	if !ok || c.AuthorizationServerId != req.ServerId || c.GetClientSecret() != req.ClientSecret {
		return nil, apierr.Unauthenticated("client authentication failed")
	}
	out := &clientv1.AuthenticatedClient{Client: proto.Clone(c).(*clientv1.Client)}
	out.Client.ClientSecret = nil
	if c.TokenPolicyId != "" {
		out.TokenPolicy = f.policies[c.TenantId+"/"+c.TokenPolicyId]
	}
	return out, nil
}

func (f *fakeClients) GetClientAccess(_ context.Context, req *clientv1.GetClientAccessRequest) (*clientv1.AuthenticatedClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clients[req.TenantId+"/"+req.ClientId]
	if !ok {
		return nil, apierr.NotFound("client %q not found", req.ClientId)
	}
	out := &clientv1.AuthenticatedClient{Client: proto.Clone(c).(*clientv1.Client)}
	if c.TokenPolicyId != "" {
		out.TokenPolicy = f.policies[c.TenantId+"/"+c.TokenPolicyId]
	}
	return out, nil
}

type harness struct {
	svc     *Service
	deps    svc.Deps
	db      *db.DB
	bus     *changes.Bus
	ws      *fakeWorkspaces
	clients *fakeClients
}

func newKeyring(t testing.TB) *secrets.Keyring {
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	k, err := secrets.NewKeyring(master)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sqliteURL(t testing.TB) string { return "sqlite:" + t.TempDir() + "/token.db" }

// forEachDB runs fn on SQLite and on a fresh PostgreSQL database, which is skipped when unreachable unless
// AUTHPLANE_TEST_POSTGRES_REQUIRED is set (testdb.Postgres).
func forEachDB(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteURL(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, testdb.Postgres(t)) })
}

func openDB(t testing.TB, url string) *db.DB {
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// newHarness starts the token service on url with workspace acme/orders (client_credentials, 1h tokens) and a
// confidential client cli-1 with scopes orders.read and orders.write.
func newHarness(t testing.TB, url string) *harness {
	t.Helper()
	h := &harness{
		db:      openDB(t, url),
		bus:     changes.NewMemory(),
		ws:      &fakeWorkspaces{servers: map[string]*workspacev1.ServerMetadata{}},
		clients: &fakeClients{clients: map[string]*clientv1.Client{}, policies: map[string]*clientv1.TokenPolicy{}},
	}
	conn := inproc.New(nil)
	workspacev1.RegisterWorkspaceServiceServer(conn, h.ws)
	clientv1.RegisterClientServiceServer(conn, h.clients)
	keyring := newKeyring(t)
	h.deps = svc.Deps{
		DB: h.db, Bus: h.bus, Keyring: keyring, Metrics: metrics.New(), IssuerURL: issuerBase,
		Internal: internalcall.New(keyring, "token"),
		Conns:    svc.Conns{Workspace: conn, Client: conn},
	}
	h.deps.Verifier = harnessVerifier(h)
	s, err := New(context.Background(), h.deps)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = s
	h.ws.put(&workspacev1.ServerMetadata{
		TenantId: "acme", ServerId: "orders", Uid: "orders-1", Type: "regular",
		GrantTypes:     []string{"client_credentials", "password", "refresh_token"},
		AccessTokenTtl: durationpb.New(time.Hour), Scopes: []string{"openid", "orders.read", "orders.write"},
	})
	h.clients.put(&clientv1.Client{
		ClientId: "cli-1", TenantId: "acme", AuthorizationServerId: "orders", GrantTypes: []string{"client_credentials"},
		TokenEndpointAuthMethod: "client_secret_basic", Scopes: []string{"orders.read", "orders.write"},
		ClientSecret: proto.String("secret-1"),
	})
	return h
}

// queryCounter counts every statement gorm runs on a database.
type queryCounter struct{ n atomic.Int64 }

func countQueries(t testing.TB, d *db.DB) *queryCounter {
	c := &queryCounter{}
	count := func(*gorm.DB) { c.n.Add(1) }
	cb := d.Callback()
	for name, err := range map[string]error{
		"query":  cb.Query().Before("gorm:query").Register("test:count_query", count),
		"create": cb.Create().Before("gorm:create").Register("test:count_create", count),
		"update": cb.Update().Before("gorm:update").Register("test:count_update", count),
		"delete": cb.Delete().Before("gorm:delete").Register("test:count_delete", count),
		"row":    cb.Row().Before("gorm:row").Register("test:count_row", count),
		"raw":    cb.Raw().Before("gorm:raw").Register("test:count_raw", count),
	} {
		if err != nil {
			t.Fatalf("register %s callback: %v", name, err)
		}
	}
	return c
}

// harnessVerifier is the verifier a process builds (pkg/app), over this harness's token service and fake client
// service: the service's own JWKS and denylist, and the clients' current registrations.
func harnessVerifier(h *harness) *authz.Verifier {
	keys := func(ctx context.Context, tenant, server string) (*jose.JSONWebKeySet, error) {
		resp, err := h.svc.GetJWKS(ctx, &tokenv1.GetJWKSRequest{TenantId: tenant, ServerId: server})
		if err != nil {
			return nil, err
		}
		raw, _ := json.Marshal(map[string]any{"keys": resp.Keys})
		var set jose.JSONWebKeySet
		return &set, json.Unmarshal(raw, &set)
	}
	revocations := func(ctx context.Context, tenant string) (*authz.Denylist, error) {
		resp, err := h.svc.ListRevokedTokens(ctx, &tokenv1.ListRevokedTokensRequest{TenantId: tenant})
		if err != nil {
			return nil, err
		}
		d := &authz.Denylist{}
		for _, r := range resp.Revoked {
			d.Tokens = append(d.Tokens, authz.RevokedToken{JTI: r.Jti, Expiry: r.ExpiresAt.AsTime()})
		}
		for _, r := range resp.EndedSessions {
			d.Sessions = append(d.Sessions, authz.RevokedToken{JTI: r.SessionId, Expiry: r.ExpiresAt.AsTime()})
		}
		return d, nil
	}
	clients := func(ctx context.Context, tenant, client string) (*authz.ClientAccess, error) {
		ac, err := h.clients.GetClientAccess(ctx, &clientv1.GetClientAccessRequest{TenantId: tenant, ClientId: client})
		if err != nil {
			return nil, nil //nolint:nilerr // NotFound: the client is gone
		}
		return &authz.ClientAccess{
			Registered: ac.GetClient().GetCreatedAt().AsTime().UnixMicro(),
			Scopes:     scopes.NewRule(ac.GetClient().GetScopes(), ac.GetTokenPolicy().GetAllowedScopes()),
		}, nil
	}
	return authz.NewVerifier(issuerBase, keys, h.bus, authz.WithRevocations(revocations), authz.WithClients(clients),
		authz.WithInternal(h.deps.Internal))
}

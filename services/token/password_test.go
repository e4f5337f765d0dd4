package token

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/inproc"
)

// fakePool answers AuthenticatePassword with what the test sets, and records the bearer tokens it is called with.
type fakePool struct {
	poolv1.UnimplementedPoolServiceServer
	mu      sync.Mutex
	answers []fakeAnswer // one per call; the last repeats
	bearers []string
}

type fakeAnswer struct {
	result string
	err    error
}

func (f *fakePool) AuthenticatePassword(ctx context.Context, req *poolv1.AuthenticatePasswordRequest) (*poolv1.AuthenticatePasswordResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bearers = append(f.bearers, authz.BearerToken(ctx))
	a := f.answers[0]
	if len(f.answers) > 1 {
		f.answers = f.answers[1:]
	}
	if a.err != nil {
		return nil, a.err
	}
	resp := &poolv1.AuthenticatePasswordResponse{Result: a.result}
	if a.result == "password_correct" {
		resp.User = &poolv1.User{Id: "user-1", TenantId: req.TenantId, PoolId: req.PoolId, Status: "active",
			Identifiers: []*poolv1.UserIdentifier{{Type: "email", Identifier: req.Identifier}}}
	}
	return resp, nil
}

func (f *fakePool) set(answers ...fakeAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers, f.bearers = answers, nil
}

func (f *fakePool) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bearers...)
}

// newPasswordHarness adds to newHarness a pool source on acme/orders, the tenant's system workspace, a client
// with the password grant, and a stand-in pool service.
func newPasswordHarness(t *testing.T) (*harness, *fakePool) {
	h := newHarness(t, sqliteURL(t))
	pool := &fakePool{}
	conn := inproc.New(nil)
	poolv1.RegisterPoolServiceServer(conn, pool)
	h.svc.poolAPI = poolv1.NewPoolServiceClient(conn)
	h.ws.put(&workspacev1.ServerMetadata{
		TenantId: "acme", ServerId: "orders", Uid: "orders-1", Type: "regular",
		GrantTypes:     []string{"client_credentials", "password"},
		AccessTokenTtl: durationpb.New(time.Hour), Scopes: []string{"openid", "orders.read"},
		IdentitySources: []*workspacev1.IdentitySource{{Id: "src-1", Method: "identity_pool", IdentityPoolId: "p1"}},
	})
	h.ws.put(&workspacev1.ServerMetadata{TenantId: "acme", ServerId: "system", Uid: "system-1", Type: "system",
		GrantTypes: []string{"client_credentials"}, AccessTokenTtl: durationpb.New(time.Hour), Scopes: []string{"identity"}})
	h.clients.put(&clientv1.Client{
		ClientId: "app", TenantId: "acme", AuthorizationServerId: "orders", GrantTypes: []string{"password"},
		TokenEndpointAuthMethod: "client_secret_basic", Scopes: []string{"openid", "orders.read"}, ClientSecret: proto.String("s"),
	})
	return h, pool
}

func passwordRequest(password string) *tokenv1.TokenRequest {
	return &tokenv1.TokenRequest{TenantId: "acme", ServerId: "orders", GrantType: "password", ClientId: "app",
		ClientSecret: "s", Username: "jane@example.com", Password: password}
}

func TestPasswordGrantMapsPoolAnswers(t *testing.T) {
	h, pool := newPasswordHarness(t)
	cases := []struct {
		name     string
		answers  []fakeAnswer
		code     string
		status   int
		bearers  int // calls the pool saw
		sameDesc bool
	}{
		{"correct password", []fakeAnswer{{result: "password_correct"}}, "", 200, 1, false},
		{"wrong password", []fakeAnswer{{result: "password_incorrect"}}, "invalid_grant", 400, 1, true},
		{"unknown user", []fakeAnswer{{result: "user_not_found"}}, "invalid_grant", 400, 1, true},
		{"locked user", []fakeAnswer{{result: "account_locked"}}, "invalid_grant", 400, 1, true},
		{"inactive user", []fakeAnswer{{result: "user_inactive"}}, "invalid_grant", 400, 1, true},
		{"user without a password", []fakeAnswer{{result: "no_password"}}, "invalid_grant", 400, 1, true},
		{"pool deleted", []fakeAnswer{{err: status.Error(codes.NotFound, "pool not found")}}, "invalid_grant", 400, 1, true},
		{"hashing at capacity", []fakeAnswer{{err: status.Error(codes.Unavailable, "password hashing is at capacity")}}, "temporarily_unavailable", 503, 1, false},
		{"too many checks in flight", []fakeAnswer{{err: status.Error(codes.ResourceExhausted, "retry shortly")}}, "temporarily_unavailable", 503, 1, false},
		{"pool service fails", []fakeAnswer{{err: status.Error(codes.Internal, "boom")}}, "server_error", 500, 1, false},
		{"pool refuses the platform's credential", []fakeAnswer{{err: status.Error(codes.Unauthenticated, "bad credential")}}, "server_error", 500, 1, false},
	}
	var refusal string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pool.set(c.answers...)
			resp, err := h.svc.Token(context.Background(), passwordRequest("pw"))
			if c.status == 200 {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				claims := verify(t, h.svc, "acme", "orders", resp.AccessToken)
				if claims["sub"] != "user-1" || claims["idp"] != "src-1" {
					t.Errorf("claims %v", claims)
				}
			} else {
				code, st := oauthError(t, err)
				if code != c.code || st != c.status {
					t.Errorf("got %s (%d), want %s (%d)", code, st, c.code, c.status)
				}
				if c.sameDesc {
					desc := status.Convert(err).Message()
					if refusal == "" {
						refusal = desc
					} else if desc != refusal {
						t.Errorf("description %q, other refusals say %q", desc, refusal)
					}
				}
			}
			if n := len(pool.seen()); n != c.bearers {
				t.Errorf("pool called %d times, want %d", n, c.bearers)
			}
		})
	}
}

func TestPoolIsCalledWithTheInternalCredential(t *testing.T) {
	h, pool := newPasswordHarness(t)
	pool.set(fakeAnswer{result: "password_correct"})
	for range 2 {
		if _, err := h.svc.Token(context.Background(), passwordRequest("pw")); err != nil {
			t.Fatal(err)
		}
	}
	seen := pool.seen()
	if len(seen) != 2 || seen[0] == "" || seen[0] != seen[1] {
		t.Fatalf("bearers %d, reused: %v", len(seen), len(seen) == 2 && seen[0] == seen[1])
	}
	if caller, ok := h.deps.Internal.Verify(seen[0]); !ok || caller != "token" {
		t.Fatalf("the pool was not called with the platform's internal credential: %q, %v", caller, ok)
	}
	if _, err := verifierOf(h).Verify(context.Background(), seen[0]); err == nil {
		t.Fatal("the internal credential passes for an access token")
	}
}

func TestExternalVerifierBodyComesFromTheRequest(t *testing.T) {
	h, _ := newPasswordHarness(t)
	var (
		mu   sync.Mutex
		got  map[string]any
		sig  string
		want string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		_ = json.Unmarshal(raw, &got)
		m := hmac.New(sha256.New, []byte(h.deps.Keyring.DeriveSecret("external-idp", "acme", "orders", "ext-1")))
		m.Write(raw)
		sig, want = r.Header.Get("X-Authplane-Signature"), "sha256="+hex.EncodeToString(m.Sum(nil))
		_, _ = w.Write([]byte(`{"sub":"ext-9","extraInfo":"not an object"}`))
	}))
	defer srv.Close()
	h.ws.put(&workspacev1.ServerMetadata{
		TenantId: "acme", ServerId: "orders", Uid: "orders-1", Type: "regular", GrantTypes: []string{"password"},
		AccessTokenTtl: durationpb.New(time.Hour), Scopes: []string{"openid", "orders.read"},
		IdentitySources: []*workspacev1.IdentitySource{{Id: "ext-1", Method: "external", Url: srv.URL, Timeout: durationpb.New(time.Second)}},
	})
	req := passwordRequest("pw")
	req.Scope = "orders.read"
	// A gRPC caller may send no parameters, or even the secret among them.
	req.Parameters = map[string]string{"client_secret": "s", "user_name": "x", "device": "kiosk"}
	resp, err := h.svc.Token(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sig != want {
		t.Errorf("signature %q, want %q", sig, want)
	}
	for k, v := range map[string]any{"grant_type": "password", "username": "jane@example.com", "password": "pw", "scope": "orders.read",
		"client_id": "app", "tenant_id": "acme", "workspace_id": "orders", "device": "kiosk"} {
		if got[k] != v {
			t.Errorf("body %s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["client_secret"]; ok {
		t.Error("client_secret sent to the verifier")
	}
	if _, ok := got["user_name"]; ok {
		t.Error("user_name sent besides username")
	}
	claims := verify(t, h.svc, "acme", "orders", resp.AccessToken)
	if _, ok := claims["extra_info"]; claims["sub"] != "ext-9" || claims["idp"] != "ext-1" || ok {
		t.Errorf("claims %v (an extraInfo that is no object is dropped)", claims)
	}
}

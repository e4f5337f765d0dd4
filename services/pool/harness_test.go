package pool_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	schemav1 "github.com/authplane/authplane/gen/go/authplane/schema/v1"
	"github.com/authplane/authplane/pkg/testenv"
)

// env is a running authplane with one tenant, its identity-plane token and gRPC clients of the pool and schema
// services.
type env struct {
	*testenv.Env
	tenant  *testenv.Tenant
	pools   poolv1.PoolServiceClient
	schemas schemav1.SchemaServiceClient
}

func start(t *testing.T, b testenv.Backend, opts ...testenv.Option) *env {
	t.Helper()
	e := testenv.Start(t, append([]testenv.Option{testenv.WithBackend(b)}, opts...)...)
	return &env{Env: e, tenant: e.NewTenant(t, "acme"), pools: poolv1.NewPoolServiceClient(e.GRPC),
		schemas: schemav1.NewSchemaServiceClient(e.GRPC)}
}

// ctx carries the tenant's identity-plane token for gRPC calls.
func (e *env) ctx() context.Context {
	return testenv.WithToken(context.Background(), e.tenant.SystemToken)
}

// call sends a REST request of the identity plane (path relative to /api/identity/acme/system) and decodes the
// JSON answer.
func (e *env) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var out map[string]any
	code := e.CallJSON(t, method, "/api/identity/acme/system"+path, e.tenant.SystemToken, body, &out)
	return code, out
}

// mustCall is call that fails the test unless the status is want.
func (e *env) mustCall(t *testing.T, want int, method, path string, body any) map[string]any {
	t.Helper()
	code, out := e.call(t, method, path, body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, out)
	}
	return out
}

// cheap are hashing settings that keep tests fast; production pools default to 19 MiB, t=2.
var cheap = map[string]any{"hashing_method": "argon2id", "argon2": map[string]any{"memory_kib": 8192, "iterations": 1, "parallelism": 1}}

// pool creates a pool with cheap hashing and the given extra fields.
func (e *env) pool(t *testing.T, id string, extra map[string]any) {
	t.Helper()
	body := map[string]any{"id": id, "name": id, "password_settings": cheap}
	for k, v := range extra {
		body[k] = v
	}
	e.mustCall(t, 201, "POST", "/pools", body)
}

// user creates a user with an email identifier and a password and returns its id.
func (e *env) user(t *testing.T, pool, email, password string) string {
	t.Helper()
	body := map[string]any{"status": "active", "identifiers": []any{map[string]any{"type": "email", "identifier": email}}}
	if password != "" {
		body["credentials"] = []any{map[string]any{"type": "password", "password": password}}
	}
	out := e.mustCall(t, 201, "POST", "/pools/"+pool+"/users", body)
	return out["id"].(string)
}

// verify calls the verify API and returns its result.
func (e *env) verify(t *testing.T, pool, identifier, password string) string {
	t.Helper()
	out := e.mustCall(t, 200, "POST", "/pools/"+pool+"/user/password/verify", map[string]any{"identifier": identifier, "password": password})
	r, _ := out["result"].(string)
	return r
}

func jsonString(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

func path(format string, args ...any) string { return fmt.Sprintf(format, args...) }

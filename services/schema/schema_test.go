package schema_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	schemav1 "github.com/authplane/authplane/gen/go/authplane/schema/v1"
	"github.com/authplane/authplane/pkg/testenv"
)

type env struct {
	*testenv.Env
	tenant *testenv.Tenant
}

func (e *env) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var out map[string]any
	code := e.CallJSON(t, method, "/api/identity/acme/system"+path, e.tenant.SystemToken, body, &out)
	return code, out
}

func (e *env) must(t *testing.T, want int, method, path string, body any) map[string]any {
	t.Helper()
	code, out := e.call(t, method, path, body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, out)
	}
	return out
}

var person = map[string]any{"type": "object", "properties": map[string]any{
	"given_name": map[string]any{"type": "string", "minLength": 1}, "family_name": map[string]any{"type": "string"}},
	"required": []any{"given_name"}}

func TestSchemasLifecycle(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		ts := testenv.Start(t, testenv.WithBackend(b))
		e := &env{Env: ts, tenant: ts.NewTenant(t, "acme")}
		s := e.must(t, 201, "POST", "/schemas", map[string]any{"id": "person", "name": "Person", "schema": person})
		if s["tenant_id"] != "acme" || s["schema"].(map[string]any)["required"].([]any)[0] != "given_name" {
			t.Fatalf("created %v", s)
		}
		e.must(t, 409, "POST", "/schemas", map[string]any{"id": "person", "schema": person})
		gen := e.must(t, 201, "POST", "/schemas", map[string]any{"schema": map[string]any{"type": "object"}})
		if id, _ := gen["id"].(string); id == "" || gen["name"] != id {
			t.Fatalf("generated %v", gen)
		}
		list := e.must(t, 200, "GET", "/schemas?page_size=1", nil)
		if len(list["schemas"].([]any)) != 1 || list["next_page_token"] == "" {
			t.Fatalf("first page %v", list)
		}
		list = e.must(t, 200, "GET", "/schemas?page_size=1&page_token="+list["next_page_token"].(string), nil)
		if len(list["schemas"].([]any)) != 1 || list["next_page_token"] != "" {
			t.Fatalf("second page %v", list)
		}

		// A pool uses the schema: user payloads are checked against it, and a change applies at once.
		e.must(t, 201, "POST", "/pools", map[string]any{"id": "p", "payload_schema_id": "person"})
		users := "/pools/p/users"
		e.must(t, 201, "POST", users, map[string]any{"payload": map[string]any{"given_name": "Jane"}})
		s = e.must(t, 200, "PUT", "/schemas/person", map[string]any{"schema": map[string]any{"type": "object",
			"required": []any{"given_name", "family_name"}}})
		if s["name"] != "Person" {
			t.Fatalf("PUT of the document changed the name: %v", s)
		}
		code, out := e.call(t, "POST", users, map[string]any{"payload": map[string]any{"given_name": "Bob"}})
		if code != 400 || !strings.Contains(out["error"].(string), "payload.family_name") {
			t.Fatalf("after the schema change: %d %v", code, out)
		}
		e.must(t, 409, "DELETE", "/schemas/person", nil)
		e.must(t, 204, "DELETE", "/pools/p", nil)
		e.must(t, 204, "DELETE", "/schemas/person", nil)
		e.must(t, 404, "GET", "/schemas/person", nil)
		e.must(t, 404, "DELETE", "/schemas/person", nil)
		e.must(t, 404, "PUT", "/schemas/person", map[string]any{"name": "x"})
	})
}

func TestInvalidSchemasAreRefusedNamingWhere(t *testing.T) {
	ts := testenv.Start(t)
	e := &env{Env: ts, tenant: ts.NewTenant(t, "acme")}
	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"unknown type", map[string]any{"id": "a", "schema": map[string]any{"properties": map[string]any{"a": map[string]any{"type": "no-such-type"}}}}, "schema.properties.a.type"},
		{"no document", map[string]any{"id": "b"}, "schema"},
		{"external reference", map[string]any{"id": "c", "schema": map[string]any{"$ref": "https://example.com/s.json"}}, "schema"},
		{"bad id", map[string]any{"id": "Not An Id", "schema": person}, "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.call(t, "POST", "/schemas", tt.body)
			if code != 400 {
				t.Fatalf("status %d: %v", code, out)
			}
			if d, _ := out["details"].(map[string]any); d["field"] != tt.field {
				t.Fatalf("details %v, want field %s (%v)", out["details"], tt.field, out["error"])
			}
		})
	}
	e.must(t, 201, "POST", "/schemas", map[string]any{"id": "ok", "schema": person})
	e.must(t, 400, "PUT", "/schemas/ok", map[string]any{"schema": map[string]any{"minLength": "three"}})
	if s := e.must(t, 200, "GET", "/schemas/ok", nil); s["schema"].(map[string]any)["required"] == nil {
		t.Fatalf("a refused update changed the document: %v", s)
	}
}

func TestSchemasOverGRPC(t *testing.T) {
	ts := testenv.Start(t)
	acme, globex := ts.NewTenant(t, "acme"), ts.NewTenant(t, "globex")
	c := schemav1.NewSchemaServiceClient(ts.GRPC)
	doc, _ := structpb.NewStruct(person)
	ctx := testenv.WithToken(context.Background(), acme.SystemToken)
	if _, err := c.CreateSchema(ctx, &schemav1.CreateSchemaRequest{TenantId: "acme", Schema: &schemav1.Schema{Id: "person", Schema: doc}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		token  string
		tenant string
		want   codes.Code
	}{
		{"own tenant", acme.SystemToken, "acme", codes.OK},
		{"no token", "", "acme", codes.Unauthenticated},
		{"admin-plane token", acme.AdminToken, "acme", codes.PermissionDenied},
		{"another tenant's token", globex.SystemToken, "acme", codes.PermissionDenied},
		{"another tenant's schemas", globex.SystemToken, "globex", codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.token != "" {
				ctx = testenv.WithToken(ctx, tt.token)
			}
			_, err := c.GetSchema(ctx, &schemav1.GetSchemaRequest{TenantId: tt.tenant, SchemaId: "person"})
			if status.Code(err) != tt.want {
				t.Fatalf("code %v, want %v", status.Code(err), tt.want)
			}
		})
	}
}

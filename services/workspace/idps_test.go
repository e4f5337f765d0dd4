package workspace_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/testenv"
)

// idp is an identity source as the REST API answers it.
type idp struct {
	ID                    string  `json:"id"`
	TenantID              string  `json:"tenant_id"`
	AuthorizationServerID string  `json:"authorization_server_id"`
	Name                  string  `json:"name"`
	Method                string  `json:"method"`
	DisplayOrder          int     `json:"display_order"`
	IdentityPoolID        string  `json:"identity_pool_id"`
	URL                   string  `json:"url"`
	Timeout               string  `json:"timeout"`
	SigningSecret         *string `json:"signing_secret"`
	CreatedAt             string  `json:"created_at"`
}

type apiError struct {
	StatusCode int               `json:"status_code"`
	Error      string            `json:"error"`
	ErrorCode  string            `json:"error_code"`
	Details    map[string]string `json:"details"`
}

// idpEnv is a running authplane with tenant acme, its workspace ws and its pool customers.
type idpEnv struct {
	*testenv.Env
	acme *testenv.Tenant
}

func startIdps(t *testing.T, b testenv.Backend, opts ...testenv.Option) *idpEnv {
	t.Helper()
	e := &idpEnv{Env: testenv.Start(t, append([]testenv.Option{testenv.WithBackend(b)}, opts...)...)}
	e.acme = e.NewTenant(t, "acme")
	e.mustAdmin(t, e.acme, 201, "POST", "/servers", map[string]any{"id": "ws", "grant_types": []string{"password"}}, nil)
	e.pool(t, e.acme, "customers")
	return e
}

func (e *idpEnv) pool(t *testing.T, tn *testenv.Tenant, id string) {
	t.Helper()
	if code := e.CallJSON(t, "POST", "/api/identity/"+tn.ID+"/system/pools", tn.SystemToken,
		map[string]any{"id": id, "name": id}, nil); code != 201 {
		t.Fatalf("create pool %s: %d", id, code)
	}
}

// admin calls the admin plane of tn (path relative to /api/admin/{tid}) with its admin token.
func (e *idpEnv) admin(t *testing.T, tn *testenv.Tenant, method, path string, body, out any) int {
	t.Helper()
	return e.CallJSON(t, method, "/api/admin/"+tn.ID+path, tn.AdminToken, body, out)
}

func (e *idpEnv) mustAdmin(t *testing.T, tn *testenv.Tenant, want int, method, path string, body, out any) {
	t.Helper()
	var raw map[string]any
	if out == nil {
		out = &raw
	}
	if code := e.admin(t, tn, method, path, body, out); code != want {
		t.Fatalf("%s %s: status %d, want %d (%v)", method, path, code, want, out)
	}
}

func (e *idpEnv) linkPool(t *testing.T, server, name, pool string, order int) idp {
	t.Helper()
	var out idp
	e.mustAdmin(t, e.acme, 201, "POST", "/servers/"+server+"/idps/identity_pool",
		map[string]any{"name": name, "identity_pool_id": pool, "display_order": order}, &out)
	return out
}

func (e *idpEnv) external(t *testing.T, server, name, url string, order int) idp {
	t.Helper()
	var out idp
	e.mustAdmin(t, e.acme, 201, "POST", "/servers/"+server+"/idps/external",
		map[string]any{"name": name, "url": url, "timeout": "1.5s", "display_order": order}, &out)
	return out
}

func (e *idpEnv) list(t *testing.T, server, query string) ([]idp, string) {
	t.Helper()
	var out struct {
		Idps          []idp  `json:"idps"`
		NextPageToken string `json:"next_page_token"`
	}
	e.mustAdmin(t, e.acme, 200, "GET", "/servers/"+server+"/idps"+query, nil, &out)
	return out.Idps, out.NextPageToken
}

func (e *idpEnv) metadata(t *testing.T, tenant, server string) *workspacev1.ServerMetadata {
	t.Helper()
	md, err := workspacev1.NewWorkspaceServiceClient(e.GRPC).GetServerMetadata(e.Internal(t, context.Background()),
		&workspacev1.GetServerMetadataRequest{TenantId: tenant, ServerId: server})
	if err != nil {
		t.Fatal(err)
	}
	return md
}

func names(idps []idp) []string {
	out := make([]string, len(idps))
	for i, d := range idps {
		out[i] = d.Name
	}
	return out
}

func TestIdpsCreateListGetDelete(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := startIdps(t, b)
		pool := e.linkPool(t, "ws", "  Customers  ", "customers", 0)
		if pool.ID == "" || pool.TenantID != "acme" || pool.AuthorizationServerID != "ws" || pool.Name != "Customers" ||
			pool.Method != "identity_pool" || pool.IdentityPoolID != "customers" || pool.URL != "" || pool.Timeout != "" ||
			pool.SigningSecret != nil || pool.CreatedAt == "" {
			t.Fatalf("identity_pool source as created: %+v", pool)
		}
		ext := e.external(t, "ws", "Legacy", "https://verifier.example.com/verify?x=1", 1)
		if ext.Method != "external" || ext.URL != "https://verifier.example.com/verify?x=1" || ext.Timeout != "1.500s" ||
			ext.IdentityPoolID != "" || ext.DisplayOrder != 1 {
			t.Fatalf("external source as created: %+v", ext)
		}
		var dflt idp
		e.mustAdmin(t, e.acme, 201, "POST", "/servers/ws/idps/external",
			map[string]any{"name": "Defaults", "url": "http://10.0.0.7:8080/check"}, &dflt)
		if dflt.Timeout != "2s" || dflt.DisplayOrder != 0 {
			t.Fatalf("external source with defaults: timeout %q, display_order %d; want 2s and 0", dflt.Timeout, dflt.DisplayOrder)
		}

		got, next := e.list(t, "ws", "")
		if want := []string{"Customers", "Defaults", "Legacy"}; !slices.Equal(names(got), want) || next != "" {
			t.Fatalf("list: %v (next %q), want %v", names(got), next, want)
		}
		var one idp
		e.mustAdmin(t, e.acme, 200, "GET", "/servers/ws/idps/"+ext.ID, nil, &one)
		if one.ID != ext.ID || one.URL != ext.URL || one.Timeout != ext.Timeout || one.Name != "Legacy" {
			t.Fatalf("get: %+v, want %+v", one, ext)
		}

		e.mustAdmin(t, e.acme, 204, "DELETE", "/servers/ws/idps/"+pool.ID, nil, nil)
		for _, tc := range []struct{ method, path string }{
			{"GET", "/servers/ws/idps/" + pool.ID},
			{"DELETE", "/servers/ws/idps/" + pool.ID},
			{"GET", "/servers/ws/idps/nonexistent"},
			{"GET", "/servers/admin/idps/" + ext.ID}, // another workspace of the tenant
			{"DELETE", "/servers/admin/idps/" + ext.ID},
		} {
			e.mustAdmin(t, e.acme, 404, tc.method, tc.path, nil, nil)
		}
		got, _ = e.list(t, "ws", "")
		if want := []string{"Defaults", "Legacy"}; !slices.Equal(names(got), want) {
			t.Fatalf("list after delete: %v, want %v", names(got), want)
		}
	})
}

func TestIdpsOfAnUnknownWorkspaceAre404(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := startIdps(t, b)
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/servers/nope/idps/identity_pool", map[string]any{"name": "C", "identity_pool_id": "customers"}},
			{"POST", "/servers/nope/idps/external", map[string]any{"name": "V", "url": "https://v.example.com/"}},
			{"GET", "/servers/nope/idps", nil},
			{"GET", "/servers/nope/idps/abc", nil},
			{"DELETE", "/servers/nope/idps/abc", nil},
		} {
			var out apiError
			if code := e.admin(t, e.acme, tc.method, tc.path, tc.body, &out); code != 404 || out.ErrorCode != "not_found" {
				t.Errorf("%s %s: %d %+v, want 404 not_found", tc.method, tc.path, code, out)
			}
		}
	})
}

func TestIdpsAreOrderedByDisplayOrderThenCreation(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := startIdps(t, b)
		// Created in this order; ties on display_order must keep it.
		orders := []int{2, 0, 1, 0, 2, 0, 1}
		for i, o := range orders {
			if i%2 == 0 {
				e.external(t, "ws", fmt.Sprintf("s%d-order%d", i, o), fmt.Sprintf("https://v%d.example.com/verify", i), o)
			} else {
				e.linkPool(t, "ws", fmt.Sprintf("s%d-order%d", i, o), "customers", o)
			}
		}
		want := []string{"s1-order0", "s3-order0", "s5-order0", "s2-order1", "s6-order1", "s0-order2", "s4-order2"}
		all, _ := e.list(t, "ws", "")
		if !slices.Equal(names(all), want) {
			t.Fatalf("list: %v, want %v", names(all), want)
		}
		for _, size := range []int{1, 2, 3, 7} {
			var walked []idp
			token, pages := "", 0
			for {
				page, next := e.list(t, "ws", fmt.Sprintf("?page_size=%d&page_token=%s", size, token))
				if len(page) > size {
					t.Fatalf("page of %d, size %d", len(page), size)
				}
				walked = append(walked, page...)
				if pages++; next == "" {
					break
				}
				token = next
			}
			if !slices.Equal(names(walked), want) || pages != (len(want)+size-1)/size {
				t.Fatalf("pages of %d: %v in %d pages, want %v", size, names(walked), pages, want)
			}
		}
		var bad apiError
		if code := e.admin(t, e.acme, "GET", "/servers/ws/idps?page_token=garbage", nil, &bad); code != 400 || bad.Details["field"] != "page_token" {
			t.Fatalf("garbage page token: %d %+v", code, bad)
		}
		forged := base64.RawURLEncoding.EncodeToString([]byte(`{"a":"x.y","s":"idps/acme/ws"}`))
		if code := e.admin(t, e.acme, "GET", "/servers/ws/idps?page_token="+forged, nil, &bad); code != 400 {
			t.Fatalf("page token with a malformed key: %d, want 400", code)
		}

		md := e.metadata(t, "acme", "ws")
		var mdNames []string
		for _, src := range md.IdentitySources {
			for _, d := range all {
				if d.ID == src.Id {
					mdNames = append(mdNames, d.Name)
				}
			}
		}
		if !slices.Equal(mdNames, want) || len(md.IdentitySources) != len(want) {
			t.Fatalf("metadata sources: %v, want %v", mdNames, want)
		}
	})
}

func TestExternalIdpSigningSecretIsDerivedAndShownOnlyAtCreation(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := startIdps(t, b)
		keyring := e.Keyring(t) // the data key stored in the database, not one derived from the master key
		a := e.external(t, "ws", "A", "https://a.example.com/verify", 0)
		b2 := e.external(t, "ws", "B", "https://a.example.com/verify", 0)
		for _, d := range []idp{a, b2} {
			if d.SigningSecret == nil || len(*d.SigningSecret) < 43 {
				t.Fatalf("created external source %s has signing_secret %v, want ≥ 256 bits", d.Name, d.SigningSecret)
			}
			if want := keyring.DeriveSecret(secrets.PurposeExternalIdp, "acme", "ws", d.ID); *d.SigningSecret != want {
				t.Fatalf("signing_secret of %s is not DeriveSecret(external-idp, acme, ws, %s) under the stored data key", d.Name, d.ID)
			}
		}
		if *a.SigningSecret == *b2.SigningSecret {
			t.Fatal("two sources share a signing secret")
		}

		var one map[string]any
		e.mustAdmin(t, e.acme, 200, "GET", "/servers/ws/idps/"+a.ID, nil, &one)
		var list map[string]any
		e.mustAdmin(t, e.acme, 200, "GET", "/servers/ws/idps", nil, &list)
		for what, v := range map[string]any{"get": one, "list": list} {
			if s := fmt.Sprint(v); strings.Contains(s, "signing_secret") || strings.Contains(s, *a.SigningSecret) {
				t.Fatalf("%s shows the signing secret: %s", what, s)
			}
		}
		if s := fmt.Sprint(e.metadata(t, "acme", "ws")); strings.Contains(s, *a.SigningSecret) {
			t.Fatal("the metadata carries the signing secret")
		}
	})
}

func TestIdpValidationNamesTheField(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := startIdps(t, b)
		const pool, ext = "/servers/ws/idps/identity_pool", "/servers/ws/idps/external"
		okExt := func(kv ...any) map[string]any {
			m := map[string]any{"name": "V", "url": "https://v.example.com/verify"}
			for i := 0; i < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		}
		okPool := func(kv ...any) map[string]any {
			m := map[string]any{"name": "P", "identity_pool_id": "customers"}
			for i := 0; i < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		}
		other := e.NewTenant(t, "other")
		e.pool(t, other, "theirs")
		cases := []struct {
			name  string
			path  string
			body  map[string]any
			field string
		}{
			{"pool: no name", pool, okPool("name", ""), "name"},
			{"pool: blank name", pool, okPool("name", "   "), "name"},
			{"pool: name over 200 characters", pool, okPool("name", strings.Repeat("é", 201)), "name"},
			{"pool: negative display_order", pool, okPool("display_order", -1), "display_order"},
			{"pool: no identity_pool_id", pool, okPool("identity_pool_id", ""), "identity_pool_id"},
			{"pool: invalid identity_pool_id", pool, okPool("identity_pool_id", "Not Valid"), "identity_pool_id"},
			{"pool: unknown pool", pool, okPool("identity_pool_id", "nobody"), "identity_pool_id"},
			{"pool: another tenant's pool", pool, okPool("identity_pool_id", "theirs"), "identity_pool_id"},
			{"pool: method external", pool, okPool("method", "external"), "method"},
			{"pool: with a url", pool, okPool("url", "https://v.example.com/"), "url"},
			{"pool: with a timeout", pool, okPool("timeout", "2s"), "timeout"},
			{"external: no name", ext, okExt("name", ""), "name"},
			{"external: name over 200 characters", ext, okExt("name", strings.Repeat("x", 201)), "name"},
			{"external: negative display_order", ext, okExt("display_order", -3), "display_order"},
			{"external: no url", ext, okExt("url", ""), "url"},
			{"external: not a url", ext, okExt("url", "not a url"), "url"},
			{"external: relative url", ext, okExt("url", "/verify"), "url"},
			{"external: no host", ext, okExt("url", "https:///verify"), "url"},
			{"external: ftp", ext, okExt("url", "ftp://v.example.com/verify"), "url"},
			{"external: opaque", ext, okExt("url", "https:v.example.com"), "url"},
			{"external: credentials in the url", ext, okExt("url", "https://user:pw@v.example.com/verify"), "url"},
			{"external: url over 2048 characters", ext, okExt("url", "https://v.example.com/"+strings.Repeat("a", 2048)), "url"},
			{"external: timeout under 100ms", ext, okExt("timeout", "0.099s"), "timeout"},
			{"external: zero timeout", ext, okExt("timeout", "0s"), "timeout"},
			{"external: negative timeout", ext, okExt("timeout", "-2s"), "timeout"},
			{"external: timeout over 30s", ext, okExt("timeout", "30.001s"), "timeout"},
			{"external: method identity_pool", ext, okExt("method", "identity_pool"), "method"},
			{"external: with an identity_pool_id", ext, okExt("identity_pool_id", "customers"), "identity_pool_id"},
		}
		for _, tc := range cases {
			var out apiError
			code := e.admin(t, e.acme, "POST", tc.path, tc.body, &out)
			if code != http.StatusBadRequest || out.ErrorCode != "invalid_input" || out.Details["field"] != tc.field ||
				!strings.Contains(out.Error, tc.field) {
				t.Errorf("%s: %d %+v, want 400 naming %s", tc.name, code, out, tc.field)
			}
		}
		for _, tc := range []struct {
			name string
			path string
			body map[string]any
		}{
			{"pool: 200 characters", pool, okPool("name", strings.Repeat("é", 200))},
			{"pool: method given as the route's", pool, okPool("method", "identity_pool")},
			{"external: timeout 100ms", ext, okExt("timeout", "0.1s")},
			{"external: timeout 30s", ext, okExt("timeout", "30s")},
			{"external: http", ext, okExt("url", "http://127.0.0.1:9000/verify")},
		} {
			var out map[string]any
			if code := e.admin(t, e.acme, "POST", tc.path, tc.body, &out); code != 201 {
				t.Errorf("%s: %d %v, want 201", tc.name, code, out)
			}
		}
		if got, _ := e.list(t, "ws", ""); len(got) != 5 {
			t.Fatalf("%d sources stored, want only the 5 valid ones", len(got))
		}
	})
}

func TestIdpsAreTenantScoped(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := startIdps(t, b)
		mine := e.external(t, "ws", "Mine", "https://v.example.com/verify", 0)
		other := e.NewTenant(t, "other")
		e.mustAdmin(t, other, 201, "POST", "/servers", map[string]any{"id": "ws"}, nil)

		// The other tenant's admin token on acme's paths: 403.
		for _, tc := range []struct{ method, path string }{
			{"GET", "/api/admin/acme/servers/ws/idps"},
			{"GET", "/api/admin/acme/servers/ws/idps/" + mine.ID},
			{"DELETE", "/api/admin/acme/servers/ws/idps/" + mine.ID},
			{"POST", "/api/admin/acme/servers/ws/idps/external"},
		} {
			body := map[string]any{"name": "x", "url": "https://evil.example.com/"}
			if code := e.CallJSON(t, tc.method, tc.path, other.AdminToken, body, nil); code != 403 {
				t.Errorf("other tenant's token: %s %s: %d, want 403", tc.method, tc.path, code)
			}
		}
		// acme's identity-plane token is not an admin token.
		if code := e.CallJSON(t, "GET", "/api/admin/acme/servers/ws/idps", e.acme.SystemToken, nil, nil); code != 403 {
			t.Errorf("identity-plane token on the admin plane: %d, want 403", code)
		}
		// The other tenant's workspace of the same id sees nothing of acme's.
		var list struct{ Idps []idp }
		e.mustAdmin(t, other, 200, "GET", "/servers/ws/idps", nil, &list)
		if len(list.Idps) != 0 {
			t.Fatalf("other tenant lists %v", list.Idps)
		}
		e.mustAdmin(t, other, 404, "GET", "/servers/ws/idps/"+mine.ID, nil, nil)
		e.mustAdmin(t, other, 404, "DELETE", "/servers/ws/idps/"+mine.ID, nil, nil)
		if md := e.metadata(t, "other", "ws"); len(md.IdentitySources) != 0 {
			t.Fatalf("other tenant's metadata lists %v", md.IdentitySources)
		}
		e.mustAdmin(t, e.acme, 200, "GET", "/servers/ws/idps/"+mine.ID, nil, nil)
	})
}

func TestServerMetadataListsIdentitySourcesAndDropsDeletedOnes(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := startIdps(t, b)
		if md := e.metadata(t, "acme", "ws"); len(md.IdentitySources) != 0 {
			t.Fatalf("a new workspace has sources: %v", md.IdentitySources)
		}
		ext := e.external(t, "ws", "Legacy", "http://127.0.0.1:9/verify", 1)
		pool := e.linkPool(t, "ws", "Customers", "customers", 0)
		md := e.metadata(t, "acme", "ws")
		if len(md.IdentitySources) != 2 {
			t.Fatalf("metadata sources: %v", md.IdentitySources)
		}
		p, x := md.IdentitySources[0], md.IdentitySources[1]
		if p.Id != pool.ID || p.Method != "identity_pool" || p.IdentityPoolId != "customers" || p.Url != "" || p.Timeout != nil {
			t.Fatalf("first source: %v, want the pool", p)
		}
		if x.Id != ext.ID || x.Method != "external" || x.Url != "http://127.0.0.1:9/verify" || x.Timeout.AsDuration() != 1500*time.Millisecond || x.IdentityPoolId != "" {
			t.Fatalf("second source: %v, want the external verifier", x)
		}

		e.mustAdmin(t, e.acme, 204, "DELETE", "/servers/ws/idps/"+pool.ID, nil, nil)
		if md := e.metadata(t, "acme", "ws"); len(md.IdentitySources) != 1 || md.IdentitySources[0].Id != ext.ID {
			t.Fatalf("after deleting the pool source: %v", md.IdentitySources)
		}
	})
}

func TestIdpsGoWithTheirWorkspaceAndTenant(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := startIdps(t, b)
		e.external(t, "ws", "Legacy", "https://v.example.com/verify", 0)
		e.linkPool(t, "ws", "Customers", "customers", 0)

		// A workspace deleted and created again under the same id starts without sources.
		e.mustAdmin(t, e.acme, 204, "DELETE", "/servers/ws", nil, nil)
		e.mustAdmin(t, e.acme, 404, "GET", "/servers/ws/idps", nil, nil)
		e.mustAdmin(t, e.acme, 201, "POST", "/servers", map[string]any{"id": "ws"}, nil)
		if got, _ := e.list(t, "ws", ""); len(got) != 0 {
			t.Fatalf("re-created workspace lists %v", names(got))
		}

		// So does a tenant deleted and created again.
		e.external(t, "ws", "Legacy", "https://v.example.com/verify", 0)
		if code := e.CallJSON(t, "DELETE", "/api/admin/tenants/acme", e.RootToken(t), nil, nil); code/100 != 2 {
			t.Fatalf("delete tenant: %d", code)
		}
		e.acme = e.NewTenant(t, "acme")
		e.mustAdmin(t, e.acme, 201, "POST", "/servers", map[string]any{"id": "ws"}, nil)
		if got, _ := e.list(t, "ws", ""); len(got) != 0 {
			t.Fatalf("workspace of a re-created tenant lists %v", names(got))
		}
		if md := e.metadata(t, "acme", "ws"); len(md.IdentitySources) != 0 {
			t.Fatalf("metadata of a re-created tenant lists %v", md.IdentitySources)
		}
	})
}

// The token service caches a workspace's metadata; an identity source deleted or added is seen by the very next
// password grant.
func TestPasswordGrantSeesIdpChangesAtOnce(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := startIdps(t, b)
		if code := e.CallJSON(t, "POST", "/api/identity/acme/system/pools/customers/users", e.acme.SystemToken, map[string]any{
			"status":      "active",
			"identifiers": []any{map[string]any{"type": "email", "identifier": "ann@example.com"}},
			"credentials": []any{map[string]any{"type": "password", "password": "Ann-s3cret-pass"}},
		}, nil); code != 201 {
			t.Fatalf("create user: %d", code)
		}
		id, secret := e.CreateClient(t, "acme", e.acme.AdminToken, map[string]any{"authorization_server_id": "ws",
			"grant_types": []string{"password"}, "token_endpoint_auth_method": "client_secret_post"})
		login := func() int {
			t.Helper()
			resp, err := e.HTTP.PostForm(e.Issuer("acme", "ws")+"/oauth2/token", url.Values{"grant_type": {"password"},
				"client_id": {id}, "client_secret": {secret}, "username": {"ann@example.com"}, "password": {"Ann-s3cret-pass"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := login(); code != 400 {
			t.Fatalf("password grant without sources: %d, want 400", code)
		}
		link := e.linkPool(t, "ws", "Customers", "customers", 0)
		if code := login(); code != 200 {
			t.Fatalf("password grant once the pool is linked: %d, want 200", code)
		}
		e.mustAdmin(t, e.acme, 204, "DELETE", "/servers/ws/idps/"+link.ID, nil, nil)
		if code := login(); code != 400 {
			t.Fatalf("password grant right after the source is deleted: %d, want 400", code)
		}
	})
}

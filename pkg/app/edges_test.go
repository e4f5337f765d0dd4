package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authplane/authplane/pkg/testenv"
)

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func send(t *testing.T, env *testenv.Env, method, path, contentType string, body io.Reader, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, env.HTTPURL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// TestBadInputGetsClearErrors: every malformed request is refused with the right status and a JSON body that
// says what is wrong — the contract's JSON on the REST facade, RFC 6749 JSON at the token endpoint.
func TestBadInputGetsClearErrors(t *testing.T) {
	env := testenv.Start(t)
	acme := env.NewTenant(t, "acme")
	auth := map[string]string{"Authorization": "Bearer " + acme.AdminToken}
	basic := map[string]string{"Authorization": "Basic " + basicValue(acme.AdminID, acme.AdminSecret)}
	huge := strings.Repeat("a", 1<<20+10)
	form := "application/x-www-form-urlencoded"

	rest := []struct {
		name, method, path, body string
		status                   int
		errorCode, mentions      string
	}{
		{"malformed JSON", "POST", "/api/admin/acme/servers", `{"id":`, 400, "invalid_input", ""},
		{"unknown field", "POST", "/api/admin/acme/servers", `{"id":"x","colour":"red"}`, 400, "invalid_input", "colour"},
		{"wrong type", "POST", "/api/admin/acme/servers", `{"id":7}`, 400, "invalid_input", "id"},
		{"invalid id", "POST", "/api/admin/acme/servers", `{"id":"Not Valid"}`, 400, "invalid_input", "id"},
		{"unsupported grant type", "POST", "/api/admin/acme/servers", `{"id":"x","grant_types":["implicit"]}`, 400, "invalid_input", "implicit"},
		{"bad duration", "POST", "/api/admin/acme/servers", `{"id":"x","access_token_ttl":"soon"}`, 400, "invalid_input", ""},
		{"body over 1 MiB", "POST", "/api/admin/acme/servers", `{"id":"x","description":"` + huge + `"}`, 413, "payload_too_large", ""},
		{"unknown route", "GET", "/api/admin/acme/nothing-here", ``, 404, "not_found", ""},
		{"unknown workspace", "GET", "/api/admin/acme/servers/nope", ``, 404, "not_found", "nope"},
	}
	for _, tc := range rest {
		t.Run("REST "+tc.name, func(t *testing.T) {
			r := send(t, env, tc.method, tc.path, "application/json", strings.NewReader(tc.body), auth)
			if r.status != tc.status || r.body["error_code"] != tc.errorCode || r.body["status_code"] != float64(tc.status) {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, tc.status, tc.errorCode)
			}
			if msg, _ := r.body["error"].(string); msg == "" || !strings.Contains(msg, tc.mentions) {
				t.Fatalf("error message %q should mention %q", msg, tc.mentions)
			}
		})
	}

	var multipartBody bytes.Buffer
	mw := multipart.NewWriter(&multipartBody)
	_ = mw.WriteField("grant_type", "client_credentials")
	_ = mw.Close()
	token := []struct {
		name, contentType, body string
		hdr                     map[string]string
		status                  int
		oauthError              string
	}{
		{"form body with Basic", form, "grant_type=client_credentials", basic, 200, ""},
		{"JSON body with Basic", "application/json", `{"grant_type":"client_credentials"}`, basic, 200, ""},
		{"multipart body with Basic", mw.FormDataContentType(), multipartBody.String(), basic, 200, ""},
		{"malformed JSON body", "application/json", `{"grant_type":`, basic, 400, "invalid_request"},
		{"non-string JSON parameter", "application/json", `{"grant_type":["client_credentials"]}`, basic, 400, "invalid_request"},
		{"repeated parameter", form, "grant_type=client_credentials&grant_type=client_credentials", basic, 400, "invalid_request"},
		{"unsupported content type", "text/plain", "grant_type=client_credentials", basic, 400, "invalid_request"},
		{"missing grant_type", form, "scope=x", basic, 400, "invalid_request"},
		{"Basic and client_secret together", form, "grant_type=client_credentials&client_secret=x", basic, 400, "invalid_request"},
		{"no client authentication", form, "grant_type=client_credentials", nil, 401, "invalid_client"},
		{"malformed Basic header", form, "grant_type=client_credentials", map[string]string{"Authorization": "Basic !!!"}, 401, "invalid_client"},
		{"body over 1 MiB", form, "grant_type=client_credentials&x=" + huge, basic, 413, "invalid_request"},
	}
	for _, tc := range token {
		t.Run("token endpoint "+tc.name, func(t *testing.T) {
			r := send(t, env, "POST", "/acme/admin/oauth2/token", tc.contentType, strings.NewReader(tc.body), tc.hdr)
			if r.status != tc.status {
				t.Fatalf("status %d (%v), want %d", r.status, r.body, tc.status)
			}
			if r.header.Get("Content-Type") != "application/json" || r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("headers %v", r.header)
			}
			if tc.oauthError != "" && (r.body["error"] != tc.oauthError || r.body["error_description"] == "") {
				t.Fatalf("body %v, want error %s with a description", r.body, tc.oauthError)
			}
		})
	}
	t.Run("token endpoint refuses GET", func(t *testing.T) {
		if r := send(t, env, "GET", "/acme/admin/oauth2/token", "", nil, nil); r.status != 405 || r.body["error"] != "invalid_request" {
			t.Fatalf("got %d %v", r.status, r.body)
		}
	})
	t.Run("a refused client creation writes nothing", func(t *testing.T) {
		r := send(t, env, "POST", "/api/admin/acme/clients", "application/json",
			strings.NewReader(`{"authorization_server_id":"admin","client_name":"bad","scopes":["no.such.scope"]}`), auth)
		if r.status != 400 {
			t.Fatalf("status %d", r.status)
		}
		var list struct {
			Clients []map[string]any `json:"clients"`
		}
		env.CallJSON(t, "GET", "/api/admin/acme/servers/admin/clients", acme.AdminToken, nil, &list)
		for _, c := range list.Clients {
			if c["client_name"] == "bad" {
				t.Fatal("the refused client was stored")
			}
		}
	})
}

func basicValue(id, secret string) string {
	req, _ := http.NewRequest("GET", "http://x", nil)
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// syncBuffer collects the server's log across goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOperationsEndpointsAndLogs: health, readiness, metrics by route and by tenant/workspace/grant, request ids,
// and logs that never hold a secret or a token, even at debug level and on errors.
func TestOperationsEndpointsAndLogs(t *testing.T) {
	logs := &syncBuffer{}
	env := testenv.Start(t, testenv.WithLog(logs))
	acme := env.NewTenant(t, "acme")
	_ = send(t, env, "POST", "/acme/admin/oauth2/token", "application/x-www-form-urlencoded",
		strings.NewReader("grant_type=client_credentials&client_id="+acme.AdminID+"&client_secret=wrong-"+acme.AdminSecret), nil)
	_ = send(t, env, "GET", "/api/admin/acme/servers?page_token=zzz", "", nil, map[string]string{"Authorization": "Bearer " + acme.AdminToken, "X-Request-Id": "trace-me-42"})

	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	if code := env.CallJSON(t, "GET", "/openapi.json", "", nil, &doc); code != 200 {
		t.Fatalf("/openapi.json: %d", code)
	}
	for _, p := range []string{"/api/admin/tenants", "/api/admin/{tenant_id}/servers", "/api/admin/{tenant_id}/clients/{client_id}/rotate-secret",
		"/api/identity/{tenant_id}/system/pools/{pool_id}/users", "/api/identity/{tenant_id}/system/pools/{pool_id}/user/password/verify"} {
		if doc.Paths[p] == nil {
			t.Errorf("the served OpenAPI document lacks %s", p)
		}
	}
	for _, tc := range []struct{ path, want string }{{"/healthz", "ok"}, {"/readyz", "ready"}} {
		if r := send(t, env, "GET", tc.path, "", nil, nil); r.status != 200 || r.body["status"] != tc.want {
			t.Errorf("%s: %d %v", tc.path, r.status, r.body)
		}
	}
	resp, err := env.HTTP.Get(env.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(raw)
	for _, want := range []string{
		`authplane_tokens_issued_total{grant="client_credentials",tenant="acme",workspace="admin"}`,
		`authplane_http_requests_total{method="POST",route="/{tenant_id}/{server_id}/oauth2/token",status="401"} 1`,
		`authplane_http_request_duration_seconds_bucket{method="GET",route="/api/admin/{tenant_id}/servers",status="400"`,
		`authplane_grpc_requests_total{code="OK",method="/authplane.tenant.v1.TenantService/CreateTenant"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	time.Sleep(50 * time.Millisecond)
	out := logs.String()
	if !strings.Contains(out, `"request_id":"trace-me-42"`) {
		t.Error("the caller's X-Request-Id is not in the log")
	}
	for name, secret := range map[string]string{
		"root secret": env.RootSecret, "admin client secret": acme.AdminSecret,
		"admin token": acme.AdminToken, "system token": acme.SystemToken,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

// TestGracefulShutdownFinishesInFlightRequests stops the server while a token request's body is still arriving;
// the request must complete.
func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	env := testenv.Start(t)
	acme := env.NewTenant(t, "acme")
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", env.Issuer("acme", "admin")+"/oauth2/token", pr)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(acme.AdminID, acme.AdminSecret)
	result := make(chan int, 1)
	go func() {
		resp, err := env.HTTP.Do(req)
		if err != nil {
			result <- -1
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	_, _ = pw.Write([]byte("grant_type=client_"))
	time.Sleep(100 * time.Millisecond) // the request is now in flight
	stopped := make(chan struct{})
	go func() { env.Stop(); close(stopped) }()
	time.Sleep(100 * time.Millisecond)
	_, _ = pw.Write([]byte("credentials"))
	_ = pw.Close()
	if got := <-result; got != http.StatusOK {
		t.Fatalf("in-flight request ended with %d, want 200", got)
	}
	<-stopped
	if _, err := env.HTTP.Get(env.HTTPURL + "/healthz"); err == nil {
		t.Fatal("the server still accepts requests after shutdown")
	}
}

package tenant_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/authplane/authplane/pkg/testenv"
)

type auditEvent struct {
	ID       string `json:"id"`
	Time     string `json:"time"`
	TenantID string `json:"tenant_id"`
	Actor    struct {
		AuthorizationServerID string `json:"authorization_server_id"`
		ClientID              string `json:"client_id"`
		Sub                   string `json:"sub"`
	} `json:"actor"`
	Action   string `json:"action"`
	Resource struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"resource"`
	Outcome       string   `json:"outcome"`
	RequestID     string   `json:"request_id"`
	SourceAddress string   `json:"source_address"`
	ChangedFields []string `json:"changed_fields"`
}

type auditPage struct {
	AuditEvents   []auditEvent `json:"audit_events"`
	NextPageToken string       `json:"next_page_token"`
}

// send makes a request with a chosen request id, so that its events can be found by it.
func send(t *testing.T, env *testenv.Env, method, path, token, requestID string, body any) int {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, env.HTTPURL+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Request-Id", requestID)
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func auditOf(t *testing.T, env *testenv.Env, path, token string, query url.Values) (auditPage, int) {
	t.Helper()
	var page auditPage
	code := env.CallJSON(t, "GET", path+"?"+query.Encode(), token, nil, &page)
	return page, code
}

func TestAuditTrailsOfTheOperatorAndOfATenant(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		root := env.RootToken(t)
		if code := send(t, env, "POST", "/api/admin/tenants", root, "req-create-acme", map[string]string{"id": "acme", "name": "Acme"}); code != 201 {
			t.Fatalf("create tenant: %d", code)
		}
		if code := send(t, env, "PUT", "/api/admin/tenants/acme", root, "req-rename-acme", map[string]string{"name": "Acme Corp"}); code != 200 {
			t.Fatalf("rename tenant: %d", code)
		}
		if code := send(t, env, "PUT", "/api/admin/tenants/nobody", root, "req-rename-nobody", map[string]string{"name": "x"}); code != 404 {
			t.Fatalf("rename an unknown tenant: %d", code)
		}

		page, code := auditOf(t, env, "/api/admin/audit-events", root, nil)
		if code != 200 || len(page.AuditEvents) < 3 {
			t.Fatalf("operator trail: %d %+v", code, page)
		}
		byRequest := map[string]auditEvent{}
		for _, e := range page.AuditEvents {
			byRequest[e.RequestID] = e
		}
		created, renamed, failed := byRequest["req-create-acme"], byRequest["req-rename-acme"], byRequest["req-rename-nobody"]
		if created.Action != "TenantService.CreateTenant" || created.Outcome != "ok" || created.TenantID != "root" ||
			created.Resource.Type != "tenant" || created.Resource.ID != "acme" || created.Actor.ClientID != env.RootClientID ||
			created.Actor.AuthorizationServerID != "admin" || created.SourceAddress != "127.0.0.1" {
			t.Fatalf("the creation's event: %+v", created)
		}
		if renamed.Action != "TenantService.UpdateTenant" || len(renamed.ChangedFields) != 1 || renamed.ChangedFields[0] != "name" {
			t.Fatalf("the rename's event: %+v", renamed)
		}
		if failed.Action != "TenantService.UpdateTenant" || failed.Outcome != "not_found" {
			t.Fatalf("the failed rename's event: %+v", failed)
		}
		// Newest first, ids sorting with time.
		for i := 1; i < len(page.AuditEvents); i++ {
			if page.AuditEvents[i-1].ID <= page.AuditEvents[i].ID || page.AuditEvents[i-1].Time < page.AuditEvents[i].Time {
				t.Fatalf("events out of order: %+v then %+v", page.AuditEvents[i-1], page.AuditEvents[i])
			}
		}
		// Paging walks the same events, one at a time.
		var walked []string
		q := url.Values{"page_size": {"1"}}
		for {
			p, code := auditOf(t, env, "/api/admin/audit-events", root, q)
			if code != 200 || len(p.AuditEvents) > 1 {
				t.Fatalf("page: %d %+v", code, p)
			}
			for _, e := range p.AuditEvents {
				walked = append(walked, e.ID)
			}
			if p.NextPageToken == "" {
				break
			}
			q.Set("page_token", p.NextPageToken)
		}
		if len(walked) != len(page.AuditEvents) || walked[0] != page.AuditEvents[0].ID {
			t.Fatalf("paging walked %d events, the list has %d", len(walked), len(page.AuditEvents))
		}
		// Filters.
		for name, c := range map[string]struct {
			query url.Values
			want  int
		}{
			"by action":        {url.Values{"action": {"TenantService.UpdateTenant"}}, 2},
			"by action prefix": {url.Values{"action": {"TenantService."}}, 3},
			"by resource":      {url.Values{"resource_type": {"tenant"}, "resource_id": {"acme"}}, 2},
			"by actor":         {url.Values{"actor": {env.RootClientID}, "action": {"TenantService.CreateTenant"}}, 1},
			"until long ago":   {url.Values{"until": {"2000-01-01T00:00:00Z"}}, 0},
			"since now":        {url.Values{"since": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}}, 0},
		} {
			p, code := auditOf(t, env, "/api/admin/audit-events", root, c.query)
			if code != 200 || len(p.AuditEvents) != c.want {
				t.Errorf("%s: %d, %d events, want %d", name, code, len(p.AuditEvents), c.want)
			}
		}
		if _, code := auditOf(t, env, "/api/admin/audit-events", root, url.Values{"page_token": {q.Get("page_token")}, "action": {"x"}}); q.Get("page_token") != "" && code != 400 {
			t.Errorf("a page token of another filter: %d, want 400", code)
		}

		// A tenant reads its own trail with read_configuration, never the operator's nor another tenant's.
		acme := env.NewTenant(t, "globex")
		reader, readerSecret := env.CreateClient(t, "globex", acme.AdminToken, map[string]any{"authorization_server_id": "admin",
			"client_name": "auditor", "grant_types": []string{"client_credentials"}, "scopes": []string{"read_configuration"}})
		readOnly := env.Token(t, "globex", "admin", reader, readerSecret)
		if _, code := auditOf(t, env, "/api/admin/globex/audit-events", readOnly, nil); code != 200 {
			t.Fatalf("a read_configuration token on its tenant's trail: %d", code)
		}
		for name, c := range map[string]struct {
			path, token string
			want        int
		}{
			"the operator's trail with a tenant admin token": {"/api/admin/audit-events", acme.AdminToken, 403},
			"another tenant's trail":                         {"/api/admin/acme/audit-events", acme.AdminToken, 403},
			"the tenant's trail with a system token":         {"/api/admin/globex/audit-events", acme.SystemToken, 403},
			"no token":                                       {"/api/admin/globex/audit-events", "", 401},
		} {
			if _, code := auditOf(t, env, c.path, c.token, nil); code != c.want {
				t.Errorf("%s: %d, want %d", name, code, c.want)
			}
		}
	})
}

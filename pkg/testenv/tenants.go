package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// CallJSON sends a JSON request with an optional bearer token and decodes a JSON answer into out (if not nil).
// It returns the status code.
func (e *Env) CallJSON(t testing.TB, method, path, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.HTTPURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// CreateTenant creates a tenant with the operator's token and returns its admin client.
func (e *Env) CreateTenant(t testing.TB, id string) (adminID, adminSecret string) {
	t.Helper()
	var out struct {
		AdminClient struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		} `json:"admin_client"`
	}
	if code := e.CallJSON(t, "POST", "/api/admin/tenants", e.RootToken(t), map[string]string{"id": id, "name": id}, &out); code != http.StatusCreated {
		t.Fatalf("create tenant %s: status %d", id, code)
	}
	return out.AdminClient.ClientID, out.AdminClient.ClientSecret
}

// AdminToken creates the tenant and returns a token of its admin client (scope manage_configuration).
func (e *Env) AdminToken(t testing.TB, tenant string) string {
	t.Helper()
	id, secret := e.CreateTenant(t, tenant)
	return e.Token(t, tenant, "admin", id, secret)
}

// CreateClient registers a client through the admin API and returns its id and secret.
func (e *Env) CreateClient(t testing.TB, tenant, adminToken string, client map[string]any) (id, secret string) {
	t.Helper()
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if code := e.CallJSON(t, "POST", fmt.Sprintf("/api/admin/%s/clients", tenant), adminToken, client, &out); code != http.StatusCreated {
		t.Fatalf("create client in %s: status %d", tenant, code)
	}
	return out.ClientID, out.ClientSecret
}

// Tenant is a created tenant with tokens for its planes.
type Tenant struct {
	ID          string
	AdminID     string
	AdminSecret string
	AdminToken  string
	SystemID    string
	SystemToken string
}

// NewTenant creates a tenant, gets its admin token, and creates a system-workspace client with scope identity.
func (e *Env) NewTenant(t testing.TB, id string) *Tenant {
	t.Helper()
	tn := &Tenant{ID: id}
	tn.AdminID, tn.AdminSecret = e.CreateTenant(t, id)
	tn.AdminToken = e.Token(t, id, "admin", tn.AdminID, tn.AdminSecret)
	sysID, sysSecret := e.CreateClient(t, id, tn.AdminToken, map[string]any{
		"authorization_server_id": "system", "client_name": "identity-admin",
		"grant_types": []string{"client_credentials"}, "scopes": []string{"identity"},
	})
	tn.SystemID = sysID
	tn.SystemToken = e.Token(t, id, "system", sysID, sysSecret)
	return tn
}

// SystemToken creates the tenant and returns a token of its system workspace with scope identity.
func (e *Env) SystemToken(t testing.TB, tenant string) string {
	t.Helper()
	return e.NewTenant(t, tenant).SystemToken
}

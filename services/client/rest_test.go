package client_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// restClient is a client as the REST facade shows it.
type restClient struct {
	ClientID     string   `json:"client_id"`
	ClientSecret *string  `json:"client_secret"`
	Audience     []string `json:"audience"`
	GrantTypes   []string `json:"grant_types"`
}

// TestRESTContract drives the admin API as the contract describes it, and the token endpoint with the secrets it
// hands out.
func TestRESTContract(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := start(t, b)
		e.tenant(t, "acme")
		tok := e.tokens["acme"]
		if code := e.CallJSON(t, "POST", "/api/admin/acme/servers", tok, map[string]any{"id": "apps", "grant_types": []string{"client_credentials"}}, nil); code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("create workspace: %d", code)
		}
		var empty map[string]any
		if code := e.CallJSON(t, "GET", "/api/admin/acme/servers/apps/clients", tok, nil, &empty); code != http.StatusOK {
			t.Fatalf("list: %d", code)
		}
		if list, ok := empty["clients"].([]any); !ok || len(list) != 0 {
			t.Fatalf("an empty list must be [] in JSON: %v", empty)
		}

		var created restClient
		if code := e.CallJSON(t, "POST", "/api/admin/acme/clients", tok, map[string]any{
			"authorization_server_id": "apps", "client_name": "backend", "grant_types": []string{"client_credentials"},
			"token_endpoint_auth_method": "client_secret_basic"}, &created); code != http.StatusCreated {
			t.Fatalf("create client: %d", code)
		}
		if created.ClientSecret == nil || *created.ClientSecret == "" || !slices.Equal(created.Audience, []string{created.ClientID}) {
			t.Fatalf("create answered %+v", created)
		}
		secret := *created.ClientSecret

		var got map[string]any
		if code := e.CallJSON(t, "GET", "/api/admin/acme/clients/"+created.ClientID, tok, nil, &got); code != http.StatusOK {
			t.Fatalf("get client: %d", code)
		}
		if _, has := got["client_secret"]; has {
			t.Fatalf("GET shows client_secret: %v", got)
		}

		for _, tt := range []struct {
			name  string
			body  map[string]any
			codes []int
		}{
			{"undefined scope", map[string]any{"authorization_server_id": "apps", "scopes": []string{"no.such.scope"}}, []int{400}},
			{"unknown workspace", map[string]any{"authorization_server_id": "no-such-ws"}, []int{400, 404}},
			{"grant not enabled", map[string]any{"authorization_server_id": "apps", "grant_types": []string{"password"}}, []int{400}},
		} {
			var errBody struct {
				Error string `json:"error"`
			}
			if code := e.CallJSON(t, "POST", "/api/admin/acme/clients", tok, tt.body, &errBody); !slices.Contains(tt.codes, code) {
				t.Errorf("%s: status %d, want %v", tt.name, code, tt.codes)
			}
		}

		if code := e.CallJSON(t, "POST", "/api/admin/acme/token-policies", tok, map[string]any{"id": "webhooks", "title": "Webhooks",
			"access_token_ttl": "600s", "refresh_token_ttl": "7776000s", "allowed_scopes": []string{"*:webhooks/**"}}, nil); code != http.StatusCreated {
			t.Fatalf("create token policy: %d", code)
		}
		if code := e.CallJSON(t, "POST", "/api/admin/acme/token-policies", tok, map[string]any{"id": "webhooks"}, nil); code != http.StatusConflict {
			t.Fatalf("duplicate token policy: %d", code)
		}

		token := func(secret string) int {
			req, _ := http.NewRequest("POST", e.Issuer("acme", "apps")+"/oauth2/token",
				strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(created.ClientID, secret)
			resp, err := e.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := token(secret); code != http.StatusOK {
			t.Fatalf("token with the created secret: %d", code)
		}
		var rotated struct {
			ClientSecret string `json:"client_secret"`
		}
		if code := e.CallJSON(t, "POST", "/api/admin/acme/clients/"+created.ClientID+"/rotate-secret", tok, map[string]any{}, &rotated); code != http.StatusOK || rotated.ClientSecret == "" {
			t.Fatalf("rotate: %d %+v", code, rotated)
		}
		if code := token(secret); code != http.StatusUnauthorized {
			t.Fatalf("token with the rotated-out secret: %d, want 401", code)
		}
		if code := token(rotated.ClientSecret); code != http.StatusOK {
			t.Fatalf("token with the new secret: %d", code)
		}
	})
}

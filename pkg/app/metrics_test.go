package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/authplane/authplane/pkg/testenv"
)

// TestMetricsListenerAndTenantLabels scrapes a real server configured as an operator would: /metrics on the HTTP
// address with per-tenant series by default, or on a listener of its own (and only there), with the token counters
// reduced to one series per grant type or error code.
func TestMetricsListenerAndTenantLabels(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		// ownListener: /metrics is on the metrics listener and 404 on the HTTP address.
		ownListener bool
		want        []string
		// unwanted: a scrape line that starts with one of these is a defect.
		unwanted []string
	}{
		{
			name: "by default on the HTTP address, per tenant and workspace",
			want: []string{
				`authplane_tokens_issued_total{grant="client_credentials",tenant="acme",workspace="admin"} 2`,
				`authplane_tokens_issued_total{grant="client_credentials",tenant="globex",workspace="admin"} 1`,
				`authplane_tokens_issued_total{grant="client_credentials",tenant="root",workspace="admin"} 1`,
				`authplane_token_errors_total{error="invalid_client",tenant="acme",workspace="admin"} 1`,
				`authplane_token_errors_total{error="invalid_client",tenant="globex",workspace="admin"} 1`,
			},
			unwanted: []string{`authplane_tokens_issued_total{grant="client_credentials"}`, `authplane_token_errors_total{error="invalid_client"}`},
		},
		{
			name: "on a listener of its own, without tenant labels",
			env: map[string]string{
				"AUTHPLANE_METRICS_ADDR": "127.0.0.1:0", "AUTHPLANE_METRICS_TENANT_LABELS": "false",
			},
			ownListener: true,
			want: []string{
				`authplane_tokens_issued_total{grant="client_credentials"} 4`,
				`authplane_token_errors_total{error="invalid_client"} 2`,
				// the other collectors are unchanged
				`authplane_http_requests_total{method="POST",route="/api/admin/tenants",status="201"} 2`,
			},
			unwanted: []string{`authplane_tokens_issued_total{grant="client_credentials",`, `authplane_token_errors_total{error="invalid_client",`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.Start(t, testenv.WithEnv(tc.env))
			if tc.ownListener != (env.MetricsURL != "") {
				t.Fatalf("metrics listener %q, want one: %v", env.MetricsURL, tc.ownListener)
			}
			// One operator token, two tenants, three admin tokens and two refusals.
			root := env.RootToken(t)
			creds := map[string][2]string{}
			for _, id := range []string{"acme", "globex"} {
				var out struct {
					AdminClient struct {
						ClientID     string `json:"client_id"`
						ClientSecret string `json:"client_secret"`
					} `json:"admin_client"`
				}
				if code := env.CallJSON(t, "POST", "/api/admin/tenants", root, map[string]string{"id": id}, &out); code != http.StatusCreated {
					t.Fatalf("create tenant %s: %d", id, code)
				}
				creds[id] = [2]string{out.AdminClient.ClientID, out.AdminClient.ClientSecret}
			}
			for _, id := range []string{"acme", "acme", "globex"} {
				env.Token(t, id, "admin", creds[id][0], creds[id][1])
			}
			for _, id := range []string{"acme", "globex"} {
				if got := tokenStatusAt(t, env, id, creds[id][0], "wrong-"+creds[id][1]); got != http.StatusUnauthorized {
					t.Fatalf("a wrong secret for %s: %d", id, got)
				}
			}

			scrapeURL := env.HTTPURL
			if tc.ownListener {
				scrapeURL = env.MetricsURL
				if code, _ := get(t, env, env.HTTPURL+"/metrics"); code != http.StatusNotFound {
					t.Errorf("/metrics on the HTTP address with a metrics listener: %d, want 404", code)
				}
				if code, _ := get(t, env, env.MetricsURL+"/api/admin/tenants"); code != http.StatusNotFound {
					t.Errorf("the metrics listener serves the API: %d, want 404", code)
				}
				if code, _ := get(t, env, env.HTTPURL+"/readyz"); code != http.StatusOK {
					t.Errorf("/readyz stays on the HTTP address: %d", code)
				}
			}
			code, body := get(t, env, scrapeURL+"/metrics")
			if code != http.StatusOK {
				t.Fatalf("scrape %s/metrics: %d", scrapeURL, code)
			}
			lines := strings.Split(body, "\n")
			for _, want := range tc.want {
				if !contains(lines, want) {
					t.Errorf("the scrape lacks the line %s", want)
				}
			}
			for _, line := range lines {
				for _, bad := range tc.unwanted {
					if strings.HasPrefix(line, bad) {
						t.Errorf("unexpected series %s", line)
					}
				}
			}
		})
	}
}

func tokenStatusAt(t *testing.T, env *testenv.Env, tenant, id, secret string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", env.Issuer(tenant, "admin")+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(t *testing.T, env *testenv.Env, url string) (int, string) {
	t.Helper()
	resp, err := env.HTTP.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

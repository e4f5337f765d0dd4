package token_test

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/authplane/authplane/pkg/testenv"
	"github.com/authplane/authplane/pkg/testenv/testdns"
)

// logBuffer collects the server's log across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// A verifier's name that resolves to a denied address when the token service connects is refused then, whether
// it resolved to an allowed address when it was configured (DNS rebinding) or to none at all: the verifier behind
// the denied address is never contacted, and the grant goes on to the next source. The denied addresses used here
// reach real verifiers on this machine, so that only the dialer's check stands between the grant and them:
// 0.0.0.0 (built in; Linux connects it to the host itself) and 127.0.0.2 (an operator's network).
func TestVerifierAddressesAreCheckedAgainWhenTheTokenServiceConnects(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		dns := testdns.Start(t)
		logs := &logBuffer{}
		env := testenv.Start(t, testenv.WithBackend(b), testenv.WithResolver(dns.Resolver()), testenv.WithLog(logs),
			testenv.WithEnv(map[string]string{"AUTHPLANE_EGRESS_DENY_NETWORKS": "127.0.0.2/32"}))
		tn := env.NewTenant(t, "acme")
		calls := &verifierLog{}
		// Each verifier accepts anyone and closes its connections, so that every grant dials (and resolves) anew.
		verifier := func(name string, status int) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var body map[string]any
				_ = json.NewDecoder(r.Body).Decode(&body)
				calls.add(name, body)
				w.Header().Set("Connection", "close")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`{"sub":"` + name + `"}`))
			})
		}
		rebound := httptest.NewServer(verifier("rebound", http.StatusOK)) // on 127.0.0.1
		t.Cleanup(rebound.Close)
		operatorDenied := httptest.NewUnstartedServer(verifier("operator-denied", http.StatusOK))
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("cannot listen on 127.0.0.2: %v", err)
		}
		operatorDenied.Listener.Close()
		operatorDenied.Listener = ln
		operatorDenied.Start()
		t.Cleanup(operatorDenied.Close)
		fallback := httptest.NewServer(verifier("fallback", http.StatusUnauthorized))
		t.Cleanup(fallback.Close)

		dns.Set("rebound.verifiers.test", netip.MustParseAddr("127.0.0.1"))
		dns.Set("later.verifiers.test") // no address yet
		ad := "/api/admin/acme"
		call(t, env, "POST", ad+"/servers", tn.AdminToken, map[string]any{"id": "partner", "name": "partner", "grant_types": []string{"password"}}, nil, http.StatusCreated)
		clientID, secret := env.CreateClient(t, "acme", tn.AdminToken, map[string]any{"authorization_server_id": "partner", "client_name": "partner app",
			"grant_types": []string{"password"}, "token_endpoint_auth_method": "client_secret_post"})
		port := func(s *httptest.Server) string { return strconv.Itoa(s.Listener.Addr().(*net.TCPAddr).Port) }
		for i, u := range []string{
			"http://later.verifiers.test:" + port(operatorDenied) + "/verify",
			"http://rebound.verifiers.test:" + port(rebound) + "/verify",
			fallback.URL + "/verify",
		} {
			call(t, env, "POST", ad+"/servers/partner/idps/external", tn.AdminToken, map[string]any{"name": "v" + u, "url": u, "display_order": i + 1}, nil, http.StatusCreated)
		}
		grant := func() pwAnswer {
			t.Helper()
			resp, err := env.HTTP.PostForm(env.Issuer("acme", "partner")+"/oauth2/token", url.Values{"grant_type": {"password"},
				"client_id": {clientID}, "client_secret": {secret}, "username": {"ext-user"}, "password": {"ext-pass"}})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			a := pwAnswer{status: resp.StatusCode}
			_ = json.NewDecoder(resp.Body).Decode(&a)
			return a
		}

		// While a name resolves to an allowed address, it leads to its verifier.
		if a := grant(); a.status != http.StatusOK {
			t.Fatalf("grant through the name at 127.0.0.1: %d %s %s", a.status, a.Error, a.Description)
		}
		if n := names(calls.take()); n != "rebound" {
			t.Fatalf("calls %q, want rebound", n)
		}

		dns.Set("rebound.verifiers.test", netip.MustParseAddr("0.0.0.0"))
		dns.Set("later.verifiers.test", netip.MustParseAddr("127.0.0.2"))
		a := grant()
		if a.status != http.StatusBadRequest || a.Error != "invalid_grant" {
			t.Errorf("grant after the names moved to denied addresses: %d %s %s, want 400 invalid_grant", a.status, a.Error, a.Description)
		}
		if n := names(calls.take()); n != "fallback" {
			t.Errorf("calls %q, want fallback only: the verifiers behind denied addresses must not be contacted", n)
		}
		if got := strings.Count(logs.String(), "denied by the egress policy"); got != 2 {
			t.Errorf("%d refusals logged, want 2 (one per denied verifier)", got)
		}
	})
}

package token_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
)

// TestPasswordGrantAcrossProcesses runs the pool, the token service and the gateway in separate servers: the
// pool's process verifies the token service's self-minted system token through the remote JWKS.
func TestPasswordGrantAcrossProcesses(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		dbURL := testenv.DatabaseURL(t, b)
		masterKey := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
		groups := [][]string{{svc.Tenant, svc.Workspace, svc.Schema, svc.Client}, {svc.Pool}, {svc.Token}, {svc.Gateway}}
		httpLns, grpcLns := make([]net.Listener, len(groups)), make([]net.Listener, len(groups))
		addrs := map[string]string{}
		for i, g := range groups {
			httpLns[i], grpcLns[i] = testenv.Listen(t), testenv.Listen(t)
			for _, name := range g {
				addrs[name] = grpcLns[i].Addr().String()
			}
		}
		issuer := "http://" + httpLns[len(groups)-1].Addr().String()
		var gateway *testenv.Env
		for i, g := range groups {
			gateway = testenv.Start(t, testenv.WithDatabase(dbURL, masterKey), testenv.WithServices(g, addrs),
				testenv.WithListeners(httpLns[i], grpcLns[i]), testenv.WithIssuer(issuer), testenv.WithRootSecret("split-root-secret"))
		}
		w := newROPCWorld(t, gateway, "acme")
		a := passwordGrant(t, w, w.appID, w.appSecret, url.Values{"username": {"jane@example.com"}, "password": {janePassword}, "scope": {"openid email"}})
		if a.status != 200 || a.IDToken == "" {
			t.Fatalf("password grant: %d %s %s", a.status, a.Error, a.Description)
		}
		if c := accessClaims(t, w, a.AccessToken); c["sub"] != w.jane {
			t.Errorf("claims %v", c)
		}
		if code, out, _ := userinfo(t, w, "GET", a.AccessToken); code != 200 || out["email"] != "jane@example.com" {
			t.Errorf("userinfo: %d %v", code, out)
		}
		if a := passwordGrant(t, w, w.appID, w.appSecret, url.Values{"username": {"jane@example.com"}, "password": {"wrong"}}); a.status != 400 || a.Error != "invalid_grant" {
			t.Errorf("wrong password: %d %s", a.status, a.Error)
		}
	})
}

// TestBrowserSignInAcrossProcesses runs browser sign-in with the gateway, the token service and the pool in separate
// servers: the pages, cookies and CORS answers cross gRPC as they do in one process.
func TestBrowserSignInAcrossProcesses(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		dbURL := testenv.DatabaseURL(t, b)
		masterKey := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
		groups := [][]string{{svc.Tenant, svc.Workspace, svc.Schema, svc.Client}, {svc.Pool}, {svc.Token}, {svc.Gateway}}
		httpLns, grpcLns := make([]net.Listener, len(groups)), make([]net.Listener, len(groups))
		addrs := map[string]string{}
		for i, g := range groups {
			httpLns[i], grpcLns[i] = testenv.Listen(t), testenv.Listen(t)
			for _, name := range g {
				addrs[name] = grpcLns[i].Addr().String()
			}
		}
		issuer := "http://" + httpLns[len(groups)-1].Addr().String()
		var gateway *testenv.Env
		for i, g := range groups {
			gateway = testenv.Start(t, testenv.WithDatabase(dbURL, masterKey), testenv.WithServices(g, addrs),
				testenv.WithListeners(httpLns[i], grpcLns[i]), testenv.WithIssuer(issuer), testenv.WithRootSecret("split-root-secret"))
		}
		w := newBrowserWorld(t, gateway, "acme")
		spa := w.oauthConfig(w.spaID, "", "openid", "email")
		verifier := oauth2.GenerateVerifier()
		br := newBrowser(t, gateway)
		q := callbackParams(t, w.signIn(t, br, spa.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), janePassword))
		if _, err := spa.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
			t.Fatal(err)
		}
		q = callbackParams(t, br.get(spa.AuthCodeURL("sso", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none"))))
		if q.Get("code") == "" {
			t.Fatalf("single sign-on across processes: %v", q)
		}
		req, _ := http.NewRequest(http.MethodOptions, w.issuer()+"/oauth2/token", nil)
		req.Header.Set("Origin", "http://localhost:5173")
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
			t.Errorf("CORS preflight across processes: %d %v", resp.StatusCode, resp.Header)
		}
	})
}

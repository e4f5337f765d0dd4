package token_test

import (
	"net"
	"net/url"
	"testing"

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

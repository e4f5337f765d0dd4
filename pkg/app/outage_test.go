package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	"github.com/authplane/authplane/pkg/testenv"
)

// dbProxy is a TCP proxy between a server and PostgreSQL that a test cuts (every proxied connection is closed and
// new ones are refused, as when the database host goes away) and restores.
type dbProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	p := &dbProxy{ln: testenv.Listen(t), target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		_ = p.ln.Close()
		p.cut()
	})
	return p
}

func (p *dbProxy) addr() string { return p.ln.Addr().String() }

func (p *dbProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

// pipe copies both ways between a client connection and a new connection to the target, until either side ends
// or the proxy is cut.
func (p *dbProxy) pipe(c net.Conn) {
	if !p.track(c) {
		refuse(c)
		return
	}
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil || !p.track(s) {
		if s != nil {
			_ = s.Close()
		}
		refuse(c)
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// track registers a connection, or reports false while the proxy is cut.
func (p *dbProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// refuse closes a connection with a reset, the way a host without a listening database answers.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// cut closes every proxied connection and refuses new ones until restore.
func (p *dbProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		refuse(c)
		delete(p.conns, c)
	}
}

func (p *dbProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// answer is an HTTP answer with its JSON body (contract error or RFC 6749 error).
type answer struct {
	status int
	body   map[string]any
	raw    string
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.raw) }

// do sends a request; a transport failure is an answer with status 0 (the caller judges it), so do is safe in
// any goroutine.
func do(env *testenv.Env, req *http.Request) answer {
	resp, err := env.HTTP.Do(req)
	if err != nil {
		return answer{raw: err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func restCall(env *testenv.Env, method, path, token string, body any) answer {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = strings.NewReader(string(raw))
	}
	req, _ := http.NewRequest(method, env.HTTPURL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return do(env, req)
}

func tokenCall(env *testenv.Env, tenant, server, id, secret string, form url.Values) answer {
	req, _ := http.NewRequest("POST", env.Issuer(tenant, server)+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return do(env, req)
}

func readyz(env *testenv.Env) int {
	req, _ := http.NewRequest("GET", env.HTTPURL+"/readyz", nil)
	return do(env, req).status
}

// isUnavailableREST is the contract's 503: {"status_code":503,"error":"…","error_code":"unavailable"}.
func isUnavailableREST(a answer) bool {
	msg, _ := a.body["error"].(string)
	return a.status == http.StatusServiceUnavailable && a.body["error_code"] == "unavailable" &&
		a.body["status_code"] == float64(http.StatusServiceUnavailable) && msg != ""
}

// isUnavailableOAuth is RFC 6749's 503: {"error":"temporarily_unavailable"}.
func isUnavailableOAuth(a answer) bool {
	return a.status == http.StatusServiceUnavailable && a.body["error"] == "temporarily_unavailable"
}

func mustStatus(t *testing.T, a answer, want int, what string) {
	t.Helper()
	if a.status != want {
		t.Fatalf("%s: %s, want %d", what, a, want)
	}
}

// writeLog remembers every create the test made and what it answered.
type writeLog struct {
	mu     sync.Mutex
	writes []write
}

type write struct {
	clientID string
	phase    string // before, during (the whole cut), after, or across (concurrent with the cut and the restore)
	status   int
}

func (l *writeLog) create(env *testenv.Env, token, phase, clientID string) answer {
	a := restCall(env, "POST", "/api/admin/acme/clients", token, map[string]any{
		"client_id": clientID, "authorization_server_id": "shop", "client_name": clientID,
		"grant_types": []string{"client_credentials"},
	})
	l.mu.Lock()
	l.writes = append(l.writes, write{clientID: clientID, phase: phase, status: a.status})
	l.mu.Unlock()
	return a
}

// TestDatabaseOutageAnswersUnavailableAndRecoversWithoutRestart puts a TCP proxy between a server and
// PostgreSQL, cuts it and restores it. While it is cut every endpoint answers 503 (OAuth:
// temporarily_unavailable, REST: unavailable, gRPC: Unavailable) and never 500; once it is restored everything
// works again in the same process, the change listener included; no acknowledged write is lost and no write
// refused during the cut is saved.
func TestDatabaseOutageAnswersUnavailableAndRecoversWithoutRestart(t *testing.T) {
	directURL := testenv.DatabaseURL(t, testenv.Postgres)
	u, err := url.Parse(directURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startDBProxy(t, u.Host)
	u.Host = proxy.addr()
	env := testenv.Start(t, testenv.WithDatabase(u.String(), ""))
	ctx := context.Background()

	// A tenant with a workspace whose identity pool holds jane, a client that logs her in (cached by the token
	// service before the cut), and a client that never asked for a token (not cached).
	acme := env.NewTenant(t, "acme")
	admin := acme.AdminToken
	mustStatus(t, restCall(env, "POST", "/api/admin/acme/servers", admin, map[string]any{"id": "shop", "name": "Shop",
		"grant_types": []string{"password", "client_credentials"}}), 201, "workspace")
	mustStatus(t, restCall(env, "POST", "/api/identity/acme/system/pools", acme.SystemToken, map[string]any{"id": "people",
		"name": "People", "authentication_mechanisms": []string{"password"}}), 201, "pool")
	mustStatus(t, restCall(env, "POST", "/api/identity/acme/system/pools/people/users", acme.SystemToken, map[string]any{
		"status": "active", "identifiers": []map[string]string{{"type": "email", "identifier": "jane@example.com"}},
		"credentials": []map[string]string{{"type": "password", "password": "S3cure-pass!word"}}}), 201, "user")
	mustStatus(t, restCall(env, "POST", "/api/admin/acme/servers/shop/idps/identity_pool", admin, map[string]any{
		"name": "People", "identity_pool_id": "people"}), 201, "idp")
	appID, appSecret := env.CreateClient(t, "acme", admin, map[string]any{"authorization_server_id": "shop",
		"client_name": "app", "grant_types": []string{"password"}})
	lateID, lateSecret := env.CreateClient(t, "acme", admin, map[string]any{"authorization_server_id": "shop",
		"client_name": "late", "grant_types": []string{"client_credentials"}})
	janeLogin := url.Values{"grant_type": {"password"}, "username": {"jane@example.com"}, "password": {"S3cure-pass!word"}}
	cc := url.Values{"grant_type": {"client_credentials"}}
	mustStatus(t, tokenCall(env, "acme", "shop", appID, appSecret, janeLogin), 200, "password grant before the cut")

	clients := clientv1.NewClientServiceClient(env.GRPC)
	grpcCtx := testenv.WithToken(ctx, admin)
	var log writeLog
	for i := range 3 {
		mustStatus(t, log.create(env, admin, "before", fmt.Sprintf("before-%d", i)), 201, "write before the cut")
	}

	// Writes keep coming while the database goes away and comes back.
	stopStream := make(chan struct{})
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		pace := time.NewTicker(10 * time.Millisecond) // a steady load, not a flood of thousands of clients
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopStream:
				return
			case <-pace.C:
			}
			log.create(env, admin, "across", fmt.Sprintf("across-%04d", i))
		}
	}()
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopStream) }); <-streamDone }
	t.Cleanup(stop) // before the server stops, should the test end early
	waitForWrites := func(n int) { t.Helper(); waitFor(t, func() bool { return log.count("across") >= n }) }
	waitForWrites(3)

	proxy.cut()
	waitFor(t, func() bool { return readyz(env) == http.StatusServiceUnavailable })

	t.Run("while the database is unreachable", func(t *testing.T) {
		if a := tokenCall(env, "acme", "shop", lateID, lateSecret, cc); !isUnavailableOAuth(a) {
			t.Errorf("client_credentials for a client not yet cached: %s, want 503 temporarily_unavailable", a)
		}
		if a := tokenCall(env, "acme", "shop", appID, appSecret, janeLogin); !isUnavailableOAuth(a) {
			t.Errorf("password grant: %s, want 503 temporarily_unavailable", a)
		}
		for i := range 3 {
			if a := log.create(env, admin, "during", fmt.Sprintf("during-%d", i)); !isUnavailableREST(a) {
				t.Errorf("REST write: %s, want the contract's 503 unavailable", a)
			}
		}
		if a := restCall(env, "GET", "/api/admin/acme/clients/before-0", admin, nil); !isUnavailableREST(a) {
			t.Errorf("REST read: %s, want the contract's 503 unavailable", a)
		}
		_, err := clients.CreateClient(grpcCtx, &clientv1.CreateClientRequest{TenantId: "acme", Client: &clientv1.Client{
			ClientId: "during-grpc", AuthorizationServerId: "shop", ClientName: "during-grpc"}})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("gRPC write: %v, want Unavailable", err)
		}
		if _, err := clients.GetClient(grpcCtx, &clientv1.GetClientRequest{TenantId: "acme", ClientId: "before-0"}); status.Code(err) != codes.Unavailable {
			t.Errorf("gRPC read: %v, want Unavailable", err)
		}
		if code := readyz(env); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz: %d, want 503", code)
		}
	})
	waitForWrites(log.count("across") + 2) // the stream wrote during the cut too

	proxy.restore()
	t.Run("once it is back, in the same process", func(t *testing.T) {
		waitFor(t, func() bool { return readyz(env) == http.StatusOK })
		pollUntil(t, "client_credentials for the client not yet cached", func() (bool, string) {
			a := tokenCall(env, "acme", "shop", lateID, lateSecret, cc)
			return a.status == 200, a.String()
		})
		pollUntil(t, "password grant", func() (bool, string) {
			a := tokenCall(env, "acme", "shop", appID, appSecret, janeLogin)
			return a.status == 200, a.String()
		})
		pollUntil(t, "REST read", func() (bool, string) {
			a := restCall(env, "GET", "/api/admin/acme/clients/before-0", admin, nil)
			return a.status == 200, a.String()
		})
		pollUntil(t, "gRPC read", func() (bool, string) {
			_, err := clients.GetClient(grpcCtx, &clientv1.GetClientRequest{TenantId: "acme", ClientId: "before-0"})
			return err == nil, fmt.Sprint(err)
		})
		for i := range 3 {
			a := log.create(env, admin, "after", fmt.Sprintf("after-%d", i))
			mustStatus(t, a, 201, "REST write after the restore")
		}
		_, err := clients.CreateClient(grpcCtx, &clientv1.CreateClientRequest{TenantId: "acme", Client: &clientv1.Client{
			ClientId: "after-grpc", AuthorizationServerId: "shop", ClientName: "after-grpc"}})
		if err != nil {
			t.Fatalf("gRPC write after the restore: %v", err)
		}
	})
	stop()

	t.Run("the change listener reconnected", func(t *testing.T) {
		// Another process, on the database directly, rotates app's secret: this process refuses the old secret
		// at once only if its listener hears the announcement (its cache would keep the old one for minutes).
		other := testenv.Start(t, testenv.WithDatabase(directURL, env.MasterKey), testenv.WithRootSecret(env.RootSecret))
		mustStatus(t, tokenCall(env, "acme", "shop", appID, appSecret, janeLogin), 200, "password grant (cached client)")
		otherAdmin := other.Token(t, "acme", "admin", acme.AdminID, acme.AdminSecret)
		mustStatus(t, restCall(other, "POST", "/api/admin/acme/clients/"+appID+"/rotate-secret", otherAdmin, map[string]any{}),
			200, "rotate app's secret in the other process")
		waitFor(t, func() bool {
			return tokenCall(env, "acme", "shop", appID, appSecret, janeLogin).status == http.StatusUnauthorized
		})
	})

	t.Run("no acknowledged write lost, no refused write saved", func(t *testing.T) {
		log.mu.Lock()
		writes := append([]write(nil), log.writes...)
		log.mu.Unlock()
		for _, w := range writes {
			if w.status != 201 && w.status != http.StatusServiceUnavailable {
				t.Errorf("write %s (%s) answered %d, want 201 or 503", w.clientID, w.phase, w.status)
			}
			got := restCall(env, "GET", "/api/admin/acme/clients/"+w.clientID, admin, nil).status
			switch {
			case w.status == 201 && got != 200:
				t.Errorf("write %s (%s) was acknowledged, but reading it answers %d", w.clientID, w.phase, got)
			case w.phase == "during" && got != http.StatusNotFound:
				t.Errorf("write %s was refused during the cut, but reading it answers %d", w.clientID, got)
			}
		}
		if _, err := clients.GetClient(grpcCtx, &clientv1.GetClientRequest{TenantId: "acme", ClientId: "during-grpc"}); status.Code(err) != codes.NotFound {
			t.Errorf("the gRPC write refused during the cut: %v, want NotFound", err)
		}
		if n := log.count("across"); n < 5 {
			t.Errorf("only %d concurrent writes", n)
		}
	})
}

// count is how many writes of a phase were made.
func (l *writeLog) count(phase string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.writes {
		if w.phase == phase {
			n++
		}
	}
	return n
}

// pollUntil polls until ok holds (the way a client retries after a 503) and fails with the last answer seen.
func pollUntil(t *testing.T, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		done, last := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not back within 30s; last answer %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/authplane/authplane/pkg/app"
	"github.com/authplane/authplane/pkg/config"
	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
	"github.com/authplane/authplane/pkg/testenv/testca"
	"github.com/authplane/authplane/pkg/tlsfiles"
)

const yearOfHSTS = "max-age=31536000; includeSubDomains"

// httpsGet asks url on a new connection (no keep-alive, no session resumption) with the client TLS configuration
// c, or in plaintext when c is nil; it returns the answer, or the transport error as a string.
func httpsGet(c *tls.Config, url string) (*http.Response, string, error) {
	tr := &http.Transport{TLSClientConfig: c, ForceAttemptHTTP2: true, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, strings.TrimSpace(string(body)), nil
}

// grpcHealth asks the gRPC health service on a new connection with the client credentials creds, and returns the
// certificate the server presented (nil in plaintext).
func grpcHealth(t *testing.T, addr string, creds credentials.TransportCredentials) (*x509.Certificate, error) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var p peer.Peer
	resp, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	if err != nil {
		return nil, err
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %s", resp.Status)
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		return info.State.PeerCertificates[0], nil
	}
	return nil, nil
}

func trusting(t *testing.T, ca *testca.CA) *x509.CertPool {
	t.Helper()
	pool, err := tlsfiles.Pool(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// TestListenersServeTLSToClientsThatTrustTheCA serves HTTPS and gRPC over TLS with one certificate and checks who
// gets in: a client trusting the CA does, over HTTP/2 with HSTS on every answer; a client that does not trust the
// CA, expects another name, offers only TLS 1.1 or speaks plaintext is refused.
func TestListenersServeTLSToClientsThatTrustTheCA(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Issue(t)
	certFile, keyFile := leaf.Files(t)
	env := testenv.Start(t, testenv.WithTLS(testenv.TLS{CertFile: certFile, KeyFile: keyFile, CAFile: ca.File}))
	if !strings.HasPrefix(env.HTTPURL, "https://") {
		t.Fatalf("HTTP URL %s", env.HTTPURL)
	}
	pool := trusting(t, ca)
	hostPort := strings.TrimPrefix(env.HTTPURL, "https://")

	// Every answer of the HTTPS listener, the gateway's and the process's own, an error included, carries HSTS.
	root := env.RootToken(t) // a token over HTTPS, with the operator's credentials
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/acme/admin/.well-known/openid-configuration",
		"/root/admin/.well-known/openid-configuration", "/api/admin/tenants", "/nowhere"} {
		req, _ := http.NewRequest("GET", env.HTTPURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+root)
		resp, err := env.HTTP.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 || resp.ProtoMajor != 2 {
			t.Errorf("GET %s: %s over %+v, want HTTP/2 over TLS 1.2 or later", path, resp.Proto, resp.TLS)
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != yearOfHSTS {
			t.Errorf("GET %s (%d): Strict-Transport-Security %q, want %q", path, resp.StatusCode, got, yearOfHSTS)
		}
	}
	if code := env.CallJSON(t, "GET", "/api/admin/tenants", root, nil, nil); code != http.StatusOK {
		t.Fatalf("the operator lists tenants over HTTPS: %d", code)
	}
	if _, grpcCode := operatorCall(t, env, env.GRPC, root); grpcCode != codes.OK {
		t.Fatalf("the operator lists tenants over gRPC with TLS: %s", grpcCode)
	}

	clients := []struct {
		name     string
		tls      *tls.Config // nil: plaintext
		wantHTTP string      // in the answer ("200 …") or in the error
		wantGRPC string      // "" when the call succeeds; else in the Unavailable error
	}{
		{"trusts the CA", &tls.Config{RootCAs: pool}, `200 {"status":"ok"}`, ""},
		{"trusts the CA and names the host localhost", &tls.Config{RootCAs: pool, ServerName: "localhost"}, "200 ", ""},
		{"trusts only the system's CAs", &tls.Config{}, "certificate signed by unknown authority", "certificate signed by unknown authority"},
		{"trusts the CA but expects another name", &tls.Config{RootCAs: pool, ServerName: "id.example.com"},
			"not id.example.com", "not id.example.com"},
		{"offers TLS 1.1 at most", &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
			"protocol version not supported", "protocol version not supported"},
		{"speaks plaintext", nil, "400 Client sent an HTTP request to an HTTPS server.", "connection"},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			url, creds := env.HTTPURL+"/healthz", credentials.NewTLS(c.tls)
			if c.tls == nil {
				url, creds = "http://"+hostPort+"/healthz", insecure.NewCredentials()
			}
			resp, body, err := httpsGet(c.tls, url)
			got := fmt.Sprint(err)
			if err == nil {
				got = fmt.Sprintf("%d %s", resp.StatusCode, body)
				if hsts := resp.Header.Get("Strict-Transport-Security"); (resp.TLS != nil) != (hsts != "") {
					t.Errorf("Strict-Transport-Security %q over TLS %v", hsts, resp.TLS != nil)
				}
			}
			if !strings.Contains(got, c.wantHTTP) {
				t.Errorf("HTTP: %s, want %q", got, c.wantHTTP)
			}
			served, err := grpcHealth(t, env.GRPCAddr, creds)
			switch {
			case c.wantGRPC == "" && err != nil:
				t.Errorf("gRPC: %v", err)
			case c.wantGRPC == "" && served.SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0:
				t.Errorf("gRPC: serial %s, want %s", served.SerialNumber, leaf.Cert.SerialNumber)
			case c.wantGRPC != "" && (status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), c.wantGRPC)):
				t.Errorf("gRPC: %v, want Unavailable with %q", err, c.wantGRPC)
			}
		})
	}
}

// TestReplacedCertificateFilesAreServedWithoutRestart replaces the certificate files of a running process, as a
// renewal does, and checks what new connections of HTTPS and gRPC see: a good new pair at once, a bad one never
// (the last good pair stays, and the log says why), while connections already open keep working.
func TestReplacedCertificateFilesAreServedWithoutRestart(t *testing.T) {
	ca := testca.New(t)
	first := ca.Issue(t)
	certFile, keyFile := first.Files(t)
	var log syncBuffer
	env := testenv.Start(t, testenv.WithTLS(testenv.TLS{CertFile: certFile, KeyFile: keyFile, CAFile: ca.File}), testenv.WithLog(&log))
	client := &tls.Config{RootCAs: trusting(t, ca)}
	serials := func() (httpSerial, grpcSerial string) {
		t.Helper()
		resp, _, err := httpsGet(client, env.HTTPURL+"/healthz")
		if err != nil {
			t.Fatalf("HTTPS: %v", err)
		}
		served, err := grpcHealth(t, env.GRPCAddr, credentials.NewTLS(client))
		if err != nil {
			t.Fatalf("gRPC: %v", err)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.String(), served.SerialNumber.String()
	}
	// A connection opened before any change: it must outlive the replacements.
	if _, err := healthpb.NewHealthClient(env.GRPC).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}

	second, third, other := ca.Issue(t), ca.Issue(t), ca.Issue(t)
	steps := []struct {
		name   string
		change func()
		serves *testca.Leaf
		logged string
	}{
		{"before any change", func() {}, first, ""},
		{"a new pair", func() { second.Write(t, certFile, keyFile) }, second, "TLS certificate reloaded"},
		{"a certificate with another certificate's key", func() {
			(&testca.Leaf{CertPEM: third.CertPEM, KeyPEM: other.KeyPEM}).Write(t, certFile, keyFile)
		}, second, "private key does not match public key"},
		{"an expired pair", func() { ca.Issue(t, testca.Expired()).Write(t, certFile, keyFile) }, second, "expired at"},
		{"a file that is not a certificate", func() {
			if err := os.WriteFile(certFile, []byte("renewal failed"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, second, "cannot be served"},
		{"a good pair again", func() { third.Write(t, certFile, keyFile) }, third, "TLS certificate reloaded"},
	}
	for _, step := range steps {
		before := len(log.String())
		step.change()
		want := step.serves.Cert.SerialNumber.String()
		if httpSerial, grpcSerial := serials(); httpSerial != want || grpcSerial != want {
			t.Fatalf("%s: HTTPS serves serial %s, gRPC %s; want %s", step.name, httpSerial, grpcSerial, want)
		}
		if logged := log.String()[before:]; !strings.Contains(logged, step.logged) {
			t.Errorf("%s: the log does not say %q:\n%s", step.name, step.logged, logged)
		}
	}
	if _, err := healthpb.NewHealthClient(env.GRPC).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a connection opened before the replacements: %v", err)
	}
}

// TestHSTSOnlyOnHTTPS: the header is sent over HTTPS with the configured max-age, never over plain HTTP, not even
// when the issuer is https (a proxy in front terminates TLS and sets it), and not at all with a max-age of 0.
func TestHSTSOnlyOnHTTPS(t *testing.T) {
	ca := testca.New(t)
	certFile, keyFile := ca.Issue(t).Files(t)
	tlsFiles := testenv.TLS{CertFile: certFile, KeyFile: keyFile, CAFile: ca.File}
	gatewayOnly := testenv.WithServices([]string{svc.Gateway}, nil)
	tests := []struct {
		name string
		opts []testenv.Option
		want string
	}{
		{"HTTPS by default", []testenv.Option{testenv.WithTLS(tlsFiles)}, yearOfHSTS},
		{"HTTPS with a max-age of an hour", []testenv.Option{testenv.WithTLS(tlsFiles), testenv.WithEnv(map[string]string{"AUTHPLANE_HSTS_MAX_AGE": "1h"})},
			"max-age=3600; includeSubDomains"},
		{"HTTPS with a max-age of 0", []testenv.Option{testenv.WithTLS(tlsFiles), testenv.WithEnv(map[string]string{"AUTHPLANE_HSTS_MAX_AGE": "0"})}, ""},
		{"plain HTTP", nil, ""},
		{"plain HTTP behind a proxy serving the https issuer", []testenv.Option{testenv.WithIssuer("https://id.example.com")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.Start(t, append(tc.opts, gatewayOnly)...)
			resp, err := env.HTTP.Get(env.HTTPURL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Strict-Transport-Security"); got != tc.want || resp.StatusCode != http.StatusOK {
				t.Errorf("%d, Strict-Transport-Security %q, want %q", resp.StatusCode, got, tc.want)
			}
		})
	}
}

// TestTLSThatCannotBeHadStopsTheStart: a process asked to serve TLS with files it cannot serve, or to verify the
// other services with a CA file that holds no CA, does not start, says why, and opens nothing first.
func TestTLSThatCannotBeHadStopsTheStart(t *testing.T) {
	ca := testca.New(t)
	certFile, keyFile := ca.Issue(t).Files(t)
	_, otherKey := ca.Issue(t).Files(t)
	expiredCert, expiredKey := ca.Issue(t, testca.Expired()).Files(t)
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"a key of another certificate", map[string]string{"AUTHPLANE_TLS_CERT_FILE": certFile, "AUTHPLANE_TLS_KEY_FILE": otherKey},
			"private key does not match public key"},
		{"an expired certificate", map[string]string{"AUTHPLANE_TLS_CERT_FILE": expiredCert, "AUTHPLANE_TLS_KEY_FILE": expiredKey}, "expired at"},
		{"a missing certificate file", map[string]string{"AUTHPLANE_TLS_CERT_FILE": certFile + ".missing", "AUTHPLANE_TLS_KEY_FILE": keyFile},
			"no such file"},
		{"a CA file holding a key", map[string]string{"AUTHPLANE_TLS_CA_FILE": keyFile}, "--tls-ca-file (AUTHPLANE_TLS_CA_FILE): CA file " + keyFile + ": block 1 is a PRIVATE KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dbFile := filepath.Join(t.TempDir(), "authplane.db")
			vars := map[string]string{"AUTHPLANE_DATABASE_URL": "sqlite:" + dbFile}
			for k, v := range tc.env {
				vars[k] = v
			}
			cfg, err := config.Parse(nil, func(k string) string { return vars[k] })
			if err != nil {
				t.Fatal(err)
			}
			a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatalf("started: %v", a)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			if _, err := os.Stat(dbFile); !os.IsNotExist(err) {
				t.Errorf("the database was opened before TLS was refused: %v", err)
			}
		})
	}
}

// TestMicroservicesTopologyOverTLS runs the gateway, the token service and the other services in separate
// processes on PostgreSQL, each serving its own certificate, calling each other over TLS verified by the CA file:
// tokens are issued and the admin API answers through them. A gateway that cannot verify them (no CA file, so
// plaintext; another CA; another name expected) gets nothing from them.
func TestMicroservicesTopologyOverTLS(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, testenv.Postgres)
	masterKey := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	rootSecret := "tls-topology-root-secret"
	ca := testca.New(t)
	groups := [][]string{{svc.Tenant, svc.Workspace, svc.Pool, svc.Schema, svc.Client}, {svc.Token}, {svc.Gateway}}
	httpLns, grpcLns := make([]net.Listener, len(groups)), make([]net.Listener, len(groups))
	addrs := map[string]string{}
	for i, g := range groups {
		httpLns[i], grpcLns[i] = testenv.Listen(t), testenv.Listen(t)
		for _, name := range g {
			addrs[name] = grpcLns[i].Addr().String()
		}
	}
	issuer := "https://" + httpLns[len(groups)-1].Addr().String()
	start := func(services []string, tlsFiles testenv.TLS, more ...testenv.Option) *testenv.Env {
		return testenv.Start(t, append([]testenv.Option{testenv.WithDatabase(dbURL, masterKey), testenv.WithServices(services, addrs),
			testenv.WithIssuer(issuer), testenv.WithRootSecret(rootSecret), testenv.WithTLS(tlsFiles)}, more...)...)
	}
	envs := make([]*testenv.Env, len(groups))
	for i, g := range groups {
		certFile, keyFile := ca.Issue(t).Files(t) // a certificate of its own, for its loopback address
		envs[i] = start(g, testenv.TLS{CertFile: certFile, KeyFile: keyFile, CAFile: ca.File}, testenv.WithListeners(httpLns[i], grpcLns[i]))
	}
	gateway, services := envs[len(groups)-1], envs[0]

	acme := gateway.NewTenant(t, "acme")
	id, secret := gateway.CreateClient(t, "acme", acme.AdminToken, map[string]any{
		"authorization_server_id": "admin", "client_name": "ops", "scopes": []string{"read_configuration"},
	})
	readToken := gateway.Token(t, "acme", "admin", id, secret, "read_configuration")
	mustOpen(t, gateway, services.GRPC, adminCall("acme"), readToken, "a token of the topology through the gateway and at the workspace service")
	if code := gateway.CallJSON(t, "POST", "/api/admin/acme/servers", readToken, map[string]string{"id": "x"}, nil); code != http.StatusForbidden {
		t.Fatalf("a read_configuration token must not write: status %d", code)
	}

	// Gateways behind a proxy that terminates TLS (plain HTTP listeners), calling the services over TLS or not.
	otherCA := testca.New(t)
	refused := []struct {
		name string
		tls  testenv.TLS
		why  string // what the gateway's log says of its calls
	}{
		{"no CA file: plaintext calls to TLS listeners", testenv.TLS{}, "connection error"},
		{"a CA file of another CA", testenv.TLS{CAFile: otherCA.File}, "certificate signed by unknown authority"},
		{"a server name the certificates do not hold", testenv.TLS{CAFile: ca.File, ServerName: "authplane.internal"},
			"certificate is valid for localhost, not authplane.internal"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			var log syncBuffer
			g := start([]string{svc.Gateway}, tc.tls, testenv.WithLog(&log))
			if a := tokenCall(g, "acme", "admin", id, secret, url.Values{"grant_type": {"client_credentials"}}); !isUnavailableOAuth(a) {
				t.Errorf("token request: %s, want 503 temporarily_unavailable", a)
			}
			if a := restCall(g, "GET", "/api/admin/acme/servers", readToken, nil); !isUnavailableREST(a) {
				t.Errorf("admin API: %s, want the contract's 503", a)
			}
			for _, service := range []string{svc.Token, svc.Workspace} {
				if !strings.Contains(log.String(), `"msg":"call to another process unavailable","service":"`+service+`"`) || !strings.Contains(log.String(), tc.why) {
					t.Errorf("the gateway's log does not say why it cannot call the %s service (%q):\n%s", service, tc.why, log.String())
				}
			}
		})
	}
	t.Run("a server name the certificates hold", func(t *testing.T) {
		g := start([]string{svc.Gateway}, testenv.TLS{CAFile: ca.File, ServerName: "localhost"})
		if a := tokenCall(g, "acme", "admin", id, secret, url.Values{"grant_type": {"client_credentials"}}); a.status != http.StatusOK {
			t.Errorf("token request: %s", a)
		}
		if a := restCall(g, "GET", "/api/admin/acme/servers", readToken, nil); a.status != http.StatusOK {
			t.Errorf("admin API: %s", a)
		}
	})
}

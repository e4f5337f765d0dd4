package app_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/telemetry"
	"github.com/authplane/authplane/pkg/testenv"
)

// splitGroups is a microservices deployment: the gateway, the token service and the client service each in a
// process of its own, the other services in a fourth.
var splitGroups = [][]string{{svc.Tenant, svc.Workspace, svc.Pool, svc.Schema}, {svc.Client}, {svc.Token}, {svc.Gateway}}

// startTopology starts one process per group (all services in one when groups is nil) on one database; opts adds
// each process's own options. The last process is the gateway's.
func startTopology(t *testing.T, dbURL string, groups [][]string, opts func(i int) []testenv.Option) []*testenv.Env {
	t.Helper()
	masterKey := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	if groups == nil {
		return []*testenv.Env{testenv.Start(t, append(opts(0), testenv.WithDatabase(dbURL, masterKey))...)}
	}
	httpLns, grpcLns := make([]net.Listener, len(groups)), make([]net.Listener, len(groups))
	addrs := map[string]string{}
	for i, g := range groups {
		httpLns[i], grpcLns[i] = testenv.Listen(t), testenv.Listen(t)
		for _, name := range g {
			addrs[name] = grpcLns[i].Addr().String()
		}
	}
	issuer := "http://" + httpLns[len(groups)-1].Addr().String()
	envs := make([]*testenv.Env, len(groups))
	for i, g := range groups {
		envs[i] = testenv.Start(t, append(opts(i), testenv.WithDatabase(dbURL, masterKey), testenv.WithServices(g, addrs),
			testenv.WithListeners(httpLns[i], grpcLns[i]), testenv.WithIssuer(issuer), testenv.WithRootSecret("split-root-secret"))...)
	}
	return envs
}

// postToken asks for a client_credentials token under a request id and returns the status and the echoed id.
func postToken(t *testing.T, env *testenv.Env, tenant, server, id, secret, requestID string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", env.Issuer(tenant, server)+"/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Request-Id", requestID)
	req.SetBasicAuth(id, secret)
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Request-Id")
}

// TestTokenRequestIsOneTrace: one client_credentials request for a client the token service has not seen is one
// trace, rooted at the gateway's HTTP span, through the gRPC client and server spans of every call (between
// processes, or within one), down to the client service's database query: whether the services run in one
// process or in several.
func TestTokenRequestIsOneTrace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backend testenv.Backend
		groups  [][]string
	}{
		{"all services in one process", testenv.SQLite, nil},
		{"one process per service group", testenv.Postgres, splitGroups},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spans := tracetest.NewSpanRecorder()
			envs := startTopology(t, testenv.DatabaseURL(t, tc.backend), tc.groups, func(int) []testenv.Option {
				return []testenv.Option{testenv.WithSpanProcessor(spans)}
			})
			gateway := envs[len(envs)-1]
			acme := gateway.NewTenant(t, "acme")
			id, secret := gateway.CreateClient(t, "acme", acme.AdminToken, map[string]any{
				"authorization_server_id": "admin", "client_name": "traced", "scopes": []string{"read_configuration"},
			})
			if code, _ := postToken(t, gateway, "acme", "admin", id, secret, "trace-cc-1"); code != http.StatusOK {
				t.Fatalf("token: status %d", code)
			}

			root := waitForTrace(t, spans, "trace-cc-1")
			tr := inTrace(spans.Ended(), root.SpanContext().TraceID())
			if root.Parent().IsValid() {
				t.Fatalf("the HTTP span %q has a parent: the request did not start the trace", root.Name())
			}
			if root.Name() != "POST /{tenant_id}/{server_id}/oauth2/token" || root.SpanKind() != trace.SpanKindServer || !runs(root, svc.Gateway) ||
				attr(root, "http.route") != "/{tenant_id}/{server_id}/oauth2/token" {
				t.Errorf("root span %q (route %q) in the process of %q, want the gateway's token route span",
					root.Name(), attr(root, "http.route"), processOf(root))
			}
			ids := map[trace.SpanID]sdktrace.ReadOnlySpan{}
			for _, s := range tr {
				ids[s.SpanContext().SpanID()] = s
			}
			for _, s := range tr {
				if s != root && ids[s.Parent().SpanID()] == nil {
					t.Errorf("span %q of the trace has a parent outside it", s.Name())
				}
			}

			gwCall := find(t, tr, "authplane.token.v1.TokenService/Token", trace.SpanKindClient, svc.Gateway)
			tokenServe := find(t, tr, "authplane.token.v1.TokenService/Token", trace.SpanKindServer, svc.Token)
			authCall := find(t, tr, "authplane.client.v1.ClientService/AuthenticateClient", trace.SpanKindClient, svc.Token)
			authServe := find(t, tr, "authplane.client.v1.ClientService/AuthenticateClient", trace.SpanKindServer, svc.Client)
			for _, link := range []struct{ child, parent sdktrace.ReadOnlySpan }{
				{gwCall, root}, {tokenServe, gwCall}, {authServe, authCall},
			} {
				if link.child.Parent().SpanID() != link.parent.SpanContext().SpanID() {
					t.Errorf("%s (%s) is not a child of %s (%s)", link.child.Name(), link.child.SpanKind(), link.parent.Name(), link.parent.SpanKind())
				}
			}
			if !descends(authCall, tokenServe, ids) {
				t.Error("the token service's call to the client service is not within its serving of the token request")
			}
			var query sdktrace.ReadOnlySpan
			for _, s := range tr {
				if s.SpanKind() == trace.SpanKindClient && attr(s, "db.system.name") != "" && runs(s, svc.Client) && descends(s, authServe, ids) {
					query = s
				}
			}
			if query == nil {
				t.Fatal("no database span of the client service within its authentication of the client")
			}
			if want := map[testenv.Backend]string{testenv.SQLite: "sqlite", testenv.Postgres: "postgresql"}[tc.backend]; attr(query, "db.system.name") != want {
				t.Errorf("database span %q: db.system.name %q, want %q", query.Name(), attr(query, "db.system.name"), want)
			}
			if text := attr(query, "db.query.text"); text == "" || strings.Contains(text, secret) || strings.Contains(text, id) {
				t.Errorf("database span %q: query text %q, want the statement with placeholders only", query.Name(), text)
			}
		})
	}
}

// waitForTrace waits until the gateway's span of the request with that id, and every span of its trace that has
// started, have ended (a server's span ends after its answer is sent), and returns the gateway's span.
func waitForTrace(t *testing.T, spans *tracetest.SpanRecorder, requestID string) sdktrace.ReadOnlySpan {
	t.Helper()
	var root sdktrace.ReadOnlySpan
	waitFor(t, func() bool {
		root = nil
		for _, s := range spans.Ended() {
			if attr(s, "authplane.request_id") == requestID {
				root = s
			}
		}
		if root == nil {
			return false
		}
		ended := map[trace.SpanID]bool{}
		for _, s := range spans.Ended() {
			ended[s.SpanContext().SpanID()] = true
		}
		for _, s := range spans.Started() {
			if s.SpanContext().TraceID() == root.SpanContext().TraceID() && !ended[s.SpanContext().SpanID()] {
				return false
			}
		}
		return true
	})
	return root
}

func inTrace(spans []sdktrace.ReadOnlySpan, id trace.TraceID) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

// find returns the one span of the trace with that name and kind, recorded by the process running service.
func find(t *testing.T, spans []sdktrace.ReadOnlySpan, name string, kind trace.SpanKind, service string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name && s.SpanKind() == kind && runs(s, service) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name()+" ("+s.SpanKind().String()+", "+processOf(s)+")")
		}
		t.Fatalf("%d %s spans %q in the process of %s, want 1; the trace holds: %s", len(found), kind, name, service, strings.Join(names, "; "))
	}
	return found[0]
}

// processOf names the services of the process that recorded the span (its resource says).
func processOf(s sdktrace.ReadOnlySpan) string {
	v, _ := s.Resource().Set().Value(telemetry.ServicesKey)
	return v.AsString()
}

// runs reports whether the span was recorded by a process running service.
func runs(s sdktrace.ReadOnlySpan, service string) bool {
	return slices.Contains(strings.Split(processOf(s), ","), service)
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}

// descends reports whether s lies under ancestor in the trace.
func descends(s, ancestor sdktrace.ReadOnlySpan, ids map[trace.SpanID]sdktrace.ReadOnlySpan) bool {
	for p := ids[s.Parent().SpanID()]; p != nil; p = ids[p.Parent().SpanID()] {
		if p.SpanContext().SpanID() == ancestor.SpanContext().SpanID() {
			return true
		}
	}
	return false
}

// TestRequestIDInEveryProcessLog: the id of one HTTP request is in the log lines of every process the request
// reaches, a token request through the OAuth handlers and an admin request through the REST facade alike, and
// no process logs a call without an id.
func TestRequestIDInEveryProcessLog(t *testing.T) {
	logs := make([]*syncBuffer, len(splitGroups))
	envs := startTopology(t, testenv.DatabaseURL(t, testenv.Postgres), splitGroups, func(i int) []testenv.Option {
		logs[i] = &syncBuffer{}
		return []testenv.Option{testenv.WithLog(logs[i])}
	})
	gateway := envs[len(envs)-1]
	acme := gateway.NewTenant(t, "acme")
	id, secret := gateway.CreateClient(t, "acme", acme.AdminToken, map[string]any{
		"authorization_server_id": "admin", "client_name": "logged", "scopes": []string{"read_configuration"},
	})
	// Which process runs what: logs[i] is the log of splitGroups[i].
	process := func(service string) int {
		return slices.IndexFunc(splitGroups, func(g []string) bool { return slices.Contains(g, service) })
	}

	for _, tc := range []struct {
		name, requestID string
		send            func(requestID string) (status int, echoed string)
		reaches         []string // a service of each process the request must reach
	}{
		{"a token request for a client the token service has not seen", "logs-cc-1",
			func(rid string) (int, string) { return postToken(t, gateway, "acme", "admin", id, secret, rid) },
			[]string{svc.Gateway, svc.Token, svc.Client}},
		{"an admin request through the REST facade", "logs-rest-1",
			func(rid string) (int, string) {
				req, _ := http.NewRequest("GET", gateway.HTTPURL+"/api/admin/acme/servers", nil)
				req.Header.Set("Authorization", "Bearer "+acme.AdminToken)
				req.Header.Set("X-Request-Id", rid)
				resp, err := gateway.HTTP.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode, resp.Header.Get("X-Request-Id")
			},
			[]string{svc.Gateway, svc.Workspace}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, echoed := tc.send(tc.requestID); code != http.StatusOK || echoed != tc.requestID {
				t.Fatalf("status %d, X-Request-Id %q echoed, want 200 and %q", code, echoed, tc.requestID)
			}
			for _, service := range tc.reaches {
				log := logs[process(service)]
				if !eventually(func() bool { return len(linesWith(log, tc.requestID)) > 0 }) {
					t.Errorf("the process of %v logged nothing under %s", splitGroups[process(service)], tc.requestID)
				}
			}
		})
	}

	for i, log := range logs {
		for _, line := range logLines(t, log) {
			if (line["msg"] == "rpc" || line["msg"] == "rpc failed" || line["msg"] == "http request") && line["request_id"] == "" {
				t.Errorf("process of %v logged a request without its id: %v", splitGroups[i], line)
			}
		}
	}
}

func logLines(t *testing.T, log *syncBuffer) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, raw := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(raw), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", raw)
		}
		flat := map[string]string{}
		for k, v := range line {
			if s, ok := v.(string); ok {
				flat[k] = s
			}
		}
		out = append(out, flat)
	}
	return out
}

func linesWith(log *syncBuffer, requestID string) []string {
	var out []string
	for _, raw := range strings.Split(log.String(), "\n") {
		if strings.Contains(raw, `"request_id":"`+requestID+`"`) {
			out = append(out, raw)
		}
	}
	return out
}

// TestNoTracingWithoutAnEndpoint: with no OTLP endpoint set, other OpenTelemetry settings notwithstanding, a
// process makes no exporter and sends nothing, not even to the exporters' default addresses, through requests
// and a shutdown that would flush any buffered span.
func TestNoTracingWithoutAnEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "authplane-untraced")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	var connections atomic.Int64
	for _, addr := range []string{"127.0.0.1:4318", "127.0.0.1:4317"} { // OTLP over HTTP and gRPC by default
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("the default OTLP address %s is taken on this machine, so what is sent to it cannot be seen: %v", addr, err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				connections.Add(1)
				c.Close()
			}
		}()
	}

	env := testenv.Start(t)
	acme := env.NewTenant(t, "acme")
	if code := env.CallJSON(t, "GET", "/api/admin/acme/servers", acme.AdminToken, nil, nil); code != http.StatusOK {
		t.Fatalf("list servers: %d", code)
	}
	env.Stop()
	if n := connections.Load(); n != 0 {
		t.Errorf("%d connections to the default OTLP addresses without an endpoint configured", n)
	}
}

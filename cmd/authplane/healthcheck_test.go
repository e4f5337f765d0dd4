package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
	"github.com/authplane/authplane/pkg/testenv/testca"
)

// TestHealthcheckExitsZeroOnlyWhenReady runs the subcommand a container health check runs against real servers:
// a whole process, a process running the token service alone, and endpoints that are down, failing or too slow.
func TestHealthcheckExitsZeroOnlyWhenReady(t *testing.T) {
	all := testenv.Start(t)
	tokenOnly := testenv.Start(t, testenv.WithServices([]string{svc.Token}, nil))
	closed := testenv.Listen(t)
	closedAddr := closed.Addr().String()
	closed.Close()
	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"status":"database unreachable"}`, http.StatusServiceUnavailable)
	}))
	defer unready.Close()
	stuck := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stuck:
		}
	}))
	defer slow.Close()
	defer close(stuck)
	port := func(env *testenv.Env) string {
		_, p, _ := net.SplitHostPort(strings.TrimPrefix(env.HTTPURL, "http://"))
		return p
	}

	tests := []struct {
		name     string
		args     []string
		httpAddr string // AUTHPLANE_HTTP_ADDR
		want     int
		output   string
		usage    bool // the output is the flags' usage, not a one-line message
	}{
		{name: "a ready process", args: []string{"--url", all.HTTPURL + "/readyz"}, want: 0, output: "healthy: "},
		{name: "the default URL is /readyz on loopback at AUTHPLANE_HTTP_ADDR's port", httpAddr: ":" + port(all), want: 0,
			output: "healthy: http://127.0.0.1:" + port(all) + "/readyz answered 200"},
		{name: "a wildcard host is reached on loopback", httpAddr: "0.0.0.0:" + port(all), want: 0, output: "http://127.0.0.1:" + port(all) + "/readyz"},
		{name: "a process running the token service alone", httpAddr: "127.0.0.1:" + port(tokenOnly), want: 0},
		{name: "its liveness endpoint too", args: []string{"--url=" + tokenOnly.HTTPURL + "/healthz"}, want: 0},
		{name: "nothing listens", httpAddr: closedAddr, want: 1, output: "unhealthy: "},
		{name: "not ready (503)", args: []string{"--url", unready.URL + "/readyz"}, want: 1, output: "answered 503 {\"status\":\"database unreachable\"}"},
		{name: "no answer within the timeout", args: []string{"--url", slow.URL + "/readyz", "--timeout=50ms"}, want: 1, output: "unhealthy: "},
		{name: "an unknown path", args: []string{"--url", all.HTTPURL + "/nowhere"}, want: 1, output: "answered 404"},
		{name: "a malformed AUTHPLANE_HTTP_ADDR", httpAddr: "localhost", want: 1, output: `AUTHPLANE_HTTP_ADDR "localhost"`},
		{name: "an unknown flag is unhealthy, not Docker's reserved 2", args: []string{"--colour"}, want: 1,
			output: "flag provided but not defined: -colour", usage: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string {
				if k == "AUTHPLANE_HTTP_ADDR" {
					return tc.httpAddr
				}
				return ""
			}
			got := healthcheck(tc.args, getenv, &stdout, &stderr)
			if got != tc.want {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", got, tc.want, stdout.String(), stderr.String())
			}
			if out := stdout.String() + stderr.String(); !strings.Contains(out, tc.output) || (!tc.usage && strings.Count(out, "\n") != 1) {
				t.Errorf("output %q, want a short message containing %q", out, tc.output)
			}
		})
	}
}

func TestHealthcheckIsACommand(t *testing.T) {
	env := testenv.Start(t)
	var stdout, stderr bytes.Buffer
	if got := run([]string{"healthcheck", "--url", env.HTTPURL + "/readyz"}, os.Getenv, &stdout, &stderr); got != 0 {
		t.Fatalf("authplane healthcheck: exit %d, %s", got, stderr.String())
	}
}

// TestHealthcheckOverHTTPS runs the subcommand against a process serving TLS: with the container's configuration it
// asks https on loopback (the certificate names the public host, not the loopback address); a URL it is given is
// verified as any client does, with the CA it is told to trust.
func TestHealthcheckOverHTTPS(t *testing.T) {
	ca := testca.New(t)
	// Like a public certificate, it does not hold the loopback address.
	certFile, keyFile := ca.Issue(t, testca.ForHosts("id.example.com", "localhost")).Files(t)
	env := testenv.Start(t, testenv.WithTLS(testenv.TLS{CertFile: certFile, KeyFile: keyFile, CAFile: ca.File}))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(env.HTTPURL, "https://"))
	byName := "https://localhost:" + port + "/readyz"
	container := map[string]string{"AUTHPLANE_HTTP_ADDR": ":" + port, "AUTHPLANE_TLS_CERT_FILE": certFile, "AUTHPLANE_TLS_KEY_FILE": keyFile}
	withCA := map[string]string{"AUTHPLANE_TLS_CA_FILE": ca.File}
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		want   int
		output string
	}{
		{name: "the container's own listener, on loopback", env: container, want: 0,
			output: "healthy: https://127.0.0.1:" + port + "/readyz answered 200"},
		{name: "the same with the CA file of the other services set", env: merge(container, withCA), want: 0},
		{name: "plain HTTP when the configuration says nothing of TLS", env: map[string]string{"AUTHPLANE_HTTP_ADDR": ":" + port}, want: 1,
			output: "answered 400 Client sent an HTTP request to an HTTPS server."},
		{name: "a URL verified with --ca-file", args: []string{"--url", byName, "--ca-file", ca.File}, want: 0, output: "healthy: " + byName},
		{name: "a URL verified with AUTHPLANE_TLS_CA_FILE", args: []string{"--url", byName}, env: withCA, want: 0},
		{name: "a URL whose certificate no trusted CA signed", args: []string{"--url", byName}, want: 1,
			output: "certificate signed by unknown authority"},
		{name: "a loopback URL given, which the certificate does not hold", args: []string{"--url", env.HTTPURL + "/readyz"}, env: withCA, want: 1,
			output: "doesn't contain any IP SANs"},
		{name: "a CA file that holds no CA", args: []string{"--url", byName, "--ca-file", keyFile}, want: 1,
			output: "unhealthy: --ca-file: CA file " + keyFile + ": block 1 is a PRIVATE KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := healthcheck(tc.args, func(k string) string { return tc.env[k] }, &stdout, &stderr)
			if got != tc.want {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", got, tc.want, stdout.String(), stderr.String())
			}
			if out := stdout.String() + stderr.String(); !strings.Contains(out, tc.output) || strings.Count(out, "\n") != 1 {
				t.Errorf("output %q, want a short message containing %q", out, tc.output)
			}
		})
	}
}

func merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

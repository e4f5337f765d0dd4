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

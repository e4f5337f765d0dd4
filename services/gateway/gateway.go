// Package gateway is the HTTP face of the platform: the REST facade generated from the protos (admin, operator
// and identity planes) and the OAuth data plane (token, introspection and revocation endpoints, keys,
// discovery). It decides nothing itself: it parses, forwards the caller's credentials to the gRPC services, and
// renders their answers.
package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/gen/openapiv2"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/metrics"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/telemetry"
)

// Gateway serves the REST facade and the data plane.
type Gateway struct {
	issuerURL  string
	tokens     tokenv1.TokenServiceClient
	workspaces workspacev1.WorkspaceServiceClient
	// internal is the credential of the gateway's own calls (discovery reads the workspace's metadata).
	internal *internalcall.Authority
	// origins are the browser origins each workspace's clients allow (CORS).
	origins   *corsOrigins
	rest      http.Handler
	data      *http.ServeMux
	wellKnown *http.ServeMux // host-level metadata, kept apart: its paths overlap the /{tenant}/{server}/… patterns
	// patterns are those of data and wellKnown, which the OpenAPI document must cover (openapi_test.go).
	patterns []string
}

// New builds the gateway over connections to the services (in this process or remote).
func New(ctx context.Context, d svc.Deps) (*Gateway, error) {
	restMux, err := newRESTMux(ctx, d.Conns)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		issuerURL:  d.IssuerURL,
		tokens:     tokenv1.NewTokenServiceClient(d.Conns.Token),
		workspaces: workspacev1.NewWorkspaceServiceClient(d.Conns.Workspace),
		internal:   d.Internal,
		origins:    newCORSOrigins(clientv1.NewClientServiceClient(d.Conns.Client), d.Internal.Outgoing, d.Bus),
		rest:       putAsPatch(restMux),
		data:       http.NewServeMux(),
		wellKnown:  http.NewServeMux(),
	}
	g.handle(g.data, "/{tenant_id}/{server_id}/oauth2/token", g.withCORS("POST", g.token))
	g.handle(g.data, introspectRoute, g.introspect)
	g.handle(g.data, revokeRoute, g.withCORS("POST", g.revoke))
	g.handle(g.data, userinfoRoute, g.withCORS("GET, POST", g.userinfo))
	g.handle(g.data, "/{tenant_id}/{server_id}/.well-known/jwks.json", g.withCORS("GET", getOnly(g.jwks)))
	g.handle(g.data, "/{tenant_id}/{server_id}/.well-known/openid-configuration", g.withCORS("GET", getOnly(g.discovery)))
	g.handle(g.data, authorizeRoute, g.authorize)
	g.handle(g.data, "GET "+loginRoute, g.login)
	g.handle(g.data, "POST "+loginRoute, g.login)
	g.handle(g.data, "POST "+consentRoute, g.consent)
	g.handle(g.data, logoutRoute, g.logout)
	g.handle(g.wellKnown, "GET /.well-known/oauth-authorization-server/{tenant_id}/{server_id}", g.authorizationServerMetadata)
	g.handle(g.wellKnown, "/", notFound)
	g.handle(g.data, "GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		setRoute(r.Context(), "/openapi.json")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapiv2.Document)
	})
	g.handle(g.data, "GET "+apiDocsRoute, g.apiDocs)
	g.handle(g.data, "GET "+apiDocsAssetRoute, g.apiDocsAsset)
	g.handle(g.data, "/", notFound)
	return g, nil
}

// handle registers a route of the data plane or the host-level metadata.
func (g *Gateway) handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	mux.HandleFunc(pattern, h)
	g.patterns = append(g.patterns, pattern)
}

// Handler returns the gateway's HTTP handler, wrapped with request ids, traces (a server span per request when
// tracing is on), logs and metrics.
func (g *Gateway) Handler(log *slog.Logger, m *metrics.Metrics, tracing *telemetry.Tracing) http.Handler {
	return annotate(tracing.HTTPHandler(observe(http.HandlerFunc(g.route), log, m), spanName))
}

// route splits the URL space: `/api/…` is the REST facade and `/.well-known/…` host-level metadata (the tenant
// ids `api` and `.well-known` are reserved), everything else the data plane. A path or query that is not text
// is refused first, whatever the route.
func (g *Gateway) route(w http.ResponseWriter, r *http.Request) {
	if field, bad := malformedURLText(r.URL); bad {
		g.refuseMalformedURL(w, r, field)
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/"):
		// Answers of the management APIs may carry secrets (a new tenant's admin client, a client's secret, an
		// external verifier's signing secret) and are never to be cached.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		g.rest.ServeHTTP(w, r)
	case strings.HasPrefix(r.URL.Path, "/.well-known/"):
		g.wellKnown.ServeHTTP(w, r)
	default:
		g.data.ServeHTTP(w, r)
	}
}

// malformedURLText finds a path segment, query name or query value that is not UTF-8 text without NUL bytes
// (platform.ValidText): the gRPC services refuse such strings too, but a service in another process cannot even
// be sent one, and the OAuth endpoints must answer in their own terms. It costs one pass over the path, and a
// parse of the query only when there is one (token requests carry none).
func malformedURLText(u *url.URL) (string, bool) {
	if !platform.ValidText(u.Path) {
		return "path", true
	}
	if u.RawQuery == "" {
		return "", false
	}
	for name, values := range u.Query() {
		if !platform.ValidText(name) {
			return "query", true
		}
		for _, v := range values {
			if !platform.ValidText(v) {
				return name, true
			}
		}
	}
	return "", false
}

// refuseMalformedURL answers 400: invalid_request on the OAuth endpoints (RFC 6749 JSON), the contract's
// invalid_input elsewhere.
func (g *Gateway) refuseMalformedURL(w http.ResponseWriter, r *http.Request, field string) {
	msg := "the request path must be UTF-8 text without NUL bytes"
	if field != "path" {
		msg = "the query must be UTF-8 text without NUL bytes"
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/.well-known/") {
		switch _, pattern := g.data.Handler(r); pattern {
		case tokenRoute, introspectRoute, revokeRoute, userinfoRoute:
			setRoute(r.Context(), pattern)
			writeOAuthError(w, invalidRequest("%s", msg))
			return
		}
	}
	writeAPIError(w, http.StatusBadRequest, "invalid_input", msg, field)
}

// getOnly answers 405 to anything but GET (and HEAD), as a "GET /…" pattern would; CORS preflights are answered
// before.
func getOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeAPIError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET", "")
			return
		}
		next(w, r)
	}
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeAPIError(w, http.StatusNotFound, "not_found", "no such route", "")
}

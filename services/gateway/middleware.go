package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/authplane/authplane/pkg/metrics"
	"github.com/authplane/authplane/pkg/requestid"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

type routeKey struct{}

// route holds the matched route pattern, so logs and metrics are labelled by route, not by raw path
// (which would make metric cardinality unbounded).
type route struct{ pattern string }

func setRoute(ctx context.Context, pattern string) {
	if r, ok := ctx.Value(routeKey{}).(*route); ok {
		r.pattern = pattern
	}
}

const unmatched = "unmatched"

func routeOf(ctx context.Context) string {
	if r, ok := ctx.Value(routeKey{}).(*route); ok {
		return r.pattern
	}
	return unmatched
}

// spanName names a request's span by its method and route pattern (by its method alone before routing, or when
// no route matched), never by its raw path.
func spanName(r *http.Request) string {
	if p := routeOf(r.Context()); p != unmatched {
		return r.Method + " " + p
	}
	return r.Method
}

// requestIDAttribute joins a request's span to its log lines.
const requestIDAttribute = attribute.Key("authplane.request_id")

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// quietRoutes are logged at debug level when they succeed: at token-endpoint rates an access log line per request
// costs more than it tells; metrics count them.
var quietRoutes = map[string]bool{
	tokenRoute: true, introspectRoute: true, revokeRoute: true, userinfoRoute: true, jwksRoute: true, discoveryRoute: true, metadataRoute: true,
	"/healthz": true, "/readyz": true, "/metrics": true,
}

// annotate starts every request: its id (the caller's X-Request-Id when usable, else a new one; echoed in the
// answer, sent with every call the request makes) and the holder of its route, in the context of all that follows,
// the request's span included.
func annotate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestid.Header)
		if !requestid.Valid(id) {
			id = requestid.New()
		}
		w.Header().Set(requestid.Header, id)
		ctx := context.WithValue(requestid.With(r.Context(), id), routeKey{}, &route{pattern: unmatched})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// observe wraps every annotated request: body limit, route-labelled metrics, the span's route, and one JSON log
// line that holds no secret (no body, no query string, no headers; the log handler adds the request id).
func observe(next http.Handler, log *slog.Logger, m *metrics.Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		elapsed := time.Since(start)
		pattern := routeOf(r.Context())
		code := strconv.Itoa(rec.status)
		m.HTTPRequests.WithLabelValues(pattern, r.Method, code).Inc()
		m.HTTPLatency.WithLabelValues(pattern, r.Method, code).Observe(elapsed.Seconds())
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
			span.SetName(spanName(r))
			span.SetAttributes(semconv.HTTPRoute(pattern), requestIDAttribute.String(requestid.From(r.Context())))
		}
		level := slog.LevelInfo
		switch {
		case rec.status >= 500:
			level = slog.LevelError
		case rec.status < 400 && quietRoutes[pattern]:
			level = slog.LevelDebug
		}
		if log.Enabled(r.Context(), level) {
			log.LogAttrs(r.Context(), level, "http request",
				slog.String("method", r.Method), slog.String("route", pattern),
				slog.String("path", r.URL.Path), slog.Int("status", rec.status),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000), slog.String("remote", r.RemoteAddr))
		}
	})
}

// putAsPatch sends PUT to the PATCH binding of the same route: the contract's PUT replaces only the top-level
// fields it carries, which is what grpc-gateway's PATCH does by deriving update_mask from the body.
func putAsPatch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/") {
			r.Method = http.MethodPatch
		}
		next.ServeHTTP(w, r)
	})
}

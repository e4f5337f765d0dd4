package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/authplane/authplane/pkg/metrics"
	"github.com/authplane/authplane/pkg/secrets"
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

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// quietRoutes are logged at debug level when they succeed: at token-endpoint rates an access log line per request
// costs more than it tells; metrics count them.
var quietRoutes = map[string]bool{
	tokenRoute: true, introspectRoute: true, revokeRoute: true, userinfoRoute: true, jwksRoute: true, discoveryRoute: true, metadataRoute: true,
	"/healthz": true, "/readyz": true, "/metrics": true,
}

// observe wraps every request: request id, body limit, route-labelled metrics, and one JSON log line that holds
// no secret (no body, no query string, no headers but the request id).
func observe(next http.Handler, log *slog.Logger, m *metrics.Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !requestIDPattern.MatchString(id) {
			id = secrets.Random(12)
			r.Header.Set("X-Request-Id", id)
		}
		w.Header().Set("X-Request-Id", id)
		rt := &route{pattern: "unmatched"}
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, rt))
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		elapsed := time.Since(start)
		code := strconv.Itoa(rec.status)
		m.HTTPRequests.WithLabelValues(rt.pattern, r.Method, code).Inc()
		m.HTTPLatency.WithLabelValues(rt.pattern, r.Method, code).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		switch {
		case rec.status >= 500:
			level = slog.LevelError
		case rec.status < 400 && quietRoutes[rt.pattern]:
			level = slog.LevelDebug
		}
		if log.Enabled(r.Context(), level) {
			log.LogAttrs(r.Context(), level, "http request",
				slog.String("request_id", id), slog.String("method", r.Method), slog.String("route", rt.pattern),
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

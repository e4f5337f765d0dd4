// Package metrics holds the process's Prometheus collectors (prometheus/client_golang, the reference client).
package metrics

import (
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the collectors every component reports to.
type Metrics struct {
	Registry     *prometheus.Registry
	HTTPRequests *prometheus.CounterVec   // route, method, status
	HTTPLatency  *prometheus.HistogramVec // route, method, status
	GRPCRequests *prometheus.CounterVec   // method, code
	GRPCLatency  *prometheus.HistogramVec // method
	TokensIssued *prometheus.CounterVec   // tenant, workspace, grant (grant alone WithoutTenantLabels); see TokenIssued
	TokenErrors  *prometheus.CounterVec   // tenant, workspace, error (error alone WithoutTenantLabels); see TokenRefused
	// The audit stream's relay (package audit), registered by AuditStream in a process that runs one: events the
	// stream acknowledged (outcome `stored`, or `duplicate` when its duplicate window already held the event),
	// events whose publish failed (each retried), the events waiting in the outbox (of the whole database: every
	// relay reports the same), and whether the relay holds a connection to NATS.
	AuditPublished       *prometheus.CounterVec // outcome
	AuditPublishFailures prometheus.Counter
	AuditBacklog         prometheus.Gauge
	AuditStreamConnected prometheus.Gauge
	tenantLabels         bool
}

// Option adjusts New.
type Option func(*options)

type options struct{ withoutTenantLabels bool }

// WithoutTenantLabels drops the tenant and workspace labels from the token counters, so that their series are
// bounded by grant types and error codes however many tenants and workspaces the platform holds.
func WithoutTenantLabels() Option { return func(o *options) { o.withoutTenantLabels = true } }

// New registers the collectors on a fresh registry (plus Go runtime and process collectors).
func New(opts ...Option) *Metrics {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	scope, by := []string{"tenant", "workspace"}, "tenant, workspace and "
	if o.withoutTenantLabels {
		scope, by = nil, ""
	}
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		Registry: r, tenantLabels: !o.withoutTenantLabels,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authplane_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		HTTPLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "authplane_http_request_duration_seconds", Help: "HTTP request latency by route pattern, method and status.", Buckets: buckets,
		}, []string{"route", "method", "status"}),
		GRPCRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authplane_grpc_requests_total", Help: "gRPC calls handled, by method and code.",
		}, []string{"method", "code"}),
		GRPCLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "authplane_grpc_request_duration_seconds", Help: "gRPC call latency by method.", Buckets: buckets,
		}, []string{"method"}),
		TokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authplane_tokens_issued_total", Help: "Access tokens issued, by " + by + "grant type.",
		}, append(slices.Clone(scope), "grant")),
		TokenErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authplane_token_errors_total", Help: "Token requests refused, by " + by + "OAuth error.",
		}, append(slices.Clone(scope), "error")),
		AuditPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authplane_audit_events_published_total", Help: "Audit events the stream acknowledged, by outcome (stored, or duplicate of one it held).",
		}, []string{"outcome"}),
		AuditPublishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authplane_audit_publish_failures_total", Help: "Audit events whose publish to the stream failed (each is retried).",
		}),
		AuditBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authplane_audit_outbox_backlog", Help: "Audit events waiting in the outbox to be streamed (the whole database's).",
		}),
		AuditStreamConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authplane_audit_stream_connected", Help: "1 while the audit relay is connected to NATS, else 0.",
		}),
	}
	r.MustRegister(m.HTTPRequests, m.HTTPLatency, m.GRPCRequests, m.GRPCLatency, m.TokensIssued, m.TokenErrors)
	return m
}

// AuditStream registers the audit relay's collectors: only a process that streams has them. Call it once.
func (m *Metrics) AuditStream() {
	m.Registry.MustRegister(m.AuditPublished, m.AuditPublishFailures, m.AuditBacklog, m.AuditStreamConnected)
}

// TokenIssued counts an access token a workspace of a tenant issued with a grant type.
func (m *Metrics) TokenIssued(tenant, workspace, grant string) {
	m.TokensIssued.WithLabelValues(m.labels(tenant, workspace, grant)...).Inc()
}

// TokenRefused counts a token request a workspace of a tenant refused with an OAuth error code.
func (m *Metrics) TokenRefused(tenant, workspace, code string) {
	m.TokenErrors.WithLabelValues(m.labels(tenant, workspace, code)...).Inc()
}

func (m *Metrics) labels(tenant, workspace, value string) []string {
	if m.tenantLabels {
		return []string{tenant, workspace, value}
	}
	return []string{value}
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

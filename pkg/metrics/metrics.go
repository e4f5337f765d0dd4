// Package metrics holds the process's Prometheus collectors (prometheus/client_golang, the reference client).
package metrics

import (
	"net/http"

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
	TokensIssued *prometheus.CounterVec   // tenant, workspace, grant
	TokenErrors  *prometheus.CounterVec   // tenant, workspace, error
}

// New registers the collectors on a fresh registry (plus Go runtime and process collectors).
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		Registry: r,
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
			Name: "authplane_tokens_issued_total", Help: "Access tokens issued, by tenant, workspace and grant type.",
		}, []string{"tenant", "workspace", "grant"}),
		TokenErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authplane_token_errors_total", Help: "Token requests refused, by tenant, workspace and OAuth error.",
		}, []string{"tenant", "workspace", "error"}),
	}
	r.MustRegister(m.HTTPRequests, m.HTTPLatency, m.GRPCRequests, m.GRPCLatency, m.TokensIssued, m.TokenErrors)
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

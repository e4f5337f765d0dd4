// Package telemetry is a process's tracing, configured by the standard OpenTelemetry environment variables. It is
// off unless an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): then no
// exporter exists, nothing is sent anywhere, and no instrumentation is installed, so an untraced process pays
// nothing for it. When on, spans follow a request from the gateway's HTTP handler through every gRPC call, remote
// or in-process, to the database, and W3C trace context carries the trace between processes.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/stats"
)

// DefaultServiceName is service.name unless OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const DefaultServiceName = "authplane"

// ServicesKey is the resource attribute naming the services a process runs, which tells the processes of a
// microservices deployment apart under one service name.
const ServicesKey = attribute.Key("authplane.services")

// Tracing is a process's tracing; the zero value and nil are off.
type Tracing struct {
	provider *sdktrace.TracerProvider
}

// Only W3C trace context crosses process boundaries: baggage from outside callers is not carried into the
// platform's internal calls.
var propagator = propagation.TraceContext{}

// Setup reads the OpenTelemetry environment (through getenv for the decision; the SDK and the exporters read the
// process environment themselves, as they document) and returns the process's tracing. With processor set, spans
// go to it instead of an exporter and tracing is on whatever the environment says (tests record spans so).
func Setup(ctx context.Context, services []string, getenv func(string) string, processor sdktrace.SpanProcessor) (*Tracing, error) {
	if processor == nil {
		exp, err := exporter(ctx, getenv)
		if err != nil || exp == nil {
			return &Tracing{}, err
		}
		processor = sdktrace.NewBatchSpanProcessor(exp) // OTEL_BSP_* tune it
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(DefaultServiceName), ServicesKey.String(strings.Join(services, ","))),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES: last, so they win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	// No sampler option: the SDK takes OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, by default
	// parentbased_always_on (a caller's sampling decision is followed, a new trace is sampled).
	return &Tracing{provider: sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(processor))}, nil
}

// exporter returns the OTLP exporter the environment configures, or nil when tracing is off.
func exporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	on, protocol, err := ExporterConfigured(getenv)
	if err != nil || !on {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	return exp, nil
}

// ExporterConfigured reports whether the environment asks for an OTLP trace exporter, and with which protocol
// (`http/protobuf`, the default, or `grpc`). An exporter is made only when an endpoint is set, unless
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none; other exporters and protocols are errors, not ignored.
func ExporterConfigured(getenv func(string) string) (on bool, protocol string, err error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, "", nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return false, "", nil
	case "", "otlp":
	default:
		return false, "", fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only otlp and none are supported", exp)
	}
	if strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")) == "" && strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) == "" {
		return false, "", nil
	}
	protocol = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if protocol == "" {
		protocol = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch protocol {
	case "", "http/protobuf":
		return true, "http/protobuf", nil
	case "grpc":
		return true, "grpc", nil
	default:
		return false, "", fmt.Errorf("OTLP protocol %q: use http/protobuf or grpc", protocol)
	}
}

// Enabled reports whether spans are recorded.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// TracerProvider is the provider of the process's spans (a no-op one when tracing is off).
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if !t.Enabled() {
		return tracenoop.NewTracerProvider()
	}
	return t.provider
}

// grpcOptions: the process's provider, W3C trace context, no OpenTelemetry metrics (Prometheus counts RPCs), and
// no spans for health checks.
func (t *Tracing) grpcOptions() []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(t.provider), otelgrpc.WithPropagators(propagator),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	}
}

// ServerHandler is the stats handler of the gRPC server (and of the in-process connection's server side), or nil
// when tracing is off.
func (t *Tracing) ServerHandler() stats.Handler {
	if !t.Enabled() {
		return nil
	}
	return otelgrpc.NewServerHandler(t.grpcOptions()...)
}

// ClientHandler is the stats handler of outgoing gRPC calls, or nil when tracing is off.
func (t *Tracing) ClientHandler() stats.Handler {
	if !t.Enabled() {
		return nil
	}
	return otelgrpc.NewClientHandler(t.grpcOptions()...)
}

// HTTPHandler wraps h in a server span per request, named by spanName (called when the span starts and again
// when the handler returns), continuing a caller's trace; h itself when tracing is off.
func (t *Tracing) HTTPHandler(h http.Handler, spanName func(*http.Request) string) http.Handler {
	if !t.Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, "", otelhttp.WithTracerProvider(t.provider), otelhttp.WithPropagators(propagator),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return spanName(r) }))
}

// Shutdown sends the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

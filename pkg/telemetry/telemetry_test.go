package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/authplane/authplane/pkg/telemetry"
)

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

func TestExporterConfigured(t *testing.T) {
	for _, tc := range []struct {
		name     string
		vars     map[string]string
		on       bool
		protocol string
		fails    bool
	}{
		{"nothing set", nil, false, "", false},
		{"other settings but no endpoint", map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "", false},
		{"an empty endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, false, "", false},
		{"an endpoint: OTLP over HTTP", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true, "http/protobuf", false},
		{"a traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true, "http/protobuf", false},
		{"gRPC", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, "grpc", false},
		{"the traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, true, "grpc", false},
		{"the SDK disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, false, "", false},
		{"the exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, false, "", false},
		{"an exporter not supported", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, false, "", true},
		{"a protocol not supported", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on, protocol, err := telemetry.ExporterConfigured(env(tc.vars))
			if on != tc.on || protocol != tc.protocol || (err != nil) != tc.fails {
				t.Errorf("= %v, %q, %v; want %v, %q, error %v", on, protocol, err, tc.on, tc.protocol, tc.fails)
			}
		})
	}
}

// TestOffInstallsNothing: without an endpoint, tracing is off and hands out nothing that would do work per call.
func TestOffInstallsNothing(t *testing.T) {
	tr, err := telemetry.Setup(context.Background(), []string{"token"}, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.ServerHandler() != nil || tr.ClientHandler() != nil {
		t.Fatal("tracing is on without an endpoint")
	}
	h := &plainHandler{}
	if got := tr.HTTPHandler(h, func(*http.Request) string { return "x" }); got != http.Handler(h) {
		t.Error("the HTTP handler was wrapped")
	}
	if _, span := tr.TracerProvider().Tracer("t").Start(context.Background(), "s"); span.IsRecording() {
		t.Error("the provider records spans")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

type plainHandler struct{}

func (*plainHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// TestResourceAndSampler: spans name the platform and the process's services (OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override), and the sampler is the environment's: by default a caller's decision is
// followed, a new trace is sampled; OTEL_TRACES_SAMPLER=always_off records nothing.
func TestResourceAndSampler(t *testing.T) {
	unsampledParent := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, Remote: true,
	}))
	for _, tc := range []struct {
		name        string
		env         map[string]string
		ctx         context.Context
		recorded    bool
		serviceName string
	}{
		{"a new trace", nil, context.Background(), true, "authplane"},
		{"a caller that did not sample", nil, unsampledParent, false, "authplane"},
		{"always_off", map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, context.Background(), false, "authplane"},
		{"a service name", map[string]string{"OTEL_SERVICE_NAME": "auth-eu"}, context.Background(), true, "auth-eu"},
		{"resource attributes", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=auth-us,deployment.environment=prod"}, context.Background(), true, "auth-us"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_TRACES_SAMPLER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
				t.Setenv(k, tc.env[k])
			}
			spans := tracetest.NewSpanRecorder()
			tr, err := telemetry.Setup(context.Background(), []string{"client", "token"}, env(nil), spans)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			_, span := tr.TracerProvider().Tracer("t").Start(tc.ctx, "s")
			span.End()
			ended := spans.Ended()
			if (len(ended) == 1) != tc.recorded {
				t.Fatalf("%d spans recorded, want recorded=%v", len(ended), tc.recorded)
			}
			if !tc.recorded {
				return
			}
			attrs := ended[0].Resource().Set()
			if v, _ := attrs.Value("service.name"); v.AsString() != tc.serviceName {
				t.Errorf("service.name %q, want %q", v.AsString(), tc.serviceName)
			}
			if v, _ := attrs.Value(telemetry.ServicesKey); v.AsString() != "client,token" {
				t.Errorf("%s %q, want client,token", telemetry.ServicesKey, v.AsString())
			}
		})
	}
}

// TestHTTPSpansContinueTheCallersTrace: the HTTP handler's span joins the trace of a W3C traceparent and is named
// as told.
func TestHTTPSpansContinueTheCallersTrace(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tr, err := telemetry.Setup(context.Background(), nil, env(nil), spans)
	if err != nil {
		t.Fatal(err)
	}
	h := tr.HTTPHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), func(r *http.Request) string { return r.Method + " /named" })
	caller := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled})
	req := httptest.NewRequest("GET", "/x", nil)
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), caller), propagation.HeaderCarrier(req.Header))
	h.ServeHTTP(httptest.NewRecorder(), req)
	ended := spans.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans, want 1", len(ended))
	}
	s := ended[0]
	if s.Name() != "GET /named" || s.SpanKind() != trace.SpanKindServer || s.SpanContext().TraceID() != caller.TraceID() || s.Parent().SpanID() != caller.SpanID() {
		t.Errorf("span %q (%s) in trace %s under %s, want GET /named, a server span under the caller's %s/%s",
			s.Name(), s.SpanKind(), s.SpanContext().TraceID(), s.Parent().SpanID(), caller.TraceID(), caller.SpanID())
	}
}

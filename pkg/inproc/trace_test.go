package inproc_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"

	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	"github.com/authplane/authplane/pkg/inproc"
)

// spanShape is what a call's spans say, comparable between transports.
type spanShape struct {
	name, kind, status, code string
	childOfCaller            bool // the client span's parent is the caller's span
	childOfClient            bool // the server span's parent is the client span
}

// TestCallsAreTracedAsOverTheNetwork: with otelgrpc's stats handlers, an in-process call yields the spans a call
// to a gRPC server yields — a client span under the caller's, a server span under it (the trace context passed in
// the call's metadata), with the same names, kinds and statuses.
func TestCallsAreTracedAsOverTheNetwork(t *testing.T) {
	transports := map[string]func(t *testing.T, tp *sdktrace.TracerProvider, fake *fakeTenants) tenantv1.TenantServiceClient{
		"in-process": func(t *testing.T, tp *sdktrace.TracerProvider, fake *fakeTenants) tenantv1.TenantServiceClient {
			client, server := handlers(tp)
			conn := inproc.New(nil, inproc.WithStatsHandlers(client, server))
			tenantv1.RegisterTenantServiceServer(conn, fake)
			return tenantv1.NewTenantServiceClient(conn)
		},
		"over gRPC": func(t *testing.T, tp *sdktrace.TracerProvider, fake *fakeTenants) tenantv1.TenantServiceClient {
			client, server := handlers(tp)
			srv := grpc.NewServer(grpc.StatsHandler(server))
			tenantv1.RegisterTenantServiceServer(srv, fake)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(srv.Stop)
			cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(client))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cc.Close() })
			return tenantv1.NewTenantServiceClient(cc)
		},
	}
	shapes := map[string][]spanShape{}
	for _, name := range []string{"over gRPC", "in-process"} {
		t.Run(name, func(t *testing.T) {
			spans := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
			fake := &fakeTenants{}
			client := transports[name](t, tp, fake)
			for _, tenant := range []string{"acme", "missing"} {
				spans.Reset()
				ctx, caller := tp.Tracer("test").Start(context.Background(), "caller")
				_, _ = client.GetTenant(ctx, &tenantv1.GetTenantRequest{TenantId: tenant})
				caller.End()
				// A gRPC server's span ends once its answer is sent, which the client may see first.
				for deadline := time.Now().Add(10 * time.Second); len(spans.Ended()) < 3 && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
				}
				fake.mu.Lock()
				incoming := fake.incoming
				fake.mu.Unlock()
				if got := incoming.Get("traceparent"); len(got) != 1 {
					t.Errorf("%s: the server saw traceparent %q, want the client span's", tenant, got)
				}
				shapes[name] = append(shapes[name], shape(spans)...)
			}
		})
	}
	if !slices.Equal(shapes["in-process"], shapes["over gRPC"]) {
		t.Errorf("in-process spans %+v\nwant those over gRPC %+v", shapes["in-process"], shapes["over gRPC"])
	}
	if len(shapes["over gRPC"]) != 4 {
		t.Errorf("over gRPC: %d spans for two calls, want a client and a server span each", len(shapes["over gRPC"]))
	}
	for _, s := range shapes["in-process"] {
		if (s.kind == "client" && !s.childOfCaller) || (s.kind == "server" && !s.childOfClient) {
			t.Errorf("span %+v is not where it belongs in the trace", s)
		}
	}
}

// handlers are otelgrpc's, as the platform installs them: the given provider, W3C trace context.
func handlers(tp *sdktrace.TracerProvider) (client, server stats.Handler) {
	opts := []otelgrpc.Option{otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(propagation.TraceContext{})}
	return otelgrpc.NewClientHandler(opts...), otelgrpc.NewServerHandler(opts...)
}

// shape describes the spans of one call (the caller's own span left out), client first.
func shape(spans *tracetest.SpanRecorder) []spanShape {
	ended := spans.Ended()
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range ended {
		byID[s.SpanContext().SpanID().String()] = s
	}
	var out []spanShape
	for _, s := range ended {
		if s.Name() == "caller" {
			continue
		}
		parent := byID[s.Parent().SpanID().String()]
		code := ""
		for _, kv := range s.Attributes() {
			if kv.Key == "rpc.response.status_code" {
				code = kv.Value.AsString()
			}
		}
		out = append(out, spanShape{
			name: s.Name(), kind: s.SpanKind().String(), status: fmt.Sprint(s.Status().Code), code: code,
			childOfCaller: parent != nil && parent.Name() == "caller",
			childOfClient: parent != nil && parent.SpanKind().String() == "client" && parent.Name() == s.Name(),
		})
	}
	slices.SortFunc(out, func(a, b spanShape) int { return strings.Compare(a.kind, b.kind) })
	return out
}

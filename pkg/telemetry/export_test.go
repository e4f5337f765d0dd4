package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/authplane/authplane/pkg/telemetry"
)

// receiver is an OTLP trace receiver on loopback that keeps what it was sent.
type receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
}

func (r *receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var in coltracepb.ExportTraceServiceRequest
	if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &in) != nil {
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	out, _ := r.Export(req.Context(), &in)
	raw, _ := proto.Marshal(out)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(raw)
}

// listen starts the receiver for the protocol and returns its endpoint URL.
func (r *receiver) listen(t *testing.T, protocol string) string {
	if protocol == "http/protobuf" {
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return "http://" + ln.Addr().String()
}

// TestSpansReachTheConfiguredEndpoint: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans are exported there, over
// either protocol, with the process's resource; Shutdown sends what is buffered.
func TestSpansReachTheConfiguredEndpoint(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			r := &receiver{}
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.listen(t, protocol))
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
			tr, err := telemetry.Setup(context.Background(), []string{"token"}, os.Getenv, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tr.Enabled() {
				t.Fatal("tracing is off with an endpoint set")
			}
			_, span := tr.TracerProvider().Tracer("test").Start(context.Background(), "exported")
			span.End()
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			var names []string
			var services string
			for _, req := range r.reqs {
				for _, rs := range req.ResourceSpans {
					for _, kv := range rs.GetResource().GetAttributes() {
						if kv.Key == string(telemetry.ServicesKey) {
							services = kv.GetValue().GetStringValue()
						}
					}
					for _, ss := range rs.ScopeSpans {
						for _, s := range ss.Spans {
							names = append(names, s.Name)
						}
					}
				}
			}
			if len(names) != 1 || names[0] != "exported" || services != "token" {
				t.Errorf("received spans %q of services %q, want the one span of token", names, services)
			}
		})
	}
}

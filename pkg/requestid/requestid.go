// Package requestid carries one id per request through every process it reaches: the gateway takes the caller's
// X-Request-Id (or makes one), the context holds it, every outgoing gRPC call sends it as `x-request-id` metadata,
// every gRPC server takes it back into the context, and every log line written with that context carries it
// (with the trace's ids when the request is traced).
package requestid

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/authplane/authplane/pkg/secrets"
)

// Header is the HTTP header of the id; MetadataKey its gRPC metadata key.
const (
	Header      = "X-Request-Id"
	MetadataKey = "x-request-id"
)

// maxLen bounds an id taken from a caller, so a log line cannot be made arbitrarily long.
const maxLen = 64

type contextKey struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(contextKey{}).(string)
	return id
}

// New makes an id (16 URL-safe characters).
func New() string { return secrets.Random(12) }

// Valid reports whether a caller's id may be used as it is: 1 to 64 of `A-Z a-z 0-9 . _ -`, nothing that could
// break a log line or a header.
func Valid(id string) bool {
	if id == "" || len(id) > maxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// UnaryClientInterceptor sends the context's id with every outgoing call, to another process or in-process.
func UnaryClientInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if id := From(ctx); id != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, MetadataKey, id)
	}
	return invoke(ctx, method, req, reply, cc, opts...)
}

// UnaryServerInterceptor puts the caller's id into the handler's context: the one in the call's metadata when it
// is valid, else one the context already holds (an in-process caller's), else a new one, so that every call a
// process serves has an id for its logs and for the calls it makes in turn.
func UnaryServerInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	var id string
	if v := metadata.ValueFromIncomingContext(ctx, MetadataKey); len(v) > 0 && Valid(v[0]) {
		id = v[0]
	}
	switch {
	case id != "" && id != From(ctx):
		ctx = With(ctx, id)
	case id == "" && From(ctx) == "":
		ctx = With(ctx, New())
	}
	return handler(ctx, req)
}

// LogHandler adds to every record logged with a context the request id it carries (`request_id`) and, when the
// request is traced, its trace and span ids (`trace_id`, `span_id`), so logs and traces of a request can be joined.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	id := From(ctx)
	sc := trace.SpanContextFromContext(ctx)
	if id == "" && !sc.IsValid() {
		return h.Handler.Handle(ctx, r)
	}
	r = r.Clone()
	if id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}
func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }

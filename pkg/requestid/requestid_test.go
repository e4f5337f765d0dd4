package requestid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/authplane/authplane/pkg/requestid"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"abc-DEF_1.2", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"has space", false},
		{"line\nbreak", false},
		{`quote"`, false},
		{"ünicode", false},
	} {
		if got := requestid.Valid(tc.id); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
	if id := requestid.New(); !requestid.Valid(id) || id == requestid.New() {
		t.Errorf("New() = %q: not a valid, fresh id", id)
	}
}

// TestServerInterceptorGivesEveryCallAnID: the call's metadata wins when valid; else an in-process caller's id in
// the context; else a new one.
func TestServerInterceptorGivesEveryCallAnID(t *testing.T) {
	for _, tc := range []struct {
		name     string
		metadata []string // x-request-id values
		caller   string   // id already in the context
		want     string   // "" for a new id
	}{
		{"the caller's id from metadata", []string{"from-md"}, "", "from-md"},
		{"metadata over the context", []string{"from-md"}, "from-ctx", "from-md"},
		{"the first of several values", []string{"first", "second"}, "", "first"},
		{"an in-process caller's id", nil, "from-ctx", "from-ctx"},
		{"an invalid id is replaced", []string{"bad id\n"}, "", ""},
		{"none at all", nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.caller != "" {
				ctx = requestid.With(ctx, tc.caller)
			}
			md := metadata.MD{}
			for _, v := range tc.metadata {
				md.Append(requestid.MetadataKey, v)
			}
			ctx = metadata.NewIncomingContext(ctx, md)
			var got string
			_, _ = requestid.UnaryServerInterceptor(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
				got = requestid.From(ctx)
				return nil, nil
			})
			switch {
			case tc.want != "" && got != tc.want:
				t.Errorf("handler's id %q, want %q", got, tc.want)
			case tc.want == "" && (!requestid.Valid(got) || slices.Contains(tc.metadata, got)):
				t.Errorf("handler's id %q, want a new valid one", got)
			}
		})
	}
}

func TestClientInterceptorSendsTheID(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want []string
	}{
		{"with an id", requestid.With(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer x"), "r-1"), []string{"r-1"}},
		{"without", context.Background(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent metadata.MD
			err := requestid.UnaryClientInterceptor(tc.ctx, "/s/M", nil, nil, nil, func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
				sent, _ = metadata.FromOutgoingContext(ctx)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := sent.Get(requestid.MetadataKey); !slices.Equal(got, tc.want) {
				t.Errorf("sent x-request-id %q, want %q", got, tc.want)
			}
			if md, _ := metadata.FromOutgoingContext(tc.ctx); len(md.Get("authorization")) != len(sent.Get("authorization")) {
				t.Error("the caller's other metadata was not kept")
			}
		})
	}
}

// TestLogHandlerAddsTheRequestAndItsTrace: lines logged with a request's context carry its id and trace, through
// loggers derived with With; lines without one carry neither.
func TestLogHandlerAddsTheRequestAndItsTrace(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(requestid.LogHandler(slog.NewJSONHandler(&buf, nil)))
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled,
	})
	traced := trace.ContextWithSpanContext(requestid.With(context.Background(), "r-42"), sc)

	log.With("tenant", "acme").InfoContext(traced, "with")
	log.InfoContext(requestid.With(context.Background(), "r-43"), "untraced")
	log.Info("without")

	var lines []map[string]any
	for _, raw := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var line map[string]any
		if err := json.Unmarshal(raw, &line); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		lines = append(lines, line)
	}
	want := []map[string]any{
		{"request_id": "r-42", "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(), "tenant": "acme"},
		{"request_id": "r-43", "trace_id": nil, "span_id": nil},
		{"request_id": nil, "trace_id": nil, "span_id": nil},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(lines), len(want))
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %q: %s = %v, want %v", lines[i]["msg"], k, lines[i][k], v)
			}
		}
	}
}

package app

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/metrics"
)

// recoverPanics turns a panic in a handler into an Internal error (logged with its stack), never a crash.
func recoverPanics(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.ErrorContext(ctx, "panic in gRPC handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

// classifyErrors gives every error a handler returns a gRPC code (apierr.Classify): a raw driver error during a
// database outage becomes Unavailable, never Unknown or Internal, on the gRPC server and the in-process connection
// alike, so REST answers 503 and OAuth endpoints temporarily_unavailable.
func classifyErrors(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, apierr.Classify(err)
}

// observeRPCs counts and times every call and logs it: failures with their cause (which the caller never sees),
// at error level when internal, and successes at debug level, so a request's id can be followed through every
// process it reaches (the log handler adds the id and the trace to each line).
func observeRPCs(log *slog.Logger, m *metrics.Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		code := status.Code(err)
		elapsed := time.Since(start)
		m.GRPCRequests.WithLabelValues(info.FullMethod, code.String()).Inc()
		m.GRPCLatency.WithLabelValues(info.FullMethod).Observe(elapsed.Seconds())
		level := slog.LevelDebug
		switch code {
		case codes.Internal, codes.Unknown, codes.DataLoss:
			level = slog.LevelError
		case codes.Unavailable:
			level = slog.LevelWarn // an outage (of the database, of another service) should show in the log
		}
		if log.Enabled(ctx, level) {
			if err != nil {
				log.LogAttrs(ctx, level, "rpc failed", slog.String("method", info.FullMethod), slog.String("code", code.String()),
					slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000), slog.String("error", err.Error()))
			} else {
				log.LogAttrs(ctx, level, "rpc", slog.String("method", info.FullMethod), slog.String("code", code.String()),
					slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000))
			}
		}
		return resp, err
	}
}

// chain composes interceptors into one, outermost first (for the in-process connection).
func chain(interceptors ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(interceptors) - 1; i >= 0; i-- {
			ic, h := interceptors[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, h) }
		}
		return next(ctx, req)
	}
}

// reportUnavailable logs a call to the service another process runs that ended Unavailable, with its cause: when
// the connection cannot be made (nothing listens, the TLS handshake is refused for an unknown authority or another
// name), the caller's answer is a bare 503 and this line is the only place that says why.
func reportUnavailable(log *slog.Logger, service, addr string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) == codes.Unavailable {
			log.WarnContext(ctx, "call to another process unavailable", "service", service, "addr", addr, "method", method,
				"error", status.Convert(err).Message())
		}
		return err
	}
}

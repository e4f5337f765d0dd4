// Package inproc is a gRPC connection to services in the same process. A service registered here is called
// exactly as over the network — the same generated client, the same interceptors, metadata in and out — but
// without serialisation or a socket, so the monolith pays no hop that the microservices deployment would.
package inproc

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Conn implements grpc.ClientConnInterface (for generated clients) and grpc.ServiceRegistrar (for RegisterXServer).
type Conn struct {
	methods     map[string]method
	interceptor grpc.UnaryServerInterceptor
	// Optional, as on a grpc.ClientConn and a grpc.Server: the caller's interceptor and both sides' stats handlers.
	clientInterceptor        grpc.UnaryClientInterceptor
	clientStats, serverStats stats.Handler
}

type method struct {
	impl    any
	handler grpc.MethodHandler
}

var (
	_ grpc.ClientConnInterface = (*Conn)(nil)
	_ grpc.ServiceRegistrar    = (*Conn)(nil)
)

// Option adds what a network connection would apply to its calls.
type Option func(*Conn)

// WithClientInterceptor runs every call through ic first, as grpc.WithUnaryInterceptor does for a client (its
// *grpc.ClientConn argument is nil).
func WithClientInterceptor(ic grpc.UnaryClientInterceptor) Option {
	return func(c *Conn) { c.clientInterceptor = ic }
}

// WithStatsHandlers reports every call to client, as grpc.WithStatsHandler does, and to server, as
// grpc.StatsHandler does (tracing uses them: a span for each side, linked through the call's metadata). Either
// may be nil.
func WithStatsHandlers(client, server stats.Handler) Option {
	return func(c *Conn) { c.clientStats, c.serverStats = client, server }
}

// New returns a connection whose calls pass through interceptor, as the gRPC server's would.
func New(interceptor grpc.UnaryServerInterceptor, opts ...Option) *Conn {
	c := &Conn{methods: map[string]method{}, interceptor: interceptor}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// RegisterService registers a service's unary methods.
func (c *Conn) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, m := range desc.Methods {
		c.methods["/"+desc.ServiceName+"/"+m.MethodName] = method{impl: impl, handler: m.Handler}
	}
}

// Has reports whether a full method name is served here.
func (c *Conn) Has(fullMethod string) bool { _, ok := c.methods[fullMethod]; return ok }

// Invoke calls a registered method. The request is copied in and the response copied out, so neither side can
// see the other's later mutations.
func (c *Conn) Invoke(ctx context.Context, fullMethod string, args, reply any, opts ...grpc.CallOption) error {
	if c.clientInterceptor != nil {
		return c.clientInterceptor(ctx, fullMethod, args, reply, nil, c.invoke, opts...)
	}
	return c.invoke(ctx, fullMethod, args, reply, nil, opts...)
}

// invoke is the call once the client's interceptor has run, reported to the stats handlers as gRPC does: tagged
// and begun on the client side, then on the server side, ended on the server side, then on the client side.
func (c *Conn) invoke(ctx context.Context, fullMethod string, args, reply any, _ *grpc.ClientConn, opts ...grpc.CallOption) error {
	m, ok := c.methods[fullMethod]
	if !ok {
		return status.Errorf(codes.Unimplemented, "method %s is not served in this process", fullMethod)
	}
	if c.clientStats == nil {
		return c.call(ctx, m, fullMethod, args, reply, opts)
	}
	begin := time.Now()
	ctx = c.clientStats.TagRPC(ctx, &stats.RPCTagInfo{FullMethodName: fullMethod})
	c.clientStats.HandleRPC(ctx, &stats.Begin{Client: true, BeginTime: begin})
	err := c.call(ctx, m, fullMethod, args, reply, opts)
	c.clientStats.HandleRPC(ctx, &stats.End{Client: true, BeginTime: begin, EndTime: time.Now(), Error: err})
	return err
}

func (c *Conn) call(ctx context.Context, m method, fullMethod string, args, reply any, opts []grpc.CallOption) error {
	in, ok1 := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok1 || !ok2 {
		return status.Errorf(codes.Internal, "inproc: %s needs proto messages", fullMethod)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	sctx := metadata.NewIncomingContext(ctx, md.Copy())
	sctx = metadata.NewOutgoingContext(sctx, nil)
	stream := &serverStream{method: fullMethod}
	sctx = grpc.NewContextWithServerTransportStream(sctx, stream)
	dec := func(v any) error {
		dst, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("inproc: %T is not a proto message", v)
		}
		proto.Merge(dst, in)
		return nil
	}
	resp, err := c.serve(sctx, m, fullMethod, dec)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = stream.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = stream.trailer
		}
	}
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			return status.Error(codes.Unknown, err.Error())
		}
		return err
	}
	respMsg, ok := resp.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "inproc: %s returned %T", fullMethod, resp)
	}
	proto.Reset(out)
	proto.Merge(out, respMsg)
	return nil
}

// serve runs the handler as the gRPC server would, reported to the server's stats handler.
func (c *Conn) serve(ctx context.Context, m method, fullMethod string, dec func(any) error) (any, error) {
	if c.serverStats == nil {
		return m.handler(m.impl, ctx, dec, c.interceptor)
	}
	begin := time.Now()
	ctx = c.serverStats.TagRPC(ctx, &stats.RPCTagInfo{FullMethodName: fullMethod})
	c.serverStats.HandleRPC(ctx, &stats.Begin{BeginTime: begin})
	resp, err := m.handler(m.impl, ctx, dec, c.interceptor)
	c.serverStats.HandleRPC(ctx, &stats.End{BeginTime: begin, EndTime: time.Now(), Error: err})
	return resp, err
}

// NewStream is not supported: every authplane RPC is unary.
func (c *Conn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "inproc: streaming is not supported")
}

// serverStream collects what a handler sets with grpc.SetHeader / SetTrailer.
type serverStream struct {
	method  string
	header  metadata.MD
	trailer metadata.MD
}

func (s *serverStream) Method() string { return s.method }
func (s *serverStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}
func (s *serverStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }
func (s *serverStream) SetTrailer(md metadata.MD) error {
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

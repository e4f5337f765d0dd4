// Package inproc is a gRPC connection to services in the same process. A service registered here is called
// exactly as over the network — the same generated client, the same interceptors, metadata in and out — but
// without serialisation or a socket, so the monolith pays no hop that the microservices deployment would.
package inproc

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Conn implements grpc.ClientConnInterface (for generated clients) and grpc.ServiceRegistrar (for RegisterXServer).
type Conn struct {
	methods     map[string]method
	interceptor grpc.UnaryServerInterceptor
}

type method struct {
	impl    any
	handler grpc.MethodHandler
}

var (
	_ grpc.ClientConnInterface = (*Conn)(nil)
	_ grpc.ServiceRegistrar    = (*Conn)(nil)
)

// New returns a connection whose calls pass through interceptor, as the gRPC server's would.
func New(interceptor grpc.UnaryServerInterceptor) *Conn {
	return &Conn{methods: map[string]method{}, interceptor: interceptor}
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
	m, ok := c.methods[fullMethod]
	if !ok {
		return status.Errorf(codes.Unimplemented, "method %s is not served in this process", fullMethod)
	}
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
	resp, err := m.handler(m.impl, sctx, dec, c.interceptor)
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

package audit

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
)

// Metadata the platform's own calls carry so that the events of a cascade (a user deleted, its sessions ended by
// the token service) name the actor and source of the request that started it. They are read only from calls that
// carry the internal credential: nothing an outside caller sends can set them.
const (
	actorHeader  = "x-authplane-actor"
	sourceHeader = "x-authplane-source"
)

// call is what an event says of the call it belongs to.
type call struct {
	action        string
	actor         Actor
	requestID     string
	sourceAddress string
	recorded      atomic.Bool // the handler wrote an event of the call
}

type callKey struct{}

func eventOf(ctx context.Context) Event {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil {
		return Event{}
	}
	return Event{Action: c.action, Actor: c.actor, RequestID: c.requestID, SourceAddress: c.sourceAddress}
}

func markRecorded(ctx context.Context) {
	if c, _ := ctx.Value(callKey{}).(*call); c != nil {
		c.recorded.Store(true)
	}
}

// Interceptor puts the call's audit facts into its context; it runs after authorization, which established the
// caller. When a change (an RPC named Create…, Update…, Delete…, Rotate…, Revoke…, Set…, Add…, Remove…,
// Unlock…, Provision…, End…) fails, it records the failure with the error's code; when one succeeds without
// having written its event, that is a bug, logged as an error and recorded late rather than lost.
func (l *Log) Interceptor(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx = withCall(ctx, info.FullMethod)
		resp, err := handler(ctx, req)
		if !isChange(info.FullMethod) {
			return resp, err
		}
		switch {
		case err != nil && !Recorded(ctx):
			ev := Event{TenantID: requestTenant(ctx, req), Outcome: apierr.Describe(err).ErrorCode}
			if werr := l.Event(ctx, ev); werr != nil {
				logger.Warn("audit event of a failed change not written", "method", info.FullMethod, "error", werr)
			}
		case err == nil && !Recorded(ctx):
			logger.Error("a change wrote no audit event: recorded after the fact", "method", info.FullMethod)
			if werr := l.Event(ctx, Event{TenantID: requestTenant(ctx, req)}); werr != nil {
				logger.Error("audit event not written", "method", info.FullMethod, "error", werr)
			}
		}
		return resp, err
	}
}

// changePrefixes name the RPCs that change something.
var changePrefixes = []string{"Create", "Update", "Delete", "Rotate", "Revoke", "Set", "Add", "Remove", "Unlock", "Provision", "End"}

func isChange(fullMethod string) bool {
	m := fullMethod[strings.LastIndex(fullMethod, "/")+1:]
	for _, p := range changePrefixes {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

// requestTenant is the tenant an event of the call belongs to: the caller's own for tenant tokens (the operator's
// is root), else the request's tenant_id.
func requestTenant(ctx context.Context, req any) string {
	if claims, ok := authz.FromContext(ctx); ok && claims.TenantID != "" {
		return claims.TenantID
	}
	if m, ok := req.(proto.Message); ok {
		r := m.ProtoReflect()
		if f := r.Descriptor().Fields().ByName("tenant_id"); f != nil && f.Kind() == protoreflect.StringKind && !f.IsList() {
			return r.Get(f).String()
		}
	}
	return ""
}

// withCall reads the call's facts from ctx.
func withCall(ctx context.Context, fullMethod string) context.Context {
	c := &call{action: actionOf(fullMethod)}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-request-id"); len(v) > 0 {
		c.requestID = v[0]
	}
	if caller, internal := authz.InternalCaller(ctx); internal {
		_ = json.Unmarshal([]byte(first(md.Get(actorHeader))), &c.actor)
		c.sourceAddress = first(md.Get(sourceHeader))
		if c.actor == (Actor{}) {
			c.actor = Actor{ClientID: "authplane:" + caller} // the platform on its own (a schedule, a cleanup)
		}
	} else {
		if claims, ok := authz.FromContext(ctx); ok {
			c.actor = Actor{ServerID: claims.ServerID, ClientID: claims.ClientID, Subject: claims.Subject}
		}
		c.sourceAddress = sourceOf(ctx, md)
	}
	return context.WithValue(ctx, callKey{}, c)
}

// actionOf names an RPC `Service.Method`: `/authplane.workspace.v1.WorkspaceService/CreateServer` is
// `WorkspaceService.CreateServer`.
func actionOf(fullMethod string) string {
	svc, m, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return fullMethod
	}
	return svc[strings.LastIndex(svc, ".")+1:] + "." + m
}

// sourceOf is the caller's address: the last X-Forwarded-For hop (the gateway's view of the client; the gateway
// adds it for REST calls) when the call came through the gateway, else the network peer.
func sourceOf(ctx context.Context, md metadata.MD) string {
	if fwd := md.Get("x-forwarded-for"); len(fwd) > 0 {
		hops := strings.Split(fwd[len(fwd)-1], ",")
		return strings.TrimSpace(hops[len(hops)-1])
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
			return host
		}
		return p.Addr.String()
	}
	return ""
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Forward adds to md, the metadata of a call the platform makes to another service on behalf of the call in ctx,
// that call's actor and source (read by the callee only because the call carries the internal credential).
func Forward(ctx context.Context, md metadata.MD) {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil {
		return
	}
	actor, _ := json.Marshal(c.actor)
	md.Set(actorHeader, string(actor))
	md.Set(sourceHeader, c.sourceAddress)
}

// Recorded reports whether an event of the call in ctx was written.
func Recorded(ctx context.Context) bool {
	c, _ := ctx.Value(callKey{}).(*call)
	return c != nil && c.recorded.Load()
}

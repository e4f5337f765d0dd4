// Package authz decides, once and for every RPC, whether the caller's bearer token opens the RPC's plane for the
// request's tenant. It runs as a gRPC interceptor, so REST (through the gateway) and gRPC get the same answers.
package authz

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/metadata"
)

// Claims are the verified claims of an access token that authorization uses.
type Claims struct {
	Issuer   string
	Subject  string
	TenantID string // tid
	ServerID string // aid
	ClientID string
	Scopes   []string
	Expiry   int64 // Unix seconds
	JTI      string
}

// HasScope reports whether the token carries scope s.
func (c *Claims) HasScope(s string) bool { return slices.Contains(c.Scopes, s) }

type claimsKey struct{}

// WithClaims stores verified claims in a context.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the verified caller, if the RPC's plane required one.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// BearerToken reads `authorization: Bearer …` from incoming gRPC metadata.
func BearerToken(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	return ""
}

// ForwardCaller returns a context for calling another service on the caller's behalf: the same bearer token,
// so the callee applies its own rule to the same caller.
func ForwardCaller(ctx context.Context) context.Context {
	if tok := BearerToken(ctx); tok != "" {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	return ctx
}

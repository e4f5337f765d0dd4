// Package authz decides, once and for every RPC, whether the caller's bearer token opens the RPC's plane for the
// request's tenant. It runs as a gRPC interceptor, so REST (through the gateway) and gRPC get the same answers.
package authz

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/metadata"
)

// Claims are the claims of an access token (RFC 9068 and the platform's own): the token service encodes them
// when it issues a token, and the verifier decodes them when one is presented, so both read the same struct.
type Claims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience Audience `json:"aud"`
	Expiry   int64    `json:"exp"` // Unix seconds
	IssuedAt int64    `json:"iat"` // Unix seconds
	JTI      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	// Scope is space-separated, as in the token.
	Scope    string `json:"scope"`
	TenantID string `json:"tid"`
	ServerID string `json:"aid"`
	// SessionID is the login session of tokens issued to a user (the password grant and its refreshes).
	SessionID string `json:"sid,omitempty"`
	// IdentitySource is the identity source that accepted the user's credentials.
	IdentitySource string `json:"idp,omitempty"`
	// ExtraInfo is what an external verifier added (its extraInfo).
	ExtraInfo map[string]any `json:"extra_info,omitempty"`
	// ClientIncarnation names the registration of client_id the token was issued to: its registration time, Unix
	// microseconds. A client id registered again after a deletion is another client, and iat, in whole seconds,
	// cannot tell its tokens from the deleted one's when both fall in one second.
	ClientIncarnation int64 `json:"client_incarnation,omitempty"`

	// Scopes is Scope split, set by the verifier.
	Scopes []string `json:"-"`
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
	c, _ := ctx.Value(claimsKey{}).(*Claims)
	return c, c != nil
}

type internalKey struct{}

func withInternalCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, internalKey{}, caller)
}

// InternalCaller reports a call made by one of the platform's own processes with its internal credential, and
// which services that process runs.
func InternalCaller(ctx context.Context) (string, bool) {
	c, _ := ctx.Value(internalKey{}).(string)
	return c, c != ""
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

package gateway

import (
	"net/http"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
)

// introspect handles POST {issuer}/oauth2/introspect (RFC 7662): the token endpoint's body encodings and client
// authentication, or `Authorization: Bearer` with an access token of the workspace.
func (g *Gateway) introspect(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), introspectRoute)
	if !requirePost(w, r, "the introspection endpoint") {
		return
	}
	params, caller, ok := parseTokenManagement(w, r)
	if !ok {
		return
	}
	resp, err := g.tokens.Introspect(r.Context(), &tokenv1.IntrospectRequest{
		TenantId: r.PathValue("tenant_id"), ServerId: r.PathValue("server_id"),
		Token: params["token"], TokenTypeHint: params["token_type_hint"], Caller: caller,
	})
	if err != nil {
		writeOAuthError(w, asOAuthError(err))
		return
	}
	writeNoStoreJSON(w, http.StatusOK, introspectionResponse{
		Active: resp.Active, Scope: resp.Scope, ClientID: resp.ClientId, Sub: resp.Sub, Aud: resp.Aud,
		Exp: resp.Exp, Iat: resp.Iat, Iss: resp.Iss, TokenType: resp.TokenType, Jti: resp.Jti, Tid: resp.Tid, Aid: resp.Aid,
	})
}

// revoke handles POST {issuer}/oauth2/revoke (RFC 7009), authenticated as introspection: 200 for any token.
func (g *Gateway) revoke(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), revokeRoute)
	if !requirePost(w, r, "the revocation endpoint") {
		return
	}
	params, caller, ok := parseTokenManagement(w, r)
	if !ok {
		return
	}
	_, err := g.tokens.Revoke(r.Context(), &tokenv1.RevokeRequest{
		TenantId: r.PathValue("tenant_id"), ServerId: r.PathValue("server_id"),
		Token: params["token"], TokenTypeHint: params["token_type_hint"], Caller: caller,
	})
	if err != nil {
		writeOAuthError(w, asOAuthError(err))
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// parseTokenManagement reads the body and the caller's credentials of an introspection or revocation request,
// answering the error itself when they do not parse.
func parseTokenManagement(w http.ResponseWriter, r *http.Request) (map[string]string, *tokenv1.CallerCredentials, bool) {
	params, err := parseTokenParams(r)
	if err != nil {
		writeOAuthError(w, asOAuthError(err))
		return nil, nil, false
	}
	caller, oe := parseClientAuth(r, params, true)
	if oe != nil {
		writeOAuthError(w, oe)
		return nil, nil, false
	}
	return params, caller, true
}

// introspectionResponse is RFC 7662 section 2.2: an inactive token is `{"active":false}` alone.
type introspectionResponse struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	Tid       string   `json:"tid,omitempty"`
	Aid       string   `json:"aid,omitempty"`
}

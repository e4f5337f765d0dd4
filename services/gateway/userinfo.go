package gateway

import (
	"mime"
	"net/http"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/platform"
)

// userinfoRoute is the OpenID Connect UserInfo endpoint of a workspace.
const userinfoRoute = "/{tenant_id}/{server_id}/userinfo"

// userinfo handles GET|POST {issuer}/userinfo (OpenID Connect Core section 5.3): the access token comes in
// `Authorization: Bearer` or, with POST, as the form parameter access_token (RFC 6750 section 2.2); the token
// service decides.
func (g *Gateway) userinfo(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), userinfoRoute)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeOAuthError(w, &oauthError{http.StatusMethodNotAllowed, "invalid_request", "the userinfo endpoint accepts GET and POST"})
		return
	}
	tok, fromHeader := bearerToken(r)
	if r.Method == http.MethodPost {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
			if err := r.ParseForm(); err != nil {
				writeOAuthError(w, asOAuthError(bodyError(err, "the form body is malformed")))
				return
			}
			if body, ok := r.PostForm["access_token"]; ok {
				if fromHeader || len(body) != 1 {
					writeOAuthError(w, invalidRequest("send the access token once"))
					return
				}
				tok, fromHeader = body[0], true
			}
		}
	}
	if !fromHeader || tok == "" {
		// RFC 6750 section 3.1: a request without credentials gets the challenge without an error code.
		w.Header().Set("WWW-Authenticate", `Bearer realm="authplane"`)
		writeNoStoreJSON(w, http.StatusUnauthorized, oauthErrorBody{Error: "invalid_token", ErrorDescription: "a Bearer access token is required"})
		return
	}
	if !platform.ValidText(tok) {
		writeOAuthError(w, invalidRequest("the access token must be UTF-8 text without NUL bytes"))
		return
	}
	info, err := g.tokens.GetUserInfo(r.Context(), &tokenv1.GetUserInfoRequest{
		TenantId: r.PathValue("tenant_id"), ServerId: r.PathValue("server_id"), AccessToken: tok,
	})
	if err != nil {
		writeOAuthError(w, asOAuthError(err))
		return
	}
	writeNoStoreJSON(w, http.StatusOK, info.GetClaims().AsMap())
}

package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/platform"
)

// Route patterns of the data plane (also the metrics labels).
const (
	tokenRoute      = "/{tenant_id}/{server_id}/oauth2/token"
	introspectRoute = "/{tenant_id}/{server_id}/oauth2/introspect"
	revokeRoute     = "/{tenant_id}/{server_id}/oauth2/revoke"
	jwksRoute       = "/{tenant_id}/{server_id}/.well-known/jwks.json"
	discoveryRoute  = "/{tenant_id}/{server_id}/.well-known/openid-configuration"
	metadataRoute   = "/.well-known/oauth-authorization-server/{tenant_id}/{server_id}"
)

// oauthError is an RFC 6749 section 5.2 error.
type oauthError struct {
	status      int
	code        string
	description string
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func invalidRequest(format string, args ...any) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", fmt.Sprintf(format, args...)}
}

// token handles POST {issuer}/oauth2/token: it parses any body encoding and client authentication method, and
// leaves every decision to the token service.
func (g *Gateway) token(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), tokenRoute)
	if !requirePost(w, r, "the token endpoint") {
		return
	}
	params, err := parseTokenParams(r)
	if err != nil {
		writeOAuthError(w, asOAuthError(err))
		return
	}
	auth, oe := parseClientAuth(r, params, false)
	if oe != nil {
		writeOAuthError(w, oe)
		return
	}
	req := &tokenv1.TokenRequest{
		TenantId: r.PathValue("tenant_id"), ServerId: r.PathValue("server_id"),
		GrantType: params["grant_type"], Scope: params["scope"], Username: params["username"],
		Password: params["password"], RefreshToken: params["refresh_token"],
		ClientId: auth.ClientId, ClientSecret: auth.ClientSecret, ClientAuthMethod: auth.ClientAuthMethod,
		Parameters: make(map[string]string, len(params)),
	}
	if req.Username == "" {
		req.Username = params["user_name"]
	}
	for k, v := range params {
		if k != "client_secret" {
			req.Parameters[k] = v
		}
	}
	req.Parameters["client_id"] = req.ClientId
	resp, err := g.tokens.Token(r.Context(), req)
	if err != nil {
		writeOAuthError(w, asOAuthError(err))
		return
	}
	writeTokenResponse(w, resp)
}

// requirePost answers 405 to anything but POST.
func requirePost(w http.ResponseWriter, r *http.Request, what string) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", http.MethodPost)
	writeOAuthError(w, &oauthError{http.StatusMethodNotAllowed, "invalid_request", what + " accepts POST only"})
	return false
}

// parseClientAuth reads how the caller authenticates: HTTP Basic, client_id and client_secret in the body,
// client_id alone (a public client) or, where allowBearer, `Authorization: Bearer` with an access token.
// Without any of them it answers invalid_client.
func parseClientAuth(r *http.Request, params map[string]string, allowBearer bool) (*tokenv1.CallerCredentials, *oauthError) {
	c := &tokenv1.CallerCredentials{}
	if allowBearer {
		if tok, ok := bearerToken(r); ok {
			if _, dup := params["client_secret"]; dup || params["client_id"] != "" {
				return nil, invalidRequest("use one authentication method, not a Bearer token and client credentials together")
			}
			if tok == "" {
				return nil, &oauthError{http.StatusUnauthorized, "invalid_token", "the Bearer token is empty"}
			}
			if !platform.ValidText(tok) {
				return nil, invalidRequest("the Bearer token must be UTF-8 text without NUL bytes")
			}
			c.BearerToken = tok
			return c, nil
		}
	}
	basicID, basicSecret, hasBasic, err := basicCredentials(r)
	if err != nil {
		return nil, err.(*oauthError)
	}
	switch {
	case hasBasic:
		if _, dup := params["client_secret"]; dup {
			return nil, invalidRequest("use one client authentication method, not Basic and client_secret together")
		}
		if id, ok := params["client_id"]; ok && id != basicID {
			return nil, invalidRequest("client_id in the body does not match the Basic credentials")
		}
		c.ClientId, c.ClientSecret = basicID, basicSecret
		c.ClientAuthMethod = tokenv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC
	case params["client_secret"] != "":
		c.ClientId, c.ClientSecret = params["client_id"], params["client_secret"]
		c.ClientAuthMethod = tokenv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_POST
	default:
		c.ClientId = params["client_id"]
		c.ClientAuthMethod = tokenv1.ClientAuthMethod_CLIENT_AUTH_METHOD_NONE
	}
	if c.ClientId == "" {
		return nil, &oauthError{http.StatusUnauthorized, "invalid_client", "client authentication is required"}
	}
	return c, nil
}

// bearerToken reads `Authorization: Bearer …`.
func bearerToken(r *http.Request) (string, bool) {
	scheme, value, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	return strings.TrimSpace(value), true
}

// parseTokenParams reads form, multipart or JSON bodies into single-valued parameters. A repeated parameter is
// an error (RFC 6749 section 3.2), and so is one that is not UTF-8 text without NUL bytes.
func parseTokenParams(r *http.Request) (map[string]string, error) {
	params, err := readTokenParams(r)
	if err != nil {
		return nil, err
	}
	for k, v := range params {
		if !platform.ValidText(k) || !platform.ValidText(v) {
			return nil, invalidRequest("parameter %q must be UTF-8 text without NUL bytes", k)
		}
	}
	return params, nil
}

func readTokenParams(r *http.Request) (map[string]string, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	params := map[string]string{}
	var values url.Values
	switch ct {
	case "application/json":
		raw, err := io.ReadAll(r.Body) // bounded by MaxBodyBytes
		if err != nil {
			return nil, bodyError(err, "the JSON body cannot be read")
		}
		if !utf8.Valid(raw) { // encoding/json would quietly turn the bad bytes into U+FFFD
			return nil, invalidRequest("the JSON body must be UTF-8")
		}
		var body map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			return nil, bodyError(err, "the JSON body is malformed")
		}
		if dec.More() {
			return nil, invalidRequest("the JSON body must be one object")
		}
		for k, v := range body {
			switch v := v.(type) {
			case string:
				params[k] = v
			case json.Number:
				params[k] = v.String()
			case bool:
				params[k] = strconv.FormatBool(v)
			case nil:
			default:
				return nil, invalidRequest("parameter %q must be a string", k)
			}
		}
		return params, nil
	case "multipart/form-data":
		if err := r.ParseMultipartForm(MaxBodyBytes); err != nil {
			return nil, bodyError(err, "the multipart body is malformed")
		}
		values = r.MultipartForm.Value
	case "application/x-www-form-urlencoded", "":
		if err := r.ParseForm(); err != nil {
			return nil, bodyError(err, "the form body is malformed")
		}
		values = r.PostForm
	default:
		return nil, invalidRequest("unsupported content type %q: use application/x-www-form-urlencoded, multipart/form-data or application/json", ct)
	}
	for k, vs := range values {
		if len(vs) > 1 {
			return nil, invalidRequest("parameter %q is repeated", k)
		}
		params[k] = vs[0]
	}
	return params, nil
}

func bodyError(err error, msg string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &oauthError{http.StatusRequestEntityTooLarge, "invalid_request", "request body is larger than 1 MiB"}
	}
	return invalidRequest("%s", msg)
}

// basicCredentials reads HTTP Basic client credentials, percent-decoding both halves (RFC 6749 section 2.3.1).
func basicCredentials(r *http.Request) (id, secret string, ok bool, err error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", "", false, nil
	}
	scheme, value, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "basic") {
		return "", "", false, nil
	}
	raw, decErr := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	rawID, rawSecret, found := strings.Cut(string(raw), ":")
	if decErr != nil || !found {
		return "", "", true, &oauthError{http.StatusUnauthorized, "invalid_client", "malformed Basic credentials"}
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil {
		return "", "", true, &oauthError{http.StatusUnauthorized, "invalid_client", "malformed percent-encoding in Basic credentials"}
	}
	if !platform.ValidText(id) || !platform.ValidText(secret) {
		return "", "", true, invalidRequest("the Basic credentials must be UTF-8 text without NUL bytes")
	}
	return id, secret, true, nil
}

// asOAuthError turns a token service error (an OAuth error, or any other failure) into RFC 6749 terms.
func asOAuthError(err error) *oauthError {
	var oe *oauthError
	if errors.As(err, &oe) {
		return oe
	}
	d := apierr.Describe(err)
	if d.OAuth {
		return &oauthError{d.HTTPStatus, d.ErrorCode, d.Message}
	}
	switch {
	case d.HTTPStatus == http.StatusServiceUnavailable || d.HTTPStatus == http.StatusTooManyRequests:
		return &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", d.Message}
	case d.HTTPStatus == http.StatusNotFound:
		return &oauthError{http.StatusNotFound, "invalid_request", d.Message}
	case d.HTTPStatus >= 500:
		return &oauthError{http.StatusInternalServerError, "server_error", "the server could not handle the request"}
	default:
		return &oauthError{http.StatusBadRequest, "invalid_request", d.Message}
	}
}

type oauthErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	h := w.Header()
	switch {
	case e.code == "invalid_token" || e.code == "insufficient_scope": // RFC 6750 section 3
		h.Set("WWW-Authenticate", `Bearer realm="authplane", error="`+e.code+`"`)
	case e.status == http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Basic realm="authplane", charset="UTF-8"`)
	}
	writeNoStoreJSON(w, e.status, oauthErrorBody{Error: e.code, ErrorDescription: e.description})
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

func writeTokenResponse(w http.ResponseWriter, t *tokenv1.TokenResponse) {
	writeNoStoreJSON(w, http.StatusOK, tokenResponse{
		AccessToken: t.AccessToken, TokenType: t.TokenType, ExpiresIn: t.ExpiresIn, Scope: t.Scope,
		RefreshToken: t.RefreshToken, IDToken: t.IdToken,
	})
}

// writeNoStoreJSON writes a JSON answer of the data plane, which must never be cached (RFC 6749 section 5.1).
func writeNoStoreJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

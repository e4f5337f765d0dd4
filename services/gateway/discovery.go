package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/platform"
)

// providerMetadata is the OIDC discovery / RFC 8414 document of a workspace.
type providerMetadata struct {
	Issuer                            string   `json:"issuer"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	// Browser sign-in.
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	EndSessionEndpoint                         string   `json:"end_session_endpoint"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	PromptValuesSupported                      []string `json:"prompt_values_supported"`
}

func (g *Gateway) discovery(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), discoveryRoute)
	g.writeMetadata(w, r)
}

func (g *Gateway) authorizationServerMetadata(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), metadataRoute)
	g.writeMetadata(w, r)
}

func (g *Gateway) writeMetadata(w http.ResponseWriter, r *http.Request) {
	tenantID, serverID := r.PathValue("tenant_id"), r.PathValue("server_id")
	md, err := g.workspaces.GetServerMetadata(g.internal.Outgoing(r.Context()), &workspacev1.GetServerMetadataRequest{TenantId: tenantID, ServerId: serverID})
	if err != nil {
		writeError(w, err)
		return
	}
	iss := platform.Issuer(g.issuerURL, tenantID, serverID)
	authMethods := []string{platform.AuthSecretBasic, platform.AuthSecretPost, platform.AuthNone}
	doc := providerMetadata{
		Issuer: iss, TokenEndpoint: iss + "/oauth2/token", JWKSURI: iss + "/.well-known/jwks.json",
		IntrospectionEndpoint: iss + "/oauth2/introspect", RevocationEndpoint: iss + "/oauth2/revoke",
		UserinfoEndpoint:                  iss + "/userinfo",
		GrantTypesSupported:               md.GrantTypes,
		ResponseTypesSupported:            []string{"code"},
		ScopesSupported:                   md.Scopes,
		TokenEndpointAuthMethodsSupported: authMethods,
		IntrospectionAuthMethodsSupported: []string{platform.AuthSecretBasic, platform.AuthSecretPost},
		RevocationAuthMethodsSupported:    authMethods,
		IDTokenSigningAlgValuesSupported:  []string{signingAlg(md)},
		SubjectTypesSupported:             []string{"public"},
		ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "jti", "client_id", "scope", "tid", "aid",
			"name", "given_name", "family_name", "email", "email_verified", "phone_number", "phone_number_verified", "idp", "extra_info",
			"sid", "nonce", "at_hash", "azp"},
		AuthorizationEndpoint:                      iss + "/oauth2/authorize",
		EndSessionEndpoint:                         iss + "/oauth2/logout",
		ResponseModesSupported:                     []string{"query"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		AuthorizationResponseIssParameterSupported: true,
		PromptValuesSupported:                      []string{"none", "login", "consent"},
	}
	writeJSON(w, http.StatusOK, doc, "public, max-age=60")
}

func (g *Gateway) jwks(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), jwksRoute)
	set, err := g.tokens.GetJWKS(r.Context(), &tokenv1.GetJWKSRequest{TenantId: r.PathValue("tenant_id"), ServerId: r.PathValue("server_id")})
	if err != nil {
		writeError(w, err)
		return
	}
	body, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false}.Marshal(&tokenv1.JWKS{Keys: set.Keys})
	if err != nil {
		writeError(w, err)
		return
	}
	if len(set.Keys) == 0 {
		body = []byte(`{"keys":[]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	// The token service publishes a new key at least this long before it signs with it.
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(set.MaxAgeSeconds)))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// signingAlg is what the workspace signs its tokens with.
func signingAlg(md *workspacev1.ServerMetadata) string {
	if md.GetSigningAlg() != "" {
		return md.GetSigningAlg()
	}
	return "ES256"
}

func writeJSON(w http.ResponseWriter, code int, v any, cacheControl string) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	if cacheControl != "" {
		w.Header().Set("Cache-Control", cacheControl)
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

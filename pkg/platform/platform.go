// Package platform names what every service agrees on: the reserved tenant and workspaces, the scopes that open
// the planes, the grant types, and how an issuer URL is built.
package platform

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/secrets"
)

// The operator's tenant, and the built-in workspaces every tenant has.
const (
	RootTenant   = "root"
	AdminServer  = "admin"
	SystemServer = "system"
)

// Scopes that open a plane, meaningful only in the workspace that owns them.
const (
	ScopeManageTenants       = "manage_tenants"
	ScopeManageConfiguration = "manage_configuration"
	ScopeReadConfiguration   = "read_configuration"
	ScopeIdentity            = "identity"
	ScopeIntrospectTokens    = "introspect_tokens"
)

// ReservedScopes may be defined only where the platform defines them.
var ReservedScopes = map[string]bool{
	ScopeManageTenants: true, ScopeManageConfiguration: true, ScopeReadConfiguration: true,
	ScopeIdentity: true, ScopeIntrospectTokens: true,
}

// StandardScopes are predefined in every workspace.
var StandardScopes = []string{"openid", "profile", "email", "phone", "address", "offline_access", ScopeIntrospectTokens}

// PlaneScopes are predefined, on top of StandardScopes, in the built-in workspaces.
var PlaneScopes = map[string][]string{
	AdminServer:  {ScopeManageConfiguration, ScopeReadConfiguration},
	SystemServer: {ScopeIdentity},
}

// Grant types the token endpoint supports.
const (
	GrantClientCredentials = "client_credentials"
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	// GrantAuthorizationCode is browser sign-in: the authorization endpoint, then the code at the token endpoint.
	GrantAuthorizationCode = "authorization_code"
)

// SupportedGrants in the order discovery lists them.
var SupportedGrants = []string{GrantClientCredentials, GrantPassword, GrantRefreshToken, GrantAuthorizationCode}

// IsSupportedGrant reports a grant type this server implements.
func IsSupportedGrant(g string) bool { return slices.Contains(SupportedGrants, g) }

// Token endpoint client authentication methods a client may register.
const (
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
	AuthNone        = "none"
)

// RESTSuccessStatus is the status of a REST call that succeeds, by the name of its RPC: 201 for CreateX, 204 (no
// body) for DeleteX, 200 for every other. The gateway answers with it and the OpenAPI document declares it.
func RESTSuccessStatus(rpcName string) int {
	switch {
	case strings.HasPrefix(rpcName, "Create"):
		return 201
	case strings.HasPrefix(rpcName, "Delete"):
		return 204
	}
	return 200
}

// Issuer is `{base}/{tenant}/{server}` with no trailing slash.
func Issuer(base, tenantID, serverID string) string {
	return strings.TrimRight(base, "/") + "/" + tenantID + "/" + serverID
}

var (
	tenantIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)
	// Ids of workspaces, pools, schemas and policies chosen by callers.
	resourceIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	// Client ids and secrets use only characters that need no percent-encoding (RFC 3986 unreserved).
	clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
)

// Tenant ids that would clash with the URL space or the operator.
var reservedTenantIDs = map[string]bool{
	RootTenant: true, "api": true, "tenants": true, ".well-known": true, "healthz": true, "readyz": true,
	"metrics": true, "openapi": true, "admin": true, "system": true, "static": true, "oauth2": true,
	"audit-events": true, "docs": true,
}

// ValidTenantID reports whether id may name a new tenant.
func ValidTenantID(id string) bool { return tenantIDPattern.MatchString(id) && !reservedTenantIDs[id] }

// ValidResourceID reports whether a caller-chosen id of a workspace, pool, schema or policy is acceptable.
func ValidResourceID(id string) bool { return resourceIDPattern.MatchString(id) }

// ValidClientID reports whether a caller-chosen client id is acceptable.
func ValidClientID(id string) bool { return clientIDPattern.MatchString(id) }

// ValidText reports whether s is text every backend stores and returns as given: valid UTF-8 without NUL bytes.
// PostgreSQL refuses both; SQLite would keep bytes that no JSON client can read back.
func ValidText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// NewResourceID returns the id a caller chose for a new workspace, pool, schema or policy, or a generated one
// when the caller chose none; a malformed choice is an InvalidArgument error naming the field `id`.
func NewResourceID(requested string) (string, error) {
	if requested == "" {
		return secrets.NewID(), nil
	}
	if !ValidResourceID(requested) {
		return "", apierr.Field("id", "id must match %s", resourceIDPattern)
	}
	return requested, nil
}

// IsLoopbackHost reports whether a URL's host (without port or brackets) is a loopback address or `localhost`:
// where http redirect URIs and origins are allowed (RFC 8252 section 7.3).
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

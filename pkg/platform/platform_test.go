package platform_test

import (
	"strings"
	"testing"

	"github.com/authplane/authplane/pkg/platform"
)

func TestValidTenantID(t *testing.T) {
	cases := []struct {
		id    string
		valid bool
	}{
		{"acme", true},
		{"ab", true},
		{"a1", true},
		{"acme-corp-2", true},
		{"a" + strings.Repeat("b", 62), true},  // 63 characters
		{"a" + strings.Repeat("b", 63), false}, // 64
		{"a", false},
		{"", false},
		{"1acme", false},
		{"-acme", false},
		{"Acme", false},
		{"acme_corp", false},
		{"acme.corp", false},
		{"acme/x", false},
		{"acme ", false},
		{"ac\nme", false},
		{"acme\n", false},
		{"ácme", false},
		// Reserved: the operator, and words of the URL space.
		{"root", false},
		{"api", false},
		{"tenants", false},
		{".well-known", false},
		{"healthz", false},
		{"readyz", false},
		{"metrics", false},
		{"openapi", false},
		{"admin", false},
		{"system", false},
		{"static", false},
		{"oauth2", false},
		// Near the reserved words, but not them.
		{"roots", true},
		{"apis", true},
		{"admin-team", true},
	}
	for _, tc := range cases {
		if got := platform.ValidTenantID(tc.id); got != tc.valid {
			t.Errorf("ValidTenantID(%q) = %v, want %v", tc.id, got, tc.valid)
		}
	}
}

func TestValidResourceID(t *testing.T) {
	cases := []struct {
		id    string
		valid bool
	}{
		{"a", true},
		{"1", true},
		{"ws1", true},
		{"my_pool-2", true},
		{"0abc", true},
		{"admin", true}, // the built-in workspaces' ids are valid ids (services refuse creating them)
		{"system", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-ws", false},
		{"_ws", false},
		{"Ws", false},
		{"ws.1", false},
		{"ws/1", false},
		{"ws 1", false},
		{"ws1\n", false},
		{"wß", false},
	}
	for _, tc := range cases {
		if got := platform.ValidResourceID(tc.id); got != tc.valid {
			t.Errorf("ValidResourceID(%q) = %v, want %v", tc.id, got, tc.valid)
		}
	}
}

func TestValidClientID(t *testing.T) {
	cases := []struct {
		id    string
		valid bool
	}{
		{"c", true},
		{"My.Client_1~x-y", true},
		{"0123456789abcdef", true},
		{strings.Repeat("A", 128), true},
		{strings.Repeat("A", 129), false},
		{"", false},
		{"client:1", false}, // would break Basic credentials
		{"client 1", false},
		{"client/1", false},
		{"client%41", false},
		{"client+1", false},
		{"client@x", false},
		{"clïent", false},
		{"client\n", false},
	}
	for _, tc := range cases {
		if got := platform.ValidClientID(tc.id); got != tc.valid {
			t.Errorf("ValidClientID(%q) = %v, want %v", tc.id, got, tc.valid)
		}
	}
}

func TestIssuer(t *testing.T) {
	cases := []struct {
		base, tenant, server, want string
	}{
		{"https://auth.example.com", "acme", "ws1", "https://auth.example.com/acme/ws1"},
		{"https://auth.example.com/", "acme", "ws1", "https://auth.example.com/acme/ws1"},
		{"https://auth.example.com///", "acme", "ws1", "https://auth.example.com/acme/ws1"},
		{"https://example.com/auth/", "root", "admin", "https://example.com/auth/root/admin"},
		{"http://127.0.0.1:8080", "acme", "system", "http://127.0.0.1:8080/acme/system"},
	}
	for _, tc := range cases {
		got := platform.Issuer(tc.base, tc.tenant, tc.server)
		if got != tc.want {
			t.Errorf("Issuer(%q, %q, %q) = %q, want %q", tc.base, tc.tenant, tc.server, got, tc.want)
		}
		if strings.HasSuffix(got, "/") {
			t.Errorf("Issuer %q ends with a slash", got)
		}
	}
}

func TestGrantsAndScopes(t *testing.T) {
	for _, g := range []string{"client_credentials", "password", "refresh_token", "authorization_code"} {
		if !platform.IsSupportedGrant(g) {
			t.Errorf("IsSupportedGrant(%q) = false", g)
		}
	}
	for _, g := range []string{"", "implicit", "urn:ietf:params:oauth:grant-type:device_code", "Password"} {
		if platform.IsSupportedGrant(g) {
			t.Errorf("IsSupportedGrant(%q) = true", g)
		}
	}
	for _, s := range []string{"manage_tenants", "manage_configuration", "read_configuration", "identity", "introspect_tokens"} {
		if !platform.ReservedScopes[s] {
			t.Errorf("scope %q is not reserved", s)
		}
	}
	for _, s := range []string{"openid", "profile", "read", ""} {
		if platform.ReservedScopes[s] {
			t.Errorf("scope %q is reserved", s)
		}
	}
	// Each plane's scopes are predefined in the workspace that owns that plane.
	has := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	if !has(platform.PlaneScopes[platform.AdminServer], platform.ScopeManageConfiguration) ||
		!has(platform.PlaneScopes[platform.AdminServer], platform.ScopeReadConfiguration) ||
		!has(platform.PlaneScopes[platform.SystemServer], platform.ScopeIdentity) {
		t.Errorf("PlaneScopes = %v", platform.PlaneScopes)
	}
	if has(platform.PlaneScopes[platform.SystemServer], platform.ScopeManageConfiguration) {
		t.Error("the system workspace predefines an admin-plane scope")
	}
	if !has(platform.StandardScopes, "openid") {
		t.Errorf("StandardScopes = %v lacks openid", platform.StandardScopes)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	cases := map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "localhost": true, "LOCALHOST": true,
		"localhost.example": false, "10.0.0.1": false, "app.example": false, "": false, "0.0.0.0": false,
	}
	for host, want := range cases {
		if got := platform.IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

package workspace_test

import (
	"testing"

	"github.com/authplane/authplane/pkg/testenv"
)

func TestSignInBrandingIsValidatedAndReachesTheDataPlane(t *testing.T) {
	e := startIdps(t, testenv.SQLite)
	cases := []struct {
		name  string
		body  map[string]any
		field string // "" when accepted
	}{
		{"https logo, colour and name", map[string]any{"display_name": "Acme", "logo_url": "https://cdn.acme.example/logo.svg", "primary_color": "#0A7d33"}, ""},
		{"loopback http logo", map[string]any{"logo_url": "http://127.0.0.1:8080/logo.png"}, ""},
		{"http logo off loopback", map[string]any{"logo_url": "http://cdn.acme.example/logo.svg"}, "logo_url"},
		{"data URL logo", map[string]any{"logo_url": "data:image/svg+xml,<svg/>"}, "logo_url"},
		{"javascript logo", map[string]any{"logo_url": "javascript:alert(1)"}, "logo_url"},
		{"relative logo", map[string]any{"logo_url": "/logo.svg"}, "logo_url"},
		{"named colour", map[string]any{"primary_color": "red"}, "primary_color"},
		{"colour with CSS after it", map[string]any{"primary_color": "#000000;background:url(x)"}, "primary_color"},
		{"short colour", map[string]any{"primary_color": "#fff"}, "primary_color"},
		{"display name on two lines", map[string]any{"display_name": "Acme\nEvil"}, "display_name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out apiError
			code := e.admin(t, e.acme, "PUT", "/servers/ws", c.body, &out)
			switch {
			case c.field == "" && code != 200:
				t.Fatalf("status %d (%+v), want 200", code, out)
			case c.field != "" && (code != 400 || out.Details["field"] != c.field):
				t.Fatalf("status %d field %q, want 400 naming %s", code, out.Details["field"], c.field)
			}
		})
	}
	md := e.metadata(t, "acme", "ws")
	if md.DisplayName != "Acme" || md.LogoUrl != "http://127.0.0.1:8080/logo.png" || md.PrimaryColor != "#0a7d33" {
		t.Fatalf("metadata branding %q %q %q", md.DisplayName, md.LogoUrl, md.PrimaryColor)
	}
	var srv struct {
		DisplayName  string `json:"display_name"`
		PrimaryColor string `json:"primary_color"`
	}
	e.mustAdmin(t, e.acme, 200, "GET", "/servers/ws", nil, &srv)
	if srv.DisplayName != "Acme" || srv.PrimaryColor != "#0a7d33" {
		t.Fatalf("GET /servers/ws: %+v", srv)
	}
}

package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
)

func TestSessionCookieAttributesFollowTheIssuerScheme(t *testing.T) {
	cases := []struct {
		issuer, name string
		secure       bool
	}{
		{"https://id.acme.example", "__Host-authplane-sso-acme.shop", true},
		{"http://127.0.0.1:8080", "authplane-sso-acme.shop", false},
	}
	for _, c := range cases {
		g := &Gateway{issuerURL: c.issuer}
		names := g.cookieNames("acme", "shop")
		rec := httptest.NewRecorder()
		g.setCookie(rec, names.session, "v", 60)
		ck := rec.Result().Cookies()[0]
		if ck.Name != c.name || ck.Secure != c.secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
			t.Errorf("issuer %s: cookie %+v, want %s HttpOnly SameSite=Lax Path=/ no Domain, Secure=%v", c.issuer, ck, c.name, c.secure)
		}
	}
}

func TestPagesKeepTheirBrandingInsideItsContext(t *testing.T) {
	g := &Gateway{issuerURL: "http://127.0.0.1:8080"}
	rec := httptest.NewRecorder()
	g.render(rec, nil, "login.html", http.StatusOK, "https://app.example", &pageData{
		Brand:      &tokenv1.Branding{DisplayName: `<script>alert(1)</script>`, PrimaryColor: "#000;}body{display:none", LogoUrl: "javascript:alert(1)"},
		ClientName: `"><img src=x>`, Username: `" autofocus onfocus="x`, Action: "/acme/shop/login",
	})
	body, csp := rec.Body.String(), rec.Header().Get("Content-Security-Policy")
	for _, bad := range []string{"<script>", "<img src=x>", "display:none", "javascript:", `" autofocus onfocus`} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if !strings.Contains(body, "--accent: "+defaultAccent) {
		t.Error("an invalid colour did not fall back to the default")
	}
	for _, want := range []string{"default-src 'none'", "img-src 'none'", "form-action 'self' https://app.example", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
}

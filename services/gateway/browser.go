package gateway

import (
	"bytes"
	"embed"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/secrets"
)

// Browser sign-in: the authorization endpoint, the hosted login and consent pages, and RP-initiated logout. The
// gateway parses the request, passes the browser's cookies to the token service, and renders what it answers:
// a redirect, a page, or cookies to set. It decides nothing itself.

// Route patterns of browser sign-in (also the metrics labels).
const (
	authorizeRoute = "/{tenant_id}/{server_id}/oauth2/authorize"
	loginRoute     = "/{tenant_id}/{server_id}/login"
	consentRoute   = "/{tenant_id}/{server_id}/consent"
	logoutRoute    = "/{tenant_id}/{server_id}/oauth2/logout"
)

//go:embed templates/*.html
var templateFiles embed.FS

var pages = template.Must(template.ParseFS(templateFiles, "templates/*.html"))

// defaultAccent is the pages' colour when the workspace sets none.
const defaultAccent = "#2563eb"

var colorPattern = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// pageData is what every page template reads.
type pageData struct {
	Title       string
	Brand       *tokenv1.Branding
	Color       template.CSS
	Nonce       string
	Action      string
	RequestID   string
	CSRF        string
	ClientName  string
	Username    string
	Error       string
	Description string
	Scopes      []*tokenv1.ConsentScope
}

// cookieNames are the browser's cookies of one workspace. With an https issuer they carry the `__Host-` prefix
// (Secure, no Domain, Path=/): no other host, not even a sibling subdomain, can set or shadow them.
type cookieNames struct{ session, binding string }

func (g *Gateway) secureCookies() bool { return strings.HasPrefix(g.issuerURL, "https://") }

func (g *Gateway) cookieNames(tenantID, serverID string) cookieNames {
	prefix := "authplane-"
	if g.secureCookies() {
		prefix = "__Host-authplane-"
	}
	// Tenant and workspace ids are [a-z0-9_-]: valid in a cookie name, and "." cannot occur in either.
	return cookieNames{session: prefix + "sso-" + tenantID + "." + serverID, binding: prefix + "binding"}
}

func (g *Gateway) cookies(r *http.Request) *tokenv1.BrowserCookies {
	names := g.cookieNames(r.PathValue("tenant_id"), r.PathValue("server_id"))
	c := &tokenv1.BrowserCookies{}
	if ck, err := r.Cookie(names.session); err == nil {
		c.Session = ck.Value
	}
	if ck, err := r.Cookie(names.binding); err == nil {
		c.Binding = ck.Value
	}
	return c
}

func (g *Gateway) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: g.secureCookies(),
		SameSite: http.SameSiteLaxMode,
	})
}

// browserParams reads a browser request's parameters: the query of a GET, the form of a POST. A repeated
// parameter is refused (RFC 6749 section 3.1).
func browserParams(r *http.Request) (map[string]string, string) {
	var values url.Values
	switch r.Method {
	case http.MethodGet:
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, "The request's query is malformed."
		}
		values = q
	case http.MethodPost:
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
			return nil, "Send the form as application/x-www-form-urlencoded."
		}
		if err := r.ParseForm(); err != nil {
			return nil, "The form is malformed."
		}
		values = r.PostForm
	default:
		return nil, "Use GET or POST."
	}
	if !cleanText(r.PathValue("tenant_id")) || !cleanText(r.PathValue("server_id")) {
		return nil, "The address is not valid UTF-8, or contains a NUL byte."
	}
	params := make(map[string]string, len(values))
	for k, vs := range values {
		if len(vs) > 1 {
			return nil, "A parameter is repeated."
		}
		if !cleanText(k) || !cleanText(vs[0]) {
			return nil, "A parameter is not valid UTF-8, or contains a NUL byte."
		}
		params[k] = vs[0]
	}
	return params, ""
}

// cleanText reports text that can be passed on: valid UTF-8 without NUL (protobuf strings must be UTF-8).
func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// authorize handles GET|POST {issuer}/oauth2/authorize.
func (g *Gateway) authorize(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), authorizeRoute)
	params, bad := browserParams(r)
	if bad != "" {
		g.renderMessage(w, r, &tokenv1.MessagePage{Error: "invalid_request", Description: bad, Status: http.StatusBadRequest})
		return
	}
	resp, err := g.tokens.Authorize(r.Context(), &tokenv1.AuthorizeRequest{
		TenantId: r.PathValue("tenant_id"), ServerId: r.PathValue("server_id"), Parameters: params, Cookies: g.cookies(r),
	})
	g.answer(w, r, resp, err)
}

// login handles GET {issuer}/login?request=… (the page) and POST {issuer}/login (the form).
func (g *Gateway) login(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), loginRoute)
	tenantID, serverID := r.PathValue("tenant_id"), r.PathValue("server_id")
	if r.Method == http.MethodGet {
		if id := r.URL.Query().Get("request"); !cleanText(id) || !cleanText(tenantID) || !cleanText(serverID) {
			g.renderMessage(w, r, &tokenv1.MessagePage{Error: "invalid_request", Description: "The address is not valid UTF-8, or contains a NUL byte.", Status: http.StatusBadRequest})
			return
		}
		resp, err := g.tokens.GetLoginPage(r.Context(), &tokenv1.GetLoginPageRequest{
			TenantId: tenantID, ServerId: serverID, RequestId: r.URL.Query().Get("request"), Cookies: g.cookies(r),
		})
		g.answer(w, r, resp, err)
		return
	}
	params, bad := browserParams(r)
	if bad != "" {
		g.renderMessage(w, r, &tokenv1.MessagePage{Error: "invalid_request", Description: bad, Status: http.StatusBadRequest})
		return
	}
	resp, err := g.tokens.SubmitLogin(r.Context(), &tokenv1.SubmitLoginRequest{
		TenantId: tenantID, ServerId: serverID, RequestId: params["request"], CsrfToken: params["csrf_token"],
		Username: params["username"], Password: params["password"], Cookies: g.cookies(r),
	})
	g.answer(w, r, resp, err)
}

// consent handles POST {issuer}/consent.
func (g *Gateway) consent(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), consentRoute)
	params, bad := browserParams(r)
	if bad != "" || r.Method != http.MethodPost {
		g.renderMessage(w, r, &tokenv1.MessagePage{Error: "invalid_request", Description: "Submit the consent form.", Status: http.StatusBadRequest})
		return
	}
	resp, err := g.tokens.SubmitConsent(r.Context(), &tokenv1.SubmitConsentRequest{
		TenantId: r.PathValue("tenant_id"), ServerId: r.PathValue("server_id"), RequestId: params["request"],
		CsrfToken: params["csrf_token"], Approve: params["decision"] == "allow", Cookies: g.cookies(r),
	})
	g.answer(w, r, resp, err)
}

// logout handles GET|POST {issuer}/oauth2/logout.
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), logoutRoute)
	params, bad := browserParams(r)
	if bad != "" {
		g.renderMessage(w, r, &tokenv1.MessagePage{Error: "invalid_request", Description: bad, Status: http.StatusBadRequest})
		return
	}
	resp, err := g.tokens.Logout(r.Context(), &tokenv1.LogoutRequest{
		TenantId: r.PathValue("tenant_id"), ServerId: r.PathValue("server_id"), Parameters: params, Cookies: g.cookies(r),
	})
	g.answer(w, r, resp, err)
}

// answer carries out the token service's answer: cookies first, then the redirect or the page.
func (g *Gateway) answer(w http.ResponseWriter, r *http.Request, resp *tokenv1.BrowserResponse, err error) {
	if err != nil {
		d := apierr.Describe(err)
		m := &tokenv1.MessagePage{Error: "server_error", Description: "Sign-in is unavailable right now. Try again later.", Status: http.StatusInternalServerError}
		switch {
		case d.HTTPStatus == http.StatusNotFound:
			m = &tokenv1.MessagePage{Error: "invalid_request", Description: "There is no authorization server here.", Status: http.StatusNotFound}
		case d.HTTPStatus == http.StatusServiceUnavailable || d.HTTPStatus == http.StatusTooManyRequests:
			m = &tokenv1.MessagePage{Error: "temporarily_unavailable", Description: "Sign-in is unavailable right now. Try again later.", Status: http.StatusServiceUnavailable}
		case d.HTTPStatus == http.StatusBadRequest:
			m = &tokenv1.MessagePage{Error: "invalid_request", Description: d.Message, Status: http.StatusBadRequest}
		}
		g.renderMessage(w, r, m)
		return
	}
	names := g.cookieNames(r.PathValue("tenant_id"), r.PathValue("server_id"))
	switch {
	case resp.SetSession != "":
		g.setCookie(w, names.session, resp.SetSession, int(resp.SessionMaxAge))
	case resp.ClearSession:
		g.setCookie(w, names.session, "", -1)
	}
	if resp.Binding != "" && resp.Binding != g.cookies(r).Binding {
		g.setCookie(w, names.binding, resp.Binding, 0) // a browser-session cookie: gone when the browser closes
	}
	switch o := resp.Outcome.(type) {
	case *tokenv1.BrowserResponse_RedirectTo:
		noStore(w)
		w.Header().Set("Location", o.RedirectTo)
		w.WriteHeader(http.StatusSeeOther)
	case *tokenv1.BrowserResponse_Login:
		p := o.Login
		g.render(w, r, "login.html", http.StatusOK, p.RedirectOrigin, &pageData{
			Title: "Sign in", Brand: p.Branding, RequestID: p.RequestId, CSRF: resp.Binding, ClientName: p.ClientName,
			Username: p.Username, Error: p.ErrorMessage,
			Action: "/" + r.PathValue("tenant_id") + "/" + r.PathValue("server_id") + "/login",
		})
	case *tokenv1.BrowserResponse_Consent:
		p := o.Consent
		g.render(w, r, "consent.html", http.StatusOK, p.RedirectOrigin, &pageData{
			Title: "Allow access", Brand: p.Branding, RequestID: p.RequestId, CSRF: resp.Binding, ClientName: p.ClientName,
			Username: p.Username, Scopes: p.Scopes,
			Action: "/" + r.PathValue("tenant_id") + "/" + r.PathValue("server_id") + "/consent",
		})
	case *tokenv1.BrowserResponse_Message:
		g.renderMessage(w, r, o.Message)
	default:
		g.renderMessage(w, r, &tokenv1.MessagePage{Error: "server_error", Description: "The server could not handle the request.", Status: http.StatusInternalServerError})
	}
}

func (g *Gateway) renderMessage(w http.ResponseWriter, r *http.Request, m *tokenv1.MessagePage) {
	title := "Something went wrong"
	if m.Error == "" {
		title = "Signed out"
	}
	status := int(m.Status)
	if status == 0 {
		status = http.StatusBadRequest
	}
	g.render(w, r, "message.html", status, "", &pageData{Title: title, Brand: m.Branding, Error: m.Error, Description: m.Description})
}

// render writes a page with the headers every page of the sign-in flow has: never cached, never framed
// (frame-ancestors 'none', and X-Frame-Options for older browsers), no script at all, styles only from the page
// itself (by nonce), images only from the workspace's logo, and forms that answer only to this server or the
// request's redirect URI (formOrigin), where the sign-in's answer redirects.
func (g *Gateway) render(w http.ResponseWriter, _ *http.Request, name string, status int, formOrigin string, d *pageData) {
	if d.Brand == nil {
		d.Brand = &tokenv1.Branding{}
	}
	if d.Brand.DisplayName == "" {
		d.Brand.DisplayName = "Authplane"
	}
	d.Color = template.CSS(defaultAccent)
	if colorPattern.MatchString(d.Brand.PrimaryColor) {
		d.Color = template.CSS(d.Brand.PrimaryColor)
	}
	d.Nonce = secrets.Random(16)
	imgSrc := "'none'"
	if u, err := url.Parse(d.Brand.LogoUrl); err == nil && d.Brand.LogoUrl != "" && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		imgSrc = u.Scheme + "://" + u.Host
	} else {
		d.Brand.LogoUrl = ""
	}
	formAction := "'self'"
	if formOrigin != "" && !strings.ContainsAny(formOrigin, " ;,'\"") {
		formAction += " " + formOrigin
	}
	var body bytes.Buffer
	if err := pages.ExecuteTemplate(&body, name, d); err != nil {
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+d.Nonce+"'; img-src "+imgSrc+
		"; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	noStore(w)
	w.WriteHeader(status)
	_, _ = w.Write(body.Bytes())
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

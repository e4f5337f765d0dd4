package token

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/secrets"
)

// Browser sign-in (OpenID Connect Core's authorization code flow with PKCE). The gateway parses HTTP, renders the
// pages and sets the cookies; every decision is made here, and everything that must survive between the
// browser's requests is in this service's tables (browser_store.go).

const (
	// authRequestTTL is how long a user has to sign in and consent.
	authRequestTTL = 15 * time.Minute
	// codeTTL is an authorization code's lifetime (RFC 6749 section 4.1.2 recommends at most 10 minutes).
	codeTTL = 60 * time.Second
	// maxParamBytes bounds state, nonce and login_hint, which are stored.
	maxParamBytes = 2048
	// badCredentialsMessage is the one message of every refused sign-in, whatever the reason.
	badCredentialsMessage = "The username or password is incorrect."
)

// codeChallengePattern is an S256 challenge: base64url of a SHA-256 digest (RFC 7636 section 4.2).
var codeChallengePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// browserClient is a client as the authorization endpoint needs it.
type browserClient struct {
	*authClient
	name            string
	redirectURIs    []string
	postLogoutURIs  []string
	trusted         bool
	authorizationOK bool // has the authorization_code grant
}

// browserClientOf reads a client of the workspace without authenticating it: at the authorization endpoint the
// client is identified by its registered redirect URI, not by a secret. nil when it is unknown or of another
// workspace.
func (s *Service) browserClientOf(ctx context.Context, ws *workspaceInfo, clientID string) (*browserClient, error) {
	if !platform.ValidClientID(clientID) {
		return nil, nil
	}
	ac, err := s.clientAPI.GetClientAccess(s.internal.Outgoing(ctx), &clientv1.GetClientAccessRequest{TenantId: ws.tenantID, ClientId: clientID})
	if apierr.Describe(err).HTTPStatus == 404 {
		return nil, nil
	}
	if err != nil {
		return nil, remoteFailure(err, "read client")
	}
	cl := ac.GetClient()
	if cl.GetAuthorizationServerId() != ws.serverID {
		return nil, nil
	}
	name := cl.GetClientName()
	if name == "" {
		name = cl.GetClientId()
	}
	return &browserClient{
		authClient: newAuthClient(ac), name: name, redirectURIs: cl.GetRedirectUris(),
		postLogoutURIs: cl.GetPostLogoutRedirectUris(), trusted: cl.GetTrusted(),
		authorizationOK: slices.Contains(cl.GetGrantTypes(), platform.GrantAuthorizationCode),
	}, nil
}

// messagePage is an answer shown in the browser, never redirected: an unknown client or redirect URI (RFC 6749
// section 4.1.2.1), a forged form, an expired request.
func messagePage(ws *workspaceInfo, status int32, code, description string) *tokenv1.BrowserResponse {
	m := &tokenv1.MessagePage{Error: code, Description: description, Status: status}
	if ws != nil {
		m.Branding = branding(ws)
	}
	return &tokenv1.BrowserResponse{Outcome: &tokenv1.BrowserResponse_Message{Message: m}}
}

func branding(ws *workspaceInfo) *tokenv1.Branding {
	return &tokenv1.Branding{DisplayName: ws.md.GetDisplayName(), LogoUrl: ws.md.GetLogoUrl(), PrimaryColor: ws.md.GetPrimaryColor()}
}

// redirectTo answers 303 to a URL.
func redirectTo(u string) *tokenv1.BrowserResponse {
	return &tokenv1.BrowserResponse{Outcome: &tokenv1.BrowserResponse_RedirectTo{RedirectTo: u}}
}

// authResponse builds the authorization response at a redirect URI, with `iss` (RFC 9207) always and `state`
// when the request had one.
func authResponse(redirectURI, iss, state string, params map[string]string) string {
	all := map[string]string{"iss": iss}
	for k, v := range params {
		all[k] = v
	}
	if state != "" {
		all["state"] = state
	}
	return withQuery(redirectURI, all)
}

// withQuery adds parameters to a URI's query, keeping the URI's own.
func withQuery(uri string, params map[string]string) string {
	u, err := url.Parse(uri)
	if err != nil { // registered URIs were checked; this cannot happen
		return uri
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// authError redirects an error of an authorization request to the client (RFC 6749 section 4.1.2.1).
func authError(redirectURI, iss, state, code, description string) *tokenv1.BrowserResponse {
	return redirectTo(authResponse(redirectURI, iss, state, map[string]string{"error": code, "error_description": description}))
}

// origin is what a page's form answer may redirect to, for its Content-Security-Policy form-action: the redirect
// URI's origin, or its scheme for a native app's private-use scheme.
func origin(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return ""
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + ":"
}

// Authorize handles the authorization endpoint.
func (s *Service) Authorize(ctx context.Context, req *tokenv1.AuthorizeRequest) (*tokenv1.BrowserResponse, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	p := req.Parameters
	for k, v := range p {
		if strings.ContainsRune(v, 0) || strings.ContainsRune(k, 0) {
			return messagePage(ws, 400, "invalid_request", "a parameter contains a NUL byte"), nil
		}
	}
	client, err := s.browserClientOf(ctx, ws, p["client_id"])
	if err != nil {
		return nil, err
	}
	if client == nil {
		return messagePage(ws, 400, "invalid_request", "The application is not known here (client_id)."), nil
	}
	redirectURI := p["redirect_uri"]
	if redirectURI == "" && len(client.redirectURIs) == 1 {
		redirectURI = client.redirectURIs[0]
	}
	if !slices.Contains(client.redirectURIs, redirectURI) {
		return messagePage(ws, 400, "invalid_request", "The redirect_uri is not registered for this application."), nil
	}
	// From here on errors go back to the client.
	state := p["state"]
	fail := func(code, description string) (*tokenv1.BrowserResponse, error) {
		return authError(redirectURI, ws.issuer, state, code, description), nil
	}
	switch {
	case len(state) > maxParamBytes || len(p["nonce"]) > maxParamBytes || len(p["login_hint"]) > maxParamBytes:
		return fail("invalid_request", "state, nonce and login_hint are limited to 2048 bytes")
	case p["request"] != "":
		return fail("request_not_supported", "request objects are not supported")
	case p["request_uri"] != "":
		return fail("request_uri_not_supported", "request_uri is not supported")
	case p["response_type"] == "":
		return fail("invalid_request", "response_type is required")
	case p["response_type"] != "code":
		return fail("unsupported_response_type", "only response_type=code is supported")
	case p["response_mode"] != "" && p["response_mode"] != "query":
		return fail("invalid_request", "only response_mode=query is supported")
	case !client.authorizationOK:
		return fail("unauthorized_client", "the client is not allowed to use the authorization_code grant")
	case !ws.allowsGrant(platform.GrantAuthorizationCode):
		return fail("unauthorized_client", "the authorization_code grant is not enabled on this authorization server")
	case p["code_challenge"] == "":
		return fail("invalid_request", "PKCE is required: send code_challenge and code_challenge_method=S256")
	case p["code_challenge_method"] != "S256":
		return fail("invalid_request", "code_challenge_method must be S256")
	case !codeChallengePattern.MatchString(p["code_challenge"]):
		return fail("invalid_request", "code_challenge must be the base64url SHA-256 of the code verifier (43 characters)")
	}
	scope, err := grantedScope(&grant{req: &tokenv1.TokenRequest{Scope: p["scope"]}, ws: ws, client: client.authClient})
	if err != nil {
		return fail("invalid_scope", apierr.Describe(err).Message)
	}
	prompts := strings.Fields(p["prompt"])
	for _, pr := range prompts {
		switch pr {
		case "none", "login", "consent", "select_account":
		default:
			return fail("invalid_request", "unsupported prompt "+quote(pr))
		}
	}
	if slices.Contains(prompts, "none") && len(prompts) > 1 {
		return fail("invalid_request", "prompt=none cannot be combined with other values")
	}
	maxAge := int64(-1)
	if v, ok := p["max_age"]; ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fail("invalid_request", "max_age must be a non-negative integer")
		}
		maxAge = n
	}
	now := s.now()
	ar := &authRequestRow{
		TenantID: ws.tenantID, ID: secrets.Random(24), ServerID: ws.serverID, ClientID: client.id, RedirectURI: redirectURI,
		Scope: scope, State: state, Nonce: p["nonce"], CodeChallenge: p["code_challenge"], Prompt: strings.Join(prompts, " "),
		LoginHint: p["login_hint"], CreatedAt: now.UnixMicro(), ExpiresAt: now.Add(authRequestTTL).UnixMicro(),
	}
	out := &tokenv1.BrowserResponse{}
	sess, clear, err := s.browserSessionOf(ctx, ws, req.GetCookies().GetSession(), now)
	if err != nil {
		return nil, err
	}
	out.ClearSession = clear
	if sess != nil && (slices.Contains(prompts, "login") || (maxAge >= 0 && now.Unix()-sess.AuthTime >= maxAge)) {
		// Signs in again; the session stays until then. At max_age seconds or more (max_age=0: always, as with
		// prompt=login), since auth_time has whole seconds only.
		sess = nil
	}
	if sess == nil && slices.Contains(prompts, "none") {
		return fail("login_required", "the user is not signed in")
	}
	if sess != nil {
		needs, err := s.needsConsent(ctx, ws.tenantID, client, sess.Subject, scope, slices.Contains(prompts, "consent"))
		if err != nil {
			return nil, err
		}
		if !needs {
			resp, err := s.issueCode(ctx, ws, ar, sess, now)
			if resp != nil {
				resp.ClearSession = out.ClearSession
			}
			return resp, err
		}
		if slices.Contains(prompts, "none") {
			return fail("consent_required", "the user has not allowed this application these scopes")
		}
		ar.BrowserSessionID = sess.ID
	}
	binding := req.GetCookies().GetBinding()
	if len(binding) < 32 || len(binding) > 64 {
		binding = secrets.Random(32)
	}
	ar.BindingHash = s.keyring.HashSecret(binding)
	if err := s.store.insertAuthRequest(ctx, ar); err != nil {
		return nil, apierr.Wrap(err, "store authorization request")
	}
	out.Outcome = &tokenv1.BrowserResponse_RedirectTo{RedirectTo: ws.issuer + "/login?request=" + url.QueryEscape(ar.ID)}
	out.Binding = binding
	return out, nil
}

// browserSessionOf returns the live browser session an SSO cookie names, or nil; clear reports a cookie that
// names none (ended, expired, or its user changed), which the browser should drop.
func (s *Service) browserSessionOf(ctx context.Context, ws *workspaceInfo, cookie string, now time.Time) (sess *sessionRow, clear bool, err error) {
	if cookie == "" {
		return nil, false, nil
	}
	if len(cookie) > 128 {
		return nil, true, nil
	}
	sess, err = s.store.browserSession(ctx, ws.tenantID, ws.serverID, s.keyring.HashSecret(cookie), now.UnixMicro())
	if db.IsNotFound(err) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, apierr.Wrap(err, "read browser session")
	}
	if sess.PoolID != "" {
		st, err := s.userState(ctx, ws.tenantID, sess.PoolID, sess.Subject)
		if err != nil {
			return nil, false, err
		}
		if !st.mayContinue(sess) {
			return nil, true, nil
		}
	}
	return sess, false, nil
}

// needsConsent reports whether the user must be asked: an untrusted client, asked to (prompt=consent), or a scope
// the user has not allowed it yet.
func (s *Service) needsConsent(ctx context.Context, tenantID string, client *browserClient, subject, scope string, asked bool) (bool, error) {
	if client.trusted {
		return false, nil
	}
	if asked {
		return true, nil
	}
	c, err := s.store.consent(ctx, tenantID, client.id, subject)
	if db.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, apierr.Wrap(err, "read consent")
	}
	for sc := range strings.FieldsSeq(scope) {
		if !hasScope(c.Scope, sc) {
			return true, nil
		}
	}
	return false, nil
}

// issueCode issues an authorization code of a signed-in request and redirects the browser to the client with it.
func (s *Service) issueCode(ctx context.Context, ws *workspaceInfo, ar *authRequestRow, sess *sessionRow, now time.Time) (*tokenv1.BrowserResponse, error) {
	code := secrets.Random(32)
	row := &authCodeRow{
		TenantID: ws.tenantID, CodeHash: s.keyring.HashSecret(code), ServerID: ws.serverID, ClientID: ar.ClientID,
		RedirectURI: ar.RedirectURI, CodeChallenge: ar.CodeChallenge, Nonce: ar.Nonce, Scope: ar.Scope,
		BrowserSessionID: sess.ID, IssuedAt: now.UnixMicro(), ExpiresAt: now.Add(codeTTL).UnixMicro(),
	}
	if err := s.store.insertCode(ctx, row); err != nil {
		return nil, apierr.Wrap(err, "store authorization code")
	}
	return redirectTo(authResponse(ar.RedirectURI, ws.issuer, ar.State, map[string]string{"code": code})), nil
}

// pendingRequest loads a pending request for the browser presenting it. With a form (csrf true) the form's CSRF
// token must equal the binding cookie; in every case the binding cookie must be the one the request was bound
// to. A page is returned instead when the request is unknown, expired or another browser's.
func (s *Service) pendingRequest(ctx context.Context, ws *workspaceInfo, id string, cookies *tokenv1.BrowserCookies, form bool, csrf string) (*authRequestRow, *tokenv1.BrowserResponse, error) {
	binding := cookies.GetBinding()
	if form && (csrf == "" || subtle.ConstantTimeCompare([]byte(csrf), []byte(binding)) != 1) {
		return nil, messagePage(ws, 403, "invalid_request", "The form could not be verified (CSRF token). Go back to the application and sign in again."), nil
	}
	if id == "" || len(id) > 64 {
		return nil, messagePage(ws, 400, "invalid_request", "This sign-in request is not known. Go back to the application and sign in again."), nil
	}
	ar, err := s.store.authRequest(ctx, ws.tenantID, ws.serverID, id, s.now().UnixMicro())
	if db.IsNotFound(err) {
		return nil, messagePage(ws, 400, "invalid_request", "This sign-in request has expired. Go back to the application and sign in again."), nil
	}
	if err != nil {
		return nil, nil, apierr.Wrap(err, "read authorization request")
	}
	if binding == "" || subtle.ConstantTimeCompare([]byte(s.keyring.HashSecret(binding)), []byte(ar.BindingHash)) != 1 {
		if form {
			return nil, messagePage(ws, 403, "invalid_request", "The form could not be verified (CSRF token). Go back to the application and sign in again."), nil
		}
		return nil, messagePage(ws, 403, "invalid_request", "This sign-in request was started in another browser, or cookies are blocked. Go back to the application and sign in again."), nil
	}
	return ar, nil, nil
}

// GetLoginPage shows the page of a pending request: the sign-in form, or the consent form once signed in.
func (s *Service) GetLoginPage(ctx context.Context, req *tokenv1.GetLoginPageRequest) (*tokenv1.BrowserResponse, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	ar, page, err := s.pendingRequest(ctx, ws, req.RequestId, req.Cookies, false, "")
	if page != nil || err != nil {
		return page, err
	}
	client, err := s.browserClientOf(ctx, ws, ar.ClientID)
	if err != nil {
		return nil, err
	}
	if client == nil {
		return messagePage(ws, 400, "invalid_request", "The application is not known here (client_id)."), nil
	}
	if ar.BrowserSessionID != "" {
		sess, err := s.store.liveSession(ctx, ws.tenantID, ar.BrowserSessionID, s.now().UnixMicro())
		if err == nil {
			return s.consentPage(ws, client, ar, sess, req.Cookies.GetBinding()), nil
		}
		if !db.IsNotFound(err) {
			return nil, apierr.Wrap(err, "read browser session")
		}
		// Signed out meanwhile: sign in again.
	}
	return s.loginPage(ws, client, ar, ar.LoginHint, "", req.Cookies.GetBinding()), nil
}

func (s *Service) loginPage(ws *workspaceInfo, client *browserClient, ar *authRequestRow, username, message, binding string) *tokenv1.BrowserResponse {
	return &tokenv1.BrowserResponse{Binding: binding, Outcome: &tokenv1.BrowserResponse_Login{Login: &tokenv1.LoginPage{
		RequestId: ar.ID, ClientName: client.name, Branding: branding(ws), Username: username, ErrorMessage: message,
		RedirectOrigin: origin(ar.RedirectURI),
	}}}
}

// scopeDescriptions say what the standard scopes let an application do, on the consent page.
var scopeDescriptions = map[string]string{
	"openid":         "Know who you are",
	"profile":        "See your name and profile",
	"email":          "See your email address",
	"phone":          "See your phone number",
	"address":        "See your postal address",
	"offline_access": "Stay signed in when you are away",
}

func (s *Service) consentPage(ws *workspaceInfo, client *browserClient, ar *authRequestRow, sess *sessionRow, binding string) *tokenv1.BrowserResponse {
	page := &tokenv1.ConsentPage{RequestId: ar.ID, ClientName: client.name, Branding: branding(ws), RedirectOrigin: origin(ar.RedirectURI)}
	for sc := range strings.FieldsSeq(ar.Scope) {
		d := scopeDescriptions[sc]
		if d == "" {
			d = "Use " + sc
		}
		page.Scopes = append(page.Scopes, &tokenv1.ConsentScope{Name: sc, Description: d})
	}
	page.Username = sess.Subject
	var l login
	if json.Unmarshal([]byte(sess.Login), &l) == nil {
		for _, c := range []string{"email", "preferred_username", "name"} {
			if v, ok := l.Claims[c].(string); ok && v != "" {
				page.Username = v
				break
			}
		}
	}
	return &tokenv1.BrowserResponse{Binding: binding, Outcome: &tokenv1.BrowserResponse_Consent{Consent: page}}
}

// SubmitLogin checks the sign-in form's credentials with the workspace's identity sources, exactly as the password
// grant does (authenticateUser: the same order, lockout, hashing pool and dummy hash for unknown users), and
// answers every refusal with the same page and message.
func (s *Service) SubmitLogin(ctx context.Context, req *tokenv1.SubmitLoginRequest) (*tokenv1.BrowserResponse, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	ar, page, err := s.pendingRequest(ctx, ws, req.RequestId, req.Cookies, true, req.CsrfToken)
	if page != nil || err != nil {
		return page, err
	}
	client, err := s.browserClientOf(ctx, ws, ar.ClientID)
	if err != nil {
		return nil, err
	}
	if client == nil {
		return messagePage(ws, 400, "invalid_request", "The application is not known here (client_id)."), nil
	}
	binding := req.Cookies.GetBinding()
	username, password := strings.TrimSpace(req.Username), req.Password
	if username == "" || password == "" {
		return s.loginPage(ws, client, ar, username, "Enter your username and password.", binding), nil
	}
	if len(username) > maxUsernameBytes || len(password) > maxUsernameBytes || strings.ContainsRune(username, 0) || strings.ContainsRune(password, 0) {
		return s.loginPage(ws, client, ar, "", badCredentialsMessage, binding), nil
	}
	g := &grant{
		req: &tokenv1.TokenRequest{
			TenantId: ws.tenantID, ServerId: ws.serverID, GrantType: platform.GrantPassword, ClientId: client.id,
			Username: username, Password: password, Scope: ar.Scope,
			Parameters: map[string]string{"grant_type": platform.GrantPassword, "username": username, "scope": ar.Scope},
		},
		ws: ws, client: client.authClient,
	}
	src, user, err := s.authenticateUser(ctx, g, username, password)
	if err != nil {
		return nil, err
	}
	if user == nil {
		return s.loginPage(ws, client, ar, username, badCredentialsMessage, binding), nil
	}
	now := s.now()
	l := &login{Subject: user.subject, IdpID: src.GetId(), AuthTime: now.Unix(), Claims: user.claims, ExtraInfo: user.extraInfo}
	out := &tokenv1.BrowserResponse{}
	sess, _, err := s.browserSessionOf(ctx, ws, req.Cookies.GetSession(), now)
	if err != nil {
		return nil, err
	}
	switch {
	case sess != nil && sess.Subject == l.Subject && sess.PoolID == poolOf(src):
		// The same user signed in again (prompt=login, max_age): the session goes on with a new auth_time.
		if err := s.store.reauthenticated(ctx, ws.tenantID, sess.ID, l.AuthTime, now.UnixMicro()); err != nil {
			return nil, apierr.Wrap(err, "update browser session")
		}
		sess.AuthTime = l.AuthTime
	default:
		if sess != nil {
			// Another user on this browser: the previous one is signed out.
			if err := s.endSessions(ctx, ws.tenantID, endLogout, "id = ? OR parent_id = ?", sess.ID, sess.ID); err != nil {
				return nil, err
			}
		}
		var cookie string
		if sess, cookie, err = s.startBrowserSession(ctx, ws, client, poolOf(src), l, now); err != nil {
			return nil, err
		}
		out.SetSession, out.SessionMaxAge = cookie, int64(time.Until(time.UnixMicro(sess.ExpiresAt))/time.Second)
	}
	needs, err := s.needsConsent(ctx, ws.tenantID, client, sess.Subject, ar.Scope, hasScope(ar.Prompt, "consent"))
	if err != nil {
		return nil, err
	}
	if needs {
		if err := s.store.attachBrowserSession(ctx, ws.tenantID, ar.ID, sess.ID); err != nil {
			return nil, apierr.Wrap(err, "update authorization request")
		}
		out.Outcome = &tokenv1.BrowserResponse_RedirectTo{RedirectTo: ws.issuer + "/login?request=" + url.QueryEscape(ar.ID)}
		return out, nil
	}
	return s.finish(ctx, ws, ar, sess, now, out)
}

// finish issues the code of a request and forgets the request.
func (s *Service) finish(ctx context.Context, ws *workspaceInfo, ar *authRequestRow, sess *sessionRow, now time.Time, out *tokenv1.BrowserResponse) (*tokenv1.BrowserResponse, error) {
	resp, err := s.issueCode(ctx, ws, ar, sess, now)
	if err != nil {
		return nil, err
	}
	if err := s.store.deleteAuthRequest(ctx, ws.tenantID, ar.ID); err != nil {
		s.log.Warn("authorization request not deleted (it expires)", "tenant", ws.tenantID, "error", err)
	}
	out.Outcome = resp.Outcome
	return out, nil
}

// poolOf is the pool of an identity source (empty for an external verifier).
func poolOf(src *workspacev1.IdentitySource) string {
	if src.GetMethod() == methodIdentityPool {
		return src.GetIdentityPoolId()
	}
	return ""
}

// startBrowserSession starts the browser session of a sign-in and returns it with the SSO cookie's value, of which
// only the keyed hash is stored.
func (s *Service) startBrowserSession(ctx context.Context, ws *workspaceInfo, client *browserClient, poolID string, l *login, now time.Time) (*sessionRow, string, error) {
	raw, err := json.Marshal(l)
	if err != nil {
		return nil, "", apierr.Wrap(err, "encode login")
	}
	cookie := secrets.Random(32)
	exp := now.Add(ws.sessionTTL()).UnixMicro()
	sess := &sessionRow{
		TenantID: ws.tenantID, ID: secrets.NewID(), ServerID: ws.serverID, ClientID: client.id, PoolID: poolID,
		Subject: l.Subject, CreatedAt: now.UnixMicro(), ExpiresAt: exp, LastUsedAt: now.UnixMicro(),
		// Listed and kept while it lives, like a session whose refresh token lasts to its end.
		RefreshExpiresAt: exp,
		BrowserHash:      s.keyring.HashSecret(cookie), AuthTime: l.AuthTime, Login: string(raw),
	}
	if err := s.store.insertSession(ctx, sess, nil); err != nil {
		return nil, "", apierr.Wrap(err, "store browser session")
	}
	s.pruneSessions(ctx, ws.tenantID, now)
	return sess, cookie, nil
}

// SubmitConsent records the user's answer to the consent page.
func (s *Service) SubmitConsent(ctx context.Context, req *tokenv1.SubmitConsentRequest) (*tokenv1.BrowserResponse, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	ar, page, err := s.pendingRequest(ctx, ws, req.RequestId, req.Cookies, true, req.CsrfToken)
	if page != nil || err != nil {
		return page, err
	}
	now := s.now()
	sess, _, err := s.browserSessionOf(ctx, ws, req.Cookies.GetSession(), now)
	if err != nil {
		return nil, err
	}
	if ar.BrowserSessionID == "" || sess == nil || sess.ID != ar.BrowserSessionID {
		// Not signed in (any more), or in another session than the one asked: sign in again.
		return redirectTo(ws.issuer + "/login?request=" + url.QueryEscape(ar.ID)), nil
	}
	if !req.Approve {
		if err := s.store.deleteAuthRequest(ctx, ws.tenantID, ar.ID); err != nil {
			return nil, apierr.Wrap(err, "delete authorization request")
		}
		return authError(ar.RedirectURI, ws.issuer, ar.State, "access_denied", "the user denied the request"), nil
	}
	scope := ar.Scope
	if prev, err := s.store.consent(ctx, ws.tenantID, ar.ClientID, sess.Subject); err == nil {
		for sc := range strings.FieldsSeq(prev.Scope) {
			if !hasScope(scope, sc) {
				scope += " " + sc
			}
		}
	} else if !db.IsNotFound(err) {
		return nil, apierr.Wrap(err, "read consent")
	}
	if err := s.store.saveConsent(ctx, &consentRow{
		TenantID: ws.tenantID, ClientID: ar.ClientID, Subject: sess.Subject, PoolID: sess.PoolID, ServerID: ws.serverID,
		Scope: strings.TrimSpace(scope), GrantedAt: now.UnixMicro(),
	}); err != nil {
		return nil, apierr.Wrap(err, "store consent")
	}
	return s.finish(ctx, ws, ar, sess, now, &tokenv1.BrowserResponse{})
}

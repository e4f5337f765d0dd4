package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
)

// A login is a client_credentials token of one workspace, and a workspace opens one plane: root/admin the
// operator's, {tenant}/admin the tenant's admin plane, {tenant}/system its identity plane. A tenant admin client
// lives in the admin workspace and cannot open the identity plane, so a profile holds one login per plane, each
// made by its own `authplane login`, and every command uses the login of the plane its RPCs are on.
//
// Only tokens are stored, not the client secret: client_credentials has no refresh token, so when a token expires
// the command says so (exit 3) and the user logs in again. `login --remember-secret` stores the secret in the
// profile file (mode 0600) instead, for unattended use: then an expired or refused token is replaced silently.
type plane string

const (
	planeOperator plane = "operator"
	planeAdmin    plane = "admin"
	planeIdentity plane = "identity"
)

const rootTenant = "root"

// planeOf is the plane a workspace's tokens open.
func planeOf(tenant, workspace string) (plane, error) {
	switch {
	case tenant == rootTenant && workspace == "admin":
		return planeOperator, nil
	case tenant == rootTenant:
		return "", usageErrorf("the root tenant's logins are of its admin workspace (the operator)")
	case workspace == "admin":
		return planeAdmin, nil
	case workspace == "system":
		return planeIdentity, nil
	}
	return "", usageErrorf("--workspace must be admin (the admin plane) or system (the identity plane), not %q", workspace)
}

// profile is one file under the config directory: where the server is, and a login per plane.
type profile struct {
	IssuerURL string           `json:"issuer_url"`
	GRPCAddr  string           `json:"grpc_addr"`
	Insecure  bool             `json:"insecure"`
	Logins    map[plane]*login `json:"logins"`
}

type login struct {
	Tenant      string    `json:"tenant"`
	Workspace   string    `json:"workspace"`
	ClientID    string    `json:"client_id"`
	Scope       string    `json:"scope,omitempty"`
	AccessToken string    `json:"access_token"`
	ExpiresAt   time.Time `json:"expires_at"`
	// Only with --remember-secret.
	ClientSecret string `json:"client_secret,omitempty"`
}

// expiryMargin treats a token as expired shortly before it is, so that a call does not race its end.
const expiryMargin = 10 * time.Second

func (l *login) expired(now time.Time) bool {
	return !l.ExpiresAt.IsZero() && !now.Add(expiryMargin).Before(l.ExpiresAt)
}

// configDir is where profiles are kept: AUTHPLANE_CONFIG_DIR, or authplane/ under the user's config directory
// (os.UserConfigDir's rules, read through getenv so that tests can point it elsewhere).
func configDir(getenv func(string) string) (string, error) {
	if dir := getenv("AUTHPLANE_CONFIG_DIR"); dir != "" {
		return dir, nil
	}
	var dir string
	switch runtime.GOOS {
	case "windows":
		dir = getenv("AppData")
		if dir == "" {
			return "", errors.New("%AppData% is not set; set AUTHPLANE_CONFIG_DIR")
		}
	case "darwin", "ios":
		if getenv("HOME") == "" {
			return "", errors.New("$HOME is not set; set AUTHPLANE_CONFIG_DIR")
		}
		dir = filepath.Join(getenv("HOME"), "Library", "Application Support")
	default:
		dir = getenv("XDG_CONFIG_HOME")
		if dir == "" {
			if getenv("HOME") == "" {
				return "", errors.New("neither $XDG_CONFIG_HOME nor $HOME is set; set AUTHPLANE_CONFIG_DIR")
			}
			dir = filepath.Join(getenv("HOME"), ".config")
		} else if !filepath.IsAbs(dir) {
			return "", errors.New("$XDG_CONFIG_HOME is a relative path; set AUTHPLANE_CONFIG_DIR")
		}
	}
	return filepath.Join(dir, "authplane"), nil
}

var profileName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)

func profilePath(env *cliEnv, name string) (string, error) {
	if !profileName.MatchString(name) {
		return "", usageErrorf("invalid profile name %q (letters, digits, '.', '_' and '-')", name)
	}
	dir, err := configDir(env.getenv)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "profiles", name+".json"), nil
}

// loadProfile reads a profile; one never saved is empty.
func loadProfile(env *cliEnv, name string) (*profile, string, error) {
	path, err := profilePath(env, name)
	if err != nil {
		return nil, "", err
	}
	p := &profile{Insecure: true}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, path, nil
	}
	if err != nil {
		return nil, path, err
	}
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, path, fmt.Errorf("profile %s: %w", path, err)
	}
	return p, path, nil
}

// saveProfile writes the profile whole or not at all: a private temporary file (0600) in a private directory
// (0700), renamed over the old one. A profile without logins is removed.
func saveProfile(path string, p *profile) error {
	if len(p.Logins) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Tokens are credentials: the directories are the user's alone, however they were made.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	raw, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func init() {
	register("login", "", &clientCommand{summary: "log in with client credentials on one plane; the token is cached in the profile", run: loginCmd})
	register("logout", "", &clientCommand{summary: "forget the profile's tokens (all, or one plane's)", run: logoutCmd})
	register("whoami", "", &clientCommand{summary: "show the profile's logins", run: whoamiCmd})
}

func loginCmd(c *call) error {
	issuer := c.fs.String("issuer-url", "", "the server's HTTP base URL, where {tenant}/{workspace}/oauth2/token is (default: the profile's, else http://localhost:8080)")
	grpcAddr := c.fs.String("grpc-addr", "", "the server's gRPC address (default: the profile's, else localhost:9090)")
	insecureFlag := c.fs.Bool("insecure", true, "plaintext gRPC; --insecure=false: TLS with the system's roots (default: the profile's, else plaintext)")
	tenant := c.fs.String("tenant", c.env.getenv("AUTHPLANE_TENANT"), "the tenant: root for the operator (AUTHPLANE_TENANT)")
	workspace := c.fs.String("workspace", "admin", "admin (the admin plane, or the operator's for tenant root) or system (the identity plane)")
	clientID := c.fs.String("client-id", c.env.getenv("AUTHPLANE_CLIENT_ID"), "the client (AUTHPLANE_CLIENT_ID)")
	secretFlag := c.fs.String("client-secret", "", "the client secret (visible to other users in the process list: prefer AUTHPLANE_CLIENT_SECRET or --client-secret-stdin)")
	secretStdin := c.fs.Bool("client-secret-stdin", false, "read the client secret from the first line of standard input")
	scope := c.fs.String("scope", "", "scopes to ask for, space-separated (default: the client's registered scopes)")
	remember := c.fs.Bool("remember-secret", false, "store the client secret in the profile file (mode 0600) to log in again by itself when the token expires")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	p, path, err := loadProfile(c.env, *c.prof)
	if err != nil {
		return err
	}
	given := c.visited()
	if !given["issuer-url"] {
		*issuer = orDefault(p.IssuerURL, "http://localhost:8080")
	}
	if !given["grpc-addr"] {
		*grpcAddr = orDefault(p.GRPCAddr, "localhost:9090")
	}
	if !given["insecure"] && p.IssuerURL != "" {
		*insecureFlag = p.Insecure
	}
	if *tenant == "" || *clientID == "" {
		return usageErrorf("--tenant and --client-id are required")
	}
	pl, err := planeOf(*tenant, *workspace)
	if err != nil {
		return err
	}
	base, err := url.Parse(*issuer)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return usageErrorf("--issuer-url must be an http or https URL, not %q", *issuer)
	}
	secret, err := readSecret(c, "client secret", *secretFlag, *secretStdin, c.env.getenv("AUTHPLANE_CLIENT_SECRET"), false)
	if err != nil {
		return err
	}
	if secret == "" {
		return usageErrorf("no client secret: give --client-secret-stdin, AUTHPLANE_CLIENT_SECRET or --client-secret")
	}
	issuerURL := strings.TrimSuffix(*issuer, "/")
	if p.IssuerURL != "" && (p.IssuerURL != issuerURL || p.GRPCAddr != *grpcAddr || p.Insecure != *insecureFlag) && len(p.Logins) > 0 {
		// Another server: the profile's other logins were for the old one.
		fmt.Fprintf(c.env.stderr, "authplane: profile %q now points at %s (gRPC %s); its other logins were removed\n", *c.prof, issuerURL, *grpcAddr)
		p.Logins = nil
	}
	p.IssuerURL, p.GRPCAddr, p.Insecure = issuerURL, *grpcAddr, *insecureFlag
	l := &login{Tenant: *tenant, Workspace: *workspace, ClientID: *clientID, Scope: *scope}
	if err := l.fetch(c.ctx, c.env, p.IssuerURL, secret); err != nil {
		return err
	}
	if *remember {
		l.ClientSecret = secret
	}
	// The token is tried on the gRPC address before it is saved: a wrong address or a token the plane refuses
	// (a client without the plane's scope) is found now rather than at the next command.
	s := &planeSession{env: c.env, path: path, name: *c.prof, prof: p, login: l, plane: pl, fresh: true}
	conn, err := s.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := s.probe(c.ctx, conn); err != nil {
		return err
	}
	if p.Logins == nil {
		p.Logins = map[plane]*login{}
	}
	p.Logins[pl] = l
	if err := saveProfile(path, p); err != nil {
		return fmt.Errorf("saving the profile: %w", err)
	}
	if *remember {
		fmt.Fprintf(c.env.stderr, "authplane: the client secret is stored in %s (readable by you alone) to log in again when the token expires\n", path)
	}
	return printItems(c, []loginRow{{plane: pl, login: l, now: c.env.now()}}, loginColumns)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// fetch gets a client_credentials token from the login's workspace.
func (l *login) fetch(ctx context.Context, env *cliEnv, issuer, secret string) error {
	cfg := clientcredentials.Config{
		ClientID: l.ClientID, ClientSecret: secret, AuthStyle: oauth2.AuthStyleInHeader,
		TokenURL: issuer + "/" + url.PathEscape(l.Tenant) + "/" + url.PathEscape(l.Workspace) + "/oauth2/token",
	}
	if l.Scope != "" {
		cfg.Scopes = strings.Fields(l.Scope)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})
	tok, err := cfg.Token(ctx)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			msg := re.ErrorDescription
			if msg == "" {
				msg = strings.TrimSpace(string(re.Body))
			}
			msg = fmt.Sprintf("%s/%s refused the login of %s: %s (%s)", l.Tenant, l.Workspace, l.ClientID, msg, re.ErrorCode)
			if re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client" || re.Response.StatusCode == http.StatusUnauthorized {
				return &cliError{code: exitUnauthenticated, msg: msg}
			}
			if re.Response.StatusCode == http.StatusNotFound {
				return &cliError{code: exitNotFound, msg: msg}
			}
			return &cliError{code: exitError, msg: msg}
		}
		return fmt.Errorf("getting a token from %s: %w", cfg.TokenURL, err)
	}
	l.AccessToken, l.ExpiresAt = tok.AccessToken, tok.Expiry
	return nil
}

// planeSession is a plane's login in use by a command: it adds the token to each call and, when the secret is
// remembered, replaces an expired or refused token once.
type planeSession struct {
	env   *cliEnv
	path  string
	name  string
	prof  *profile
	login *login
	plane plane
	fresh bool // the token was fetched by this command
}

// connect opens the gRPC connection of the plane's login.
func (c *call) connect(pl plane) (*grpc.ClientConn, *login, error) {
	p, path, err := loadProfile(c.env, *c.prof)
	if err != nil {
		return nil, nil, err
	}
	l := p.Logins[pl]
	if l == nil {
		return nil, nil, notLoggedInf("not logged in on the %s plane (profile %q): run `authplane login %s--client-id ID`", pl, *c.prof, loginHint(pl, ""))
	}
	s := &planeSession{env: c.env, path: path, name: *c.prof, prof: p, login: l, plane: pl}
	conn, err := s.dial()
	if err != nil {
		return nil, nil, err
	}
	return conn, l, nil
}

func loginHint(pl plane, tenant string) string {
	if tenant == "" {
		tenant = "TENANT"
	}
	switch pl {
	case planeOperator:
		return "--tenant root "
	case planeIdentity:
		return "--tenant " + tenant + " --workspace system "
	}
	return "--tenant " + tenant + " "
}

// transportCredentials is the one place the connection's security is chosen (TLS options plug in here).
func (p *profile) transportCredentials() credentials.TransportCredentials {
	if p.Insecure {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
}

func (s *planeSession) dial() (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(s.prof.GRPCAddr, grpc.WithTransportCredentials(s.prof.transportCredentials()),
		grpc.WithUnaryInterceptor(s.authorize))
	if err != nil {
		return nil, fmt.Errorf("gRPC address %q: %w", s.prof.GRPCAddr, err)
	}
	return conn, nil
}

// token is the login's token, fetched again when it expired (or force) and the secret is remembered.
func (s *planeSession) token(ctx context.Context, force bool) (string, error) {
	l := s.login
	if !force && !l.expired(s.env.now()) {
		return l.AccessToken, nil
	}
	if l.ClientSecret == "" {
		return "", notLoggedInf("the %s login of profile %q (client %s of %s/%s) expired at %s: log in again (authplane login %s--client-id %s)",
			s.plane, s.name, l.ClientID, l.Tenant, l.Workspace, l.ExpiresAt.Local().Format(time.RFC3339), loginHint(s.plane, l.Tenant), l.ClientID)
	}
	if err := l.fetch(ctx, s.env, s.prof.IssuerURL, l.ClientSecret); err != nil {
		return "", err
	}
	s.fresh = true
	if err := saveProfile(s.path, s.prof); err != nil {
		return "", fmt.Errorf("saving the profile: %w", err)
	}
	return l.AccessToken, nil
}

func (s *planeSession) authorize(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	tok, err := s.token(ctx, false)
	if err != nil {
		return err
	}
	err = invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), method, req, reply, cc, opts...)
	if status.Code(err) == codes.Unauthenticated && s.login.ClientSecret != "" && !s.fresh {
		// The server refused a token it issued (a restart with a new key, a revoked token): one new login.
		if tok, err = s.token(ctx, true); err != nil {
			return err
		}
		err = invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), method, req, reply, cc, opts...)
	}
	return err
}

// probe makes a cheap read on the plane.
func (s *planeSession) probe(ctx context.Context, conn *grpc.ClientConn) error {
	var err error
	switch s.plane {
	case planeOperator:
		_, err = tenantv1.NewTenantServiceClient(conn).ListTenants(ctx, &tenantv1.ListTenantsRequest{PageSize: 1})
	case planeAdmin:
		_, err = workspacev1.NewWorkspaceServiceClient(conn).GetServer(ctx, &workspacev1.GetServerRequest{TenantId: s.login.Tenant, ServerId: "admin"})
	case planeIdentity:
		_, err = poolv1.NewPoolServiceClient(conn).ListPools(ctx, &poolv1.ListPoolsRequest{TenantId: s.login.Tenant, PageSize: 1})
	}
	if err != nil {
		if _, ok := grpcStatus(err); ok && status.Code(err) == codes.Unavailable {
			return fmt.Errorf("the gRPC address %s does not answer: %s", s.prof.GRPCAddr, status.Convert(err).Message())
		}
		return err
	}
	return nil
}

// grpcStatus tells whether err carries a gRPC status (from the server or the transport).
func grpcStatus(err error) (*status.Status, bool) {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus(), true
	}
	return nil, false
}

func logoutCmd(c *call) error {
	only := c.fs.String("plane", "", "forget only this plane's login: operator, admin or identity")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	p, path, err := loadProfile(c.env, *c.prof)
	if err != nil {
		return err
	}
	switch plane(*only) {
	case "":
		p.Logins = nil
	case planeOperator, planeAdmin, planeIdentity:
		delete(p.Logins, plane(*only))
	default:
		return usageErrorf("--plane must be operator, admin or identity, not %q", *only)
	}
	// The tokens themselves stay valid until they expire: the CLI holds no credential to revoke them with.
	if err := saveProfile(path, p); err != nil {
		return err
	}
	if *only != "" {
		return printDone(c, "forgot the %s login of profile %s", *only, *c.prof)
	}
	return printDone(c, "forgot the logins of profile %s", *c.prof)
}

func whoamiCmd(c *call) error {
	if err := c.parse(0, 0); err != nil {
		return err
	}
	p, _, err := loadProfile(c.env, *c.prof)
	if err != nil {
		return err
	}
	var rows []loginRow
	for _, pl := range []plane{planeOperator, planeAdmin, planeIdentity} {
		if l := p.Logins[pl]; l != nil {
			rows = append(rows, loginRow{plane: pl, login: l, now: c.env.now()})
		}
	}
	if len(rows) == 0 {
		return notLoggedInf("profile %q has no login: run `authplane login`", *c.prof)
	}
	return printItems(c, rows, loginColumns)
}

// loginRow is a login as login and whoami show it: never the token or the secret.
type loginRow struct {
	plane plane
	login *login
	now   time.Time
}

func (r loginRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"plane": r.plane, "tenant": r.login.Tenant, "workspace": r.login.Workspace, "client_id": r.login.ClientID,
		"expires_at": r.login.ExpiresAt.UTC().Format(time.RFC3339), "expired": r.login.expired(r.now),
		"secret_remembered": r.login.ClientSecret != "",
	})
}

var loginColumns = []column[loginRow]{
	{"PLANE", func(r loginRow) string { return string(r.plane) }},
	{"TENANT", func(r loginRow) string { return r.login.Tenant }},
	{"WORKSPACE", func(r loginRow) string { return r.login.Workspace }},
	{"CLIENT_ID", func(r loginRow) string { return r.login.ClientID }},
	{"EXPIRES", func(r loginRow) string {
		s := r.login.ExpiresAt.Local().Format(time.RFC3339)
		if r.login.expired(r.now) {
			s += " (expired)"
		}
		return s
	}},
	{"SECRET_REMEMBERED", func(r loginRow) string { return yesNo(r.login.ClientSecret != "") }},
}

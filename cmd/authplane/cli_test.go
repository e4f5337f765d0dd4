package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authplane/authplane/pkg/testenv"
)

// cliUser runs client commands in-process as one person at a terminal would: its own config directory
// (XDG_CONFIG_HOME and HOME under a temporary directory, read through the getenv the commands are given), and
// what it types on standard input given per command.
type cliUser struct {
	t         *testing.T
	configDir string
	env       map[string]string
}

func newCLIUser(t *testing.T) *cliUser {
	root := t.TempDir()
	u := &cliUser{t: t, configDir: filepath.Join(root, "config")}
	u.env = map[string]string{"XDG_CONFIG_HOME": u.configDir, "HOME": filepath.Join(root, "home")}
	return u
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// run runs `authplane args…` with ctx, stdin and, over the user's environment, extra.
func (u *cliUser) run(ctx context.Context, stdin string, extra map[string]string, args ...string) cliResult {
	var out, errs bytes.Buffer
	code := u.runTo(ctx, stdin, extra, &out, &errs, args...)
	return cliResult{code, out.String(), errs.String()}
}

func (u *cliUser) runTo(ctx context.Context, stdin string, extra map[string]string, stdout, stderr io.Writer, args ...string) int {
	getenv := func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		return u.env[k]
	}
	return cli(ctx, args, &cliEnv{getenv: getenv, stdin: strings.NewReader(stdin), stdout: stdout, stderr: stderr})
}

func (u *cliUser) cmd(stdin string, args ...string) cliResult {
	return u.run(context.Background(), stdin, nil, args...)
}

// ok runs a command that must succeed and returns its standard output.
func (u *cliUser) ok(stdin string, args ...string) string {
	u.t.Helper()
	r := u.cmd(stdin, args...)
	if r.code != exitOK {
		u.t.Fatalf("authplane %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs a command that must succeed with --output json and decodes what it prints into out.
func (u *cliUser) okJSON(out any, stdin string, args ...string) string {
	u.t.Helper()
	raw := u.ok(stdin, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(raw), out); err != nil {
		u.t.Fatalf("authplane %s: %v\n%s", strings.Join(args, " "), err, raw)
	}
	return raw
}

func (u *cliUser) profileFile(name string) string {
	return filepath.Join(u.configDir, "authplane", "profiles", name+".json")
}

// login logs in on the server of env with the secret on standard input.
func (u *cliUser) login(env *testenv.Env, tenant, workspace, clientID, secret string, flags ...string) cliResult {
	return u.cmd(secret+"\n", append([]string{"login", "--issuer-url", env.HTTPURL, "--grpc-addr", env.GRPCAddr,
		"--tenant", tenant, "--workspace", workspace, "--client-id", clientID, "--client-secret-stdin"}, flags...)...)
}

func (u *cliUser) mustLogin(env *testenv.Env, tenant, workspace, clientID, secret string, flags ...string) {
	u.t.Helper()
	if r := u.login(env, tenant, workspace, clientID, secret, flags...); r.code != exitOK {
		u.t.Fatalf("login %s/%s as %s: exit %d: %s", tenant, workspace, clientID, r.code, r.stderr)
	}
}

// editProfile changes a saved profile as a test needs (an expired token).
func (u *cliUser) editProfile(name string, edit func(p *profile)) {
	u.t.Helper()
	raw, err := os.ReadFile(u.profileFile(name))
	if err != nil {
		u.t.Fatal(err)
	}
	var p profile
	if err := json.Unmarshal(raw, &p); err != nil {
		u.t.Fatal(err)
	}
	edit(&p)
	if err := saveProfile(u.profileFile(name), &p); err != nil {
		u.t.Fatal(err)
	}
}

func (u *cliUser) readProfile(name string) *profile {
	u.t.Helper()
	raw, err := os.ReadFile(u.profileFile(name))
	if err != nil {
		u.t.Fatal(err)
	}
	var p profile
	if err := json.Unmarshal(raw, &p); err != nil {
		u.t.Fatal(err)
	}
	return &p
}

// oauthToken posts a token request to a workspace's token endpoint with client_secret_basic.
func oauthToken(t *testing.T, env *testenv.Env, tenant, workspace, clientID, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", env.Issuer(tenant, workspace)+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func clientCredentials(t *testing.T, env *testenv.Env, tenant, workspace, clientID, secret string) int {
	t.Helper()
	code, _ := oauthToken(t, env, tenant, workspace, clientID, secret, url.Values{"grant_type": {"client_credentials"}})
	return code
}

// tableRows splits a table into its header's columns and each row's cells (cells hold no spaces in these tests).
func tableRows(t *testing.T, out string) (header []string, rows [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 {
		t.Fatalf("no table in %q", out)
	}
	header = strings.Fields(lines[0])
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return header, rows
}

type cliClient struct {
	ClientID              string   `json:"client_id"`
	ClientSecret          *string  `json:"client_secret"`
	AuthorizationServerID string   `json:"authorization_server_id"`
	ClientName            string   `json:"client_name"`
	GrantTypes            []string `json:"grant_types"`
	Scopes                []string `json:"scopes"`
}

type cliAuditEvent struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	Action   string `json:"action"`
	Outcome  string `json:"outcome"`
	Resource struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"resource"`
	RequestID string `json:"request_id"`
}

const (
	cliFirstPassword = "first-Passw0rd!"
	cliPassword      = "S3cure-pass!word"
)

// TestCLIAdminTasksAgainstServer does the common admin tasks with the commands, as an operator, a tenant admin and
// an identity admin would, against a real server, and checks each result through the API and the OAuth endpoints.
func TestCLIAdminTasksAgainstServer(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		u := newCLIUser(t)

		// The operator logs in; the profile holds the token, never the secret, in a file of the user's alone.
		u.mustLogin(env, "root", "admin", env.RootClientID, env.RootSecret)
		file := u.profileFile("default")
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("profile file mode %v, want 0600", st.Mode().Perm())
		}
		for _, dir := range []string{filepath.Dir(file), filepath.Dir(filepath.Dir(file))} {
			if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("directory %s: %v %v, want 0700", dir, st.Mode().Perm(), err)
			}
		}
		if raw, _ := os.ReadFile(file); strings.Contains(string(raw), env.RootSecret) {
			t.Errorf("the profile holds the client secret without --remember-secret:\n%s", raw)
		}
		if p := u.readProfile("default"); p.Logins[planeOperator] == nil || p.Logins[planeOperator].AccessToken == "" {
			t.Fatalf("no operator token in the profile: %+v", p)
		}

		// A tenant: its admin client's secret is printed once, with a warning on stderr.
		r := u.cmd("", "tenant", "create", "acme", "--name", "Acme Corp", "-o", "json")
		var created struct {
			Tenant      struct{ ID, Name string }
			AdminClient struct {
				ClientID     string `json:"client_id"`
				ClientSecret string `json:"client_secret"`
			} `json:"admin_client"`
		}
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &created) != nil || created.AdminClient.ClientSecret == "" {
			t.Fatalf("tenant create: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		if created.Tenant.ID != "acme" || created.Tenant.Name != "Acme Corp" {
			t.Errorf("tenant create printed %+v", created.Tenant)
		}
		if !strings.Contains(r.stderr, "shown only now") {
			t.Errorf("no warning on stderr for the admin secret: %q", r.stderr)
		}
		var tenants []struct{ ID string }
		u.okJSON(&tenants, "", "tenant", "list")
		if !slices.ContainsFunc(tenants, func(x struct{ ID string }) bool { return x.ID == "acme" }) {
			t.Errorf("tenant list: %+v", tenants)
		}
		header, rows := tableRows(t, u.ok("", "tenant", "get", "acme"))
		if !slices.Equal(header, []string{"ID", "NAME", "CREATED"}) || len(rows) != 1 || rows[0][0] != "acme" {
			t.Errorf("tenant get table: %v %v", header, rows)
		}

		// The tenant's admin logs in in the same profile (secret from the environment): a login per plane.
		r = u.run(context.Background(), "", map[string]string{"AUTHPLANE_CLIENT_SECRET": created.AdminClient.ClientSecret},
			"login", "--tenant", "acme", "--client-id", created.AdminClient.ClientID)
		if r.code != exitOK {
			t.Fatalf("admin login: exit %d: %s", r.code, r.stderr)
		}

		// A workspace; an update changes only what it names.
		var ws struct {
			ID         string   `json:"id"`
			Name       string   `json:"name"`
			GrantTypes []string `json:"grant_types"`
			AccessTTL  string   `json:"access_token_ttl"`
		}
		u.okJSON(&ws, "", "workspace", "create", "shop", "--name", "Shop", "--grant-types", "client_credentials,password,refresh_token", "--access-token-ttl", "15m")
		if ws.ID != "shop" || ws.AccessTTL != "900s" || len(ws.GrantTypes) != 3 {
			t.Errorf("workspace create: %+v", ws)
		}
		u.okJSON(&ws, "", "workspace", "update", "shop", "--name", "Shop floor")
		if ws.Name != "Shop floor" || ws.AccessTTL != "900s" || len(ws.GrantTypes) != 3 {
			t.Errorf("workspace update changed more than the name: %+v", ws)
		}
		header, rows = tableRows(t, u.ok("", "workspace", "list"))
		if header[0] != "ID" || !slices.ContainsFunc(rows, func(r []string) bool { return r[0] == "shop" }) {
			t.Errorf("workspace list table: %v %v", header, rows)
		}

		// A scope, and a client granted it: its secret printed once, working, and never listed.
		var scope struct{ ID, Name string }
		u.okJSON(&scope, "", "scope", "create", "orders.read", "--workspace", "shop", "--description", "read orders")
		if scope.Name != "orders.read" || scope.ID == "" {
			t.Errorf("scope create: %+v", scope)
		}
		r = u.cmd("", "client", "create", "--workspace", "shop", "--name", "backend", "--scopes", "orders.read", "-o", "json")
		var backend cliClient
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &backend) != nil || backend.ClientSecret == nil || *backend.ClientSecret == "" {
			t.Fatalf("client create: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "shown only now") {
			t.Errorf("no warning on stderr for the client secret: %q", r.stderr)
		}
		secret := *backend.ClientSecret
		if code := clientCredentials(t, env, "acme", "shop", backend.ClientID, secret); code != http.StatusOK {
			t.Errorf("the printed secret gets no token: %d", code)
		}
		for _, args := range [][]string{
			{"client", "list"}, {"client", "list", "-o", "json"}, {"client", "list", "--workspace", "shop", "-o", "json"},
			{"client", "get", backend.ClientID}, {"client", "get", backend.ClientID, "-o", "json"},
		} {
			out := u.ok("", args...)
			if !strings.Contains(out, backend.ClientID) || strings.Contains(out, secret) {
				t.Errorf("authplane %v: the client missing, or its secret shown:\n%s", args, out)
			}
		}
		var clients []cliClient
		u.okJSON(&clients, "", "client", "list", "--workspace", "shop")
		if len(clients) != 1 || clients[0].ClientSecret != nil {
			t.Errorf("client list --workspace shop: %+v", clients)
		}

		// Rotating the secret: the new one printed once works, the old one is refused.
		var rotated struct {
			ClientSecret string `json:"client_secret"`
		}
		r = u.cmd("", "client", "rotate-secret", backend.ClientID, "-o", "json")
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rotated) != nil || rotated.ClientSecret == "" || rotated.ClientSecret == secret {
			t.Fatalf("rotate-secret: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "shown only now") {
			t.Errorf("no warning on stderr for the rotated secret: %q", r.stderr)
		}
		if code := clientCredentials(t, env, "acme", "shop", backend.ClientID, secret); code != http.StatusUnauthorized {
			t.Errorf("the old secret after rotation: %d, want 401", code)
		}
		if code := clientCredentials(t, env, "acme", "shop", backend.ClientID, rotated.ClientSecret); code != http.StatusOK {
			t.Errorf("the rotated secret: %d, want 200", code)
		}

		// The identity plane needs a client of the system workspace: the admin makes one and it logs in.
		var sys cliClient
		u.okJSON(&sys, "", "client", "create", "--workspace", "system", "--name", "identity-admin", "--scopes", "identity")
		u.mustLogin(env, "acme", "system", sys.ClientID, *sys.ClientSecret)
		var pool struct{ ID, Name string }
		u.okJSON(&pool, "", "pool", "create", "customers", "--name", "Customers")
		if pool.ID != "customers" || pool.Name != "Customers" {
			t.Errorf("pool create: %+v", pool)
		}
		var user struct {
			ID          string `json:"id"`
			HasPassword bool   `json:"has_password"`
		}
		u.okJSON(&user, cliFirstPassword+"\n", "user", "create", "--pool", "customers", "--identifier", "email:jane@example.com", "--password-stdin")
		if user.ID == "" || !user.HasPassword {
			t.Fatalf("user create: %+v", user)
		}
		if out := u.ok(cliPassword+"\n", "user", "set-password", "--pool", "customers", user.ID, "--password-stdin"); strings.Contains(out, cliPassword) {
			t.Errorf("set-password echoed the password: %q", out)
		}
		var users []struct {
			ID          string `json:"id"`
			Identifiers []struct{ Type, Identifier string }
		}
		u.okJSON(&users, "", "user", "list", "--pool", "customers")
		if len(users) != 1 || users[0].ID != user.ID || users[0].Identifiers[0].Identifier != "jane@example.com" {
			t.Errorf("user list: %+v", users)
		}
		header, rows = tableRows(t, u.ok("", "user", "list", "--pool", "customers"))
		if header[0] != "ID" || len(rows) != 1 || rows[0][2] != "email:jane@example.com" {
			t.Errorf("user list table: %v %v", header, rows)
		}

		// The shop logs users in from the pool (an identity source through the REST API: no command for it yet).
		adminToken := env.Token(t, "acme", "admin", created.AdminClient.ClientID, created.AdminClient.ClientSecret)
		if code := env.CallJSON(t, "POST", "/api/admin/acme/servers/shop/idps/identity_pool", adminToken,
			map[string]any{"name": "Customers", "identity_pool_id": "customers"}, nil); code != http.StatusCreated {
			t.Fatalf("identity source: %d", code)
		}
		var app cliClient
		u.okJSON(&app, "", "client", "create", "--workspace", "shop", "--name", "app", "--grant-types", "password", "--grant-types", "refresh_token",
			"--scopes", "openid,offline_access")
		passwordLogin := func(password string) (int, string) {
			code, out := oauthToken(t, env, "acme", "shop", app.ClientID, *app.ClientSecret, url.Values{"grant_type": {"password"},
				"username": {"jane@example.com"}, "password": {password}, "scope": {"openid offline_access"}})
			rt, _ := out["refresh_token"].(string)
			return code, rt
		}
		refresh := func(rt string) int {
			code, _ := oauthToken(t, env, "acme", "shop", app.ClientID, *app.ClientSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
			return code
		}
		if code, _ := passwordLogin(cliFirstPassword); code != http.StatusBadRequest {
			t.Errorf("the password before set-password still logs in: %d", code)
		}
		code, rt := passwordLogin(cliPassword)
		if code != http.StatusOK || rt == "" {
			t.Fatalf("password grant with the password set by the command: %d", code)
		}

		// The login's session is listed; ending it ends its refresh token.
		var sessions []struct {
			ID       string `json:"id"`
			ClientID string `json:"client_id"`
			Kind     string `json:"kind"`
		}
		u.okJSON(&sessions, "", "session", "list", "--pool", "customers", user.ID)
		if len(sessions) != 1 || sessions[0].ClientID != app.ClientID {
			t.Fatalf("session list: %+v", sessions)
		}
		u.ok("", "session", "end", "--pool", "customers", user.ID, sessions[0].ID)
		if code := refresh(rt); code != http.StatusBadRequest {
			t.Errorf("refresh after session end: %d, want 400", code)
		}
		u.okJSON(&sessions, "", "session", "list", "--pool", "customers", user.ID)
		if len(sessions) != 0 {
			t.Errorf("sessions after session end: %+v", sessions)
		}
		_, rt1 := passwordLogin(cliPassword)
		_, rt2 := passwordLogin(cliPassword)
		u.okJSON(&sessions, "", "session", "list", "--pool", "customers", user.ID)
		if len(sessions) != 2 {
			t.Fatalf("two logins, sessions: %+v", sessions)
		}
		u.ok("", "session", "end-all", "--pool", "customers", user.ID)
		if c1, c2 := refresh(rt1), refresh(rt2); c1 != http.StatusBadRequest || c2 != http.StatusBadRequest {
			t.Errorf("refreshes after session end-all: %d %d, want 400", c1, c2)
		}

		// Key rotation changes the current kid; the old key retires, and revoking it marks it revoked.
		type key struct{ Kid, State string }
		current := func() string {
			var keys []key
			u.okJSON(&keys, "", "key", "list", "--workspace", "shop")
			for _, k := range keys {
				if k.State == "current" {
					return k.Kid
				}
			}
			t.Fatalf("no current key: %+v", keys)
			return ""
		}
		before := current()
		var rotatedKey key
		u.okJSON(&rotatedKey, "", "key", "rotate", "--workspace", "shop")
		if after := current(); rotatedKey.Kid == before || after != rotatedKey.Kid || rotatedKey.State != "current" {
			t.Errorf("key rotate: before %s, printed %+v, current now %s", before, rotatedKey, after)
		}
		var revoked key
		u.okJSON(&revoked, "", "key", "revoke", "--workspace", "shop", before)
		if revoked.Kid != before || revoked.State != "revoked" {
			t.Errorf("key revoke: %+v", revoked)
		}

		// The trails show the changes: the operator's its tenant, the tenant's the admin's and identity admin's.
		var events []cliAuditEvent
		u.okJSON(&events, "", "audit", "list", "--operator")
		if !slices.ContainsFunc(events, func(e cliAuditEvent) bool {
			return e.Action == "TenantService.CreateTenant" && e.Resource.ID == "acme" && e.Outcome == "ok"
		}) {
			t.Errorf("operator trail: %+v", events)
		}
		u.okJSON(&events, "", "audit", "list", "--limit", "0")
		for _, want := range []string{"WorkspaceService.CreateServer", "WorkspaceService.UpdateServer", "ClientService.CreateClient",
			"ClientService.RotateClientSecret", "PoolService.CreateUser", "PoolService.SetUserPassword", "TokenService.RotateServerKey"} {
			if !slices.ContainsFunc(events, func(e cliAuditEvent) bool { return e.Action == want && e.TenantID == "acme" }) {
				t.Errorf("tenant trail has no %s", want)
			}
		}
		u.okJSON(&events, "", "audit", "list", "--action", "ClientService.", "--limit", "0")
		if len(events) == 0 || slices.ContainsFunc(events, func(e cliAuditEvent) bool { return !strings.HasPrefix(e.Action, "ClientService.") }) {
			t.Errorf("audit list --action ClientService.: %+v", events)
		}
		u.okJSON(&events, "", "audit", "list", "--limit", "2")
		if len(events) != 2 {
			t.Errorf("audit list --limit 2: %d events", len(events))
		}
		// A failed change is in the trail with its error code, and the command's request id names it.
		r = u.cmd("", "workspace", "create", "shop")
		if r.code != exitConflict {
			t.Fatalf("workspace create shop again: exit %d", r.code)
		}
		u.okJSON(&events, "", "audit", "list", "--limit", "1")
		if len(events) != 1 || events[0].Outcome != "conflict" || events[0].RequestID == "" || !strings.Contains(r.stderr, events[0].RequestID) {
			t.Errorf("the refused creation: event %+v, stderr %q", events, r.stderr)
		}

		// audit list --follow prints an event made after it started, then ends with its context (an interrupt).
		followed := startFollowing(t, u, "--operator")
		u.ok("", "tenant", "create", "followed")
		ev := followed.next(func(e cliAuditEvent) bool { return e.Resource.ID == "followed" })
		if ev.Action != "TenantService.CreateTenant" {
			t.Errorf("followed event: %+v", ev)
		}
		u.ok("", "tenant", "delete", "followed")
		if ev := followed.next(func(e cliAuditEvent) bool { return e.Resource.ID == "followed" }); ev.Action != "TenantService.DeleteTenant" {
			t.Errorf("second followed event: %+v", ev)
		}
		if code := followed.stop(); code != exitOK {
			t.Errorf("audit list --follow ended with exit %d", code)
		}

		// Deletions.
		for _, args := range [][]string{
			{"user", "delete", "--pool", "customers", user.ID}, {"pool", "delete", "customers"},
			{"client", "delete", backend.ClientID}, {"scope", "delete", "--workspace", "shop", "orders.read"},
			{"workspace", "delete", "shop"},
		} {
			if out := u.ok("", append(args, "-o", "json")...); strings.TrimSpace(out) != "{}" {
				t.Errorf("authplane %v printed %q", args, out)
			}
		}
		if code := clientCredentials(t, env, "acme", "shop", backend.ClientID, rotated.ClientSecret); code == http.StatusOK {
			t.Errorf("a deleted client still gets tokens")
		}
		u.ok("", "tenant", "delete", "acme")
		if r := u.cmd("", "tenant", "get", "acme"); r.code != exitNotFound {
			t.Errorf("tenant get after delete: exit %d", r.code)
		}
	})
}

// follower is `audit list --follow -o json` running in the background.
type follower struct {
	t      *testing.T
	out    *lineBuffer
	cancel context.CancelFunc
	ended  *ended
	read   int // lines handed out so far
}

// ended is closed when a background command returns, with its exit code.
type ended struct {
	done chan struct{}
	code int
}

// startFollowing starts following and returns once the command said it follows (its first answers printed).
func startFollowing(t *testing.T, u *cliUser, flags ...string) *follower {
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{t: t, out: newLineBuffer(), cancel: cancel, ended: &ended{done: make(chan struct{})}}
	errs := newLineBuffer()
	go func() {
		defer close(f.ended.done)
		f.ended.code = u.runTo(ctx, "", nil, f.out, errs, append([]string{"audit", "list", "--follow", "--interval", "50ms", "-o", "json"}, flags...)...)
	}()
	t.Cleanup(func() { cancel(); <-f.ended.done })
	errs.waitFor(t, f.ended, func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "following new audit events") })
	})
	f.read = len(f.out.lines())
	return f
}

// next waits for the next printed event that match accepts (skipping the others) and returns it.
func (f *follower) next(match func(cliAuditEvent) bool) cliAuditEvent {
	f.t.Helper()
	var found cliAuditEvent
	f.out.waitFor(f.t, f.ended, func(lines []string) bool {
		for ; f.read < len(lines); f.read++ {
			var e cliAuditEvent
			if err := json.Unmarshal([]byte(lines[f.read]), &e); err != nil {
				f.t.Fatalf("a followed line is not an event: %q", lines[f.read])
			}
			if match(e) {
				found = e
				f.read++
				return true
			}
		}
		return false
	})
	return found
}

func (f *follower) stop() int {
	f.cancel()
	<-f.ended.done
	return f.ended.code
}

// lineBuffer collects what a command writes and wakes whoever waits for a line.
type lineBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLineBuffer() *lineBuffer { return &lineBuffer{changed: make(chan struct{}, 1)} }

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

// lines are the complete lines written so far.
func (b *lineBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// waitFor waits until cond holds for the lines, failing if the command ends first (or, as a guard against a hang,
// after a minute: the condition is about what is printed, not how fast).
func (b *lineBuffer) waitFor(t *testing.T, cmd *ended, cond func([]string) bool) {
	t.Helper()
	guard := time.After(time.Minute)
	for !cond(b.lines()) {
		select {
		case <-b.changed:
		case <-cmd.done:
			if !cond(b.lines()) {
				t.Fatalf("the command ended (exit %d) before printing what was awaited:\n%s", cmd.code, strings.Join(b.lines(), "\n"))
			}
			return
		case <-guard:
			t.Fatalf("nothing awaited was printed:\n%s", strings.Join(b.lines(), "\n"))
		}
	}
}

// cliWorld is a server with a tenant acme and a user logged in as the operator and as acme's admin.
type cliWorld struct {
	env                    *testenv.Env
	u                      *cliUser
	adminID, adminSecret   string
	readerID, readerSecret string // admin workspace, read_configuration only
}

func newCLIWorld(t *testing.T, b testenv.Backend) *cliWorld {
	t.Helper()
	w := &cliWorld{env: testenv.Start(t, testenv.WithBackend(b)), u: newCLIUser(t)}
	w.u.mustLogin(w.env, "root", "admin", w.env.RootClientID, w.env.RootSecret)
	var created struct {
		AdminClient cliClient `json:"admin_client"`
	}
	w.u.okJSON(&created, "", "tenant", "create", "acme")
	w.adminID, w.adminSecret = created.AdminClient.ClientID, *created.AdminClient.ClientSecret
	w.u.mustLogin(w.env, "acme", "admin", w.adminID, w.adminSecret)
	w.u.ok("", "workspace", "create", "shop")
	var reader cliClient
	w.u.okJSON(&reader, "", "client", "create", "--workspace", "admin", "--name", "reader", "--scopes", "read_configuration")
	w.readerID, w.readerSecret = reader.ClientID, *reader.ClientSecret
	return w
}

// TestCLIExitCodes: each exit code `authplane help` documents, from the case that gives it, with a message that
// says what happened.
func TestCLIExitCodes(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		w := newCLIWorld(t, b)
		u := w.u
		stranger := newCLIUser(t) // never logged in

		readers := newCLIUser(t)
		readers.mustLogin(w.env, "acme", "admin", w.readerID, w.readerSecret)

		// A login whose client is deleted afterwards: the server refuses its token.
		var doomed cliClient
		u.okJSON(&doomed, "", "client", "create", "--workspace", "admin", "--name", "doomed", "--scopes", "manage_configuration")
		u.mustLogin(w.env, "acme", "admin", doomed.ClientID, *doomed.ClientSecret, "--profile", "doomed")
		u.ok("", "client", "delete", doomed.ClientID)

		// A login whose token has expired.
		u.mustLogin(w.env, "acme", "admin", w.adminID, w.adminSecret, "--profile", "expired")
		u.editProfile("expired", func(p *profile) { p.Logins[planeAdmin].ExpiresAt = time.Now().Add(-time.Minute) })

		closed := testenv.Listen(t)
		closedAddr := closed.Addr().String()
		closed.Close()

		for _, tc := range []struct {
			name   string
			u      *cliUser
			stdin  string
			args   []string
			code   int
			stderr string
		}{
			{"an unknown verb", u, "", []string{"client", "frobnicate"}, exitUsage, `unknown command "client frobnicate"`},
			{"a group without a verb", u, "", []string{"client"}, exitUsage, "authplane client rotate-secret CLIENT_ID"},
			{"a missing argument", u, "", []string{"client", "get"}, exitUsage, "client get takes 1 argument(s)"},
			{"an extra argument", u, "", []string{"client", "get", "a", "b"}, exitUsage, "client get takes 1 argument(s)"},
			{"an unknown flag", u, "", []string{"client", "list", "--colour"}, exitUsage, "flag provided but not defined: -colour"},
			{"an unknown output", u, "", []string{"client", "list", "-o", "yaml"}, exitUsage, "--output must be table or json"},
			{"a missing required flag", u, "", []string{"scope", "list"}, exitUsage, "--workspace is required"},
			{"a bad duration", u, "", []string{"workspace", "create", "x", "--access-token-ttl", "forever"}, exitUsage, "invalid value"},
			{"an update naming nothing", u, "", []string{"workspace", "update", "shop"}, exitUsage, "nothing to change"},
			{"a login without a client", u, "", []string{"login", "--tenant", "acme"}, exitUsage, "--client-id are required"},
			{"a login on a workspace of no plane", u, "s\n", []string{"login", "--tenant", "acme", "--workspace", "shop", "--client-id", "x", "--client-secret-stdin"}, exitUsage, "--workspace must be admin"},
			{"a login without a secret", stranger, "", []string{"login", "--tenant", "acme", "--client-id", "x"}, exitUsage, "no client secret"},
			{"a password neither given nor asked for", u, "", []string{"user", "set-password", "--pool", "p", "u"}, exitUsage, "no password"},

			{"never logged in", stranger, "", []string{"workspace", "list"}, exitUnauthenticated, "not logged in on the admin plane"},
			{"not logged in on the plane", u, "", []string{"pool", "list"}, exitUnauthenticated, "run `authplane login --tenant TENANT --workspace system"},
			{"a wrong secret", stranger, "wrong\n", []string{"login", "--issuer-url", w.env.HTTPURL, "--grpc-addr", w.env.GRPCAddr, "--tenant", "acme", "--client-id", w.adminID, "--client-secret-stdin"}, exitUnauthenticated, "invalid_client"},
			{"a refused token", u, "", []string{"workspace", "list", "--profile", "doomed"}, exitUnauthenticated, "run `authplane login` again"},
			{"an expired token", u, "", []string{"workspace", "list", "--profile", "expired"}, exitUnauthenticated, "expired at"},

			{"a read-only admin writing", readers, "", []string{"workspace", "create", "x"}, exitPermissionDenied, "forbidden"},
			{"an operator command with only an admin login", u, "", []string{"tenant", "list", "--profile", "expired"}, exitUnauthenticated, "not logged in on the operator plane"},
			{"a missing client", u, "", []string{"client", "get", "nosuch"}, exitNotFound, "not_found"},
			{"a missing scope name", u, "", []string{"scope", "delete", "--workspace", "shop", "nosuch"}, exitNotFound, `no scope "nosuch"`},
			{"an existing workspace", u, "", []string{"workspace", "create", "shop"}, exitConflict, "already exists"},
			{"an existing tenant", u, "", []string{"tenant", "create", "acme"}, exitConflict, "conflict"},
			{"input the server refuses", u, "", []string{"client", "create", "--workspace", "shop", "--grant-types", "bogus"}, exitError, "field grant_types"},
			{"a gRPC address where nothing listens", stranger, w.adminSecret + "\n", []string{"login", "--issuer-url", w.env.HTTPURL, "--grpc-addr", closedAddr, "--tenant", "acme", "--client-id", w.adminID, "--client-secret-stdin"}, exitError, "does not answer"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := tc.u.cmd(tc.stdin, tc.args...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
					t.Errorf("authplane %s: exit %d, want %d; stderr %q, want it to hold %q", strings.Join(tc.args, " "), r.code, tc.code, r.stderr, tc.stderr)
				}
			})
		}
		// Refused logins saved nothing.
		if _, err := os.Stat(stranger.profileFile("default")); !os.IsNotExist(err) {
			t.Errorf("a failed login left a profile: %v", err)
		}
		// Reads are open to the read-only admin.
		readers.ok("", "workspace", "list")
	})
}

// TestCLIRememberSecret: with --remember-secret the secret is kept (in the 0600 file) and an expired or refused
// token is replaced without a new login; without it the same cases ask for a login.
func TestCLIRememberSecret(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		w := newCLIWorld(t, b)
		u := w.u
		u.mustLogin(w.env, "acme", "admin", w.adminID, w.adminSecret, "--profile", "robot", "--remember-secret")
		raw, err := os.ReadFile(u.profileFile("robot"))
		if err != nil || !strings.Contains(string(raw), w.adminSecret) {
			t.Fatalf("the remembered secret is not in the profile: %v\n%s", err, raw)
		}
		if st, _ := os.Stat(u.profileFile("robot")); st.Mode().Perm() != 0o600 {
			t.Errorf("profile mode %v", st.Mode().Perm())
		}
		var whoami []struct {
			Plane            string `json:"plane"`
			SecretRemembered bool   `json:"secret_remembered"`
			Expired          bool   `json:"expired"`
		}
		u.okJSON(&whoami, "", "whoami", "--profile", "robot")
		if len(whoami) != 1 || whoami[0].Plane != "admin" || !whoami[0].SecretRemembered || whoami[0].Expired {
			t.Errorf("whoami: %+v", whoami)
		}
		if out := u.ok("", "whoami", "--profile", "robot"); strings.Contains(out, w.adminSecret) {
			t.Errorf("whoami shows the secret: %s", out)
		}

		for _, tc := range []struct {
			name  string
			spoil func(l *login)
		}{
			{"an expired token", func(l *login) { l.ExpiresAt = time.Now().Add(-time.Minute) }},
			{"a token the server refuses", func(l *login) { l.AccessToken = "not-a-token" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u.mustLogin(w.env, "acme", "admin", w.adminID, w.adminSecret, "--profile", "robot", "--remember-secret")
				u.editProfile("robot", func(p *profile) { tc.spoil(p.Logins[planeAdmin]) })
				spoiled := *u.readProfile("robot").Logins[planeAdmin]
				u.ok("", "workspace", "get", "shop", "--profile", "robot")
				renewed := u.readProfile("robot").Logins[planeAdmin]
				if renewed.AccessToken == spoiled.AccessToken || renewed.expired(time.Now()) {
					t.Errorf("the token was not replaced: %+v", renewed)
				}

				u.mustLogin(w.env, "acme", "admin", w.adminID, w.adminSecret, "--profile", "forgetful")
				u.editProfile("forgetful", func(p *profile) { tc.spoil(p.Logins[planeAdmin]) })
				if r := u.cmd("", "workspace", "get", "shop", "--profile", "forgetful"); r.code != exitUnauthenticated {
					t.Errorf("without a remembered secret: exit %d, want 3 (%s)", r.code, r.stderr)
				}
			})
		}

		// A login without --remember-secret drops a secret remembered before.
		u.mustLogin(w.env, "acme", "admin", w.adminID, w.adminSecret, "--profile", "robot")
		if raw, _ := os.ReadFile(u.profileFile("robot")); strings.Contains(string(raw), w.adminSecret) {
			t.Errorf("the secret stayed after a login without --remember-secret")
		}
	})
}

// TestCLIProfiles: logins of several planes share a profile; logout forgets one plane's or all; profiles are apart.
func TestCLIProfiles(t *testing.T) {
	w := newCLIWorld(t, testenv.SQLite)
	u := w.u
	header, rows := tableRows(t, u.ok("", "whoami"))
	if header[0] != "PLANE" || len(rows) != 2 || rows[0][0] != "operator" || rows[1][0] != "admin" {
		t.Errorf("whoami: %v %v", header, rows)
	}
	// Another profile, logged in as the reader, does not change the default one.
	u.mustLogin(w.env, "acme", "admin", w.readerID, w.readerSecret, "--profile", "reader")
	if r := u.cmd("", "workspace", "create", "x", "--profile", "reader"); r.code != exitPermissionDenied {
		t.Errorf("the reader profile: exit %d", r.code)
	}
	u.ok("", "workspace", "create", "x")
	// The profile from the environment.
	if r := u.run(context.Background(), "", map[string]string{"AUTHPLANE_PROFILE": "reader"}, "workspace", "delete", "x"); r.code != exitPermissionDenied {
		t.Errorf("AUTHPLANE_PROFILE=reader: exit %d", r.code)
	}

	u.ok("", "logout", "--plane", "admin")
	if r := u.cmd("", "workspace", "list"); r.code != exitUnauthenticated {
		t.Errorf("after logout --plane admin: exit %d", r.code)
	}
	u.ok("", "tenant", "list")
	u.ok("", "logout")
	if _, err := os.Stat(u.profileFile("default")); !os.IsNotExist(err) {
		t.Errorf("logout left the profile file: %v", err)
	}
	if r := u.cmd("", "whoami"); r.code != exitUnauthenticated {
		t.Errorf("whoami after logout: exit %d", r.code)
	}
	u.ok("", "workspace", "list", "--profile", "reader")
	if r := u.cmd("", "whoami", "--profile", "../escape"); r.code != exitUsage {
		t.Errorf("a profile name with a path: exit %d", r.code)
	}
}

// TestCLIHelp: help lists the client commands and the exit codes; a group and a command describe themselves.
func TestCLIHelp(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"help"}, func(string) string { return "" }, &out, &errs); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, want := range []string{"authplane login --tenant", "authplane client create|delete|get|list|rotate-secret|update", "authplane audit list",
		"Exit codes", "  3  not logged in", "  4  permission denied", "  5  not found", "  6  conflict"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	u := newCLIUser(t)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"client", "-h"}, exitOK, "authplane client rotate-secret CLIENT_ID"},
		{[]string{"client", "help"}, exitOK, "authplane client rotate-secret CLIENT_ID"},
		{[]string{"client", "create", "-h"}, exitOK, "-workspace string"},
		{[]string{"audit", "list", "--help"}, exitOK, "-follow"},
	} {
		r := u.cmd("", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.out) {
			t.Errorf("authplane %v: exit %d, output %q", tc.args, r.code, r.stdout+r.stderr)
		}
	}
	// Client commands go through run too.
	out.Reset()
	errs.Reset()
	if code := run([]string{"client", "get"}, func(string) string { return "" }, &out, &errs); code != exitUsage {
		t.Errorf("run client get: exit %d", code)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authplane/authplane/pkg/testenv"
)

const backupPassword = "S3cure-pass!word"

// TestBackupWhileServingThenRestore backs up a serving process's database with `authplane backup` while users are
// being written (SQLite: VACUUM INTO; PostgreSQL: pg_dump), changes things afterwards, and restores the backup
// as an operator would (SQLite: the file and its key file put back; PostgreSQL: pg_restore into an empty
// database) under a new process with the same master key. Tokens issued before the backup still verify, are
// active and open the admin and identity planes; the refresh token issued before it refreshes; the changes made
// after it are gone; and the users written during it are a prefix of the writes (one consistent snapshot).
func TestBackupWhileServingThenRestore(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		if b == testenv.Postgres {
			for _, tool := range []string{"pg_dump", "pg_restore"} {
				if _, err := exec.LookPath(tool); err != nil {
					if os.Getenv("AUTHPLANE_TEST_POSTGRES_REQUIRED") != "" {
						t.Fatalf("%s is not on PATH", tool)
					}
					t.Skipf("%s is not on PATH", tool)
				}
			}
		}
		dbURL := testenv.DatabaseURL(t, b)
		// The issuer is the deployment's public URL, the same before and after the restore.
		deployment := func(dbURL, masterKey string) []testenv.Option {
			opts := []testenv.Option{testenv.WithIssuer("http://id.backup.test"), testenv.WithRootSecret("backup-root-secret"),
				testenv.WithDatabase(dbURL, masterKey)}
			if b == testenv.SQLite {
				// The key where a deployment without AUTHPLANE_MASTER_KEY keeps it: beside the file (and the backup).
				opts = append(opts, testenv.WithKeyBesideDatabase())
			}
			return opts
		}
		masterKey := ""
		if b == testenv.Postgres {
			masterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
		}
		before := testenv.Start(t, deployment(dbURL, masterKey)...)
		w := newBackupWorld(t, before)
		ccToken := before.Token(t, "acme", "shop", w.ccID, w.ccSecret)
		refreshToken := w.login(t, before)

		// Users are written one after another while the backup runs.
		stopWriting, written := make(chan struct{}), make(chan int, 1)
		firstWrite := make(chan struct{})
		go func() {
			n := 0
			defer func() { written <- n }()
			for ; n < 300; n++ {
				select {
				case <-stopWriting:
					return
				default:
				}
				if code, err := w.postUser(before, fmt.Sprintf("writer-%03d@example.com", n)); err != nil || code != http.StatusCreated {
					t.Errorf("writer %d: %d %v", n, code, err)
					return
				}
				if n == 0 {
					close(firstWrite)
				}
			}
		}()
		<-firstWrite
		backupFile := filepath.Join(t.TempDir(), "authplane-backup")
		getenv := func(k string) string { return map[string]string{"AUTHPLANE_MASTER_KEY": before.MasterKey}[k] }
		var stdout, stderr bytes.Buffer
		if code := backup(context.Background(), []string{"--to", backupFile, "--database-url", dbURL}, getenv, &stdout, &stderr); code != 0 {
			t.Fatalf("authplane backup: exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
		close(stopWriting)
		writes := <-written
		t.Logf("authplane backup: %s (%d users written meanwhile)", strings.TrimSpace(stdout.String()), writes)

		// After the backup: a tenant, a user, and the refresh token rotated.
		if code := before.CallJSON(t, "POST", "/api/admin/tenants", before.RootToken(t), map[string]string{"id": "later"}, nil); code != http.StatusCreated {
			t.Fatalf("create tenant later: %d", code)
		}
		if code, err := w.postUser(before, "after-backup@example.com"); err != nil || code != http.StatusCreated {
			t.Fatalf("create a user after the backup: %d %v", code, err)
		}
		if code, _ := w.refresh(t, before, refreshToken); code != http.StatusOK {
			t.Fatalf("refresh before the restore: %d", code)
		}
		before.Stop()

		restoredURL := restore(t, b, dbURL, backupFile)
		after := testenv.Start(t, deployment(restoredURL, masterKey)...)

		var set jose.JSONWebKeySet
		if code := after.CallJSON(t, "GET", "/acme/shop/.well-known/jwks.json", "", nil, &set); code != http.StatusOK {
			t.Fatalf("JWKS after the restore: %d", code)
		}
		parsed, err := jwt.ParseSigned(ccToken, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		if err := parsed.Claims(&set, &claims); err != nil {
			t.Errorf("a token issued before the backup does not verify against the restored JWKS: %v", err)
		}
		var intro map[string]any
		if code := w.form(t, after, "introspect", url.Values{"token": {ccToken}}, w.ccID, w.ccSecret, &intro); code != http.StatusOK || intro["active"] != true || intro["client_id"] != w.ccID {
			t.Errorf("introspection of a token issued before the backup: %d %v", code, intro)
		}
		var servers struct {
			Servers []struct{ ID string } `json:"servers"`
		}
		if code := after.CallJSON(t, "GET", "/api/admin/acme/servers", w.tn.AdminToken, nil, &servers); code != http.StatusOK ||
			!slices.ContainsFunc(servers.Servers, func(s struct{ ID string }) bool { return s.ID == "shop" }) {
			t.Errorf("the admin plane with an admin token issued before the backup: %d %v", code, servers)
		}
		if code, out := w.refresh(t, after, refreshToken); code != http.StatusOK || out["refresh_token"] == "" {
			t.Errorf("the refresh token issued before the backup, after the restore: %d %v", code, out)
		}
		if code := after.CallJSON(t, "GET", "/api/admin/tenants/later", after.RootToken(t), nil, nil); code != http.StatusNotFound {
			t.Errorf("the tenant created after the backup: %d, want 404", code)
		}
		emails := w.emails(t, after)
		if slices.Contains(emails, "after-backup@example.com") {
			t.Error("the user created after the backup is restored")
		}
		if !slices.Contains(emails, "jane@example.com") {
			t.Errorf("jane is lost: %v", emails)
		}
		var writers []string
		for _, e := range emails {
			if strings.HasPrefix(e, "writer-") {
				writers = append(writers, e)
			}
		}
		slices.Sort(writers)
		if len(writers) == 0 || len(writers) > writes {
			t.Errorf("%d writers restored of %d written", len(writers), writes)
		}
		for i, e := range writers {
			if want := fmt.Sprintf("writer-%03d@example.com", i); e != want {
				t.Fatalf("the restored writes are not a prefix of the writes: %s where %s was expected", e, want)
			}
		}
	})
}

// restore puts the backup in place as README's Operations section says, and returns the database URL the
// restored process starts with.
func restore(t *testing.T, b testenv.Backend, dbURL, backupFile string) string {
	t.Helper()
	if b == testenv.SQLite {
		path := strings.TrimPrefix(dbURL, "sqlite:")
		for _, suffix := range []string{"", "-wal", "-shm", ".key"} {
			if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		for _, suffix := range []string{"", ".key"} {
			raw, err := os.ReadFile(backupFile + suffix)
			if err != nil {
				t.Fatalf("the backup lacks %s: %v", backupFile+suffix, err)
			}
			if err := os.WriteFile(path+suffix, raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dbURL
	}
	fresh := testenv.DatabaseURL(t, testenv.Postgres)
	out, err := exec.Command("pg_restore", "--no-owner", "--exit-on-error", "--dbname="+fresh, backupFile).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	return fresh
}

// backupWorld is tenant acme with workspace shop, whose identity pool people logs users in by password.
type backupWorld struct {
	tn               *testenv.Tenant
	appID, appSecret string // password + refresh_token
	ccID, ccSecret   string // client_credentials
}

func newBackupWorld(t *testing.T, env *testenv.Env) *backupWorld {
	t.Helper()
	w := &backupWorld{tn: env.NewTenant(t, "acme")}
	must := func(method, path, token string, body any) {
		t.Helper()
		if code := env.CallJSON(t, method, path, token, body, nil); code != http.StatusCreated {
			t.Fatalf("%s %s: %d", method, path, code)
		}
	}
	must("POST", "/api/admin/acme/servers", w.tn.AdminToken, map[string]any{"id": "shop", "name": "Shop",
		"grant_types": []string{"password", "refresh_token", "client_credentials"}})
	must("POST", "/api/identity/acme/system/pools", w.tn.SystemToken, map[string]any{"id": "people", "name": "People",
		"authentication_mechanisms": []string{"password"}})
	must("POST", "/api/identity/acme/system/pools/people/users", w.tn.SystemToken, map[string]any{"status": "active",
		"identifiers": []map[string]any{{"type": "email", "identifier": "jane@example.com"}},
		"credentials": []map[string]any{{"type": "password", "password": backupPassword}}})
	must("POST", "/api/admin/acme/servers/shop/idps/identity_pool", w.tn.AdminToken,
		map[string]any{"name": "People", "identity_pool_id": "people"})
	w.appID, w.appSecret = env.CreateClient(t, "acme", w.tn.AdminToken, map[string]any{"authorization_server_id": "shop",
		"client_name": "app", "grant_types": []string{"password", "refresh_token"}, "scopes": []string{"openid", "offline_access"}})
	w.ccID, w.ccSecret = env.CreateClient(t, "acme", w.tn.AdminToken, map[string]any{"authorization_server_id": "shop",
		"client_name": "service", "grant_types": []string{"client_credentials"}})
	return w
}

// postUser creates a user without a password (no hashing: the writes follow each other quickly); it reports
// rather than fails, for it runs beside the test's goroutine.
func (w *backupWorld) postUser(env *testenv.Env, email string) (int, error) {
	body := fmt.Sprintf(`{"status":"active","identifiers":[{"type":"email","identifier":%q}]}`, email)
	req, err := http.NewRequest("POST", env.HTTPURL+"/api/identity/acme/system/pools/people/users", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+w.tn.SystemToken)
	resp, err := env.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// emails lists the email identifiers of the pool's users.
func (w *backupWorld) emails(t *testing.T, env *testenv.Env) []string {
	t.Helper()
	var out struct {
		Users []struct {
			Identifiers []struct {
				Identifier string `json:"identifier"`
			} `json:"identifiers"`
		} `json:"users"`
		NextPageToken string `json:"next_page_token"`
	}
	if code := env.CallJSON(t, "GET", "/api/identity/acme/system/pools/people/users?page_size=1000", w.tn.SystemToken, nil, &out); code != http.StatusOK || out.NextPageToken != "" {
		t.Fatalf("list users: %d, next page %q", code, out.NextPageToken)
	}
	var emails []string
	for _, u := range out.Users {
		for _, id := range u.Identifiers {
			emails = append(emails, id.Identifier)
		}
	}
	return emails
}

// form posts to an OAuth endpoint of workspace shop with client_secret_basic and decodes the JSON answer.
func (w *backupWorld) form(t *testing.T, env *testenv.Env, endpoint string, form url.Values, id, secret string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("POST", env.Issuer("acme", "shop")+"/oauth2/"+endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s: %q: %v", endpoint, raw, err)
	}
	return resp.StatusCode
}

// login runs the password grant for jane and returns the refresh token.
func (w *backupWorld) login(t *testing.T, env *testenv.Env) string {
	t.Helper()
	var out map[string]any
	code := w.form(t, env, "token", url.Values{"grant_type": {"password"}, "username": {"jane@example.com"},
		"password": {backupPassword}, "scope": {"openid offline_access"}}, w.appID, w.appSecret, &out)
	rt, _ := out["refresh_token"].(string)
	if code != http.StatusOK || rt == "" {
		t.Fatalf("password grant: %d %v", code, out)
	}
	return rt
}

func (w *backupWorld) refresh(t *testing.T, env *testenv.Env, rt string) (int, map[string]any) {
	t.Helper()
	var out map[string]any
	code := w.form(t, env, "token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, w.appID, w.appSecret, &out)
	return code, out
}

// TestBackupRefusesWithoutDamage: what the backup subcommand refuses, and that a refusal or a failure leaves
// nothing behind (no partial file, no overwritten one) and never prints a database password.
func TestBackupRefusesWithoutDamage(t *testing.T) {
	env := testenv.Start(t) // a real database to back up; AUTHPLANE_MASTER_KEY is set
	_, havePgDump := exec.LookPath("pg_dump")
	tests := []struct {
		name       string
		args       []string
		masterKey  bool
		existing   bool // the destination exists beforehand
		needPgDump bool
		want       int
		output     string
		creates    []string // files the destination directory holds afterwards
	}{
		{name: "a SQLite backup with AUTHPLANE_MASTER_KEY set copies no key", args: []string{"--database-url", env.DatabaseURL}, masterKey: true,
			want: 0, output: "restore with the same one", creates: []string{"backup"}},
		{name: "an existing destination is never overwritten", args: []string{"--database-url", env.DatabaseURL}, existing: true,
			want: 1, output: "exists", creates: []string{"backup"}},
		{name: "no database at the path", args: []string{"--database-url", "sqlite:" + filepath.Join(t.TempDir(), "missing.db")},
			want: 1, output: "no database at"},
		{name: "an unsupported database URL", args: []string{"--database-url", "mysql://db/authplane"}, want: 1, output: "unsupported database URL"},
		{name: "without pg_dump, the command to run and no password",
			args: []string{"--database-url", "postgres://authplane:s3cret-pw@db.internal:5432/authplane?sslmode=disable", "--pg-dump", "pg_dump-not-installed"},
			want: 1, output: "\n  pg_dump --format=custom --dbname='postgres://authplane@db.internal:5432/authplane?sslmode=disable' --file="},
		{name: "pg_dump failing leaves no file", args: []string{"--database-url", "postgres://authplane:s3cret-pw@127.0.0.1:1/authplane?sslmode=disable"},
			needPgDump: true, want: 1, output: "pg_dump: exit status"},
		{name: "no destination", args: []string{"--database-url", env.DatabaseURL}, want: 2, output: "usage: authplane backup --to FILE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needPgDump && havePgDump != nil {
				t.Skip("pg_dump is not on PATH")
			}
			dir := t.TempDir()
			dest := filepath.Join(dir, "backup")
			args := tc.args
			if tc.want != 2 {
				args = append([]string{"--to", dest}, args...)
			}
			if tc.existing {
				if err := os.WriteFile(dest, []byte("an older backup"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			getenv := func(k string) string {
				if k == "AUTHPLANE_MASTER_KEY" && tc.masterKey {
					return env.MasterKey
				}
				return ""
			}
			var stdout, stderr bytes.Buffer
			got := backup(context.Background(), args, getenv, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if got != tc.want || !strings.Contains(out, tc.output) {
				t.Fatalf("exit %d, want %d; output %q, want it to contain %q", got, tc.want, out, tc.output)
			}
			if strings.Contains(out, "s3cret-pw") {
				t.Errorf("the output shows the database password: %s", out)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if !slices.Equal(names, tc.creates) {
				t.Errorf("the destination directory holds %v, want %v", names, tc.creates)
			}
			if tc.existing {
				if raw, _ := os.ReadFile(dest); string(raw) != "an older backup" {
					t.Error("the existing destination was changed")
				}
			}
		})
	}
}

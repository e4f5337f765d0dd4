package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/testenv"
	"github.com/authplane/authplane/services/token"
)

const (
	issuer     = "http://issuer.test" // kept across restarts, as a deployment keeps its issuer
	rootSecret = "master-key-test-root-secret"
)

func newKey() string {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

func keyID(t *testing.T, key string) string {
	t.Helper()
	raw, _ := base64.StdEncoding.DecodeString(key)
	m, err := secrets.NewMasterKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID()
}

// start runs the platform on url with the master key and the previous keys (a comma list, may be empty).
func start(t *testing.T, url, key, previous string) *testenv.Env {
	t.Helper()
	return testenv.Start(t, testenv.WithDatabase(url, key), testenv.WithIssuer(issuer), testenv.WithRootSecret(rootSecret),
		testenv.WithEnv(map[string]string{"AUTHPLANE_PREVIOUS_MASTER_KEYS": previous}))
}

// command runs `authplane args…` with the configuration of the database url, the master key and the previous keys.
func command(url, key, previous string, args ...string) (code int, stdout, stderr string) {
	env := map[string]string{
		"AUTHPLANE_DATABASE_URL": url, "AUTHPLANE_MASTER_KEY": key, "AUTHPLANE_PREVIOUS_MASTER_KEYS": previous,
		"AUTHPLANE_ISSUER_URL": issuer, "AUTHPLANE_ROOT_CLIENT_SECRET": rootSecret,
		// Should serve get past its checks, it cannot listen and ends instead of serving.
		"AUTHPLANE_HTTP_ADDR": "127.0.0.1:-1", "AUTHPLANE_GRPC_ADDR": "127.0.0.1:-1",
	}
	var out, errs bytes.Buffer
	code = run(args, func(k string) string { return env[k] }, &out, &errs)
	return code, out.String(), errs.String()
}

// refusedStart runs `authplane serve` and returns its exit code and the error of its "cannot start" log line.
func refusedStart(t *testing.T, url, key, previous string) (int, string) {
	t.Helper()
	code, _, stderr := command(url, key, previous, "serve")
	var line struct {
		Msg   string `json:"msg"`
		Error string `json:"error"`
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &line); err != nil || line.Msg != "cannot start" {
		t.Fatalf("serve: exit %d, last log line %q; want a cannot-start line", code, lines[len(lines)-1])
	}
	return code, line.Error
}

func databaseName(t *testing.T, url string) string {
	t.Helper()
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return d.Name()
}

// world is what a tenant made under one master key, which must keep working under every later one: its admin
// client's secret, a client's secret, a refresh token, an access token, and an external verifier's secret.
type world struct {
	tenant                 *testenv.Tenant
	appID, appSecret       string
	refresh                string // the newest refresh token
	access                 string // an access token issued under the first master key
	verifierSecret         string // as handed out when the verifier was created
	verifierID             string
	verifierCalls, goodSig atomic.Int32
}

type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

func (w *world) token(t *testing.T, env *testenv.Env, form url.Values) (int, tokenAnswer) {
	t.Helper()
	form.Set("client_id", w.appID)
	form.Set("client_secret", w.appSecret)
	resp, err := env.HTTP.PostForm(env.HTTPURL+"/acme/shop/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a tokenAnswer
	_ = json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, a
}

func newWorld(t *testing.T, env *testenv.Env) *world {
	t.Helper()
	w := &world{}
	verifier := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.verifierCalls.Add(1)
		raw, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(w.verifierSecret))
		m.Write(raw)
		if !hmac.Equal([]byte(r.Header.Get("X-Authplane-Signature")), []byte("sha256="+hex.EncodeToString(m.Sum(nil)))) {
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.goodSig.Add(1)
		_, _ = rw.Write([]byte(`{"sub":"ext-1"}`))
	}))
	t.Cleanup(verifier.Close)

	w.tenant = env.NewTenant(t, "acme")
	admin := w.tenant.AdminToken
	if code := env.CallJSON(t, "POST", "/api/admin/acme/servers", admin, map[string]any{"id": "shop", "name": "shop",
		"grant_types": []string{"password", "refresh_token", "client_credentials"}}, nil); code != http.StatusCreated {
		t.Fatalf("create workspace: %d", code)
	}
	var idp struct {
		ID            string `json:"id"`
		SigningSecret string `json:"signing_secret"`
	}
	if code := env.CallJSON(t, "POST", "/api/admin/acme/servers/shop/idps/external", admin, map[string]any{
		"name": "legacy", "url": verifier.URL + "/verify", "timeout": "5s"}, &idp); code != http.StatusCreated || idp.SigningSecret == "" {
		t.Fatalf("create external verifier: %d %+v", code, idp)
	}
	w.verifierID, w.verifierSecret = idp.ID, idp.SigningSecret
	w.appID, w.appSecret = env.CreateClient(t, "acme", admin, map[string]any{"authorization_server_id": "shop", "client_name": "app",
		"grant_types": []string{"password", "refresh_token", "client_credentials"}, "token_endpoint_auth_method": "client_secret_post"})
	code, a := w.token(t, env, url.Values{"grant_type": {"password"}, "username": {"ext-user"}, "password": {"pw"}})
	if code != http.StatusOK || a.RefreshToken == "" {
		t.Fatalf("password grant through the external verifier: %d %+v", code, a)
	}
	w.access, w.refresh = a.AccessToken, a.RefreshToken
	return w
}

// works checks everything the world holds against a running process.
func (w *world) works(t *testing.T, env *testenv.Env) {
	t.Helper()
	env.Token(t, "acme", "admin", w.tenant.AdminID, w.tenant.AdminSecret) // fails the test unless the secret authenticates
	if code, a := w.token(t, env, url.Values{"grant_type": {"client_credentials"}}); code != http.StatusOK {
		t.Errorf("the app's client secret: %d %s", code, a.Error)
	}
	code, a := w.token(t, env, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {w.refresh}})
	if code != http.StatusOK || a.RefreshToken == "" {
		t.Fatalf("refresh: %d %s", code, a.Error)
	}
	w.refresh = a.RefreshToken
	if !verifiesAgainstJWKS(t, env, w.access) {
		t.Error("the access token issued under the first master key does not verify against the JWKS")
	}
	calls, good := w.verifierCalls.Load(), w.goodSig.Load()
	if code, a := w.token(t, env, url.Values{"grant_type": {"password"}, "username": {"ext-user"}, "password": {"pw"}}); code != http.StatusOK {
		t.Errorf("password grant through the external verifier: %d %s", code, a.Error)
	}
	if w.verifierCalls.Load() != calls+1 || w.goodSig.Load() != good+1 {
		t.Error("the external verifier's requests are no longer signed with the secret handed out at its creation")
	}
}

func verifiesAgainstJWKS(t *testing.T, env *testenv.Env, tok string) bool {
	t.Helper()
	resp, err := env.HTTP.Get(env.HTTPURL + "/acme/shop/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	return parsed.Claims(&set, &claims) == nil
}

func wrongKeyMessage(dbName, storedID, currentID string) string {
	return "AUTHPLANE_MASTER_KEY does not open the keys stored in " + dbName + ": it is not the key this database was " +
		"set up with (they are wrapped under master key " + storedID + "; AUTHPLANE_MASTER_KEY is " + currentID + "). " +
		"Start with the right key, or with the new key in AUTHPLANE_MASTER_KEY and the old one in " +
		"AUTHPLANE_PREVIOUS_MASTER_KEYS to rotate"
}

// TestMasterKeyRotation follows an operator from key A to key B: B alone is refused; B with A as previous key
// works; the rotation re-wraps what is stored while that process runs; then B alone works, A alone is refused,
// and everything made under A still works.
func TestMasterKeyRotation(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		url, a, bk := testenv.DatabaseURL(t, b), newKey(), newKey()
		first := start(t, url, a, "")
		w := newWorld(t, first)
		w.works(t, first)
		first.Stop()
		name := databaseName(t, url)

		t.Run("a fresh database stored its check value under the first key", func(t *testing.T) {
			code, out, errs := command(url, a, "", "master-key", "check")
			if code != 0 || !strings.Contains(out, "  check v1 (random): wrapped under master key "+keyID(t, a)+" (AUTHPLANE_MASTER_KEY)\n") ||
				!strings.HasSuffix(out, "ok: AUTHPLANE_MASTER_KEY opens every stored key\n") {
				t.Fatalf("check: exit %d\n%s%s", code, out, errs)
			}
		})
		t.Run("the new key alone is refused, saying what is wrong and what to do", func(t *testing.T) {
			code, msg := refusedStart(t, url, bk, "")
			if want := wrongKeyMessage(name, keyID(t, a), keyID(t, bk)); code != 1 || msg != want {
				t.Fatalf("serve: exit %d, %q\nwant exit 1, %q", code, msg, want)
			}
			for _, sub := range []string{"rotate", "check"} {
				code, out, errs := command(url, bk, "", "master-key", sub)
				if want := "authplane: " + wrongKeyMessage(name, keyID(t, a), keyID(t, bk)) + "\n"; code != 1 || errs != want || out != "" {
					t.Errorf("master-key %s: exit %d, stdout %q, stderr %q\nwant exit 1 and %q", sub, code, out, errs, want)
				}
			}
		})

		rotating := start(t, url, bk, a)
		w.works(t, rotating)
		t.Run("the rotation re-wraps every stored key, while a process runs", func(t *testing.T) {
			code, out, errs := command(url, bk, a, "master-key", "rotate")
			idA, idB := keyID(t, a), keyID(t, bk)
			for _, want := range []string{
				"re-wrapped check v1: from master key " + idA + " to " + idB + "\n",
				"re-wrapped client-secret-hash v1: from master key " + idA + " to " + idB + "\n",
				"re-wrapped derived-secrets v1: from master key " + idA + " to " + idB + "\n",
				"re-wrapped signing-key-seal v1: from master key " + idA + " to " + idB + "\n",
				"done: every stored key is wrapped under master key " + idB + " (AUTHPLANE_MASTER_KEY)\n",
				"nothing stored needs AUTHPLANE_PREVIOUS_MASTER_KEYS any more",
			} {
				if code != 0 || !strings.Contains(out, want) {
					t.Errorf("rotate: exit %d, stdout lacks %q\n%s%s", code, want, out, errs)
				}
			}
			w.works(t, rotating)
			code, out, _ = command(url, bk, a, "master-key", "rotate")
			if code != 0 || !strings.Contains(out, "nothing to re-wrap: every stored key is already wrapped under master key "+idB) {
				t.Errorf("a second rotation: exit %d\n%s", code, out)
			}
		})
		rotating.Stop()

		t.Run("the new key alone works, the old one alone is refused", func(t *testing.T) {
			w.works(t, start(t, url, bk, ""))
			if code, msg := refusedStart(t, url, a, ""); code != 1 || msg != wrongKeyMessage(name, keyID(t, bk), keyID(t, a)) {
				t.Fatalf("the old key after the rotation: exit %d, %q", code, msg)
			}
			code, out, errs := command(url, bk, "", "master-key", "rotate")
			if want := "nothing to re-wrap: every stored key is already wrapped under master key " + keyID(t, bk) + " (AUTHPLANE_MASTER_KEY)\n"; code != 0 || !strings.HasSuffix(out, want) {
				t.Fatalf("rotate with nothing to do: exit %d, %q %q; want exit 0 and %q", code, out, errs, want)
			}
		})
	})
}

func TestMasterKeyCommands(t *testing.T) {
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"master-key"}, {"master-key", "spin"}} {
			if code, _, errs := command("", "", "", args...); code != 2 || !strings.Contains(errs, "want check or rotate") {
				t.Errorf("%v: exit %d, %q", args, code, errs)
			}
		}
	})
	t.Run("no database file", func(t *testing.T) {
		url := "sqlite:" + t.TempDir() + "/absent.db"
		code, _, errs := command(url, newKey(), "", "master-key", "rotate")
		if code != 1 || !strings.HasPrefix(errs, "authplane: no database at "+url+" (AUTHPLANE_DATABASE_URL)") {
			t.Fatalf("exit %d, %q", code, errs)
		}
	})
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		url := testenv.DatabaseURL(t, b)
		name := databaseName(t, url) // opening it makes the SQLite file: a database that exists, empty
		code, _, errs := command(url, newKey(), "", "master-key", "rotate")
		if want := "authplane: " + name + " holds no authplane data (is AUTHPLANE_DATABASE_URL right?)\n"; code != 1 || errs != want {
			t.Fatalf("an empty database: exit %d, %q; want %q", code, errs, want)
		}
		key := newKey()
		start(t, url, key, "").Stop()
		if code, _, errs := command(url, key, "!!!", "master-key", "check"); code != 1 || errs != "authplane: AUTHPLANE_PREVIOUS_MASTER_KEYS: entry 1 of 1 is not the base64 encoding of 32 bytes\n" {
			t.Fatalf("a malformed previous key: exit %d, %q", code, errs)
		}
	})
}

// legacyDatabase makes a database as the code before the keystore did, under master key key, and the world in
// it. Today's code writes the same rows, hashes and sealed keys when its data keys are those derived from the
// master key, which is what it stores for a database some component migrated before: so the first start finds a
// component's mark, and the keystore's own rows and marks are removed afterwards. The test then checks that the
// data is what the code before computed (its keyring was secrets.NewKeyring(master)).
func legacyDatabase(t *testing.T, b testenv.Backend, key string) (string, *world) {
	t.Helper()
	ctx := context.Background()
	url := testenv.DatabaseURL(t, b)
	d, err := db.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Migrate(ctx, "pre-keystore", []db.Migration{{Version: 1, Name: "mark", SQL: "CREATE TABLE pre_keystore_mark (x INTEGER)"}}); err != nil {
		t.Fatal(err)
	}
	env := start(t, url, key, "")
	w := newWorld(t, env)
	env.Stop()
	for _, stmt := range []string{"DROP TABLE authplane_keys", "DROP TABLE pre_keystore_mark",
		"DELETE FROM authplane_migrations WHERE component IN ('keystore', 'pre-keystore')"} {
		if err := d.Exec(stmt).Error; err != nil {
			t.Fatal(err)
		}
	}

	raw, _ := base64.StdEncoding.DecodeString(key)
	before, err := secrets.NewKeyring(raw)
	if err != nil {
		t.Fatal(err)
	}
	var hashes []string
	if err := d.Raw("SELECT secret_hash FROM client_clients WHERE tenant_id = 'acme' AND client_id = ?", w.appID).Scan(&hashes).Error; err != nil ||
		len(hashes) != 1 || hashes[0] != before.HashSecret(w.appSecret) {
		t.Fatalf("the client's secret hash is not the one the code before computed: %v %v", hashes, err)
	}
	var n int
	if err := d.Raw("SELECT COUNT(*) FROM token_refresh_tokens WHERE token_hash = ?", before.HashSecret(w.refresh)).Scan(&n).Error; err != nil || n != 1 {
		t.Fatalf("the refresh token's hash is not the one the code before computed: %d %v", n, err)
	}
	if w.verifierSecret != before.DeriveSecret(secrets.PurposeExternalIdp, "acme", "shop", w.verifierID) {
		t.Fatal("the external verifier's secret is not the one the code before derived")
	}
	if found, opens, err := token.OpensNewestSigningKey(ctx, d, before); !found || !opens || err != nil {
		t.Fatalf("the code before's keyring opens the newest signing key: found %v, opens %v, %v", found, opens, err)
	}
	if components, _ := d.Components(ctx); slices.Contains(components, "keystore") {
		t.Fatal("the keystore's migrations are still recorded")
	}
	return url, w
}

// TestADatabaseMadeBeforeTheKeystoreKeepsWorking: after the upgrade, client secrets, refresh tokens, signing keys
// and external verifiers' secrets made before keep working, with the database's key and after a move to a new one.
func TestADatabaseMadeBeforeTheKeystoreKeepsWorking(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		a, bk := newKey(), newKey()

		t.Run("started with its master key", func(t *testing.T) {
			url, w := legacyDatabase(t, b, a)
			w.works(t, start(t, url, a, ""))
			code, out, errs := command(url, a, "", "master-key", "check")
			if code != 0 || !strings.Contains(out, "  client-secret-hash v1 (derived): wrapped under master key "+keyID(t, a)) {
				t.Fatalf("check: exit %d\n%s%s", code, out, errs)
			}
		})
		t.Run("started with another master key, alone and then with its key as previous one", func(t *testing.T) {
			url, w := legacyDatabase(t, b, a)
			name := databaseName(t, url)
			code, msg := refusedStart(t, url, bk, "")
			want := "AUTHPLANE_MASTER_KEY does not open the signing keys stored in " + name + ", which was set up before master " +
				"keys were checked at start: it is not the key this database was set up with (AUTHPLANE_MASTER_KEY is " + keyID(t, bk) +
				"). Start with the key this database was set up with, or with the new key in AUTHPLANE_MASTER_KEY and the old " +
				"one in AUTHPLANE_PREVIOUS_MASTER_KEYS to rotate"
			if code != 1 || msg != want {
				t.Fatalf("serve: exit %d, %q\nwant exit 1, %q", code, msg, want)
			}
			if code, out, _ := command(url, a, "", "master-key", "check"); code != 0 || !strings.Contains(out, "no keys stored yet") {
				t.Fatalf("a refused start stored keys: check exits %d\n%s", code, out)
			}

			rotating := start(t, url, bk, a)
			w.works(t, rotating)
			rotating.Stop()
			w.works(t, start(t, url, bk, ""))
			code, out, errs := command(url, bk, "", "master-key", "rotate")
			if code != 0 || !strings.Contains(out, "nothing to re-wrap") {
				t.Fatalf("rotate: exit %d\n%s%s", code, out, errs)
			}
		})
	})
}

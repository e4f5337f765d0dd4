package pool_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/testenv"
)

// Hashes as other systems export them (bcrypt cost 10 and argon2id m=64MiB,t=3,p=2 as in the acceptance script;
// PBKDF2 in passlib's documented form).
const (
	bcryptHash = "$2b$10$oWhqpdSTJnfVPwmoTYiYCOwGKIFbovVceke2eC5XO7HRK5itMxoiO"                                      // import-me-please
	argonHash  = "$argon2id$v=19$m=65536,t=3,p=2$VgeUZOZYD7TJ0Xap/6lKHg$WTp5sAASdLtQ/LPrhNKgdynMm0puY62ccDSGCuZTdzI" // argon-import-pass
	pbkdfHash  = "$pbkdf2-sha256$6400$0ZrzXitFSGltTQnBWOsdAw$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M"            // password
)

func TestVerifyResults(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		e.pool(t, "p", nil)
		jane := e.user(t, "p", "jane@example.com", "correct horse")
		e.mustCall(t, 200, "POST", "/pools/p/users/"+jane+"/identifiers/add", ident("mobile", "+14155550100"))
		e.mustCall(t, 200, "POST", "/pools/p/users/"+jane+"/identifiers/add", ident("uid", "JaneD"))
		nopass := e.user(t, "p", "nopass@example.com", "")
		sleeper := e.user(t, "p", "sleeper@example.com", "sleepy horse")
		e.mustCall(t, 200, "PUT", "/pools/p/users/"+sleeper, map[string]any{"status": "inactive"})
		tests := []struct {
			name, identifier, password, result, userID string
		}{
			{"email in another case", " JANE@Example.COM", "correct horse", "password_correct", jane},
			{"mobile written with separators", "+1 415-555-0100", "correct horse", "password_correct", jane},
			{"uid in another case", "janed", "correct horse", "password_correct", jane},
			{"wrong password", "jane@example.com", "Correct horse", "password_incorrect", jane},
			{"unknown identifier", "ghost@example.com", "whatever", "user_not_found", ""},
			{"no password", "nopass@example.com", "whatever", "no_password", nopass},
			{"inactive user with its password", "sleeper@example.com", "sleepy horse", "user_inactive", sleeper},
			{"inactive user with a wrong password", "sleeper@example.com", "awake", "password_incorrect", sleeper},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				out := e.mustCall(t, 200, "POST", "/pools/p/user/password/verify", map[string]any{"identifier": tt.identifier, "password": tt.password})
				if out["result"] != tt.result || out["user_id"] != tt.userID {
					t.Fatalf("answer %v, want %s for %q", out, tt.result, tt.userID)
				}
			})
		}
		e.mustCall(t, 400, "POST", "/pools/p/user/password/verify", map[string]any{"identifier": "jane@example.com"})
		e.mustCall(t, 404, "POST", "/pools/ghost/user/password/verify", map[string]any{"identifier": "jane@example.com", "password": "x"})
	})
}

// TestEveryCheckCostsOneVerification: a user that does not exist, is locked or has no password costs one
// verification in the hashing pool, as a wrong password of a real user does, so response times do not tell
// them apart. The pool's own count of verifications (its metric) is the observable.
func TestEveryCheckCostsOneVerification(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		e.pool(t, "p", map[string]any{"lockout_policy": map[string]any{"max_attempts": 1, "block_duration": "3600s"}})
		e.user(t, "p", "jane@example.com", "correct horse")
		e.user(t, "p", "locked@example.com", "locked horse")
		e.user(t, "p", "nopass@example.com", "")
		if r := e.verify(t, "p", "locked@example.com", "wrong"); r != "password_incorrect" {
			t.Fatalf("failure that locks the user: %s", r)
		}
		tests := []struct {
			name, identifier, password, result string
		}{
			{"wrong password of a user with one", "jane@example.com", "wrong", "password_incorrect"},
			{"unknown user", "ghost@example.com", "whatever", "user_not_found"},
			{"locked user with its password", "locked@example.com", "locked horse", "account_locked"},
			{"user without a password", "nopass@example.com", "whatever", "no_password"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := e.verifications(t)
				if r := e.verify(t, "p", tt.identifier, tt.password); r != tt.result {
					t.Fatalf("result %s, want %s", r, tt.result)
				}
				if n := e.verifications(t) - before; n != 1 {
					t.Fatalf("the check ran %d verifications, want 1", n)
				}
			})
		}
	})
}

// verifications is the process's count of password verifications (authplane_password_hashes_total).
func (e *env) verifications(t *testing.T) int {
	t.Helper()
	resp, err := e.HTTP.Get(e.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	const series = `authplane_password_hashes_total{operation="verify"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s%s: %v", series, v, err)
			}
			return int(n)
		}
	}
	t.Fatalf("metrics lack %s", series)
	return 0
}

func TestSetPasswordAppliesThePolicy(t *testing.T) {
	e := start(t, testenv.SQLite)
	e.pool(t, "p", map[string]any{"password_policy": map[string]any{"min_length": 10, "capital_letters": 1, "special_characters": 1}})
	id := e.user(t, "p", "jane@example.com", "First-Password")
	for _, bad := range []string{"Short-1", "no-capitals-here", "NoSpecialCharacters", ""} {
		code, out := e.call(t, "POST", "/pools/p/users/"+id+"/password", map[string]any{"password": bad})
		if code != 400 || !strings.Contains(jsonString(out), "password") {
			t.Fatalf("password %q: %d %v", bad, code, out)
		}
	}
	e.mustCall(t, 200, "POST", "/pools/p/users/"+id+"/password", map[string]any{"password": "Second-Password"})
	if r := e.verify(t, "p", "jane@example.com", "First-Password"); r != "password_incorrect" {
		t.Fatalf("old password: %s", r)
	}
	if r := e.verify(t, "p", "jane@example.com", "Second-Password"); r != "password_correct" {
		t.Fatalf("new password: %s", r)
	}
	e.mustCall(t, 404, "POST", "/pools/p/users/nobody/password", map[string]any{"password": "Third-Password"})
}

func TestLockoutIsSharedByEveryPasswordPath(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		e.pool(t, "p", map[string]any{"lockout_policy": map[string]any{"max_attempts": 3, "block_duration": "3600s"}})
		id := e.user(t, "p", "jane@example.com", "correct horse")
		authn := func(pw string) string {
			resp, err := e.pools.AuthenticatePassword(e.Internal(t, context.Background()), &poolv1.AuthenticatePasswordRequest{TenantId: "acme", PoolId: "p",
				Identifier: "jane@example.com", Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			return resp.Result
		}

		// A success resets the count.
		for _, r := range []string{e.verify(t, "p", "jane@example.com", "wrong-1"), e.verify(t, "p", "jane@example.com", "wrong-2")} {
			if r != "password_incorrect" {
				t.Fatalf("wrong password: %s", r)
			}
		}
		if r := e.verify(t, "p", "jane@example.com", "correct horse"); r != "password_correct" {
			t.Fatalf("correct password before the limit: %s", r)
		}
		// Three failures, counted across the verify API and the token service's path, lock the user.
		if r := e.verify(t, "p", "jane@example.com", "wrong-1"); r != "password_incorrect" {
			t.Fatal(r)
		}
		if r := authn("wrong-2"); r != "password_incorrect" {
			t.Fatal(r)
		}
		if r := e.verify(t, "p", "jane@example.com", "wrong-3"); r != "password_incorrect" {
			t.Fatal(r)
		}
		if r := e.verify(t, "p", "jane@example.com", "correct horse"); r != "account_locked" {
			t.Fatalf("correct password while locked: %s", r)
		}
		if r := authn("correct horse"); r != "account_locked" {
			t.Fatalf("token path while locked: %s", r)
		}
		u := e.mustCall(t, 200, "GET", "/pools/p/users/"+id, nil)
		if u["locked_until"] == nil {
			t.Fatalf("locked user shows no locked_until: %v", u)
		}
		e.mustCall(t, 200, "POST", "/pools/p/users/"+id+"/unlock", map[string]any{})
		if r := authn("correct horse"); r != "password_correct" {
			t.Fatalf("after unlock: %s", r)
		}
		resp, err := e.pools.AuthenticatePassword(e.Internal(t, context.Background()), &poolv1.AuthenticatePasswordRequest{TenantId: "acme", PoolId: "p",
			Identifier: "JANE@example.com", Password: "correct horse"})
		if err != nil || resp.User.GetId() != id || len(resp.User.GetIdentifiers()) != 1 {
			t.Fatalf("AuthenticatePassword answered %v, %v", resp, err)
		}
	})
}

// burst sends n concurrent verifications and counts the outcomes: results of 200s, and other statuses as "HTTP nnn".
func (e *env) burst(t *testing.T, n int, identifier, password string) map[string]int {
	t.Helper()
	outcomes := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out map[string]any
			code := e.CallJSON(t, "POST", "/api/identity/acme/system/pools/p/user/password/verify", e.tenant.SystemToken,
				map[string]any{"identifier": identifier, "password": password}, &out)
			key := fmt.Sprintf("HTTP %d", code)
			if code == 200 {
				key, _ = out["result"].(string)
			}
			mu.Lock()
			outcomes[key]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return outcomes
}

// TestConcurrentChecksCannotExceedTheLimit: each check counts as in flight before it runs, and a check that
// could take failures past the limit is refused with 429 instead, so a burst of guesses gets exactly
// max_attempts verifications, while a burst of correct passwords never locks anyone out.
func TestConcurrentChecksCannotExceedTheLimit(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		e.pool(t, "p", map[string]any{"lockout_policy": map[string]any{"max_attempts": 4}})
		e.user(t, "p", "jane@example.com", "correct horse")
		e.user(t, "p", "bob@example.com", "battery staple")

		got := e.burst(t, 12, "jane@example.com", "guess")
		if got["password_incorrect"] != 4 || got["password_incorrect"]+got["account_locked"]+got["HTTP 429"] != 12 {
			t.Fatalf("outcomes %v: exactly 4 guesses may be checked", got)
		}
		if r := e.verify(t, "p", "jane@example.com", "correct horse"); r != "account_locked" {
			t.Fatalf("after the burst of guesses: %s", r)
		}

		got = e.burst(t, 12, "bob@example.com", "battery staple")
		if got["password_correct"] == 0 || got["password_correct"]+got["HTTP 429"] != 12 {
			t.Fatalf("outcomes %v of correct passwords", got)
		}
		if r := e.verify(t, "p", "bob@example.com", "battery staple"); r != "password_correct" {
			t.Fatalf("after a burst of correct passwords: %s", r)
		}
	})
}

func TestImportedHashesVerifyAndAreUpgraded(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		e.pool(t, "p", nil)
		users := []struct{ email, hash, password string }{
			{"bcrypt@example.com", bcryptHash, "import-me-please"},
			{"bcrypt2y@example.com", "$2y$" + bcryptHash[4:], "import-me-please"},
			{"argon@example.com", argonHash, "argon-import-pass"},
			{"pbkdf2@example.com", pbkdfHash, "password"},
		}
		ids := map[string]string{}
		for _, u := range users {
			out := e.mustCall(t, 201, "POST", "/pools/p/users", map[string]any{"identifiers": []any{ident("email", u.email)},
				"credentials": []any{map[string]any{"type": "password", "hashed_password": u.hash}}})
			ids[u.email] = out["id"].(string)
			if strings.Contains(jsonString(out), u.hash[:10]) {
				t.Fatalf("response shows the hash: %v", out)
			}
		}
		d, err := db.Open(context.Background(), e.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		stored := func(id string) string {
			var h string
			if err := d.Raw("SELECT password_hash FROM pool_users WHERE tenant_id = ? AND id = ?", "acme", id).Scan(&h).Error; err != nil {
				t.Fatal(err)
			}
			return h
		}
		for _, u := range users {
			if r := e.verify(t, "p", u.email, u.password+"!"); r != "password_incorrect" {
				t.Fatalf("%s with a wrong password: %s", u.email, r)
			}
			if stored(ids[u.email]) != u.hash {
				t.Fatalf("%s: a failed check changed the hash", u.email)
			}
			if r := e.verify(t, "p", u.email, u.password); r != "password_correct" {
				t.Fatalf("%s: %s", u.email, r)
			}
			if h := stored(ids[u.email]); !strings.HasPrefix(h, "$argon2id$v=19$m=8192,t=1,p=1$") {
				t.Fatalf("%s: hash not upgraded to the pool's settings: %s", u.email, h)
			}
			if r := e.verify(t, "p", u.email, u.password); r != "password_correct" {
				t.Fatalf("%s after the upgrade: %s", u.email, r)
			}
		}
		// A change of the pool's settings upgrades stored hashes at their next success too.
		e.mustCall(t, 200, "PUT", "/pools/p", map[string]any{"password_settings": map[string]any{"hashing_method": "bcrypt", "bcrypt": map[string]any{"cost": 10}}})
		if r := e.verify(t, "p", "argon@example.com", "argon-import-pass"); r != "password_correct" {
			t.Fatal(r)
		}
		if h := stored(ids["argon@example.com"]); !strings.HasPrefix(h, "$2a$10$") {
			t.Fatalf("not re-hashed with bcrypt: %s", h)
		}
	})
}

// TestHashingSaturationFailsFast: with one hashing slot and a short wait, a burst of checks gets quick 503s
// instead of queueing without bound, and the server keeps answering.
func TestHashingSaturationFailsFast(t *testing.T) {
	e := start(t, testenv.SQLite, testenv.WithEnv(map[string]string{
		"AUTHPLANE_PASSWORD_HASHING_CONCURRENCY": "1", "AUTHPLANE_PASSWORD_HASHING_MAX_WAIT": "30ms",
	}))
	e.pool(t, "p", map[string]any{"password_settings": map[string]any{"argon2": map[string]any{"memory_kib": 65536, "iterations": 3}}})
	e.user(t, "p", "jane@example.com", "correct horse")
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out map[string]any
			code := e.CallJSON(t, "POST", "/api/identity/acme/system/pools/p/user/password/verify", e.tenant.SystemToken,
				map[string]any{"identifier": "jane@example.com", "password": "correct horse"}, &out)
			if code == http.StatusServiceUnavailable && out["error_code"] != "unavailable" {
				t.Errorf("503 body: %v", out)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] == 0 || codes[503] == 0 || codes[200]+codes[503] != 8 {
		t.Fatalf("statuses %v: want some 200s and some 503s", codes)
	}
	if r := e.verify(t, "p", "jane@example.com", "correct horse"); r != "password_correct" {
		t.Fatalf("after the burst: %s", r)
	}
}

func TestIdentityPlaneOverGRPC(t *testing.T) {
	e := start(t, testenv.SQLite)
	if _, err := e.pools.CreatePool(e.ctx(), &poolv1.CreatePoolRequest{TenantId: "acme", Pool: &poolv1.Pool{Id: "p",
		PasswordSettings: &poolv1.PasswordSettings{Argon2: &poolv1.Argon2Settings{MemoryKib: 8192, Iterations: 1}}}}); err != nil {
		t.Fatal(err)
	}
	u, err := e.pools.CreateUser(e.ctx(), &poolv1.CreateUserRequest{TenantId: "acme", PoolId: "p", User: &poolv1.User{
		Identifiers: []*poolv1.UserIdentifier{{Type: "email", Identifier: "jane@example.com"}},
		Credentials: []*poolv1.UserCredential{{Type: "password", Password: "correct horse"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Credentials) != 0 || !u.HasPassword {
		t.Fatalf("created %v", u)
	}
	_, err = e.pools.CreateUser(e.ctx(), &poolv1.CreateUserRequest{TenantId: "acme", PoolId: "p", User: &poolv1.User{
		Identifiers: []*poolv1.UserIdentifier{{Type: "email", Identifier: "JANE@example.com"}}}})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate over gRPC: %v", err)
	}
	v, err := e.pools.VerifyPassword(e.ctx(), &poolv1.VerifyPasswordRequest{TenantId: "acme", PoolId: "p", Identifier: "jane@example.com", Password: "correct horse"})
	if err != nil || v.Result != "password_correct" || v.UserId != u.Id {
		t.Fatalf("verify: %v, %v", v, err)
	}

	other := e.NewTenant(t, "globex")
	tests := []struct {
		name string
		ctx  context.Context
		req  *poolv1.GetUserRequest
		want codes.Code
	}{
		{"no token", context.Background(), &poolv1.GetUserRequest{TenantId: "acme", PoolId: "p", UserId: u.Id}, codes.Unauthenticated},
		{"admin-plane token", testenv.WithToken(context.Background(), e.tenant.AdminToken), &poolv1.GetUserRequest{TenantId: "acme", PoolId: "p", UserId: u.Id}, codes.PermissionDenied},
		{"another tenant's token", testenv.WithToken(context.Background(), other.SystemToken), &poolv1.GetUserRequest{TenantId: "acme", PoolId: "p", UserId: u.Id}, codes.PermissionDenied},
		{"another tenant's pool", testenv.WithToken(context.Background(), other.SystemToken), &poolv1.GetUserRequest{TenantId: "globex", PoolId: "p", UserId: u.Id}, codes.NotFound},
		{"own tenant", e.ctx(), &poolv1.GetUserRequest{TenantId: "acme", PoolId: "p", UserId: u.Id}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.pools.GetUser(tt.ctx, tt.req); status.Code(err) != tt.want {
				t.Fatalf("code %v, want %v", status.Code(err), tt.want)
			}
		})
	}
	if _, err := e.pools.DeleteTenantData(e.ctx(), &poolv1.DeleteTenantDataRequest{TenantId: "acme"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("DeleteTenantData with an identity token: %v", err)
	}
}

func TestDeletingATenantDeletesItsPools(t *testing.T) {
	e := start(t, testenv.SQLite)
	e.pool(t, "p", nil)
	e.user(t, "p", "jane@example.com", "")
	if code := e.CallJSON(t, "DELETE", "/api/admin/tenants/acme", e.RootToken(t), nil, nil); code != http.StatusNoContent && code != http.StatusOK {
		t.Fatalf("delete tenant: %d", code)
	}
	d, err := db.Open(context.Background(), e.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, table := range []string{"pool_pools", "pool_users", "pool_identifiers"} {
		var n int64
		if err := d.Raw("SELECT COUNT(*) FROM "+table+" WHERE tenant_id = ?", "acme").Scan(&n).Error; err != nil || n != 0 {
			t.Fatalf("%s keeps %d rows of the deleted tenant (%v)", table, n, err)
		}
	}
}

package token_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/testenv"
)

// keyRow is a stored signing key as these tests copy it.
type keyRow struct {
	TenantID         string
	ServerID         string
	ServerUID        string `gorm:"column:server_uid"`
	KID              string `gorm:"column:kid"`
	Generation       int
	Alg              string
	PublicJWK        string `gorm:"column:public_jwk"`
	SealedPrivateJWK []byte `gorm:"column:sealed_private_jwk"`
	CreatedAt        int64  `gorm:"autoCreateTime:false"`
}

func (keyRow) TableName() string { return "token_signing_keys" }

func openStore(t *testing.T, env *testenv.Env) *db.DB {
	t.Helper()
	store, err := db.Open(context.Background(), env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// verifiesAgainstJWKS reports whether tok verifies against the workspace's JWKS as served now.
func verifiesAgainstJWKS(t *testing.T, env *testenv.Env, tenant, server, tok string) bool {
	t.Helper()
	resp, err := env.HTTP.Get(env.Issuer(tenant, server) + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("JWKS of %s/%s: %d", tenant, server, resp.StatusCode)
	}
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

func TestTokensOfADeletedWorkspaceNeverVerifyAgain(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		store := openStore(t, env)
		admin := env.AdminToken(t, "acme")
		create := func() (string, string) {
			t.Helper()
			if code := env.CallJSON(t, "POST", "/api/admin/acme/servers", admin, map[string]any{"id": "shop", "grant_types": []string{"client_credentials"}}, nil); code != 201 {
				t.Fatalf("create server: %d", code)
			}
			return env.CreateClient(t, "acme", admin, map[string]any{"authorization_server_id": "shop", "grant_types": []string{"client_credentials"}})
		}
		id, secret := create()
		before := env.Token(t, "acme", "shop", id, secret)
		if !verifiesAgainstJWKS(t, env, "acme", "shop", before) {
			t.Fatal("a fresh token does not verify")
		}
		// Control: a valid token of the wrong workspace is 403 on the admin plane; a void one will be 401.
		if code := env.CallJSON(t, "GET", "/api/admin/acme/servers", before, nil, nil); code != 403 {
			t.Fatalf("admin plane with a valid workspace token: %d, want 403", code)
		}
		var survivors []keyRow
		if err := store.Where("tenant_id = ? AND server_id = ?", "acme", "shop").Find(&survivors).Error; err != nil || len(survivors) != 2 { // its current and next key
			t.Fatalf("%d keys (%v)", len(survivors), err)
		}

		if code := env.CallJSON(t, "DELETE", "/api/admin/acme/servers/shop", admin, nil, nil); code != 200 && code != 204 {
			t.Fatalf("delete server: %d", code)
		}
		// What a token request racing with the deletion could leave behind: a key of the deleted workspace
		// that outlives it.
		if err := store.Create(&survivors).Error; err != nil {
			t.Fatal(err)
		}
		id2, secret2 := create()

		if verifiesAgainstJWKS(t, env, "acme", "shop", before) {
			t.Fatal("a token of the deleted workspace verifies against the re-created one's JWKS")
		}
		if code := env.CallJSON(t, "GET", "/api/admin/acme/servers", before, nil, nil); code != 401 {
			t.Fatalf("admin plane with a token of the deleted workspace: %d, want 401", code)
		}
		after := env.Token(t, "acme", "shop", id2, secret2)
		if !verifiesAgainstJWKS(t, env, "acme", "shop", after) {
			t.Fatal("a token of the re-created workspace does not verify")
		}
		var left int64
		if err := store.Model(&keyRow{}).Where("kid = ?", survivors[0].KID).Count(&left).Error; err != nil || left != 0 {
			t.Fatalf("the deleted workspace's key is still stored (%d, %v)", left, err)
		}
	})
}

func TestTokensOfADeletedTenantNeverVerifyAgain(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		store := openStore(t, env)
		before := env.AdminToken(t, "acme")
		if code := env.CallJSON(t, "GET", "/api/admin/acme/servers", before, nil, nil); code != 200 {
			t.Fatalf("admin plane: %d", code)
		}
		var survivors []keyRow
		if err := store.Where("tenant_id = ?", "acme").Find(&survivors).Error; err != nil || len(survivors) == 0 {
			t.Fatalf("%d keys (%v)", len(survivors), err)
		}
		if code := env.CallJSON(t, "DELETE", "/api/admin/tenants/acme", env.RootToken(t), nil, nil); code != 200 && code != 204 {
			t.Fatalf("delete tenant: %d", code)
		}
		// As for a workspace: keys a racing request made for the tenant being deleted may outlive it.
		if err := store.Create(&survivors).Error; err != nil {
			t.Fatal(err)
		}
		after := env.AdminToken(t, "acme") // the same id again
		if code := env.CallJSON(t, "GET", "/api/admin/acme/servers", before, nil, nil); code != 401 {
			t.Fatalf("the deleted tenant's admin token on the re-created tenant: %d, want 401", code)
		}
		if verifiesAgainstJWKS(t, env, "acme", "admin", before) {
			t.Fatal("the deleted tenant's admin token verifies against the re-created tenant's JWKS")
		}
		if code := env.CallJSON(t, "GET", "/api/admin/acme/servers", after, nil, nil); code != 200 {
			t.Fatalf("the re-created tenant's admin token: %d", code)
		}
		var left int64
		if err := store.Model(&keyRow{}).Where("kid = ?", survivors[0].KID).Count(&left).Error; err != nil || left != 0 {
			t.Fatalf("the deleted tenant's key is still stored (%d, %v)", left, err)
		}
	})
}

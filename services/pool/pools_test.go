package pool_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/testenv"
)

func TestPoolsCreateWithSafeDefaultsAndMergeUpdates(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		p := e.mustCall(t, 201, "POST", "/pools", map[string]any{"id": "staff", "name": "Staff"})
		want := map[string]string{
			"password_policy":                    `{"capital_letters":0,"digits":0,"lowercase_letters":0,"max_length":128,"min_length":8,"special_characters":0}`,
			"lockout_policy":                     `{"block_duration":"900s","max_attempts":10}`,
			"authentication_mechanisms":          `["password"]`,
			"preferred_authentication_mechanism": `"password"`,
		}
		for field, js := range want {
			if got := jsonString(p[field]); got != js {
				t.Errorf("%s = %s, want %s", field, got, js)
			}
		}
		ps := p["password_settings"].(map[string]any)
		if ps["hashing_method"] != "argon2id" || jsonString(ps["argon2"]) != `{"iterations":2,"memory_kib":19456,"parallelism":1}` {
			t.Errorf("password_settings = %s", jsonString(ps))
		}

		// PUT merges: only the fields sent change, nested ones included.
		p = e.mustCall(t, 200, "PUT", "/pools/staff", map[string]any{"password_policy": map[string]any{"min_length": 12, "digits": 1},
			"lockout_policy": map[string]any{"max_attempts": 5}})
		if p["name"] != "Staff" || jsonString(p["password_policy"]) != `{"capital_letters":0,"digits":1,"lowercase_letters":0,"max_length":128,"min_length":12,"special_characters":0}` ||
			jsonString(p["lockout_policy"]) != `{"block_duration":"900s","max_attempts":5}` {
			t.Fatalf("after PUT: %s", jsonString(p))
		}
		p = e.mustCall(t, 200, "GET", "/pools/staff", nil)
		if p["password_policy"].(map[string]any)["min_length"] != float64(12) {
			t.Fatalf("update not visible: %s", jsonString(p))
		}
		e.mustCall(t, 409, "POST", "/pools", map[string]any{"id": "staff"})
		generated := e.mustCall(t, 201, "POST", "/pools", map[string]any{"name": "No id"})
		if id, _ := generated["id"].(string); len(id) < 16 {
			t.Fatalf("generated id %q", id)
		}
		e.mustCall(t, 404, "GET", "/pools/nope", nil)
		e.mustCall(t, 404, "PUT", "/pools/nope", map[string]any{"name": "x"})
		e.mustCall(t, 404, "DELETE", "/pools/nope", nil)
	})
}

func TestPoolsRefuseBadSettingsNamingTheField(t *testing.T) {
	e := start(t, testenv.SQLite)
	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"bad id", map[string]any{"id": "Bad Id"}, "id"},
		{"unknown payload schema", map[string]any{"payload_schema_id": "ghost"}, "payload_schema_id"},
		{"unknown metadata schema", map[string]any{"metadata_schema_id": "ghost"}, "metadata_schema_id"},
		{"unsupported mechanism", map[string]any{"authentication_mechanisms": []string{"webauthn"}}, "authentication_mechanisms"},
		{"preferred not offered", map[string]any{"preferred_authentication_mechanism": "totp"}, "preferred_authentication_mechanism"},
		{"min above max", map[string]any{"password_policy": map[string]any{"min_length": 30, "max_length": 20}}, "password_policy.min_length"},
		{"negative count", map[string]any{"password_policy": map[string]any{"digits": -1}}, "password_policy.digits"},
		{"absurd maximum", map[string]any{"password_policy": map[string]any{"max_length": 100000}}, "password_policy.max_length"},
		{"classes exceed max", map[string]any{"password_policy": map[string]any{"max_length": 4, "min_length": 4, "digits": 3, "capital_letters": 3}}, "password_policy"},
		{"unknown hashing method", map[string]any{"password_settings": map[string]any{"hashing_method": "md5"}}, "password_settings.hashing_method"},
		{"argon2 memory above budget", map[string]any{"password_settings": map[string]any{"argon2": map[string]any{"memory_kib": 4 << 20}}}, "password_settings.argon2"},
		{"bcrypt cost too low", map[string]any{"password_settings": map[string]any{"hashing_method": "bcrypt", "bcrypt": map[string]any{"cost": 4}}}, "password_settings.bcrypt"},
		{"too many attempts", map[string]any{"lockout_policy": map[string]any{"max_attempts": 5000}}, "lockout_policy.max_attempts"},
		{"block too short", map[string]any{"lockout_policy": map[string]any{"block_duration": "0.5s"}}, "lockout_policy.block_duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.call(t, "POST", "/pools", tt.body)
			if code != 400 {
				t.Fatalf("status %d: %v", code, out)
			}
			if msg, _ := out["error"].(string); !strings.Contains(msg+jsonString(out["details"]), tt.field) {
				t.Fatalf("error does not name %s: %v", tt.field, out)
			}
		})
	}
	code, out := e.call(t, "GET", "/pools", nil)
	if code != 200 || len(out["pools"].([]any)) != 0 {
		t.Fatalf("refused creates left pools: %d %v", code, out)
	}
}

func TestPoolListPagesAndDeleteRemovesUsers(t *testing.T) {
	e := start(t, testenv.SQLite)
	for _, id := range []string{"p1", "p2", "p3", "p4", "p5"} {
		e.pool(t, id, nil)
	}
	var seen []string
	token := ""
	for pages := 0; pages < 5; pages++ {
		out := e.mustCall(t, 200, "GET", "/pools?page_size=2&page_token="+token, nil)
		for _, p := range out["pools"].([]any) {
			seen = append(seen, p.(map[string]any)["id"].(string))
		}
		token, _ = out["next_page_token"].(string)
		if token == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "p1,p2,p3,p4,p5" {
		t.Fatalf("pages gave %v", seen)
	}
	uid := e.user(t, "p1", "jane@example.com", "")
	e.mustCall(t, 204, "DELETE", "/pools/p1", nil)
	e.mustCall(t, 404, "GET", "/pools/p1/users/"+uid, nil)
	e.pool(t, "p1", nil)
	e.mustCall(t, 404, "GET", "/pools/p1/users/"+uid, nil)
	// The identifier went with the pool.
	e.user(t, "p1", "jane@example.com", "")
}

// TestDeletingAPoolDuringUserCreationLeavesNoOrphans: a user is written with its pool held, so a concurrent
// delete either waits for it and removes it, or comes first and the creation finds no pool.
func TestDeletingAPoolDuringUserCreationLeavesNoOrphans(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		for round := 0; round < 4; round++ {
			e.pool(t, "p", nil)
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					code := e.CallJSON(t, "POST", "/api/identity/acme/system/pools/p/users", e.tenant.SystemToken,
						map[string]any{"identifiers": []any{ident("uid", fmt.Sprintf("r%d-u%d", round, i))}}, nil)
					if code != 201 && code != 404 {
						t.Errorf("create during delete: %d", code)
					}
				}(i)
				if i == 3 {
					wg.Add(1)
					go func() { defer wg.Done(); e.mustCall(t, 204, "DELETE", "/pools/p", nil) }()
				}
			}
			wg.Wait()
			d, err := db.Open(context.Background(), e.DatabaseURL)
			if err != nil {
				t.Fatal(err)
			}
			var users, idents int64
			d.Raw("SELECT COUNT(*) FROM pool_users WHERE tenant_id = 'acme' AND pool_id = 'p'").Scan(&users)
			d.Raw("SELECT COUNT(*) FROM pool_identifiers WHERE tenant_id = 'acme' AND pool_id = 'p'").Scan(&idents)
			d.Close()
			if users != 0 || idents != 0 {
				t.Fatalf("round %d: %d users and %d identifiers outlive their pool", round, users, idents)
			}
		}
	})
}

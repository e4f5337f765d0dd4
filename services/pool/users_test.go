package pool_test

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/authplane/authplane/pkg/testenv"
)

func ident(typ, v string) map[string]any { return map[string]any{"type": typ, "identifier": v} }

func TestUsersCreateRefusesBadInputNamingTheField(t *testing.T) {
	e := start(t, testenv.SQLite)
	e.pool(t, "p", map[string]any{"password_policy": map[string]any{"min_length": 10, "digits": 1}})
	e.user(t, "p", "taken@example.com", "")
	tests := []struct {
		name  string
		body  map[string]any
		code  int
		field string // details.field of the error, exactly; empty: the error names none
	}{
		{"unknown status", map[string]any{"status": "sleeping"}, 400, "status"},
		{"unknown identifier type", map[string]any{"identifiers": []any{ident("fax", "123")}}, 400, "identifiers[0]"},
		{"not an email", map[string]any{"identifiers": []any{ident("email", "jane.example.com")}}, 400, "identifiers[0]"},
		{"mobile not E.164", map[string]any{"identifiers": []any{ident("mobile", "555-0100")}}, 400, "identifiers[0]"},
		{"uid with a space", map[string]any{"identifiers": []any{ident("uid", "jane doe")}}, 400, "identifiers[0]"},
		{"one identifier twice", map[string]any{"identifiers": []any{ident("email", "a@example.com"), ident("email", " A@Example.COM ")}}, 400, "identifiers[1]"},
		{"taken email in another case", map[string]any{"identifiers": []any{ident("email", "TAKEN@example.com")}}, 409, ""},
		{"uid equal to a taken email", map[string]any{"identifiers": []any{ident("uid", "Taken@Example.com")}}, 409, ""},
		{"password against policy", map[string]any{"credentials": []any{map[string]any{"type": "password", "password": "no-digits-here"}}}, 400, "credentials[0].password"},
		{"two credentials", map[string]any{"credentials": []any{map[string]any{"password": "0123456789"}, map[string]any{"password": "0123456789"}}}, 400, "credentials"},
		{"password and hash", map[string]any{"credentials": []any{map[string]any{"password": "0123456789", "hashed_password": bcryptHash}}}, 400, "credentials[0]"},
		{"unknown credential type", map[string]any{"credentials": []any{map[string]any{"type": "totp"}}}, 400, "credentials[0].type"},
		{"unknown hash format", map[string]any{"credentials": []any{map[string]any{"hashed_password": "$9$not-a-real-hash"}}}, 400, "credentials[0].hashed_password"},
		{"malformed bcrypt", map[string]any{"credentials": []any{map[string]any{"hashed_password": "$2b$10$short"}}}, 400, "credentials[0].hashed_password"},
		{"bcrypt cost beyond limits", map[string]any{"credentials": []any{map[string]any{"hashed_password": "$2b$31" + bcryptHash[6:]}}}, 400, "credentials[0].hashed_password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.call(t, "POST", "/pools/p/users", tt.body)
			if code != tt.code {
				t.Fatalf("status %d, want %d: %v", code, tt.code, out)
			}
			details, _ := out["details"].(map[string]any)
			if field, _ := details["field"].(string); field != tt.field {
				t.Fatalf("details.field = %q, want %q: %v", field, tt.field, out)
			}
		})
	}
	out := e.mustCall(t, 200, "GET", "/pools/p/users", nil)
	if n := len(out["users"].([]any)); n != 1 {
		t.Fatalf("refused creates wrote users: %d users", n)
	}
	e.mustCall(t, 404, "POST", "/pools/ghost/users", map[string]any{})
}

func TestUsersLifecycle(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		e.pool(t, "p", nil)
		u := e.mustCall(t, 201, "POST", "/pools/p/users", map[string]any{
			"identifiers": []any{ident("email", "  Jane.Doe@Example.com "), ident("mobile", "+1 (415) 555-0100"), ident("uid", "JaneD")},
			"credentials": []any{map[string]any{"type": "password", "password": "correct horse"}},
			"payload":     map[string]any{"given_name": "Jane", "nested": map[string]any{"n": 1}},
			"metadata":    map[string]any{"source": "test"},
		})
		id := u["id"].(string)
		if u["status"] != "active" || u["has_password"] != true {
			t.Fatalf("created %v", u)
		}
		raw := jsonString(u)
		for _, leak := range []string{"correct horse", "argon2", "$2", "hashed_password"} {
			if strings.Contains(raw, leak) {
				t.Fatalf("response holds %q: %s", leak, raw)
			}
		}
		var shown []string
		for _, i := range u["identifiers"].([]any) {
			m := i.(map[string]any)
			shown = append(shown, m["type"].(string)+"="+m["identifier"].(string))
		}
		sort.Strings(shown)
		if strings.Join(shown, " ") != "email=Jane.Doe@Example.com mobile=+14155550100 uid=JaneD" {
			t.Fatalf("identifiers shown as %v", shown)
		}

		// PUT replaces the top-level fields it carries and leaves the others.
		u = e.mustCall(t, 200, "PUT", "/pools/p/users/"+id, map[string]any{"payload": map[string]any{"given_name": "Janet"}})
		if jsonString(u["payload"]) != `{"given_name":"Janet"}` || jsonString(u["metadata"]) != `{"source":"test"}` || u["status"] != "active" {
			t.Fatalf("after PUT payload: %s", jsonString(u))
		}
		u = e.mustCall(t, 200, "PUT", "/pools/p/users/"+id, map[string]any{"status": "inactive"})
		if u["status"] != "inactive" || jsonString(u["payload"]) != `{"given_name":"Janet"}` {
			t.Fatalf("after PUT status: %s", jsonString(u))
		}
		e.mustCall(t, 400, "PUT", "/pools/p/users/"+id, map[string]any{"status": "gone"})
		e.mustCall(t, 400, "PUT", "/pools/p/users/"+id, map[string]any{"identifiers": []any{ident("email", "x@example.com")}})
		e.mustCall(t, 400, "PUT", "/pools/p/users/"+id, map[string]any{"credentials": []any{map[string]any{"password": "x"}}})

		// Identifiers: add (unique across the pool), remove by any spelling.
		e.mustCall(t, 200, "POST", "/pools/p/users/"+id+"/identifiers/add", ident("email", "second@example.com"))
		other := e.user(t, "p", "other@example.com", "")
		e.mustCall(t, 409, "POST", "/pools/p/users/"+other+"/identifiers/add", ident("email", "SECOND@example.com"))
		e.mustCall(t, 409, "POST", "/pools/p/users/"+other+"/identifiers/add", ident("mobile", "+14155550100"))
		e.mustCall(t, 400, "POST", "/pools/p/users/"+other+"/identifiers/add", ident("pager", "1"))
		e.mustCall(t, 404, "POST", "/pools/p/users/nobody/identifiers/add", ident("uid", "free"))
		u = e.mustCall(t, 200, "POST", "/pools/p/users/"+id+"/identifiers/remove", map[string]any{"identifier": "+1 415 555 0100"})
		if strings.Contains(jsonString(u), "+14155550100") {
			t.Fatalf("mobile not removed: %s", jsonString(u))
		}
		e.mustCall(t, 404, "POST", "/pools/p/users/"+id+"/identifiers/remove", map[string]any{"identifier": "+14155550100"})
		e.mustCall(t, 200, "POST", "/pools/p/users/"+other+"/identifiers/add", ident("mobile", "+14155550100"))

		// Delete frees the identifiers.
		e.mustCall(t, 204, "DELETE", "/pools/p/users/"+id, nil)
		e.mustCall(t, 404, "GET", "/pools/p/users/"+id, nil)
		e.mustCall(t, 404, "DELETE", "/pools/p/users/"+id, nil)
		e.user(t, "p", "jane.doe@example.com", "")
	})
}

// TestConcurrentCreatesOfOneIdentifier: the database's unique key decides, so exactly one create succeeds.
func TestConcurrentCreatesOfOneIdentifier(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		e.pool(t, "p", nil)
		const n = 16
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				email := "race@example.com"
				if i%2 == 1 {
					email = "RACE@Example.COM"
				}
				codes[i] = e.CallJSON(t, "POST", "/api/identity/acme/system/pools/p/users", e.tenant.SystemToken, map[string]any{
					"identifiers": []any{ident("email", email), ident("uid", fmt.Sprintf("racer-%d", i))}}, nil)
			}(i)
		}
		wg.Wait()
		created, conflicts := 0, 0
		for _, c := range codes {
			switch c {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
				conflicts++
			}
		}
		if created != 1 || conflicts != n-1 {
			t.Fatalf("statuses %v: want one 201 and %d 409s", codes, n-1)
		}
		out := e.mustCall(t, 200, "GET", "/pools/p/users", nil)
		users := out["users"].([]any)
		if len(users) != 1 || len(users[0].(map[string]any)["identifiers"].([]any)) != 2 {
			t.Fatalf("after the race: %s", jsonString(out))
		}
	})
}

func TestUserListPagesOverAStableKey(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		e := start(t, b)
		e.pool(t, "p", nil)
		e.pool(t, "q", nil)
		const total = 57
		var want []string
		for i := 0; i < total; i++ {
			want = append(want, e.user(t, "p", fmt.Sprintf("u%d@example.com", i), ""))
		}
		sort.Strings(want)
		var got []string
		token, pages := "", 0
		for {
			out := e.mustCall(t, 200, "GET", "/pools/p/users?page_size=10&page_token="+token, nil)
			for _, u := range out["users"].([]any) {
				m := u.(map[string]any)
				got = append(got, m["id"].(string))
				if len(m["identifiers"].([]any)) != 1 {
					t.Fatalf("user without its identifier: %v", m)
				}
			}
			pages++
			token, _ = out["next_page_token"].(string)
			if token == "" {
				break
			}
			if pages == 2 {
				// Users created meanwhile do not shift the pages already read.
				e.user(t, "p", "late@example.com", "")
			}
		}
		// The late user sorts before or after the page being read (ids are random): seen once or not at all.
		if pages < 6 || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) || len(got) < total || len(got) > total+1 {
			t.Fatalf("%d pages, %d users (sorted %v)", pages, len(got), slices.IsSorted(got))
		}
		for _, id := range want {
			if !slices.Contains(got, id) {
				t.Fatalf("user %s missing from the pages", id)
			}
		}
		first := e.mustCall(t, 200, "GET", "/pools/p/users?page_size=10", nil)
		tok := first["next_page_token"].(string)
		e.mustCall(t, 400, "GET", "/pools/q/users?page_token="+tok, nil)
		e.mustCall(t, 400, "GET", "/pools/p/users?page_token=garbage", nil)
	})
}

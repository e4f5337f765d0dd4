package workspace_test

import (
	"context"
	"testing"

	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/inproc"
	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
	"github.com/authplane/authplane/services/workspace"
)

func TestMigrationGivesExistingWorkspacesAUID(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		d, err := db.Open(ctx, testenv.DatabaseURL(t, b))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		// A database as the first release left it.
		if err := d.Migrate(ctx, "workspace", workspace.FirstMigrations); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b"} {
			if err := d.Exec(`INSERT INTO workspace_servers (tenant_id, id, name, type, grant_types, access_token_ttl_ms,
				refresh_token_ttl_ms, id_token_ttl_ms, created_at, updated_at) VALUES ('acme', ?, ?, 'regular', '', 1, 1, 1, 1, 1)`, id, id).Error; err != nil {
				t.Fatal(err)
			}
		}
		deps := svc.Deps{DB: d, Bus: changes.NewMemory(), Conns: svc.Conns{Client: inproc.New(nil), Token: inproc.New(nil)}}
		uids := func() map[string]string {
			t.Helper()
			if _, err := workspace.New(ctx, deps); err != nil {
				t.Fatal(err)
			}
			var rows []struct{ TenantID, ID, UID string }
			if err := d.Raw("SELECT tenant_id, id, uid FROM workspace_servers").Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			out := map[string]string{}
			for _, r := range rows {
				if r.UID == "" {
					t.Fatalf("workspace %s/%s has no uid", r.TenantID, r.ID)
				}
				out[r.TenantID+"/"+r.ID] = r.UID
			}
			return out
		}
		first := uids()
		if len(first) != 3 || first["acme/a"] == first["acme/b"] {
			t.Fatalf("uids %v: want three distinct ones (root's admin workspace too)", first)
		}
		for k, v := range uids() {
			if first[k] != v {
				t.Fatalf("a restart changed the uid of %s: %s → %s", k, first[k], v)
			}
		}
	})
}

func TestServerUIDNamesOneIncarnation(t *testing.T) {
	env := testenv.Start(t)
	admin := env.AdminToken(t, "acme")
	type server struct {
		ID  string `json:"id"`
		UID string `json:"uid"`
	}
	call := func(method, path string, body any) server {
		t.Helper()
		var out server
		if code := env.CallJSON(t, method, "/api/admin/acme/servers"+path, admin, body, &out); code/100 != 2 {
			t.Fatalf("%s %s: %d", method, path, code)
		}
		return out
	}
	created := call("POST", "", map[string]any{"id": "shop", "uid": "chosen-by-caller"})
	if created.UID == "" || created.UID == "chosen-by-caller" {
		t.Fatalf("uid %q: want one assigned by the server", created.UID)
	}
	if got := call("PUT", "/shop", map[string]any{"name": "Shop", "uid": "changed"}); got.UID != created.UID {
		t.Fatalf("an update changed the uid: %s → %s", created.UID, got.UID)
	}
	if got := call("GET", "/shop", nil); got.UID != created.UID {
		t.Fatalf("read back uid %s, want %s", got.UID, created.UID)
	}
	call("DELETE", "/shop", nil)
	if again := call("POST", "", map[string]any{"id": "shop"}); again.UID == created.UID || again.UID == "" {
		t.Fatalf("a re-created workspace has uid %q (the deleted one had %q)", again.UID, created.UID)
	}
	builtin := call("GET", "/admin", nil)
	if builtin.UID == "" {
		t.Fatal("the built-in admin workspace has no uid")
	}
}

package db_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/testenv"
)

var conformanceMigrations = []db.Migration{
	{Version: 1, Name: "things", SQL: `
CREATE TABLE conformance_things (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  payload {{json}},
  blob {{bytes}},
  n {{bigint}} NOT NULL,
  flag {{bool}} NOT NULL DEFAULT FALSE,
  PRIMARY KEY (tenant_id, id)
)`},
	{Version: 2, Name: "index", SQL: `CREATE INDEX conformance_things_n ON conformance_things (tenant_id, n)`},
}

type thing struct {
	TenantID string `gorm:"primaryKey"`
	ID       string `gorm:"primaryKey"`
	Payload  *string
	Blob     []byte
	N        int64
	Flag     bool
}

func (thing) TableName() string { return "conformance_things" }

func open(t *testing.T, url string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestStorageConformance is the contract every backend must meet: migrations apply once (also when several
// processes start at once), conflicts are recognised, and tenant scoping never leaks rows.
func TestStorageConformance(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		url := testenv.DatabaseURL(t, b)

		t.Run("migrations are applied once, even by concurrent starters", func(t *testing.T) {
			starters := 4
			if b == testenv.SQLite {
				starters = 1 // one process owns a SQLite file
			}
			var wg sync.WaitGroup
			errs := make(chan error, starters)
			for i := 0; i < starters; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d, err := db.Open(ctx, url)
					if err != nil {
						errs <- err
						return
					}
					defer d.Close()
					errs <- d.Migrate(ctx, "conformance", conformanceMigrations)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("migrate: %v", err)
				}
			}
			d := open(t, url)
			if err := d.Migrate(ctx, "conformance", conformanceMigrations); err != nil {
				t.Fatalf("second migrate: %v", err)
			}
			var applied int64
			d.Raw("SELECT COUNT(*) FROM authplane_migrations WHERE component = ?", "conformance").Scan(&applied)
			if applied != 2 {
				t.Fatalf("applied migrations = %d, want 2", applied)
			}
		})

		d := open(t, url)
		t.Run("round trip of every column type", func(t *testing.T) {
			js := `{"a":1}`
			in := thing{TenantID: "acme", ID: "one", Payload: &js, Blob: []byte{0, 1, 2, 255}, N: 1 << 40, Flag: true}
			if err := d.WithContext(ctx).Create(&in).Error; err != nil {
				t.Fatal(err)
			}
			var out thing
			if err := db.Tenant(d.WithContext(ctx), "acme").Where("id = ?", "one").Take(&out).Error; err != nil {
				t.Fatal(err)
			}
			if string(out.Blob) != string(in.Blob) || out.N != in.N || !out.Flag || out.Payload == nil {
				t.Fatalf("round trip changed the row: %+v", out)
			}
		})

		tests := []struct {
			name   string
			tenant string
			id     string
			unique bool
		}{
			{"same key is a unique violation", "acme", "one", true},
			{"same id in another tenant is not", "globex", "one", false},
			{"another id is not", "acme", "two", false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := d.WithContext(ctx).Create(&thing{TenantID: tc.tenant, ID: tc.id}).Error
				if got := db.IsUniqueViolation(err); got != tc.unique {
					t.Fatalf("IsUniqueViolation = %v (err %v), want %v", got, err, tc.unique)
				}
			})
		}

		t.Run("tenant scoping returns only the tenant's rows", func(t *testing.T) {
			var rows []thing
			if err := db.Tenant(d.WithContext(ctx), "globex").Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || rows[0].TenantID != "globex" {
				t.Fatalf("globex sees %+v", rows)
			}
			var missing thing
			err := db.Tenant(d.WithContext(ctx), "globex").Where("id = ?", "two").Take(&missing).Error
			if !db.IsNotFound(err) {
				t.Fatalf("another tenant's row is visible: %v", err)
			}
		})
	})
}

func TestOpenRejectsUnknownURLs(t *testing.T) {
	for _, url := range []string{"mysql://x", "sqlite:", "", "postgres://u:secret@127.0.0.1:1/x?connect_timeout=1"} {
		d, err := db.Open(context.Background(), url)
		if err == nil {
			_ = d.Close()
			t.Errorf("Open(%q) succeeded", url)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open error reveals the password: %v", err)
		}
	}
}

package db

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// Migration is one versioned schema change of a component. SQL may hold several statements separated by `;`
// at line ends, and these placeholders, so one text serves both backends:
// {{bytes}} (BLOB/BYTEA), {{bigint}}, {{json}} (TEXT/JSONB), {{bool}}.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrate applies the component's migrations that are not yet applied, in version order, each in its own
// transaction with its bookkeeping row. It is safe to run twice and, on PostgreSQL, from several processes at
// once (an advisory lock serialises them).
func (d *DB) Migrate(ctx context.Context, component string, migrations []Migration) error {
	return d.SchemaTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`CREATE TABLE IF NOT EXISTS authplane_migrations (
			component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, applied_at BIGINT NOT NULL,
			PRIMARY KEY (component, version))`).Error; err != nil {
			return fmt.Errorf("create migrations table: %w", err)
		}
		var applied []int
		if err := tx.Raw("SELECT version FROM authplane_migrations WHERE component = ?", component).Scan(&applied).Error; err != nil {
			return err
		}
		done := map[int]bool{}
		for _, v := range applied {
			done[v] = true
		}
		last := 0
		for _, m := range migrations {
			if m.Version <= last {
				return fmt.Errorf("%s migrations out of order at version %d", component, m.Version)
			}
			last = m.Version
			if done[m.Version] {
				continue
			}
			for _, stmt := range splitStatements(d.render(m.SQL)) {
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("%s migration %d (%s): %w", component, m.Version, m.Name, err)
				}
			}
			if err := tx.Exec("INSERT INTO authplane_migrations (component, version, name, applied_at) VALUES (?, ?, ?, ?)",
				component, m.Version, m.Name, Now()).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// SchemaTx runs fn in a transaction that no migration and no other SchemaTx of any process runs beside: on
// PostgreSQL it holds an advisory lock; SQLite begins every transaction immediately, so writers take turns anyway.
// It is for the few changes that must see the database as a whole, such as writing the keys of a new database.
func (d *DB) SchemaTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return d.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if d.Dialect == Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(7264010532)").Error; err != nil {
				return fmt.Errorf("schema lock: %w", err)
			}
		}
		return fn(tx)
	})
}

// Components lists the components with migrations applied here (none in an empty database).
func (d *DB) Components(ctx context.Context) ([]string, error) {
	if !d.WithContext(ctx).Migrator().HasTable("authplane_migrations") {
		return nil, nil
	}
	var names []string
	err := d.WithContext(ctx).Raw("SELECT DISTINCT component FROM authplane_migrations ORDER BY component").Scan(&names).Error
	return names, err
}

func (d *DB) render(sql string) string {
	r := map[Dialect]*strings.Replacer{
		SQLite:   strings.NewReplacer("{{bytes}}", "BLOB", "{{bigint}}", "INTEGER", "{{json}}", "TEXT", "{{bool}}", "BOOLEAN"),
		Postgres: strings.NewReplacer("{{bytes}}", "BYTEA", "{{bigint}}", "BIGINT", "{{json}}", "JSONB", "{{bool}}", "BOOLEAN"),
	}[d.Dialect]
	return r.Replace(sql)
}

func splitStatements(sql string) []string {
	var out []string
	for _, s := range strings.Split(sql, ";\n") {
		if s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), ";")); s != "" {
			out = append(out, s)
		}
	}
	return out
}

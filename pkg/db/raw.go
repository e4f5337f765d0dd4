package db

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// Raw SQL for the few statements on hot paths (refresh-token rotation), where gorm's reflection and its habit of
// preparing a statement again in every transaction cost more than the statement itself. A Stmt is prepared once,
// outside any transaction, so database/sql keeps one prepared statement per connection and reuses it inside
// transactions too. Queries are written with `?` placeholders, rewritten to `$n` for PostgreSQL.

// Stmt is a statement prepared for the process's lifetime.
type Stmt struct{ *sql.Stmt }

// Prepare prepares query (with `?` placeholders) on the pool.
func (d *DB) Prepare(ctx context.Context, query string) (*Stmt, error) {
	pool, err := d.DB.DB()
	if err != nil {
		return nil, err
	}
	st, err := pool.PrepareContext(ctx, d.rebind(query))
	if err != nil {
		return nil, err
	}
	return &Stmt{st}, nil
}

// RawTx runs fn in one transaction of the pool (SQLite's begin immediately, as every transaction here does),
// committed when fn returns nil and rolled back otherwise.
func (d *DB) RawTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	pool, err := d.DB.DB()
	if err != nil {
		return err
	}
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// rebind rewrites `?` placeholders as `$1`, `$2`… for PostgreSQL (queries here hold no `?` in literals).
func (d *DB) rebind(query string) string {
	if d.Dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

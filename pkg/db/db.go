// Package db opens the one database a process uses (embedded SQLite or PostgreSQL) through gorm, applies each
// service's versioned migrations, and holds the helpers every store shares: tenant scoping and error mapping.
package db

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3", pure Go
	"github.com/ncruces/go-sqlite3/gormlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the backend.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open database.
type DB struct {
	*gorm.DB
	Dialect Dialect
	// URL is the configured URL (for components that open their own connection, such as LISTEN).
	URL string
	// Path is the SQLite file, empty for PostgreSQL.
	Path string
}

// Open opens `sqlite:PATH` (pure Go, WAL, busy timeout) or `postgres://…`.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg := &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true, PrepareStmt: true}
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		g, err := gorm.Open(postgres.Open(url), cfg)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		sqlDB, err := g.DB()
		if err != nil {
			return nil, err
		}
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(20)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
		if err := sqlDB.PingContext(ctx); err != nil {
			return nil, fmt.Errorf("reach postgres: %w", err)
		}
		return &DB{DB: g, Dialect: Postgres, URL: url}, nil
	case strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(url, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return nil, errors.New("sqlite URL needs a file path: sqlite:PATH")
		}
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		g, err := gorm.Open(gormlite.Open(dsn), cfg)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		sqlDB, err := g.DB()
		if err != nil {
			return nil, err
		}
		// One writer at a time is SQLite's model; a small pool lets readers proceed under WAL.
		sqlDB.SetMaxOpenConns(8)
		if err := sqlDB.PingContext(ctx); err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		return &DB{DB: g, Dialect: SQLite, URL: url, Path: path}, nil
	default:
		return nil, fmt.Errorf("unsupported database URL %q: use sqlite:PATH or postgres://…", redact(url))
	}
}

// Name is the database's URL without its credentials, for messages.
func (d *DB) Name() string { return redact(d.URL) }

func redact(url string) string {
	if i := strings.Index(url, "@"); i > 0 {
		if j := strings.Index(url, "://"); j > 0 && j < i {
			return url[:j+3] + "…" + url[i:]
		}
	}
	return url
}

// Close closes the pool.
func (d *DB) Close() error {
	sqlDB, err := d.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping reports whether the database answers (for /readyz).
func (d *DB) Ping(ctx context.Context) error {
	sqlDB, err := d.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Tenant scopes a query to one tenant. Every store goes through it for tenant-owned tables.
func Tenant(tx *gorm.DB, tenantID string) *gorm.DB {
	return tx.Where("tenant_id = ?", tenantID)
}

// IsUniqueViolation reports a unique or primary key conflict on either backend.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "constraint failed: UNIQUE")
}

// IsNotFound reports gorm's record-not-found.
func IsNotFound(err error) bool { return errors.Is(err, gorm.ErrRecordNotFound) }

// Now is the time stored in rows: Unix microseconds, the same on both backends.
func Now() int64 { return time.Now().UnixMicro() }

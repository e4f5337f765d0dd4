package db_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/ncruces/go-sqlite3/gormlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/testenv"
)

type unreachableThing struct{ ID string }

func (unreachableThing) TableName() string { return "unreachable_things" }

// closedPortURL is a PostgreSQL URL whose port nobody listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "postgres://postgres@" + addr + "/postgres?sslmode=disable&connect_timeout=5"
}

// TestPostgresOutageErrorsAreUnreachable drives the real driver into each way of losing the database and into
// ordinary statement errors, and checks that only the first are told "unreachable" (and so become 503s).
func TestPostgresOutageErrorsAreUnreachable(t *testing.T) {
	ctx := context.Background()
	url := testenv.DatabaseURL(t, testenv.Postgres)
	d := open(t, url)
	if err := d.Exec(`CREATE TABLE unreachable_things (id TEXT PRIMARY KEY)`).Error; err != nil {
		t.Fatal(err)
	}
	if err := d.Exec(`INSERT INTO unreachable_things (id) VALUES ('a')`).Error; err != nil {
		t.Fatal(err)
	}

	_, refused := db.Open(ctx, closedPortURL(t))
	_, refusedPgx := pgx.Connect(ctx, closedPortURL(t))

	// A backend ended by the server (as on a restart or failover): its next statement fails.
	sqlDB, err := d.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if err := d.Exec("SELECT pg_terminate_backend(?)", pid).Error; err != nil {
		t.Fatal(err)
	}
	_, terminated := conn.ExecContext(ctx, "SELECT 1")

	canceledCtx, cancel := context.WithCancel(ctx)
	cancel()
	cases := []struct {
		name        string
		err         error
		unreachable bool
	}{
		{"connection refused (through db.Open)", refused, true},
		{"connection refused (pgx)", refusedPgx, true},
		{"backend terminated under the statement", terminated, true},
		{"wrapped by a store", fmt.Errorf("insert client: %w", refused), true},
		{"unique violation", d.Exec(`INSERT INTO unreachable_things (id) VALUES ('a')`).Error, false},
		{"syntax error", d.Exec(`SELEKT 1`).Error, false},
		{"NUL byte in a value", d.Exec(`INSERT INTO unreachable_things (id) VALUES (?)`, "a\x00b").Error, false},
		{"record not found", d.Where("id = ?", "nope").Take(&unreachableThing{}).Error, false},
		{"the caller went away", d.WithContext(canceledCtx).Exec(`SELECT 1`).Error, false},
		{"a plain error", errors.New("boom"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("the driver returned no error")
			}
			if got := db.IsUnreachable(tc.err); got != tc.unreachable {
				t.Fatalf("IsUnreachable(%v) = %v, want %v", tc.err, got, tc.unreachable)
			}
			wantKind := apierr.KindInternal
			if tc.unreachable {
				wantKind = apierr.KindUnavailable
			}
			if w := apierr.Wrap(tc.err, "x"); w.Kind != wantKind {
				t.Fatalf("apierr.Wrap kind = %v, want %v (the classifier is registered by importing pkg/db)", w.Kind, wantKind)
			}
		})
	}
}

// TestSQLiteLockedFileIsUnreachable: a write that cannot take the file's lock is an outage (SQLITE_BUSY), a
// constraint violation is not.
func TestSQLiteLockedFileIsUnreachable(t *testing.T) {
	path := t.TempDir() + "/locked.db"
	holder := open(t, "sqlite:"+path)
	if err := holder.Exec(`CREATE TABLE things (id TEXT PRIMARY KEY)`).Error; err != nil {
		t.Fatal(err)
	}
	if err := holder.Exec(`INSERT INTO things (id) VALUES ('a')`).Error; err != nil {
		t.Fatal(err)
	}
	unique := holder.Exec(`INSERT INTO things (id) VALUES ('a')`).Error

	tx := holder.Begin()
	if err := tx.Exec(`INSERT INTO things (id) VALUES ('b')`).Error; err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// A second connection that does not wait for the lock (db.Open waits 10 s, which would only slow the test).
	impatient, err := gorm.Open(gormlite.Open("file:"+path+"?_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := impatient.DB(); err == nil {
		defer sqlDB.Close()
	}
	busy := impatient.Exec(`INSERT INTO things (id) VALUES ('c')`).Error
	if busy == nil || !strings.Contains(strings.ToLower(busy.Error()), "locked") {
		t.Fatalf("the second writer got %v, want SQLITE_BUSY", busy)
	}
	if !db.IsUnreachable(busy) {
		t.Fatalf("IsUnreachable(%v) = false, want true", busy)
	}
	if unique == nil || db.IsUnreachable(unique) {
		t.Fatalf("IsUnreachable(%v) = true, want false", unique)
	}
}

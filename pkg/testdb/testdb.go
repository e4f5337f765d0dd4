// Package testdb makes fresh, empty databases for tests: a SQLite file, or a PostgreSQL database dropped when the
// test ends. It imports no service, so a service's own (internal) tests can use it where pkg/testenv, which starts
// every service, would be an import cycle.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresAdminURL is the server tests create their databases on (AUTHPLANE_TEST_POSTGRES_URL).
func PostgresAdminURL() string {
	if u := os.Getenv("AUTHPLANE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// SQLite returns the URL of a fresh SQLite file in the test's temporary directory.
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite:" + t.TempDir() + "/authplane.db"
}

// Postgres returns the URL of a fresh PostgreSQL database, dropped when the test ends. When no server answers it
// skips the test, unless AUTHPLANE_TEST_POSTGRES_REQUIRED is set (as CI does), where it fails it.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		if os.Getenv("AUTHPLANE_TEST_POSTGRES_REQUIRED") != "" {
			t.Fatalf("PostgreSQL is required but unreachable at %s: %v", admin, err)
		}
		t.Skipf("PostgreSQL unreachable at %s (set AUTHPLANE_TEST_POSTGRES_URL): %v", admin, err)
	}
	defer conn.Close(context.Background())
	name := "authplane_test_" + randomHex(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	return replaceDatabase(admin, name)
}

func replaceDatabase(url, name string) string {
	base, query, _ := strings.Cut(url, "?")
	i := strings.LastIndex(base, "/")
	if i < len("postgres://") {
		base += "/" + name
	} else {
		base = base[:i+1] + name
	}
	if query != "" {
		return base + "?" + query
	}
	return base
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

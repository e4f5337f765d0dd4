package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ncruces/go-sqlite3"

	"github.com/authplane/authplane/pkg/apierr"
)

// Every error a service wraps with apierr.Wrap, or returns raw, is told apart here: an outage of the database
// becomes Unavailable (503, retry), anything else stays Internal (500, a bug).
func init() { apierr.RegisterUnreachable(IsUnreachable) }

// IsUnreachable reports errors that mean the database cannot be reached now, as opposed to a refused statement:
// no connection could be made (refused, reset, timed out while dialing, too many clients), a connection was lost
// or closed under the statement, the server is shutting down or starting, or SQLite's file stayed locked for the
// whole busy timeout. The pool reconnects by itself, so these pass once the database is back.
func IsUnreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) { // the caller gave up: not the database's doing
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return unreachableSQLState(pgErr.Code)
	}
	var sqliteErr *sqlite3.Error
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() { // the primary code, whatever the extended one (SQLITE_BUSY_SNAPSHOT…)
		case sqlite3.BUSY, sqlite3.LOCKED:
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), // dialing, TLS, authentication or startup failed (a dial deadline included)
		errors.As(err, &netErr), // refused, reset, broken pipe, DNS, I/O timeout
		pgconn.Timeout(err),     // the server did not answer before the statement's deadline
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF): // the server went away mid-answer
		return true
	}
	return false
}

// unreachableSQLState: class 08 (connection exception), 57P01–57P03 (admin shutdown, crash shutdown, cannot
// connect now) and 53300 (too many connections).
func unreachableSQLState(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"):
		return true
	case code == "57P01", code == "57P02", code == "57P03", code == "53300":
		return true
	}
	return false
}

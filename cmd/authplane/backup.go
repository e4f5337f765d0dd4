package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3", to check the copy

	"github.com/authplane/authplane/pkg/db"
)

// backup copies the database a server uses (AUTHPLANE_DATABASE_URL, as `serve` reads it) to a file while the
// server runs: SQLite with VACUUM INTO, PostgreSQL with pg_dump.
func backup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("backup", flag.ContinueOnError)
	fset.SetOutput(stderr)
	databaseURL := getenv("AUTHPLANE_DATABASE_URL")
	if databaseURL == "" {
		databaseURL = "sqlite:authplane.db"
	}
	to := fset.String("to", "", "file to write the backup to; it must not exist (required)")
	fset.StringVar(&databaseURL, "database-url", databaseURL, "database to back up, as for serve (AUTHPLANE_DATABASE_URL)")
	pgDump := fset.String("pg-dump", "pg_dump", "pg_dump to run for a PostgreSQL database (of the server's major version or newer)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *to == "" || fset.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: authplane backup --to FILE [--database-url URL]")
		return 2
	}
	if _, err := os.Lstat(*to); err == nil {
		fmt.Fprintf(stderr, "authplane: %s exists; a backup never overwrites a file\n", *to)
		return 1
	}
	var err error
	switch {
	case strings.HasPrefix(databaseURL, "sqlite:"):
		err = backupSQLite(ctx, databaseURL, *to, getenv("AUTHPLANE_MASTER_KEY") != "", stdout)
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		err = backupPostgres(ctx, databaseURL, *to, *pgDump, stdout, stderr)
	default:
		err = errors.New("unsupported database URL: use sqlite:PATH or postgres://…")
	}
	if err != nil {
		fmt.Fprintln(stderr, "authplane: backup failed:", err)
		return 1
	}
	return 0
}

// backupSQLite writes a consistent copy with VACUUM INTO: one read transaction, so that under WAL the server's
// writers go on while it runs. The copy is written beside the destination, synced, checked and then renamed,
// so that the destination is either a whole backup or absent. A master key kept beside the database (no
// AUTHPLANE_MASTER_KEY) is copied beside the backup: without it the backup's signing keys and client secrets
// cannot be used.
func backupSQLite(ctx context.Context, databaseURL, dest string, keyConfigured bool, stdout io.Writer) error {
	path := strings.TrimPrefix(strings.TrimPrefix(databaseURL, "sqlite:"), "//")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no database at %s: %w", path, err)
	}
	d, err := db.Open(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer d.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*.partial")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	tmp.Close() // VACUUM INTO writes into an empty file
	done := false
	defer func() {
		if !done {
			os.Remove(tmpName)
		}
	}()
	if err := d.WithContext(ctx).Exec("VACUUM INTO ?", tmpName).Error; err != nil {
		return fmt.Errorf("VACUUM INTO: %w", err)
	}
	if err := syncFile(tmpName); err != nil { // SQLite does not sync what VACUUM INTO writes
		return err
	}
	if err := integrityCheck(ctx, tmpName); err != nil {
		return err
	}
	if err := os.Rename(tmpName, dest); err != nil {
		return err
	}
	done = true
	st, err := os.Stat(dest)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s (%d bytes)\n", path, dest, st.Size())
	if keyConfigured {
		fmt.Fprintln(stdout, "the master key is AUTHPLANE_MASTER_KEY: restore with the same one")
		return nil
	}
	switch err := copyNew(path+".key", dest+".key"); {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stdout, "no master key at %s.key and AUTHPLANE_MASTER_KEY is unset: restore with the key the server uses\n", path)
	case err != nil:
		return fmt.Errorf("copy the master key: %w", err)
	default:
		fmt.Fprintf(stdout, "copied the master key %s.key to %s.key: keep it as safe as the database\n", path, dest)
	}
	return nil
}

func integrityCheck(ctx context.Context, path string) error {
	c, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer c.Close()
	var result string
	if err := c.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&result); err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("the copy fails its integrity check: %s", result)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// copyNew copies src to dst (mode 0600), which must not exist.
func copyNew(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// backupPostgres runs pg_dump (custom format, for pg_restore) when it can be found, or says what to run where it
// can. The password, if the URL has one, goes to pg_dump in PGPASSWORD rather than on its command line, where
// every user of the machine could read it.
func backupPostgres(ctx context.Context, databaseURL, dest, pgDump string, stdout, stderr io.Writer) error {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return errors.New("the database URL does not parse")
	}
	env := os.Environ()
	if pw, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+pw)
		u.User = url.User(u.User.Username())
	}
	bin, err := exec.LookPath(pgDump)
	if err != nil {
		fmt.Fprintf(stderr, "%s is not on PATH (--pg-dump names another); run a pg_dump of the server's major version or newer where there is one:\n  pg_dump --format=custom --dbname=%s --file=%s\n",
			pgDump, shellQuote(u.String()), shellQuote(dest))
		return fmt.Errorf("no %s", pgDump)
	}
	dumpArgs := []string{"--format=custom", "--no-password", "--dbname=" + u.String()}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*.partial")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	tmp.Close()
	cmd := exec.CommandContext(ctx, bin, append(dumpArgs, "--file="+tmpName)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, stderr, stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("pg_dump: %w", err)
	}
	if err := syncFile(tmpName); err != nil {
		os.Remove(tmpName)
		return err
	}
	if err := os.Rename(tmpName, dest); err != nil {
		os.Remove(tmpName)
		return err
	}
	st, err := os.Stat(dest)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s with pg_dump (%d bytes; restore with pg_restore, the same AUTHPLANE_MASTER_KEY)\n", u.Redacted(), dest, st.Size())
	return nil
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain characters.
func shellQuote(s string) string {
	if strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

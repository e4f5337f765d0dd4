package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/authplane/authplane/pkg/config"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/keystore"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/services/token"
)

// MasterKeys reads the configured master key and the previous ones. d is the process's database (nil without
// one); when mayCreate is set and d is new, SQLite may make the key file beside it.
func MasterKeys(ctx context.Context, cfg *config.Config, d *db.DB, mayCreate bool) (keystore.MasterKeys, error) {
	path, isNew := "", false
	if d != nil {
		components, err := d.Components(ctx)
		if err != nil {
			return keystore.MasterKeys{}, fmt.Errorf("read %s: %w", d.Name(), err)
		}
		path, isNew = d.Path, mayCreate && len(components) == 0
	}
	raw, err := cfg.MasterKey(path, isNew)
	if err != nil {
		return keystore.MasterKeys{}, err
	}
	var keys keystore.MasterKeys
	if keys.Current, err = secrets.NewMasterKey(raw); err != nil {
		return keystore.MasterKeys{}, err
	}
	previous, err := cfg.PreviousMasterKeys()
	if err != nil {
		return keystore.MasterKeys{}, err
	}
	for _, p := range previous {
		m, err := secrets.NewMasterKey(p)
		if err != nil {
			return keystore.MasterKeys{}, err
		}
		if m.ID() != keys.Current.ID() {
			keys.Previous = append(keys.Previous, m)
		}
	}
	return keys, nil
}

// MasterKeyReport is what `authplane master-key check` and `rotate` found and did.
type MasterKeyReport struct {
	Database string
	// Current and Previous are the ids of the configured master keys.
	Current  string
	Previous []string
	// Stored describes the rows stored now.
	Stored []keystore.StoredKey
	// Rotation is what a rotation did (nil for a check).
	Rotation *keystore.Rotation
}

// ErrNoData is a database that holds nothing of the platform's, most likely not the one meant.
var ErrNoData = errors.New("holds no authplane data")

// CheckMasterKey reports whether the configured master keys open the keys stored in the configured database,
// writing nothing.
func CheckMasterKey(ctx context.Context, cfg *config.Config) (*MasterKeyReport, error) {
	return withStoredKeys(ctx, cfg, func(d *db.DB, keys keystore.MasterKeys, r *MasterKeyReport) error {
		var err error
		r.Stored, err = keystore.Inspect(ctx, d, keys)
		return err
	})
}

// RotateMasterKey re-wraps every key stored in the configured database under AUTHPLANE_MASTER_KEY (see
// keystore.Rotate); it is safe to run again, and while servers run.
func RotateMasterKey(ctx context.Context, cfg *config.Config) (*MasterKeyReport, error) {
	return withStoredKeys(ctx, cfg, func(d *db.DB, keys keystore.MasterKeys, r *MasterKeyReport) error {
		var err error
		if r.Rotation, err = keystore.Rotate(ctx, d, keys, token.OpensNewestSigningKey); err != nil {
			return err
		}
		r.Stored, err = keystore.Inspect(ctx, d, keys)
		return err
	})
}

// withStoredKeys opens the configured database, which must exist and hold the platform's data, reads the master
// keys (never making a key file) and runs fn.
func withStoredKeys(ctx context.Context, cfg *config.Config, fn func(*db.DB, keystore.MasterKeys, *MasterKeyReport) error) (*MasterKeyReport, error) {
	if path, ok := strings.CutPrefix(cfg.DatabaseURL, "sqlite:"); ok && !cfg.IsPostgres() {
		if _, err := os.Stat(strings.TrimPrefix(path, "//")); err != nil {
			return nil, fmt.Errorf("no database at %s (AUTHPLANE_DATABASE_URL): %w", cfg.DatabaseURL, err)
		}
	}
	d, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	components, err := d.Components(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.Name(), err)
	}
	if len(components) == 0 {
		return nil, fmt.Errorf("%s %w (is AUTHPLANE_DATABASE_URL right?)", d.Name(), ErrNoData)
	}
	keys, err := MasterKeys(ctx, cfg, d, false)
	if err != nil {
		return nil, err
	}
	r := &MasterKeyReport{Database: d.Name(), Current: keys.Current.ID()}
	for _, p := range keys.Previous {
		r.Previous = append(r.Previous, p.ID())
	}
	if err := fn(d, keys, r); err != nil {
		return nil, err
	}
	return r, nil
}

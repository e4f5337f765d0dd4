// Package keystore keeps a database's data keys — the key of client-secret and refresh-token hashes, the key
// external verifiers' secrets are derived from, and the key that seals signing keys — wrapped under the master key
// in the table authplane_keys, with a check value written beside them. A process proves at start that its master
// key opens them and refuses to start otherwise, instead of failing request by request. A new master key only
// re-wraps these few rows (Rotate): nothing hashed, sealed or derived under the data keys changes, so client
// secrets, refresh tokens, signing keys and the secrets handed to external verifiers' owners all stay valid.
//
// A database made before the keystore used data keys derived from its master key with HKDF; it gets exactly those,
// stored like any other, so its data keeps working. A new database gets random data keys, so no master key, the
// first one included, can derive them once it has been rotated away.
package keystore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/secrets"
)

const component = "keystore"

var migrations = []db.Migration{
	// One row per data key (and the check value): which master key wraps it, and whether it was made for this
	// database (random) or derived from the master key of a database made before the keystore (derived).
	{Version: 1, Name: "data keys wrapped under the master key", SQL: `
CREATE TABLE authplane_keys (
  purpose TEXT NOT NULL,
  version INTEGER NOT NULL,
  origin TEXT NOT NULL,
  master_key_id TEXT NOT NULL,
  wrapped {{bytes}} NOT NULL,
  created_at {{bigint}} NOT NULL,
  wrapped_at {{bigint}} NOT NULL,
  PRIMARY KEY (purpose, version)
)`},
}

// Purposes of the stored rows.
const (
	PurposeCheck          = "check"
	PurposeSecretHash     = "client-secret-hash"
	PurposeDerivedSecrets = "derived-secrets"
	PurposeSigningKeySeal = "signing-key-seal"
)

// Origins of data keys.
const (
	OriginRandom  = "random"
	OriginDerived = "derived"
)

// dataKeys maps the stored purposes to the keyring's keys.
var dataKeys = []struct {
	purpose string
	field   func(*secrets.DataKeys) *[]byte
}{
	{PurposeSecretHash, func(k *secrets.DataKeys) *[]byte { return &k.SecretHash }},
	{PurposeDerivedSecrets, func(k *secrets.DataKeys) *[]byte { return &k.DerivedSecrets }},
	{PurposeSigningKeySeal, func(k *secrets.DataKeys) *[]byte { return &k.SigningKeySeal }},
}

// checkValue is the check row's plaintext: a master key that unwraps it to this is the key the database expects.
var checkValue = []byte("authplane master key check v1")

// keyVersion is the version of every data key written today; a later data-key rotation would add versions.
const keyVersion = 1

type row struct {
	Purpose     string `gorm:"primaryKey"`
	Version     int    `gorm:"primaryKey"`
	Origin      string
	MasterKeyID string
	Wrapped     []byte
	CreatedAt   int64 `gorm:"autoCreateTime:false"`
	WrappedAt   int64
}

func (row) TableName() string { return "authplane_keys" }

// aad binds a wrapped key to its purpose and version, so rows cannot be swapped.
func aad(purpose string, version int) []byte {
	return []byte("authplane keystore v1\x00" + purpose + "\x00" + strconv.Itoa(version))
}

// MasterKeys are AUTHPLANE_MASTER_KEY and the earlier keys still accepted (AUTHPLANE_PREVIOUS_MASTER_KEYS).
type MasterKeys struct {
	Current  *secrets.MasterKey
	Previous []*secrets.MasterKey
}

func (k MasterKeys) byID(id string) *secrets.MasterKey {
	for _, m := range append([]*secrets.MasterKey{k.Current}, k.Previous...) {
		if m.ID() == id {
			return m
		}
	}
	return nil
}

// LegacyCheck tells whether the data a database holds from before the keystore opens with keyring k (the one
// derived from a candidate master key); found is false when it holds nothing to check.
type LegacyCheck func(ctx context.Context, d *db.DB, k *secrets.Keyring) (found, opens bool, err error)

// StoredKey describes one stored row.
type StoredKey struct {
	Purpose     string
	Version     int
	Origin      string
	MasterKeyID string
}

// Open proves that the master keys open the data keys stored in d and returns their keyring. A database without
// stored keys gets them first (see the package comment); legacy tells which master key made one that holds data
// from before. The error of a master key that opens nothing stored is a *WrongKeyError.
func Open(ctx context.Context, d *db.DB, keys MasterKeys, legacy LegacyCheck) (*secrets.Keyring, error) {
	k, _, err := open(ctx, d, keys, legacy)
	return k, err
}

func open(ctx context.Context, d *db.DB, keys MasterKeys, legacy LegacyCheck) (*secrets.Keyring, []StoredKey, error) {
	if err := d.Migrate(ctx, component, migrations); err != nil {
		return nil, nil, err
	}
	rows, err := load(d.WithContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	var created []StoredKey
	if len(rows) == 0 {
		// Processes starting at once on a new database take turns here: the first writes, the others read.
		err := d.SchemaTx(ctx, func(tx *gorm.DB) error {
			if rows, err = load(tx); err != nil || len(rows) > 0 {
				return err
			}
			rows, err = create(ctx, d, tx, keys, legacy)
			created = describe(rows)
			return err
		})
		if err != nil {
			return nil, nil, err
		}
	}
	k, err := unwrap(d, rows, keys)
	return k, created, err
}

// Inspect checks, as Open does, that the master keys open what d stores, without writing anything; it describes
// the stored rows (none when the database has no stored keys yet).
func Inspect(ctx context.Context, d *db.DB, keys MasterKeys) ([]StoredKey, error) {
	if !d.WithContext(ctx).Migrator().HasTable(row{}.TableName()) {
		return nil, nil
	}
	rows, err := load(d.WithContext(ctx))
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	if _, err := unwrap(d, rows, keys); err != nil {
		return nil, err
	}
	return describe(rows), nil
}

func load(tx *gorm.DB) ([]row, error) {
	var rows []row
	if err := tx.Order("purpose, version").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read the stored keys: %w", err)
	}
	return rows, nil
}

func describe(rows []row) []StoredKey {
	out := make([]StoredKey, len(rows))
	for i, r := range rows {
		out[i] = StoredKey{Purpose: r.Purpose, Version: r.Version, Origin: r.Origin, MasterKeyID: r.MasterKeyID}
	}
	return out
}

// create writes the check value and the data keys of a database that has none, wrapped under the current key.
func create(ctx context.Context, d *db.DB, tx *gorm.DB, keys MasterKeys, legacy LegacyCheck) ([]row, error) {
	components, err := d.Components(ctx)
	if err != nil {
		return nil, err
	}
	data, origin := secrets.NewDataKeys(), OriginRandom
	if slices.ContainsFunc(components, func(c string) bool { return c != component }) {
		made, err := legacyMaster(ctx, d, keys, legacy)
		if err != nil {
			return nil, err
		}
		data, origin = made.DerivedDataKeys(), OriginDerived
	}
	now := db.Now()
	rows := []row{{Purpose: PurposeCheck, Version: keyVersion, Origin: OriginRandom, MasterKeyID: keys.Current.ID(),
		Wrapped: keys.Current.Wrap(checkValue, aad(PurposeCheck, keyVersion)), CreatedAt: now, WrappedAt: now}}
	for _, dk := range dataKeys {
		rows = append(rows, row{Purpose: dk.purpose, Version: keyVersion, Origin: origin, MasterKeyID: keys.Current.ID(),
			Wrapped: keys.Current.Wrap(*dk.field(&data), aad(dk.purpose, keyVersion)), CreatedAt: now, WrappedAt: now})
	}
	if err := tx.Create(&rows).Error; err != nil {
		return nil, fmt.Errorf("store the keys: %w", err)
	}
	return rows, nil
}

// legacyMaster finds which configured master key made a database that holds data from before the keystore: the
// one whose derived keys open that data. With nothing to check, it can only be AUTHPLANE_MASTER_KEY given alone.
func legacyMaster(ctx context.Context, d *db.DB, keys MasterKeys, legacy LegacyCheck) (*secrets.MasterKey, error) {
	candidates := append([]*secrets.MasterKey{keys.Current}, keys.Previous...)
	if legacy != nil {
		for _, m := range candidates {
			found, opens, err := legacy(ctx, d, m.DerivedKeyring())
			if err != nil {
				return nil, err
			}
			if !found {
				break
			}
			if opens {
				return m, nil
			}
			if m == candidates[len(candidates)-1] {
				return nil, &WrongKeyError{msg: fmt.Sprintf("%s the signing keys stored in %s, which was set up before master "+
					"keys were checked at start: %s (%s). Start with the key this database was set up with, or with the new key "+
					"in AUTHPLANE_MASTER_KEY and the old one in AUTHPLANE_PREVIOUS_MASTER_KEYS to rotate", doesNotOpen(keys), d.Name(), notTheKey(keys), ids(keys))}
			}
		}
	}
	if len(keys.Previous) > 0 {
		return nil, &WrongKeyError{msg: fmt.Sprintf("%s was set up before master keys were checked at start and holds no signing key "+
			"that tells which of AUTHPLANE_MASTER_KEY and AUTHPLANE_PREVIOUS_MASTER_KEYS it was set up with. Start once with "+
			"that key alone in AUTHPLANE_MASTER_KEY, then rotate", d.Name())}
	}
	return keys.Current, nil
}

// unwrap opens the check value and the data keys; the newest version of each data key makes the keyring.
func unwrap(d *db.DB, rows []row, keys MasterKeys) (*secrets.Keyring, error) {
	damaged := func(what string) error {
		return fmt.Errorf("the keys stored in %s are damaged (%s): restore the table authplane_keys from a backup", d.Name(), what)
	}
	i := slices.IndexFunc(rows, func(r row) bool { return r.Purpose == PurposeCheck })
	if i < 0 {
		return nil, damaged("no check value")
	}
	check := rows[i]
	m := keys.byID(check.MasterKeyID)
	if m == nil {
		return nil, wrongKey(d, keys, check.MasterKeyID)
	}
	if plain, err := m.Unwrap(check.Wrapped, aad(check.Purpose, check.Version)); err != nil || string(plain) != string(checkValue) {
		return nil, damaged("the check value does not open under the master key it names")
	}
	var data secrets.DataKeys
	for _, dk := range dataKeys {
		var newest *row
		for j := range rows {
			if rows[j].Purpose == dk.purpose && (newest == nil || rows[j].Version > newest.Version) {
				newest = &rows[j]
			}
		}
		if newest == nil {
			return nil, damaged("no " + dk.purpose + " key")
		}
		plain, err := unwrapRow(d, *newest, keys)
		if err != nil {
			return nil, err
		}
		*dk.field(&data) = plain
	}
	k, err := secrets.NewKeyringOf(data)
	if err != nil {
		return nil, damaged(err.Error())
	}
	return k, nil
}

func unwrapRow(d *db.DB, r row, keys MasterKeys) ([]byte, error) {
	m := keys.byID(r.MasterKeyID)
	if m == nil {
		return nil, wrongKey(d, keys, r.MasterKeyID)
	}
	plain, err := m.Unwrap(r.Wrapped, aad(r.Purpose, r.Version))
	if err != nil {
		return nil, fmt.Errorf("the keys stored in %s are damaged (%s v%d does not open under the master key it names): restore the table authplane_keys from a backup", d.Name(), r.Purpose, r.Version)
	}
	return plain, nil
}

// WrongKeyError is a master key (with the previous ones) that opens nothing a database stores.
type WrongKeyError struct{ msg string }

func (e *WrongKeyError) Error() string { return e.msg }

// IsWrongKey reports a *WrongKeyError.
func IsWrongKey(err error) bool {
	var w *WrongKeyError
	return errors.As(err, &w)
}

func wrongKey(d *db.DB, keys MasterKeys, storedID string) error {
	return &WrongKeyError{msg: fmt.Sprintf("%s the keys stored in %s: %s (they are wrapped under master key %s; %s). "+
		"Start with the right key, or with the new key in AUTHPLANE_MASTER_KEY and the old one in "+
		"AUTHPLANE_PREVIOUS_MASTER_KEYS to rotate", doesNotOpen(keys), d.Name(), notTheKey(keys), storedID, ids(keys))}
}

func doesNotOpen(keys MasterKeys) string {
	if len(keys.Previous) == 0 {
		return "AUTHPLANE_MASTER_KEY does not open"
	}
	return "neither AUTHPLANE_MASTER_KEY nor AUTHPLANE_PREVIOUS_MASTER_KEYS opens"
}

func notTheKey(keys MasterKeys) string {
	if len(keys.Previous) == 0 {
		return "it is not the key this database was set up with"
	}
	return "none is the key this database was set up with"
}

// ids names the configured keys by id.
func ids(keys MasterKeys) string {
	s := "AUTHPLANE_MASTER_KEY is " + keys.Current.ID()
	if len(keys.Previous) > 0 {
		p := make([]string, len(keys.Previous))
		for i, m := range keys.Previous {
			p[i] = m.ID()
		}
		s += ", AUTHPLANE_PREVIOUS_MASTER_KEYS are " + strings.Join(p, ", ")
	}
	return s
}

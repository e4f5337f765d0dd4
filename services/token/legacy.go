package token

import (
	"context"
	"slices"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/secrets"
)

// OpensNewestSigningKey is the keystore's check of a database made before its data keys were stored
// (keystore.LegacyCheck): whether k, the keyring derived from a candidate master key, opens the signing key stored
// last. That tells which master key the database was set up with, before its derived keys are stored for good.
// found is false when the database holds no signing key.
func OpensNewestSigningKey(ctx context.Context, d *db.DB, k *secrets.Keyring) (found, opens bool, err error) {
	components, err := d.Components(ctx)
	if err != nil || !slices.Contains(components, "token") {
		return false, false, err
	}
	row, err := (&store{db: d}).newestKey(ctx)
	if err != nil || row == nil {
		return false, false, err
	}
	_, err = openKey(k, row)
	return true, err == nil, nil
}

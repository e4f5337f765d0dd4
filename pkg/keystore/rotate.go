package keystore

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/authplane/authplane/pkg/db"
)

// Rotation is what Rotate did.
type Rotation struct {
	// Created are the rows written because the database had no stored keys yet.
	Created []StoredKey
	// Rewrapped are the rows moved to the current master key; MasterKeyID is the key they were under.
	Rewrapped []StoredKey
}

// Rotate re-wraps every stored row under the current master key, in one transaction: the check value and the data
// keys, whose contents do not change, so processes that run meanwhile (holding the data keys, or started with the
// previous key in AUTHPLANE_PREVIOUS_MASTER_KEYS) keep working. Rows already under the current key are left as
// they are, so running it again does nothing. It first checks, as Open does, that the master keys open what is
// stored, and stores keys in a database that has none yet.
func Rotate(ctx context.Context, d *db.DB, keys MasterKeys, legacy LegacyCheck) (*Rotation, error) {
	_, created, err := open(ctx, d, keys, legacy)
	if err != nil {
		return nil, err
	}
	r := &Rotation{Created: created}
	err = d.SchemaTx(ctx, func(tx *gorm.DB) error {
		r.Rewrapped = nil
		rows, err := load(tx)
		if err != nil {
			return err
		}
		now := db.Now()
		for _, old := range rows {
			if old.MasterKeyID == keys.Current.ID() {
				continue
			}
			plain, err := unwrapRow(d, old, keys)
			if err != nil {
				return err
			}
			res := tx.Model(&row{}).Where("purpose = ? AND version = ? AND master_key_id = ?", old.Purpose, old.Version, old.MasterKeyID).
				Updates(map[string]any{"master_key_id": keys.Current.ID(), "wrapped": keys.Current.Wrap(plain, aad(old.Purpose, old.Version)), "wrapped_at": now})
			if res.Error != nil {
				return fmt.Errorf("re-wrap %s v%d: %w", old.Purpose, old.Version, res.Error)
			}
			if res.RowsAffected != 1 {
				return fmt.Errorf("re-wrap %s v%d: the row changed meanwhile; run the rotation again", old.Purpose, old.Version)
			}
			r.Rewrapped = append(r.Rewrapped, describe([]row{old})...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

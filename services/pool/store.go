package pool

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authplane/authplane/pkg/db"
)

var migrations = []db.Migration{
	{Version: 1, Name: "pools, users and identifiers", SQL: `
CREATE TABLE pool_pools (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  payload_schema_id TEXT NOT NULL DEFAULT '',
  metadata_schema_id TEXT NOT NULL DEFAULT '',
  settings TEXT NOT NULL,
  created_at {{bigint}} NOT NULL,
  updated_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX pool_pools_payload_schema ON pool_pools (tenant_id, payload_schema_id);
CREATE INDEX pool_pools_metadata_schema ON pool_pools (tenant_id, metadata_schema_id);
CREATE TABLE pool_users (
  tenant_id TEXT NOT NULL,
  pool_id TEXT NOT NULL,
  id TEXT NOT NULL,
  status TEXT NOT NULL,
  payload TEXT NOT NULL,
  metadata TEXT NOT NULL,
  password_hash TEXT NOT NULL DEFAULT '',
  password_updated_at {{bigint}} NOT NULL DEFAULT 0,
  failed_attempts INTEGER NOT NULL DEFAULT 0,
  locked_until {{bigint}} NOT NULL DEFAULT 0,
  created_at {{bigint}} NOT NULL,
  updated_at {{bigint}} NOT NULL,
  status_updated_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, pool_id, id)
);
CREATE TABLE pool_identifiers (
  tenant_id TEXT NOT NULL,
  pool_id TEXT NOT NULL,
  normalized TEXT NOT NULL,
  user_id TEXT NOT NULL,
  type TEXT NOT NULL,
  identifier TEXT NOT NULL,
  created_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, pool_id, normalized)
);
CREATE INDEX pool_identifiers_user ON pool_identifiers (tenant_id, pool_id, user_id)`},
	{Version: 2, Name: "password checks in flight", SQL: `
ALTER TABLE pool_users ADD COLUMN checks_in_flight INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pool_users ADD COLUMN checks_started_at {{bigint}} NOT NULL DEFAULT 0`},
}

// poolRow is a pool as stored. Settings is the JSON of settings (mechanisms, password policy, hashing, lockout).
type poolRow struct {
	TenantID         string `gorm:"primaryKey"`
	ID               string `gorm:"primaryKey"`
	Name             string
	Description      string
	PayloadSchemaID  string
	MetadataSchemaID string
	Settings         string
	CreatedAt        int64 `gorm:"autoCreateTime:false"`
	UpdatedAt        int64 `gorm:"autoUpdateTime:false"`
}

func (poolRow) TableName() string { return "pool_pools" }

// userRow is a user as stored. PasswordHash is an encoded hash (see package password), never sent out.
// Payload and Metadata are JSON objects. LockedUntil is 0 or the Unix microsecond the lockout ends;
// FailedAttempts counts consecutive password checks that failed; ChecksInFlight those running now (started
// at ChecksStartedAt at the latest), which count toward the limit until they end.
type userRow struct {
	TenantID          string `gorm:"primaryKey"`
	PoolID            string `gorm:"primaryKey"`
	ID                string `gorm:"primaryKey"`
	Status            string
	Payload           string
	Metadata          string
	PasswordHash      string
	PasswordUpdatedAt int64
	FailedAttempts    int
	LockedUntil       int64
	ChecksInFlight    int
	ChecksStartedAt   int64
	CreatedAt         int64 `gorm:"autoCreateTime:false"`
	UpdatedAt         int64 `gorm:"autoUpdateTime:false"`
	StatusUpdatedAt   int64
}

func (userRow) TableName() string { return "pool_users" }

// identifierRow is one identifier of a user. The primary key on the normalized form makes an identifier unique
// in its pool, enforced by the database even between concurrent creates.
type identifierRow struct {
	TenantID   string `gorm:"primaryKey"`
	PoolID     string `gorm:"primaryKey"`
	Normalized string `gorm:"primaryKey"`
	UserID     string
	Type       string
	Identifier string
	CreatedAt  int64 `gorm:"autoCreateTime:false"`
}

func (identifierRow) TableName() string { return "pool_identifiers" }

// store is the only code that touches the pool service's tables.
type store struct{ db *db.DB }

func (s *store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(fn)
}

// --- pools

func (s *store) createPool(ctx context.Context, row *poolRow) error {
	return s.db.WithContext(ctx).Create(row).Error
}

func (s *store) getPool(ctx context.Context, tenantID, id string) (*poolRow, error) {
	var row poolRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ?", id).Take(&row).Error
	return &row, err
}

// listPools returns pools after the given id; with schemaID, only those using that schema.
func (s *store) listPools(ctx context.Context, tenantID, schemaID, after string, limit int) ([]poolRow, error) {
	q := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id > ?", after)
	if schemaID != "" {
		q = q.Where("(payload_schema_id = ? OR metadata_schema_id = ?)", schemaID, schemaID)
	}
	var rows []poolRow
	return rows, q.Order("id").Limit(limit).Find(&rows).Error
}

func (s *store) updatePool(ctx context.Context, row *poolRow) (int64, error) {
	res := db.Tenant(s.db.WithContext(ctx), row.TenantID).Where("id = ?", row.ID).
		Select("name", "description", "payload_schema_id", "metadata_schema_id", "settings", "updated_at").Updates(row)
	return res.RowsAffected, res.Error
}

// deletePool removes a pool with its users and identifiers, all or nothing. The pool row goes first: that
// waits for user creations holding it (see lockPool) and makes later ones find no pool.
func (s *store) deletePool(ctx context.Context, tenantID, id string) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := db.Tenant(tx, tenantID).Where("id = ?", id).Delete(&poolRow{})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		n = res.RowsAffected
		if err := db.Tenant(tx, tenantID).Where("pool_id = ?", id).Delete(&identifierRow{}).Error; err != nil {
			return err
		}
		return db.Tenant(tx, tenantID).Where("pool_id = ?", id).Delete(&userRow{}).Error
	})
	return n, err
}

// lockPool checks inside a transaction that a pool exists and, on PostgreSQL, keeps it from being deleted until
// the transaction ends, so no user is written into a pool being deleted. (SQLite runs one writer at a time.)
func (s *store) lockPool(tx *gorm.DB, tenantID, id string) error {
	q := db.Tenant(tx, tenantID).Select("id").Where("id = ?", id)
	if s.db.Dialect == db.Postgres {
		q = q.Clauses(clause.Locking{Strength: "SHARE"})
	}
	if err := q.Take(&poolRow{}).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return errNoPool
		}
		return err
	}
	return nil
}

func (s *store) deleteTenant(ctx context.Context, tenantID string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		for _, m := range []any{&identifierRow{}, &userRow{}, &poolRow{}} {
			if err := db.Tenant(tx, tenantID).Delete(m).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// --- users

// errConflict carries the identifiers that already exist when an insert hits the unique key.
type errConflict struct{ taken []string }

func (e *errConflict) Error() string { return "identifier already exists" }

// createUser inserts a user with its identifiers in one transaction.
func (s *store) createUser(ctx context.Context, user *userRow, idents []identifierRow) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.lockPool(tx, user.TenantID, user.PoolID); err != nil {
			return err
		}
		if err := tx.Create(user).Error; err != nil {
			return err
		}
		if len(idents) > 0 {
			return tx.Create(&idents).Error
		}
		return nil
	})
	return s.explainConflict(ctx, err, user.TenantID, user.PoolID, idents)
}

// explainConflict turns a unique violation on identifiers into an errConflict naming the taken ones.
func (s *store) explainConflict(ctx context.Context, err error, tenantID, poolID string, idents []identifierRow) error {
	if !db.IsUniqueViolation(err) || len(idents) == 0 {
		return err
	}
	keys := make([]string, len(idents))
	for i, id := range idents {
		keys[i] = id.Normalized
	}
	var taken []identifierRow
	if qerr := db.Tenant(s.db.WithContext(ctx), tenantID).Where("pool_id = ? AND normalized IN ?", poolID, keys).
		Find(&taken).Error; qerr != nil {
		return err
	}
	c := &errConflict{}
	for _, t := range taken {
		c.taken = append(c.taken, t.Identifier)
	}
	return c
}

func (s *store) getUser(ctx context.Context, tenantID, poolID, id string) (*userRow, error) {
	var row userRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("pool_id = ? AND id = ?", poolID, id).Take(&row).Error
	return &row, err
}

// listUsers returns a page of users after the given id (keyset over the primary key).
func (s *store) listUsers(ctx context.Context, tenantID, poolID, after string, limit int) ([]userRow, error) {
	var rows []userRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("pool_id = ? AND id > ?", poolID, after).
		Order("id").Limit(limit).Find(&rows).Error
	return rows, err
}

// identifiersOf returns the identifiers of the given users, grouped by user.
func (s *store) identifiersOf(ctx context.Context, tenantID, poolID string, userIDs []string) (map[string][]identifierRow, error) {
	out := map[string][]identifierRow{}
	if len(userIDs) == 0 {
		return out, nil
	}
	var rows []identifierRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("pool_id = ? AND user_id IN ?", poolID, userIDs).
		Order("created_at, normalized").Find(&rows).Error
	for _, r := range rows {
		out[r.UserID] = append(out[r.UserID], r)
	}
	return out, err
}

// updateUser writes the named columns of a user.
func (s *store) updateUser(ctx context.Context, row *userRow, columns ...string) (int64, error) {
	res := db.Tenant(s.db.WithContext(ctx), row.TenantID).Where("pool_id = ? AND id = ?", row.PoolID, row.ID).
		Select(columns).Updates(row)
	return res.RowsAffected, res.Error
}

func (s *store) deleteUser(ctx context.Context, tenantID, poolID, id string) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := db.Tenant(tx, tenantID).Where("pool_id = ? AND user_id = ?", poolID, id).Delete(&identifierRow{}).Error; err != nil {
			return err
		}
		res := db.Tenant(tx, tenantID).Where("pool_id = ? AND id = ?", poolID, id).Delete(&userRow{})
		n = res.RowsAffected
		return res.Error
	})
	return n, err
}

var (
	errNoUser = errors.New("no such user")
	errNoPool = errors.New("no such pool")
)

// addIdentifier inserts an identifier for an existing user.
func (s *store) addIdentifier(ctx context.Context, ident *identifierRow, now int64) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		// Touching the user both checks that it exists and orders this write after a concurrent delete.
		res := db.Tenant(tx, ident.TenantID).Model(&userRow{}).Where("pool_id = ? AND id = ?", ident.PoolID, ident.UserID).
			Update("updated_at", now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errNoUser
		}
		return tx.Create(ident).Error
	})
	return s.explainConflict(ctx, err, ident.TenantID, ident.PoolID, []identifierRow{*ident})
}

// removeIdentifier deletes a user's identifier matching one of keys.
func (s *store) removeIdentifier(ctx context.Context, tenantID, poolID, userID string, keys []string, now int64) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := db.Tenant(tx, tenantID).Where("pool_id = ? AND user_id = ? AND normalized IN ?", poolID, userID, keys).
			Delete(&identifierRow{})
		if res.Error != nil {
			return res.Error
		}
		n = res.RowsAffected
		if n == 0 {
			return nil
		}
		return db.Tenant(tx, tenantID).Model(&userRow{}).Where("pool_id = ? AND id = ?", poolID, userID).
			Update("updated_at", now).Error
	})
	return n, err
}

// findByIdentifier returns the user holding one of keys, preferring the earliest key in the list.
func (s *store) findByIdentifier(ctx context.Context, tenantID, poolID string, keys []string) (*userRow, error) {
	var idents []identifierRow
	if err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("pool_id = ? AND normalized IN ?", poolID, keys).
		Find(&idents).Error; err != nil {
		return nil, err
	}
	if len(idents) == 0 {
		return nil, gorm.ErrRecordNotFound
	}
	best := idents[0]
	rank := func(k string) int {
		for i, c := range keys {
			if c == k {
				return i
			}
		}
		return len(keys)
	}
	for _, i := range idents[1:] {
		if rank(i.Normalized) < rank(best.Normalized) {
			best = i
		}
	}
	return s.getUser(ctx, tenantID, poolID, best.UserID)
}

// --- passwords and lockout

// setPassword stores a new hash and clears any lockout.
func (s *store) setPassword(ctx context.Context, tenantID, poolID, userID, hash string, now int64) (int64, error) {
	res := db.Tenant(s.db.WithContext(ctx), tenantID).Model(&userRow{}).Where("pool_id = ? AND id = ?", poolID, userID).
		Updates(map[string]any{"password_hash": hash, "password_updated_at": now, "updated_at": now,
			"failed_attempts": 0, "locked_until": 0})
	return res.RowsAffected, res.Error
}

// upgradeHash replaces a hash only if it is still the one that was verified (a concurrent password change wins).
func (s *store) upgradeHash(ctx context.Context, tenantID, poolID, userID, old, hash string) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Model(&userRow{}).
		Where("pool_id = ? AND id = ? AND password_hash = ?", poolID, userID, old).
		Update("password_hash", hash).Error
}

// Outcomes of reserveCheck.
const (
	checkReserved = iota
	checkLocked
	checkCrowded // failures plus checks in flight already reach the limit
)

// staleCheck is how long a check may stay counted as in flight: longer than any check runs (the hashing
// pool's wait plus one hash), so a count left by a process that died mid-check expires.
const staleCheck = int64(60_000_000) // µs

// reserveCheck counts a password check as in flight before it runs, so that failures plus checks in flight
// never exceed the limit, however many arrive at once. An expired lockout starts a fresh count.
func (s *store) reserveCheck(ctx context.Context, tenantID, poolID, userID string, maxAttempts int, now int64) (int, error) {
	var n []int
	err := s.db.WithContext(ctx).Raw(`UPDATE pool_users SET
  failed_attempts = CASE WHEN locked_until <> 0 AND locked_until <= ? THEN 0 ELSE failed_attempts END,
  locked_until = CASE WHEN locked_until <> 0 AND locked_until <= ? THEN 0 ELSE locked_until END,
  checks_in_flight = CASE WHEN checks_started_at < ? THEN 1 ELSE checks_in_flight + 1 END,
  checks_started_at = ?
WHERE tenant_id = ? AND pool_id = ? AND id = ? AND locked_until <= ?
  AND (CASE WHEN locked_until <> 0 AND locked_until <= ? THEN 0 ELSE failed_attempts END)
    + (CASE WHEN checks_started_at < ? THEN 0 ELSE checks_in_flight END) < ?
RETURNING checks_in_flight`, now, now, now-staleCheck, now, tenantID, poolID, userID, now, now, now-staleCheck, maxAttempts).Scan(&n).Error
	if err != nil {
		return 0, err
	}
	if len(n) > 0 {
		return checkReserved, nil
	}
	var row userRow
	if err := db.Tenant(s.db.WithContext(ctx), tenantID).Select("locked_until").
		Where("pool_id = ? AND id = ?", poolID, userID).Take(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return checkLocked, nil // deleted meanwhile: nothing to check against
		}
		return 0, err
	}
	if row.LockedUntil > now {
		return checkLocked, nil
	}
	return checkCrowded, nil
}

var endCheck = gorm.Expr("CASE WHEN checks_in_flight > 0 THEN checks_in_flight - 1 ELSE 0 END")

// checkFailed ends a check that failed: one more failure, and a lockout until lockUntil when it reaches the
// limit.
func (s *store) checkFailed(ctx context.Context, tenantID, poolID, userID string, maxAttempts int, lockUntil int64) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Model(&userRow{}).Where("pool_id = ? AND id = ?", poolID, userID).
		Updates(map[string]any{
			"checks_in_flight": endCheck,
			"failed_attempts":  gorm.Expr("failed_attempts + 1"),
			"locked_until":     gorm.Expr("CASE WHEN failed_attempts + 1 >= ? THEN ? ELSE locked_until END", maxAttempts, lockUntil),
		}).Error
}

// checkSucceeded ends a check that succeeded: the count of failures starts again.
func (s *store) checkSucceeded(ctx context.Context, tenantID, poolID, userID string) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Model(&userRow{}).Where("pool_id = ? AND id = ?", poolID, userID).
		Updates(map[string]any{"checks_in_flight": endCheck, "failed_attempts": 0, "locked_until": 0}).Error
}

// checkAbandoned ends a check that could not run (the hashing pool was saturated): it counts for nothing.
func (s *store) checkAbandoned(ctx context.Context, tenantID, poolID, userID string) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Model(&userRow{}).Where("pool_id = ? AND id = ?", poolID, userID).
		Update("checks_in_flight", endCheck).Error
}

// resetAttempts clears the count and any lockout (by an administrator).
func (s *store) resetAttempts(ctx context.Context, tenantID, poolID, userID string) (int64, error) {
	res := db.Tenant(s.db.WithContext(ctx), tenantID).Model(&userRow{}).Where("pool_id = ? AND id = ?", poolID, userID).
		Updates(map[string]any{"failed_attempts": 0, "locked_until": 0})
	return res.RowsAffected, res.Error
}

package token

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authplane/authplane/pkg/db"
)

var migrations = []db.Migration{
	{Version: 1, Name: "signing keys", SQL: `
CREATE TABLE token_signing_keys (
  tenant_id TEXT NOT NULL,
  server_id TEXT NOT NULL,
  kid TEXT NOT NULL,
  generation INTEGER NOT NULL,
  alg TEXT NOT NULL,
  public_jwk TEXT NOT NULL,
  sealed_private_jwk {{bytes}} NOT NULL,
  created_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, kid)
);
CREATE UNIQUE INDEX token_signing_keys_generation ON token_signing_keys (tenant_id, server_id, generation)`},
	// Keys belong to one incarnation of a workspace (its uid). Keys made before have none: they match no
	// workspace and are replaced the first time their workspace is used.
	{Version: 2, Name: "signing keys per workspace incarnation", SQL: `
ALTER TABLE token_signing_keys ADD COLUMN server_uid TEXT NOT NULL DEFAULT '';
DROP INDEX token_signing_keys_generation;
CREATE UNIQUE INDEX token_signing_keys_generation ON token_signing_keys (tenant_id, server_id, server_uid, generation)`},
	{Version: 3, Name: "token revocations", SQL: `
CREATE TABLE token_revocations (
  tenant_id TEXT NOT NULL,
  jti TEXT NOT NULL,
  server_id TEXT NOT NULL,
  token_type TEXT NOT NULL,
  client_id TEXT NOT NULL,
  expires_at {{bigint}} NOT NULL,
  revoked_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, jti)
);
CREATE INDEX token_revocations_expiry ON token_revocations (tenant_id, expires_at)`},
	// Refresh tokens are stored only as a keyed hash. A chain is every token rotated from one grant; it is
	// revoked as a whole, on its own row, which every use and revocation of its tokens updates.
	{Version: 4, Name: "refresh tokens", SQL: `
CREATE TABLE token_refresh_chains (
  tenant_id TEXT NOT NULL,
  chain_id TEXT NOT NULL,
  server_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  expires_at {{bigint}} NOT NULL,
  revoked_at {{bigint}} NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, chain_id)
);
CREATE INDEX token_refresh_chains_server ON token_refresh_chains (tenant_id, server_id, client_id);
CREATE INDEX token_refresh_chains_expiry ON token_refresh_chains (tenant_id, expires_at);
CREATE TABLE token_refresh_tokens (
  tenant_id TEXT NOT NULL,
  token_hash TEXT NOT NULL,
  server_id TEXT NOT NULL,
  server_uid TEXT NOT NULL,
  client_id TEXT NOT NULL,
  client_created {{bigint}} NOT NULL,
  chain_id TEXT NOT NULL,
  scope TEXT NOT NULL,
  session TEXT NOT NULL,
  issued_at {{bigint}} NOT NULL,
  expires_at {{bigint}} NOT NULL,
  used_at {{bigint}} NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, token_hash)
);
CREATE INDEX token_refresh_tokens_chain ON token_refresh_tokens (tenant_id, chain_id);
CREATE INDEX token_refresh_tokens_server ON token_refresh_tokens (tenant_id, server_id, client_id);
CREATE INDEX token_refresh_tokens_expiry ON token_refresh_tokens (tenant_id, expires_at)`},
	// A login session is what a chain of refresh tokens was, and more: every password-grant login has one (with
	// or without refresh tokens), its id is the tokens' sid, it knows its user and has an absolute end. Chains
	// become sessions: their lifetime starts at their first token, their user is unknown (a refresh re-checks the
	// user anyway), and their absolute end is the default session_ttl (90 days) after their start.
	{Version: 5, Name: "login sessions", SQL: `
CREATE TABLE token_sessions (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  server_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  pool_id TEXT NOT NULL DEFAULT '',
  subject TEXT NOT NULL DEFAULT '',
  created_at {{bigint}} NOT NULL,
  expires_at {{bigint}} NOT NULL,
  last_used_at {{bigint}} NOT NULL,
  refresh_expires_at {{bigint}} NOT NULL DEFAULT 0,
  access_expires_at {{bigint}} NOT NULL DEFAULT 0,
  ended_at {{bigint}} NOT NULL DEFAULT 0,
  end_reason TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX token_sessions_user ON token_sessions (tenant_id, pool_id, subject, id);
CREATE INDEX token_sessions_client ON token_sessions (tenant_id, client_id);
CREATE INDEX token_sessions_server ON token_sessions (tenant_id, server_id);
CREATE INDEX token_sessions_ended ON token_sessions (tenant_id, ended_at, access_expires_at);
INSERT INTO token_sessions (tenant_id, id, server_id, client_id, created_at, expires_at, last_used_at, refresh_expires_at, ended_at, end_reason)
SELECT c.tenant_id, c.chain_id, c.server_id, c.client_id,
  COALESCE((SELECT MIN(t.issued_at) FROM token_refresh_tokens t WHERE t.tenant_id = c.tenant_id AND t.chain_id = c.chain_id), c.expires_at),
  COALESCE((SELECT MIN(t.issued_at) FROM token_refresh_tokens t WHERE t.tenant_id = c.tenant_id AND t.chain_id = c.chain_id), c.expires_at) + 7776000000000,
  COALESCE((SELECT MAX(t.issued_at) FROM token_refresh_tokens t WHERE t.tenant_id = c.tenant_id AND t.chain_id = c.chain_id), c.expires_at),
  c.expires_at, c.revoked_at, CASE WHEN c.revoked_at > 0 THEN 'revoked' ELSE '' END
FROM token_refresh_chains c;
DROP TABLE token_refresh_chains;
ALTER TABLE token_refresh_tokens RENAME COLUMN chain_id TO session_id`},
	// Keys have a life: next, current, retired, revoked. Each incarnation has at most one current and one next key.
	// rotate_at is when the current key is due to rotate; max_exp (Unix µs) the latest expiry of a token it may
	// have signed, so a retired key is kept exactly as long as one could still be presented. Existing keys: the
	// newest of each incarnation is current, the others retired, all known to have signed until now plus the
	// longest lifetime a token has (10 years is the longest any setting allows; they are few and small).
	{Version: 6, Name: "signing key lifecycle", SQL: `
ALTER TABLE token_signing_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'retired';
ALTER TABLE token_signing_keys ADD COLUMN activated_at {{bigint}} NOT NULL DEFAULT 0;
ALTER TABLE token_signing_keys ADD COLUMN retired_at {{bigint}} NOT NULL DEFAULT 0;
ALTER TABLE token_signing_keys ADD COLUMN revoked_at {{bigint}} NOT NULL DEFAULT 0;
ALTER TABLE token_signing_keys ADD COLUMN rotate_at {{bigint}} NOT NULL DEFAULT 0;
ALTER TABLE token_signing_keys ADD COLUMN max_exp {{bigint}} NOT NULL DEFAULT 0;
UPDATE token_signing_keys SET activated_at = created_at, retired_at = created_at, max_exp = created_at + 315360000000000;
UPDATE token_signing_keys SET state = 'current', retired_at = 0, rotate_at = created_at + 2592000000000
  WHERE generation = (SELECT MAX(k.generation) FROM token_signing_keys k
    WHERE k.tenant_id = token_signing_keys.tenant_id AND k.server_id = token_signing_keys.server_id AND k.server_uid = token_signing_keys.server_uid);
CREATE UNIQUE INDEX token_signing_keys_current ON token_signing_keys (tenant_id, server_id, server_uid) WHERE state = 'current';
CREATE UNIQUE INDEX token_signing_keys_next ON token_signing_keys (tenant_id, server_id, server_uid) WHERE state = 'next';
CREATE INDEX token_signing_keys_due ON token_signing_keys (state, rotate_at)`},
	browserMigration,
}

// keyRow is one signing key of a workspace incarnation. The private key is a JWK sealed under the master key
// with the tenant, workspace, incarnation and kid as additional data, so a sealed key copied onto another row
// does not open. Generations number an incarnation's keys in the order they were made; State says which signs.
type keyRow struct {
	TenantID         string `gorm:"primaryKey"`
	ServerID         string
	ServerUID        string `gorm:"column:server_uid"`
	KID              string `gorm:"primaryKey;column:kid"`
	Generation       int
	Alg              string
	PublicJWK        string `gorm:"column:public_jwk"`
	SealedPrivateJWK []byte `gorm:"column:sealed_private_jwk"`
	CreatedAt        int64  `gorm:"autoCreateTime:false"`
	State            string
	ActivatedAt      int64
	RetiredAt        int64
	RevokedAt        int64
	RotateAt         int64
	MaxExp           int64
}

func (keyRow) TableName() string { return "token_signing_keys" }

// revocationRow denies one token until it would have expired anyway (expires_at, Unix microseconds), when the
// row is pruned. Access tokens are named by their jti; token_type leaves room for refresh tokens, named by
// their own id.
type revocationRow struct {
	TenantID  string `gorm:"primaryKey"`
	JTI       string `gorm:"primaryKey;column:jti"`
	ServerID  string
	TokenType string
	ClientID  string
	ExpiresAt int64
	RevokedAt int64
}

func (revocationRow) TableName() string { return "token_revocations" }

// store is the only code that touches the token service's tables.
type store struct {
	db      *db.DB
	rotate  rotationStmts
	rotator *rotator
}

// listKeys returns the keys of every incarnation of a workspace id, oldest generation first.
func (s *store) listKeys(ctx context.Context, tenantID, serverID string) ([]keyRow, error) {
	var rows []keyRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("server_id = ?", serverID).Order("generation").Find(&rows).Error
	return rows, err
}

// newestKey returns the signing key stored last in any workspace, nil when there is none.
func (s *store) newestKey(ctx context.Context) (*keyRow, error) {
	var rows []keyRow
	if err := s.db.WithContext(ctx).Order("created_at DESC, tenant_id, kid").Limit(1).Find(&rows).Error; err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

// insertKey adds a key unless the incarnation already has one of its generation or state (next, current): when two
// processes make a workspace's key at once, one insert wins and both re-read the winner.
func (s *store) insertKey(ctx context.Context, row *keyRow) error {
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(row).Error
}

// insertKeys adds keys in one transaction, each unless the incarnation already has one of its generation or state.
func (s *store) insertKeys(ctx context.Context, rows ...*keyRow) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, row := range rows {
			if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(row).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// replaceNextKey makes row the incarnation's next key, deleting the next key named replaced (one of another
// algorithm, which never signed) first when it is still next.
func (s *store) replaceNextKey(ctx context.Context, tenantID, replaced string, row *keyRow) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if replaced != "" {
			if err := db.Tenant(tx, tenantID).Where("kid = ? AND state = ?", replaced, stateNext).Delete(&keyRow{}).Error; err != nil {
				return err
			}
		}
		return tx.Clauses(clause.OnConflict{DoNothing: true}).Create(row).Error
	})
}

// setRotateAt reschedules the rotation of a current key.
func (s *store) setRotateAt(ctx context.Context, tenantID, kid string, at int64) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Model(&keyRow{}).Where("kid = ? AND state = ?", kid, stateCurrent).
		Update("rotate_at", at).Error
}

// raiseMaxExp records that a key may have signed a token expiring at exp (µs).
func (s *store) raiseMaxExp(ctx context.Context, tenantID, kid string, exp int64) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Model(&keyRow{}).Where("kid = ? AND max_exp < ?", kid, exp).
		Update("max_exp", exp).Error
}

// promoteNext retires the current key and makes the next one current, with newNext as the next key, in one
// transaction; it reports false, changing nothing, when the keys are no longer in those states (another process
// rotated first).
func (s *store) promoteNext(ctx context.Context, tenantID, currentKID, nextKID string, newNext *keyRow, now, rotateAt int64) (bool, error) {
	done := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := db.Tenant(tx, tenantID).Model(&keyRow{}).Where("kid = ? AND state = ?", currentKID, stateCurrent).
			Updates(map[string]any{"state": stateRetired, "retired_at": now})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		res = db.Tenant(tx, tenantID).Model(&keyRow{}).Where("kid = ? AND state = ?", nextKID, stateNext).
			Updates(map[string]any{"state": stateCurrent, "activated_at": now, "rotate_at": rotateAt})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errKeysMoved
		}
		if err := tx.Create(newNext).Error; err != nil {
			return err
		}
		done = true
		return nil
	})
	if errors.Is(err, errKeysMoved) {
		return false, nil
	}
	return done, err
}

// errKeysMoved rolls back a rotation whose keys another process changed meanwhile.
var errKeysMoved = errors.New("signing keys changed meanwhile")

// revokeKey marks a key revoked and returns its state before (empty when the incarnation has no such key, or it
// was revoked already). When it was the current key, the next one becomes current and newNext the next key, in
// the same transaction: there is never a moment without a current key for another process to fill.
func (s *store) revokeKey(ctx context.Context, tenantID, serverID, uid, kid string, newNext *keyRow, now, rotateAt int64) (string, error) {
	var before string
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row keyRow
		q := db.Tenant(tx, tenantID).Where("server_id = ? AND server_uid = ? AND kid = ? AND state <> ?", serverID, uid, kid, stateRevoked)
		if s.db.Dialect == db.Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&row).Error; err != nil {
			if db.IsNotFound(err) {
				return nil
			}
			return err
		}
		before = row.State
		if err := db.Tenant(tx, tenantID).Model(&keyRow{}).Where("kid = ?", kid).
			Updates(map[string]any{"state": stateRevoked, "revoked_at": now}).Error; err != nil {
			return err
		}
		if before == stateRetired {
			return nil
		}
		if before == stateCurrent {
			res := db.Tenant(tx, tenantID).Model(&keyRow{}).Where("server_id = ? AND server_uid = ? AND state = ?", serverID, uid, stateNext).
				Updates(map[string]any{"state": stateCurrent, "activated_at": now, "rotate_at": rotateAt})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				newNext.State, newNext.ActivatedAt, newNext.RotateAt = stateCurrent, now, rotateAt // no next key: its successor signs at once
			}
		}
		return tx.Create(newNext).Error
	})
	return before, err
}

// dueKey is a current key due to rotate.
type dueKey struct {
	TenantID, ServerID string
	ServerUID          string `gorm:"column:server_uid"`
	KID                string `gorm:"column:kid"`
}

// dueRotations lists current keys of any tenant whose rotation is due by now.
func (s *store) dueRotations(ctx context.Context, now int64, limit int) ([]dueKey, error) {
	var rows []dueKey
	err := s.db.WithContext(ctx).Model(&keyRow{}).Select("tenant_id", "server_id", "server_uid", "kid").
		Where("state = ? AND rotate_at <= ?", stateCurrent, now).Order("rotate_at").Limit(limit).Find(&rows).Error
	return rows, err
}

// pruneKeys deletes retired and revoked keys that no live token can need any more: every token they signed
// expired before cutoff. It returns the workspaces whose keys it deleted.
func (s *store) pruneKeys(ctx context.Context, cutoff int64) ([]dueKey, error) {
	var gone []dueKey
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx.Model(&keyRow{}).Where("state IN ? AND max_exp < ? AND retired_at < ? AND revoked_at < ?",
			[]string{stateRetired, stateRevoked}, cutoff, cutoff, cutoff)
		if err := q.Select("tenant_id", "server_id", "server_uid", "kid").Find(&gone).Error; err != nil || len(gone) == 0 {
			return err
		}
		for _, k := range gone {
			if err := db.Tenant(tx, k.TenantID).Where("kid = ?", k.KID).Delete(&keyRow{}).Error; err != nil {
				return err
			}
		}
		return nil
	})
	return gone, err
}

// deleteOtherIncarnations deletes the keys of a workspace id that do not belong to incarnation uid.
func (s *store) deleteOtherIncarnations(ctx context.Context, tenantID, serverID, uid string) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Where("server_id = ? AND server_uid <> ?", serverID, uid).Delete(&keyRow{}).Error
}

// deleteServerKeys deletes a workspace's keys, revocations, sessions and refresh tokens (its tokens are void
// without the keys).
func (s *store) deleteServerKeys(ctx context.Context, tenantID, serverID string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := deleteSessions(tx, tenantID, "server_id = ?", serverID); err != nil {
			return err
		}
		if err := db.Tenant(tx, tenantID).Where("server_id = ?", serverID).Delete(&revocationRow{}).Error; err != nil {
			return err
		}
		return db.Tenant(tx, tenantID).Where("server_id = ?", serverID).Delete(&keyRow{}).Error
	})
}

// deleteTenantKeys deletes a tenant's keys, revocations, sessions and refresh tokens (its tokens are void without
// the keys).
func (s *store) deleteTenantKeys(ctx context.Context, tenantID string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := deleteSessions(tx, tenantID, "1 = 1"); err != nil {
			return err
		}
		if err := db.Tenant(tx, tenantID).Delete(&revocationRow{}).Error; err != nil {
			return err
		}
		return db.Tenant(tx, tenantID).Delete(&keyRow{}).Error
	})
}

// revoke records a revocation; revoking a token twice keeps the first record.
func (s *store) revoke(ctx context.Context, row *revocationRow) error {
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(row).Error
}

// listRevocations returns a tenant's revocations of tokens that expire after now.
func (s *store) listRevocations(ctx context.Context, tenantID string, now int64) ([]revocationRow, error) {
	var rows []revocationRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Select("jti", "expires_at").Where("expires_at > ?", now).Find(&rows).Error
	return rows, err
}

// pruneRevocations deletes a tenant's revocations of tokens that have expired by now.
func (s *store) pruneRevocations(ctx context.Context, tenantID string, now int64) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Where("expires_at <= ?", now).Delete(&revocationRow{}).Error
}

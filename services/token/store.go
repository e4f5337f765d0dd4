package token

import (
	"context"

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
	browserMigration,
}

// keyRow is one signing key of a workspace incarnation. The private key is a JWK sealed under the master key
// with the tenant, workspace, incarnation and kid as additional data, so a sealed key copied onto another row
// does not open. Generations number an incarnation's keys: the highest signs, all of them verify.
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

// insertKey adds a key unless the workspace already has one of that generation: when two processes create a
// workspace's first key at once, one insert wins and both re-read the winner.
func (s *store) insertKey(ctx context.Context, row *keyRow) error {
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(row).Error
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

package workspace

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authplane/authplane/pkg/db"
)

var migrations = []db.Migration{
	{Version: 1, Name: "servers and scopes", SQL: `
CREATE TABLE workspace_servers (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  type TEXT NOT NULL,
  grant_types TEXT NOT NULL,
  access_token_ttl_ms {{bigint}} NOT NULL,
  refresh_token_ttl_ms {{bigint}} NOT NULL,
  id_token_ttl_ms {{bigint}} NOT NULL,
  created_at {{bigint}} NOT NULL,
  updated_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE TABLE workspace_scopes (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  server_id TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  system {{bool}} NOT NULL DEFAULT FALSE,
  created_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX workspace_scopes_name ON workspace_scopes (tenant_id, server_id, name)`},
	// Existing rows get their uid from backfillUIDs: SQL has no random id both backends share.
	{Version: 2, Name: "server incarnation uid", SQL: `
ALTER TABLE workspace_servers ADD COLUMN uid TEXT NOT NULL DEFAULT ''`},
	// Identity sources: the columns of one method are empty for the other. The index is the order the password
	// grant tries them in, and the keyset of their list.
	{Version: 3, Name: "identity sources", SQL: `
CREATE TABLE workspace_idps (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  server_id TEXT NOT NULL,
  name TEXT NOT NULL,
  method TEXT NOT NULL,
  display_order {{bigint}} NOT NULL DEFAULT 0,
  identity_pool_id TEXT NOT NULL DEFAULT '',
  url TEXT NOT NULL DEFAULT '',
  timeout_ms {{bigint}} NOT NULL DEFAULT 0,
  created_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX workspace_idps_order ON workspace_idps (tenant_id, server_id, display_order, created_at, id)`},
	// The absolute lifetime of login sessions; existing workspaces get the default, 90 days.
	{Version: 4, Name: "session ttl", SQL: `
ALTER TABLE workspace_servers ADD COLUMN session_ttl_ms {{bigint}} NOT NULL DEFAULT 7776000000`},
	// Signing keys: the algorithm and how often they rotate; existing workspaces keep ES256, every 30 days.
	{Version: 5, Name: "signing algorithm and key rotation", SQL: `
ALTER TABLE workspace_servers ADD COLUMN signing_alg TEXT NOT NULL DEFAULT 'ES256';
ALTER TABLE workspace_servers ADD COLUMN key_rotation_period_ms {{bigint}} NOT NULL DEFAULT 2592000000`},
	// What the hosted sign-in page shows.
	{Version: 6, Name: "sign-in page branding", SQL: `
ALTER TABLE workspace_servers ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE workspace_servers ADD COLUMN logo_url TEXT NOT NULL DEFAULT '';
ALTER TABLE workspace_servers ADD COLUMN primary_color TEXT NOT NULL DEFAULT ''`},
}

// serverRow is a workspace as stored. Grant types are space-separated. UID names this incarnation of the
// workspace: set once when the row is created, never updated.
type serverRow struct {
	TenantID          string `gorm:"primaryKey"`
	ID                string `gorm:"primaryKey"`
	UID               string `gorm:"column:uid"`
	Name              string
	Description       string
	Type              string
	GrantTypes        string
	AccessTokenTTLMs  int64 `gorm:"column:access_token_ttl_ms"`
	RefreshTokenTTLMs int64 `gorm:"column:refresh_token_ttl_ms"`
	IDTokenTTLMs      int64 `gorm:"column:id_token_ttl_ms"`
	SessionTTLMs      int64 `gorm:"column:session_ttl_ms"`
	SigningAlg        string
	KeyRotationMs     int64 `gorm:"column:key_rotation_period_ms"`
	// DisplayName, LogoURL and PrimaryColor brand the hosted sign-in page.
	DisplayName  string
	LogoURL      string `gorm:"column:logo_url"`
	PrimaryColor string
	CreatedAt    int64 `gorm:"autoCreateTime:false"`
	UpdatedAt    int64 `gorm:"autoUpdateTime:false"`
}

func (serverRow) TableName() string { return "workspace_servers" }

func (r *serverRow) grants() []string { return strings.Fields(r.GrantTypes) }

type scopeRow struct {
	TenantID    string `gorm:"primaryKey"`
	ID          string `gorm:"primaryKey"`
	ServerID    string
	Name        string
	Description string
	System      bool
	CreatedAt   int64 `gorm:"autoCreateTime:false"`
}

func (scopeRow) TableName() string { return "workspace_scopes" }

// idpRow is an identity source of a workspace. IdentityPoolID is set for method identity_pool; URL and
// TimeoutMs for method external. The external source's signing secret is derived, never stored.
type idpRow struct {
	TenantID       string `gorm:"primaryKey"`
	ID             string `gorm:"primaryKey"`
	ServerID       string
	Name           string
	Method         string
	DisplayOrder   int64
	IdentityPoolID string `gorm:"column:identity_pool_id"`
	URL            string `gorm:"column:url"`
	TimeoutMs      int64  `gorm:"column:timeout_ms"`
	CreatedAt      int64  `gorm:"autoCreateTime:false"`
}

func (idpRow) TableName() string { return "workspace_idps" }

// idpKey is an identity source's place in its workspace's order: display_order, then creation, then id (for
// sources created in the same microsecond).
type idpKey struct {
	DisplayOrder, CreatedAt int64
	ID                      string
}

func (r *idpRow) key() idpKey { return idpKey{r.DisplayOrder, r.CreatedAt, r.ID} }

// String encodes the key for a page token; ids are hex, so the dot cannot occur in one.
func (k idpKey) String() string { return fmt.Sprintf("%d.%d.%s", k.DisplayOrder, k.CreatedAt, k.ID) }

func parseIdpKey(s string) (idpKey, bool) {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 || parts[2] == "" {
		return idpKey{}, false
	}
	order, err1 := strconv.ParseInt(parts[0], 10, 64)
	created, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return idpKey{}, false
	}
	return idpKey{order, created, parts[2]}, true
}

// errNoServer: the workspace an identity source was being added to does not exist (or is being deleted).
var errNoServer = errors.New("no such workspace")

// store is the only code that touches the workspace service's tables.
type store struct{ db *db.DB }

func (s *store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(fn)
}

// createServer inserts a workspace with its predefined scopes, in one transaction.
func (s *store) createServer(ctx context.Context, row *serverRow, scopes []scopeRow) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(row).Error; err != nil {
			return err
		}
		if len(scopes) > 0 {
			return tx.Create(&scopes).Error
		}
		return nil
	})
}

// ensureServer inserts a workspace and its scopes unless the workspace exists (idempotent provisioning).
func (s *store) ensureServer(ctx context.Context, row *serverRow, scopes []scopeRow) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(row)
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		return tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&scopes).Error
	})
}

// backfillUIDs gives every workspace created before uids existed a random one. Each row is set only while it
// has none, so processes starting at once agree on the first value written.
func (s *store) backfillUIDs(ctx context.Context, newID func() string) error {
	var rows []serverRow
	if err := s.db.WithContext(ctx).Select("tenant_id", "id").Where("uid = ?", "").Find(&rows).Error; err != nil {
		return err
	}
	for _, r := range rows {
		if err := s.db.WithContext(ctx).Model(&serverRow{}).Where("tenant_id = ? AND id = ? AND uid = ?", r.TenantID, r.ID, "").
			Update("uid", newID()).Error; err != nil {
			return err
		}
	}
	return nil
}

func (s *store) getServer(ctx context.Context, tenantID, id string) (*serverRow, error) {
	var row serverRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ?", id).Take(&row).Error
	return &row, err
}

func (s *store) listServers(ctx context.Context, tenantID, after string, limit int) ([]serverRow, error) {
	var rows []serverRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id > ?", after).Order("id").Limit(limit).Find(&rows).Error
	return rows, err
}

func (s *store) updateServer(ctx context.Context, row *serverRow) error {
	return db.Tenant(s.db.WithContext(ctx), row.TenantID).Where("id = ?", row.ID).
		Select("name", "description", "grant_types", "access_token_ttl_ms", "refresh_token_ttl_ms", "id_token_ttl_ms", "session_ttl_ms",
			"signing_alg", "key_rotation_period_ms", "display_name", "logo_url", "primary_color", "updated_at").
		Updates(row).Error
}

// deleteServer removes a workspace with its scopes and identity sources, all or nothing. The workspace row goes
// first: that waits for identity sources being added under it (see lockServer) and makes later ones find none.
func (s *store) deleteServer(ctx context.Context, tenantID, id string) (bool, error) {
	var deleted int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := db.Tenant(tx, tenantID).Where("id = ?", id).Delete(&serverRow{})
		if res.Error != nil {
			return res.Error
		}
		deleted = res.RowsAffected
		for _, m := range []any{&scopeRow{}, &idpRow{}} {
			if err := db.Tenant(tx, tenantID).Where("server_id = ?", id).Delete(m).Error; err != nil {
				return err
			}
		}
		return nil
	})
	return deleted > 0, err
}

func (s *store) deleteTenant(ctx context.Context, tenantID string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		for _, m := range []any{&serverRow{}, &scopeRow{}, &idpRow{}} {
			if err := db.Tenant(tx, tenantID).Delete(m).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// lockServer checks inside a transaction that a workspace exists and, on PostgreSQL, keeps it from being deleted
// until the transaction ends, so nothing is added to a workspace being deleted. (SQLite runs one writer at a time.)
func (s *store) lockServer(tx *gorm.DB, tenantID, id string) error {
	q := db.Tenant(tx, tenantID).Select("id").Where("id = ?", id)
	if s.db.Dialect == db.Postgres {
		q = q.Clauses(clause.Locking{Strength: "SHARE"})
	}
	if err := q.Take(&serverRow{}).Error; err != nil {
		if db.IsNotFound(err) {
			return errNoServer
		}
		return err
	}
	return nil
}

// createIdp adds an identity source to an existing workspace (errNoServer otherwise).
func (s *store) createIdp(ctx context.Context, row *idpRow) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.lockServer(tx, row.TenantID, row.ServerID); err != nil {
			return err
		}
		return tx.Create(row).Error
	})
}

func (s *store) getIdp(ctx context.Context, tenantID, serverID, id string) (*idpRow, error) {
	var row idpRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("server_id = ? AND id = ?", serverID, id).Take(&row).Error
	return &row, err
}

// listIdps returns a workspace's identity sources in order, those after the given key when one is given, at most
// limit of them (all when limit is 0).
func (s *store) listIdps(ctx context.Context, tenantID, serverID string, after *idpKey, limit int) ([]idpRow, error) {
	q := db.Tenant(s.db.WithContext(ctx), tenantID).Where("server_id = ?", serverID)
	if after != nil {
		q = q.Where("(display_order > ? OR (display_order = ? AND (created_at > ? OR (created_at = ? AND id > ?))))",
			after.DisplayOrder, after.DisplayOrder, after.CreatedAt, after.CreatedAt, after.ID)
	}
	if limit > 0 {
		q = q.Limit(limit)
	}
	var rows []idpRow
	return rows, q.Order("display_order, created_at, id").Find(&rows).Error
}

func (s *store) deleteIdp(ctx context.Context, tenantID, serverID, id string) (bool, error) {
	res := db.Tenant(s.db.WithContext(ctx), tenantID).Where("server_id = ? AND id = ?", serverID, id).Delete(&idpRow{})
	return res.RowsAffected > 0, res.Error
}

func (s *store) createScope(ctx context.Context, row *scopeRow) error {
	return s.db.WithContext(ctx).Create(row).Error
}

func (s *store) getScope(ctx context.Context, tenantID, id string) (*scopeRow, error) {
	var row scopeRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ?", id).Take(&row).Error
	return &row, err
}

func (s *store) listScopes(ctx context.Context, tenantID, serverID, after string, limit int) ([]scopeRow, error) {
	q := db.Tenant(s.db.WithContext(ctx), tenantID).Where("server_id = ? AND name > ?", serverID, after).Order("name")
	if limit > 0 {
		q = q.Limit(limit)
	}
	var rows []scopeRow
	return rows, q.Find(&rows).Error
}

func (s *store) deleteScope(ctx context.Context, tenantID, id string) (int64, error) {
	res := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ? AND system = ?", id, false).Delete(&scopeRow{})
	return res.RowsAffected, res.Error
}

package client

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authplane/authplane/pkg/db"
)

var migrations = []db.Migration{
	{Version: 1, Name: "clients and token policies", SQL: `
CREATE TABLE client_clients (
  tenant_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  server_id TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  grant_types TEXT NOT NULL DEFAULT '[]',
  auth_method TEXT NOT NULL,
  scopes TEXT NOT NULL DEFAULT '[]',
  audience TEXT NOT NULL DEFAULT '[]',
  token_policy_id TEXT NOT NULL DEFAULT '',
  redirect_uris TEXT NOT NULL DEFAULT '[]',
  secret_hash TEXT NOT NULL DEFAULT '',
  created_at {{bigint}} NOT NULL,
  updated_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, client_id)
);
CREATE INDEX client_clients_server ON client_clients (tenant_id, server_id, client_id);
CREATE INDEX client_clients_policy ON client_clients (tenant_id, token_policy_id);
CREATE TABLE client_token_policies (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  title TEXT NOT NULL DEFAULT '',
  access_token_ttl_ms {{bigint}} NOT NULL DEFAULT 0,
  refresh_token_ttl_ms {{bigint}} NOT NULL DEFAULT 0,
  allowed_scopes TEXT NOT NULL DEFAULT '[]',
  created_at {{bigint}} NOT NULL,
  updated_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, id)
)`},
	// Browser sign-in: where RP-initiated logout may return to, which browser origins may call the data plane
	// (CORS), and whether the client skips the consent page.
	{Version: 2, Name: "browser sign-in client fields", SQL: `
ALTER TABLE client_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE client_clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE client_clients ADD COLUMN trusted {{bool}} NOT NULL DEFAULT FALSE`},
}

// stringList is a list column stored as a JSON array in TEXT, the same on both backends and unambiguous for any
// element (audiences and redirect URIs are free-form).
type stringList []string

func (l stringList) Value() (driver.Value, error) {
	if l == nil {
		return "[]", nil
	}
	b, err := json.Marshal([]string(l))
	return string(b), err
}

func (l *stringList) Scan(src any) error {
	var raw []byte
	switch v := src.(type) {
	case string:
		raw = []byte(v)
	case []byte:
		raw = v
	case nil:
		*l = nil
		return nil
	default:
		return fmt.Errorf("stringList: cannot scan %T", src)
	}
	var out []string
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	*l = out
	return nil
}

// clientRow is a client as stored. Audience is stored as given: empty means the default, [client_id].
type clientRow struct {
	TenantID      string     `gorm:"column:tenant_id;primaryKey"`
	ClientID      string     `gorm:"column:client_id;primaryKey"`
	ServerID      string     `gorm:"column:server_id"`
	Name          string     `gorm:"column:name"`
	Description   string     `gorm:"column:description"`
	GrantTypes    stringList `gorm:"column:grant_types"`
	AuthMethod    string     `gorm:"column:auth_method"`
	Scopes        stringList `gorm:"column:scopes"`
	Audience      stringList `gorm:"column:audience"`
	TokenPolicyID string     `gorm:"column:token_policy_id"`
	RedirectURIs  stringList `gorm:"column:redirect_uris"`
	// PostLogoutRedirectURIs, AllowedOrigins and Trusted are for browser sign-in.
	PostLogoutRedirectURIs stringList `gorm:"column:post_logout_redirect_uris"`
	AllowedOrigins         stringList `gorm:"column:allowed_origins"`
	Trusted                bool       `gorm:"column:trusted"`
	SecretHash             string     `gorm:"column:secret_hash"`
	CreatedAt              int64      `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt              int64      `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (clientRow) TableName() string { return "client_clients" }

// policyRow is a token policy as stored. A TTL of 0 means "the workspace's".
type policyRow struct {
	TenantID          string     `gorm:"column:tenant_id;primaryKey"`
	ID                string     `gorm:"column:id;primaryKey"`
	Title             string     `gorm:"column:title"`
	AccessTokenTTLMs  int64      `gorm:"column:access_token_ttl_ms"`
	RefreshTokenTTLMs int64      `gorm:"column:refresh_token_ttl_ms"`
	AllowedScopes     stringList `gorm:"column:allowed_scopes"`
	CreatedAt         int64      `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt         int64      `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (policyRow) TableName() string { return "client_token_policies" }

// errPolicyMissing is returned when a client refers to a token policy that does not exist.
var errPolicyMissing = errors.New("token policy not found")

// errPolicyInUse is returned when a token policy to delete is still referred to by a client.
var errPolicyInUse = errors.New("token policy in use")

// store is the only code that touches the client service's tables.
type store struct{ db *db.DB }

func (s *store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(fn)
}

// lockPolicy checks that a policy exists and, on PostgreSQL, locks its row until the transaction ends, so that a
// client cannot come to refer to a policy that is being deleted (SQLite transactions are already serialised).
func (s *store) lockPolicy(tx *gorm.DB, tenantID, id string) error {
	q := db.Tenant(tx, tenantID).Where("id = ?", id)
	if s.db.Dialect == db.Postgres {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var row policyRow
	err := q.Take(&row).Error
	if db.IsNotFound(err) {
		return errPolicyMissing
	}
	return err
}

// createClient inserts a client, checking its token policy in the same transaction.
func (s *store) createClient(ctx context.Context, row *clientRow) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if row.TokenPolicyID != "" {
			if err := s.lockPolicy(tx, row.TenantID, row.TokenPolicyID); err != nil {
				return err
			}
		}
		return tx.Create(row).Error
	})
}

// ensureClient inserts a client unless one with its id exists; it reports whether it inserted. Safe when several
// processes start at once.
func (s *store) ensureClient(ctx context.Context, row *clientRow) (bool, error) {
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(row)
	return res.RowsAffected > 0, res.Error
}

func (s *store) getClient(ctx context.Context, tenantID, clientID string) (*clientRow, error) {
	var row clientRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("client_id = ?", clientID).Take(&row).Error
	return &row, err
}

// listClients lists a workspace's clients, or the tenant's when serverID is "", in client id order.
func (s *store) listClients(ctx context.Context, tenantID, serverID, after string, limit int) ([]clientRow, error) {
	var rows []clientRow
	q := db.Tenant(s.db.WithContext(ctx), tenantID).Where("client_id > ?", after)
	if serverID != "" {
		q = q.Where("server_id = ?", serverID)
	}
	err := q.Order("client_id").Limit(limit).Find(&rows).Error
	return rows, err
}

// updateClient writes a client's mutable fields (and its secret hash, which a change of authentication method
// may set or clear), checking its token policy in the same transaction.
func (s *store) updateClient(ctx context.Context, row *clientRow) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if row.TokenPolicyID != "" {
			if err := s.lockPolicy(tx, row.TenantID, row.TokenPolicyID); err != nil {
				return err
			}
		}
		res := db.Tenant(tx, row.TenantID).Model(&clientRow{}).Where("client_id = ?", row.ClientID).
			Select("name", "description", "grant_types", "auth_method", "scopes", "audience", "token_policy_id",
				"redirect_uris", "post_logout_redirect_uris", "allowed_origins", "trusted", "secret_hash", "updated_at").
			Updates(row)
		if res.Error == nil && res.RowsAffected == 0 {
			return gorm.ErrRecordNotFound
		}
		return res.Error
	})
}

// setSecretHash replaces a client's secret hash; it reports whether the client exists.
func (s *store) setSecretHash(ctx context.Context, tenantID, clientID, hash string, now int64) (bool, error) {
	res := db.Tenant(s.db.WithContext(ctx), tenantID).Model(&clientRow{}).Where("client_id = ?", clientID).
		Updates(map[string]any{"secret_hash": hash, "updated_at": now})
	return res.RowsAffected > 0, res.Error
}

func (s *store) deleteClient(ctx context.Context, tenantID, clientID string) (bool, error) {
	res := db.Tenant(s.db.WithContext(ctx), tenantID).Where("client_id = ?", clientID).Delete(&clientRow{})
	return res.RowsAffected > 0, res.Error
}

// serverOrigins returns the allowed_origins lists of a workspace's clients that have any.
func (s *store) serverOrigins(ctx context.Context, tenantID, serverID string) ([]stringList, error) {
	var lists []stringList
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Model(&clientRow{}).
		Where("server_id = ? AND allowed_origins <> '[]'", serverID).Pluck("allowed_origins", &lists).Error
	return lists, err
}

// deleteServerClients deletes every client of a workspace and returns their ids.
func (s *store) deleteServerClients(ctx context.Context, tenantID, serverID string) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := db.Tenant(tx, tenantID).Model(&clientRow{}).Where("server_id = ?", serverID).
			Pluck("client_id", &ids).Error; err != nil {
			return err
		}
		return db.Tenant(tx, tenantID).Where("server_id = ?", serverID).Delete(&clientRow{}).Error
	})
	return ids, err
}

func (s *store) deleteTenant(ctx context.Context, tenantID string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := db.Tenant(tx, tenantID).Delete(&clientRow{}).Error; err != nil {
			return err
		}
		return db.Tenant(tx, tenantID).Delete(&policyRow{}).Error
	})
}

func (s *store) createPolicy(ctx context.Context, row *policyRow) error {
	return s.db.WithContext(ctx).Create(row).Error
}

func (s *store) getPolicy(ctx context.Context, tenantID, id string) (*policyRow, error) {
	var row policyRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ?", id).Take(&row).Error
	return &row, err
}

func (s *store) listPolicies(ctx context.Context, tenantID, after string, limit int) ([]policyRow, error) {
	var rows []policyRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id > ?", after).Order("id").Limit(limit).Find(&rows).Error
	return rows, err
}

func (s *store) updatePolicy(ctx context.Context, row *policyRow) error {
	res := db.Tenant(s.db.WithContext(ctx), row.TenantID).Model(&policyRow{}).Where("id = ?", row.ID).
		Select("title", "access_token_ttl_ms", "refresh_token_ttl_ms", "allowed_scopes", "updated_at").
		Updates(row)
	if res.Error == nil && res.RowsAffected == 0 {
		return gorm.ErrRecordNotFound
	}
	return res.Error
}

// deletePolicy deletes a token policy unless a client refers to it (errPolicyInUse). The policy row is locked
// first so that a client being created with it either commits before the count or fails after the delete.
func (s *store) deletePolicy(ctx context.Context, tenantID, id string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.lockPolicy(tx, tenantID, id); err != nil {
			if err == errPolicyMissing {
				return gorm.ErrRecordNotFound
			}
			return err
		}
		var users int64
		if err := db.Tenant(tx, tenantID).Model(&clientRow{}).Where("token_policy_id = ?", id).Count(&users).Error; err != nil {
			return err
		}
		if users > 0 {
			return errPolicyInUse
		}
		return db.Tenant(tx, tenantID).Where("id = ?", id).Delete(&policyRow{}).Error
	})
}

package tenant

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authplane/authplane/pkg/db"
)

var migrations = []db.Migration{
	{Version: 1, Name: "tenants", SQL: `
CREATE TABLE tenant_tenants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at {{bigint}} NOT NULL,
  updated_at {{bigint}} NOT NULL
)`},
}

// Tenant states: a tenant is `provisioning` while its workspaces and admin client are being made, so a failed or
// concurrent creation never shows a half-made tenant.
const (
	stateProvisioning = "provisioning"
	stateActive       = "active"
)

type tenantRow struct {
	ID        string `gorm:"primaryKey"`
	Name      string
	State     string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
	UpdatedAt int64 `gorm:"autoUpdateTime:false"`
}

func (tenantRow) TableName() string { return "tenant_tenants" }

type store struct{ db *db.DB }

func (s *store) insert(ctx context.Context, row *tenantRow) error {
	return s.db.WithContext(ctx).Create(row).Error
}

func (s *store) ensure(ctx context.Context, row *tenantRow) error {
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(row).Error
}

func (s *store) get(ctx context.Context, id string) (*tenantRow, error) {
	var row tenantRow
	err := s.db.WithContext(ctx).Where("id = ? AND state = ?", id, stateActive).Take(&row).Error
	return &row, err
}

// getAny finds a tenant in any state (a creation that crashed half-way leaves one `provisioning`).
func (s *store) getAny(ctx context.Context, id string) (*tenantRow, error) {
	var row tenantRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	return &row, err
}

func (s *store) list(ctx context.Context, after string, limit int) ([]tenantRow, error) {
	var rows []tenantRow
	err := s.db.WithContext(ctx).Where("id > ? AND state = ?", after, stateActive).Order("id").Limit(limit).Find(&rows).Error
	return rows, err
}

// update writes a tenant's name and state; audit, when given, records the change in the same transaction.
func (s *store) update(ctx context.Context, row *tenantRow, audit func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&tenantRow{}).Where("id = ?", row.ID).
			Updates(map[string]any{"name": row.Name, "state": row.State, "updated_at": row.UpdatedAt}).Error; err != nil {
			return err
		}
		return record(tx, audit)
	})
}

// delete removes a tenant's row; audit, when given, records the change in the same transaction.
func (s *store) delete(ctx context.Context, id string, audit func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("id = ?", id).Delete(&tenantRow{}).Error; err != nil {
			return err
		}
		return record(tx, audit)
	})
}

func record(tx *gorm.DB, audit func(tx *gorm.DB) error) error {
	if audit == nil {
		return nil
	}
	return audit(tx)
}

package schema

import (
	"context"

	"github.com/authplane/authplane/pkg/db"
)

var migrations = []db.Migration{
	{Version: 1, Name: "schemas", SQL: `
CREATE TABLE schema_schemas (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  document TEXT NOT NULL,
  created_at {{bigint}} NOT NULL,
  updated_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, id)
)`},
}

// schemaRow is a schema as stored; Document is the JSON text of the schema. (TEXT rather than JSONB: the
// document is returned as written and only ever read whole.)
type schemaRow struct {
	TenantID    string `gorm:"primaryKey"`
	ID          string `gorm:"primaryKey"`
	Name        string
	Description string
	Document    string
	CreatedAt   int64 `gorm:"autoCreateTime:false"`
	UpdatedAt   int64 `gorm:"autoUpdateTime:false"`
}

func (schemaRow) TableName() string { return "schema_schemas" }

// store is the only code that touches the schema service's table.
type store struct{ db *db.DB }

func (s *store) create(ctx context.Context, row *schemaRow) error {
	return s.db.WithContext(ctx).Create(row).Error
}

func (s *store) get(ctx context.Context, tenantID, id string) (*schemaRow, error) {
	var row schemaRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ?", id).Take(&row).Error
	return &row, err
}

func (s *store) list(ctx context.Context, tenantID, after string, limit int) ([]schemaRow, error) {
	var rows []schemaRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id > ?", after).Order("id").Limit(limit).Find(&rows).Error
	return rows, err
}

func (s *store) update(ctx context.Context, row *schemaRow) (int64, error) {
	res := db.Tenant(s.db.WithContext(ctx), row.TenantID).Where("id = ?", row.ID).
		Select("name", "description", "document", "updated_at").Updates(row)
	return res.RowsAffected, res.Error
}

func (s *store) delete(ctx context.Context, tenantID, id string) (int64, error) {
	res := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ?", id).Delete(&schemaRow{})
	return res.RowsAffected, res.Error
}

func (s *store) deleteTenant(ctx context.Context, tenantID string) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Delete(&schemaRow{}).Error
}

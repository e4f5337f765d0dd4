package token

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authplane/authplane/pkg/db"
)

// refreshRow is one refresh token, named by the keyed hash of its value (the value itself is never stored). Each
// use marks the token used and adds its successor to the same chain, so a used token presented again means the
// chain leaked. Times are Unix microseconds; used_at is 0 until the token is used. session is the JSON of the
// grant's session, which every refresh re-issues.
type refreshRow struct {
	TenantID  string `gorm:"primaryKey"`
	TokenHash string `gorm:"primaryKey"`
	ServerID  string
	ServerUID string `gorm:"column:server_uid"`
	ClientID  string
	// ClientCreated is the client's registration time (its incarnation).
	ClientCreated int64
	ChainID       string
	Scope         string
	Session       string
	IssuedAt      int64
	ExpiresAt     int64
	UsedAt        int64
}

func (refreshRow) TableName() string { return "token_refresh_tokens" }

// chainRow is a chain of refresh tokens: revoking it revokes every token in it, the newest included. expires_at
// is its newest token's expiry (when the row may be pruned). Every rotation and revocation updates this row, so
// on PostgreSQL they take turns on its lock: a rotation never adds a live successor to a chain being revoked.
type chainRow struct {
	TenantID  string `gorm:"primaryKey"`
	ChainID   string `gorm:"primaryKey"`
	ServerID  string
	ClientID  string
	ExpiresAt int64
	RevokedAt int64
}

func (chainRow) TableName() string { return "token_refresh_chains" }

var (
	// errRefreshInvalid: unknown, expired, revoked, or not the presenting client's or workspace's.
	errRefreshInvalid = errors.New("refresh token invalid")
	// errRefreshReused: the token was already rotated; its chain is now revoked.
	errRefreshReused = errors.New("refresh token reused")
)

// refreshUse is one presentation of a refresh token at the token endpoint.
type refreshUse struct {
	tenantID, hash                string
	serverID, serverUID, clientID string // whose token it must be
	clientCreated                 int64
	now                           int64
	// accept checks a valid, unused token before it rotates (the requested scope); an error leaves it unused.
	accept func(*refreshRow) error
	// next is the successor of the token.
	next func(*refreshRow) *refreshRow
}

// rotateRefresh uses a refresh token in one transaction: the token's row is locked (FOR UPDATE on PostgreSQL;
// SQLite transactions begin immediate, so they run one at a time), then a valid unused token is marked used and
// its successor inserted, while an already used one revokes its chain, committed before errRefreshReused is
// returned. Of concurrent uses of one token exactly one rotates it.
func (s *store) rotateRefresh(ctx context.Context, u *refreshUse) (*refreshRow, error) {
	var cur refreshRow
	reused := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := db.Tenant(tx, u.tenantID).Where("token_hash = ?", u.hash)
		if s.db.Dialect == db.Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&cur).Error; err != nil {
			if db.IsNotFound(err) {
				return errRefreshInvalid
			}
			return err
		}
		if cur.ServerID != u.serverID || cur.ServerUID != u.serverUID || cur.ClientID != u.clientID ||
			cur.ClientCreated != u.clientCreated || cur.ExpiresAt <= u.now {
			return errRefreshInvalid
		}
		if cur.UsedAt != 0 {
			res := db.Tenant(tx, u.tenantID).Model(&chainRow{}).Where("chain_id = ? AND revoked_at = 0", cur.ChainID).
				Update("revoked_at", u.now)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return errRefreshInvalid // revoked before: nothing to do
			}
			reused = true
			return nil
		}
		if err := u.accept(&cur); err != nil {
			return err
		}
		next := u.next(&cur)
		// The chain row's update both checks that the chain is not revoked and waits for a revocation in flight.
		res := db.Tenant(tx, u.tenantID).Model(&chainRow{}).Where("chain_id = ? AND revoked_at = 0", cur.ChainID).
			Update("expires_at", gorm.Expr("CASE WHEN expires_at > ? THEN expires_at ELSE ? END", next.ExpiresAt, next.ExpiresAt))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return errRefreshInvalid
		}
		res = db.Tenant(tx, u.tenantID).Model(&refreshRow{}).Where("token_hash = ? AND used_at = 0", u.hash).Update("used_at", u.now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return errRefreshInvalid // cannot happen under the lock; never rotate one token twice
		}
		return tx.Create(next).Error
	})
	if err != nil {
		return nil, err
	}
	if reused {
		return nil, errRefreshReused
	}
	return &cur, nil
}

// insertChain stores a new chain with its first token.
func (s *store) insertChain(ctx context.Context, chain *chainRow, first *refreshRow) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(chain).Error; err != nil {
			return err
		}
		return tx.Create(first).Error
	})
}

// revokeRefreshChain revokes the chain of the token with hash when may accepts the token; found reports whether
// the hash names a refresh token of the tenant at all.
func (s *store) revokeRefreshChain(ctx context.Context, tenantID, hash string, may func(*refreshRow) bool, now int64) (found bool, err error) {
	var cur refreshRow
	if err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("token_hash = ?", hash).Take(&cur).Error; err != nil {
		if db.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	if !may(&cur) {
		return true, nil
	}
	return true, db.Tenant(s.db.WithContext(ctx), tenantID).Model(&chainRow{}).
		Where("chain_id = ? AND revoked_at = 0", cur.ChainID).Update("revoked_at", now).Error
}

// deleteRefresh deletes a tenant's refresh tokens and chains matching where (on columns both tables have).
func deleteRefresh(tx *gorm.DB, tenantID, where string, args ...any) error {
	if err := db.Tenant(tx, tenantID).Where(where, args...).Delete(&refreshRow{}).Error; err != nil {
		return err
	}
	return db.Tenant(tx, tenantID).Where(where, args...).Delete(&chainRow{}).Error
}

// deleteClientRefresh deletes the refresh tokens of a client: a client id can be registered again after its
// deletion, and the new client must not inherit them.
func (s *store) deleteClientRefresh(ctx context.Context, tenantID, clientID string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return deleteRefresh(tx, tenantID, "client_id = ?", clientID)
	})
}

// pruneRefresh deletes a tenant's refresh tokens and chains that expired before cutoff.
func (s *store) pruneRefresh(ctx context.Context, tenantID string, cutoff int64) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return deleteRefresh(tx, tenantID, "expires_at <= ?", cutoff)
	})
}

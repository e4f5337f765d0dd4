package token

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authplane/authplane/pkg/db"
)

// sessionRow is a login session: one password-grant login and the refresh tokens rotated from it. Its id is the
// sid of every token issued in it. Times are Unix microseconds. expires_at is the absolute end (the workspace's
// session_ttl after the login); refresh_expires_at is when its newest refresh token expires (0 without refresh
// tokens); access_expires_at is when the last access token issued in it expires, so an ended session stays on the
// denylist exactly as long as one of its access tokens could still be presented. ended_at is 0 while it lives.
// Every rotation and every end updates this row, so on PostgreSQL they take turns on its lock: a rotation never
// adds a live successor to a session being ended.
type sessionRow struct {
	TenantID string `gorm:"primaryKey"`
	ID       string `gorm:"primaryKey"`
	ServerID string
	ClientID string
	// PoolID and Subject name the pool user (subject alone for users of an external verifier).
	PoolID           string
	Subject          string
	CreatedAt        int64 `gorm:"autoCreateTime:false"`
	ExpiresAt        int64
	LastUsedAt       int64
	RefreshExpiresAt int64
	AccessExpiresAt  int64
	EndedAt          int64
	EndReason        string
}

func (sessionRow) TableName() string { return "token_sessions" }

// Why a session ended (end_reason).
const (
	endUserChanged   = "user_changed"   // made inactive, deleted, or given a new password
	endAdmin         = "ended_by_admin" // the sessions API
	endRefreshReuse  = "refresh_reuse"  // a spent refresh token was presented again
	endRevoked       = "revoked"        // its refresh token was revoked (RFC 7009)
	endClientDeleted = "client_deleted"
)

// refreshRow is one refresh token, named by the keyed hash of its value (the value itself is never stored). Each
// use marks the token used and adds its successor to the same session, so a used token presented again means
// the session's tokens leaked. used_at is 0 until the token is used. login is the JSON of what the login
// established, which every refresh re-issues.
type refreshRow struct {
	TenantID  string `gorm:"primaryKey"`
	TokenHash string `gorm:"primaryKey"`
	ServerID  string
	ServerUID string `gorm:"column:server_uid"`
	ClientID  string
	// ClientCreated is the client's registration time (its incarnation).
	ClientCreated int64
	SessionID     string
	Scope         string
	Login         string `gorm:"column:session"`
	IssuedAt      int64
	ExpiresAt     int64
	UsedAt        int64
}

func (refreshRow) TableName() string { return "token_refresh_tokens" }

var (
	// errRefreshInvalid: unknown, expired, of an ended session, or not the presenting client's or workspace's.
	errRefreshInvalid = errors.New("refresh token invalid")
	// errRefreshReused: the token was already rotated; its session has now ended.
	errRefreshReused = errors.New("refresh token reused")
)

// refreshUse is one presentation of a refresh token at the token endpoint.
type refreshUse struct {
	tenantID, hash                string
	serverID, serverUID, clientID string // whose token it must be
	clientCreated                 int64
	now                           int64
	// accessExpires is when the access token this use issues would expire; the session caps it (rotated.accessExpires).
	accessExpires int64
	// accept checks a valid, unused token before it rotates (the requested scope); an error leaves it unused.
	accept func(*refreshRow) error
	// next is the successor of the token, expiring at most at expires (the session's end caps it).
	next func(cur *refreshRow, expires int64) *refreshRow
}

// rotated is the outcome of a rotation.
type rotated struct {
	cur     refreshRow
	session sessionRow
	// accessExpires is the expiry of the access token to issue, capped by the session's end.
	accessExpires int64
}

// rotateRefresh uses a refresh token in one transaction: the token's row is read (locked FOR UPDATE on
// PostgreSQL; SQLite transactions begin immediate, so they run one at a time), then a valid unused token of a live
// session is marked used, its successor inserted and the session's times moved on, while an already used one ends
// its session, committed before errRefreshReused is returned. Of concurrent uses of one token exactly one rotates
// it.
func (s *store) rotateRefresh(ctx context.Context, u *refreshUse) (*rotated, error) {
	var out rotated
	reused := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := db.Tenant(tx, u.tenantID).Where("token_hash = ?", u.hash)
		if s.db.Dialect == db.Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		cur := &out.cur
		if err := q.Take(cur).Error; err != nil {
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
			n, err := endSessions(tx, u.tenantID, u.now, endRefreshReuse, "id = ?", cur.SessionID)
			if err != nil {
				return err
			}
			if n == 0 {
				return errRefreshInvalid // ended before: nothing to do
			}
			reused = true
			return nil
		}
		if err := u.accept(cur); err != nil {
			return err
		}
		// Reading the live session through its update both checks it and waits for an end in flight.
		sess := &out.session
		res := db.Tenant(tx, u.tenantID).Model(sess).Clauses(clause.Returning{}).
			Where("id = ? AND ended_at = 0 AND expires_at > ?", cur.SessionID, u.now).
			Updates(map[string]any{"last_used_at": u.now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return errRefreshInvalid
		}
		out.accessExpires = min(u.accessExpires, sess.ExpiresAt)
		next := u.next(cur, sess.ExpiresAt)
		res = db.Tenant(tx, u.tenantID).Model(&sessionRow{}).Where("id = ?", cur.SessionID).Updates(map[string]any{
			"refresh_expires_at": max(sess.RefreshExpiresAt, next.ExpiresAt),
			"access_expires_at":  max(sess.AccessExpiresAt, out.accessExpires),
		})
		if res.Error != nil {
			return res.Error
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
		return &out, errRefreshReused
	}
	return &out, nil
}

// insertSession stores a new session with its first refresh token (nil when it has none).
func (s *store) insertSession(ctx context.Context, sess *sessionRow, first *refreshRow) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(sess).Error; err != nil {
			return err
		}
		if first == nil {
			return nil
		}
		return tx.Create(first).Error
	})
}

// endSessions ends the live sessions of a tenant matching where; it returns how many ended.
func endSessions(tx *gorm.DB, tenantID string, now int64, reason, where string, args ...any) (int64, error) {
	res := db.Tenant(tx, tenantID).Model(&sessionRow{}).Where("ended_at = 0").Where(where, args...).
		Updates(map[string]any{"ended_at": now, "end_reason": reason})
	return res.RowsAffected, res.Error
}

// endSessions ends the live sessions of a tenant matching where, and returns the ids of those that ended.
func (s *store) endSessions(ctx context.Context, tenantID string, now int64, reason, where string, args ...any) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := db.Tenant(tx, tenantID).Model(&sessionRow{}).Where("ended_at = 0").Where(where, args...)
		if s.db.Dialect == db.Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Pluck("id", &ids).Error; err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		_, err := endSessions(tx, tenantID, now, reason, "id IN ?", ids)
		return err
	})
	return ids, err
}

// refreshSession returns the session of a refresh token of the tenant (found false when the hash names none).
func (s *store) refreshSession(ctx context.Context, tenantID, hash string) (*refreshRow, *sessionRow, error) {
	var tok refreshRow
	if err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("token_hash = ?", hash).Take(&tok).Error; err != nil {
		return nil, nil, err
	}
	var sess sessionRow
	if err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ?", tok.SessionID).Take(&sess).Error; err != nil {
		return nil, nil, err
	}
	return &tok, &sess, nil
}

// liveUserSessions lists a user's live sessions after id `after`, in id order.
func (s *store) liveUserSessions(ctx context.Context, tenantID, poolID, subject, after string, now int64, limit int) ([]sessionRow, error) {
	var rows []sessionRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).
		Where("pool_id = ? AND subject = ? AND id > ? AND ended_at = 0 AND expires_at > ?", poolID, subject, after, now).
		Where("refresh_expires_at > ? OR access_expires_at > ?", now, now).
		Order("id").Limit(limit).Find(&rows).Error
	return rows, err
}

// endedSessions lists a tenant's ended sessions whose access tokens have not all expired by now (the denylist).
func (s *store) endedSessions(ctx context.Context, tenantID string, now int64) ([]sessionRow, error) {
	var rows []sessionRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Select("id", "access_expires_at").
		Where("ended_at > 0 AND access_expires_at > ?", now).Find(&rows).Error
	return rows, err
}

// deleteSessions deletes a tenant's sessions and refresh tokens matching where (on columns both tables have).
func deleteSessions(tx *gorm.DB, tenantID, where string, args ...any) error {
	if err := db.Tenant(tx, tenantID).Where(where, args...).Delete(&refreshRow{}).Error; err != nil {
		return err
	}
	return db.Tenant(tx, tenantID).Where(where, args...).Delete(&sessionRow{}).Error
}

// endClientSessions ends the sessions of a client and deletes its refresh tokens: a client id can be registered
// again after its deletion, and the new client must not inherit them. It returns whether a session ended.
func (s *store) endClientSessions(ctx context.Context, tenantID, clientID string, now int64) (bool, error) {
	ended := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		n, err := endSessions(tx, tenantID, now, endClientDeleted, "client_id = ?", clientID)
		if err != nil {
			return err
		}
		ended = n > 0
		return db.Tenant(tx, tenantID).Where("client_id = ?", clientID).Delete(&refreshRow{}).Error
	})
	return ended, err
}

// pruneSessions deletes a tenant's refresh tokens that expired before cutoff, and its sessions that can deny or
// renew nothing any more: ended or past their end, with every access token expired.
func (s *store) pruneSessions(ctx context.Context, tenantID string, cutoff int64) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := db.Tenant(tx, tenantID).Where("expires_at <= ?", cutoff).Delete(&refreshRow{}).Error; err != nil {
			return err
		}
		return db.Tenant(tx, tenantID).
			Where("access_expires_at <= ? AND (ended_at > 0 OR expires_at <= ? OR refresh_expires_at <= ?)", cutoff, cutoff, cutoff).
			Delete(&sessionRow{}).Error
	})
}

package token

import (
	"context"
	"database/sql"
	"errors"
	"sync"

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
	// ParentID is the browser session that signed this app session in (authorization code), else empty.
	ParentID string
	// BrowserHash names a browser session: the keyed hash of its SSO cookie's value (empty for app sessions).
	BrowserHash string
	// AuthTime is when the user of a browser session last authenticated (Unix seconds).
	AuthTime int64
	// Login is a browser session's login (JSON of login, without scope): what each app it signs in gets.
	Login string
}

func (sessionRow) TableName() string { return "token_sessions" }

// Why a session ended (end_reason).
const (
	endUserChanged    = "user_changed"   // made inactive, deleted, or given a new password
	endAdmin          = "ended_by_admin" // the sessions API
	endRefreshReuse   = "refresh_reuse"  // a spent refresh token was presented again
	endRevoked        = "revoked"        // its refresh token was revoked (RFC 7009)
	endClientDeleted  = "client_deleted"
	endLogout         = "logout"          // RP-initiated logout, or the browser signed in as another user
	endCodeReuse      = "code_reuse"      // its authorization code was presented again
	endConsentRevoked = "consent_revoked" // the user revoked its client's consent
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
	// accessExpires and refreshExpires are when the access token this use issues and the successor would expire;
	// the session's end caps both.
	accessExpires, refreshExpires int64
	// accept checks a valid, unused token before it rotates (the requested scope); an error leaves it unused.
	accept func(*refreshRow) error
	// next is the successor of the token, expiring at expires.
	next func(cur *refreshRow, expires int64) *refreshRow
}

// rotated is the outcome of a rotation.
type rotated struct {
	cur     refreshRow
	session sessionRow
	// accessExpires is the expiry of the access token to issue, capped by the session's end.
	accessExpires int64
}

// Statements of the rotation, prepared once (see db.Stmt): a rotation is the hot path of every password-grant app.
const (
	// claimRefresh marks an unused, unexpired token of the presenting client used, returning what its successor
	// needs. On PostgreSQL the update locks the row: of concurrent uses of one token, one claims it and the others
	// find it used once the first commits.
	claimRefresh = `UPDATE token_refresh_tokens SET used_at = ?
WHERE tenant_id = ? AND token_hash = ? AND used_at = 0 AND expires_at > ?
  AND server_id = ? AND server_uid = ? AND client_id = ? AND client_created = ?
RETURNING session_id, scope, session`
	// probeRefresh tells a spent token of the presenting client (reuse) from one that is not its at all.
	probeRefresh = `SELECT session_id, used_at FROM token_refresh_tokens
WHERE tenant_id = ? AND token_hash = ? AND expires_at > ?
  AND server_id = ? AND server_uid = ? AND client_id = ? AND client_created = ?`
	// continueSession moves a live session on: last use, its newest refresh token's expiry and the latest expiry
	// of its access tokens, each capped by the session's end.
	continueSession = `UPDATE token_sessions SET last_used_at = ?,
  refresh_expires_at = CASE WHEN expires_at < ? THEN expires_at ELSE ? END,
  access_expires_at = CASE WHEN access_expires_at > (CASE WHEN expires_at < ? THEN expires_at ELSE ? END)
    THEN access_expires_at ELSE (CASE WHEN expires_at < ? THEN expires_at ELSE ? END) END
WHERE tenant_id = ? AND id = ? AND ended_at = 0 AND expires_at > ?
RETURNING pool_id, subject, created_at, expires_at`
	endSession = `UPDATE token_sessions SET ended_at = ?, end_reason = ? WHERE tenant_id = ? AND id = ? AND ended_at = 0`
	// unclaimRefresh gives back a claimed token whose rotation was refused (its scope, or its session's end).
	unclaimRefresh = `UPDATE token_refresh_tokens SET used_at = 0 WHERE tenant_id = ? AND token_hash = ?`
	// insertRefresh adds the successor.
	insertRefresh = `INSERT INTO token_refresh_tokens (tenant_id, token_hash, server_id, server_uid, client_id, client_created,
  session_id, scope, session, issued_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`
)

// rotationStmts are the rotation's statements, prepared on first use.
type rotationStmts struct {
	once                                              sync.Once
	err                                               error
	claim, probe, continued, end, unclaim, insertSucc *db.Stmt
}

func (s *store) rotation(ctx context.Context) (*rotationStmts, error) {
	r := &s.rotate
	r.once.Do(func() {
		for _, p := range []struct {
			dst   **db.Stmt
			query string
		}{{&r.claim, claimRefresh}, {&r.probe, probeRefresh}, {&r.continued, continueSession}, {&r.end, endSession}, {&r.unclaim, unclaimRefresh}, {&r.insertSucc, insertRefresh}} {
			if *p.dst, r.err = s.db.Prepare(context.WithoutCancel(ctx), p.query); r.err != nil {
				return
			}
		}
	})
	return r, r.err
}

// rotateRefresh uses a refresh token: a valid unused token of a live session is marked used, the session's times
// move on and its successor is inserted, while an already used one ends its session, committed before
// errRefreshReused is returned. Rotations are committed in groups (see rotator): concurrent rotations share one
// transaction, which on SQLite, with its one writer, is what makes them many per second.
func (s *store) rotateRefresh(ctx context.Context, u *refreshUse) (*rotated, error) {
	return s.rotator.rotate(ctx, u)
}

// rotateOne is one rotation inside a transaction. Its outcome for this token (invalid, reused, refused by accept)
// is returned as the error of the rotation and leaves the transaction usable for the others; an error of the
// database itself is returned as failed, and the whole transaction is rolled back.
func rotateOne(ctx context.Context, tx *sql.Tx, st *rotationStmts, u *refreshUse) (out *rotated, outcome, failed error) {
	out = &rotated{}
	cur := &out.cur
	*cur = refreshRow{TenantID: u.tenantID, TokenHash: u.hash, ServerID: u.serverID, ServerUID: u.serverUID,
		ClientID: u.clientID, ClientCreated: u.clientCreated, UsedAt: u.now}
	identity := []any{u.serverID, u.serverUID, u.clientID, u.clientCreated}
	err := tx.StmtContext(ctx, st.claim.Stmt).QueryRowContext(ctx, append([]any{u.now, u.tenantID, u.hash, u.now}, identity...)...).
		Scan(&cur.SessionID, &cur.Scope, &cur.Login)
	if errors.Is(err, sql.ErrNoRows) {
		var usedAt int64
		err := tx.StmtContext(ctx, st.probe.Stmt).QueryRowContext(ctx, append([]any{u.tenantID, u.hash, u.now}, identity...)...).
			Scan(&cur.SessionID, &usedAt)
		switch {
		case errors.Is(err, sql.ErrNoRows) || (err == nil && usedAt == 0):
			return out, errRefreshInvalid, nil // unknown, expired, or not this client's
		case err != nil:
			return nil, nil, err
		}
		res, err := tx.StmtContext(ctx, st.end.Stmt).ExecContext(ctx, u.now, endRefreshReuse, u.tenantID, cur.SessionID)
		if err != nil {
			return nil, nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return out, errRefreshInvalid, nil // its session ended before: nothing to do
		}
		return out, errRefreshReused, nil
	}
	if err != nil {
		return nil, nil, err
	}
	// From here on, a refusal gives the token back: it stays unused.
	unclaim := func(outcome error) (*rotated, error, error) {
		if _, err := tx.StmtContext(ctx, st.unclaim.Stmt).ExecContext(ctx, u.tenantID, u.hash); err != nil {
			return nil, nil, err
		}
		return out, outcome, nil
	}
	if err := u.accept(cur); err != nil {
		return unclaim(err)
	}
	sess := &out.session
	sess.TenantID, sess.ID = u.tenantID, cur.SessionID
	access, refresh := u.accessExpires, u.refreshExpires
	err = tx.StmtContext(ctx, st.continued.Stmt).QueryRowContext(ctx, u.now, refresh, refresh, access, access, access, access,
		u.tenantID, cur.SessionID, u.now).Scan(&sess.PoolID, &sess.Subject, &sess.CreatedAt, &sess.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return unclaim(errRefreshInvalid) // the session ended or reached its end
	}
	if err != nil {
		return nil, nil, err
	}
	out.accessExpires = min(access, sess.ExpiresAt)
	next := u.next(cur, min(refresh, sess.ExpiresAt))
	if _, err := tx.StmtContext(ctx, st.insertSucc.Stmt).ExecContext(ctx, next.TenantID, next.TokenHash, next.ServerID, next.ServerUID,
		next.ClientID, next.ClientCreated, next.SessionID, next.Scope, next.Login, next.IssuedAt, next.ExpiresAt); err != nil {
		return nil, nil, err
	}
	return out, nil, nil
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

// deleteSessions deletes a tenant's sessions, refresh tokens and browser sign-in state (pending requests, codes,
// consents) matching where (on columns every one of these tables has).
func deleteSessions(tx *gorm.DB, tenantID, where string, args ...any) error {
	for _, m := range []any{&refreshRow{}, &authRequestRow{}, &authCodeRow{}, &consentRow{}} {
		if err := db.Tenant(tx, tenantID).Where(where, args...).Delete(m).Error; err != nil {
			return err
		}
	}
	return db.Tenant(tx, tenantID).Where(where, args...).Delete(&sessionRow{}).Error
}

// endClientSessions ends the sessions of a client and deletes its refresh tokens: a client id can be registered
// again after its deletion, and the new client must not inherit them. It returns whether a session ended.
func (s *store) endClientSessions(ctx context.Context, tenantID, clientID string, now int64) (bool, error) {
	ended := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// A browser session names the app it signed in first, but belongs to the browser: it outlives that app.
		n, err := endSessions(tx, tenantID, now, endClientDeleted, "client_id = ? AND browser_hash = ''", clientID)
		if err != nil {
			return err
		}
		ended = n > 0
		if err := deleteClientBrowserState(tx, tenantID, clientID); err != nil {
			return err
		}
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
		if err := pruneBrowserState(tx, tenantID, cutoff); err != nil {
			return err
		}
		return db.Tenant(tx, tenantID).
			Where("access_expires_at <= ? AND (ended_at > 0 OR expires_at <= ? OR refresh_expires_at <= ?)", cutoff, cutoff, cutoff).
			Delete(&sessionRow{}).Error
	})
}

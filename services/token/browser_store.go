package token

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"github.com/authplane/authplane/pkg/db"
)

// browserMigration adds what browser sign-in keeps between requests, in the token service's tables like the
// sessions it leads to: pending authorization requests, authorization codes, consents, and browser sessions.
//
// A browser session is a row of token_sessions named by the keyed hash of the SSO cookie's random value
// (browser_hash), with the login it established (login) and when (auth_time). The app sessions it signs in (one
// per authorization code) are rows of token_sessions too, pointing at it by parent_id, so the sessions API lists
// both and ending the browser session ends its apps' sessions with it.
var browserMigration = db.Migration{Version: 7, Name: "browser sign-in", SQL: `
ALTER TABLE token_sessions ADD COLUMN parent_id TEXT NOT NULL DEFAULT '';
ALTER TABLE token_sessions ADD COLUMN browser_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE token_sessions ADD COLUMN auth_time {{bigint}} NOT NULL DEFAULT 0;
ALTER TABLE token_sessions ADD COLUMN login TEXT NOT NULL DEFAULT '';
CREATE INDEX token_sessions_parent ON token_sessions (tenant_id, parent_id);
CREATE INDEX token_sessions_browser ON token_sessions (tenant_id, browser_hash);
CREATE TABLE token_auth_requests (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  server_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  scope TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL DEFAULT '',
  nonce TEXT NOT NULL DEFAULT '',
  code_challenge TEXT NOT NULL,
  prompt TEXT NOT NULL DEFAULT '',
  login_hint TEXT NOT NULL DEFAULT '',
  binding_hash TEXT NOT NULL,
  browser_session_id TEXT NOT NULL DEFAULT '',
  created_at {{bigint}} NOT NULL,
  expires_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX token_auth_requests_expiry ON token_auth_requests (tenant_id, expires_at);
CREATE TABLE token_auth_codes (
  tenant_id TEXT NOT NULL,
  code_hash TEXT NOT NULL,
  server_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  code_challenge TEXT NOT NULL,
  nonce TEXT NOT NULL DEFAULT '',
  scope TEXT NOT NULL DEFAULT '',
  browser_session_id TEXT NOT NULL,
  issued_at {{bigint}} NOT NULL,
  expires_at {{bigint}} NOT NULL,
  used_at {{bigint}} NOT NULL DEFAULT 0,
  session_id TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (tenant_id, code_hash)
);
CREATE INDEX token_auth_codes_expiry ON token_auth_codes (tenant_id, expires_at);
CREATE TABLE token_consents (
  tenant_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  subject TEXT NOT NULL,
  pool_id TEXT NOT NULL DEFAULT '',
  server_id TEXT NOT NULL,
  scope TEXT NOT NULL,
  granted_at {{bigint}} NOT NULL,
  PRIMARY KEY (tenant_id, client_id, subject)
);
CREATE INDEX token_consents_user ON token_consents (tenant_id, pool_id, subject, client_id)`}

// authRequestRow is an authorization request waiting for the user to sign in or consent. binding_hash is the
// keyed hash of the browser's CSRF binding cookie: only the browser that started the request can finish it.
// browser_session_id is set once the user signed in and the request waits for consent. Times are Unix
// microseconds.
type authRequestRow struct {
	TenantID         string `gorm:"primaryKey"`
	ID               string `gorm:"primaryKey"`
	ServerID         string
	ClientID         string
	RedirectURI      string `gorm:"column:redirect_uri"`
	Scope            string
	State            string
	Nonce            string
	CodeChallenge    string
	Prompt           string
	LoginHint        string
	BindingHash      string
	BrowserSessionID string
	CreatedAt        int64 `gorm:"autoCreateTime:false"`
	ExpiresAt        int64
}

func (authRequestRow) TableName() string { return "token_auth_requests" }

// authCodeRow is an authorization code, named by the keyed hash of its value. used_at is 0 until the code is
// exchanged; session_id is then the app session the exchange started, which a second use ends (RFC 6749
// section 4.1.2).
type authCodeRow struct {
	TenantID         string `gorm:"primaryKey"`
	CodeHash         string `gorm:"primaryKey"`
	ServerID         string
	ClientID         string
	RedirectURI      string `gorm:"column:redirect_uri"`
	CodeChallenge    string
	Nonce            string
	Scope            string
	BrowserSessionID string
	IssuedAt         int64
	ExpiresAt        int64
	UsedAt           int64
	SessionID        string
}

func (authCodeRow) TableName() string { return "token_auth_codes" }

// consentRow is what a user allowed a client: the scopes (space-separated), until revoked. pool_id is the user's
// pool (empty for users of an external verifier).
type consentRow struct {
	TenantID  string `gorm:"primaryKey"`
	ClientID  string `gorm:"primaryKey"`
	Subject   string `gorm:"primaryKey"`
	PoolID    string
	ServerID  string
	Scope     string
	GrantedAt int64
}

func (consentRow) TableName() string { return "token_consents" }

// errCodeSpent: the code was exchanged already (by a concurrent request that won the claim).
var errCodeSpent = errors.New("authorization code already used")

func (s *store) insertAuthRequest(ctx context.Context, row *authRequestRow) error {
	return s.db.WithContext(ctx).Create(row).Error
}

// authRequest returns a pending request that has not expired (gorm.ErrRecordNotFound otherwise).
func (s *store) authRequest(ctx context.Context, tenantID, serverID, id string, now int64) (*authRequestRow, error) {
	var row authRequestRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ? AND server_id = ? AND expires_at > ?", id, serverID, now).Take(&row).Error
	return &row, err
}

// attachBrowserSession records that the user of a pending request signed in, in browser session sid.
func (s *store) attachBrowserSession(ctx context.Context, tenantID, id, sid string) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Model(&authRequestRow{}).Where("id = ?", id).
		Update("browser_session_id", sid).Error
}

func (s *store) deleteAuthRequest(ctx context.Context, tenantID, id string) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ?", id).Delete(&authRequestRow{}).Error
}

// browserSession returns the live browser session of a workspace named by a cookie's hash.
func (s *store) browserSession(ctx context.Context, tenantID, serverID, hash string, now int64) (*sessionRow, error) {
	var row sessionRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).
		Where("browser_hash = ? AND server_id = ? AND ended_at = 0 AND expires_at > ?", hash, serverID, now).Take(&row).Error
	return &row, err
}

// liveSession returns a session that has neither ended nor reached its end.
func (s *store) liveSession(ctx context.Context, tenantID, id string, now int64) (*sessionRow, error) {
	var row sessionRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ? AND ended_at = 0 AND expires_at > ?", id, now).Take(&row).Error
	return &row, err
}

// session returns a session, live or not.
func (s *store) session(ctx context.Context, tenantID, id string) (*sessionRow, error) {
	var row sessionRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("id = ?", id).Take(&row).Error
	return &row, err
}

// reauthenticated moves a browser session's auth_time (the same user signed in again, prompt=login or max_age).
func (s *store) reauthenticated(ctx context.Context, tenantID, id string, authTime, now int64) error {
	return db.Tenant(s.db.WithContext(ctx), tenantID).Model(&sessionRow{}).Where("id = ? AND ended_at = 0", id).
		Updates(map[string]any{"auth_time": authTime, "last_used_at": now}).Error
}

func (s *store) insertCode(ctx context.Context, row *authCodeRow) error {
	return s.db.WithContext(ctx).Create(row).Error
}

func (s *store) code(ctx context.Context, tenantID, hash string) (*authCodeRow, error) {
	var row authCodeRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("code_hash = ?", hash).Take(&row).Error
	return &row, err
}

// redeemCode spends a code and starts the app session of its exchange, in one transaction: the conditional
// UPDATE lets exactly one exchange of a code claim it (errCodeSpent for any other), and records the session that
// a later use must end.
func (s *store) redeemCode(ctx context.Context, code *authCodeRow, sess *sessionRow, first *refreshRow, now int64) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := db.Tenant(tx, code.TenantID).Model(&authCodeRow{}).
			Where("code_hash = ? AND used_at = 0 AND expires_at > ?", code.CodeHash, now).
			Updates(map[string]any{"used_at": now, "session_id": sess.ID})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errCodeSpent
		}
		if err := tx.Create(sess).Error; err != nil {
			return err
		}
		if first == nil {
			return nil
		}
		return tx.Create(first).Error
	})
}

func (s *store) consent(ctx context.Context, tenantID, clientID, subject string) (*consentRow, error) {
	var row consentRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("client_id = ? AND subject = ?", clientID, subject).Take(&row).Error
	return &row, err
}

// saveConsent records (or widens) what a user allowed a client.
func (s *store) saveConsent(ctx context.Context, row *consentRow) error {
	return s.db.WithContext(ctx).Save(row).Error
}

// userConsents lists a pool user's consents after client id `after`, in client id order.
func (s *store) userConsents(ctx context.Context, tenantID, poolID, subject, after string, limit int) ([]consentRow, error) {
	var rows []consentRow
	err := db.Tenant(s.db.WithContext(ctx), tenantID).Where("pool_id = ? AND subject = ? AND client_id > ?", poolID, subject, after).
		Order("client_id").Limit(limit).Find(&rows).Error
	return rows, err
}

// deleteConsent revokes a pool user's consent to a client; it reports whether there was one.
func (s *store) deleteConsent(ctx context.Context, tenantID, poolID, subject, clientID string) (bool, error) {
	res := db.Tenant(s.db.WithContext(ctx), tenantID).Where("pool_id = ? AND subject = ? AND client_id = ?", poolID, subject, clientID).
		Delete(&consentRow{})
	return res.RowsAffected > 0, res.Error
}

// deleteClientBrowserState deletes a client's consents, codes and pending requests (the client was deleted).
func deleteClientBrowserState(tx *gorm.DB, tenantID, clientID string) error {
	for _, m := range []any{&consentRow{}, &authCodeRow{}, &authRequestRow{}} {
		if err := db.Tenant(tx, tenantID).Where("client_id = ?", clientID).Delete(m).Error; err != nil {
			return err
		}
	}
	return nil
}

// codeRetention keeps spent and expired codes a while after their expiry, so a replay soon after is still
// recognised as one (and ends what the first use issued) rather than taken for an unknown code.
const codeRetention int64 = 10 * 60 * 1e6

// pruneBrowserState deletes expired pending requests and codes past their retention.
func pruneBrowserState(tx *gorm.DB, tenantID string, cutoff int64) error {
	if err := db.Tenant(tx, tenantID).Where("expires_at <= ?", cutoff).Delete(&authRequestRow{}).Error; err != nil {
		return err
	}
	return db.Tenant(tx, tenantID).Where("expires_at <= ?", cutoff-codeRetention).Delete(&authCodeRow{}).Error
}

package token

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/secrets"
)

// defaultSessionTTL applies when the workspace sets no session_ttl.
const defaultSessionTTL = 90 * 24 * time.Hour

// sessionTTL is the workspace's absolute session lifetime.
func (w *workspaceInfo) sessionTTL() time.Duration {
	if ttl := w.md.GetSessionTtl().AsDuration(); ttl >= time.Second {
		return ttl
	}
	return defaultSessionTTL
}

// newSession is the session a login starts at now: its id is the sid of every token issued in it.
func (s *Service) newSession(g *grant, src *workspacev1.IdentitySource, l *login, now time.Time) *sessionRow {
	sess := &sessionRow{
		TenantID: g.ws.tenantID, ID: secrets.NewID(), ServerID: g.ws.serverID, ClientID: g.client.id,
		Subject: l.Subject, CreatedAt: now.UnixMicro(), ExpiresAt: now.Add(g.ws.sessionTTL()).UnixMicro(),
		LastUsedAt: now.UnixMicro(),
	}
	if src.GetMethod() == methodIdentityPool {
		sess.PoolID = src.GetIdentityPoolId()
	}
	return sess
}

// firstRefreshToken makes the first refresh token of a session; it never outlives the session.
func (s *Service) firstRefreshToken(g *grant, sess *sessionRow, l *login, now time.Time) (string, *refreshRow, error) {
	raw, err := json.Marshal(l)
	if err != nil {
		return "", nil, apierr.Wrap(err, "encode login")
	}
	tok := secrets.Random(32)
	row := &refreshRow{
		TenantID: g.ws.tenantID, TokenHash: s.refreshHash(tok), ServerID: g.ws.serverID, ServerUID: g.ws.uid,
		ClientID: g.client.id, ClientCreated: g.client.created, SessionID: sess.ID, Scope: l.Scope, Login: string(raw),
		IssuedAt: now.UnixMicro(), ExpiresAt: min(now.Add(s.refreshTTL(g)).UnixMicro(), sess.ExpiresAt),
	}
	sess.RefreshExpiresAt = row.ExpiresAt
	return tok, row, nil
}

// pruneInterval is how often a tenant's dead sessions and expired refresh tokens are cleared, by the first login
// after it passes: often enough to keep the tables small, rarely enough to cost a login nothing measurable.
const pruneInterval = time.Minute

// pruneSessions clears the tenant's sessions and refresh tokens that can no longer deny or renew anything, at most
// once per pruneInterval per process.
func (s *Service) pruneSessions(ctx context.Context, tenantID string, now time.Time) {
	s.pruneMu.Lock()
	due := now.Sub(s.pruned[tenantID]) >= pruneInterval
	if due {
		s.pruned[tenantID] = now
	}
	s.pruneMu.Unlock()
	if !due {
		return
	}
	if err := s.store.pruneSessions(ctx, tenantID, now.UnixMicro()); err != nil {
		s.log.WarnContext(ctx, "pruning sessions and refresh tokens", "tenant", tenantID, "error", err)
	}
}

// sessionsEnded announces that sessions of a workspace (or of the tenant, server "") ended: every verifier drops
// the tenant's denylist, so their access tokens are refused at once.
func (s *Service) sessionsEnded(ctx context.Context, tenantID, serverID string) {
	s.bus.Publish(ctx, changes.Revocations, changes.Key(tenantID, serverID))
}

// endSessions ends the sessions matching where and announces it when any ended.
func (s *Service) endSessions(ctx context.Context, tenantID, reason, where string, args ...any) error {
	ids, err := s.store.endSessions(ctx, tenantID, db.Now(), reason, where, args...)
	if err != nil {
		return apierr.Wrap(err, "end sessions")
	}
	if len(ids) > 0 {
		s.sessionsEnded(ctx, tenantID, "")
	}
	return nil
}

// EndUserSessions ends the sessions of a pool user, or of every user of the pool when user_id is empty (the pool
// was deleted).
func (s *Service) EndUserSessions(ctx context.Context, req *tokenv1.EndUserSessionsRequest) (*emptypb.Empty, error) {
	if req.UserId == "" {
		if err := checkUserRef(req.TenantId, req.PoolId, "-"); err != nil {
			return nil, err
		}
		dropUser(s.users, changes.Key(req.TenantId, req.PoolId))
		return &emptypb.Empty{}, s.endSessions(ctx, req.TenantId, endUserChanged, "pool_id = ?", req.PoolId)
	}
	if err := checkUserRef(req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	s.users.Invalidate(userKey(req.TenantId, req.PoolId, req.UserId))
	if err := s.endSessions(ctx, req.TenantId, endUserChanged, "pool_id = ? AND subject = ?", req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func checkUserRef(tenantID, poolID, userID string) error {
	switch {
	case tenantID == "":
		return apierr.Field("tenant_id", "tenant_id is required")
	case poolID == "":
		return apierr.Field("pool_id", "pool_id is required")
	case userID == "":
		return apierr.Field("user_id", "user_id is required")
	}
	return nil
}

// requireUser answers NotFound unless the pool user exists (the sessions API is about existing users).
func (s *Service) requireUser(ctx context.Context, tenantID, poolID, userID string) error {
	if err := checkUserRef(tenantID, poolID, userID); err != nil {
		return err
	}
	st, err := s.userState(ctx, tenantID, poolID, userID)
	if err != nil {
		return err
	}
	if !st.exists {
		return apierr.NotFound("user %q not found", userID)
	}
	return nil
}

func (s *Service) ListUserSessions(ctx context.Context, req *tokenv1.ListUserSessionsRequest) (*tokenv1.ListUserSessionsResponse, error) {
	if err := s.requireUser(ctx, req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	now := db.Now()
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "sessions/"+req.TenantId+"/"+req.PoolId+"/"+req.UserId,
		func(after string, limit int) ([]sessionRow, error) {
			return s.store.liveUserSessions(ctx, req.TenantId, req.PoolId, req.UserId, after, now, limit)
		}, func(r *sessionRow) string { return r.ID })
	if err != nil {
		return nil, apierr.Wrap(err, "list sessions")
	}
	resp := &tokenv1.ListUserSessionsResponse{Sessions: make([]*tokenv1.Session, 0, len(rows)), NextPageToken: next}
	for i := range rows {
		r := &rows[i]
		resp.Sessions = append(resp.Sessions, &tokenv1.Session{
			Id: r.ID, ClientId: r.ClientID, AuthorizationServerId: r.ServerID,
			CreatedAt:  timestamppb.New(time.UnixMicro(r.CreatedAt)),
			ExpiresAt:  timestamppb.New(time.UnixMicro(r.ExpiresAt)),
			LastUsedAt: timestamppb.New(time.UnixMicro(r.LastUsedAt)),
			Kind:       r.kind(),
		})
	}
	return resp, nil
}

func (s *Service) DeleteUserSession(ctx context.Context, req *tokenv1.DeleteUserSessionRequest) (*emptypb.Empty, error) {
	if err := s.requireUser(ctx, req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	if req.SessionId == "" {
		return nil, apierr.Field("session_id", "session_id is required")
	}
	// Ending a browser session signs the browser out and ends the app sessions it signed in.
	ids, err := s.store.endSessions(ctx, req.TenantId, db.Now(), endAdmin, "(id = ? OR parent_id = ?) AND pool_id = ? AND subject = ?",
		req.SessionId, req.SessionId, req.PoolId, req.UserId)
	if err != nil {
		return nil, apierr.Wrap(err, "end session")
	}
	if len(ids) == 0 {
		return nil, apierr.NotFound("session %q not found", req.SessionId)
	}
	s.sessionsEnded(ctx, req.TenantId, "")
	return &emptypb.Empty{}, nil
}

func (s *Service) DeleteUserSessions(ctx context.Context, req *tokenv1.DeleteUserSessionsRequest) (*emptypb.Empty, error) {
	if err := s.requireUser(ctx, req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	if err := s.endSessions(ctx, req.TenantId, endAdmin, "pool_id = ? AND subject = ?", req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Session kinds (Session.kind).
const (
	sessionBrowser = "browser"
	sessionToken   = "token"
)

func (r *sessionRow) kind() string {
	if r.BrowserHash != "" {
		return sessionBrowser
	}
	return sessionToken
}

// userState is what the token service needs to know of a pool user: whether it may still hold a session, and its
// profile claims (for ID tokens and userinfo).
type userState struct {
	exists bool
	active bool
	// passwordSet is when the user's password was last set through the API (Unix microseconds): sessions that
	// began before were opened with a password that is no longer the user's.
	passwordSet int64
	claims      map[string]any
}

func userKey(tenantID, poolID, userID string) string { return tenantID + "/" + poolID + "/" + userID }

// userState returns a pool user's state from memory, loading it from the pool service once; the pool service
// announces every change of the user, which drops it.
func (s *Service) userState(ctx context.Context, tenantID, poolID, userID string) (*userState, error) {
	return s.users.Get(ctx, userKey(tenantID, poolID, userID), func(ctx context.Context) (*userState, error) {
		ctx, cancel := detached(ctx)
		defer cancel()
		user, err := s.poolAPI.GetUser(s.internal.Outgoing(ctx), &poolv1.GetUserRequest{TenantId: tenantID, PoolId: poolID, UserId: userID})
		switch status.Code(err) {
		case codes.OK:
		case codes.NotFound:
			return &userState{}, nil
		default:
			return nil, remoteFailure(err, "read user")
		}
		if user.GetStatus() == "deleted" {
			return &userState{}, nil
		}
		st := &userState{exists: true, active: user.GetStatus() == "active", claims: userClaims(user)}
		if t := user.GetPasswordUpdatedAt(); t != nil {
			st.passwordSet = t.AsTime().UnixMicro()
		}
		return st, nil
	})
}

// mayContinue reports whether a session of a pool user may go on: the user still exists, is active, and has not
// been given a new password since the session began.
func (st *userState) mayContinue(sess *sessionRow) bool {
	return st.exists && st.active && st.passwordSet <= sess.CreatedAt
}

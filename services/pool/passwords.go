package pool

import (
	"context"
	"errors"

	"google.golang.org/protobuf/types/known/emptypb"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/password"
)

// Results of a password check.
const (
	resultCorrect   = "password_correct"
	resultIncorrect = "password_incorrect"
	resultNotFound  = "user_not_found"
	resultLocked    = "account_locked"
	resultNoPass    = "no_password"
	resultInactive  = "user_inactive"
)

// Passwords longer than this are refused before hashing: no policy allows them, and hashing them is work an
// attacker could ask for.
const maxCheckedPasswordBytes = 4096

func (s *Service) SetUserPassword(ctx context.Context, req *poolv1.SetUserPasswordRequest) (*emptypb.Empty, error) {
	pc, err := s.pool(ctx, req.TenantId, req.PoolId)
	if err != nil {
		return nil, err
	}
	if _, err := s.user(ctx, req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	if req.Password == "" {
		return nil, apierr.Field("password", "password is required")
	}
	hash, err := s.newHash(ctx, pc, "password", req.Password)
	if err != nil {
		return nil, err
	}
	n, err := s.store.setPassword(ctx, req.TenantId, req.PoolId, req.UserId, hash, db.Now())
	if err != nil {
		return nil, apierr.Wrap(err, "set password")
	}
	if n == 0 {
		return nil, apierr.NotFound("user %q not found", req.UserId)
	}
	s.userChanged(ctx, req.TenantId, req.PoolId, req.UserId)
	// The sessions opened with the old password end with it.
	if err := s.endSessions(ctx, req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) UnlockUser(ctx context.Context, req *poolv1.UnlockUserRequest) (*poolv1.User, error) {
	if _, err := s.user(ctx, req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	n, err := s.store.resetAttempts(ctx, req.TenantId, req.PoolId, req.UserId)
	if err != nil {
		return nil, apierr.Wrap(err, "unlock user")
	}
	if n == 0 {
		return nil, apierr.NotFound("user %q not found", req.UserId)
	}
	return s.GetUser(ctx, &poolv1.GetUserRequest{TenantId: req.TenantId, PoolId: req.PoolId, UserId: req.UserId})
}

func (s *Service) VerifyPassword(ctx context.Context, req *poolv1.VerifyPasswordRequest) (*poolv1.VerifyPasswordResponse, error) {
	result, user, err := s.checkPassword(ctx, req.TenantId, req.PoolId, req.Identifier, req.Password)
	if err != nil {
		return nil, err
	}
	resp := &poolv1.VerifyPasswordResponse{Result: result}
	if user != nil {
		resp.UserId = user.ID
	}
	return resp, nil
}

func (s *Service) AuthenticatePassword(ctx context.Context, req *poolv1.AuthenticatePasswordRequest) (*poolv1.AuthenticatePasswordResponse, error) {
	result, user, err := s.checkPassword(ctx, req.TenantId, req.PoolId, req.Identifier, req.Password)
	if err != nil {
		return nil, err
	}
	resp := &poolv1.AuthenticatePasswordResponse{Result: result}
	if result == resultCorrect {
		if resp.User, err = s.withIdentifiers(ctx, user); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// checkPassword is the one password check of the service, shared by every path. Each check is counted as in
// flight before it runs and refused (429) when failures plus checks in flight reach the pool's limit, so
// concurrent guesses cannot exceed it; reaching the limit in failures locks the user for the pool's block
// duration, and a success resets the count. Users that do not exist, are locked or have no
// password cost a hash of the pool's settings all the same, so response times do not tell them apart.
func (s *Service) checkPassword(ctx context.Context, tenantID, poolID, identifier, pw string) (string, *userRow, error) {
	pc, err := s.pool(ctx, tenantID, poolID)
	if err != nil {
		return "", nil, err
	}
	if identifier == "" {
		return "", nil, apierr.Field("identifier", "identifier is required")
	}
	if pw == "" {
		return "", nil, apierr.Field("password", "password is required")
	}
	params := pc.settings.params()
	dummy := func(result string, user *userRow) (string, *userRow, error) {
		if err := s.hasher.VerifyDummy(ctx, pw, params); err != nil {
			return "", nil, hashingError(err)
		}
		return result, user, nil
	}
	user, err := s.store.findByIdentifier(ctx, tenantID, poolID, lookupKeys(identifier))
	if db.IsNotFound(err) {
		return dummy(resultNotFound, nil)
	}
	if err != nil {
		return "", nil, apierr.Wrap(err, "find user")
	}
	now := db.Now()
	if user.LockedUntil > now {
		return dummy(resultLocked, user)
	}
	if user.PasswordHash == "" {
		return dummy(resultNoPass, user)
	}
	stored, err := password.Parse(user.PasswordHash)
	if err != nil {
		return "", nil, apierr.Wrap(err, "read stored password hash")
	}
	tooLong := len(pw) > maxCheckedPasswordBytes
	if tooLong {
		pw = pw[:maxCheckedPasswordBytes] // checked for the time it costs, and failed whatever the outcome
	}

	maxAttempts := pc.settings.Lockout.MaxAttempts
	switch outcome, err := s.store.reserveCheck(ctx, tenantID, poolID, user.ID, maxAttempts, now); {
	case err != nil:
		return "", nil, apierr.Wrap(err, "count password check")
	case outcome == checkLocked:
		return dummy(resultLocked, user)
	case outcome == checkCrowded:
		// Failures plus checks already running reach the limit: running this one could exceed it.
		return "", nil, apierr.TooManyRequests("too many password checks for this user are in progress; retry shortly")
	}

	ok, err := s.hasher.Verify(ctx, pw, stored)
	// The check's outcome is recorded even if the caller has gone: it happened.
	bg := context.WithoutCancel(ctx)
	if err != nil {
		if rerr := s.store.checkAbandoned(bg, tenantID, poolID, user.ID); rerr != nil {
			s.log.WarnContext(ctx, "password check not uncounted", "error", rerr)
		}
		return "", nil, hashingError(err)
	}
	if !ok || tooLong {
		lockUntil := now + pc.settings.block().Microseconds()
		if err := s.store.checkFailed(bg, tenantID, poolID, user.ID, maxAttempts, lockUntil); err != nil {
			return "", nil, apierr.Wrap(err, "count failed password check")
		}
		return resultIncorrect, user, nil
	}
	if err := s.store.checkSucceeded(bg, tenantID, poolID, user.ID); err != nil {
		return "", nil, apierr.Wrap(err, "reset password checks")
	}
	user.FailedAttempts, user.LockedUntil = 0, 0
	if !stored.Matches(params) {
		s.upgrade(ctx, user, pw, params)
	}
	if user.Status != statusActive {
		return resultInactive, user, nil
	}
	return resultCorrect, user, nil
}

// upgrade re-hashes a verified password with the pool's current settings (an imported hash, or one made before
// the settings changed). A failure leaves the old hash, which still verifies, and is only logged.
func (s *Service) upgrade(ctx context.Context, user *userRow, pw string, params password.Params) {
	hash, err := s.hasher.Hash(ctx, pw, params)
	if err != nil {
		if !errors.Is(err, password.ErrBusy) {
			s.log.WarnContext(ctx, "password hash not upgraded", "tenant", user.TenantID, "pool", user.PoolID, "error", err)
		}
		return
	}
	if err := s.store.upgradeHash(ctx, user.TenantID, user.PoolID, user.ID, user.PasswordHash, hash); err != nil {
		s.log.WarnContext(ctx, "password hash not upgraded", "tenant", user.TenantID, "pool", user.PoolID, "error", err)
		return
	}
	user.PasswordHash = hash
}

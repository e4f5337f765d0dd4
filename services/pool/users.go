package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/docschema"
	"github.com/authplane/authplane/pkg/paging"
	"github.com/authplane/authplane/pkg/password"
	"github.com/authplane/authplane/pkg/secrets"
)

// User statuses.
const (
	statusActive   = "active"
	statusInactive = "inactive"
	statusNew      = "new"
	statusDeleted  = "deleted"
)

var statuses = []string{statusActive, statusInactive, statusNew, statusDeleted}

func checkStatus(st string) error {
	if !slices.Contains(statuses, st) {
		return apierr.Field("status", "status must be one of %s", strings.Join(statuses, ", "))
	}
	return nil
}

func (s *Service) CreateUser(ctx context.Context, req *poolv1.CreateUserRequest) (*poolv1.User, error) {
	in := req.GetUser()
	if in == nil {
		return nil, apierr.Field("user", "a user is required")
	}
	pc, err := s.pool(ctx, req.TenantId, req.PoolId)
	if err != nil {
		return nil, err
	}
	now := db.Now()
	user := &userRow{TenantID: req.TenantId, PoolID: req.PoolId, ID: secrets.NewID(), Status: in.Status,
		CreatedAt: now, UpdatedAt: now, StatusUpdatedAt: now}
	if user.Status == "" {
		user.Status = statusActive
	}
	if err := checkStatus(user.Status); err != nil {
		return nil, err
	}
	if len(in.Identifiers) > maxIdentifiersCount {
		return nil, apierr.Field("identifiers", "a user has at most %d identifiers", maxIdentifiersCount)
	}
	idents := make([]identifierRow, 0, len(in.Identifiers))
	for i, id := range in.Identifiers {
		field := fmt.Sprintf("identifiers[%d]", i)
		shown, key, err := normalizeIdentifier(id.GetType(), id.GetIdentifier())
		if err != nil {
			return nil, apierr.Field(field, "%s: %v", field, err)
		}
		if slices.ContainsFunc(idents, func(r identifierRow) bool { return r.Normalized == key }) {
			return nil, apierr.Field(field, "%s: %q is given twice", field, shown)
		}
		idents = append(idents, identifierRow{TenantID: user.TenantID, PoolID: user.PoolID, Normalized: key,
			UserID: user.ID, Type: id.GetType(), Identifier: shown, CreatedAt: now})
	}
	if user.Payload, err = s.validateDocument(ctx, pc, "payload", pc.row.PayloadSchemaID, in.Payload); err != nil {
		return nil, err
	}
	if user.Metadata, err = s.validateDocument(ctx, pc, "metadata", pc.row.MetadataSchemaID, in.Metadata); err != nil {
		return nil, err
	}
	if user.PasswordHash, err = s.credentialHash(ctx, pc, in.Credentials); err != nil {
		return nil, err
	}
	if user.PasswordHash != "" {
		user.PasswordUpdatedAt = now
	}
	if err := s.store.createUser(ctx, user, idents); err != nil {
		return nil, identifierError(err, "create user")
	}
	return userToProto(user, idents), nil
}

// identifierError maps a store error of a write that adds identifiers.
func identifierError(err error, what string) error {
	var c *errConflict
	switch {
	case errors.As(err, &c) && len(c.taken) > 0:
		return apierr.AlreadyExists("identifier %q already exists in this pool", c.taken[0])
	case errors.As(err, &c), db.IsUniqueViolation(err):
		return apierr.AlreadyExists("an identifier already exists in this pool")
	case errors.Is(err, errNoUser):
		return apierr.NotFound("user not found")
	case errors.Is(err, errNoPool):
		return apierr.NotFound("pool not found")
	}
	return apierr.Wrap(err, what)
}

// credentialHash checks the credentials of a new user and returns the hash to store ("" for none): a new
// password is checked against the pool's policy and hashed; an imported hash is checked for format and cost.
func (s *Service) credentialHash(ctx context.Context, pc *poolConfig, creds []*poolv1.UserCredential) (string, error) {
	if len(creds) == 0 {
		return "", nil
	}
	if len(creds) > 1 {
		return "", apierr.Field("credentials", "at most one credential (of type password) may be given")
	}
	c := creds[0]
	if c.Type != "" && c.Type != "password" {
		return "", apierr.Field("credentials[0].type", "unsupported credential type %q (supported: password)", c.Type)
	}
	switch {
	case c.Password != "" && c.HashedPassword != "":
		return "", apierr.Field("credentials[0]", "give either password or hashed_password, not both")
	case c.HashedPassword != "":
		h, err := password.Parse(c.HashedPassword)
		if err == nil {
			err = h.CheckLimits(s.hasher.Limits())
		}
		if err != nil {
			return "", apierr.Field("credentials[0].hashed_password", "credentials[0].hashed_password: %v (supported: bcrypt $2a$/$2b$/$2y$, $argon2id$ PHC, $pbkdf2-sha256$)", err)
		}
		return h.String(), nil
	case c.Password != "":
		return s.newHash(ctx, pc, "credentials[0].password", c.Password)
	}
	return "", apierr.Field("credentials[0].password", "credentials[0] needs a password or a hashed_password")
}

// newHash checks a new password against the pool's policy and hashes it with the pool's settings.
func (s *Service) newHash(ctx context.Context, pc *poolConfig, field, pw string) (string, error) {
	if err := pc.settings.policy().Check(pw); err != nil {
		return "", apierr.Field(field, "%s: %v", field, err)
	}
	h, err := s.hasher.Hash(ctx, pw, pc.settings.params())
	if err != nil {
		return "", hashingError(err)
	}
	return h, nil
}

func hashingError(err error) error {
	if errors.Is(err, password.ErrBusy) {
		return apierr.Unavailable("password hashing is at capacity; retry shortly")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apierr.Unavailable("the request ended before its password could be hashed")
	}
	return apierr.Wrap(err, "hash password")
}

// validateDocument checks a payload or metadata object against the pool's schema (if it has one) and returns it
// as JSON text. A missing object is validated as {} so that required properties are enforced.
func (s *Service) validateDocument(ctx context.Context, pc *poolConfig, field, schemaID string, doc *structpb.Struct) (string, error) {
	value := map[string]any{}
	if doc != nil {
		value = doc.AsMap()
	}
	if schemaID != "" {
		compiled, err := s.schema(ctx, pc.row.TenantID, schemaID)
		if err != nil {
			if apierr.Describe(err).HTTPStatus == 404 {
				return "", apierr.FailedPrecondition("the pool's %s schema %q no longer exists", field, schemaID)
			}
			return "", err
		}
		if err := compiled.Validate(value); err != nil {
			var v *docschema.Violation
			if errors.As(err, &v) && v.Field != "" {
				name := field + "." + v.Field
				return "", apierr.Field(name, "%s: %s", name, v.Message)
			}
			return "", apierr.Field(field, "%s: %v", field, err)
		}
	}
	raw, err := json.Marshal(value)
	if err != nil {
		return "", apierr.Field(field, "%s cannot be encoded as JSON", field)
	}
	return string(raw), nil
}

func (s *Service) GetUser(ctx context.Context, req *poolv1.GetUserRequest) (*poolv1.User, error) {
	user, err := s.user(ctx, req.TenantId, req.PoolId, req.UserId)
	if err != nil {
		return nil, err
	}
	return s.withIdentifiers(ctx, user)
}

// user reads a user, checking the pool exists first so that a missing pool is told apart from a missing user.
func (s *Service) user(ctx context.Context, tenantID, poolID, userID string) (*userRow, error) {
	if _, err := s.pool(ctx, tenantID, poolID); err != nil {
		return nil, err
	}
	row, err := s.store.getUser(ctx, tenantID, poolID, userID)
	if db.IsNotFound(err) {
		return nil, apierr.NotFound("user %q not found", userID)
	}
	if err != nil {
		return nil, apierr.Wrap(err, "get user")
	}
	return row, nil
}

func (s *Service) withIdentifiers(ctx context.Context, user *userRow) (*poolv1.User, error) {
	idents, err := s.store.identifiersOf(ctx, user.TenantID, user.PoolID, []string{user.ID})
	if err != nil {
		return nil, apierr.Wrap(err, "get identifiers")
	}
	return userToProto(user, idents[user.ID]), nil
}

func (s *Service) ListUsers(ctx context.Context, req *poolv1.ListUsersRequest) (*poolv1.ListUsersResponse, error) {
	if _, err := s.pool(ctx, req.TenantId, req.PoolId); err != nil {
		return nil, err
	}
	rows, next, err := paging.Page(req.PageToken, req.PageSize, "users/"+req.TenantId+"/"+req.PoolId,
		func(after string, limit int) ([]userRow, error) {
			return s.store.listUsers(ctx, req.TenantId, req.PoolId, after, limit)
		}, func(r *userRow) string { return r.ID })
	if err != nil {
		return nil, apierr.Wrap(err, "list users")
	}
	resp := &poolv1.ListUsersResponse{Users: []*poolv1.User{}, NextPageToken: next}
	ids := make([]string, len(rows))
	for i := range rows {
		ids[i] = rows[i].ID
	}
	idents, err := s.store.identifiersOf(ctx, req.TenantId, req.PoolId, ids)
	if err != nil {
		return nil, apierr.Wrap(err, "list identifiers")
	}
	for i := range rows {
		resp.Users = append(resp.Users, userToProto(&rows[i], idents[rows[i].ID]))
	}
	return resp, nil
}

func (s *Service) UpdateUser(ctx context.Context, req *poolv1.UpdateUserRequest) (*poolv1.User, error) {
	in := req.GetUser()
	if in == nil {
		return nil, apierr.Field("user", "a user is required")
	}
	pc, err := s.pool(ctx, req.TenantId, req.PoolId)
	if err != nil {
		return nil, err
	}
	user, err := s.user(ctx, req.TenantId, req.PoolId, req.UserId)
	if err != nil {
		return nil, err
	}
	m := newMask(req.UpdateMask)
	if !m.all {
		for _, f := range []string{"identifiers", "credentials"} {
			if m.has(f) {
				return nil, apierr.Field(f, "%s cannot be changed by an update; use the identifiers/add, identifiers/remove and password methods", f)
			}
		}
	}
	now := db.Now()
	columns := []string{"updated_at"}
	if m.has("status") {
		st := in.Status
		if st == "" {
			st = statusActive
		}
		if err := checkStatus(st); err != nil {
			return nil, err
		}
		if st != user.Status {
			user.Status, user.StatusUpdatedAt = st, now
			columns = append(columns, "status", "status_updated_at")
		}
	}
	// A top-level object is replaced whole, whatever paths inside it the mask names.
	if m.has("payload") {
		if user.Payload, err = s.validateDocument(ctx, pc, "payload", pc.row.PayloadSchemaID, in.Payload); err != nil {
			return nil, err
		}
		columns = append(columns, "payload")
	}
	if m.has("metadata") {
		if user.Metadata, err = s.validateDocument(ctx, pc, "metadata", pc.row.MetadataSchemaID, in.Metadata); err != nil {
			return nil, err
		}
		columns = append(columns, "metadata")
	}
	user.UpdatedAt = now
	n, err := s.store.updateUser(ctx, user, columns...)
	if err != nil {
		return nil, apierr.Wrap(err, "update user")
	}
	if n == 0 {
		return nil, apierr.NotFound("user %q not found", req.UserId)
	}
	s.userChanged(ctx, user.TenantID, user.PoolID, user.ID)
	// Ended whenever an update leaves the user inactive, not only when it changes the status: a retry after a
	// failure to end them ends them then.
	if m.has("status") && user.Status != statusActive {
		if err := s.endSessions(ctx, user.TenantID, user.PoolID, user.ID); err != nil {
			return nil, err
		}
	}
	return s.withIdentifiers(ctx, user)
}

func (s *Service) DeleteUser(ctx context.Context, req *poolv1.DeleteUserRequest) (*emptypb.Empty, error) {
	if _, err := s.pool(ctx, req.TenantId, req.PoolId); err != nil {
		return nil, err
	}
	n, err := s.store.deleteUser(ctx, req.TenantId, req.PoolId, req.UserId)
	if err != nil {
		return nil, apierr.Wrap(err, "delete user")
	}
	if n == 0 {
		return nil, apierr.NotFound("user %q not found", req.UserId)
	}
	s.userChanged(ctx, req.TenantId, req.PoolId, req.UserId)
	if err := s.endSessions(ctx, req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) AddUserIdentifier(ctx context.Context, req *poolv1.AddUserIdentifierRequest) (*poolv1.User, error) {
	if _, err := s.pool(ctx, req.TenantId, req.PoolId); err != nil {
		return nil, err
	}
	shown, key, err := normalizeIdentifier(req.Type, req.Identifier)
	if err != nil {
		field := "identifier"
		if req.Type == "" || !slices.Contains([]string{identEmail, identMobile, identUID}, req.Type) {
			field = "type"
		}
		return nil, apierr.Field(field, "%v", err)
	}
	now := db.Now()
	ident := &identifierRow{TenantID: req.TenantId, PoolID: req.PoolId, Normalized: key, UserID: req.UserId,
		Type: req.Type, Identifier: shown, CreatedAt: now}
	if err := s.store.addIdentifier(ctx, ident, now); err != nil {
		if errors.Is(err, errNoUser) {
			return nil, apierr.NotFound("user %q not found", req.UserId)
		}
		return nil, identifierError(err, "add identifier")
	}
	s.userChanged(ctx, req.TenantId, req.PoolId, req.UserId)
	return s.GetUser(ctx, &poolv1.GetUserRequest{TenantId: req.TenantId, PoolId: req.PoolId, UserId: req.UserId})
}

func (s *Service) RemoveUserIdentifier(ctx context.Context, req *poolv1.RemoveUserIdentifierRequest) (*poolv1.User, error) {
	if _, err := s.user(ctx, req.TenantId, req.PoolId, req.UserId); err != nil {
		return nil, err
	}
	keys := lookupKeys(req.Identifier)
	if len(keys) == 0 {
		return nil, apierr.Field("identifier", "identifier is required")
	}
	n, err := s.store.removeIdentifier(ctx, req.TenantId, req.PoolId, req.UserId, keys, db.Now())
	if err != nil {
		return nil, apierr.Wrap(err, "remove identifier")
	}
	if n == 0 {
		return nil, apierr.NotFound("the user has no identifier %q", strings.TrimSpace(req.Identifier))
	}
	s.userChanged(ctx, req.TenantId, req.PoolId, req.UserId)
	return s.GetUser(ctx, &poolv1.GetUserRequest{TenantId: req.TenantId, PoolId: req.PoolId, UserId: req.UserId})
}

func userToProto(r *userRow, idents []identifierRow) *poolv1.User {
	u := &poolv1.User{
		Id: r.ID, TenantId: r.TenantID, PoolId: r.PoolID, Status: r.Status,
		Identifiers:     []*poolv1.UserIdentifier{},
		Payload:         decodeObject(r.Payload),
		Metadata:        decodeObject(r.Metadata),
		CreatedAt:       timestamppb.New(time.UnixMicro(r.CreatedAt)),
		UpdatedAt:       timestamppb.New(time.UnixMicro(r.UpdatedAt)),
		StatusUpdatedAt: timestamppb.New(time.UnixMicro(r.StatusUpdatedAt)),
		HasPassword:     r.PasswordHash != "",
	}
	if r.PasswordUpdatedAt > 0 {
		u.PasswordUpdatedAt = timestamppb.New(time.UnixMicro(r.PasswordUpdatedAt))
	}
	if r.LockedUntil > db.Now() {
		u.LockedUntil = timestamppb.New(time.UnixMicro(r.LockedUntil))
	}
	for _, i := range idents {
		u.Identifiers = append(u.Identifiers, &poolv1.UserIdentifier{Type: i.Type, Identifier: i.Identifier,
			CreatedAt: timestamppb.New(time.UnixMicro(i.CreatedAt))})
	}
	return u
}

// decodeObject turns stored JSON into a Struct; a stored object always decodes, so a failure yields an empty one.
func decodeObject(raw string) *structpb.Struct {
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m == nil {
		return &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		return &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	return st
}

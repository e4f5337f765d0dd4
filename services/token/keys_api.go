package token

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/db"
)

// The keys API (admin plane) and the rotation schedule.

func (s *Service) ListServerKeys(ctx context.Context, req *tokenv1.ListServerKeysRequest) (*tokenv1.ListServerKeysResponse, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	if _, err := s.reconcileKeys(ctx, ws); err != nil {
		return nil, err
	}
	rows, err := s.store.listKeys(ctx, ws.tenantID, ws.serverID)
	if err != nil {
		return nil, apierr.Wrap(err, "read signing keys")
	}
	rows = ownKeys(rows, ws.uid)
	resp := &tokenv1.ListServerKeysResponse{Keys: make([]*tokenv1.SigningKey, 0, len(rows))}
	for i := len(rows) - 1; i >= 0; i-- {
		k, err := keyToProto(&rows[i])
		if err != nil {
			return nil, err
		}
		resp.Keys = append(resp.Keys, k)
	}
	return resp, nil
}

func (s *Service) RotateServerKey(ctx context.Context, req *tokenv1.RotateServerKeyRequest) (*tokenv1.SigningKey, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 3; attempt++ {
		ok, err := s.rotateKeys(ctx, ws, "requested")
		if err != nil {
			return nil, err
		}
		if ok {
			break
		}
	}
	return s.currentKey(ctx, ws)
}

func (s *Service) RevokeServerKey(ctx context.Context, req *tokenv1.RevokeServerKeyRequest) (*tokenv1.SigningKey, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	if req.Kid == "" {
		return nil, apierr.Field("kid", "kid is required")
	}
	ks, err := s.reconcileKeys(ctx, ws)
	if err != nil {
		return nil, err
	}
	// Revoking the next or the current key needs a new next key (and the old next key takes over as current).
	next, err := newKeyRow(s.keyring, ws.tenantID, ws.serverID, ws.uid, ks.maxGeneration+1, ws.signingAlg(), stateNext)
	if err != nil {
		return nil, apierr.Wrap(err, "generate signing key")
	}
	now := db.Now()
	before, err := s.store.revokeKey(ctx, ws.tenantID, ws.serverID, ws.uid, req.Kid, next, now, now+ws.rotationPeriod().Microseconds())
	if err != nil {
		return nil, apierr.Wrap(err, "revoke signing key")
	}
	if before == "" {
		return nil, apierr.NotFound("signing key %q not found (or revoked already)", req.Kid)
	}
	s.log.Warn("signing key revoked", "tenant", ws.tenantID, "server", ws.serverID, "kid", req.Kid, "state", before)
	// The key set changed: verifiers everywhere drop it, and with it every token the key signed; signers switch.
	s.keysChanged(ctx, ws)
	rows, err := s.store.listKeys(ctx, ws.tenantID, ws.serverID)
	if err != nil {
		return nil, apierr.Wrap(err, "read signing keys")
	}
	for i := range rows {
		if rows[i].KID == req.Kid {
			return keyToProto(&rows[i])
		}
	}
	return nil, apierr.NotFound("signing key %q not found", req.Kid)
}

// currentKey is the workspace's current key as the API shows it.
func (s *Service) currentKey(ctx context.Context, ws *workspaceInfo) (*tokenv1.SigningKey, error) {
	ks, err := s.reconcileKeys(ctx, ws)
	if err != nil {
		return nil, err
	}
	return keyToProto(ks.current)
}

func keyToProto(r *keyRow) (*tokenv1.SigningKey, error) {
	var jwk map[string]any
	if err := json.Unmarshal([]byte(r.PublicJWK), &jwk); err != nil {
		return nil, apierr.Wrap(err, "read public key")
	}
	pub, err := structpb.NewStruct(jwk)
	if err != nil {
		return nil, apierr.Wrap(err, "encode public key")
	}
	k := &tokenv1.SigningKey{Kid: r.KID, Alg: r.Alg, State: r.State, PublicJwk: pub, CreatedAt: micros(r.CreatedAt),
		ActivatedAt: micros(r.ActivatedAt), RetiredAt: micros(r.RetiredAt), RevokedAt: micros(r.RevokedAt)}
	return k, nil
}

// micros is a timestamp of Unix microseconds, nil for 0 (never).
func micros(us int64) *timestamppb.Timestamp {
	if us == 0 {
		return nil
	}
	return timestamppb.New(time.UnixMicro(us))
}

// keepSchedule rotates due keys and removes keys no token can need, until ctx ends. Every process runs it; the
// rotation's conditional update makes each due rotation happen exactly once.
func (s *Service) keepSchedule(ctx context.Context) {
	// Ticks well within a JWKS cache period, with jitter so that processes started together do not all ask at once.
	tick := min(max(s.jwksMaxAge/2, time.Second), 30*time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(tick + time.Duration(rand.Int64N(int64(tick/4)+1))):
		}
		s.rotateDue(ctx)
		s.pruneKeys(ctx)
	}
}

// rotateDue rotates every current key whose time has come and whose next key has been published for one JWKS cache
// period.
func (s *Service) rotateDue(ctx context.Context) {
	due, err := s.store.dueRotations(ctx, db.Now(), 500)
	if err != nil {
		s.log.Warn("reading due key rotations", "error", err)
		return
	}
	for _, d := range due {
		ws, err := s.workspace(ctx, d.TenantID, d.ServerID)
		if err != nil || ws.uid != d.ServerUID {
			continue // gone, or another incarnation: its keys go with it
		}
		ks, err := s.reconcileKeys(ctx, ws)
		if err != nil || ks.current.KID != d.KID || ks.next.CreatedAt+s.jwksMaxAge.Microseconds() > db.Now() {
			continue // rotated meanwhile, or the next key is too new to sign: next tick
		}
		if _, err := s.rotateKeys(ctx, ws, "scheduled"); err != nil {
			s.log.Warn("scheduled key rotation", "tenant", d.TenantID, "server", d.ServerID, "error", err)
		}
	}
}

// pruneKeys removes retired and revoked keys once every token they signed has expired (the verifiers' leeway
// included).
func (s *Service) pruneKeys(ctx context.Context) {
	gone, err := s.store.pruneKeys(ctx, db.Now()-authz.ExpiryLeeway.Microseconds())
	if err != nil {
		s.log.Warn("pruning signing keys", "error", err)
		return
	}
	for _, k := range gone {
		s.keysChanged(ctx, &workspaceInfo{tenantID: k.TenantID, serverID: k.ServerID})
	}
}

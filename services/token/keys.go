package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/secrets"
)

// Signing keys have a life: `next` (published in the JWKS, not signing yet), `current` (signs), `retired` (no longer
// signs, published while a token it signed may still be valid), then removed; `revoked` keys verify nothing. A
// workspace always has one current and one next key. Rotation (on schedule, on demand, or when the workspace's
// signing_alg changes) promotes the next key, retires the current one and makes a new next key; a scheduled
// rotation waits until the next key has been published for one JWKS cache period, so no client that cached the
// key set meets an unknown key.

// Key states.
const (
	stateNext    = "next"
	stateCurrent = "current"
	stateRetired = "retired"
	stateRevoked = "revoked"
)

// accessTokenType is the JOSE `typ` of access tokens (RFC 9068).
const accessTokenType = authz.AccessTokenType

const (
	// defaultJWKSMaxAge is how long clients may cache a key set unless configured otherwise.
	defaultJWKSMaxAge = 5 * time.Minute
	// defaultRotationPeriod applies when the workspace sets no key_rotation_period.
	defaultRotationPeriod = 30 * 24 * time.Hour
	// coverHeadroom is how far beyond a token's expiry a key's recorded last expiry (max_exp) is raised at once, so
	// the record is written about once per headroom per key and process, never per token, and a process restarted
	// within the headroom writes nothing. It keeps a retired key published that much longer than needed.
	coverHeadroom = time.Hour
)

// workspaceKeys is a workspace's key material as the hot path needs it: the signer of the current key, built once
// (the private key is decrypted once per load, never per token), and the published public keys. Every key belongs
// to one incarnation of the workspace (uid): keys of an earlier workspace of the same id are never loaded.
type workspaceKeys struct {
	uid string
	kid string // the current key
	alg string
	// signer signs access tokens, idSigner ID tokens, with the current key (JOSE types at+jwt and JWT).
	signer, idSigner *signer
	public           []*tokenv1.JWK
	// verify holds the published public keys, for the tokens the service itself checks (logout's id_token_hint).
	verify jose.JSONWebKeySet

	// covered is the expiry (Unix µs) up to which the current key's row records that it signed tokens (max_exp):
	// a retired key is removed only after it. Raising it takes coverMu and one database write.
	covered atomic.Int64
	coverMu sync.Mutex
}

// keyAAD binds a sealed private key to its tenant, workspace incarnation and kid. Keys sealed before
// incarnations existed (no uid) keep the first form, so they still open while they are being replaced.
func keyAAD(tenantID, serverID, uid, kid string) []byte {
	if uid == "" {
		return []byte("authplane signing key v1\x00" + tenantID + "\x00" + serverID + "\x00" + kid)
	}
	return []byte("authplane signing key v2\x00" + tenantID + "\x00" + serverID + "\x00" + uid + "\x00" + kid)
}

// newKeyRow generates a key of alg in state and seals its private half.
func newKeyRow(keyring *secrets.Keyring, tenantID, serverID, uid string, generation int, alg, state string) (*keyRow, error) {
	priv, err := generateKey(alg)
	if err != nil {
		return nil, err
	}
	kid := secrets.Random(12)
	jwk := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg, Use: "sig"}
	private, err := jwk.MarshalJSON()
	if err != nil {
		return nil, err
	}
	public, err := jwk.Public().MarshalJSON()
	if err != nil {
		return nil, err
	}
	return &keyRow{
		TenantID: tenantID, ServerID: serverID, ServerUID: uid, KID: kid, Generation: generation, Alg: alg,
		State: state, PublicJWK: string(public), SealedPrivateJWK: keyring.Seal(private, keyAAD(tenantID, serverID, uid, kid)),
		CreatedAt: db.Now(),
	}, nil
}

// openKey decrypts a row's private key; it fails unless the row's tenant, workspace, uid and kid are those it
// was sealed for.
func openKey(keyring *secrets.Keyring, row *keyRow) (*jose.JSONWebKey, error) {
	plain, err := keyring.Open(row.SealedPrivateJWK, keyAAD(row.TenantID, row.ServerID, row.ServerUID, row.KID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s of %s/%s: %w", row.KID, row.TenantID, row.ServerID, err)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(plain); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", row.KID, err)
	}
	if jwk.KeyID != row.KID || jwk.IsPublic() || !jwk.Valid() {
		return nil, fmt.Errorf("signing key %s: not a private key with that kid", row.KID)
	}
	return &jwk, nil
}

// publicJWK converts a stored public JWK to its API form.
func publicJWK(row *keyRow) (*tokenv1.JWK, error) {
	var k struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	if err := json.Unmarshal([]byte(row.PublicJWK), &k); err != nil {
		return nil, fmt.Errorf("public key %s: %w", row.KID, err)
	}
	return &tokenv1.JWK{Kty: k.Kty, Kid: k.Kid, Use: k.Use, Alg: k.Alg, Crv: k.Crv, X: k.X, Y: k.Y, N: k.N, E: k.E}, nil
}

// signingAlg is the workspace's configured algorithm.
func (w *workspaceInfo) signingAlg() string {
	switch alg := w.md.GetSigningAlg(); alg {
	case algES256, algEdDSA, algRS256:
		return alg
	}
	return algES256
}

// rotationPeriod is how long a key of the workspace signs.
func (w *workspaceInfo) rotationPeriod() time.Duration {
	if p := w.md.GetKeyRotationPeriod().AsDuration(); p > 0 {
		return p
	}
	return defaultRotationPeriod
}

// workspaceKeys returns the keys of the workspace's current incarnation from memory, loading (and on first use
// creating) them once.
func (s *Service) workspaceKeys(ctx context.Context, ws *workspaceInfo) (*workspaceKeys, error) {
	key := ws.key
	load := func(ctx context.Context) (*workspaceKeys, error) {
		ctx, cancel := detached(ctx)
		defer cancel()
		return s.loadKeys(ctx, ws)
	}
	keys, err := s.keys.Get(ctx, key, load)
	if err == nil && keys.uid != ws.uid {
		// Cached for another incarnation of the same id (the workspace was deleted and created again): those
		// keys must never serve the new one.
		s.keys.Invalidate(key)
		keys, err = s.keys.Get(ctx, key, load)
		if err == nil && keys.uid != ws.uid {
			return nil, errWorkspaceChanged()
		}
	}
	return keys, err
}

// errWorkspaceChanged answers a request that raced with the deletion and re-creation of its workspace.
func errWorkspaceChanged() *apierr.Error {
	return apierr.OAuth("temporarily_unavailable", "the authorization server changed during the request; retry")
}

// ownKeys returns the rows of incarnation uid, in order.
func ownKeys(rows []keyRow, uid string) []keyRow {
	own := rows[:0:0]
	for _, r := range rows {
		if r.ServerUID == uid {
			own = append(own, r)
		}
	}
	return own
}

// keySet is a workspace incarnation's rows by state.
type keySet struct {
	current, next *keyRow
	published     []*keyRow // next, current and retired, newest first
	maxGeneration int
}

func sortKeys(rows []keyRow) keySet {
	var ks keySet
	for i := len(rows) - 1; i >= 0; i-- { // rows come oldest generation first
		r := &rows[i]
		ks.maxGeneration = max(ks.maxGeneration, r.Generation)
		switch r.State {
		case stateCurrent:
			ks.current = r
		case stateNext:
			ks.next = r
		}
		if r.State != stateRevoked {
			ks.published = append(ks.published, r)
		}
	}
	return ks
}

func (s *Service) loadKeys(ctx context.Context, ws *workspaceInfo) (*workspaceKeys, error) {
	ks, err := s.reconcileKeys(ctx, ws)
	if err != nil {
		return nil, err
	}
	private, err := openKey(s.keyring, ks.current)
	if err != nil {
		return nil, apierr.Wrap(err, "open signing key")
	}
	keys := &workspaceKeys{uid: ws.uid, kid: ks.current.KID, alg: ks.current.Alg}
	if keys.signer, err = newSigner(private, accessTokenType); err != nil {
		return nil, apierr.Wrap(err, "build signer")
	}
	if keys.idSigner, err = newSigner(private, idTokenType); err != nil {
		return nil, apierr.Wrap(err, "build signer")
	}
	keys.covered.Store(ks.current.MaxExp)
	for _, r := range ks.published {
		k, err := publicJWK(r)
		if err != nil {
			return nil, apierr.Wrap(err, "read public key")
		}
		keys.public = append(keys.public, k)
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON([]byte(r.PublicJWK)); err != nil || !jwk.IsPublic() || jwk.KeyID != r.KID {
			return nil, apierr.Wrap(fmt.Errorf("public key %s does not parse (%v)", r.KID, err), "read public key")
		}
		keys.verify.Keys = append(keys.verify.Keys, jwk)
	}
	return keys, nil
}

// reconcileKeys reads the incarnation's keys and brings them to what the workspace asks for: a current key (made
// on first use), a next key of the configured algorithm, and the current key due for rotation when its algorithm
// or the rotation period changed. Every change is conditional on what was read, so processes doing it at once
// agree, and each pass re-reads.
func (s *Service) reconcileKeys(ctx context.Context, ws *workspaceInfo) (keySet, error) {
	for attempt := 0; ; attempt++ {
		rows, err := s.store.listKeys(ctx, ws.tenantID, ws.serverID)
		if err != nil {
			return keySet{}, apierr.Wrap(err, "read signing keys")
		}
		if own := ownKeys(rows, ws.uid); len(own) < len(rows) {
			// Keys of another incarnation: of a deleted workspace of the same id (created, say, by a request that
			// raced with the deletion), or of a newer one when ws is stale. Ask the workspace service, not the
			// cache, which incarnation is current before deleting anything.
			if err := s.dropOtherIncarnations(ctx, ws); err != nil {
				return keySet{}, err
			}
			rows = own
		}
		ks := sortKeys(rows)
		changed, err := s.fixKeys(ctx, ws, ks)
		if err != nil {
			return keySet{}, err
		}
		if !changed {
			return ks, nil
		}
		if attempt >= 3 {
			return keySet{}, apierr.Wrap(errors.New("signing keys kept changing while being read"), "read signing keys")
		}
	}
}

// fixKeys makes the one change ks needs first, if any, and reports whether it changed something.
func (s *Service) fixKeys(ctx context.Context, ws *workspaceInfo, ks keySet) (bool, error) {
	now := db.Now()
	alg := ws.signingAlg()
	newRow := func(state string) (*keyRow, error) {
		row, err := newKeyRow(s.keyring, ws.tenantID, ws.serverID, ws.uid, ks.maxGeneration+1, alg, state)
		if err != nil {
			return nil, apierr.Wrap(err, "generate signing key")
		}
		return row, nil
	}
	switch {
	case ks.current == nil:
		// Keys are created for existing workspaces only (ws was found), so junk URLs cannot fill the table. A
		// workspace's first key signs at once (nobody can hold a token of it yet), and its next key comes with it.
		current, err := newRow(stateCurrent)
		if err != nil {
			return false, err
		}
		current.ActivatedAt, current.RotateAt = now, now+ws.rotationPeriod().Microseconds()
		ks.maxGeneration++
		next, err := newRow(stateNext)
		if err != nil {
			return false, err
		}
		if err := s.store.insertKeys(ctx, current, next); err != nil {
			return false, apierr.Wrap(err, "store signing keys")
		}
		return true, nil
	case ks.next == nil || ks.next.Alg != alg:
		row, err := newRow(stateNext)
		if err != nil {
			return false, err
		}
		replaced := ""
		if ks.next != nil {
			replaced = ks.next.KID // a next key of another algorithm never signed: it simply goes
		}
		if err := s.store.replaceNextKey(ctx, ws.tenantID, replaced, row); err != nil {
			return false, apierr.Wrap(err, "store signing key")
		}
		s.keysChanged(ctx, ws)
		return true, nil
	}
	// The current key rotates when its period is over, or, once the next key has been published long enough,
	// when it is not of the configured algorithm any more.
	want := ks.current.ActivatedAt + ws.rotationPeriod().Microseconds()
	if ks.current.Alg != alg {
		want = min(want, ks.next.CreatedAt+s.jwksMaxAge.Microseconds())
	}
	if want != ks.current.RotateAt {
		if err := s.store.setRotateAt(ctx, ws.tenantID, ks.current.KID, want); err != nil {
			return false, apierr.Wrap(err, "schedule key rotation")
		}
		return true, nil
	}
	return false, nil
}

// keysChanged drops every cached key set of the workspace, in this process and the others, and the verified
// tokens of its tenant: the JWKS and the signer change.
func (s *Service) keysChanged(ctx context.Context, ws *workspaceInfo) {
	s.bus.Publish(ctx, changes.Keys, changes.Key(ws.tenantID, ws.serverID))
}

// coverExpiry records, before a token expiring at exp (Unix seconds) is signed with keys' current key, that the
// key signed until then: a retired key is published until every token it signed has expired. The record runs
// ahead of the tokens by coverHeadroom, so it is written about once per headroom, not per token.
func (s *Service) coverExpiry(ctx context.Context, ws *workspaceInfo, keys *workspaceKeys, exp int64) error {
	expMicro := exp * 1e6
	if expMicro <= keys.covered.Load() {
		return nil
	}
	keys.coverMu.Lock()
	defer keys.coverMu.Unlock()
	if expMicro <= keys.covered.Load() {
		return nil
	}
	target := expMicro + coverHeadroom.Microseconds()
	if err := s.store.raiseMaxExp(ctx, ws.tenantID, keys.kid, target); err != nil {
		return apierr.Wrap(err, "record signing key use")
	}
	keys.covered.Store(target)
	return nil
}

// rotateKeys promotes the workspace's next key to current and retires the current one, making a new next key.
// Of processes rotating at once exactly one succeeds; the others see rotated false.
func (s *Service) rotateKeys(ctx context.Context, ws *workspaceInfo, reason string) (rotated bool, err error) {
	ks, err := s.reconcileKeys(ctx, ws)
	if err != nil {
		return false, err
	}
	next, err := newKeyRow(s.keyring, ws.tenantID, ws.serverID, ws.uid, ks.maxGeneration+1, ws.signingAlg(), stateNext)
	if err != nil {
		return false, apierr.Wrap(err, "generate signing key")
	}
	now := db.Now()
	ok, err := s.store.promoteNext(ctx, ws.tenantID, ks.current.KID, ks.next.KID, next, now, now+ws.rotationPeriod().Microseconds())
	if err != nil {
		return false, apierr.Wrap(err, "rotate signing key")
	}
	if ok {
		s.log.Info("signing key rotated", "tenant", ws.tenantID, "server", ws.serverID, "reason", reason,
			"retired", ks.current.KID, "current", ks.next.KID)
		s.keysChanged(ctx, ws)
	}
	return ok, nil
}

// dropOtherIncarnations deletes the keys of every incarnation of ws's id but the current one, once the workspace
// service confirms ws is current; a stale ws is dropped from the cache instead and the request asked to retry.
func (s *Service) dropOtherIncarnations(ctx context.Context, ws *workspaceInfo) error {
	md, err := s.workspaceAPI.GetServerMetadata(s.internal.Outgoing(ctx), &workspacev1.GetServerMetadataRequest{TenantId: ws.tenantID, ServerId: ws.serverID})
	if status.Code(err) == codes.NotFound {
		s.workspaces.Invalidate(ws.key)
		return apierr.NotFound("authorization server %q not found", ws.serverID)
	}
	if err != nil {
		return remoteFailure(err, "read workspace metadata")
	}
	if md.Uid != ws.uid {
		s.workspaces.Invalidate(ws.key)
		return errWorkspaceChanged()
	}
	if err := s.store.deleteOtherIncarnations(ctx, ws.tenantID, ws.serverID, ws.uid); err != nil {
		return apierr.Wrap(err, "delete signing keys of a deleted workspace")
	}
	// Verifiers may still hold the deleted keys.
	s.keysChanged(ctx, ws)
	return nil
}

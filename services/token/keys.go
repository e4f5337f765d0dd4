package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/secrets"
)

// accessTokenType is the JOSE `typ` of access tokens (RFC 9068).
const accessTokenType = "at+jwt"

// signingAlgorithms are the algorithms the service signs with, the only ones a presented token may use.
var signingAlgorithms = []jose.SignatureAlgorithm{jose.ES256}

// workspaceKeys is a workspace's key material as the hot path needs it: the signer of the newest key, built
// once (the private key is decrypted once per load, never per token), and the public keys for the JWKS and for
// verifying. Every key belongs to one incarnation of the workspace (uid): keys of an earlier workspace of the
// same id are never loaded.
type workspaceKeys struct {
	uid    string
	kid    string
	signer *es256Signer // safe for concurrent use
	// idSigner signs ID tokens with the same key, under the JOSE type `JWT`.
	idSigner *es256Signer
	public   []*tokenv1.JWK
	verify   jose.JSONWebKeySet
}

// keyAAD binds a sealed private key to its tenant, workspace incarnation and kid. Keys sealed before
// incarnations existed (no uid) keep the first form, so they still open while they are being replaced.
func keyAAD(tenantID, serverID, uid, kid string) []byte {
	if uid == "" {
		return []byte("authplane signing key v1\x00" + tenantID + "\x00" + serverID + "\x00" + kid)
	}
	return []byte("authplane signing key v2\x00" + tenantID + "\x00" + serverID + "\x00" + uid + "\x00" + kid)
}

// newKeyRow generates an ES256 key and seals its private half.
func newKeyRow(keyring *secrets.Keyring, tenantID, serverID, uid string, generation int) (*keyRow, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	kid := secrets.Random(12)
	jwk := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
	private, err := jwk.MarshalJSON()
	if err != nil {
		return nil, err
	}
	public, err := jwk.Public().MarshalJSON()
	if err != nil {
		return nil, err
	}
	return &keyRow{
		TenantID: tenantID, ServerID: serverID, ServerUID: uid, KID: kid, Generation: generation, Alg: string(jose.ES256),
		PublicJWK: string(public), SealedPrivateJWK: keyring.Seal(private, keyAAD(tenantID, serverID, uid, kid)),
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

func (s *Service) loadKeys(ctx context.Context, ws *workspaceInfo) (*workspaceKeys, error) {
	rows, err := s.store.listKeys(ctx, ws.tenantID, ws.serverID)
	if err != nil {
		return nil, apierr.Wrap(err, "read signing keys")
	}
	if own := ownKeys(rows, ws.uid); len(own) < len(rows) {
		// Keys of another incarnation: of a deleted workspace of the same id (created, say, by a request that
		// raced with the deletion), or of a newer one when ws is stale. Ask the workspace service, not the
		// cache, which incarnation is current before deleting anything.
		if err := s.dropOtherIncarnations(ctx, ws); err != nil {
			return nil, err
		}
		rows = own
	}
	if len(rows) == 0 {
		// Keys are created for existing workspaces only (ws was found), so junk URLs cannot fill the table.
		row, err := newKeyRow(s.keyring, ws.tenantID, ws.serverID, ws.uid, 1)
		if err != nil {
			return nil, apierr.Wrap(err, "generate signing key")
		}
		if err := s.store.insertKey(ctx, row); err != nil {
			return nil, apierr.Wrap(err, "store signing key")
		}
		if rows, err = s.store.listKeys(ctx, ws.tenantID, ws.serverID); err != nil {
			return nil, apierr.Wrap(err, "read signing keys")
		}
		if rows = ownKeys(rows, ws.uid); len(rows) == 0 {
			return nil, apierr.Wrap(errors.New("signing key vanished after insert"), "create signing key")
		}
	}
	newest := &rows[len(rows)-1]
	private, err := openKey(s.keyring, newest)
	if err != nil {
		return nil, apierr.Wrap(err, "open signing key")
	}
	signer, err := newES256Signer(private, accessTokenType)
	if err != nil {
		return nil, apierr.Wrap(err, "build signer")
	}
	idSigner, err := newES256Signer(private, idTokenType)
	if err != nil {
		return nil, apierr.Wrap(err, "build signer")
	}
	keys := &workspaceKeys{uid: ws.uid, kid: newest.KID, signer: signer, idSigner: idSigner}
	for i := range rows {
		k, err := publicJWK(&rows[i])
		if err != nil {
			return nil, apierr.Wrap(err, "read public key")
		}
		keys.public = append(keys.public, k)
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON([]byte(rows[i].PublicJWK)); err != nil || !jwk.IsPublic() || jwk.KeyID != rows[i].KID {
			return nil, apierr.Wrap(fmt.Errorf("public key %s does not parse (%v)", rows[i].KID, err), "read public key")
		}
		keys.verify.Keys = append(keys.verify.Keys, jwk)
	}
	return keys, nil
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
	s.bus.Publish(ctx, changes.Keys, changes.Key(ws.tenantID, ws.serverID))
	return nil
}

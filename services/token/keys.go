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

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/secrets"
)

// accessTokenType is the JOSE `typ` of access tokens (RFC 9068).
const accessTokenType = "at+jwt"

// workspaceKeys is a workspace's key material as the hot path needs it: the signer of the newest key, built
// once (the private key is decrypted once per load, never per token), and the public keys for the JWKS.
type workspaceKeys struct {
	kid    string
	signer jose.Signer // safe for concurrent use
	public []*tokenv1.JWK
}

// keyAAD binds a sealed private key to its tenant, workspace and kid.
func keyAAD(tenantID, serverID, kid string) []byte {
	return []byte("authplane signing key v1\x00" + tenantID + "\x00" + serverID + "\x00" + kid)
}

// newKeyRow generates an ES256 key and seals its private half.
func newKeyRow(keyring *secrets.Keyring, tenantID, serverID string, generation int) (*keyRow, error) {
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
		TenantID: tenantID, ServerID: serverID, KID: kid, Generation: generation, Alg: string(jose.ES256),
		PublicJWK: string(public), SealedPrivateJWK: keyring.Seal(private, keyAAD(tenantID, serverID, kid)),
		CreatedAt: db.Now(),
	}, nil
}

// openKey decrypts a row's private key; it fails unless the row's tenant, workspace and kid are those it was
// sealed for.
func openKey(keyring *secrets.Keyring, row *keyRow) (*jose.JSONWebKey, error) {
	plain, err := keyring.Open(row.SealedPrivateJWK, keyAAD(row.TenantID, row.ServerID, row.KID))
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

// workspaceKeys returns the workspace's keys from memory, loading (and on first use creating) them once.
func (s *Service) workspaceKeys(ctx context.Context, tenantID, serverID string) (*workspaceKeys, error) {
	return s.keys.Get(ctx, tenantID+"/"+serverID, func(ctx context.Context) (*workspaceKeys, error) {
		ctx, cancel := detached(ctx)
		defer cancel()
		return s.loadKeys(ctx, tenantID, serverID)
	})
}

func (s *Service) loadKeys(ctx context.Context, tenantID, serverID string) (*workspaceKeys, error) {
	rows, err := s.store.listKeys(ctx, tenantID, serverID)
	if err != nil {
		return nil, apierr.Wrap(err, "read signing keys")
	}
	if len(rows) == 0 {
		// Keys are created for existing workspaces only, so junk URLs cannot fill the table.
		if _, err := s.workspace(ctx, tenantID, serverID); err != nil {
			return nil, err
		}
		row, err := newKeyRow(s.keyring, tenantID, serverID, 1)
		if err != nil {
			return nil, apierr.Wrap(err, "generate signing key")
		}
		if err := s.store.insertKey(ctx, row); err != nil {
			return nil, apierr.Wrap(err, "store signing key")
		}
		if rows, err = s.store.listKeys(ctx, tenantID, serverID); err != nil {
			return nil, apierr.Wrap(err, "read signing keys")
		}
		if len(rows) == 0 {
			return nil, apierr.Wrap(errors.New("signing key vanished after insert"), "create signing key")
		}
	}
	newest := &rows[len(rows)-1]
	private, err := openKey(s.keyring, newest)
	if err != nil {
		return nil, apierr.Wrap(err, "open signing key")
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(newest.Alg), Key: private},
		(&jose.SignerOptions{}).WithType(accessTokenType))
	if err != nil {
		return nil, apierr.Wrap(err, "build signer")
	}
	keys := &workspaceKeys{kid: newest.KID, signer: signer}
	for i := range rows {
		k, err := publicJWK(&rows[i])
		if err != nil {
			return nil, apierr.Wrap(err, "read public key")
		}
		keys.public = append(keys.public, k)
	}
	return keys, nil
}

// Package secrets makes and protects secrets. Client secrets are high-entropy, so a keyed hash (HMAC-SHA256)
// stores them safely at the cost of a microsecond, where a password KDF would cost milliseconds per token request.
// Signing keys are sealed with AES-256-GCM. Secrets that two services must agree on without storing or sending
// them (DeriveSecret) are HMACs of what they belong to.
//
// A Keyring works with data keys, which a database stores wrapped under the master key (pkg/keystore), so that a
// new master key only re-wraps them: every hash, sealed key and derived secret made before stays valid. Databases
// made before data keys were stored used keys derived from the master key with HKDF (DerivedDataKeys); they keep
// those, stored like any other.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// DataKeys are the 32-byte keys a Keyring works with.
type DataKeys struct {
	// SecretHash keys the hashes of client secrets and refresh tokens (HashSecret).
	SecretHash []byte
	// DerivedSecrets keys DeriveSecret (external verifiers' signing secrets, handed to their owners once).
	DerivedSecrets []byte
	// SigningKeySeal is the AES-256-GCM key of Seal and Open (signing keys at rest).
	SigningKeySeal []byte
}

// NewDataKeys returns fresh random data keys, for a new database.
func NewDataKeys() DataKeys {
	k := func() []byte { b := make([]byte, 32); _, _ = rand.Read(b); return b }
	return DataKeys{SecretHash: k(), DerivedSecrets: k(), SigningKeySeal: k()}
}

// DerivedDataKeys returns the data keys derived from a 32-byte master key with HKDF: those of every database made
// before data keys were stored, and those internal calls are MACed under (pkg/internalcall), which processes
// without a database must agree on.
func DerivedDataKeys(master []byte) (DataKeys, error) {
	if len(master) != 32 {
		return DataKeys{}, fmt.Errorf("master key must be 32 bytes, got %d", len(master))
	}
	var keys DataKeys
	for _, k := range []struct {
		into *[]byte
		info string
	}{
		{&keys.SecretHash, "authplane client-secret hash v1"},
		{&keys.SigningKeySeal, "authplane signing-key seal v1"},
		{&keys.DerivedSecrets, "authplane derived secrets v1"},
	} {
		b, err := hkdf.Key(sha256.New, master, nil, k.info, 32)
		if err != nil {
			return DataKeys{}, err
		}
		*k.into = b
	}
	return keys, nil
}

// Keyring hashes, seals and derives with one set of data keys.
type Keyring struct {
	hashKey   []byte
	deriveKey []byte
	aead      cipher.AEAD
}

// NewKeyring returns the keyring of the data keys derived from a 32-byte master key (DerivedDataKeys).
func NewKeyring(master []byte) (*Keyring, error) {
	keys, err := DerivedDataKeys(master)
	if err != nil {
		return nil, err
	}
	return NewKeyringOf(keys)
}

// NewKeyringOf returns the keyring of the given data keys (each 32 bytes).
func NewKeyringOf(keys DataKeys) (*Keyring, error) {
	for _, k := range [][]byte{keys.SecretHash, keys.DerivedSecrets, keys.SigningKeySeal} {
		if len(k) != 32 {
			return nil, fmt.Errorf("data keys must be 32 bytes, got %d", len(k))
		}
	}
	aead, err := newGCM(keys.SigningKeySeal)
	if err != nil {
		return nil, err
	}
	return &Keyring{hashKey: keys.SecretHash, deriveKey: keys.DerivedSecrets, aead: aead}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// HashSecret returns the keyed hash stored for a client secret.
func (k *Keyring) HashSecret(secret string) string {
	m := hmac.New(sha256.New, k.hashKey)
	m.Write([]byte(secret))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// VerifySecret compares a presented secret with a stored hash in constant time.
func (k *Keyring) VerifySecret(secret, stored string) bool {
	return hmac.Equal([]byte(k.HashSecret(secret)), []byte(stored))
}

// PurposeExternalIdp derives the signing secret of an external verifier, from tenant, workspace and idp ids.
const PurposeExternalIdp = "external-idp"

// DeriveSecret returns the secret of one thing, named by purpose and the ids that locate it (for example
// "external-idp", tenant, workspace, idp): 256 bits in base64url without padding, the same in every process that
// holds the master key, so it is never stored nor sent between services. Each part is length-prefixed, so
// different lists of parts never meet ("a/b","c" and "a","b/c" derive different secrets).
func (k *Keyring) DeriveSecret(purpose string, parts ...string) string {
	m := hmac.New(sha256.New, k.deriveKey)
	var n [8]byte
	for _, p := range append([]string{purpose}, parts...) {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		m.Write(n[:])
		m.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Seal encrypts plaintext bound to aad (which must be given again to Open).
func (k *Keyring) Seal(plaintext, aad []byte) []byte { return seal(k.aead, plaintext, aad) }

// Open decrypts what Seal produced.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	out, err := open(k.aead, sealed, aad)
	if err != nil {
		return nil, errors.New("cannot decrypt: wrong key or corrupted data")
	}
	return out, nil
}

// seal encrypts under a random nonce, which it prepends.
func seal(aead cipher.AEAD, plaintext, aad []byte) []byte {
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, plaintext, aad)
}

func open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed data too short")
	}
	return aead.Open(nil, sealed[:n], sealed[n:], aad)
}

// NewSecret returns 256 random bits in base64url without padding: 43 characters from [A-Za-z0-9_-],
// which need no percent-encoding in HTTP Basic credentials.
func NewSecret() string { return Random(32) }

// Random returns n random bytes in base64url without padding.
func Random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewID returns a random identifier of 20 lowercase hex characters (80 bits), valid as any resource id.
func NewID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Package secrets makes and protects secrets. Client secrets are high-entropy, so a keyed hash (HMAC-SHA256)
// stores them safely at the cost of a microsecond, where a password KDF would cost milliseconds per token request.
// Signing keys are sealed with AES-256-GCM. Secrets that two services must agree on without storing or sending
// them (DeriveSecret) are HMACs of what they belong to. Every key is derived from the master key with HKDF.
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

// Keyring holds the keys derived from the master key.
type Keyring struct {
	hashKey   []byte
	deriveKey []byte
	aead      cipher.AEAD
}

// NewKeyring derives the keys from a 32-byte master key.
func NewKeyring(master []byte) (*Keyring, error) {
	if len(master) != 32 {
		return nil, fmt.Errorf("master key must be 32 bytes, got %d", len(master))
	}
	hashKey, err := hkdf.Key(sha256.New, master, nil, "authplane client-secret hash v1", 32)
	if err != nil {
		return nil, err
	}
	encKey, err := hkdf.Key(sha256.New, master, nil, "authplane signing-key seal v1", 32)
	if err != nil {
		return nil, err
	}
	deriveKey, err := hkdf.Key(sha256.New, master, nil, "authplane derived secrets v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keyring{hashKey: hashKey, deriveKey: deriveKey, aead: aead}, nil
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
func (k *Keyring) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, plaintext, aad)
}

// Open decrypts what Seal produced.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed data too short")
	}
	out, err := k.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errors.New("cannot decrypt: wrong master key or corrupted data")
	}
	return out, nil
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

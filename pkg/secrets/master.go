package secrets

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// MasterKey wraps the data keys a database stores (AES-256-GCM under a key derived from it with HKDF); it encrypts
// no data itself, so a new master key only re-wraps the data keys.
type MasterKey struct {
	raw  []byte
	id   string
	aead cipher.AEAD
}

// NewMasterKey takes a 32-byte master key.
func NewMasterKey(raw []byte) (*MasterKey, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("master key must be 32 bytes, got %d", len(raw))
	}
	wrapKey, err := hkdf.Key(sha256.New, raw, nil, "authplane data-key wrap v1", 32)
	if err != nil {
		return nil, err
	}
	id, err := hkdf.Key(sha256.New, raw, nil, "authplane master key id v1", 8)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(wrapKey)
	if err != nil {
		return nil, err
	}
	return &MasterKey{raw: raw, id: hex.EncodeToString(id), aead: aead}, nil
}

// ID names the key without revealing it (16 hex characters, a one-way function of the key), so that stored rows
// can say which master key wraps them and messages can say which key was expected.
func (m *MasterKey) ID() string { return m.id }

// Wrap encrypts a data key bound to aad (which must be given again to Unwrap).
func (m *MasterKey) Wrap(key, aad []byte) []byte { return seal(m.aead, key, aad) }

// Unwrap decrypts what Wrap produced.
func (m *MasterKey) Unwrap(wrapped, aad []byte) ([]byte, error) {
	out, err := open(m.aead, wrapped, aad)
	if err != nil {
		return nil, errors.New("cannot unwrap: wrong master key or corrupted data")
	}
	return out, nil
}

// DerivedDataKeys returns the data keys derived from this master key (see the package function).
func (m *MasterKey) DerivedDataKeys() DataKeys {
	keys, _ := DerivedDataKeys(m.raw) // cannot fail: the key is 32 bytes
	return keys
}

// DerivedKeyring returns the keyring of DerivedDataKeys: what internal calls are MACed under.
func (m *MasterKey) DerivedKeyring() *Keyring {
	k, _ := NewKeyringOf(m.DerivedDataKeys()) // cannot fail: the keys are 32 bytes
	return k
}

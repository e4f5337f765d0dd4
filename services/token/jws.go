package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Signing algorithms a workspace may choose (its signing_alg).
const (
	algES256 = "ES256" // ECDSA P-256, the default: small and fast
	algEdDSA = "EdDSA" // Ed25519
	algRS256 = "RS256" // RSA PKCS #1 v1.5 with SHA-256, for resource servers that know only RSA
)

// rsaKeyBits is the size of RSA signing keys (RFC 7518 section 3.3 asks for 2048 at least).
const rsaKeyBits = 2048

// signer signs compact JWS (RFC 7515) with one key. The protected header is the same for every token of a key, so
// it is encoded once here rather than per token; what remains per token is one encoding of the payload and one
// signature. Tokens are verified with go-jose like any other JWS.
type signer struct {
	header    string // base64url of {"alg":…,"kid":…,"typ":…}
	signInput func(signingInput []byte) ([]byte, error)
}

// newSigner builds the signer of a private JWK for tokens of JOSE type typ.
func newSigner(jwk *jose.JSONWebKey, typ string) (*signer, error) {
	var sign func([]byte) ([]byte, error)
	switch key := jwk.Key.(type) {
	case *ecdsa.PrivateKey:
		if key.Curve != elliptic.P256() || jwk.Algorithm != algES256 {
			return nil, errors.New("an ECDSA signing key must be P-256 for ES256")
		}
		sign = func(in []byte) ([]byte, error) {
			digest := sha256.Sum256(in)
			der, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
			if err != nil {
				return nil, err
			}
			var sig [64]byte
			if err := rawSignature(der, &sig); err != nil {
				return nil, err
			}
			return sig[:], nil
		}
	case ed25519.PrivateKey:
		if jwk.Algorithm != algEdDSA {
			return nil, errors.New("an Ed25519 signing key is for EdDSA")
		}
		sign = func(in []byte) ([]byte, error) { return ed25519.Sign(key, in), nil }
	case *rsa.PrivateKey:
		if key.N.BitLen() < rsaKeyBits || jwk.Algorithm != algRS256 {
			return nil, fmt.Errorf("an RSA signing key must have at least %d bits and be for RS256", rsaKeyBits)
		}
		sign = func(in []byte) ([]byte, error) {
			digest := sha256.Sum256(in)
			return rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
		}
	default:
		return nil, fmt.Errorf("unsupported signing key %T", jwk.Key)
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{jwk.Algorithm, jwk.KeyID, typ})
	if err != nil {
		return nil, err
	}
	return &signer{header: base64.RawURLEncoding.EncodeToString(header), signInput: sign}, nil
}

// generateKey makes a new private key for alg.
func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case algES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case algEdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case algRS256:
		return rsa.GenerateKey(rand.Reader, rsaKeyBits)
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}

// sign returns the compact serialization `header.payload.signature` of payload.
func (s *signer) sign(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	signingInput := len(s.header) + 1 + enc.EncodedLen(len(payload))
	out := make([]byte, signingInput, signingInput+1+enc.EncodedLen(512))
	copy(out, s.header)
	out[len(s.header)] = '.'
	enc.Encode(out[len(s.header)+1:], payload)
	sig, err := s.signInput(out)
	if err != nil {
		return "", err
	}
	out = append(out, '.')
	out = enc.AppendEncode(out, sig)
	return string(out), nil
}

var errMalformedSignature = errors.New("malformed ECDSA signature")

// rawSignature converts an ASN.1 ECDSA-Sig-Value (SEQUENCE { INTEGER r, INTEGER s }) of P-256 into the JWS form
// (RFC 7518 section 3.4): r and s as 32-byte big-endian integers, concatenated.
func rawSignature(der []byte, out *[64]byte) error {
	input := cryptobyte.String(der)
	var seq, r, sv cryptobyte.String
	if !input.ReadASN1(&seq, asn1.SEQUENCE) || !input.Empty() ||
		!seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&sv, asn1.INTEGER) || !seq.Empty() {
		return errMalformedSignature
	}
	for i, v := range [][]byte{r, sv} {
		for len(v) > 0 && v[0] == 0 { // the sign byte of a positive integer
			v = v[1:]
		}
		if len(v) > 32 {
			return errMalformedSignature
		}
		copy(out[(i+1)*32-len(v):(i+1)*32], v)
	}
	return nil
}

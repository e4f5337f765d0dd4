package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// es256Signer signs compact JWS (RFC 7515) with one P-256 key. The protected header is the same for every token
// of a key, so it is encoded once here rather than per token; what remains per token is one encoding of the
// payload, one hash and one signature. Tokens are verified with go-jose like any other JWS.
type es256Signer struct {
	key    *ecdsa.PrivateKey
	header string // base64url of {"alg":"ES256","kid":…,"typ":"at+jwt"}
}

func newES256Signer(jwk *jose.JSONWebKey, typ string) (*es256Signer, error) {
	key, ok := jwk.Key.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() || jwk.Algorithm != string(jose.ES256) {
		return nil, errors.New("the signing key is not an ES256 (P-256) private key")
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{string(jose.ES256), jwk.KeyID, typ})
	if err != nil {
		return nil, err
	}
	return &es256Signer{key: key, header: base64.RawURLEncoding.EncodeToString(header)}, nil
}

// sign returns the compact serialization `header.payload.signature` of payload.
func (s *es256Signer) sign(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	signingInput := len(s.header) + 1 + enc.EncodedLen(len(payload))
	out := make([]byte, signingInput, signingInput+1+enc.EncodedLen(64))
	copy(out, s.header)
	out[len(s.header)] = '.'
	enc.Encode(out[len(s.header)+1:], payload)
	digest := sha256.Sum256(out)
	der, err := ecdsa.SignASN1(rand.Reader, s.key, digest[:])
	if err != nil {
		return "", err
	}
	var sig [64]byte
	if err := rawSignature(der, &sig); err != nil {
		return "", err
	}
	out = append(out, '.')
	out = enc.AppendEncode(out, sig[:])
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

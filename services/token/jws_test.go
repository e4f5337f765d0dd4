package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

func TestSignersWriteJWSThatGoJoseVerifies(t *testing.T) {
	for _, alg := range []string{algES256, algEdDSA, algRS256} {
		t.Run(alg, func(t *testing.T) {
			priv, err := generateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			jwk := &jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: alg, Use: "sig"}
			signer, err := newSigner(jwk, accessTokenType)
			if err != nil {
				t.Fatal(err)
			}
			n := 1000 // ES256: enough signatures that some r or s has leading zero bytes (each does with probability 1/256)
			if alg == algRS256 {
				n = 20
			}
			for i := 0; i < n; i++ {
				payload := []byte(`{"n":` + string(rune('0'+i%10)) + `}`)
				tok, err := signer.sign(payload)
				if err != nil {
					t.Fatal(err)
				}
				jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
				if err != nil {
					t.Fatalf("%s does not parse: %v", tok, err)
				}
				h := jws.Signatures[0].Protected
				if h.KeyID != "k1" || h.Algorithm != alg || h.ExtraHeaders[jose.HeaderType] != accessTokenType {
					t.Fatalf("header %+v", h)
				}
				got, err := jws.Verify(priv.Public())
				if err != nil || string(got) != string(payload) {
					t.Fatalf("signature %d does not verify: %v", i, err)
				}
			}
		})
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	ed, _ := generateKey(algEdDSA)
	for name, jwk := range map[string]*jose.JSONWebKey{
		"a P-384 key for ES256":    {Key: p384, KeyID: "k2", Algorithm: algES256},
		"a 1024-bit key for RS256": {Key: smallRSA, KeyID: "k3", Algorithm: algRS256},
		"an Ed25519 key for ES256": {Key: ed, KeyID: "k4", Algorithm: algES256},
	} {
		if _, err := newSigner(jwk, accessTokenType); err == nil {
			t.Errorf("%s was accepted", name)
		}
	}
}

// signatureDER is a well-formed SEQUENCE { INTEGER r, INTEGER s } whose integers hold the given content bytes.
func signatureDER(r, s []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(r) })
		b.AddASN1(asn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(s) })
	})
	return b.BytesOrPanic()
}

func TestRawSignatureRejectsMalformedDER(t *testing.T) {
	// 33 significant bytes: one more than a P-256 integer can have, whether or not a sign byte precedes them.
	tooLong := append([]byte{0x01}, bytes.Repeat([]byte{0xab}, 32)...)
	for name, der := range map[string][]byte{
		"empty":                           {},
		"not a sequence":                  {0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01},
		"length mismatch":                 {0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01},
		"one integer":                     {0x30, 0x03, 0x02, 0x01, 0x01},
		"trailing bytes":                  {0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00},
		"r of 33 significant bytes":       signatureDER(tooLong, []byte{0x07}),
		"s of 33 significant bytes":       signatureDER([]byte{0x05}, tooLong),
		"33 significant bytes after zero": signatureDER(append([]byte{0x00}, tooLong...), []byte{0x07}),
	} {
		var out [64]byte
		if err := rawSignature(der, &out); err == nil {
			t.Errorf("%s: accepted as %x", name, out)
		}
	}
}

func TestRawSignatureWritesIntegersAs32Bytes(t *testing.T) {
	high := bytes.Repeat([]byte{0xcd}, 32) // a top bit set, so DER writes a sign byte before it
	low := append([]byte{0x7f}, bytes.Repeat([]byte{0x01}, 31)...)
	tests := []struct {
		name string
		der  []byte
		want []byte
	}{
		{"32-byte integers after their sign bytes", signatureDER(append([]byte{0x00}, high...), append([]byte{0x00}, high...)), append(high, high...)},
		{"32-byte integers without sign bytes", signatureDER(low, low), append(low, low...)},
		{"small integers padded on the left", signatureDER([]byte{0x05}, []byte{0x07}), append(append(make([]byte, 31), 0x05), append(make([]byte, 31), 0x07)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out [64]byte
			if err := rawSignature(tt.der, &out); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out[:], tt.want) {
				t.Fatalf("got %x, want %x", out, tt.want)
			}
		})
	}
}

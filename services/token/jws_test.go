package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func TestES256SignerWritesJWSThatGoJoseVerifies(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := &jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: string(jose.ES256), Use: "sig"}
	signer, err := newES256Signer(jwk, accessTokenType)
	if err != nil {
		t.Fatal(err)
	}
	// Enough signatures that some r or s has leading zero bytes (each does with probability 1/256).
	for i := 0; i < 1000; i++ {
		payload := []byte(`{"n":` + string(rune('0'+i%10)) + `}`)
		tok, err := signer.sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("%s does not parse: %v", tok, err)
		}
		h := jws.Signatures[0].Protected
		if h.KeyID != "k1" || h.Algorithm != "ES256" || h.ExtraHeaders[jose.HeaderType] != accessTokenType {
			t.Fatalf("header %+v", h)
		}
		got, err := jws.Verify(&priv.PublicKey)
		if err != nil || string(got) != string(payload) {
			t.Fatalf("signature %d does not verify: %v", i, err)
		}
	}
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := newES256Signer(&jose.JSONWebKey{Key: other, KeyID: "k2", Algorithm: string(jose.ES256)}, accessTokenType); err == nil {
		t.Fatal("a P-384 key was accepted for ES256")
	}
}

func TestRawSignatureRejectsMalformedDER(t *testing.T) {
	var out [64]byte
	for name, der := range map[string][]byte{
		"empty":            {},
		"not a sequence":   {0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01},
		"length mismatch":  {0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01},
		"one integer":      {0x30, 0x03, 0x02, 0x01, 0x01},
		"trailing bytes":   {0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00},
		"integer too long": append([]byte{0x30, 0x26, 0x02, 0x21, 0x01}, make([]byte, 32+3)...),
	} {
		if err := rawSignature(der, &out); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := rawSignature([]byte{0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x07}, &out); err != nil || out[31] != 5 || out[63] != 7 {
		t.Fatalf("small integers: %v %x", err, out)
	}
}

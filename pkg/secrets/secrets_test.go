package secrets_test

import (
	"bytes"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/authplane/authplane/pkg/secrets"
)

func keyring(t *testing.T, fill byte) *secrets.Keyring {
	t.Helper()
	k, err := secrets.NewKeyring(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewKeyringNeeds32Bytes(t *testing.T) {
	for _, n := range []int{0, 1, 16, 24, 31, 33, 64} {
		if k, err := secrets.NewKeyring(make([]byte, n)); err == nil || k != nil {
			t.Errorf("NewKeyring accepted a %d-byte master key", n)
		}
	}
	if _, err := secrets.NewKeyring(make([]byte, 32)); err != nil {
		t.Errorf("NewKeyring refused a 32-byte master key: %v", err)
	}
}

func TestHashSecret(t *testing.T) {
	a, a2, b := keyring(t, 1), keyring(t, 1), keyring(t, 2)
	const secret = "s3cr3t-value"

	h := a.HashSecret(secret)
	if !regexp.MustCompile(`^hmac-sha256:[0-9a-f]{64}$`).MatchString(h) {
		t.Fatalf("hash %q is not hmac-sha256:<64 hex>", h)
	}
	if strings.Contains(h, secret) {
		t.Fatal("hash contains the secret")
	}
	cases := []struct {
		name  string
		x, y  string
		equal bool
	}{
		{"same keyring, same secret", a.HashSecret(secret), h, true},
		{"same master key, new keyring", a2.HashSecret(secret), h, true},
		{"other master key", b.HashSecret(secret), h, false},
		{"other secret", a.HashSecret(secret + "x"), h, false},
		{"empty secret", a.HashSecret(""), h, false},
	}
	for _, tc := range cases {
		if (tc.x == tc.y) != tc.equal {
			t.Errorf("%s: equal=%v, want %v", tc.name, tc.x == tc.y, tc.equal)
		}
	}
}

func TestVerifySecret(t *testing.T) {
	a, b := keyring(t, 1), keyring(t, 2)
	stored := a.HashSecret("right")
	cases := []struct {
		name    string
		k       *secrets.Keyring
		secret  string
		stored  string
		matches bool
	}{
		{"right secret", a, "right", stored, true},
		{"wrong secret", a, "wrong", stored, false},
		{"prefix of the secret", a, "righ", stored, false},
		{"empty secret", a, "", stored, false},
		{"other master key", b, "right", stored, false},
		{"stored value is the secret itself", a, "right", "right", false},
		{"empty stored value", a, "right", "", false},
		{"upper-cased stored hash", a, "right", strings.ToUpper(stored), false},
	}
	for _, tc := range cases {
		if got := tc.k.VerifySecret(tc.secret, tc.stored); got != tc.matches {
			t.Errorf("%s: VerifySecret = %v, want %v", tc.name, got, tc.matches)
		}
	}
}

func TestSealOpen(t *testing.T) {
	a, a2, b := keyring(t, 1), keyring(t, 1), keyring(t, 2)
	plain := []byte(`{"kty":"EC","d":"private"}`)
	aad := []byte("acme/ws1/key1")
	sealed := a.Seal(plain, aad)

	if bytes.Contains(sealed, plain) || bytes.Contains(sealed, []byte("private")) {
		t.Fatal("sealed data contains the plaintext")
	}
	if again := a.Seal(plain, aad); bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same plaintext are identical (nonce reused)")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1

	cases := []struct {
		name   string
		k      *secrets.Keyring
		sealed []byte
		aad    []byte
		ok     bool
	}{
		{"same keyring and aad", a, sealed, aad, true},
		{"same master key, new keyring", a2, sealed, aad, true},
		{"other aad", a, sealed, []byte("acme/ws1/key2"), false},
		{"no aad", a, sealed, nil, false},
		{"other master key", b, sealed, aad, false},
		{"tampered", a, tampered, aad, false},
		{"truncated to less than a nonce", a, sealed[:5], aad, false},
		{"empty", a, nil, aad, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.k.Open(tc.sealed, tc.aad)
			if tc.ok {
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("Open = %q, %v; want the plaintext", got, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Open succeeded (%q)", got)
			}
			if got != nil {
				t.Fatalf("Open returned data with its error: %q", got)
			}
		})
	}
}

func TestSealOpenEmptyPlaintext(t *testing.T) {
	a := keyring(t, 1)
	got, err := a.Open(a.Seal(nil, []byte("x")), []byte("x"))
	if err != nil || len(got) != 0 {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestNewSecret(t *testing.T) {
	shape := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		s := secrets.NewSecret()
		if !shape.MatchString(s) {
			t.Fatalf("NewSecret = %q, want 43 characters of [A-Za-z0-9_-]", s)
		}
		if seen[s] {
			t.Fatalf("NewSecret repeated %q", s)
		}
		seen[s] = true
	}
}

func TestRandomAndNewID(t *testing.T) {
	for _, tc := range []struct{ n, chars int }{{0, 0}, {1, 2}, {16, 22}, {32, 43}} {
		if got := secrets.Random(tc.n); len(got) != tc.chars || strings.ContainsAny(got, "+/=") {
			t.Errorf("Random(%d) = %q, want %d base64url characters", tc.n, got, tc.chars)
		}
	}
	id := regexp.MustCompile(`^[0-9a-f]{20}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		s := secrets.NewID()
		if !id.MatchString(s) || seen[s] {
			t.Fatalf("NewID = %q (seen before: %v), want 20 unique lowercase hex characters", s, seen[s])
		}
		seen[s] = true
	}
}

func TestDeriveSecret(t *testing.T) {
	a, a2, b := keyring(t, 1), keyring(t, 1), keyring(t, 2)
	s := a.DeriveSecret("external-idp", "acme", "ws1", "idp1")
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(s) {
		t.Fatalf("DeriveSecret = %q, want 43 base64url characters (256 bits)", s)
	}
	cases := []struct {
		name  string
		x     string
		equal bool
	}{
		{"same keyring, same parts", a.DeriveSecret("external-idp", "acme", "ws1", "idp1"), true},
		{"same master key, new keyring", a2.DeriveSecret("external-idp", "acme", "ws1", "idp1"), true},
		{"other master key", b.DeriveSecret("external-idp", "acme", "ws1", "idp1"), false},
		{"other purpose", a.DeriveSecret("other", "acme", "ws1", "idp1"), false},
		{"other tenant", a.DeriveSecret("external-idp", "acme2", "ws1", "idp1"), false},
		{"other workspace", a.DeriveSecret("external-idp", "acme", "ws2", "idp1"), false},
		{"other idp", a.DeriveSecret("external-idp", "acme", "ws1", "idp2"), false},
		{"parts joined differently", a.DeriveSecret("external-idp", "acmews1", "", "idp1"), false},
		{"a separator moved between parts", a.DeriveSecret("external-idp", "acme/ws1", "idp1"), false},
		{"one part fewer", a.DeriveSecret("external-idp", "acme", "ws1"), false},
		{"not the client-secret hash of the same text", strings.TrimPrefix(a.HashSecret("external-idp"), "hmac-sha256:"), false},
	}
	for _, tc := range cases {
		if (tc.x == s) != tc.equal {
			t.Errorf("%s: equal=%v, want %v", tc.name, tc.x == s, tc.equal)
		}
	}
	if x, y := a.DeriveSecret("p", "a/b", "c"), a.DeriveSecret("p", "a", "b/c"); x == y {
		t.Error(`("a/b","c") and ("a","b/c") derive the same secret`)
	}
	if x, y := a.DeriveSecret("p", "ab", ""), a.DeriveSecret("p", "a", "b"); x == y {
		t.Error(`("ab","") and ("a","b") derive the same secret`)
	}
}

// TestDerivedDataKeysAreThoseOfDatabasesMadeBefore pins the derivation every database made before data keys were
// stored depends on: values computed by that code, with master key 0x01…01. If this fails, such databases lose
// their client secrets, refresh tokens, signing keys and external verifiers' secrets.
func TestDerivedDataKeysAreThoseOfDatabasesMadeBefore(t *testing.T) {
	master := bytes.Repeat([]byte{1}, 32)
	keys, err := secrets.DerivedDataKeys(master)
	if err != nil {
		t.Fatal(err)
	}
	of, err := secrets.NewKeyringOf(keys)
	if err != nil {
		t.Fatal(err)
	}
	mk, err := secrets.NewMasterKey(master)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := hex.DecodeString("b2774d93dadff127ff33f4f9119437d26549acada3979f4571ac2fb9c146ff4232")
	for name, k := range map[string]*secrets.Keyring{"NewKeyring": keyring(t, 1), "NewKeyringOf(DerivedDataKeys)": of, "MasterKey.DerivedKeyring": mk.DerivedKeyring()} {
		if got := k.HashSecret("s3cr3t-value"); got != "hmac-sha256:ecb78c76ec485d4a33a70c3d48c0e8057b8cd3baf8638fd049621971435290e2" {
			t.Errorf("%s: HashSecret = %s", name, got)
		}
		if got := k.DeriveSecret("external-idp", "acme", "ws1", "idp1"); got != "YhTvFqLG1z0ldDoLfNry11XwlxHl-7-KBWJaNLfW_SI" {
			t.Errorf("%s: DeriveSecret = %s", name, got)
		}
		if got, err := k.Open(sealed, []byte("aad")); err != nil || string(got) != "plain" {
			t.Errorf("%s: Open of a value sealed before = %q, %v", name, got, err)
		}
	}
	if !bytes.Equal(mk.DerivedDataKeys().SecretHash, keys.SecretHash) {
		t.Error("MasterKey.DerivedDataKeys differs from DerivedDataKeys")
	}
}

func TestKeyringOfStoredDataKeys(t *testing.T) {
	keys := secrets.NewDataKeys()
	a, err := secrets.NewKeyringOf(keys)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := secrets.NewKeyringOf(secrets.DataKeys{SecretHash: bytes.Clone(keys.SecretHash),
		DerivedSecrets: bytes.Clone(keys.DerivedSecrets), SigningKeySeal: bytes.Clone(keys.SigningKeySeal)})
	other, _ := secrets.NewKeyringOf(secrets.NewDataKeys())
	if a.HashSecret("x") != again.HashSecret("x") || a.DeriveSecret("p", "a") != again.DeriveSecret("p", "a") {
		t.Error("the same data keys hash or derive differently")
	}
	if got, err := again.Open(a.Seal([]byte("k"), nil), nil); err != nil || string(got) != "k" {
		t.Errorf("the same data keys do not open what they sealed: %q %v", got, err)
	}
	if a.HashSecret("x") == other.HashSecret("x") || a.DeriveSecret("p", "a") == other.DeriveSecret("p", "a") {
		t.Error("fresh data keys hash or derive like other ones")
	}
	if _, err := other.Open(a.Seal([]byte("k"), nil), nil); err == nil {
		t.Error("other data keys open a sealed value")
	}
	if a.HashSecret("x") == keyring(t, 1).HashSecret("x") {
		t.Error("fresh data keys hash like derived ones")
	}
	for _, bad := range []secrets.DataKeys{
		{},
		{SecretHash: make([]byte, 32), DerivedSecrets: make([]byte, 32), SigningKeySeal: make([]byte, 16)},
		{SecretHash: make([]byte, 31), DerivedSecrets: make([]byte, 32), SigningKeySeal: make([]byte, 32)},
		{SecretHash: make([]byte, 32), SigningKeySeal: make([]byte, 32)},
	} {
		if k, err := secrets.NewKeyringOf(bad); err == nil || k != nil {
			t.Errorf("NewKeyringOf accepted keys of %d, %d and %d bytes", len(bad.SecretHash), len(bad.DerivedSecrets), len(bad.SigningKeySeal))
		}
	}
}

func TestMasterKeyWrapsDataKeys(t *testing.T) {
	a, _ := secrets.NewMasterKey(bytes.Repeat([]byte{1}, 32))
	a2, _ := secrets.NewMasterKey(bytes.Repeat([]byte{1}, 32))
	b, _ := secrets.NewMasterKey(bytes.Repeat([]byte{2}, 32))
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(a.ID()) || a.ID() != a2.ID() || a.ID() == b.ID() {
		t.Fatalf("IDs %s, %s, %s: want 16 hex characters, equal for equal keys only", a.ID(), a2.ID(), b.ID())
	}
	if strings.Contains(hex.EncodeToString(bytes.Repeat([]byte{1}, 32)), a.ID()) {
		t.Fatal("the ID shows the key")
	}
	key := bytes.Repeat([]byte{9}, 32)
	wrapped := a.Wrap(key, []byte("purpose v1"))
	if bytes.Contains(wrapped, key) {
		t.Fatal("the wrapped key contains the key")
	}
	cases := []struct {
		name string
		m    *secrets.MasterKey
		aad  string
		ok   bool
	}{
		{"same master key", a2, "purpose v1", true},
		{"other master key", b, "purpose v1", false},
		{"other purpose", a, "purpose v2", false},
	}
	for _, tc := range cases {
		got, err := tc.m.Unwrap(wrapped, []byte(tc.aad))
		if tc.ok != (err == nil) || tc.ok != bytes.Equal(got, key) {
			t.Errorf("%s: Unwrap = %x, %v; want ok=%v", tc.name, got, err, tc.ok)
		}
	}
	// A master key's wrapping key is none of its derived data keys: a wrapped key never opens as sealed data.
	if _, err := a.DerivedKeyring().Open(wrapped, []byte("purpose v1")); err == nil {
		t.Error("the derived seal key opens a wrapped data key")
	}
	if _, err := secrets.NewMasterKey(make([]byte, 31)); err == nil {
		t.Error("NewMasterKey accepted 31 bytes")
	}
}

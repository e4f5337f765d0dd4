package internalcall

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/authplane/authplane/pkg/secrets"
)

func keyring(t *testing.T, b byte) *secrets.Keyring {
	t.Helper()
	k, err := secrets.NewKeyring(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := New(keyring(t, 1), "token")
	a.now = func() time.Time { return now }
	other := New(keyring(t, 2), "token")
	other.now = a.now
	good := a.Token()
	flip := func(s string, i int) string { b := []byte(s); b[i] ^= 1; return string(b) }
	cases := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"minted here", good, true},
		{"minted by another platform's master key", other.Token(), false},
		{"mac altered", flip(good, len(good)-2), false},
		{"caller altered", strings.Replace(good, "dG9rZW4", "Z2F0ZXdheQ", 1), false},
		{"expiry altered", strings.Replace(good, "."+strconv.FormatInt(now.Add(lifetime).Unix(), 10)+".", "."+strconv.FormatInt(now.Add(lifetime+time.Second).Unix(), 10)+".", 1), false},
		{"expired", a.mint("token", now.Add(-time.Second).Unix()), false},
		{"expiring now", a.mint("token", now.Unix()), false},
		{"valid far too long", a.mint("token", now.Add(time.Hour).Unix()), false},
		{"empty", "", false},
		{"a JWT", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", false},
		{"prefix only", prefix, false},
		{"no mac", prefix + "dG9rZW4.1800000300", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller, ok := a.Verify(tc.raw)
			if ok != tc.ok {
				t.Fatalf("Verify(%q) = %v, want %v", tc.raw, ok, tc.ok)
			}
			if ok && caller != "token" {
				t.Fatalf("caller = %q", caller)
			}
		})
	}
	var nilAuthority *Authority
	if _, ok := nilAuthority.Verify(good); ok {
		t.Fatal("a process without an authority accepted a credential")
	}
}

func TestTokenIsRenewedBeforeItEnds(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := New(keyring(t, 1), "gateway")
	a.now = func() time.Time { return now }
	first := a.Token()
	if a.Token() != first {
		t.Fatal("a fresh credential was not reused")
	}
	now = now.Add(lifetime - renewMargin)
	second := a.Token()
	if second == first {
		t.Fatal("the credential was not renewed before its end")
	}
	if _, ok := a.Verify(second); !ok {
		t.Fatal("the renewed credential does not verify")
	}
	now = now.Add(renewMargin)
	if _, ok := a.Verify(first); ok {
		t.Fatal("an expired credential verifies")
	}
}

func TestOutgoingReplacesTheCallersToken(t *testing.T) {
	a := New(keyring(t, 1), "tenant")
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer caller", "x-request-id", "r1")
	md, _ := metadata.FromOutgoingContext(a.Outgoing(ctx))
	auth := md.Get("authorization")
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer "+prefix) {
		t.Fatalf("authorization = %q, want only the internal credential", auth)
	}
	if got := md.Get("x-request-id"); len(got) != 1 || got[0] != "r1" {
		t.Fatalf("x-request-id = %q, want it kept", got)
	}
	orig, _ := metadata.FromOutgoingContext(ctx)
	if got := orig.Get("authorization"); len(got) != 1 || got[0] != "Bearer caller" {
		t.Fatalf("the caller's context was changed: %q", got)
	}
}

// TestPreviousMasterKeysAreAcceptedDuringARotation: a process started with a new master key and the previous one
// mints under the new key and accepts both, so processes not yet restarted keep calling it; one holding only the
// previous key does not accept the new key's credentials, and a key that was never configured is refused.
func TestPreviousMasterKeysAreAcceptedDuringARotation(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	at := func(a *Authority) *Authority { a.now = func() time.Time { return now }; return a }
	rotating := at(New(keyring(t, 2), "token", keyring(t, 1)))
	oldOnly := at(New(keyring(t, 1), "client"))
	newOnly := at(New(keyring(t, 2), "client"))
	stranger := at(New(keyring(t, 3), "client"))
	cases := []struct {
		name     string
		minter   *Authority
		verifier *Authority
		ok       bool
	}{
		{"the previous key's credential, at the rotating process", oldOnly, rotating, true},
		{"the rotating process's credential, at a process on the new key", rotating, newOnly, true},
		{"the rotating process's own credential", rotating, rotating, true},
		{"the rotating process mints under the new key, not the previous one", rotating, oldOnly, false},
		{"a key never configured, at the rotating process", stranger, rotating, false},
	}
	for _, tc := range cases {
		if _, ok := tc.verifier.Verify(tc.minter.Token()); ok != tc.ok {
			t.Errorf("%s: Verify = %v, want %v", tc.name, ok, tc.ok)
		}
	}
}

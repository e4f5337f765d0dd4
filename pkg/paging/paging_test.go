package paging_test

import (
	"encoding/base64"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/paging"
)

func TestSizeClamps(t *testing.T) {
	cases := []struct {
		requested int32
		want      int
	}{
		{math.MinInt32, paging.DefaultSize},
		{-1, paging.DefaultSize},
		{0, paging.DefaultSize},
		{1, 1},
		{50, 50},
		{paging.DefaultSize, paging.DefaultSize},
		{paging.MaxSize - 1, paging.MaxSize - 1},
		{paging.MaxSize, paging.MaxSize},
		{paging.MaxSize + 1, paging.MaxSize},
		{math.MaxInt32, paging.MaxSize},
	}
	for _, tc := range cases {
		if got := paging.Size(tc.requested); got != tc.want {
			t.Errorf("Size(%d) = %d, want %d", tc.requested, got, tc.want)
		}
	}
	if paging.DefaultSize != 100 || paging.MaxSize != 1000 {
		t.Errorf("DefaultSize/MaxSize = %d/%d, want 100/1000", paging.DefaultSize, paging.MaxSize)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	cases := []struct {
		name, key, scope string
	}{
		{"simple", "ws-42", "servers/acme"},
		{"key with separators", "pool/1|user:2", "users/acme/pool1"},
		{"unicode and quotes", `é"\ü`, "clients/acme/ws1"},
		{"empty scope", "k", ""},
		{"long key", strings.Repeat("x", 500), "s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := paging.Encode(tc.key, tc.scope)
			if tok == "" {
				t.Fatal("Encode returned an empty token")
			}
			// Tokens travel in query strings: only URL-safe characters, no padding.
			if strings.ContainsAny(tok, "+/=") {
				t.Errorf("token %q is not URL-safe", tok)
			}
			got, err := paging.Decode(tok, tc.scope)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != tc.key {
				t.Fatalf("Decode = %q, want %q", got, tc.key)
			}
		})
	}
}

func TestEmptyTokenIsTheFirstPage(t *testing.T) {
	for _, scope := range []string{"", "servers/acme"} {
		got, err := paging.Decode("", scope)
		if err != nil || got != "" {
			t.Errorf("Decode(\"\", %q) = %q, %v; want the first page", scope, got, err)
		}
	}
}

func TestBadTokensAreRefusedNamingPageToken(t *testing.T) {
	valid := paging.Encode("ws1", "servers/acme")
	cases := []struct {
		name, token, scope string
	}{
		{"token of another list", valid, "clients/acme/ws1"},
		{"token of another tenant's list", valid, "servers/globex"},
		{"scoped token used where no scope is expected", valid, ""},
		{"unscoped token used for a scoped list", paging.Encode("ws1", ""), "servers/acme"},
		{"not base64", "!!!not-a-token!!!", "servers/acme"},
		{"base64 of garbage", base64.RawURLEncoding.EncodeToString([]byte("garbage")), "servers/acme"},
		{"standard base64 with padding", base64.StdEncoding.EncodeToString([]byte(`{"a":"ws1","s":"servers/acme"}`)) + "==", "servers/acme"},
		{"json without a key", base64.RawURLEncoding.EncodeToString([]byte(`{"s":"servers/acme"}`)), "servers/acme"},
		{"json of the wrong shape", base64.RawURLEncoding.EncodeToString([]byte(`["ws1"]`)), "servers/acme"},
		{"truncated token", valid[:len(valid)/2], "servers/acme"},
		{"encoded empty key", paging.Encode("", "servers/acme"), "servers/acme"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := paging.Decode(tc.token, tc.scope)
			if err == nil {
				t.Fatalf("Decode accepted %q for scope %q (key %q)", tc.token, tc.scope, got)
			}
			if got != "" {
				t.Errorf("Decode returned key %q with its error", got)
			}
			var e *apierr.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *apierr.Error", err)
			}
			if e.Kind != apierr.KindInvalidArgument || e.Field != "page_token" {
				t.Fatalf("error = kind %v field %q, want InvalidArgument naming page_token", e.Kind, e.Field)
			}
			d := apierr.Describe(err)
			if d.HTTPStatus != 400 || d.Field != "page_token" || d.ErrorCode != "invalid_input" {
				t.Fatalf("Describe = %+v, want 400 invalid_input on page_token", d)
			}
		})
	}
}

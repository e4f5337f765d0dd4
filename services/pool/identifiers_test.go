package pool

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

func TestNormalizeIdentifier(t *testing.T) {
	tests := []struct {
		typ, raw, shown, key string
		ok                   bool
	}{
		{"email", "  Jane.Doe@Example.com ", "Jane.Doe@Example.com", "jane.doe@example.com", true},
		{"email", "ÉLODIE@exemple.fr", "ÉLODIE@exemple.fr", "élodie@exemple.fr", true},
		{"email", "jane.example.com", "", "", false},
		{"email", "jane@", "", "", false},
		{"email", "@example.com", "", "", false},
		{"email", "a@b@c", "", "", false},
		{"email", "jane doe@example.com", "", "", false},
		{"email", "jane@.example.com", "", "", false},
		{"mobile", "+14155550100", "+14155550100", "+14155550100", true},
		{"mobile", "+1 (415) 555-0100", "+14155550100", "+14155550100", true},
		{"mobile", "+44 20 7946 0958", "+442079460958", "+442079460958", true},
		{"mobile", "4155550100", "", "", false},
		{"mobile", "+0123456", "", "", false},
		{"mobile", "+1234567890123456", "", "", false},
		{"mobile", "+1-800-FLOWERS", "", "", false},
		{"uid", "JaneD", "JaneD", "janed", true},
		{"uid", "jane doe", "", "", false},
		{"uid", "", "", "", false},
		{"uid", "tab\there", "", "", false},
		{"", "jane", "", "", false},
		{"fax", "123", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+tt.raw, func(t *testing.T) {
			shown, key, err := normalizeIdentifier(tt.typ, tt.raw)
			if (err == nil) != tt.ok || shown != tt.shown || key != tt.key {
				t.Fatalf("= %q, %q, %v; want %q, %q, ok=%v", shown, key, err, tt.shown, tt.key, tt.ok)
			}
		})
	}
}

func TestLookupKeysFindEveryTypeByItsStoredKey(t *testing.T) {
	tests := []struct {
		raw  string
		want []string
	}{
		{" JANE@Example.com", []string{"jane@example.com"}},
		{"+1 415 555 0100", []string{"+1 415 555 0100", "+14155550100"}},
		{"+14155550100", []string{"+14155550100"}},
		{"JaneD", []string{"janed"}},
		{"   ", nil},
	}
	for _, tt := range tests {
		if got := lookupKeys(tt.raw); !slices.Equal(got, tt.want) {
			t.Errorf("lookupKeys(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
	// Every normalized key is among the lookup keys of the shown form and of the raw input.
	for _, c := range [][2]string{{"email", " Jane@X.org"}, {"mobile", "+1 (415) 555-0100"}, {"uid", "MiXeD"}} {
		shown, key, err := normalizeIdentifier(c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(lookupKeys(shown), key) || !slices.Contains(lookupKeys(c[1]), key) {
			t.Errorf("%s %q: key %q not found by lookup", c[0], c[1], key)
		}
	}
}

func TestMask(t *testing.T) {
	m := newMask(&fieldmaskpb.FieldMask{Paths: []string{"name", "password_policy.min_length", "payload.given_name"}})
	for field, want := range map[string]bool{"name": true, "description": false, "password_policy": true, "payload": true, "lockout_policy": false} {
		if m.has(field) != want {
			t.Errorf("has(%s) = %v", field, !want)
		}
	}
	sub := m.sub("password_policy")
	if !sub.has("min_length") || sub.has("max_length") {
		t.Errorf("sub mask %+v", sub)
	}
	if all := newMask(nil); !all.has("anything") || !all.sub("x").has("y") {
		t.Error("a nil mask must touch everything")
	}
	if whole := newMask(&fieldmaskpb.FieldMask{Paths: []string{"lockout_policy"}}).sub("lockout_policy"); !whole.has("max_attempts") {
		t.Error("naming a message field touches all of it")
	}
	if none := newMask(&fieldmaskpb.FieldMask{}); none.has("name") {
		t.Error("an empty mask touches nothing")
	}
}

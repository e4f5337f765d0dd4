package password

import (
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	strict := Policy{MinLength: 10, MaxLength: 20, CapitalLetters: 1, LowercaseLetters: 2, Digits: 1, SpecialCharacters: 1}
	tests := []struct {
		name     string
		policy   Policy
		password string
		wantErr  string // substring; empty means accepted
	}{
		{"long enough", Policy{MinLength: 8}, "abcdefgh", ""},
		{"too short", Policy{MinLength: 10}, "Nine-char", "at least 10 characters"},
		{"length counts characters, not bytes", Policy{MinLength: 4, MaxLength: 4}, "äöüß", ""},
		{"too long", Policy{MinLength: 1, MaxLength: 5}, "abcdef", "at most 5 characters"},
		{"bcrypt byte bound", Policy{MinLength: 1, MaxBytes: 72}, strings.Repeat("é", 40), "at most 72 bytes"},
		{"meets every class", strict, "S3cure-pass!", ""},
		{"no capital", strict, "s3cure-pass!", "1 capital letter"},
		{"one lower-case letter too few", strict, "S3CURE-PASs!", "2 lower-case letters"},
		{"no digit", strict, "Secure-pass!", "1 digit"},
		{"no special character", strict, "S3curepassword", "1 special character"},
		{"space counts as special", Policy{MinLength: 1, SpecialCharacters: 1}, "a b", ""},
		{"non-ASCII capitals count", Policy{MinLength: 1, CapitalLetters: 1}, "élan Ω", ""},
		{"every broken rule is named", strict, "short", "at least 10 characters, at least 1 capital letter"},
		{"invalid UTF-8", Policy{MinLength: 1}, "\xff\xfe", "valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.password)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatal("accepted")
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q does not say %q", err, tt.wantErr)
			}
		})
	}
}

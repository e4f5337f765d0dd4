package password

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Policy is what a new password must satisfy. Lengths and counts are in Unicode code points.
type Policy struct {
	MinLength         int
	MaxLength         int
	CapitalLetters    int
	LowercaseLetters  int
	Digits            int
	SpecialCharacters int
	// MaxBytes, when set, bounds the UTF-8 length (bcrypt ignores what follows its 72nd byte).
	MaxBytes int
}

// Check returns nil when password satisfies p, else an error saying every rule it breaks.
func (p Policy) Check(password string) error {
	if !utf8.ValidString(password) {
		return fmt.Errorf("password must be valid UTF-8")
	}
	var upper, lower, digits, special int
	for _, r := range password {
		switch {
		case unicode.IsUpper(r):
			upper++
		case unicode.IsLower(r):
			lower++
		case unicode.IsDigit(r):
			digits++
		case unicode.IsLetter(r):
			// letters without case (for example CJK) count toward the length only
		default:
			special++
		}
	}
	n := utf8.RuneCountInString(password)
	var broken []string
	if n < p.MinLength {
		broken = append(broken, fmt.Sprintf("at least %d characters", p.MinLength))
	}
	if p.MaxLength > 0 && n > p.MaxLength {
		broken = append(broken, fmt.Sprintf("at most %d characters", p.MaxLength))
	}
	if p.MaxBytes > 0 && len(password) > p.MaxBytes {
		broken = append(broken, fmt.Sprintf("at most %d bytes in UTF-8", p.MaxBytes))
	}
	rules := []struct {
		have, want int
		what       string
	}{
		{upper, p.CapitalLetters, "capital letter"},
		{lower, p.LowercaseLetters, "lower-case letter"},
		{digits, p.Digits, "digit"},
		{special, p.SpecialCharacters, "special character"},
	}
	for _, r := range rules {
		if r.have < r.want {
			s := ""
			if r.want > 1 {
				s = "s"
			}
			broken = append(broken, fmt.Sprintf("at least %d %s%s", r.want, r.what, s))
		}
	}
	if len(broken) > 0 {
		return fmt.Errorf("password must have %s", strings.Join(broken, ", "))
	}
	return nil
}

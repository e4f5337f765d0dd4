package pool

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Identifier types.
const (
	identEmail  = "email"
	identMobile = "mobile"
	identUID    = "uid"
)

var (
	e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	// Separators people write inside phone numbers; dropped before the E.164 check.
	phoneSeparators = strings.NewReplacer(" ", "", "-", "", ".", "", "(", "", ")", "", "\u00a0", "")
)

// normalizeIdentifier checks an identifier of a type and returns the form shown to callers and the key that
// makes it unique in the pool. Emails and uids compare case-insensitively (the key is lower-cased); mobiles
// compare in E.164 form. Keys of all types share one namespace, so a lookup by any identifier finds one user.
func normalizeIdentifier(typ, raw string) (shown, key string, err error) {
	v := strings.TrimSpace(raw)
	if v == "" {
		return "", "", fmt.Errorf("identifier is empty")
	}
	if !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return "", "", fmt.Errorf("identifier holds invalid characters")
	}
	switch typ {
	case identEmail:
		if len(v) > 254 {
			return "", "", fmt.Errorf("an email address is at most 254 characters")
		}
		local, domain, ok := strings.Cut(v, "@")
		if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || strings.IndexFunc(v, unicode.IsSpace) >= 0 ||
			strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
			return "", "", fmt.Errorf("%q is not an email address", v)
		}
		return v, strings.ToLower(v), nil
	case identMobile:
		n := phoneSeparators.Replace(v)
		if !e164.MatchString(n) {
			return "", "", fmt.Errorf("a mobile number must be in E.164 form, such as +14155550100")
		}
		return n, n, nil
	case identUID:
		if utf8.RuneCountInString(v) > 256 {
			return "", "", fmt.Errorf("a uid is at most 256 characters")
		}
		if strings.IndexFunc(v, unicode.IsSpace) >= 0 {
			return "", "", fmt.Errorf("a uid cannot contain spaces")
		}
		return v, strings.ToLower(v), nil
	case "":
		return "", "", fmt.Errorf("identifier type is required (email, mobile or uid)")
	}
	return "", "", fmt.Errorf("unsupported identifier type %q (supported: email, mobile, uid)", typ)
}

// lookupKeys are the keys an identifier given without its type may be stored under, most likely first.
func lookupKeys(raw string) []string {
	v := strings.TrimSpace(raw)
	if v == "" {
		return nil
	}
	keys := []string{strings.ToLower(v)}
	if n := phoneSeparators.Replace(v); n != keys[0] && e164.MatchString(n) {
		keys = append(keys, n)
	}
	return keys
}

package token

import (
	"regexp"
	"strings"
)

// compileScopePattern turns a token policy's allowed_scopes pattern into an anchored regular expression:
// `**` matches any run of characters, `*` any run without `/`, everything else itself. RE2 matching is linear,
// so a hostile requested scope cannot make a pattern with many stars backtrack.
func compileScopePattern(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`^`)
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(pattern[i:], "**"):
			b.WriteString(`.*`)
			i += 2
		case pattern[i] == '*':
			b.WriteString(`[^/]*`)
			i++
		default:
			j := i
			for j < len(pattern) && pattern[j] != '*' {
				j++
			}
			b.WriteString(regexp.QuoteMeta(pattern[i:j]))
			i = j
		}
	}
	b.WriteString(`$`)
	return regexp.Compile(b.String())
}

// scopeRule decides which scopes a client may be granted: its registered scopes, and whatever matches one of its
// token policy's patterns.
type scopeRule struct {
	exact    map[string]struct{}
	patterns []*regexp.Regexp
}

func newScopeRule(scopes, patterns []string) scopeRule {
	r := scopeRule{exact: make(map[string]struct{}, len(scopes))}
	for _, s := range scopes {
		r.exact[s] = struct{}{}
	}
	for _, p := range patterns {
		if re, err := compileScopePattern(p); err == nil {
			r.patterns = append(r.patterns, re)
		}
	}
	return r
}

func (r *scopeRule) allows(scope string) bool {
	if _, ok := r.exact[scope]; ok {
		return true
	}
	for _, re := range r.patterns {
		if re.MatchString(scope) {
			return true
		}
	}
	return false
}

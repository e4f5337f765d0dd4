// Package scopes decides which scopes a client may be granted: its registered scopes, and whatever matches one of
// its token policy's patterns. The token service asks it when it grants a scope, and every access-token verifier
// asks it again on every use, so a token carrying a scope its client has since lost is refused.
package scopes

import (
	"regexp"
	"strings"

	"github.com/authplane/authplane/pkg/platform"
)

// CompilePattern turns a token policy's allowed_scopes pattern into an anchored regular expression: `**` matches
// any run of characters, `*` any run without `/`, everything else itself. RE2 matching is linear, so a hostile
// requested scope cannot make a pattern with many stars backtrack.
func CompilePattern(pattern string) (*regexp.Regexp, error) {
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

// Rule is what one client may be granted.
type Rule struct {
	exact    map[string]struct{}
	patterns []*regexp.Regexp
}

// NewRule is the rule of a client with these registered scopes and token policy patterns.
func NewRule(registered, patterns []string) *Rule {
	r := &Rule{exact: make(map[string]struct{}, len(registered))}
	for _, s := range registered {
		r.exact[s] = struct{}{}
	}
	for _, p := range patterns {
		if re, err := CompilePattern(p); err == nil {
			r.patterns = append(r.patterns, re)
		}
	}
	return r
}

// Allows reports whether scope may be granted. A reserved scope (one that opens a plane or introspection) is
// granted only by being registered on the client, never through a pattern: a `**` policy must not turn a reader
// into a writer.
func (r *Rule) Allows(scope string) bool {
	if _, ok := r.exact[scope]; ok {
		return true
	}
	if platform.ReservedScopes[scope] {
		return false
	}
	for _, re := range r.patterns {
		if re.MatchString(scope) {
			return true
		}
	}
	return false
}

// AllowsAll reports whether every scope of a space-separated list may be granted.
func (r *Rule) AllowsAll(list string) bool {
	for sc := range strings.FieldsSeq(list) {
		if !r.Allows(sc) {
			return false
		}
	}
	return true
}

package token

import (
	"strings"
	"unicode/utf8"

	"github.com/authplane/authplane/pkg/apierr"
)

// grantedScope is the scope a token request gets: the client's registered scopes when it names none, else
// exactly the scopes it names, each of which the client must be allowed (registered, or matching its token
// policy).
func grantedScope(g *grant) (string, error) {
	if g.req.Scope == "" {
		return g.client.defaults, nil
	}
	n := 0
	for sc := range strings.FieldsSeq(g.req.Scope) {
		if !g.client.scopes.Allows(sc) {
			return "", apierr.OAuth("invalid_scope", "scope "+quote(sc)+" is not allowed for this client")
		}
		n++
	}
	if n == 0 {
		return g.client.defaults, nil
	}
	// Granted exactly as requested (order and all), with the separators normalised to single spaces.
	return normalizeScope(g.req.Scope), nil
}

// normalizeScope joins the scopes of a space-separated list with single spaces, as strings.Fields splits them; a
// list already in that form (ASCII, one space between scopes, none around) is returned as it is.
func normalizeScope(scope string) string {
	prevSpace := true // so a leading space is not normal
	for i := 0; i < len(scope); i++ {
		switch c := scope[i]; {
		case c >= utf8.RuneSelf || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r':
			return strings.Join(strings.Fields(scope), " ")
		case c == ' ':
			if prevSpace {
				return strings.Join(strings.Fields(scope), " ")
			}
			prevSpace = true
		default:
			prevSpace = false
		}
	}
	if prevSpace {
		return strings.Join(strings.Fields(scope), " ")
	}
	return scope
}

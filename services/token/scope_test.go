package token

import (
	"strings"
	"testing"
)

func TestScopePatterns(t *testing.T) {
	tests := []struct {
		pattern, scope string
		want           bool
	}{
		{"*:webhooks/**", "orders:webhooks/a/b", true},
		{"*:webhooks/**", "orders:webhooks/", true},
		{"*:webhooks/**", "orders/x:webhooks/a", false}, // the leading * cannot cross a slash
		{"*:webhooks/**", "orders:webhook/a", false},
		{"orders.*", "orders.read", true},
		{"orders.*", "orders.", true},
		{"orders.*", "orders.read/all", false},
		{"orders.*", "ordersXread", false}, // a dot is a dot
		{"orders/**", "orders/a/b/c", true},
		{"**", "anything/at:all", true},
		{"*", "no-slash", true},
		{"*", "a/b", false},
		{"orders.read", "orders.read", true},
		{"orders.read", "orders.reader", false},
		{"orders.read", "xorders.read", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXX/bYYc", false},
		{"a**c", "a/b/c", true},
		{"[x]+(y)?", "[x]+(y)?", true}, // regular expression syntax is literal
		{"[x]+(y)?", "xxy", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, tc := range tests {
		t.Run(tc.pattern+" vs "+tc.scope, func(t *testing.T) {
			re, err := compileScopePattern(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := re.MatchString(tc.scope); got != tc.want {
				t.Fatalf("match = %v, want %v (regexp %s)", got, tc.want, re)
			}
		})
	}
}

func TestScopeRuleGrantsRegisteredScopesAndPatterns(t *testing.T) {
	r := newScopeRule([]string{"orders.read"}, []string{"*:webhooks/**"})
	for scope, want := range map[string]bool{
		"orders.read": true, "orders.write": false, "billing:webhooks/x": true, "orders.read/x": false,
	} {
		if got := r.allows(scope); got != want {
			t.Errorf("allows(%q) = %v, want %v", scope, got, want)
		}
	}
}

func TestNormalizeScopeMatchesFieldsAndJoin(t *testing.T) {
	for _, in := range []string{
		"a", "a b", "a  b", " a b", "a b ", "a\tb", "a\nb", "a\u00a0b", "a\u0085b", "", " ", "orders:webhooks/a/b x",
	} {
		want := strings.Join(strings.Fields(in), " ")
		if got := normalizeScope(in); got != want {
			t.Errorf("normalizeScope(%q) = %q, want %q", in, got, want)
		}
	}
}

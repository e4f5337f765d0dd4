package scopes

import "testing"

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
			re, err := CompilePattern(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := re.MatchString(tc.scope); got != tc.want {
				t.Fatalf("match = %v, want %v (regexp %s)", got, tc.want, re)
			}
		})
	}
}

func TestRuleGrantsRegisteredScopesAndPatternsButReservedOnlyRegistered(t *testing.T) {
	r := NewRule([]string{"orders.read", "read_configuration"}, []string{"*:webhooks/**", "**"})
	for scope, want := range map[string]bool{
		"orders.read": true, "billing:webhooks/x": true, "anything/else": true,
		// Reserved scopes come only from the registration, never from a pattern (here "**").
		"read_configuration": true, "manage_configuration": false, "manage_tenants": false, "identity": false,
		"introspect_tokens": false,
	} {
		if got := r.Allows(scope); got != want {
			t.Errorf("allows(%q) = %v, want %v", scope, got, want)
		}
	}
}

func TestAllowsAll(t *testing.T) {
	r := NewRule([]string{"a", "b"}, nil)
	for list, want := range map[string]bool{"": true, "a": true, "a b": true, " a  b ": true, "a c": false, "c": false} {
		if got := r.AllowsAll(list); got != want {
			t.Errorf("AllowsAll(%q) = %v, want %v", list, got, want)
		}
	}
}

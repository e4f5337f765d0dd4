package token

import (
	"strings"
	"testing"
)

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

package paging

import (
	"fmt"
	"slices"
	"testing"
)

func TestPageWalksEveryRowOnce(t *testing.T) {
	var all []string
	for i := 0; i < 25; i++ {
		all = append(all, fmt.Sprintf("k%02d", i))
	}
	fetch := func(after string, limit int) ([]string, error) {
		var out []string
		for _, k := range all {
			if k > after && len(out) < limit {
				out = append(out, k)
			}
		}
		return out, nil
	}
	key := func(s *string) string { return *s }
	for _, size := range []int32{1, 7, 10, 25, 26} {
		t.Run(fmt.Sprint("size ", size), func(t *testing.T) {
			var seen []string
			token, pages := "", 0
			for {
				rows, next, err := Page(token, size, "things", fetch, key)
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) > int(size) {
					t.Fatalf("page of %d rows, size %d", len(rows), size)
				}
				seen = append(seen, rows...)
				pages++
				if next == "" {
					break
				}
				token = next
			}
			if !slices.Equal(seen, all) {
				t.Fatalf("walked %v", seen)
			}
			if want := (25 + int(size) - 1) / int(size); pages != want {
				t.Fatalf("%d pages, want %d (no empty last page)", pages, want)
			}
		})
	}
	if _, _, err := Page(Encode("k03", "other"), 5, "things", fetch, key); err == nil {
		t.Fatal("a token of another list was accepted")
	}
}

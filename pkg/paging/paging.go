// Package paging implements AIP-158 list pages over a stable key (keyset, not OFFSET): the page token is the
// opaque encoding of the last key returned, so a page costs the same at any depth.
package paging

import (
	"encoding/base64"
	"encoding/json"

	"github.com/authplane/authplane/pkg/apierr"
)

const (
	DefaultSize = 100
	MaxSize     = 1000
)

// Size returns the effective page size.
func Size(requested int32) int {
	switch {
	case requested <= 0:
		return DefaultSize
	case requested > MaxSize:
		return MaxSize
	default:
		return int(requested)
	}
}

type token struct {
	After string `json:"a"`
	Scope string `json:"s,omitempty"` // what the list was of (a token is refused for another list)
}

// Decode returns the key after which the page starts ("" for the first page).
// scope names the list (for example "clients/acme/ws1") so a token cannot be replayed against another list.
func Decode(pageToken, scope string) (string, error) {
	if pageToken == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(pageToken)
	var t token
	if err == nil {
		err = json.Unmarshal(raw, &t)
	}
	if err != nil || t.After == "" || t.Scope != scope {
		return "", apierr.Field("page_token", "page_token is not valid for this list")
	}
	return t.After, nil
}

// Encode makes the next page token when a page came back full.
func Encode(lastKey, scope string) string {
	raw, _ := json.Marshal(token{After: lastKey, Scope: scope})
	return base64.RawURLEncoding.EncodeToString(raw)
}

// Page fetches one page over a stable key: it decodes pageToken (scoped to the list named by scope), asks fetch
// for up to size+1 rows after that key, and when more rows exist than fit, keeps size of them and encodes the
// key of the last one as the next page token.
func Page[R any](pageToken string, pageSize int32, scope string, fetch func(after string, limit int) ([]R, error), key func(*R) string) (rows []R, next string, err error) {
	after, err := Decode(pageToken, scope)
	if err != nil {
		return nil, "", err
	}
	size := Size(pageSize)
	if rows, err = fetch(after, size+1); err != nil {
		return nil, "", err
	}
	if len(rows) > size {
		rows = rows[:size]
		next = Encode(key(&rows[size-1]), scope)
	}
	return rows, next, nil
}

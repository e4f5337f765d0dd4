package docschema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const userSchema = `{"type":"object","properties":{"given_name":{"type":"string","minLength":1},"family_name":{"type":"string"},
"age":{"type":"integer","minimum":0},"email":{"type":"string","format":"email"},
"address":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},"required":["given_name"]}`

func TestCompileRefusesInvalidSchemas(t *testing.T) {
	tests := []struct {
		name, doc, wantField string
	}{
		{"unknown type", `{"type":"object","properties":{"a":{"type":"no-such-type"}}}`, "properties.a.type"},
		{"minLength not a number", `{"type":"string","minLength":"three"}`, "minLength"},
		{"required not an array", `{"type":"object","required":"given_name"}`, "required"},
		{"external file reference", `{"$ref":"file:///etc/passwd"}`, ""},
		{"remote reference", `{"$ref":"https://example.com/schema.json"}`, ""},
		{"relative reference", `{"$ref":"other.json"}`, ""},
		{"invalid pattern", `{"type":"string","pattern":"(unclosed"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(decode(t, tt.doc))
			var v *Violation
			if !errors.As(err, &v) {
				t.Fatalf("err = %v, want a Violation", err)
			}
			if tt.wantField != "" && v.Field != tt.wantField {
				t.Fatalf("field = %q, want %q (%s)", v.Field, tt.wantField, v.Message)
			}
		})
	}
}

func TestValidateNamesTheFailingField(t *testing.T) {
	s, err := Compile(decode(t, userSchema))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, value, wantField, wantMsg string
	}{
		{"valid", `{"given_name":"Jane","age":30,"address":{"city":"Oslo"}}`, "", ""},
		{"missing required", `{"family_name":"Doe"}`, "given_name", "required"},
		{"below minimum", `{"given_name":"Bob","age":-3}`, "age", "minimum"},
		{"not an integer", `{"given_name":"Bob","age":2.5}`, "age", "integer"},
		{"empty string", `{"given_name":""}`, "given_name", "minLength"},
		{"nested required", `{"given_name":"Bob","address":{}}`, "address.city", "required"},
		{"format is asserted", `{"given_name":"Bob","email":"not-an-email"}`, "email", "email"},
		{"not an object", `[]`, "", "object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tt.value), &v); err != nil {
				t.Fatal(err)
			}
			err := s.Validate(v)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var viol *Violation
			if !errors.As(err, &viol) {
				t.Fatalf("err = %v, want a Violation", err)
			}
			if viol.Field != tt.wantField || !strings.Contains(viol.Message, tt.wantMsg) {
				t.Fatalf("violation = %q / %q, want field %q and a message with %q", viol.Field, viol.Message, tt.wantField, tt.wantMsg)
			}
		})
	}
}

func TestAnEarlierDraftNamedInTheDocumentIsHonoured(t *testing.T) {
	s, err := Compile(decode(t, `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"n":{"type":"integer","exclusiveMinimum":0}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(map[string]any{"n": float64(0)}); err == nil {
		t.Fatal("n=0 accepted despite exclusiveMinimum 0")
	}
}

package gateway

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzParseTokenParams: whatever the body and content type, parsing a token request never panics, and a
// successful parse yields single-valued parameters.
func FuzzParseTokenParams(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", []byte("grant_type=client_credentials&scope=a+b"))
	f.Add("application/json", []byte(`{"grant_type":"password","user_name":"a","password":"b","n":1,"t":true,"z":null}`))
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--\r\n"))
	f.Add("text/plain", []byte("x"))
	f.Add("application/json", []byte(`{"a":[1]}`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/t/w/oauth2/token", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		params, err := parseTokenParams(r)
		if err == nil && params == nil {
			t.Fatal("nil parameters without an error")
		}
	})
}

func TestBasicCredentials(t *testing.T) {
	enc := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, header     string
		id, secret       string
		present, invalid bool
	}{
		{"absent", "", "", "", false, false},
		{"bearer is not basic", "Bearer x", "", "", false, false},
		{"plain", enc("cli:sec"), "cli", "sec", true, false},
		{"percent-encoded halves (RFC 6749 2.3.1)", enc("cli%2D1:s%3Ac%2Bt"), "cli-1", "s:c+t", true, false},
		{"form encoding: plus is a space", enc("a+b:c"), "a b", "c", true, false},
		{"secret containing a colon after encoding", enc("cli:a:b"), "cli", "a:b", true, false},
		{"scheme is case-insensitive", "basic " + base64.StdEncoding.EncodeToString([]byte("c:s")), "c", "s", true, false},
		{"not base64", "Basic !!!", "", "", true, true},
		{"no colon", enc("nocolon"), "", "", true, true},
		{"bad percent-encoding", enc("c%zz:s"), "", "", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			id, secret, present, err := basicCredentials(r)
			if present != tc.present || (err != nil) != tc.invalid {
				t.Fatalf("present=%v err=%v, want present=%v invalid=%v", present, err, tc.present, tc.invalid)
			}
			if !tc.invalid && (id != tc.id || secret != tc.secret) {
				t.Fatalf("got %q:%q, want %q:%q", id, secret, tc.id, tc.secret)
			}
		})
	}
}

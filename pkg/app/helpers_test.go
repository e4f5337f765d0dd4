package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authplane/authplane/pkg/testenv"
)

// tokenStatus asks the admin workspace of acme for a client_credentials token and returns the HTTP status.
func tokenStatus(t *testing.T, env *testenv.Env, id, secret string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", env.Issuer("acme", "admin")+"/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond for up to fifteen seconds (announcements between processes are asynchronous, and CI runs
// packages in parallel under the race detector).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if !eventually(cond) {
		t.Fatal("condition not met within 15s")
	}
}

// eventually polls cond as waitFor does and reports whether it was met, for callers that say what was not.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Issuance is a workspace set up for both kinds of token request a load test sends: client_credentials for a
// service client, and the password grant for a pool user (hashed with the cheapest argon2id parameters, so that the
// load measures the platform rather than the hash).
type Issuance struct {
	Tenant, Workspace        string
	ServiceID, ServiceSecret string
	AppID, AppSecret         string
	Username, UserPassword   string
}

// NewIssuance creates tenant with a workspace `shop` whose identity pool `people` holds one user, and a client of
// each grant.
func (e *Env) NewIssuance(t testing.TB, tenant string) *Issuance {
	t.Helper()
	tn := e.NewTenant(t, tenant)
	iss := &Issuance{Tenant: tenant, Workspace: "shop", Username: "jane@example.com", UserPassword: "S3cure-pass!word"}
	must := func(code int, want int, what string) {
		t.Helper()
		if code != want {
			t.Fatalf("set up %s: status %d, want %d", what, code, want)
		}
	}
	must(e.CallJSON(t, "POST", "/api/admin/"+tenant+"/servers", tn.AdminToken, map[string]any{"id": "shop", "name": "Shop",
		"grant_types": []string{"client_credentials", "password"}}, nil), http.StatusCreated, "the workspace")
	must(e.CallJSON(t, "POST", "/api/identity/"+tenant+"/system/pools", tn.SystemToken, map[string]any{"id": "people",
		"name": "People", "authentication_mechanisms": []string{"password"},
		"password_settings": map[string]any{"hashing_method": "argon2id", "argon2": map[string]any{"memory_kib": 8192, "iterations": 1, "parallelism": 1}},
	}, nil), http.StatusCreated, "the pool")
	must(e.CallJSON(t, "POST", "/api/identity/"+tenant+"/system/pools/people/users", tn.SystemToken, map[string]any{
		"status": "active", "identifiers": []map[string]string{{"type": "email", "identifier": iss.Username}},
		"credentials": []map[string]string{{"type": "password", "password": iss.UserPassword}},
	}, nil), http.StatusCreated, "the user")
	must(e.CallJSON(t, "POST", "/api/admin/"+tenant+"/servers/shop/idps/identity_pool", tn.AdminToken, map[string]any{
		"name": "People", "identity_pool_id": "people"}, nil), http.StatusCreated, "the identity source")
	iss.ServiceID, iss.ServiceSecret = e.CreateClient(t, tenant, tn.AdminToken, map[string]any{"authorization_server_id": "shop",
		"client_name": "service", "grant_types": []string{"client_credentials"}})
	iss.AppID, iss.AppSecret = e.CreateClient(t, tenant, tn.AdminToken, map[string]any{"authorization_server_id": "shop",
		"client_name": "app", "grant_types": []string{"password"}})
	return iss
}

// TokenRequest is a token request to the gateway at baseURL: the password grant for the pool user, or
// client_credentials for the service client.
func (iss *Issuance) TokenRequest(baseURL string, password bool) *http.Request {
	form, id, secret := url.Values{"grant_type": {"client_credentials"}}, iss.ServiceID, iss.ServiceSecret
	if password {
		form = url.Values{"grant_type": {"password"}, "username": {iss.Username}, "password": {iss.UserPassword}}
		id, secret = iss.AppID, iss.AppSecret
	}
	req, _ := http.NewRequest("POST", baseURL+"/"+iss.Tenant+"/"+iss.Workspace+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return req
}

// CheckTokenResponse reads a token endpoint's answer: nil for 200 with an access token, else an error saying what
// came back (transport errors are the caller's).
func CheckTokenResponse(resp *http.Response) error {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &body) != nil || body.AccessToken == "" {
		return &TokenAnswerError{Status: resp.StatusCode, Body: string(raw)}
	}
	return nil
}

// TokenAnswerError is a token endpoint's answer other than a token.
type TokenAnswerError struct {
	Status int
	Body   string
}

func (e *TokenAnswerError) Error() string { return fmt.Sprintf("status %d: %s", e.Status, e.Body) }

// Load sends requests from several workers at once until stopped, and records every one on a logical clock: a
// counter that advances when a request starts, when it ends, and at each Mark. "Was this request in flight when that
// process was killed?" is then a comparison of ticks, with no wall clock involved.
type Load struct {
	t     testing.TB
	clock atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup

	mu        sync.Mutex
	results   []Result
	successes int
	changed   *sync.Cond
}

// Result is one request of a Load.
type Result struct {
	Worker, Seq int
	// Start and End are ticks of the load's clock.
	Start, End int64
	Err        error
}

// StartLoad runs workers goroutines, each calling do(worker, seq) in a loop until Stop; do returns nil for a
// success. The workers stop when the test ends, if Stop was not called.
func StartLoad(t testing.TB, workers int, do func(worker, seq int) error) *Load {
	l := &Load{t: t, stop: make(chan struct{})}
	l.changed = sync.NewCond(&l.mu)
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-l.stop:
					return
				default:
				}
				r := Result{Worker: w, Seq: seq, Start: l.clock.Add(1)}
				r.Err = do(w, seq)
				r.End = l.clock.Add(1)
				l.mu.Lock()
				l.results = append(l.results, r)
				if r.Err == nil {
					l.successes++
				}
				l.changed.Broadcast()
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

// Mark returns a tick of the clock: every request that started before it and ended after it was in flight at it.
func (l *Load) Mark() int64 { return l.clock.Add(1) }

// WaitForSuccesses waits until n more requests than now have succeeded (failing the test after a minute: the
// load has stalled).
func (l *Load) WaitForSuccesses(n int) {
	l.t.Helper()
	deadline := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	stopWaking := context.AfterFunc(ctx, func() { l.mu.Lock(); l.changed.Broadcast(); l.mu.Unlock() })
	defer stopWaking()
	l.mu.Lock()
	defer l.mu.Unlock()
	want := l.successes + n
	for l.successes < want {
		if ctx.Err() != nil {
			l.t.Fatalf("the load stalled: %d of %d more successes within a minute", n-(want-l.successes), n)
		}
		l.changed.Wait()
	}
}

// Stop stops the workers, waits for their last requests, and returns every result.
func (l *Load) Stop() []Result {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Result(nil), l.results...)
}

// Counter scrapes the Prometheus text at metricsURL and returns the sum of the counter name over the series whose
// labels include every one of labels (0 when there is none).
func Counter(t testing.TB, client *http.Client, metricsURL, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := client.Get(metricsURL)
	if err != nil {
		t.Fatalf("scrape %s: %v", metricsURL, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", metricsURL, err)
	}
	sum := 0.0
	for _, m := range families[name].GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if match {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

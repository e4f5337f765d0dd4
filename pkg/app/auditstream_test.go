package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/authplane/authplane/pkg/audit"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/testenv"
	"github.com/authplane/authplane/pkg/testnats"
)

// The audit stream's tests run against real NATS servers: the machine's (testnats.URL) where they share it with
// other tests (their tenants have ids of their own, and they read only from the time they started), and one of
// their own (testnats.Start) where they stop, freeze or wipe it.

func streamID(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// streamed is one message of the audit stream.
type streamed struct {
	Subject string
	MsgID   string
	Data    []byte
}

// readStream reads the messages on subjects filter stored since `since`, from the stream that holds them, up to
// the last one stored when it is called.
func readStream(t *testing.T, natsURL, filter string, since time.Time) []streamed {
	t.Helper()
	_, js := testnats.Connect(t, natsURL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, err := js.StreamNameBySubject(ctx, filter)
	if err != nil {
		t.Fatalf("the stream of %s: %v", filter, err)
	}
	cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []streamed
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n, pending := 0, uint64(0)
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, streamed{Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Data: m.Data()})
			n, pending = n+1, md.NumPending
		}
		if n > 0 && pending == 0 {
			return out
		}
		if n == 0 {
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumPending == 0 {
				return out
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("reading the stream: %d messages read, still more pending", len(out))
		}
	}
}

// trail lists a tenant's (or the operator's) audit events through the API, every page, as the API's JSON.
func trail(t *testing.T, env *testenv.Env, path, token string) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	q := url.Values{"page_size": {"100"}}
	for {
		var page struct {
			AuditEvents   []json.RawMessage `json:"audit_events"`
			NextPageToken string            `json:"next_page_token"`
		}
		if code := env.CallJSON(t, "GET", path+"?"+q.Encode(), token, nil, &page); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		all = append(all, page.AuditEvents...)
		if page.NextPageToken == "" {
			return all
		}
		q.Set("page_token", page.NextPageToken)
	}
}

// checkStreamedOnce checks that every event of the API's trail arrived once, on its tenant's subject, with the
// row's id as Nats-Msg-Id and the API's JSON of the event as its payload.
func checkStreamedOnce(t *testing.T, events []json.RawMessage, msgs []streamed) {
	t.Helper()
	// By the event the payload holds: a copy the duplicate window let through counts as a second arrival.
	byID := map[string][]streamed{}
	for _, m := range msgs {
		var e struct {
			ID       string `json:"id"`
			TenantID string `json:"tenant_id"`
		}
		_ = json.Unmarshal(m.Data, &e)
		byID[e.ID+"."+e.TenantID] = append(byID[e.ID+"."+e.TenantID], m)
	}
	for _, raw := range events {
		var api map[string]any
		if err := json.Unmarshal(raw, &api); err != nil {
			t.Fatal(err)
		}
		id, tenant := api["id"].(string), api["tenant_id"].(string)
		got := byID[id+"."+tenant]
		if len(got) != 1 {
			t.Errorf("event %s (%s of %s) arrived %d times, want once", id, api["action"], tenant, len(got))
			continue
		}
		if got[0].Subject != "authplane.audit."+tenant || got[0].MsgID != id+"."+tenant {
			t.Errorf("event %s arrived on %s with Nats-Msg-Id %q", id, got[0].Subject, got[0].MsgID)
		}
		var payload map[string]any
		if err := json.Unmarshal(got[0].Data, &payload); err != nil {
			t.Errorf("event %s: payload %q: %v", id, got[0].Data, err)
			continue
		}
		if !reflect.DeepEqual(payload, api) {
			t.Errorf("event %s streamed as\n  %s\nthe API shows it as\n  %s", id, got[0].Data, raw)
		}
	}
}

// openDB opens the process's database beside it, for what only the database shows (the outbox).
func openDB(t *testing.T, env *testenv.Env) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func count(t *testing.T, d *db.DB, query string) int64 {
	t.Helper()
	var n int64
	if err := d.Raw(query).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func outbox(t *testing.T, d *db.DB) int64 { return count(t, d, "SELECT COUNT(*) FROM audit_outbox") }

// waitUntil polls cond until it holds; it fails the test when it does not within limit (a bound on the wait, far
// above what the condition takes: no assertion on time).
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric reads the sum of a counter's or gauge's series (those whose labels contain match) from /metrics.
func metric(t *testing.T, env *testenv.Env, name, match string) float64 {
	t.Helper()
	resp, err := env.HTTP.Get(env.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) || !strings.Contains(series, match) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum += v
	}
	return sum
}

func rename(t *testing.T, env *testenv.Env, token, tenant, name string) int {
	t.Helper()
	return env.CallJSON(t, "PUT", "/api/admin/tenants/"+tenant, token, map[string]string{"name": name}, nil)
}

// TestAuditEventsReachTheStreamAsStored: with AUTHPLANE_AUDIT_NATS_URL set, every event the operator's changes
// write (tenants created, renamed, deleted, a refused rename) and a tenant's own arrive once on
// authplane.audit.<tenant> as the API shows them, and the outbox empties.
func TestAuditEventsReachTheStreamAsStored(t *testing.T) {
	natsURL := testnats.URL(t)
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		since := time.Now().Add(-time.Second)
		env := testenv.Start(t, testenv.WithBackend(b), testenv.WithEnv(map[string]string{"AUTHPLANE_AUDIT_NATS_URL": natsURL}))
		root := env.RootToken(t)
		gone, kept := streamID("gone"), streamID("kept")
		env.CreateTenant(t, gone)
		if code := rename(t, env, root, gone, "Gone soon"); code != http.StatusOK {
			t.Fatalf("rename: %d", code)
		}
		keptTenant := env.NewTenant(t, kept)
		if code := env.CallJSON(t, "POST", "/api/admin/"+kept+"/servers", keptTenant.AdminToken, map[string]any{"id": "shop"}, nil); code != http.StatusCreated {
			t.Fatalf("create a workspace: %d", code)
		}
		if code := rename(t, env, root, streamID("nobody"), "x"); code != http.StatusNotFound {
			t.Fatalf("rename an unknown tenant: %d", code)
		}
		if code := env.CallJSON(t, "DELETE", "/api/admin/tenants/"+gone, root, nil, nil); code != http.StatusOK && code != http.StatusNoContent {
			t.Fatalf("delete tenant: %d", code)
		}

		d := openDB(t, env)
		waitUntil(t, "the outbox empties", 30*time.Second, func() bool { return outbox(t, d) == 0 })
		operator := trail(t, env, "/api/admin/audit-events", root)
		own := trail(t, env, "/api/admin/"+kept+"/audit-events", keptTenant.AdminToken)
		if len(operator) < 5 || len(own) == 0 {
			t.Fatalf("the trails hold %d operator and %d tenant events", len(operator), len(own))
		}
		msgs := readStream(t, natsURL, "authplane.audit.>", since)
		checkStreamedOnce(t, operator, msgs)
		checkStreamedOnce(t, own, msgs)
		if got := metric(t, env, "authplane_audit_publish_failures_total", ""); got != 0 {
			t.Errorf("%v publish failures against a healthy NATS", got)
		}
		if got := metric(t, env, "authplane_audit_stream_connected", ""); got != 1 {
			t.Errorf("authplane_audit_stream_connected %v while connected", got)
		}
	})
}

// writer makes changes through the REST API, one after another, until stopped: renames of one tenant, each an
// event on the operator's trail. It records each request's outcome and latency under the phase it ran in.
type writer struct {
	env           *testenv.Env
	token, tenant string
	stop, done    chan struct{}

	mu        sync.Mutex
	phase     string
	phases    []string
	latencies map[string][]time.Duration
	ok        int
	failures  []string
}

func startWriter(t *testing.T, env *testenv.Env, token, tenant string) *writer {
	w := &writer{env: env, token: token, tenant: tenant, stop: make(chan struct{}), done: make(chan struct{}),
		latencies: map[string][]time.Duration{}}
	w.enter("NATS up")
	go func() {
		defer close(w.done)
		for i := 0; i < 20000; i++ { // bounded: the test stops it long before
			select {
			case <-w.stop:
				return
			default:
			}
			start := time.Now()
			code, err := w.rename(fmt.Sprintf("Name %d", i))
			took := time.Since(start)
			w.mu.Lock()
			if err != nil || code != http.StatusOK {
				w.failures = append(w.failures, fmt.Sprintf("%s: status %d, %v", w.phase, code, err))
			} else {
				w.ok++
				w.latencies[w.phase] = append(w.latencies[w.phase], took)
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *writer) rename(name string) (int, error) {
	body, _ := json.Marshal(map[string]string{"name": name})
	req, _ := http.NewRequest("PUT", w.env.HTTPURL+"/api/admin/tenants/"+w.tenant, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+w.token)
	resp, err := w.env.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (w *writer) enter(phase string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.phase = phase
	w.phases = append(w.phases, phase)
}

func (w *writer) succeeded() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ok
}

func (w *writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// report stops the writer, fails the test for any request that failed, and logs each phase's latencies: the
// requests made while NATS was away took what the others took, since no request waits on NATS (shown here, not
// asserted on: a shared machine's timings prove nothing).
func (w *writer) report(t *testing.T) {
	t.Helper()
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.failures {
		t.Errorf("a request failed: %s", f)
	}
	for _, p := range w.phases {
		l := slices.Clone(w.latencies[p])
		if len(l) == 0 {
			t.Errorf("no request succeeded while %s", p)
			continue
		}
		slices.Sort(l)
		t.Logf("%-16s %4d requests, latency median %v, 90th percentile %v, max %v", p+":", len(l), l[len(l)/2], l[len(l)*9/10], l[len(l)-1])
	}
}

// streamMsgs is how many messages a stream holds.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0 // not made yet
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestAuditStreamOutlivesANATSRestart: NATS stops while changes go on. Every request still succeeds (none waits
// on NATS), the events pile up in the outbox, and once NATS is back every one of them arrives, once, and the
// outbox empties. The relay made the stream as documented.
func TestAuditStreamOutlivesANATSRestart(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		srv := testnats.Start(t)
		since := time.Now().Add(-time.Second)
		env := testenv.Start(t, testenv.WithBackend(b), testenv.WithEnv(map[string]string{"AUTHPLANE_AUDIT_NATS_URL": srv.URL}))
		root := env.RootToken(t)
		tenant := streamID("restart")
		env.CreateTenant(t, tenant)
		d := openDB(t, env)
		_, js := testnats.Connect(t, srv.URL)

		w := startWriter(t, env, root, tenant)
		waitUntil(t, "events published while NATS is up", 30*time.Second, func() bool { return streamMsgs(t, js, audit.DefaultStream) >= 10 })

		srv.Stop(t)
		w.enter("NATS stopped")
		stoppedAt := w.succeeded()
		waitUntil(t, "events piling up in the outbox while NATS is down", time.Minute, func() bool {
			return w.succeeded() >= stoppedAt+30 && outbox(t, d) >= 30
		})

		srv.Start(t)
		w.enter("NATS restarted")
		restartedAt := w.succeeded()
		waitUntil(t, "requests going on after the restart", time.Minute, func() bool { return w.succeeded() >= restartedAt+10 })
		w.report(t)
		waitUntil(t, "the outbox empties after the restart", time.Minute, func() bool { return outbox(t, d) == 0 })

		events := trail(t, env, "/api/admin/audit-events", root)
		if len(events) < stoppedAt+40 {
			t.Fatalf("the operator's trail holds %d events", len(events))
		}
		checkStreamedOnce(t, events, readStream(t, srv.URL, "authplane.audit.>", since))

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, audit.DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		if !slices.Equal(cfg.Subjects, []string{"authplane.audit.>"}) || cfg.Duplicates != 2*time.Minute ||
			cfg.MaxAge != 2160*time.Hour || cfg.Storage != jetstream.FileStorage || cfg.Retention != jetstream.LimitsPolicy {
			t.Errorf("the stream the relay made: %+v", cfg)
		}
		if got := metric(t, env, "authplane_audit_events_published_total", ""); got < float64(len(events)) {
			t.Errorf("authplane_audit_events_published_total %v, %d events", got, len(events))
		}
	})
}

// TestAuditStreamThroughAFrozenNATSPublishesEachEventOnce: NATS freezes (its connections stay open, nothing is
// answered), so the relay's publishes time out, and it sends the same events again, while requests go on. When
// NATS thaws it reads every copy: its duplicate window (Nats-Msg-Id) keeps one of each, and every event arrives
// once.
func TestAuditStreamThroughAFrozenNATSPublishesEachEventOnce(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		srv := testnats.Start(t)
		since := time.Now().Add(-time.Second)
		env := testenv.Start(t, testenv.WithBackend(b), testenv.WithEnv(map[string]string{"AUTHPLANE_AUDIT_NATS_URL": srv.URL}))
		root := env.RootToken(t)
		tenant := streamID("frozen")
		env.CreateTenant(t, tenant)
		d := openDB(t, env)
		_, js := testnats.Connect(t, srv.URL)

		w := startWriter(t, env, root, tenant)
		waitUntil(t, "events published while NATS is up", 30*time.Second, func() bool { return streamMsgs(t, js, audit.DefaultStream) >= 10 })

		srv.Freeze(t)
		w.enter("NATS frozen")
		// The relay gave up waiting for a batch's acknowledgements (so it will send those events again).
		waitUntil(t, "a publish timing out while NATS is frozen", time.Minute, func() bool {
			return metric(t, env, "authplane_audit_publish_failures_total", "") > 0 && outbox(t, d) >= 20
		})
		srv.Thaw(t)
		w.enter("NATS thawed")
		thawedAt := w.succeeded()
		waitUntil(t, "requests going on after the thaw", time.Minute, func() bool { return w.succeeded() >= thawedAt+10 })
		w.report(t)
		waitUntil(t, "the outbox empties after the thaw", time.Minute, func() bool { return outbox(t, d) == 0 })

		events := trail(t, env, "/api/admin/audit-events", root)
		checkStreamedOnce(t, events, readStream(t, srv.URL, "authplane.audit.>", since))
		t.Logf("acknowledged as duplicates: %v", metric(t, env, "authplane_audit_events_published_total", `outcome="duplicate"`))
	})
}

// TestAuditStreamIsMadeAgainOnANATSThatLostIt: a NATS that comes back without its store (a fresh server) has no
// stream; the relay makes it again, under the configured name, and the events written meanwhile arrive.
func TestAuditStreamIsMadeAgainOnANATSThatLostIt(t *testing.T) {
	srv := testnats.Start(t)
	env := testenv.Start(t, testenv.WithEnv(map[string]string{"AUTHPLANE_AUDIT_NATS_URL": srv.URL, "AUTHPLANE_AUDIT_NATS_STREAM": "AUDIT_TRAIL"}))
	root := env.RootToken(t)
	tenant := streamID("lost")
	env.CreateTenant(t, tenant)
	d := openDB(t, env)
	waitUntil(t, "the first events published", 30*time.Second, func() bool { return outbox(t, d) == 0 })

	srv.Stop(t)
	srv.Wipe(t)
	for i := 0; i < 5; i++ {
		if code := rename(t, env, root, tenant, fmt.Sprintf("Renamed %d", i)); code != http.StatusOK {
			t.Fatalf("rename while NATS is down: %d", code)
		}
	}
	srv.Start(t)
	since := time.Now().Add(-time.Hour) // all the new store holds
	waitUntil(t, "the outbox empties on the new NATS", time.Minute, func() bool { return outbox(t, d) == 0 })
	_, js := testnats.Connect(t, srv.URL)
	if n := streamMsgs(t, js, "AUDIT_TRAIL"); n != 5 {
		t.Fatalf("the stream made again holds %d events, want the 5 written while NATS was away", n)
	}
	var renames []json.RawMessage
	for _, raw := range trail(t, env, "/api/admin/audit-events", root) {
		var e struct{ Action, RequestID string }
		_ = json.Unmarshal(raw, &e)
		if e.Action == "TenantService.UpdateTenant" {
			renames = append(renames, raw)
		}
	}
	if len(renames) != 5 {
		t.Fatalf("%d renames on the trail", len(renames))
	}
	checkStreamedOnce(t, renames, readStream(t, srv.URL, "authplane.audit.>", since))
}

// TestTwoRelaysOnOnePostgreSQLPublishEachEventOnce: two processes on one PostgreSQL database both stream, each
// woken by its own changes and polling for the other's. Every event arrives once and neither relay published one
// the other did: the two publish counters add up to the number of events.
func TestTwoRelaysOnOnePostgreSQLPublishEachEventOnce(t *testing.T) {
	natsURL := testnats.URL(t)
	since := time.Now().Add(-time.Second)
	streaming := testenv.WithEnv(map[string]string{"AUTHPLANE_AUDIT_NATS_URL": natsURL})
	a := testenv.Start(t, testenv.WithBackend(testenv.Postgres), streaming)
	b := testenv.Start(t, testenv.WithDatabase(a.DatabaseURL, a.MasterKey), testenv.WithIssuer(a.HTTPURL),
		testenv.WithRootSecret(a.RootSecret), streaming)
	root := a.RootToken(t)
	var wg sync.WaitGroup
	for _, env := range []*testenv.Env{a, b} {
		tenant := streamID("relay")
		env.CreateTenant(t, tenant)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				if code := rename(t, env, root, tenant, fmt.Sprintf("Name %d", i)); code != http.StatusOK {
					t.Errorf("rename through %s: %d", env.HTTPURL, code)
					return
				}
			}
		}()
	}
	wg.Wait()
	d := openDB(t, a)
	waitUntil(t, "the outbox empties", time.Minute, func() bool { return outbox(t, d) == 0 })

	var ids []string
	if err := d.Raw("SELECT id || '.' || tenant_id FROM audit_events").Scan(&ids).Error; err != nil {
		t.Fatal(err)
	}
	if len(ids) < 120 {
		t.Fatalf("%d events stored", len(ids))
	}
	times := map[string]int{}
	for _, m := range readStream(t, natsURL, "authplane.audit.>", since) {
		times[m.MsgID]++
	}
	for _, id := range ids {
		if times[id] != 1 {
			t.Errorf("event %s arrived %d times", id, times[id])
		}
	}
	pa, pb := metric(t, a, "authplane_audit_events_published_total", ""), metric(t, b, "authplane_audit_events_published_total", "")
	t.Logf("published by the first process %v, by the second %v", pa, pb)
	if pa+pb != float64(len(ids)) {
		t.Errorf("the relays published %v + %v times for %d events: some event was published by both", pa, pb, len(ids))
	}
}

// TestNoAuditStreamWithoutTheSetting: without AUTHPLANE_AUDIT_NATS_URL, changes write their events but nothing
// enters the outbox, the process opens no connection to NATS (not even to its default address, where the
// machine's server listens) and exports no audit stream metric. The same check sees the connection of a process
// that has the setting.
func TestNoAuditStreamWithoutTheSetting(t *testing.T) {
	natsURL := testnats.URL(t)
	port := testnats.Port(t, natsURL)
	if port != 4222 {
		t.Logf("the machine's NATS is at %s; the check also watches the default port 4222", natsURL)
	}
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		t.Skip("connections are read from /proc (Linux)")
	}
	streaming := testenv.Start(t, testenv.WithEnv(map[string]string{"AUTHPLANE_AUDIT_NATS_URL": natsURL}))
	waitUntil(t, "the streaming process connects to NATS", 30*time.Second, func() bool { return connectionsTo(t, port) > 0 })
	streaming.Stop()
	waitUntil(t, "its connection closes when it stops", 30*time.Second, func() bool { return connectionsTo(t, port) == 0 })

	env := testenv.Start(t)
	root := env.RootToken(t)
	tenant := streamID("quiet")
	env.CreateTenant(t, tenant)
	if code := rename(t, env, root, tenant, "Quiet"); code != http.StatusOK {
		t.Fatalf("rename: %d", code)
	}
	d := openDB(t, env)
	if n := count(t, d, "SELECT COUNT(*) FROM audit_events"); n < 2 {
		t.Fatalf("%d audit events written", n)
	}
	if n := outbox(t, d); n != 0 {
		t.Errorf("%d events in the outbox without the setting", n)
	}
	for _, p := range []int{port, 4222} {
		if n := connectionsTo(t, p); n != 0 {
			t.Errorf("%d connections to port %d without the setting", n, p)
		}
	}
	resp, err := env.HTTP.Get(env.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "authplane_audit_") {
		t.Error("audit stream metrics exported without the setting")
	}
}

// connectionsTo counts this test process's established TCP connections to a loopback port, from /proc: the
// sockets among its file descriptors whose remote end is 127.0.0.1:port (or [::1]:port).
func connectionsTo(t *testing.T, port int) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		if link, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(link, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	n := 0
	remotes := map[string]bool{fmt.Sprintf("0100007F:%04X", port): true, fmt.Sprintf("00000000000000000000000001000000:%04X", port): true}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		raw, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			if len(f) >= 10 && remotes[f[2]] && f[3] == "01" && mine[f[9]] {
				n++
			}
		}
	}
	return n
}

// TestAuditStreamUsesTheStreamAnOperatorMade: a stream that exists is used as its operator configured it, never
// changed; one of another name that already holds the subjects is used as it is, and no second one is made.
func TestAuditStreamUsesTheStreamAnOperatorMade(t *testing.T) {
	tests := []struct {
		name   string
		stream jetstream.StreamConfig
	}{
		{name: "under the configured name", stream: jetstream.StreamConfig{Name: audit.DefaultStream,
			Subjects: []string{"authplane.audit.>"}, Storage: jetstream.MemoryStorage, MaxAge: time.Hour, Duplicates: 10 * time.Minute}},
		{name: "under another name", stream: jetstream.StreamConfig{Name: "SIEM_FEED",
			Subjects: []string{"authplane.>"}, Storage: jetstream.FileStorage, Duplicates: 5 * time.Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := testnats.Start(t)
			_, js := testnats.Connect(t, srv.URL)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := js.CreateStream(ctx, tc.stream); err != nil {
				t.Fatal(err)
			}
			env := testenv.Start(t, testenv.WithEnv(map[string]string{"AUTHPLANE_AUDIT_NATS_URL": srv.URL}))
			env.CreateTenant(t, streamID("own"))
			d := openDB(t, env)
			waitUntil(t, "the outbox empties", 30*time.Second, func() bool { return outbox(t, d) == 0 })

			if n, stored := streamMsgs(t, js, tc.stream.Name), count(t, d, "SELECT COUNT(*) FROM audit_events"); n != uint64(stored) {
				t.Errorf("the operator's stream holds %d events, the database %d", n, stored)
			}
			s, err := js.Stream(ctx, tc.stream.Name)
			if err != nil {
				t.Fatal(err)
			}
			got := s.CachedInfo().Config
			if !slices.Equal(got.Subjects, tc.stream.Subjects) || got.Storage != tc.stream.Storage || got.MaxAge != tc.stream.MaxAge ||
				got.Duplicates != tc.stream.Duplicates {
				t.Errorf("the stream was changed: %+v", got)
			}
			names := js.StreamNames(ctx)
			var all []string
			for n := range names.Name() {
				all = append(all, n)
			}
			if names.Err() != nil || !slices.Equal(all, []string{tc.stream.Name}) {
				t.Errorf("streams %v (%v), want only %s", all, names.Err(), tc.stream.Name)
			}
		})
	}
}

package audit

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/testdb"
)

func openLog(t *testing.T, stream bool) (*Log, *db.DB) {
	t.Helper()
	d, err := db.Open(context.Background(), testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	l, err := Open(context.Background(), d, stream)
	if err != nil {
		t.Fatal(err)
	}
	return l, d
}

// TestOutboxPayloadIsTheAPIsJSON: the streamed copy of an event writes its time as the API does (protojson's
// Timestamp: UTC, 0, 3, 6 or 9 fractional digits) and to the microsecond the trail stores, whatever the clock
// gave; every field is there, empty ones included.
func TestOutboxPayloadIsTheAPIsJSON(t *testing.T) {
	l, d := openLog(t, true)
	paris := time.FixedZone("CET", 3600)
	tests := []struct {
		at   time.Time
		want string
	}{
		{time.Date(2025, 1, 2, 4, 4, 5, 0, paris), "2025-01-02T03:04:05Z"},
		{time.Date(2025, 1, 2, 3, 4, 5, 120_000_000, time.UTC), "2025-01-02T03:04:05.120Z"},
		{time.Date(2025, 1, 2, 3, 4, 5, 123_450_000, time.UTC), "2025-01-02T03:04:05.123450Z"},
		{time.Date(2025, 1, 2, 3, 4, 5, 123_456_789, time.UTC), "2025-01-02T03:04:05.123456Z"},
	}
	for _, tc := range tests {
		if err := l.Event(context.Background(), Event{TenantID: "acme", Time: tc.at, Action: "TokenService.PasswordLogin"}); err != nil {
			t.Fatal(err)
		}
		var row outboxRow
		if err := d.Order("id DESC").First(&row).Error; err != nil {
			t.Fatal(err)
		}
		var got JSON
		if err := json.Unmarshal([]byte(row.Payload), &got); err != nil {
			t.Fatal(err)
		}
		if got.Time != tc.want {
			t.Errorf("%v streamed as %q, the API writes %q", tc.at, got.Time, tc.want)
		}
		if row.ID != got.ID+".acme" || row.TenantID != "acme" || row.CreatedAt != tc.at.Truncate(time.Microsecond).UnixMicro() {
			t.Errorf("outbox row %+v for %+v", row, got)
		}
		for _, field := range []string{`"request_id":""`, `"changed_fields":[]`, `"actor":{"authorization_server_id":"","client_id":"","sub":""}`} {
			if !strings.Contains(row.Payload, field) {
				t.Errorf("payload %s lacks %s", row.Payload, field)
			}
		}
	}
}

// TestNoOutboxWithoutStreaming: a log opened without streaming writes its events and nothing to the outbox, and
// has no relay.
func TestNoOutboxWithoutStreaming(t *testing.T) {
	l, d := openLog(t, false)
	if err := l.Event(context.Background(), Event{TenantID: "acme", Action: "TokenService.PasswordLogin"}); err != nil {
		t.Fatal(err)
	}
	var events, queued int64
	d.Table("audit_events").Count(&events)
	d.Table("audit_outbox").Count(&queued)
	if events != 1 || queued != 0 {
		t.Errorf("%d events, %d in the outbox", events, queued)
	}
	if _, err := l.NewRelay(RelayConfig{URL: "nats://127.0.0.1:4222"}); err == nil {
		t.Error("a relay of a log that does not stream")
	}
}

func TestSubjectOfATenant(t *testing.T) {
	tests := []struct{ tenant, want string }{
		{"root", "authplane.audit.root"},
		{"acme-eu-2", "authplane.audit.acme-eu-2"},
		{"", "authplane.audit._"},      // an event of no tenant
		{"a.b", "authplane.audit._"},   // would be two tokens
		{"a*", "authplane.audit._"},    // a wildcard cannot be published to
		{"x y", "authplane.audit._"},   // nor a space
		{"acme>", "authplane.audit._"}, // nor the tail wildcard
	}
	for _, tc := range tests {
		if got := Subject(tc.tenant); got != tc.want {
			t.Errorf("Subject(%q) = %q, want %q", tc.tenant, got, tc.want)
		}
	}
}

// TestNATSURLErrorsKeepCredentialsOut: a refused URL is named in the error without its password or token.
func TestNATSURLErrorsKeepCredentialsOut(t *testing.T) {
	for _, raw := range []string{"http://audit:s3cret-pw@nats:4222", "nats://s3cret-pw@", "ftp://s3cret-pw@nats:4222"} {
		err := ValidateNATSURL(raw)
		if err == nil {
			t.Errorf("%s accepted", raw)
			continue
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("the error shows the credential: %v", err)
		}
	}
	for _, raw := range []string{"nats://127.0.0.1:4222", "127.0.0.1:4222", "tls://a:4222,nats://b:4222", "nats://user:pw@nats:4222"} {
		if err := ValidateNATSURL(raw); err != nil {
			t.Errorf("%s refused: %v", raw, err)
		}
	}
	if got := redactURL("nats://user:pw@a:4222,nats://token@b:4222"); strings.Contains(got, "pw") || strings.Contains(got, "token") {
		t.Errorf("redacted to %s", got)
	}
}

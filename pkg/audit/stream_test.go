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


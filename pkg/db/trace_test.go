package db_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/testenv"
)

// TestStatementsAreTracedWithinARequest: each statement of a traced request is a client span under the request's,
// named by operation and table, with its text but not its values, and failures marked; statements outside a
// trace make no span.
func TestStatementsAreTracedWithinARequest(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		d := open(t, testenv.DatabaseURL(t, b))
		if err := d.Migrate(context.Background(), "conformance", conformanceMigrations); err != nil {
			t.Fatal(err)
		}
		spans := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		if err := d.Trace(tp); err != nil {
			t.Fatal(err)
		}
		if err := d.WithContext(context.Background()).Create(&thing{TenantID: "t1", ID: "untraced", N: 1}).Error; err != nil {
			t.Fatal(err)
		}
		if n := len(spans.Ended()); n != 0 {
			t.Fatalf("%d spans for a statement outside any trace", n)
		}

		ctx, request := tp.Tracer("test").Start(context.Background(), "request")
		tx := d.WithContext(ctx)
		if err := tx.Create(&thing{TenantID: "t1", ID: "secret-value-1", N: 2}).Error; err != nil {
			t.Fatal(err)
		}
		var got thing
		q := db.Tenant(tx.Model(&thing{}), "t1")
		if err := q.Where("id = ?", "secret-value-1").First(&got).Error; err != nil {
			t.Fatal(err)
		}
		if err := tx.Model(&thing{}).Where("tenant_id = ? AND id = ?", "t1", "secret-value-1").Update("n", 3).Error; err != nil {
			t.Fatal(err)
		}
		if err := tx.Create(&thing{TenantID: "t1", ID: "secret-value-1", N: 4}).Error; !db.IsUniqueViolation(err) {
			t.Fatalf("duplicate insert: %v", err)
		}
		if err := tx.Exec("DELETE FROM conformance_things WHERE tenant_id = ?", "t1").Error; err != nil {
			t.Fatal(err)
		}
		request.End()

		system := map[testenv.Backend]string{testenv.SQLite: "sqlite", testenv.Postgres: "postgresql"}[b]
		var names []string
		for _, s := range spans.Ended() {
			if s.Name() == "request" {
				continue
			}
			names = append(names, s.Name())
			if s.Parent().SpanID() != request.SpanContext().SpanID() {
				t.Errorf("%s is not a child of the request's span (each statement's span ends with it)", s.Name())
			}
			text := value(s, "db.query.text")
			if value(s, "db.system.name") != system || text == "" || strings.Contains(text, "secret-value") {
				t.Errorf("%s: system %q, text %q; want %s and the statement without its values", s.Name(), value(s, "db.system.name"), text, system)
			}
		}
		want := []string{"INSERT conformance_things", "SELECT conformance_things", "UPDATE conformance_things", "INSERT conformance_things", "DELETE"}
		if strings.Join(names, ", ") != strings.Join(want, ", ") {
			t.Errorf("spans %q, want %q", names, want)
		}
		var failed []string
		for _, s := range spans.Ended() {
			if s.Status().Code == codes.Error {
				failed = append(failed, s.Name())
			}
		}
		if len(failed) != 1 || failed[0] != "INSERT conformance_things" {
			t.Errorf("failed spans %q, want the duplicate insert only", failed)
		}
	})
}

func value(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}

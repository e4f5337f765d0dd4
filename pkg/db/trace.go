package db

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// Trace records a client span for every statement gorm runs within a traced request: the operation and table,
// and the statement with its placeholders (never its values, which may be secrets' hashes or tokens' ids).
// Statements outside a trace (migrations, background pruning, change listeners) make no spans of their own.
//
// gorm.io/plugin/opentelemetry does the same, but its package links the MySQL and ClickHouse drivers into the
// binary (about 9 MB and a dozen modules here) and records values by default; these callbacks are the few lines
// the platform needs.
func (d *DB) Trace(tp trace.TracerProvider) error {
	t := &statementTracer{tracer: tp.Tracer("github.com/authplane/authplane/pkg/db"), system: semconv.DBSystemNameSQLite}
	if d.Dialect == Postgres {
		t.system = semconv.DBSystemNamePostgreSQL
	}
	cb := d.Callback()
	hooks := []struct {
		name          string
		before, after registrar
	}{
		{"create", cb.Create().Before("gorm:create"), cb.Create().After("gorm:create")},
		{"query", cb.Query().Before("gorm:query"), cb.Query().After("gorm:query")},
		{"update", cb.Update().Before("gorm:update"), cb.Update().After("gorm:update")},
		{"delete", cb.Delete().Before("gorm:delete"), cb.Delete().After("gorm:delete")},
		{"row", cb.Row().Before("gorm:row"), cb.Row().After("gorm:row")},
		{"raw", cb.Raw().Before("gorm:raw"), cb.Raw().After("gorm:raw")},
	}
	for _, h := range hooks {
		if err := h.before.Register("authplane:trace_before_"+h.name, t.before); err != nil {
			return err
		}
		if err := h.after.Register("authplane:trace_after_"+h.name, t.after); err != nil {
			return err
		}
	}
	return nil
}

// registrar is a gorm callback position (Before or After a step); its type is unexported.
type registrar interface {
	Register(name string, fn func(*gorm.DB)) error
}

type statementTracer struct {
	tracer trace.Tracer
	system attribute.KeyValue
}

// spanContext is a statement's context while it runs: the span's, remembering the caller's to restore after, as
// a *gorm.DB may run several statements with one Statement.
type spanContext struct {
	context.Context
	parent context.Context
}

func (t *statementTracer) before(tx *gorm.DB) {
	parent := tx.Statement.Context
	if parent == nil || !trace.SpanContextFromContext(parent).IsValid() {
		return
	}
	ctx, _ := t.tracer.Start(parent, "db", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(t.system))
	tx.Statement.Context = spanContext{Context: ctx, parent: parent}
}

func (t *statementTracer) after(tx *gorm.DB) {
	sc, ok := tx.Statement.Context.(spanContext)
	if !ok {
		return
	}
	tx.Statement.Context = sc.parent
	span := trace.SpanFromContext(sc.Context)
	defer span.End()
	if !span.IsRecording() {
		return
	}
	query := tx.Statement.SQL.String()
	op, _, _ := strings.Cut(strings.TrimSpace(query), " ")
	op = strings.ToUpper(op)
	name := op
	if table := tx.Statement.Table; table != "" {
		name = op + " " + table
		span.SetAttributes(semconv.DBCollectionName(table))
	}
	if name != "" {
		span.SetName(name)
	}
	span.SetAttributes(semconv.DBOperationName(op), semconv.DBQueryText(query))
	if tx.Statement.RowsAffected >= 0 {
		span.SetAttributes(attribute.Int64("db.response.affected_rows", tx.Statement.RowsAffected))
	}
	if err := tx.Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) && !errors.Is(err, sql.ErrNoRows) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

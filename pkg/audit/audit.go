// Package audit is the platform's trail of who changed what, when. Every change on every plane writes its event in
// the same transaction as the change (Log.Change), so there is no change without its event and no event without
// its change; security events of the data plane (logins, lockouts, refresh-token reuse, ended sessions, key
// rotations) are written where they happen (Log.Event). What an event says of its call — the action, the actor,
// the request id and the source address — is taken once, by an interceptor (Interceptor), from the call itself,
// never from what a handler chooses to say. Events are read back, newest first, through the tenant service's
// audit API, and can be streamed to NATS JetStream through an outbox (package audit's Relay).
package audit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gorm.io/gorm"

	"github.com/authplane/authplane/pkg/db"
)

// Event is one entry of the trail. It never holds a secret, a password, a hash or a token: resources are named by
// id, and changed fields by name only.
type Event struct {
	ID       string
	Time     time.Time
	TenantID string
	Actor    Actor
	// Action is the service and RPC, e.g. `WorkspaceService.CreateServer`, or a data-plane event such as
	// `TokenService.PasswordLogin`.
	Action   string
	Resource Resource
	// Outcome is `ok`, or the error code the call answered with.
	Outcome       string
	RequestID     string
	SourceAddress string
	ChangedFields []string
}

// Actor is who made a call: the workspace and client of its access token and the token's subject (the user, or the
// client for client_credentials). Calls of the platform itself name the services of the process that made them.
type Actor struct {
	ServerID string `json:"authorization_server_id"`
	ClientID string `json:"client_id"`
	Subject  string `json:"sub"`
}

// Resource is what a change is about.
type Resource struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// OK is the outcome of a change that took effect.
const OK = "ok"

// row is an event as stored.
type row struct {
	TenantID      string `gorm:"primaryKey"`
	ID            string `gorm:"primaryKey"`
	Time          int64
	ActorServerID string
	ActorClientID string
	ActorSub      string
	Action        string
	ResourceType  string
	ResourceID    string
	Outcome       string
	RequestID     string
	SourceAddress string
	ChangedFields string
}

func (row) TableName() string { return "audit_events" }

// outboxRow is an event waiting to be streamed (see Relay): written in the event's transaction, deleted once the
// stream acknowledged it.
type outboxRow struct {
	ID        string `gorm:"primaryKey"`
	TenantID  string
	Payload   string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
	Attempts  int
	// LeasedUntil (µs) is when a relay's claim of the row lapses: until then no other relay publishes it.
	LeasedUntil int64
}

func (outboxRow) TableName() string { return "audit_outbox" }

var migrations = []db.Migration{
	// Events by tenant, their id sorting by time (newest first is the keyset order of the list); the time index is
	// the retention purge's.
	{Version: 1, Name: "audit events and their outbox", SQL: `
CREATE TABLE audit_events (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  time {{bigint}} NOT NULL,
  actor_server_id TEXT NOT NULL DEFAULT '',
  actor_client_id TEXT NOT NULL DEFAULT '',
  actor_sub TEXT NOT NULL DEFAULT '',
  action TEXT NOT NULL,
  resource_type TEXT NOT NULL DEFAULT '',
  resource_id TEXT NOT NULL DEFAULT '',
  outcome TEXT NOT NULL,
  request_id TEXT NOT NULL DEFAULT '',
  source_address TEXT NOT NULL DEFAULT '',
  changed_fields TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_resource ON audit_events (tenant_id, resource_type, resource_id, id);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE TABLE audit_outbox (
  id TEXT NOT NULL PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at {{bigint}} NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0
)`},
	// A relay claims the rows it publishes for a while (Relay), so that relays of several processes share the
	// outbox without holding a transaction open across a publish.
	{Version: 2, Name: "outbox leases", SQL: `ALTER TABLE audit_outbox ADD COLUMN leased_until {{bigint}} NOT NULL DEFAULT 0`},
}

// Log writes events to the database the process shares with its services.
type Log struct {
	db *db.DB
	// stream: every event also goes to the outbox, for the relay to publish (AUTHPLANE_AUDIT_NATS_URL is set).
	stream bool
	// wake tells this process's relay that an event entered the outbox (it polls for the other processes').
	wake chan struct{}
	now  func() time.Time
	seq  atomic.Uint32
}

// Open migrates the audit tables and returns the log. stream puts every event in the outbox too; every process of
// a deployment must agree on it (they share the configuration).
func Open(ctx context.Context, d *db.DB, stream bool) (*Log, error) {
	if err := d.Migrate(ctx, "audit", migrations); err != nil {
		return nil, err
	}
	return &Log{db: d, stream: stream, wake: make(chan struct{}, 1), now: time.Now}, nil
}

// newID is a sortable id: microseconds since the epoch, a per-process sequence and random bits, in hex, so ids
// sort by time and never collide between processes.
func (l *Log) newID(t time.Time) string {
	var b [14]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(t.UnixMicro()))
	binary.BigEndian.PutUint16(b[8:10], uint16(l.seq.Add(1)))
	_, _ = rand.Read(b[10:])
	return hex.EncodeToString(b[:])
}

// Change records a change made in tx, inside tx: the event commits with the change or not at all. The call's
// action, actor, request id and source come from ctx (Interceptor); tenantID is the tenant the change belongs to.
func (l *Log) Change(ctx context.Context, tx *gorm.DB, tenantID string, res Resource, changed ...string) error {
	ev := eventOf(ctx)
	ev.TenantID, ev.Resource, ev.Outcome, ev.ChangedFields = tenantID, res, OK, changed
	markRecorded(ctx)
	if err := l.write(tx, &ev); err != nil {
		return err
	}
	// Before the caller's commit: the relay, woken early, finds the row at its next look (see Relay).
	l.nudge()
	return nil
}

// Event records an event that is no change of stored data (a refused login, a lockout noticed, a detected
// reuse), in a transaction of its own. Fields ev leaves empty are taken from the call in ctx.
func (l *Log) Event(ctx context.Context, ev Event) error {
	call := eventOf(ctx)
	if ev.Action == "" {
		ev.Action = call.Action
	}
	if ev.Actor == (Actor{}) {
		ev.Actor = call.Actor
	}
	if ev.RequestID == "" {
		ev.RequestID = call.RequestID
	}
	if ev.SourceAddress == "" {
		ev.SourceAddress = call.SourceAddress
	}
	if ev.Outcome == "" {
		ev.Outcome = OK
	}
	markRecorded(ctx)
	if err := l.db.WithContext(context.WithoutCancel(ctx)).Transaction(func(tx *gorm.DB) error { return l.write(tx, &ev) }); err != nil {
		return err
	}
	l.nudge()
	return nil
}

// nudge wakes the relay of this process, if the log streams; it never waits.
func (l *Log) nudge() {
	if !l.stream {
		return
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Log) write(tx *gorm.DB, ev *Event) error {
	if ev.Time.IsZero() {
		ev.Time = l.now()
	}
	// Stored in microseconds: the streamed copy says the time the trail says.
	ev.Time = ev.Time.Truncate(time.Microsecond)
	if ev.ID == "" {
		ev.ID = l.newID(ev.Time)
	}
	changed, err := json.Marshal(nonNil(ev.ChangedFields))
	if err != nil {
		return err
	}
	r := &row{
		TenantID: ev.TenantID, ID: ev.ID, Time: ev.Time.UnixMicro(), ActorServerID: ev.Actor.ServerID,
		ActorClientID: ev.Actor.ClientID, ActorSub: ev.Actor.Subject, Action: ev.Action, ResourceType: ev.Resource.Type,
		ResourceID: ev.Resource.ID, Outcome: ev.Outcome, RequestID: ev.RequestID, SourceAddress: ev.SourceAddress,
		ChangedFields: string(changed),
	}
	if err := tx.Create(r).Error; err != nil {
		return fmt.Errorf("write audit event: %w", err)
	}
	if !l.stream {
		return nil
	}
	payload, err := json.Marshal(toJSON(ev))
	if err != nil {
		return err
	}
	return tx.Create(&outboxRow{ID: ev.ID + "." + ev.TenantID, TenantID: ev.TenantID, Payload: string(payload), CreatedAt: r.Time}).Error
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// JSON is an event as the API and the stream show it.
type JSON struct {
	ID            string   `json:"id"`
	Time          string   `json:"time"`
	TenantID      string   `json:"tenant_id"`
	Actor         Actor    `json:"actor"`
	Action        string   `json:"action"`
	Resource      Resource `json:"resource"`
	Outcome       string   `json:"outcome"`
	RequestID     string   `json:"request_id"`
	SourceAddress string   `json:"source_address"`
	ChangedFields []string `json:"changed_fields"`
}

func toJSON(ev *Event) JSON {
	return JSON{
		ID: ev.ID, Time: apiTime(ev.Time), TenantID: ev.TenantID, Actor: ev.Actor, Action: ev.Action,
		Resource: ev.Resource, Outcome: ev.Outcome, RequestID: ev.RequestID, SourceAddress: ev.SourceAddress,
		ChangedFields: nonNil(ev.ChangedFields),
	}
}

// apiTime writes t as the API writes an event's time (protojson's Timestamp: UTC, with 0, 3, 6 or 9 fractional
// digits), so that an event streamed and the same event listed are the same JSON.
func apiTime(t time.Time) string {
	b, err := protojson.Marshal(timestamppb.New(t))
	if err != nil { // only for a time outside years 1 to 9999
		return t.UTC().Format(time.RFC3339Nano)
	}
	return strings.Trim(string(b), `"`)
}

// Filter narrows a list of events.
type Filter struct {
	Action       string // exact, or a prefix ending in "." (`WorkspaceService.`)
	Actor        string // a client_id or a sub
	ResourceType string
	ResourceID   string
	Since, Until time.Time // since inclusive, until exclusive; zero: open
}

// List returns a tenant's events matching f, newest first, after the event id `after` (exclusive; "" for the
// newest), at most limit.
func (l *Log) List(ctx context.Context, tenantID string, f Filter, after string, limit int) ([]Event, error) {
	q := db.Tenant(l.db.WithContext(ctx), tenantID)
	if after != "" {
		q = q.Where("id < ?", after)
	}
	switch {
	case strings.HasSuffix(f.Action, "."):
		q = q.Where(`action LIKE ? ESCAPE '\'`, escapeLike(f.Action)+"%")
	case f.Action != "":
		q = q.Where("action = ?", f.Action)
	}
	if f.Actor != "" {
		q = q.Where("actor_client_id = ? OR actor_sub = ?", f.Actor, f.Actor)
	}
	if f.ResourceType != "" {
		q = q.Where("resource_type = ?", f.ResourceType)
	}
	if f.ResourceID != "" {
		q = q.Where("resource_id = ?", f.ResourceID)
	}
	if !f.Since.IsZero() {
		q = q.Where("time >= ?", f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		q = q.Where("time < ?", f.Until.UnixMicro())
	}
	var rows []row
	if err := q.Order("id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		var changed []string
		_ = json.Unmarshal([]byte(r.ChangedFields), &changed)
		out[i] = Event{
			ID: r.ID, Time: time.UnixMicro(r.Time), TenantID: r.TenantID,
			Actor:  Actor{ServerID: r.ActorServerID, ClientID: r.ActorClientID, Subject: r.ActorSub},
			Action: r.Action, Resource: Resource{Type: r.ResourceType, ID: r.ResourceID}, Outcome: r.Outcome,
			RequestID: r.RequestID, SourceAddress: r.SourceAddress, ChangedFields: nonNil(changed),
		}
	}
	return out, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// DeleteTenant deletes a tenant's events and what of them waits to be streamed, in tx (the tenant's deletion).
func (l *Log) DeleteTenant(tx *gorm.DB, tenantID string) error {
	if err := tx.Where("tenant_id = ?", tenantID).Delete(&row{}).Error; err != nil {
		return err
	}
	return tx.Where("tenant_id = ?", tenantID).Delete(&outboxRow{}).Error
}

// Purge deletes events older than cutoff, at most batch of them, and reports how many it deleted: a bounded step
// that the caller repeats, so a large backlog never makes one long transaction. (Ids are unique across tenants:
// they carry random bits.)
func (l *Log) Purge(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	res := l.db.WithContext(ctx).Exec(`DELETE FROM audit_events WHERE id IN
  (SELECT id FROM audit_events WHERE time < ? ORDER BY time LIMIT ?)`, cutoff.UnixMicro(), batch)
	return res.RowsAffected, res.Error
}

// Package changes announces that data changed, so every cache of it, in this process or another, drops it at once.
// With SQLite (one process) announcements stay in memory; with PostgreSQL they also travel through
// LISTEN/NOTIFY, reaching every process that shares the database.
package changes

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Topics. A key names what changed, usually `tenant/id`; a key of just `tenant/` means the whole tenant.
const (
	Tenants     = "tenants"
	Servers     = "servers"     // key tenant/server: the workspace, its scopes
	Clients     = "clients"     // key tenant/client
	Policies    = "policies"    // key tenant/policy
	Keys        = "keys"        // key tenant/server: signing keys
	Revocations = "revocations" // key tenant/server or tenant/: a token was revoked or a session ended
	Pools       = "pools"       // key tenant/pool
	Schemas     = "schemas"     // key tenant/schema
	Users       = "users"       // key tenant/pool/user: a pool user's status, password or profile
	everything  = "*"
)

// Key joins the parts of a change key.
func Key(tenantID, id string) string { return tenantID + "/" + id }

// TenantKey is the key that names a whole tenant.
func TenantKey(tenantID string) string { return tenantID + "/" }

// Bus delivers announcements to subscribers. Subscribers must be quick (drop a cache entry, no I/O).
type Bus struct {
	mu   sync.RWMutex
	subs map[string][]func(key string)
	pg   *pgNotifier
}

// NewMemory returns a bus that reaches this process only.
func NewMemory() *Bus { return &Bus{subs: map[string][]func(string){}} }

// Subscribe registers fn for a topic. fn receives "*" when announcements may have been missed
// (the PostgreSQL listener reconnected): drop everything then.
func (b *Bus) Subscribe(topic string, fn func(key string)) {
	b.mu.Lock()
	b.subs[topic] = append(b.subs[topic], fn)
	b.mu.Unlock()
}

// Publish announces a change, after the change is committed. It never fails the caller's request: a lost
// cross-process announcement is logged, and the caches' TTL bounds the staleness.
func (b *Bus) Publish(ctx context.Context, topic, key string) {
	b.deliver(topic, key)
	if b.pg != nil {
		b.pg.notify(ctx, topic, key)
	}
}

func (b *Bus) deliver(topic, key string) {
	b.mu.RLock()
	fns := b.subs[topic]
	b.mu.RUnlock()
	for _, fn := range fns {
		fn(key)
	}
}

func (b *Bus) deliverAll() {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, fns := range b.subs {
		for _, fn := range fns {
			fn(everything)
		}
	}
}

// IsEverything reports the key that means "drop all".
func IsEverything(key string) bool { return key == everything }

const channel = "authplane_changes"

type pgNotifier struct {
	url  string
	log  *slog.Logger
	mu   sync.Mutex
	conn *pgx.Conn
}

// NewPostgres returns a bus that also listens on and notifies through PostgreSQL. It runs until ctx ends. It
// returns once it listens (or after a few seconds of trying), so a process does not serve while deaf to others.
func NewPostgres(ctx context.Context, url string, log *slog.Logger) *Bus {
	b := NewMemory()
	b.pg = &pgNotifier{url: url, log: log}
	listening := make(chan struct{})
	go b.listen(ctx, listening)
	select {
	case <-listening:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		log.Warn("serving before the change listener is connected; caches rely on their expiry until it is")
	}
	return b
}

func (b *Bus) listen(ctx context.Context, listening chan struct{}) {
	var once sync.Once
	for ctx.Err() == nil {
		conn, err := pgx.Connect(ctx, b.pg.url)
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+channel)
		}
		if err != nil {
			if conn != nil {
				conn.Close(context.Background())
			}
			if ctx.Err() == nil {
				b.pg.log.Warn("change listener cannot connect; retrying", "error", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		// Whatever was cached before this connection listened may have missed announcements.
		b.deliverAll()
		once.Do(func() { close(listening) })
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				break
			}
			topic, key, ok := strings.Cut(n.Payload, "|")
			if ok {
				b.deliver(topic, key)
			}
		}
		conn.Close(context.Background())
	}
	b.pg.close()
}

// close drops the publishing connection when the bus stops.
func (p *pgNotifier) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close(context.Background())
		p.conn = nil
	}
}

func (p *pgNotifier) notify(ctx context.Context, topic, key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for attempt := 0; attempt < 2; attempt++ {
		if p.conn == nil || p.conn.IsClosed() {
			c, err := pgx.Connect(ctx, p.url)
			if err != nil {
				p.log.Warn("change not announced to other processes", "topic", topic, "error", err)
				return
			}
			p.conn = c
		}
		if _, err := p.conn.Exec(ctx, "SELECT pg_notify($1, $2)", channel, topic+"|"+key); err == nil {
			return
		} else if attempt == 1 {
			p.log.Warn("change not announced to other processes", "topic", topic, "error", err)
		}
		p.conn.Close(context.Background())
		p.conn = nil
	}
}

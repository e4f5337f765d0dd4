package changes_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/testenv"
)

// recorder collects the keys a subscriber receives.
type recorder struct {
	mu   sync.Mutex
	keys []string
}

func (r *recorder) fn(key string) {
	r.mu.Lock()
	r.keys = append(r.keys, key)
	r.mu.Unlock()
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.keys)
}

func (r *recorder) has(key string) bool { return slices.Contains(r.got(), key) }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKeys(t *testing.T) {
	if got := changes.Key("acme", "ws1"); got != "acme/ws1" {
		t.Errorf("Key = %q, want acme/ws1", got)
	}
	if got := changes.TenantKey("acme"); got != "acme/" {
		t.Errorf("TenantKey = %q, want acme/", got)
	}
	if !changes.IsEverything("*") || changes.IsEverything("acme/") || changes.IsEverything("") {
		t.Error("IsEverything must hold for \"*\" only")
	}
}

func TestMemoryBusDeliversToSubscribersOfTheTopicOnly(t *testing.T) {
	cases := []struct {
		name    string
		topic   string
		key     string
		servers []string // what each subscriber of Servers must have received
		keys    []string
	}{
		{"servers change reaches both servers subscribers", changes.Servers, "acme/ws1", []string{"acme/ws1"}, nil},
		{"keys change reaches the keys subscriber", changes.Keys, "acme/ws1", nil, []string{"acme/ws1"}},
		{"tenant key passes through unchanged", changes.Servers, changes.TenantKey("acme"), []string{"acme/"}, nil},
		{"a topic without subscribers reaches no one", changes.Pools, "acme/p", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bus := changes.NewMemory()
			var servers1, servers2, keys recorder
			bus.Subscribe(changes.Servers, servers1.fn)
			bus.Subscribe(changes.Servers, servers2.fn)
			bus.Subscribe(changes.Keys, keys.fn)

			bus.Publish(context.Background(), tc.topic, tc.key)

			// Delivery is synchronous: nothing to wait for.
			for name, r := range map[string]*recorder{"servers#1": &servers1, "servers#2": &servers2} {
				if got := r.got(); !slices.Equal(got, tc.servers) {
					t.Errorf("%s received %q, want %q", name, got, tc.servers)
				}
			}
			if got := keys.got(); !slices.Equal(got, tc.keys) {
				t.Errorf("keys subscriber received %q, want %q", got, tc.keys)
			}
		})
	}
}

func TestMemoryBusDeliversInOrder(t *testing.T) {
	bus := changes.NewMemory()
	var r recorder
	bus.Subscribe(changes.Clients, r.fn)
	want := []string{"a/1", "a/2", "b/1"}
	for _, k := range want {
		bus.Publish(context.Background(), changes.Clients, k)
	}
	if got := r.got(); !slices.Equal(got, want) {
		t.Fatalf("received %q, want %q", got, want)
	}
}

// listeners counts the sessions LISTENing on the bus channel in the database at url.
func listeners(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'LISTEN %' AND pid <> pg_backend_pid()`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPostgresBusReachesOtherProcesses(t *testing.T) {
	url := testenv.DatabaseURL(t, testenv.Postgres)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	a := changes.NewPostgres(ctx, url, log)
	b := changes.NewPostgres(ctx, url, log)
	var aKeys, bKeys, bClients recorder
	a.Subscribe(changes.Keys, aKeys.fn)
	b.Subscribe(changes.Keys, bKeys.fn)
	b.Subscribe(changes.Clients, bClients.fn)

	// A notification sent before a listener has run LISTEN is not queued for it, so wait for both.
	eventually(t, 5*time.Second, "both buses listening", func() bool { return listeners(t, url) == 2 })

	t.Run("publisher's own subscribers get it at once", func(t *testing.T) {
		a.Publish(ctx, changes.Keys, "acme/ws1")
		if !aKeys.has("acme/ws1") {
			t.Fatalf("local subscriber received %q right after Publish", aKeys.got())
		}
	})

	t.Run("the other bus's subscribers get it within seconds", func(t *testing.T) {
		eventually(t, 3*time.Second, "delivery through PostgreSQL", func() bool { return bKeys.has("acme/ws1") })
	})

	t.Run("other topics stay quiet and keys survive the trip", func(t *testing.T) {
		b.Publish(ctx, changes.Keys, changes.TenantKey("globex"))
		eventually(t, 3*time.Second, "reverse delivery", func() bool { return aKeys.has("globex/") })
		if got := bClients.got(); len(got) != 0 {
			t.Fatalf("clients subscriber received %q for keys announcements", got)
		}
	})

	t.Run("a reconnected listener tells subscribers to drop everything", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		// Kill every listening session: both buses must reconnect and report possibly missed announcements.
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND query ILIKE 'LISTEN %' AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "everything announced after reconnect", func() bool {
			return bKeys.has("*") && bClients.has("*") && aKeys.has("*")
		})
		eventually(t, 5*time.Second, "both buses listening again", func() bool { return listeners(t, url) == 2 })
		a.Publish(ctx, changes.Clients, "acme/c1")
		eventually(t, 3*time.Second, "delivery after reconnect", func() bool { return bClients.has("acme/c1") })
	})
}

func TestPostgresBusPublishSurvivesAnUnreachableDatabase(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Nothing listens on port 1: cross-process delivery fails, local delivery must still happen and Publish
	// must return promptly.
	bus := changes.NewPostgres(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1",
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	var r recorder
	bus.Subscribe(changes.Servers, r.fn)
	start := time.Now()
	bus.Publish(ctx, changes.Servers, "acme/ws1")
	if !r.has("acme/ws1") {
		t.Fatal("local subscriber missed the announcement")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Publish took %s with the database down", d)
	}
}

package authz

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/scopes"
)

// clientDirectory is a ClientSource over registered clients; it counts its calls.
type clientDirectory struct {
	mu      sync.Mutex
	clients map[string]*ClientAccess // tenant/client
	err     error
	calls   int
}

func (d *clientDirectory) source(_ context.Context, tenantID, clientID string) (*ClientAccess, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.err != nil {
		return nil, d.err
	}
	return d.clients[tenantID+"/"+clientID], nil
}

func (d *clientDirectory) set(key string, a *ClientAccess) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a == nil {
		delete(d.clients, key)
		return
	}
	d.clients[key] = a
}

func TestTokensStandOnlyWhileTheirClientDoes(t *testing.T) {
	f := newFixture(t)
	registered := f.clock.Now().Add(-time.Hour).UnixMicro()
	d := &clientDirectory{clients: map[string]*ClientAccess{
		"acme/client-1": {Registered: registered, Scopes: scopes.NewRule([]string{"read", "write"}, []string{"orders.*"})},
	}}
	f.v = NewVerifier(testBase, f.keys.source, f.bus, WithClients(d.source))
	f.v.now = f.clock.Now
	rw, read, pattern := f.token("acme", "ws1", "read write"), f.token("acme", "ws1", "read"), f.token("acme", "ws1", "orders.list")
	f.mustVerify(rw)
	f.mustVerify(pattern)
	f.mustVerify(f.token("acme", "ws1", "read"))
	if d.calls != 1 {
		t.Fatalf("client loads = %d, want 1 (cached)", d.calls)
	}

	announce := func(topic, key string) { f.bus.Publish(context.Background(), topic, key) }
	steps := []struct {
		name         string
		change       func()
		rw, read, pt bool
	}{
		{"scopes narrowed to read: the earlier read-write token is refused", func() {
			d.set("acme/client-1", &ClientAccess{Registered: registered, Scopes: scopes.NewRule([]string{"read"}, []string{"orders.*"})})
			announce(changes.Clients, changes.Key("acme", "client-1"))
		}, false, true, true},
		{"token policy dropped: the pattern's scope is refused", func() {
			d.set("acme/client-1", &ClientAccess{Registered: registered, Scopes: scopes.NewRule([]string{"read"}, nil)})
			announce(changes.Policies, changes.Key("acme", "some-policy"))
		}, false, true, false},
		{"client deleted: every token is refused", func() {
			d.set("acme/client-1", nil)
			announce(changes.Clients, changes.Key("acme", "client-1"))
		}, false, false, false},
		{"registered again with every scope: the old tokens stay refused", func() {
			d.set("acme/client-1", &ClientAccess{Registered: f.clock.Now().Add(time.Second).UnixMicro(), Scopes: scopes.NewRule([]string{"read", "write"}, []string{"orders.*"})})
			announce(changes.Clients, changes.Key("acme", "client-1"))
		}, false, false, false},
	}
	for _, st := range steps {
		st.change()
		for name, c := range map[string]struct {
			raw  string
			want bool
		}{"read-write": {rw, st.rw}, "read": {read, st.read}, "pattern": {pattern, st.pt}} {
			if _, err := f.verify(c.raw); (err == nil) != c.want {
				t.Fatalf("%s: %s token verifies = %v (%v), want %v", st.name, name, err == nil, err, c.want)
			}
		}
	}
	// A token issued by the new client, after its registration, stands.
	f.clock.Advance(2 * time.Second)
	f.mustVerify(f.token("acme", "ws1", "read write"))
}

func TestAClientRegisteredAgainWithinTheSecondDoesNotReviveTheOldTokens(t *testing.T) {
	f := newFixture(t)
	first := f.clock.Now().UnixMicro() // the clock stands at a whole second
	rule := scopes.NewRule([]string{"read"}, nil)
	d := &clientDirectory{clients: map[string]*ClientAccess{"acme/client-1": {Registered: first, Scopes: rule}}}
	f.v = NewVerifier(testBase, f.keys.source, f.bus, WithClients(d.source))
	f.v.now = f.clock.Now
	tokenOf := func(incarnation int64) string {
		c := f.claims("acme", "ws1", "read")
		c["client_incarnation"] = incarnation
		return sign(t, f.key, "at+jwt", c)
	}
	old := tokenOf(first)
	legacy := f.token("acme", "ws1", "read") // names no incarnation
	f.mustVerify(old)
	f.mustVerify(legacy)

	// Deleted and registered again half a second later: every token shares one iat second.
	f.clock.Advance(500 * time.Millisecond)
	again := f.clock.Now().UnixMicro()
	d.set("acme/client-1", &ClientAccess{Registered: again, Scopes: rule})
	f.bus.Publish(context.Background(), changes.Clients, changes.Key("acme", "client-1"))
	f.mustRefuse(old)
	f.mustVerify(tokenOf(again))
	// Without an incarnation, iat tells only registrations of a later second.
	f.mustVerify(legacy)
	f.clock.Advance(time.Second)
	d.set("acme/client-1", &ClientAccess{Registered: f.clock.Now().UnixMicro(), Scopes: rule})
	f.bus.Publish(context.Background(), changes.Clients, changes.Key("acme", "client-1"))
	f.mustRefuse(legacy)
}

func TestClientChangeOfAnotherTenantKeepsTheCache(t *testing.T) {
	f := newFixture(t)
	d := &clientDirectory{clients: map[string]*ClientAccess{
		"acme/client-1": {Scopes: scopes.NewRule([]string{"read"}, nil)},
	}}
	f.v = NewVerifier(testBase, f.keys.source, f.bus, WithClients(d.source))
	f.v.now = f.clock.Now
	raw := f.token("acme", "ws1", "read")
	f.mustVerify(raw)
	f.bus.Publish(context.Background(), changes.Clients, changes.Key("globex", "client-1"))
	f.bus.Publish(context.Background(), changes.Clients, changes.Key("acme", "client-2"))
	f.mustVerify(raw)
	if d.calls != 1 {
		t.Fatalf("client loads = %d, want 1", d.calls)
	}
}

func TestUnknownClientStandingRefusesWithoutCaching(t *testing.T) {
	f := newFixture(t)
	d := &clientDirectory{clients: map[string]*ClientAccess{"acme/client-1": {Scopes: scopes.NewRule([]string{"read"}, nil)}}, err: errors.New("client service down")}
	f.v = NewVerifier(testBase, f.keys.source, f.bus, WithClients(d.source))
	f.v.now = f.clock.Now
	raw := f.token("acme", "ws1", "read")
	if _, err := f.verify(raw); !errors.Is(err, ErrRevocationUnknown) {
		t.Fatalf("Verify = %v, want ErrRevocationUnknown", err)
	}
	d.mu.Lock()
	d.err = nil
	d.mu.Unlock()
	f.mustVerify(raw)
}

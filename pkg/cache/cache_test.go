package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authplane/authplane/pkg/cache"
)

// counter is a load function that returns a fixed value and counts its calls.
type counter struct {
	calls atomic.Int32
	value string
	err   error
}

func (c *counter) load(context.Context) (string, error) {
	c.calls.Add(1)
	return c.value, c.err
}

// blocker is a load function that reports it started and then waits for release.
type blocker struct {
	value   string
	started chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

func newBlocker(value string) *blocker {
	return &blocker{value: value, started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blocker) load(context.Context) (string, error) {
	b.calls.Add(1)
	b.started <- struct{}{}
	<-b.release
	return b.value, nil
}

func (b *blocker) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-b.started:
	case <-time.After(5 * time.Second):
		t.Fatal("load did not start")
	}
}

type result struct {
	v   string
	err error
}

// getAsync runs Get in a goroutine and delivers its result.
func getAsync(c *cache.Cache[string], key string, load func(context.Context) (string, error)) <-chan result {
	ch := make(chan result, 1)
	go func() {
		v, err := c.Get(context.Background(), key, load)
		ch <- result{v, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("Get did not return")
		return result{}
	}
}

func mustGet(t *testing.T, c *cache.Cache[string], key string, load func(context.Context) (string, error)) string {
	t.Helper()
	v, err := c.Get(context.Background(), key, load)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

func TestGetLoadsOnMissAndServesHits(t *testing.T) {
	c := cache.New[string](0, 0)
	l := &counter{value: "v1"}

	if _, ok := c.Peek("k"); ok {
		t.Fatal("Peek on an empty cache reported a hit")
	}
	if got := mustGet(t, c, "k", l.load); got != "v1" {
		t.Fatalf("first Get = %q, want v1", got)
	}
	other := &counter{value: "v2"}
	for i := 0; i < 3; i++ {
		if got := mustGet(t, c, "k", other.load); got != "v1" {
			t.Fatalf("cached Get = %q, want v1", got)
		}
	}
	if l.calls.Load() != 1 || other.calls.Load() != 0 {
		t.Fatalf("loads: first=%d other=%d, want 1 and 0", l.calls.Load(), other.calls.Load())
	}
	if v, ok := c.Peek("k"); !ok || v != "v1" {
		t.Fatalf("Peek = %q,%v, want v1,true", v, ok)
	}
	// Keys are independent.
	if got := mustGet(t, c, "k2", other.load); got != "v2" || other.calls.Load() != 1 {
		t.Fatalf("Get(k2) = %q after %d loads, want v2 after 1", got, other.calls.Load())
	}
}

func TestLoadErrorsAreReturnedNotCached(t *testing.T) {
	c := cache.New[string](0, 0)
	boom := errors.New("boom")
	failing := &counter{value: "ignored", err: boom}

	for i := 0; i < 2; i++ {
		v, err := c.Get(context.Background(), "k", failing.load)
		if !errors.Is(err, boom) {
			t.Fatalf("Get error = %v, want %v", err, boom)
		}
		if v != "" {
			t.Fatalf("Get returned %q with an error, want the zero value", v)
		}
	}
	if failing.calls.Load() != 2 {
		t.Fatalf("failing load called %d times, want 2 (errors must not be cached)", failing.calls.Load())
	}
	if _, ok := c.Peek("k"); ok {
		t.Fatal("a failed load left an entry")
	}
	ok := &counter{value: "good"}
	if got := mustGet(t, c, "k", ok.load); got != "good" {
		t.Fatalf("Get after failure = %q, want good", got)
	}
}

func TestConcurrentMissesShareOneLoad(t *testing.T) {
	c := cache.New[string](0, 0)
	b := newBlocker("shared")
	const n = 20

	var ready sync.WaitGroup
	ready.Add(n)
	results := make([]<-chan result, n)
	for i := range results {
		ch := make(chan result, 1)
		results[i] = ch
		go func() {
			ready.Done()
			v, err := c.Get(context.Background(), "k", b.load)
			ch <- result{v, err}
		}()
	}
	b.waitStarted(t)
	ready.Wait()
	time.Sleep(50 * time.Millisecond) // let every caller reach the in-flight load before it finishes
	close(b.release)
	for _, ch := range results {
		if r := await(t, ch); r.err != nil || r.v != "shared" {
			t.Fatalf("Get = %q,%v, want shared", r.v, r.err)
		}
	}
	if got := b.calls.Load(); got != 1 {
		t.Fatalf("load called %d times for %d concurrent misses, want 1", got, n)
	}
}

// Each invalidation is exercised the same way: a load of the key is in flight when the invalidation happens.
// The in-flight caller still gets its value, but it must not be stored, and a Get that starts after the
// invalidation must load afresh rather than join the stale load.
func TestInvalidationDuringInFlightLoad(t *testing.T) {
	cases := []struct {
		name       string
		key        string
		invalidate func(c *cache.Cache[string])
	}{
		{"Invalidate", "acme/ws1", func(c *cache.Cache[string]) { c.Invalidate("acme/ws1") }},
		{"InvalidatePrefix", "acme/ws1", func(c *cache.Cache[string]) { c.InvalidatePrefix("acme/") }},
		{"InvalidateAll", "acme/ws1", func(c *cache.Cache[string]) { c.InvalidateAll() }},
	}
	for _, tc := range cases {
		t.Run(tc.name+" keeps the stale value out of the cache", func(t *testing.T) {
			c := cache.New[string](0, 0)
			stale := newBlocker("stale")
			inFlight := getAsync(c, tc.key, stale.load)
			stale.waitStarted(t)

			tc.invalidate(c)
			close(stale.release)

			if r := await(t, inFlight); r.err != nil || r.v != "stale" {
				t.Fatalf("in-flight Get = %q,%v, want its loaded value", r.v, r.err)
			}
			if v, ok := c.Peek(tc.key); ok {
				t.Fatalf("value %q loaded before the invalidation was stored", v)
			}
			fresh := &counter{value: "fresh"}
			if got := mustGet(t, c, tc.key, fresh.load); got != "fresh" || fresh.calls.Load() != 1 {
				t.Fatalf("Get after invalidation = %q after %d loads, want fresh after 1", got, fresh.calls.Load())
			}
			if v, ok := c.Peek(tc.key); !ok || v != "fresh" {
				t.Fatalf("Peek = %q,%v, want the fresh value stored", v, ok)
			}
		})

		t.Run(tc.name+" makes later callers load afresh", func(t *testing.T) {
			c := cache.New[string](0, 0)
			stale := newBlocker("stale")
			inFlight := getAsync(c, tc.key, stale.load)
			stale.waitStarted(t)

			tc.invalidate(c)

			fresh := &counter{value: "fresh"}
			after := getAsync(c, tc.key, fresh.load)
			select {
			case r := <-after:
				if r.err != nil || r.v != "fresh" {
					t.Fatalf("Get after invalidation = %q,%v, want fresh", r.v, r.err)
				}
			case <-time.After(2 * time.Second):
				close(stale.release)
				r := await(t, after)
				t.Fatalf("Get after invalidation waited for the load that predates it and got %q", r.v)
			}
			close(stale.release)
			await(t, inFlight)
			if v, ok := c.Peek(tc.key); !ok || v != "fresh" {
				t.Fatalf("Peek = %q,%v: the stale load overwrote the fresh value", v, ok)
			}
		})
	}
}

func TestInvalidationDropsOnlyWhatItNames(t *testing.T) {
	keys := []string{"acme/a", "acme/b", "acme2/a", "globex/a"}
	cases := []struct {
		name       string
		invalidate func(c *cache.Cache[string])
		dropped    []string
	}{
		{"Invalidate one key", func(c *cache.Cache[string]) { c.Invalidate("acme/a") }, []string{"acme/a"}},
		{"Invalidate an absent key", func(c *cache.Cache[string]) { c.Invalidate("nope") }, nil},
		{"InvalidatePrefix of a tenant", func(c *cache.Cache[string]) { c.InvalidatePrefix("acme/") }, []string{"acme/a", "acme/b"}},
		{"InvalidatePrefix matching nothing", func(c *cache.Cache[string]) { c.InvalidatePrefix("zzz/") }, nil},
		{"InvalidatePrefix empty drops all", func(c *cache.Cache[string]) { c.InvalidatePrefix("") }, keys},
		{"InvalidateAll", func(c *cache.Cache[string]) { c.InvalidateAll() }, keys},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New[string](0, 0)
			for _, k := range keys {
				mustGet(t, c, k, (&counter{value: "v-" + k}).load)
			}
			tc.invalidate(c)
			dropped := map[string]bool{}
			for _, k := range tc.dropped {
				dropped[k] = true
			}
			for _, k := range keys {
				v, ok := c.Peek(k)
				if dropped[k] && ok {
					t.Errorf("%s still cached", k)
				}
				if !dropped[k] && (!ok || v != "v-"+k) {
					t.Errorf("%s = %q,%v, want it kept", k, v, ok)
				}
			}
		})
	}
}

func TestEntriesExpireAfterTTL(t *testing.T) {
	c := cache.New[string](30*time.Millisecond, 0)
	first := &counter{value: "old"}
	mustGet(t, c, "k", first.load)
	if _, ok := c.Peek("k"); !ok {
		t.Fatal("entry missing right after load")
	}
	time.Sleep(60 * time.Millisecond)
	if v, ok := c.Peek("k"); ok {
		t.Fatalf("Peek after TTL = %q, want a miss", v)
	}
	second := &counter{value: "new"}
	if got := mustGet(t, c, "k", second.load); got != "new" || second.calls.Load() != 1 {
		t.Fatalf("Get after TTL = %q after %d loads, want new after 1", got, second.calls.Load())
	}
}

func TestZeroTTLDoesNotExpire(t *testing.T) {
	c := cache.New[string](0, 0)
	mustGet(t, c, "k", (&counter{value: "v"}).load)
	time.Sleep(20 * time.Millisecond)
	if v, ok := c.Peek("k"); !ok || v != "v" {
		t.Fatalf("Peek = %q,%v, want the entry kept without a TTL", v, ok)
	}
}

func TestSizeIsBounded(t *testing.T) {
	for _, max := range []int{1, 3, 10} {
		t.Run(fmt.Sprint("max ", max), func(t *testing.T) {
			c := cache.New[string](0, max)
			const n = 50
			for i := 0; i < n; i++ {
				k := fmt.Sprint("k", i)
				mustGet(t, c, k, (&counter{value: k}).load)
				held := 0
				for j := 0; j <= i; j++ {
					if _, ok := c.Peek(fmt.Sprint("k", j)); ok {
						held++
					}
				}
				if held > max {
					t.Fatalf("after %d loads the cache holds %d entries, max %d", i+1, held, max)
				}
				if v, ok := c.Peek(k); !ok || v != k {
					t.Fatalf("the value just loaded (%s) was not stored", k)
				}
			}
		})
	}
}

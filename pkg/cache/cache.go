// Package cache is the read-through cache of the hot paths: values are loaded once, served from memory, and
// dropped the moment the owning service announces a change (see package changes).
package cache

import (
	"context"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Cache maps keys to values loaded on demand. Invalidation is race-free: a load that started before an
// invalidation of its key (or of everything) is returned to its caller but not stored.
type Cache[V any] struct {
	mu      sync.RWMutex
	entries map[string]entry[V]
	gen     map[string]uint64 // per-key generation, bumped by Invalidate
	epoch   uint64            // bumped by InvalidateAll
	ttl     time.Duration
	max     int
	group   singleflight.Group
}

type entry[V any] struct {
	value   V
	expires time.Time
}

// New makes a cache. ttl bounds staleness should an invalidation ever be missed (0: no expiry);
// max bounds the number of entries (0: 100,000).
func New[V any](ttl time.Duration, max int) *Cache[V] {
	if max <= 0 {
		max = 100_000
	}
	return &Cache[V]{entries: map[string]entry[V]{}, gen: map[string]uint64{}, ttl: ttl, max: max}
}

// Get returns the cached value for key, or loads, stores and returns it. Concurrent misses of one key share one load.
func (c *Cache[V]) Get(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	if v, ok := c.Peek(key); ok {
		return v, nil
	}
	c.mu.RLock()
	gen, epoch := c.gen[key], c.epoch
	c.mu.RUnlock()
	res, err, _ := c.group.Do(flightKey(epoch, key), func() (any, error) {
		v, err := load(ctx)
		if err != nil {
			return v, err
		}
		c.mu.Lock()
		if c.gen[key] == gen && c.epoch == epoch {
			if len(c.entries) >= c.max {
				clear(c.entries) // crude but bounded; a full cache refills from its hot keys
			}
			e := entry[V]{value: v}
			if c.ttl > 0 {
				e.expires = time.Now().Add(c.ttl)
			}
			c.entries[key] = e
		}
		c.mu.Unlock()
		return v, nil
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return res.(V), nil
}

// flightKey names a load shared by concurrent misses. It includes the epoch so that a Get starting after
// InvalidatePrefix or InvalidateAll never joins a load that started before it.
func flightKey(epoch uint64, key string) string { return strconv.FormatUint(epoch, 10) + "/" + key }

// Peek returns a cached value without loading.
func (c *Cache[V]) Peek(key string) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || (!e.expires.IsZero() && time.Now().After(e.expires)) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Invalidate drops one key; loads of it in flight will not be stored.
func (c *Cache[V]) Invalidate(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.gen[key]++
	epoch := c.epoch
	c.mu.Unlock()
	c.group.Forget(flightKey(epoch, key))
}

// InvalidatePrefix drops every key that starts with prefix (for example a whole tenant).
func (c *Cache[V]) InvalidatePrefix(prefix string) {
	c.mu.Lock()
	for k := range c.entries {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(c.entries, k)
		}
	}
	c.epoch++ // in-flight loads of any key under the prefix must not be stored
	c.mu.Unlock()
}

// InvalidateAll drops everything.
func (c *Cache[V]) InvalidateAll() {
	c.mu.Lock()
	clear(c.entries)
	c.epoch++
	c.mu.Unlock()
}

package password

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy means a hash could not start within the configured wait: the pool is saturated. Callers answer
// 503 / temporarily_unavailable, so a flood degrades into fast refusals rather than a pile of waiting requests.
var ErrBusy = errors.New("password hashing is saturated")

// Config bounds the hashing pool.
type Config struct {
	// MemoryBudget caps the memory of hashes running at once, in bytes (default 256 MiB).
	MemoryBudget int64
	// MaxConcurrent caps how many hashes run at once (default GOMAXPROCS): more would only share the same cores.
	MaxConcurrent int
	// MaxWait is how long a hash may wait for room before failing with ErrBusy (default 2s).
	MaxWait time.Duration
}

func (c Config) withDefaults() Config {
	if c.MemoryBudget <= 0 {
		c.MemoryBudget = 256 << 20
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 2 * time.Second
	}
	return c
}

// Hasher runs hash computations under a weighted semaphore whose capacity is the memory budget (in KiB). A job
// weighs its memory cost, but at least budget/MaxConcurrent, so both the sum of memory and the number of jobs
// running at once stay bounded.
type Hasher struct {
	cfg     Config
	capKiB  int64
	minKiB  int64
	sem     *semaphore.Weighted
	limits  Limits
	dummies sync.Map // Params -> *Hash: the stand-in hash for users without one

	hashes, verifications atomic.Uint64
}

// Stats count the computations a Hasher has run; those refused (ErrBusy, ErrCost) are not counted.
type Stats struct {
	Hashes        uint64 // new hashes made, including the stand-in hashes of VerifyDummy
	Verifications uint64 // hashes verified, including the stand-in verifications of VerifyDummy
}

// NewHasher makes a pool.
func NewHasher(cfg Config) *Hasher {
	cfg = cfg.withDefaults()
	capKiB := max(cfg.MemoryBudget>>10, 1)
	h := &Hasher{cfg: cfg, capKiB: capKiB, minKiB: max(capKiB/int64(cfg.MaxConcurrent), 1),
		sem: semaphore.NewWeighted(capKiB), limits: DefaultLimits()}
	h.limits.MaxMemoryKiB = uint32(min(int64(h.limits.MaxMemoryKiB), capKiB))
	return h
}

// Config is the effective configuration.
func (h *Hasher) Config() Config { return h.cfg }

// Limits are the cost bounds of this pool: DefaultLimits with argon2 memory capped by the budget.
func (h *Hasher) Limits() Limits { return h.limits }

// Stats are the computations run so far.
func (h *Hasher) Stats() Stats {
	return Stats{Hashes: h.hashes.Load(), Verifications: h.verifications.Load()}
}

// Hash makes a new encoded hash of password with p.
func (h *Hasher) Hash(ctx context.Context, password string, p Params) (string, error) {
	var out string
	err := h.run(ctx, p.memoryBytes(), func() error {
		h.hashes.Add(1)
		var err error
		out, err = compute(password, p)
		return err
	})
	return out, err
}

// Verify reports whether password matches the stored hash.
func (h *Hasher) Verify(ctx context.Context, password string, stored *Hash) (bool, error) {
	var ok bool
	err := h.run(ctx, stored.MemoryBytes(), func() error {
		h.verifications.Add(1)
		ok = stored.verify(password)
		return nil
	})
	return ok, err
}

// VerifyDummy spends the time and memory of verifying a hash made with p, and always reports false. It stands
// in for users who do not exist or have no usable hash, so response times do not tell them apart.
func (h *Hasher) VerifyDummy(ctx context.Context, password string, p Params) error {
	d, err := h.dummy(ctx, p)
	if err != nil {
		return err
	}
	_, err = h.Verify(ctx, password+"\x00", d)
	return err
}

func (h *Hasher) dummy(ctx context.Context, p Params) (*Hash, error) {
	if d, ok := h.dummies.Load(p); ok {
		return d.(*Hash), nil
	}
	enc, err := h.Hash(ctx, string(randomBytes(16)), p)
	if err != nil {
		return nil, err
	}
	d, err := Parse(enc)
	if err != nil {
		return nil, err
	}
	h.dummies.Store(p, d)
	return d, nil
}

func (h *Hasher) weight(memBytes int64) int64 { return max((memBytes+1023)>>10, h.minKiB) }

// run waits for room for a job of the given memory, then runs it; after MaxWait without room it fails with
// ErrBusy. Waiting costs no CPU, so under a flood the cores keep hashing rather than turning requests away:
// refusing at once would let clients that retry immediately spend the CPU on refusals instead.
func (h *Hasher) run(ctx context.Context, memBytes int64, job func() error) error {
	weight := h.weight(memBytes)
	if weight > h.capKiB {
		return fmt.Errorf("%w: a hash needing %d KiB exceeds the hashing memory budget of %d KiB", ErrCost, weight, h.capKiB)
	}
	wctx, cancel := context.WithTimeout(ctx, h.cfg.MaxWait)
	err := h.sem.Acquire(wctx, weight)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrBusy
	}
	defer h.sem.Release(weight)
	return job()
}

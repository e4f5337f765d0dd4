package password

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHasherKeepsMemoryAndConcurrencyUnderBudget(t *testing.T) {
	tests := []struct {
		name          string
		cfg           Config
		memKiB        int64
		wantMaxAtOnce int64
	}{
		{"memory bounds before concurrency", Config{MemoryBudget: 64 << 20, MaxConcurrent: 8, MaxWait: 5 * time.Second}, 20 * 1024, 3},
		{"concurrency bounds before memory", Config{MemoryBudget: 1 << 30, MaxConcurrent: 2, MaxWait: 5 * time.Second}, 20 * 1024, 2},
		{"cheap jobs take a concurrency slot each", Config{MemoryBudget: 64 << 20, MaxConcurrent: 4, MaxWait: 5 * time.Second}, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHasher(tt.cfg)
			var running, peak atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < 24; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := h.run(context.Background(), tt.memKiB*1024, func() error {
						n := running.Add(1)
						for {
							p := peak.Load()
							if n <= p || peak.CompareAndSwap(p, n) {
								break
							}
						}
						time.Sleep(5 * time.Millisecond)
						running.Add(-1)
						return nil
					})
					if err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if got := peak.Load(); got != tt.wantMaxAtOnce {
				t.Fatalf("peak concurrency = %d, want %d", got, tt.wantMaxAtOnce)
			}
		})
	}
}

func TestHasherGivesUpAfterMaxWait(t *testing.T) {
	h := NewHasher(Config{MemoryBudget: 64 << 20, MaxConcurrent: 1, MaxWait: 50 * time.Millisecond})
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.run(context.Background(), 1024, func() error { close(started); <-release; return nil })
	}()
	<-started

	begin := time.Now()
	err := h.run(context.Background(), 1024, func() error { return nil })
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
	if waited := time.Since(begin); waited < 50*time.Millisecond || waited > 500*time.Millisecond {
		t.Fatalf("waited %v, want about MaxWait", waited)
	}
	close(release)
	<-done
}

func TestHasherHonoursCallerCancellation(t *testing.T) {
	h := NewHasher(Config{MemoryBudget: 64 << 20, MaxConcurrent: 1, MaxWait: 5 * time.Second})
	release := make(chan struct{})
	started := make(chan struct{})
	go h.run(context.Background(), 1024, func() error { close(started); <-release; return nil })
	<-started
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := h.run(ctx, 1024, func() error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
}

func TestHasherRefusesAHashLargerThanItsBudget(t *testing.T) {
	h := NewHasher(Config{MemoryBudget: 16 << 20})
	p := Params{Method: Argon2id, MemoryKiB: 32 * 1024, Iterations: 1, Parallelism: 1}
	if _, err := h.Hash(context.Background(), "pw", p); !errors.Is(err, ErrCost) {
		t.Fatalf("err = %v, want ErrCost", err)
	}
	if s := h.Stats(); s != (Stats{}) {
		t.Fatalf("a refused hash was counted as run: %+v", s)
	}
	if h.Limits().MaxMemoryKiB != 16*1024 {
		t.Fatalf("limit = %d KiB, want the budget", h.Limits().MaxMemoryKiB)
	}
}

// TestVerifyDummyVerifiesAHashOfTheParamsEachCall: the stand-in check of a user without a hash must cost what a
// real check costs, one verification of a hash made with the pool's params, on every call; the stand-in hash
// itself is made once.
func TestVerifyDummyVerifiesAHashOfTheParamsEachCall(t *testing.T) {
	h := NewHasher(Config{})
	p := Params{Method: Argon2id, MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}
	for i := uint64(1); i <= 3; i++ {
		if err := h.VerifyDummy(context.Background(), "anything", p); err != nil {
			t.Fatal(err)
		}
		if got, want := h.Stats(), (Stats{Hashes: 1, Verifications: i}); got != want {
			t.Fatalf("after %d stand-in checks the pool ran %+v, want %+v", i, got, want)
		}
	}
	d, ok := h.dummies.Load(p)
	if !ok {
		t.Fatal("no dummy hash cached for the params")
	}
	if !d.(*Hash).Matches(p) {
		t.Fatal("the dummy hash is not of the pool's params")
	}
}

func BenchmarkArgon2idDefault(b *testing.B) {
	h := NewHasher(Config{MemoryBudget: 1 << 30, MaxConcurrent: 64})
	enc, _ := h.Hash(context.Background(), "benchmark-password", DefaultParams())
	stored, _ := Parse(enc)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			stored.verify("benchmark-password")
		}
	})
}

// BenchmarkHasherVerify is BenchmarkArgon2idDefault through the bounded pool, with more callers than slots.
func BenchmarkHasherVerify(b *testing.B) {
	h := NewHasher(Config{})
	enc, _ := h.Hash(context.Background(), "benchmark-password", DefaultParams())
	stored, _ := Parse(enc)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := h.Verify(context.Background(), "benchmark-password", stored); !ok || err != nil {
				b.Error(ok, err)
			}
		}
	})
}

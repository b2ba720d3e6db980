package credsource

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingSource is a fake Source with counters and injectable errors.
type countingSource struct {
	mu      sync.Mutex
	version map[Stage]int // version number served per stage; 0 = not found
	err     error
	delay   time.Duration
	block   chan struct{} // when set, fetches wait until it is closed or their context ends
	calls   atomic.Int64
	forced  atomic.Int64

	inflight, maxInflight atomic.Int64 // fetches under way, and the most at once
	cancelled             atomic.Int64 // fetches that ended because their context did
}

// hold makes fetches wait until the returned release is called (or their
// context ends).
func (s *countingSource) hold() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.block = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.block = nil
			s.mu.Unlock()
			close(ch)
		})
	}
}

func newCountingSource() *countingSource {
	return &countingSource{version: map[Stage]int{Current: 1}}
}

func (s *countingSource) set(stage Stage, v int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version[stage], s.err = v, err
}

func (s *countingSource) Fetch(ctx context.Context, req Request) (*Secret, error) {
	s.calls.Add(1)
	if req.Refresh {
		s.forced.Add(1)
	}
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for m := s.maxInflight.Load(); n > m && !s.maxInflight.CompareAndSwap(m, n); m = s.maxInflight.Load() {
	}
	s.mu.Lock()
	block := s.block
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			s.cancelled.Add(1)
			return nil, fmt.Errorf("fake fetch: %w", ctx.Err())
		}
	}
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			s.cancelled.Add(1)
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	v := s.version[req.Stage]
	if v == 0 {
		return nil, fmt.Errorf("stage %s: %w", req.Stage, ErrNotFound)
	}
	return &Secret{ID: "s", VersionID: fmt.Sprintf("v%d", v), Stages: []string{string(req.Stage)}, Source: "fake",
		Creds: Credentials{Username: "u", Password: fmt.Sprintf("p%d", v)}}, nil
}

func TestCacheGetCoalescesAndCaches(t *testing.T) {
	src := newCountingSource()
	src.delay = 20 * time.Millisecond
	c := newTestCache(t, src, CacheOptions{TTL: time.Hour})
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, err := c.Get(context.Background(), Current); err != nil || s.VersionID != "v1" {
				t.Errorf("Get = %v, %v", s, err)
			}
		}()
	}
	wg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("100 concurrent Gets made %d fetches, want 1", n)
	}
	if _, err := c.Get(context.Background(), Current); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if src.calls.Load() != 1 || st.Hits < 1 || st.Fetches[Current] != 1 || st.Coalesced < 1 {
		t.Fatalf("calls %d stats %+v", src.calls.Load(), st)
	}
}

// TestCacheTTLExpiry: within the TTL no fetch; after it, the cached
// version is still served while a background fetch brings the new one.
func TestCacheTTLExpiry(t *testing.T) {
	clock := newFakeClock()
	src := newCountingSource()
	c := newTestCache(t, src, CacheOptions{TTL: 30 * time.Second, Now: clock.Now})
	ctx := context.Background()
	mustVersion(t, c, ctx, "v1")
	src.set(Current, 2, nil)
	clock.Add(20 * time.Second)
	mustVersion(t, c, ctx, "v1")
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("calls %d within the TTL, want 1", n)
	}
	clock.Add(10 * time.Second)
	mustVersion(t, c, ctx, "v1") // stale, at once
	eventually(t, "the background refresh is served", func() bool {
		s, _ := c.Get(ctx, Current)
		return s.VersionID == "v2"
	})
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("calls %d, want 2", n)
	}
}

func mustVersion(t *testing.T, c *Cache, ctx context.Context, want string) {
	t.Helper()
	s, err := c.Get(ctx, Current)
	if err != nil || s.VersionID != want {
		t.Fatalf("Get = %v, %v; want %s", s, err, want)
	}
}

func TestCacheServesStale(t *testing.T) {
	clock := newFakeClock()
	src := newCountingSource()
	c := newTestCache(t, src, CacheOptions{TTL: 10 * time.Second, MinRefreshInterval: time.Millisecond, Now: clock.Now})
	ctx := context.Background()
	mustVersion(t, c, ctx, "v1")
	outage := errors.New("service unavailable")
	src.set(Current, 1, outage)
	clock.Add(10 * time.Second)
	mustVersion(t, c, ctx, "v1")
	eventually(t, "the background refresh has failed", func() bool { return c.Stats().StaleServed >= 1 })
	clock.Add(time.Second) // past the failure backoff
	if s, err := c.Refresh(ctx, Current, clock.Now()); err != nil || s.VersionID != "v1" {
		t.Fatalf("Refresh during outage = %v, %v; want stale v1", s, err)
	}
	st := c.Stats()
	if st.StaleServed < 2 || !errors.Is(st.LastError, outage) {
		t.Fatalf("stats %+v", st)
	}
	// Not found is an answer, not an outage: no stale value over it.
	src.set(Current, 0, nil)
	clock.Add(time.Second)
	if _, err := c.Refresh(ctx, Current, clock.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Refresh after deletion: %v, want ErrNotFound", err)
	}
}

func TestCacheNoValueReturnsError(t *testing.T) {
	src := newCountingSource()
	boom := errors.New("boom")
	src.set(Current, 1, boom)
	c := newTestCache(t, src, CacheOptions{})
	if _, err := c.Get(context.Background(), Current); !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
}

func TestCacheRefreshSince(t *testing.T) {
	src := newCountingSource()
	src.delay = 30 * time.Millisecond
	c := newTestCache(t, src, CacheOptions{TTL: time.Hour, MinRefreshInterval: time.Millisecond})
	ctx := context.Background()
	mustVersion(t, c, ctx, "v1")
	time.Sleep(2 * time.Millisecond)

	// 64 callers whose logins failed at about the same time: one fetch.
	failedAt := time.Now()
	src.set(Current, 2, nil)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.Refresh(ctx, Current, failedAt)
			if err != nil || s.VersionID != "v2" {
				t.Errorf("Refresh = %v, %v", s, err)
			}
		}()
	}
	wg.Wait()
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("calls %d, want 2 (warm-up and one refresh)", n)
	}
	if src.forced.Load() != 1 {
		t.Fatalf("forced fetches %d, want 1", src.forced.Load())
	}
	// A caller whose failure predates the last fetch gets it without a call.
	if s, _ := c.Refresh(ctx, Current, failedAt); s.VersionID != "v2" || src.calls.Load() != 2 {
		t.Fatalf("late caller: %v, calls %d", s, src.calls.Load())
	}
}

func TestCacheMinRefreshInterval(t *testing.T) {
	src := newCountingSource()
	c := newTestCache(t, src, CacheOptions{TTL: time.Hour, MinRefreshInterval: time.Hour})
	ctx := context.Background()
	mustVersion(t, c, ctx, "v1")
	for range 50 {
		if _, err := c.Refresh(ctx, Current, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if n, f := src.calls.Load(), src.forced.Load(); n != 2 || f != 1 {
		t.Fatalf("warm-up and 50 forced refreshes inside the interval made %d calls (%d forced), want 2 (1 forced)", n, f)
	}
}

// A Get that fetched moments before the rotation finished must not stand
// in for the refresh a 1045 asks for: only forced fetches count against
// MinRefreshInterval.
func TestCacheRefreshAfterGetIsNotRateLimited(t *testing.T) {
	src := newCountingSource()
	c := newTestCache(t, src, CacheOptions{TTL: time.Hour, MinRefreshInterval: time.Hour})
	ctx := context.Background()
	mustVersion(t, c, ctx, "v1")
	src.set(Current, 2, nil) // the rotation finishes
	s, err := c.Refresh(ctx, Current, time.Now())
	if err != nil || s.VersionID != "v2" {
		t.Fatalf("Refresh right after a Get = %v, %v; want v2 from a new fetch", s, err)
	}
	if f := src.forced.Load(); f != 1 {
		t.Fatalf("forced fetches %d, want 1", f)
	}
	// The next forced refresh inside the interval is answered by that one.
	src.set(Current, 3, nil)
	if s, _ := c.Refresh(ctx, Current, time.Now()); s.VersionID != "v2" || src.calls.Load() != 2 {
		t.Fatalf("second refresh inside the interval: %v after %d calls; want v2 after 2", s, src.calls.Load())
	}
}

func TestCacheWaiterHonoursContext(t *testing.T) {
	src := newCountingSource()
	release := src.hold()
	defer release()
	c := newTestCache(t, src, CacheOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, Current)
		done <- err
	}()
	eventually(t, "the fetch is under way", func() bool { return src.inflight.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if n := src.cancelled.Load(); n != 0 {
		t.Fatalf("the waiter's cancel ended the shared fetch")
	}
}

func TestChainFallsThroughOnlyWhenUnavailable(t *testing.T) {
	down := newCountingSource()
	down.set(Current, 1, fmt.Errorf("dial: %w", ErrUnavailable))
	up := newCountingSource()
	ch := NewChain(down, up)
	s, err := ch.Fetch(context.Background(), Request{Stage: Current})
	if err != nil || s.VersionID != "v1" || up.calls.Load() != 1 {
		t.Fatalf("chain: %v %v, calls %d", s, err, up.calls.Load())
	}
	missing := newCountingSource()
	missing.set(Current, 0, nil)
	up2 := newCountingSource()
	if _, err := NewChain(missing, up2).Fetch(context.Background(), Request{Stage: Current}); !errors.Is(err, ErrNotFound) || up2.calls.Load() != 0 {
		t.Fatalf("not-found must end the chain: %v, next called %d times", err, up2.calls.Load())
	}
}

// TestCacheTTLJitter: each fetch draws its TTL from [0.8*TTL, TTL], so
// processes started together do not refresh together. 200 caches filled at
// the same instant of a driven clock: none refreshing just before 0.8*TTL,
// all by TTL, and at 0.9*TTL some and not others.
func TestCacheTTLJitter(t *testing.T) {
	const ttl = 100 * time.Second
	clock := newFakeClock()
	start := clock.Now()
	caches := make([]*Cache, 200)
	for i := range caches {
		caches[i] = newTestCache(t, newCountingSource(), CacheOptions{TTL: ttl, Now: clock.Now})
		mustVersion(t, caches[i], context.Background(), "v1")
	}
	refreshing := func(at time.Duration) (n int) {
		clock.Add(start.Add(at).Sub(clock.Now()))
		for _, c := range caches {
			if _, ok := c.Cached(Current); !ok {
				t.Fatal("Cached without the version")
			}
			if c.Stats().Revalidated > 0 {
				n++
			}
		}
		return n
	}
	if n := refreshing(80*time.Second - time.Millisecond); n != 0 {
		t.Errorf("just before 0.8*TTL: %d of %d refreshing, want none", n, len(caches))
	}
	if n := refreshing(90 * time.Second); n == 0 || n == len(caches) {
		t.Errorf("at 0.9*TTL: %d of %d refreshing, want some but not all (the TTLs are not spread)", n, len(caches))
	}
	if n := refreshing(ttl); n != len(caches) {
		t.Errorf("at TTL: %d of %d refreshing, want all", n, len(caches))
	}
}

package credsource

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock the test moves (CacheOptions.Now).
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestCache returns a cache closed when the test ends: no background
// refresh outlives it (TestMain's leak check).
func newTestCache(t *testing.T, src Source, opts CacheOptions) *Cache {
	t.Helper()
	c := NewCache(src, opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// levelCounter is a slog.Handler counting records by level and message.
type levelCounter struct {
	mu sync.Mutex
	n  map[slog.Level]map[string]int
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *levelCounter) WithGroup(string) slog.Handler            { return h }
func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[slog.Level]map[string]int{}
	}
	if h.n[r.Level] == nil {
		h.n[r.Level] = map[string]int{}
	}
	h.n[r.Level][r.Message]++
	return nil
}

func (h *levelCounter) count(l slog.Level) (n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range h.n[l] {
		n += k
	}
	return n
}

// TestCacheStaleWhileRevalidate: once the TTL has run out, lookups keep
// getting the version held, at once, while one background fetch runs: 100
// concurrent Gets and Cached calls return while the source is stuck, and
// make one fetch between them. Its answer replaces the version.
func TestCacheStaleWhileRevalidate(t *testing.T) {
	clock := newFakeClock()
	src := newCountingSource()
	c := newTestCache(t, src, CacheOptions{TTL: time.Minute, Now: clock.Now})
	mustVersion(t, c, context.Background(), "v1")
	st0 := c.Stats()

	release := src.hold()
	defer release()
	src.set(Current, 2, nil)
	clock.Add(time.Minute)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s *Secret
			if i%2 == 0 {
				s, _ = c.Cached(Current)
			} else {
				s, _ = c.Get(context.Background(), Current)
			}
			if s == nil || s.VersionID != "v1" {
				t.Errorf("lookup after the TTL = %v, want the cached v1 at once", s)
			}
		}()
	}
	wg.Wait() // all returned while the source holds the refresh
	st := c.Stats()
	if st.Waited != st0.Waited || st.Misses != st0.Misses {
		t.Errorf("%d lookups waited for a fetch, %d missed; want none", st.Waited-st0.Waited, st.Misses-st0.Misses)
	}
	if st.Revalidated != 1 {
		t.Errorf("%d background refreshes started, want 1", st.Revalidated)
	}
	eventually(t, "the background fetch is under way", func() bool { return src.calls.Load() == 2 })
	release()
	eventually(t, "the refreshed version is served", func() bool {
		s, ok := c.Cached(Current)
		return ok && s.VersionID == "v2"
	})
	if n, f := src.calls.Load(), src.forced.Load(); n != 2 || f != 0 {
		t.Fatalf("%d fetches (%d bypassing the source's cache), want 2 (0): the fill and one background refresh", n, f)
	}
	if st := c.Stats(); st.Fetches[Current] != 2 || st.LastError != nil {
		t.Fatalf("stats %+v", st)
	}
}

// TestCacheBackgroundRefreshRetries: a background refresh that fails is
// retried with backoff, at most 4 fetches in a row, never two at once; the
// cached version is served throughout, the failure is logged at Warn once
// for the streak, and after the 4th failure the version is served for
// another TTL before the next refresh, which succeeds.
func TestCacheBackgroundRefreshRetries(t *testing.T) {
	clock := newFakeClock()
	src := newCountingSource()
	logs := &levelCounter{}
	c := newTestCache(t, src, CacheOptions{TTL: time.Minute, MinRefreshInterval: time.Millisecond, Now: clock.Now, Logger: slog.New(logs)})
	mustVersion(t, c, context.Background(), "v1")

	outage := errors.New("service unavailable")
	src.set(Current, 2, outage)
	clock.Add(time.Minute)
	if s, ok := c.Cached(Current); !ok || s.VersionID != "v1" {
		t.Fatalf("Cached after the TTL = %v, %v; want v1", s, ok)
	}
	eventually(t, "the background refresh has made its 4 fetches", func() bool { return src.calls.Load() == 1+revalidateTries })
	eventually(t, "the background refresh has given up", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.entries[Current].revalidating
	})
	for range 50 { // the streak is over: no new refresh within the TTL
		if s, ok := c.Cached(Current); !ok || s.VersionID != "v1" {
			t.Fatalf("Cached during the outage = %v, %v; want v1", s, ok)
		}
	}
	st := c.Stats()
	if n := src.calls.Load(); n != 1+revalidateTries || st.Revalidated != 1 {
		t.Fatalf("%d fetches, %d background refreshes; want %d, 1", n, st.Revalidated, 1+revalidateTries)
	}
	if st.FetchErrors != revalidateTries || st.StaleServed != revalidateTries || !errors.Is(st.LastError, outage) {
		t.Errorf("stats %+v, want %d errors, each served stale", st, revalidateTries)
	}
	if w := logs.count(slog.LevelWarn); w != 1 {
		t.Errorf("%d Warn records for one failure streak, want 1", w)
	}
	if m := src.maxInflight.Load(); m != 1 {
		t.Errorf("%d fetches at once, want 1", m)
	}

	src.set(Current, 2, nil)
	clock.Add(time.Minute)
	c.Cached(Current)
	eventually(t, "the next TTL's refresh is served", func() bool {
		s, _ := c.Cached(Current)
		return s.VersionID == "v2"
	})
	if st := c.Stats(); st.Revalidated != 2 || st.LastError != nil {
		t.Errorf("stats %+v, want a second background refresh that succeeded", st)
	}
	// A new streak warns again.
	src.set(Current, 3, outage)
	clock.Add(time.Minute)
	c.Cached(Current)
	eventually(t, "the third refresh has failed", func() bool { return c.Stats().FetchErrors > revalidateTries })
	if w := logs.count(slog.LevelWarn); w != 2 {
		t.Errorf("%d Warn records for two failure streaks, want 2", w)
	}
}

// TestCacheBackgroundRefreshEndsOnAnswer: a background refresh stops at the
// first fetch that succeeds or answers not found; with not found the
// version is kept for Cached and Get, and Refresh returns the answer.
func TestCacheBackgroundRefreshEndsOnAnswer(t *testing.T) {
	clock := newFakeClock()
	src := newCountingSource()
	c := newTestCache(t, src, CacheOptions{TTL: time.Minute, MinRefreshInterval: time.Millisecond, Now: clock.Now})
	mustVersion(t, c, context.Background(), "v1")
	src.set(Current, 0, nil) // deleted
	clock.Add(time.Minute)
	c.Cached(Current)
	eventually(t, "the background refresh has ended", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.entries[Current].revalidating
	})
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2: a not-found answer ends the refresh", n)
	}
	mustVersion(t, c, context.Background(), "v1")
	clock.Add(time.Second)
	if _, err := c.Refresh(context.Background(), Current, clock.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Refresh after the deletion: %v, want ErrNotFound", err)
	}
}

// TestCacheOneFetchPerStage: forced refreshes arriving while a background
// refresh is stuck join it (and wait for it): never two fetches of a stage
// at once. Each stage has its own.
func TestCacheOneFetchPerStage(t *testing.T) {
	clock := newFakeClock()
	src := newCountingSource()
	src.set(Pending, 1, nil)
	c := newTestCache(t, src, CacheOptions{TTL: time.Minute, Now: clock.Now})
	mustVersion(t, c, context.Background(), "v1")
	if _, err := c.Refresh(context.Background(), Pending, clock.Now()); err != nil {
		t.Fatal(err)
	}
	release := src.hold()
	defer release()
	src.set(Current, 2, nil)
	clock.Add(time.Minute)
	c.Cached(Current)
	c.Cached(Pending)
	eventually(t, "both background fetches are under way", func() bool { return src.inflight.Load() == 2 })
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, err := c.Refresh(context.Background(), Current, clock.Now()); err != nil || s.VersionID != "v2" {
				t.Errorf("Refresh = %v, %v; want v2", s, err)
			}
		}()
	}
	eventually(t, "the refreshes have joined", func() bool { return c.Stats().Waited == 2+50 })
	release()
	wg.Wait()
	if m := src.maxInflight.Load(); m != 2 {
		t.Errorf("%d fetches at once for 2 stages, want 2", m)
	}
	// The clock stands still: the background fetch began at the forced
	// refreshes' since, so it answers them.
	if n, f := src.calls.Load(), src.forced.Load(); n != 4 || f != 1 {
		t.Errorf("%d fetches (%d forced), want 4 (1: the first AWSPENDING)", n, f)
	}
}

// TestCacheCloseEndsFetches: Close cancels a stuck background refresh and
// a stuck fetch with a waiter, and returns once they have; the waiter gets
// an error; afterwards the cache serves what it holds and fetches nothing.
func TestCacheCloseEndsFetches(t *testing.T) {
	clock := newFakeClock()
	src := newCountingSource()
	src.set(Pending, 1, nil)
	c := NewCache(src, CacheOptions{TTL: time.Minute, FetchTimeout: time.Hour, Now: clock.Now})
	mustVersion(t, c, context.Background(), "v1")
	release := src.hold()
	defer release()
	clock.Add(time.Minute)
	c.Cached(Current) // a background refresh, stuck
	waiter := make(chan error, 1)
	go func() {
		_, err := c.Refresh(context.Background(), Pending, clock.Now())
		waiter <- err
	}()
	eventually(t, "both fetches are under way", func() bool { return src.inflight.Load() == 2 })
	c.Close()
	if n := src.inflight.Load(); n != 0 {
		t.Fatalf("Close returned with %d fetches under way", n)
	}
	if n := src.cancelled.Load(); n != 2 {
		t.Errorf("%d fetches cancelled, want 2", n)
	}
	if err := <-waiter; err == nil {
		t.Error("a Refresh waiting when the cache closed returned no error")
	}
	if s, ok := c.Cached(Current); !ok || s.VersionID != "v1" {
		t.Errorf("Cached after Close = %v, %v; want v1", s, ok)
	}
	calls := src.calls.Load()
	if _, err := c.Refresh(context.Background(), Current, clock.Now()); err == nil {
		t.Error("Refresh after Close returned no error")
	}
	clock.Add(time.Hour)
	c.Cached(Current)
	if n := src.calls.Load(); n != calls {
		t.Errorf("%d fetches after Close, want none", n-calls)
	}
	if st := c.Stats(); st.FetchErrors != 0 || st.LastError != nil {
		t.Errorf("Close recorded as a failed fetch: %+v", st)
	}
	c.Close() // again: nothing
}

// TestCacheFetchTimeoutIsNotTheCallers: when the cache's own timeout ends a
// fetch, the error wraps ErrSourceTimeout and not context.DeadlineExceeded,
// for the waiter without a deadline and in Stats.
func TestCacheFetchTimeoutIsNotTheCallers(t *testing.T) {
	src := newCountingSource()
	release := src.hold()
	defer release()
	c := newTestCache(t, src, CacheOptions{FetchTimeout: 20 * time.Millisecond})
	_, err := c.Get(context.Background(), Current)
	if !errors.Is(err, ErrSourceTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Fatalf("Get with no deadline, source stuck: %v; want ErrSourceTimeout and no context error", err)
	}
	t.Logf("error: %v", err)
	eventually(t, "the fetch has ended", func() bool { return c.Stats().FetchErrors == 1 })
	st := c.Stats()
	if !errors.Is(st.LastError, ErrSourceTimeout) || errors.Is(st.LastError, context.DeadlineExceeded) || errors.Is(st.LastError, context.Canceled) {
		t.Fatalf("LastError %v, want ErrSourceTimeout and no context error", st.LastError)
	}
	if src.cancelled.Load() != 1 || st.FetchErrors != 1 {
		t.Fatalf("cancelled %d, stats %+v", src.cancelled.Load(), st)
	}
}

// TestCacheFetchOutlivesFetchTimeoutForAWaiter: a caller whose deadline is
// later than FetchTimeout keeps the fetch going until it answers; a caller
// without a deadline that joins it returns after FetchTimeout with
// ErrSourceTimeout, the fetch going on for the first.
func TestCacheFetchOutlivesFetchTimeoutForAWaiter(t *testing.T) {
	const fetchTimeout = 20 * time.Millisecond
	src := newCountingSource()
	release := src.hold()
	defer release()
	c := newTestCache(t, src, CacheOptions{FetchTimeout: fetchTimeout})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, Current)
		first <- err
	}()
	eventually(t, "the fetch is under way", func() bool { return src.inflight.Load() == 1 })
	_, err := c.Get(context.Background(), Current) // joins; gives up after fetchTimeout
	if !errors.Is(err, ErrSourceTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second waiter, no deadline: %v; want ErrSourceTimeout", err)
	}
	if n := src.cancelled.Load(); n != 0 {
		t.Fatalf("the fetch was cancelled at FetchTimeout although a caller waits for it until its deadline")
	}
	release()
	if err := <-first; err != nil {
		t.Fatalf("first waiter: %v, want the answer", err)
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

// TestCacheWaiterDeadlineIsTheCallers: when a fetch runs until a caller's
// own deadline (later than FetchTimeout), the caller gets its context's
// error, never ErrSourceTimeout, though both end together.
func TestCacheWaiterDeadlineIsTheCallers(t *testing.T) {
	src := newCountingSource()
	release := src.hold()
	defer release()
	for i := range 10 {
		c := newTestCache(t, src, CacheOptions{FetchTimeout: time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := c.Get(ctx, Current)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrSourceTimeout) {
			t.Fatalf("round %d: %v; want the caller's context.DeadlineExceeded only", i, err)
		}
	}
}

// TestCacheColdGetReturnsAtItsDeadline: with nothing cached and a slow
// source, a Get returns at its deadline with its context's error, and the
// fetch goes on: a later caller joins it (no second fetch) and gets its
// answer.
func TestCacheColdGetReturnsAtItsDeadline(t *testing.T) {
	src := newCountingSource()
	release := src.hold()
	defer release()
	c := newTestCache(t, src, CacheOptions{})
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, err := c.Get(ctx, Current)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrSourceTimeout) {
			t.Fatalf("cold Get with a deadline: %v; want its context.DeadlineExceeded", err)
		}
	}
	got := make(chan error, 1)
	var ver atomic.Value
	go func() {
		s, err := c.Get(context.Background(), Current)
		if err == nil {
			ver.Store(s.VersionID)
		}
		got <- err
	}()
	eventually(t, "the late caller waits", func() bool { return c.Stats().Waited == 4 })
	release()
	if err := <-got; err != nil || ver.Load() != "v1" {
		t.Fatalf("late caller: %v %v; want v1", ver.Load(), err)
	}
	if n, m := src.calls.Load(), src.cancelled.Load(); n != 1 || m != 0 {
		t.Fatalf("%d fetches, %d cancelled; want 1 fetch, which went on", n, m)
	}
}

// TestCacheLateJoinerDoesNotExtendFetch: a caller that joins a fetch after
// FetchTimeout does not keep it going (a stream of callers would keep a
// lost request alive for ever): the fetch ends at its deadline, and the
// caller, whose own deadline is later, has a new fetch made for it.
func TestCacheLateJoinerDoesNotExtendFetch(t *testing.T) {
	const fetchTimeout = 50 * time.Millisecond
	src := newCountingSource()
	release := src.hold()
	defer release()
	c := newTestCache(t, src, CacheOptions{FetchTimeout: fetchTimeout, MinRefreshInterval: time.Millisecond})
	first, cancel := context.WithTimeout(context.Background(), 4*fetchTimeout)
	defer cancel()
	go c.Get(first, Current) // starts the fetch; its deadline: 4*fetchTimeout
	eventually(t, "the fetch is under way", func() bool { return src.inflight.Load() == 1 })
	time.Sleep(fetchTimeout)
	late := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := c.Get(ctx, Current)
		late <- err
	}()
	eventually(t, "a second fetch is made for the late caller", func() bool { return src.calls.Load() == 2 })
	if n := src.cancelled.Load(); n != 1 {
		t.Fatalf("%d fetches cancelled, want 1 (the first, at its deadline)", n)
	}
	release()
	if err := <-late; err != nil {
		t.Fatalf("late caller: %v, want the second fetch's answer", err)
	}
}

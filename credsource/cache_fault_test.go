package credsource

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCacheSlowTTLRefreshServesCached: when the TTL has expired and the
// source is stuck, callers get the version they had at once, with or
// without a deadline (nothing says the password changed): none waits for
// the fetch, which goes on and whose result is used once it arrives.
func TestCacheSlowTTLRefreshServesCached(t *testing.T) {
	clock := newFakeClock()
	src := newCountingSource()
	c := newTestCache(t, src, CacheOptions{TTL: 20 * time.Second, Now: clock.Now})
	mustVersion(t, c, context.Background(), "v1")
	release := src.hold()
	defer release()
	src.set(Current, 2, nil)
	clock.Add(30 * time.Second)
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		mustVersion(t, c, ctx, "v1")
		cancel()
	}
	mustVersion(t, c, context.Background(), "v1")
	if st := c.Stats(); st.Waited != 1 {
		t.Fatalf("%d calls waited for a fetch, want 1 (the first fill)", st.Waited)
	}
	release()
	eventually(t, "the slow fetch has arrived", func() bool {
		s := c.Peek(Current)
		return s != nil && s.VersionID == "v2"
	})
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (the slow one shared)", n)
	}
}

// TestCacheForcedRefreshBacksOffAfterFailure: after a failed fetch, forced
// refreshes do not ask the source again before MinRefreshInterval has
// passed since the failure ended (doubling with each failure in a row;
// with refreshrules' FailureJitter at least half of it), even when the
// failed fetch itself took longer than the interval; after the step they
// do.
func TestCacheForcedRefreshBacksOffAfterFailure(t *testing.T) {
	const interval = 300 * time.Millisecond
	src := newCountingSource()
	c := newTestCache(t, src, CacheOptions{TTL: time.Hour, MinRefreshInterval: interval})
	ctx := context.Background()
	mustVersion(t, c, ctx, "v1")
	outage := errors.New("throttled")
	src.set(Current, 1, outage)
	src.delay = 400 * time.Millisecond // longer than the interval
	time.Sleep(interval + 50*time.Millisecond)

	if s, err := c.Refresh(ctx, Current, time.Now()); err != nil || s.VersionID != "v1" {
		t.Fatalf("Refresh during the outage = %v, %v; want the cached v1", s, err)
	}
	// Right after the failure: no fetch, whatever the caller's since.
	for range 20 {
		if _, err := c.Refresh(ctx, Current, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2: the refreshes right after a failure must wait", n)
	}
	time.Sleep(interval + 50*time.Millisecond)
	c.Refresh(ctx, Current, time.Now()) // second failure: the step doubles, to at most 2 intervals
	if n := src.calls.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3: an interval after the first failure the source is asked again", n)
	}
	c.Refresh(ctx, Current, time.Now())
	if n := src.calls.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3: right after the second failure the source is not asked", n)
	}
	src.set(Current, 2, nil)
	src.delay = 0
	time.Sleep(2*interval + 50*time.Millisecond)
	if s, err := c.Refresh(ctx, Current, time.Now()); err != nil || s.VersionID != "v2" {
		t.Fatalf("after the outage: %v, %v; want v2", s, err)
	}
	if st := c.Stats(); st.LastError != nil {
		t.Fatalf("LastError %v after a success", st.LastError)
	}
}

// TestCacheFailureHoldsEveryStage: a throttled fetch of one stage holds
// the forced refreshes of the other stages too (a throttled service
// throttles every stage alike): the other stage's good version answers
// them until the backoff ends, without a request; a malformed version is
// not the service's failure and holds nothing but its own stage.
func TestCacheFailureHoldsEveryStage(t *testing.T) {
	clock := newFakeClock()
	src := newCountingSource()
	c := newTestCache(t, src, CacheOptions{TTL: time.Hour, MinRefreshInterval: time.Second, Now: clock.Now})
	ctx := context.Background()
	mustVersion(t, c, ctx, "v1")
	src.set(Pending, 2, errors.New("ThrottlingException"))
	clock.Add(2 * time.Second)
	if _, err := c.Refresh(ctx, Pending, clock.Now()); err == nil {
		t.Fatal("Refresh of the throttled AWSPENDING succeeded")
	}
	src.set(Current, 3, nil)
	calls := src.calls.Load()
	clock.Add(400 * time.Millisecond) // within the backoff: at least half an interval
	if s, err := c.Refresh(ctx, Current, clock.Now()); err != nil || s.VersionID != "v1" {
		t.Fatalf("Refresh of AWSCURRENT during the source's backoff = %v, %v; want the cached v1", s, err)
	}
	if n := src.calls.Load(); n != calls {
		t.Fatalf("%d fetches during the backoff, want none", n-calls)
	}
	clock.Add(700 * time.Millisecond) // past the backoff: at most 1 interval
	if s, err := c.Refresh(ctx, Current, clock.Now()); err != nil || s.VersionID != "v3" {
		t.Fatalf("Refresh of AWSCURRENT after the backoff = %v, %v; want v3", s, err)
	}
}

package credsource

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// boundedSource returns versions v1, v2, ... each with RefreshBy and
// Expires set relative to the clock, as the IAM source bounds a token by
// its signing credentials.
type boundedSource struct {
	now              func() time.Time
	refresh, expires time.Duration
	n                atomic.Int64
}

func (s *boundedSource) Fetch(context.Context, Request) (*Secret, error) {
	n := s.n.Add(1)
	now := s.now()
	return &Secret{VersionID: "v" + string(rune('0'+n)), RefreshBy: now.Add(s.refresh), Expires: now.Add(s.expires)}, nil
}

// TestCacheHonoursSecretBounds: a version is refreshed at its RefreshBy,
// before a TTL far longer, and never served from memory after its Expires:
// a lookup then waits for a fetch.
func TestCacheHonoursSecretBounds(t *testing.T) {
	clock := newFakeClock()
	src := &boundedSource{now: clock.Now, refresh: 2 * time.Second, expires: 3 * time.Second}
	c := newTestCache(t, src, CacheOptions{TTL: time.Hour, Now: clock.Now})
	ctx := context.Background()
	mustVersion(t, c, ctx, "v1")
	clock.Add(time.Second)
	mustVersion(t, c, ctx, "v1")
	if n := src.n.Load(); n != 1 {
		t.Fatalf("%d fetches before RefreshBy, want 1", n)
	}
	// Past RefreshBy: served at once, and a background refresh begins.
	clock.Add(1500 * time.Millisecond)
	mustVersion(t, c, ctx, "v1")
	eventually(t, "the refresh at RefreshBy", func() bool { p := c.Peek(Current); return p != nil && p.VersionID == "v2" })
	// The refreshed version is bounded anew; let it pass its Expires with
	// no lookup in between: the next lookup must not be served from memory.
	clock.Add(10 * time.Second)
	if _, ok := c.Cached(Current); ok {
		t.Fatal("Cached served a version past its Expires")
	}
	mustVersion(t, c, ctx, "v3")
}

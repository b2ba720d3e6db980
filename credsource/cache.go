package credsource

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of CacheOptions.
const (
	// DefaultTTL is how long a fetched version is served before the cache
	// asks the source again. Rotation does not wait for it: a login failure
	// forces a refresh at once.
	DefaultTTL = 15 * time.Minute
	// DefaultMinRefreshInterval bounds forced refreshes: one fetch per stage
	// per interval, however many connections ask for it.
	DefaultMinRefreshInterval = time.Second
	// DefaultFetchTimeout bounds one fetch, SDK retries included.
	DefaultFetchTimeout = 10 * time.Second
)

// CacheOptions tune a Cache. Zero values take the defaults above.
type CacheOptions struct {
	TTL                time.Duration
	MinRefreshInterval time.Duration
	FetchTimeout       time.Duration
	// Logger receives fetches and not-found answers (Debug), and failed
	// fetches, served stale or not (Warn). Nil discards them.
	Logger *slog.Logger
}

// Cache serves a Source's versions from memory. It is safe for concurrent
// use:
//
//   - Get returns the version with a stage, fetching it when older than the
//     TTL. When it holds a good version, it waits for that fetch at most 1 s
//     (and half of what remains of its context), then uses the version it
//     holds: a slow source does not fail connections.
//   - Refresh returns a version whose fetch began at or after a given time:
//     a caller whose login failed at time t asks for news since t, and joins
//     a fetch that is already under way rather than starting another.
//   - At most one fetch per stage runs at a time (singleflight), and forced
//     refreshes of a stage start at most once per MinRefreshInterval; after
//     failed fetches, not before 1, 2, then 4 intervals after the last
//     failure ended.
//   - When a fetch fails for any reason but ErrNotFound, the last good
//     version is served (stale) and the error is kept for Stats.
//
// A fetch runs on its own context (bounded by FetchTimeout) so that a
// waiter giving up does not cancel it for the others; each waiter still
// returns as soon as its own context ends.
type Cache struct {
	src    Source
	opts   CacheOptions
	log    *slog.Logger
	flight singleflight.Group

	mu       sync.Mutex
	entries  map[Stage]*entry
	bySource map[string]uint64 // versions fetched, by Secret.Source

	hits, misses, coalesced, stale, fetchErrs atomic.Uint64
}

type entry struct {
	val       *Secret   // last good version; nil when none or not found
	err       error     // outcome of the last fetch, nil when it succeeded
	started   time.Time // when the last finished fetch began; zero before any
	forcedAt  time.Time // when the last finished forced fetch (Refresh) began
	ended     time.Time // when the last fetch ended
	failures  int       // consecutive failed fetches (not-found answers are not failures)
	fetches   uint64
	lastError time.Time
}

// NewCache returns a cache in front of src.
func NewCache(src Source, opts CacheOptions) *Cache {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.MinRefreshInterval <= 0 {
		opts.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{src: src, opts: opts, log: log, entries: make(map[Stage]*entry, 2), bySource: make(map[string]uint64, 2)}
}

// Source returns the source the cache stands in front of.
func (c *Cache) Source() Source { return c.src }

// Get returns the version with the given stage, from memory when it was
// fetched less than TTL ago.
func (c *Cache) Get(ctx context.Context, stage Stage) (*Secret, error) {
	now := time.Now()
	c.mu.Lock()
	if e := c.entries[stage]; e != nil && now.Sub(e.started) < c.opts.TTL && !e.started.IsZero() {
		val, err := e.val, e.err
		c.mu.Unlock()
		c.hits.Add(1)
		if val != nil {
			return val, nil
		}
		return nil, err
	}
	c.mu.Unlock()
	c.misses.Add(1)
	return c.load(ctx, stage, now.Add(-c.opts.TTL), false)
}

// Refresh returns the version with the given stage from a fetch that began
// at or after since (or, to bound the rate of fetches, less than
// MinRefreshInterval ago). The fetch asks the source to bypass its own
// cache.
func (c *Cache) Refresh(ctx context.Context, stage Stage, since time.Time) (*Secret, error) {
	return c.load(ctx, stage, since, true)
}

// Peek returns the version last fetched for stage, however old, without
// fetching; nil when there is none.
func (c *Cache) Peek(stage Stage) *Secret {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[stage]; e != nil {
		return e.val
	}
	return nil
}

// fresh reports whether e answers a request for news since the given time;
// for a forced refresh, the last fetch answers too when a forced fetch began
// less than MinRefreshInterval ago. Only forced fetches count against the
// interval: a TTL fetch that happened to run just before a rotation
// finished must not hold back the refresh that a 1045 calls for (that cost
// a second of backoff per connection in BenchmarkRecovery/case=promoted).
// Called with c.mu held.
func (c *Cache) fresh(e *entry, since, now time.Time, force bool) bool {
	if e == nil || e.started.IsZero() {
		return false
	}
	if !e.started.Before(since) {
		return true
	}
	if !force {
		return false
	}
	if !e.forcedAt.IsZero() && now.Sub(e.forcedAt) < c.opts.MinRefreshInterval {
		return true
	}
	// After failed fetches, forced refreshes back off (1, 2, then 4 x
	// MinRefreshInterval after the failure ended): a throttled or failing
	// service is not asked again at once by every connection's recovery,
	// its client having already retried.
	return e.failures > 0 && now.Sub(e.ended) < c.opts.MinRefreshInterval<<min(e.failures-1, 2)
}

// ttlRefreshWait bounds how long a caller holding an expired but good
// version waits for its refresh (at most half of what remains of its
// context) before using that version anyway: nothing says the password
// changed (a 1045 forces a refresh, which does wait), so a slow source must
// not fail connections.
const ttlRefreshWait = time.Second

func refreshWait(ctx context.Context) time.Duration {
	d := ttlRefreshWait
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return d
}

func (c *Cache) load(ctx context.Context, stage Stage, since time.Time, force bool) (*Secret, error) {
	for {
		c.mu.Lock()
		e := c.entries[stage]
		if c.fresh(e, since, time.Now(), force) {
			val, err := e.val, e.err
			c.mu.Unlock()
			if val != nil {
				return val, nil
			}
			return nil, err
		}
		var stale *Secret // a TTL refresh's good version in hand
		if !force && e != nil {
			stale = e.val
		}
		c.mu.Unlock()

		ch := c.flight.DoChan(string(stage), func() (any, error) {
			c.fetch(context.WithoutCancel(ctx), stage, since, force)
			return nil, nil
		})
		var slow <-chan time.Time
		if stale != nil {
			t := time.NewTimer(refreshWait(ctx))
			defer t.Stop()
			slow = t.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-slow:
			c.log.LogAttrs(ctx, slog.LevelDebug, "rotatingmysql: secret refresh is slow, using the cached version meanwhile",
				slog.String("secret", stale.ID), slog.String("stage", string(stage)), slog.String("version_id", stale.VersionID))
			return stale, nil
		case r := <-ch:
			if r.Shared {
				c.coalesced.Add(1)
			}
		}
		// Loop: the fetch we joined may have begun before since; the next
		// round either finds it fresh or starts one that is.
	}
}

// fetch asks the source and records the outcome. It runs once per flight.
func (c *Cache) fetch(ctx context.Context, stage Stage, since time.Time, force bool) {
	start := time.Now()
	c.mu.Lock()
	e := c.entries[stage]
	if e == nil {
		e = &entry{}
		c.entries[stage] = e
	}
	if c.fresh(e, since, start, force) {
		// A flight that finished just before this one began already answers.
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, c.opts.FetchTimeout)
	val, err := c.src.Fetch(ctx, Request{Stage: stage, Refresh: force})
	cancel()
	took := time.Since(start)

	c.mu.Lock()
	defer c.mu.Unlock()
	e.started = start
	e.ended = time.Now()
	if err == nil || errors.Is(err, ErrNotFound) {
		e.failures = 0
	} else {
		e.failures++
	}
	if force {
		e.forcedAt = start
	}
	e.fetches++
	e.err = err
	switch {
	case err == nil:
		e.val = val
		name := val.Source
		if name == "" {
			name = "unnamed"
		}
		c.bySource[name]++
		c.log.LogAttrs(ctx, slog.LevelDebug, "rotatingmysql: secret fetched",
			slog.String("secret", val.ID), slog.String("source", val.Source), slog.String("stage", string(stage)),
			slog.String("version_id", val.VersionID), slog.Duration("latency", took),
			slog.Bool("forced", force))
	case errors.Is(err, ErrNotFound):
		e.val = nil
		e.lastError = start
		c.log.LogAttrs(ctx, slog.LevelDebug, "rotatingmysql: secret version not found",
			slog.String("stage", string(stage)), slog.Duration("latency", took), slog.Any("error", err))
	default:
		c.fetchErrs.Add(1)
		e.lastError = start
		if e.val != nil {
			c.stale.Add(1)
			c.log.LogAttrs(ctx, slog.LevelWarn, "rotatingmysql: serving cached secret, fetch failed",
				slog.String("secret", e.val.ID), slog.String("source", e.val.Source), slog.String("stage", string(stage)),
				slog.String("version_id", e.val.VersionID), slog.Duration("latency", took), slog.Any("error", err))
		} else {
			c.log.LogAttrs(ctx, slog.LevelWarn, "rotatingmysql: secret fetch failed",
				slog.String("stage", string(stage)), slog.Duration("latency", took), slog.Any("error", err))
		}
	}
}

// CacheStats counts what a Cache has done since it was made.
type CacheStats struct {
	Hits        uint64            // Get calls served from memory
	Misses      uint64            // Get calls that needed a fetch (TTL expired or first use)
	Coalesced   uint64            // waits that shared another caller's fetch
	Fetches     map[Stage]uint64  // fetches made, by stage
	BySource    map[string]uint64 // versions fetched, by the source that returned them (Secret.Source)
	FetchErrors uint64            // fetches that failed (not counting not-found answers)
	StaleServed uint64            // failed fetches answered with the last good version
	LastFetch   time.Time         // when the latest fetch of any stage began
	LastError   error             // the latest fetch error of any stage, nil after a success
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache) Stats() CacheStats {
	s := CacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Coalesced: c.coalesced.Load(),
		FetchErrors: c.fetchErrs.Load(), StaleServed: c.stale.Load(),
		Fetches: make(map[Stage]uint64, 2),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.BySource = maps.Clone(c.bySource)
	var lastErrAt time.Time
	for st, e := range c.entries {
		s.Fetches[st] = e.fetches
		if e.started.After(s.LastFetch) {
			s.LastFetch = e.started
		}
		if e.err != nil && !errors.Is(e.err, ErrNotFound) && e.lastError.After(lastErrAt) {
			lastErrAt, s.LastError = e.lastError, e.err
		}
	}
	return s
}
